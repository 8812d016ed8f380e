//! The `Client` handle and the one place that sends HTTP requests, attaches the key and turns answers
//! into values or [`ClientError`]s. Endpoint groups live in their own modules as `impl Client` blocks.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::config::ClientConfig;
use crate::error::ClientError;

/// Async client of the Nullspace HTTP and WebSocket API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    api_key: Option<String>,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let base = url::Url::parse(&config.base_url)
            .map_err(|source| ClientError::InvalidUrl { url: config.base_url.clone(), source })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl {
                url: config.base_url,
                source: url::ParseError::RelativeUrlWithoutBase,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("nullspace-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport { method: "INIT".into(), url: config.base_url.clone(), source })?;
        Ok(Self { http, base, api_key: config.api_key })
    }

    /// A client configured from the environment and config files (see [`crate::config`]).
    pub fn from_env() -> Result<Self, ClientError> {
        Self::new(ClientConfig::resolve(None, None))
    }

    /// The API base URL (no trailing `/`).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether an API key is configured.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    pub(crate) fn api_key(&self) -> Result<&str, ClientError> {
        self.api_key.as_deref().ok_or(ClientError::MissingApiKey)
    }

    /// Absolute URL of `path` (which starts with `/`), keeping any path prefix of the base URL.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// An authenticated request builder.
    pub(crate) fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let key = self.api_key()?;
        Ok(self.http.request(method, self.url(path)).bearer_auth(key))
    }

    /// A request without credentials (health).
    pub(crate) fn request_anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// A request to an absolute URL without credentials (signed file URLs carry their own grant).
    pub(crate) fn request_url(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// Sends `builder` and fails on non-2xx with the parsed envelope.
    pub(crate) async fn send(&self, builder: RequestBuilder) -> Result<Response, ClientError> {
        let request = builder.build().map_err(|source| ClientError::Transport {
            method: "BUILD".into(),
            url: self.base_url().to_owned(),
            source,
        })?;
        let (method, url) = (request.method().to_string(), request.url().to_string());
        tracing::debug!(%method, %url, "request");
        let response = self.http.execute(request).await.map_err(|source| ClientError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|source| ClientError::Transport { method, url, source })?;
        Err(ClientError::from_response(status.as_u16(), &body))
    }

    /// Sends and reads the whole body.
    pub(crate) async fn send_bytes(&self, builder: RequestBuilder) -> Result<(String, Vec<u8>), ClientError> {
        let response = self.send(builder).await?;
        let url = response.url().to_string();
        let body = response.bytes().await.map_err(|source| ClientError::Transport {
            method: "READ".into(),
            url: url.clone(),
            source,
        })?;
        Ok((url, body.to_vec()))
    }

    /// Sends and decodes a JSON body.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, ClientError> {
        let (url, body) = self.send_bytes(builder).await?;
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode { url, source })
    }

    /// Sends and ignores any body ("any" responses).
    pub(crate) async fn send_empty(&self, builder: RequestBuilder) -> Result<(), ClientError> {
        self.send_bytes(builder).await.map(drop)
    }
}

/// Percent-encodes one path segment (ids come from users).
pub(crate) fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let client = Client::new(ClientConfig::new("http://host:1/prefix/", Some("k".into()))).unwrap();
        assert_eq!(client.url("/v1/sandboxes"), "http://host:1/prefix/v1/sandboxes");
        assert_eq!(segment("sb_a/b c"), "sb_a%2Fb%20c");
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(matches!(Client::new(ClientConfig::new("localhost:3000", None)), Err(ClientError::InvalidUrl { .. })));
        assert!(matches!(Client::new(ClientConfig::new("not a url", None)), Err(ClientError::InvalidUrl { .. })));
    }

    #[tokio::test]
    async fn requests_that_need_a_key_fail_before_sending() {
        let client = Client::new(ClientConfig::new("http://127.0.0.1:9", None)).unwrap();
        assert!(matches!(client.get_sandbox("sb_x").await, Err(ClientError::MissingApiKey)));
    }
}
