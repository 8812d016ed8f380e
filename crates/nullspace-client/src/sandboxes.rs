//! Sandbox lifecycle endpoints (`/healthz`, `/v1/sandboxes…`) and the template list.

use std::time::Duration;

use nullspace_types::sandbox::{
    CreateSandboxRequest, SandboxInfo, SandboxPage, SetTimeoutRequest, TemplateInfo, TimeoutAction,
};
use reqwest::Method;
use serde::Deserialize;

use crate::client::{segment, Client};
use crate::error::ClientError;

/// How long a create may take (the server answers once exec and files work).
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Answer of `GET /healthz`.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// HTTP status (anything below 500 counts as reachable).
    pub status: u16,
    /// The JSON body, when there was one.
    pub body: Option<serde_json::Value>,
}

/// Filters and paging of `GET /v1/sandboxes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListSandboxes {
    /// States to include (`running`, `paused`, …); empty: the server default.
    pub states: Vec<String>,
    /// Only sandboxes of this template.
    pub template: Option<String>,
    /// Only sandboxes whose metadata contains all these pairs.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Page size.
    pub limit: Option<u32>,
    /// Token from the previous page.
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PageOrList {
    Page(SandboxPage),
    List(Vec<SandboxInfo>),
}

impl Client {
    /// `GET /healthz` (no key needed). Any answer below 500 means the server is up.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let builder = self.request_anonymous(Method::GET, "/healthz").timeout(Duration::from_secs(5));
        let url = self.url("/healthz");
        let request = builder.build().map_err(|source| ClientError::Transport {
            method: "GET".into(),
            url: url.clone(),
            source,
        })?;
        let response = self.http_client().execute(request).await.map_err(|source| ClientError::Transport {
            method: "GET".into(),
            url: url.clone(),
            source,
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Ok(Health { status, body })
    }

    /// `POST /v1/sandboxes`; returns once the sandbox runs. `idempotency_key` defaults to a fresh one.
    pub async fn create_sandbox(
        &self,
        request: &CreateSandboxRequest,
        idempotency_key: Option<&str>,
    ) -> Result<SandboxInfo, ClientError> {
        let key = idempotency_key.map(str::to_owned).unwrap_or_else(new_idempotency_key);
        let builder = self
            .request(Method::POST, "/v1/sandboxes")?
            .header("Idempotency-Key", key)
            .timeout(CREATE_TIMEOUT)
            .json(request);
        self.send_json(builder).await
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn get_sandbox(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        let builder = self.request(Method::GET, &format!("/v1/sandboxes/{}", segment(id)))?;
        self.send_json(builder).await
    }

    /// One page of `GET /v1/sandboxes` (a bare array answer becomes a single page).
    pub async fn list_sandboxes(&self, query: &ListSandboxes) -> Result<SandboxPage, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if !query.states.is_empty() {
            params.push(("state", query.states.join(",")));
        }
        if let Some(template) = &query.template {
            params.push(("template", template.clone()));
        }
        if !query.metadata.is_empty() {
            params.push(("metadata", serde_json::Value::Object(query.metadata.clone()).to_string()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(token) = &query.next_token {
            params.push(("next_token", token.clone()));
        }
        let builder = self.request(Method::GET, "/v1/sandboxes")?.query(&params);
        Ok(match self.send_json::<PageOrList>(builder).await? {
            PageOrList::Page(page) => page,
            PageOrList::List(items) => SandboxPage { items, next_token: None, has_next: false },
        })
    }

    /// `DELETE /v1/sandboxes/{id}`.
    pub async fn kill_sandbox(&self, id: &str) -> Result<(), ClientError> {
        let builder = self.request(Method::DELETE, &format!("/v1/sandboxes/{}", segment(id)))?;
        self.send_empty(builder).await
    }

    /// `POST /v1/sandboxes/{id}/timeout`: the sandbox now lives `timeout` from now.
    pub async fn set_timeout(
        &self,
        id: &str,
        timeout: Duration,
        action: Option<TimeoutAction>,
    ) -> Result<(), ClientError> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let body = SetTimeoutRequest { timeout_ms: Some(timeout_ms), timeout_action: action, lifecycle: None };
        let builder = self.request(Method::POST, &format!("/v1/sandboxes/{}/timeout", segment(id)))?.json(&body);
        self.send_empty(builder).await
    }

    /// `GET /v1/templates`.
    pub async fn list_templates(&self) -> Result<Vec<TemplateInfo>, ClientError> {
        let builder = self.request(Method::GET, "/v1/templates")?;
        self.send_json(builder).await
    }
}

/// A random UUIDv4-shaped key.
pub fn new_idempotency_key() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_look_like_uuid4() {
        let key = new_idempotency_key();
        assert_eq!(key.len(), 36);
        assert_eq!(key.as_bytes()[14], b'4');
        assert_ne!(key, new_idempotency_key());
    }

    #[test]
    fn list_answers_may_be_pages_or_bare_arrays() {
        assert!(
            matches!(serde_json::from_str::<PageOrList>("[]").unwrap(), PageOrList::List(items) if items.is_empty())
        );
        let page = r#"{"items":[],"next_token":"t","has_next":true}"#;
        assert!(matches!(serde_json::from_str::<PageOrList>(page).unwrap(), PageOrList::Page(p) if p.has_next));
    }
}
