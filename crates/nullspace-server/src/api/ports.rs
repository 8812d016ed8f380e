//! Port routes: `POST /host` (a reachable address for a sandbox port) and port readiness.

use std::time::{Duration, Instant};

use super::extract::Path;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::clock;

/// Body of `POST /v1/sandboxes/{id}/host`.
#[derive(Debug, Deserialize)]
pub struct HostRequest {
    port: Option<u16>,
}

fn request_hostname(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    // Strip a port, keeping bracketed IPv6 literals intact.
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name.to_owned(),
        _ => host.to_owned(),
    }
}

/// `POST /v1/sandboxes/{id}/host`.
pub async fn host(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let request: HostRequest =
        serde_json::from_slice(&body).map_err(|error| ApiError::invalid(format!("invalid host body: {error}")))?;
    let port =
        request.port.filter(|port| *port > 0).ok_or_else(|| ApiError::invalid("port must be between 1 and 65535"))?;
    let address = state.control.expose_port(&tenant, &id, port).await?;
    let host = format!("{}:{}", request_hostname(&headers), address.port());
    Ok(Json(json!({ "host": host, "url": format!("http://{host}"), "websocket_url": format!("ws://{host}") })))
}

/// Body of `POST /v1/sandboxes/{id}/ports/{port}/readiness`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReadinessRequest {
    kind: Option<String>,
    timeout_secs: Option<u64>,
    interval_ms: Option<u64>,
    path: Option<String>,
}

/// `POST /v1/sandboxes/{id}/ports/{port}/readiness`: waits until the port is ready or the timeout passes.
pub async fn readiness(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, port)): Path<(String, u16)>,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let request: ReadinessRequest = if body.is_empty() {
        ReadinessRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::invalid(format!("invalid readiness body: {error}")))?
    };
    let kind = request.kind.unwrap_or_else(|| "tcp".to_owned());
    if kind != "tcp" && kind != "http" {
        return Err(ApiError::invalid(format!("kind must be tcp or http, got {kind:?}")));
    }
    let path = request.path.clone().unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') {
        return Err(ApiError::invalid("path must start with /"));
    }
    let timeout = Duration::from_secs(request.timeout_secs.unwrap_or(30).min(600));
    let interval = Duration::from_millis(request.interval_ms.unwrap_or(500).clamp(50, 10_000));
    let (_record, guest) = state.control.guest(&tenant, &id).await?;
    let started = Instant::now();
    let mut attempts = 0u32;
    let last_error = loop {
        attempts += 1;
        let http_path = (kind == "http").then_some(path.as_str());
        match crate::preview::probe(&guest, port, http_path).await {
            Ok(()) => break None,
            Err(error) if started.elapsed() + interval > timeout => break Some(error),
            Err(_) => tokio::time::sleep(interval).await,
        }
    };
    let ready = last_error.is_none();
    let mut body = json!({
        "ready": ready,
        "route_ready": true,
        "service_ready": ready,
        "sandbox_id": id,
        "port": port,
        "kind": kind,
        "checked_at": clock::now_rfc3339(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "attempts": attempts,
    });
    if let Some(object) = body.as_object_mut() {
        if request.path.is_some() {
            object.insert("path".into(), json!(path));
        }
        if let Some(error) = last_error {
            object.insert("code".into(), json!("service_not_ready"));
            object.insert("error".into(), json!(error));
            object.insert(
                "suggested_action".into(),
                json!(format!("start a server listening on port {port} inside the sandbox")),
            );
        }
    }
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_drops_the_port_only() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::HOST, "localhost:3000".parse().unwrap());
        assert_eq!(request_hostname(&headers), "localhost");
        headers.insert(axum::http::header::HOST, "[::1]:3000".parse().unwrap());
        assert_eq!(request_hostname(&headers), "[::1]");
        headers.insert(axum::http::header::HOST, "example.test".parse().unwrap());
        assert_eq!(request_hostname(&headers), "example.test");
    }
}
