//! `ANY /v1/sandboxes/{id}/code/{*rest}`: the code-interpreter API, relayed to the gateway that the
//! `code-interpreter` template runs inside the sandbox on port [`CODE_PORT`] (`/execute`, `/contexts`,
//! `/runs`, `/artifacts`, … without the `/v1/sandboxes/{id}/code` prefix). Bodies stream through untouched
//! in both directions, so the execute SSE stream reaches the client event by event.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Uri, Version};
use axum::response::Response;
use nullspace_types::ErrorCode;

use super::auth::Authenticated;
use super::extract::Path;
use super::proxy::PreviewTarget;
use super::upstream::ForwardError;
use super::{ApiError, AppState};

/// The port the code-interpreter gateway listens on inside its sandbox.
pub const CODE_PORT: u16 = 8888;

/// Request headers passed to the gateway; everything else (notably `Authorization`) stays here.
const FORWARDED_HEADERS: &[header::HeaderName] =
    &[header::CONTENT_TYPE, header::CONTENT_LENGTH, header::ACCEPT, header::TRANSFER_ENCODING];

/// Response headers the relay does not pass back (connection-level ones belong to each hop).
const HOP_BY_HOP: &[header::HeaderName] =
    &[header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE, header::TE, header::TRAILER];

/// Relays one code-interpreter request to the sandbox's gateway and streams the answer back.
pub async fn relay(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (_record, guest) = state.control.guest(&tenant, &id).await?;
    let (parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let uri: Uri = path_and_query
        .parse()
        .map_err(|_| ApiError::invalid(format!("invalid code-interpreter path /{rest}: percent-encode it")))?;
    let mut upstream = hyper::Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.version_mut() = Version::HTTP_11;
    for name in FORWARDED_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            upstream.headers_mut().insert(name.clone(), value.clone());
        }
    }
    upstream.headers_mut().insert(header::HOST, HeaderValue::from_static("localhost"));

    let target = PreviewTarget { port: CODE_PORT, sandbox_id: id.clone() };
    let response = state.upstreams.send(&guest, &target, upstream).await.map_err(|error| unavailable(&id, &error))?;
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The gateway cannot be reached: the sandbox runs no code interpreter, or it has not started (yet).
fn unavailable(sandbox_id: &str, error: &ForwardError) -> ApiError {
    tracing::debug!(sandbox = %sandbox_id, error = %crate::error_chain(error), "code interpreter unreachable");
    let message = match error {
        ForwardError::Unreachable { .. } => format!(
            "sandbox {sandbox_id} runs no code interpreter on port {CODE_PORT}: create the sandbox from the \
             `code-interpreter` template (or a template built on it)"
        ),
        ForwardError::Upstream { .. } => format!(
            "the code interpreter of sandbox {sandbox_id} closed the connection without an answer; retry, and check \
             `GET /v1/sandboxes/{sandbox_id}` if it keeps failing"
        ),
    };
    ApiError::new(ErrorCode::FeatureUnavailable, message)
}
