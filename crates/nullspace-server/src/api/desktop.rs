//! `ANY /v1/sandboxes/{id}/desktop/{*rest}`: the desktop API (`/screenshot`, `/click`, `/windows`,
//! `/recording/…`, `/capabilities`, …), relayed to the desktop daemon that the `desktop` template runs
//! inside the sandbox on port [`DESKTOP_PORT`], without the `/v1/sandboxes/{id}/desktop` prefix; see
//! [`super::guest_service`]. The viewer and streaming routes (`stream`, `stream/*`, `viewer`,
//! `viewer/ws`) are the server's own and registered with static segments, which axum matches before
//! this catch-all. `GET capabilities` is the daemon's answer with its `streaming` part replaced by the
//! server's: how clients may watch the desktop is decided here (`--desktop-raw-vnc`), not in the sandbox.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;

use super::auth::Authenticated;
use super::extract::Path;
use super::guest_service::{self, GuestService};
use super::{ApiError, AppState};

/// The port the desktop daemon listens on inside its sandbox.
pub const DESKTOP_PORT: u16 = 49990;

/// The desktop daemon.
const DAEMON: GuestService = GuestService { port: DESKTOP_PORT, what: "desktop", template: "desktop" };

/// Relays one desktop request to the sandbox's desktop daemon and streams the answer back.
pub async fn relay(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let capabilities = request.method() == Method::GET && rest == "capabilities";
    let response = guest_service::relay(&state, &tenant, &id, &rest, request, DAEMON).await?;
    if !capabilities || response.status() != StatusCode::OK {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|error| {
            ApiError::new(
                nullspace_types::ErrorCode::Internal,
                format!("reading the desktop daemon's capabilities failed: {error}"),
            )
        })?
        .to_bytes();
    let mut answer: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            nullspace_types::ErrorCode::Internal,
            format!("the desktop daemon's capabilities are not JSON: {error}"),
        )
    })?;
    if let Some(object) = answer.as_object_mut() {
        object.insert("streaming".into(), super::desktop_stream::streaming_capabilities(state.desktop.raw_vnc));
    }
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Response::from_parts(parts, Body::from(body)))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::{any, get, post};
    use axum::Router;
    use tower::ServiceExt;

    /// The viewer and streaming routes the server serves itself sit beside this catch-all with static
    /// segments; axum must send them there, not to the desktop daemon (the route shapes as in
    /// `router.rs`).
    #[tokio::test]
    async fn static_desktop_routes_win_over_the_relay() {
        let app: Router = Router::new()
            .route("/v1/sandboxes/{id}/desktop/stream", get(|| async { "server" }))
            .route("/v1/sandboxes/{id}/desktop/stream/start", post(|| async { "server" }))
            .route("/v1/sandboxes/{id}/desktop/viewer", get(|| async { "server" }))
            .route("/v1/sandboxes/{id}/desktop/viewer/ws", get(|| async { "server" }))
            .route("/v1/sandboxes/{id}/desktop/{*rest}", any(|| async { "relay" }))
            .route("/v1/sandboxes/{id}/{*rest}", any(|| async { "guest" }));
        for (method, path, expected) in [
            ("GET", "/v1/sandboxes/sb_1/desktop/stream", "server"),
            ("POST", "/v1/sandboxes/sb_1/desktop/stream/start", "server"),
            ("GET", "/v1/sandboxes/sb_1/desktop/viewer?auth=k", "server"),
            ("GET", "/v1/sandboxes/sb_1/desktop/viewer/ws", "server"),
            ("POST", "/v1/sandboxes/sb_1/desktop/screenshot", "relay"),
            ("GET", "/v1/sandboxes/sb_1/desktop/recording/r1/download", "relay"),
            ("GET", "/v1/sandboxes/sb_1/desktop/viewer/other", "relay"),
            ("GET", "/v1/sandboxes/sb_1/files", "guest"),
        ] {
            let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], expected.as_bytes(), "{method} {path}");
        }
    }
}
