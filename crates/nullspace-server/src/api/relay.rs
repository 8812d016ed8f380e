//! Relay of sandbox-scoped HTTP routes to the sandbox's guest daemon. The guest serves the same paths
//! without the `/v1/sandboxes/{id}` prefix; bodies stream through in both directions.

use super::extract::Path;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use nullspace_node::GuestLink;
use nullspace_types::ErrorCode;

use super::auth::Authenticated;
use super::{ApiError, AppState};

/// First path segments of guest routes clients may reach (host-only ones such as `config` are not here).
const GUEST_ROUTES: &[&str] = &["exec", "processes", "files", "file", "pty", "uploads"];

/// Request headers passed to the guest; everything else (notably `Authorization`) stays here.
const FORWARDED_HEADERS: &[&str] =
    &["content-type", "content-length", "transfer-encoding", "x-nullspace-part-sha256", "idempotency-key"];

/// Sends one request to the guest and streams its response back.
pub async fn forward<B>(
    guest: &GuestLink,
    sandbox_id: &str,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: B,
) -> Result<Response, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::Request::builder().method(method).uri(path_and_query);
    for name in FORWARDED_HEADERS {
        if let Some(value) = headers.get(*name) {
            builder = builder.header(*name, value);
        }
    }
    let request = builder.body(body).map_err(|error| ApiError::invalid(format!("invalid request: {error}")))?;
    let response = guest.send(request).await.map_err(|error| {
        tracing::warn!(sandbox = %sandbox_id, error = %crate::error_chain(&error), "guest request failed");
        ApiError::new(
            ErrorCode::Internal,
            format!("sandbox {sandbox_id} did not answer; it may have exited, check `GET /v1/sandboxes/{sandbox_id}`"),
        )
    })?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// `ANY /v1/sandboxes/{id}/{*rest}` for the guest's routes.
pub async fn relay(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let first = rest.split('/').next().unwrap_or_default();
    if !GUEST_ROUTES.contains(&first) {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no route for /v1/sandboxes/{{id}}/{rest}")));
    }
    let (_record, guest) = state.control.guest(&tenant, &id).await?;
    // A foreground exec answers when its process ends: the slot is held until then (or until the
    // client goes away and this future is dropped). A background exec answers at once.
    let _slot =
        if first == "exec" && request.method() == Method::POST { Some(state.limits.execs.acquire(&id)?) } else { None };
    let (parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    forward(&guest, &id, parts.method, &path_and_query, &parts.headers, body).await
}

#[cfg(test)]
mod tests {
    use super::GUEST_ROUTES;

    #[test]
    fn host_only_guest_routes_are_never_relayed() {
        // `PUT /config` rewrites the sandbox's environment: only the server (claiming a warm pool
        // sandbox) may call it, never a client through the relay.
        assert!(!GUEST_ROUTES.contains(&"config"));
        assert!(!GUEST_ROUTES.contains(&"health"));
    }
}
