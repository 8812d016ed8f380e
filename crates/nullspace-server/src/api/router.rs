//! The router, built from the route table (`routes.rs`), and the state every handler shares.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use nullspace_types::ErrorCode;
use tower_http::cors::CorsLayer;

use super::{proxy, routes, ApiError};
use crate::control::Control;
use crate::signing::Signer;

/// State shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The control plane.
    pub control: Control,
    /// Signs and verifies file URLs.
    pub signer: Signer,
    /// Preview grants (the preview proxy's credentials) and where the proxy is reached.
    pub preview: crate::control::preview_grants::PreviewGrants,
    /// Idle connections of the preview proxy to sandbox ports.
    pub upstreams: std::sync::Arc<super::UpstreamPool>,
    /// The managed desktop viewer (keys, raw VNC policy, noVNC files).
    pub desktop: super::DesktopViewer,
    /// The rate limit per API key and the exec cap per sandbox.
    pub limits: std::sync::Arc<super::limits::RequestLimits>,
}

/// The whole API as one router (tests build the same app in-process).
pub fn router(state: AppState) -> Router {
    routes_router()
        .layer(CorsLayer::permissive())
        // Outermost: requests to preview hosts go to the preview proxy before any API routing or CORS.
        .layer(axum::middleware::from_fn_with_state(state.clone(), proxy::dispatch))
        .with_state(state)
}

/// Every route of the table (`routes.rs`, which `/openapi.json` documents too) and the envelope fallbacks.
pub(super) fn routes_router() -> Router<AppState> {
    let mut router = Router::new();
    for route in routes::table() {
        let path = route.path;
        router = router.route(path, route.service());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Every other body read whole (JSON) is limited to `limits::JSON_BODY_LIMIT`; routes of the table
        // set their own (build requests: larger; signed uploads: none, they stream to the sandbox's disk).
        .layer(axum::extract::DefaultBodyLimit::max(super::limits::JSON_BODY_LIMIT))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> impl IntoResponse {
    let message = format!("{method} is not supported on {}; see the API reference", uri.path());
    let body = axum::Json(nullspace_types::ErrorBody::new(ErrorCode::InvalidRequest, message));
    (StatusCode::METHOD_NOT_ALLOWED, body)
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    let error = ApiError::new(ErrorCode::NotFound, format!("no route for {}; see the API reference", uri.path()));
    (StatusCode::NOT_FOUND, error.into_response())
}
