//! Extractors and body parsers that speak the protocol's error envelope. Handlers take `Path`, `Query`
//! and `Body` from here, never axum's own (whose rejections are plain text): a bad path parameter or
//! query, a body that cannot be read (too large, or too slow: the server's body timeout) and a body that
//! is not one JSON object are each a 4xx naming what was wrong (`payload_too_large` for an oversized body,
//! `invalid_request` otherwise), and so is a plain request to a WebSocket route (`WsUpgrade`) or a body that
//! is not the multipart form a route wants (`Multipart`).

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use nullspace_types::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// Path parameters (axum's `Path`, rejected in the envelope).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // A 4xx is the caller's (a parameter of the wrong form); anything else is a route/extractor
            // mismatch, our bug.
            Err(rejection) if rejection.status().is_client_error() => {
                Err(ApiError::invalid(format!("invalid path: {}", rejection.body_text())))
            }
            Err(rejection) => Err(ApiError::new(
                ErrorCode::Internal,
                format!("cannot read the path parameters: {}", rejection.body_text()),
            )),
        }
    }
}

/// The query string (axum's `Query`, rejected in the envelope with the deserializer's reason).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))
    }
}

/// A WebSocket upgrade (axum's `WebSocketUpgrade`, rejected in the envelope): a request to a socket route
/// that is not an upgrade is a 400 `invalid_request` saying so.
pub struct WsUpgrade(pub WebSocketUpgrade);

impl<S> FromRequestParts<S> for WsUpgrade
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        WebSocketUpgrade::from_request_parts(parts, state).await.map(Self).map_err(|rejection| {
            ApiError::invalid(format!(
                "this route is a WebSocket; open it with an HTTP/1.1 upgrade request ({})",
                rejection.body_text().to_lowercase()
            ))
        })
    }
}

/// A multipart form (axum's `Multipart`, rejected in the envelope: a body that is not a multipart form
/// with a boundary is a 400).
pub struct Multipart(pub axum::extract::Multipart);

impl<S> FromRequest<S> for Multipart
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(request, state).await.map(Self).map_err(|rejection| {
            ApiError::invalid(format!(
                "expected a multipart/form-data body with a `file` field ({})",
                rejection.body_text().to_lowercase()
            ))
        })
    }
}

/// The whole request body; one that cannot be read is a 400 (413 when over the size limit).
pub struct Body(pub Bytes);

impl<S> FromRequest<S> for Body
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than this route accepts; send less, or write files with the upload routes",
            )),
            Err(_) => Err(ApiError::invalid(
                "the request body could not be read (sent too slowly or cut off); send it again in one go",
            )),
        }
    }
}

/// `body` as a JSON object (`what` names the body in errors); blank bodies are `None`.
pub fn json_object(body: &[u8], what: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => {
            Err(ApiError::invalid(format!("invalid {what} body: expected a JSON object, got {}", kind(&other))))
        }
        Err(error) => Err(ApiError::invalid(format!("invalid {what} body: {error}"))),
    }
}

/// `map` as `T`; a field of the wrong type is a 400 naming the field (`lifecycle.on_timeout: unknown
/// variant …`).
pub fn from_object<T: DeserializeOwned>(map: Map<String, Value>, what: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|error| {
        let path = error.path().to_string();
        let error = error.into_inner();
        if path == "." {
            ApiError::invalid(format!("invalid {what} body: {error}"))
        } else {
            ApiError::invalid(format!("invalid {what} body: {path}: {error}"))
        }
    })
}

/// A non-blank JSON object body as `T`.
pub fn parse_object<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let map = json_object(body, what)?
        .ok_or_else(|| ApiError::invalid(format!("invalid {what} body: expected a JSON object, got nothing")))?;
    from_object(map, what)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_bodies() {
        assert!(json_object(b"", "x").unwrap().is_none());
        assert!(json_object(b" {\"a\": 1} ", "x").unwrap().is_some());
        for bad in [&b"[]"[..], b"null", b"3", b"\"s\"", b"{", b"true"] {
            assert!(json_object(bad, "x").is_err(), "{:?} accepted", String::from_utf8_lossy(bad));
        }
        assert!(parse_object::<Map<String, Value>>(b"", "x").is_err());
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        use nullspace_types::sandbox::CreateSandboxRequest;
        let message = |body: &[u8]| match parse_object::<CreateSandboxRequest>(body, "sandbox create") {
            Err(error) => format!("{error:?}"),
            Ok(_) => panic!("{} accepted", String::from_utf8_lossy(body)),
        };
        assert!(
            message(br#"{"lifecycle": {"on_timeout": "hibernate"}}"#).contains("lifecycle.on_timeout: unknown variant")
        );
        assert!(message(br#"{"auto_resume": "yes"}"#).contains("auto_resume: invalid type"));
    }
}
