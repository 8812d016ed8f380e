//! The route table and the state every handler shares.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Router;
use nullspace_types::ErrorCode;
use tower_http::cors::CorsLayer;

use super::{
    code, desktop, desktop_stream, desktop_viewer, health, lifecycle, monitor, ports, preview_urls, proxy, relay,
    sandboxes, signed_files, snapshots, template_blobs, template_builds, templates, viewer_assets, volume_files,
    volumes, warm_pools, webhooks, websocket, ApiError,
};
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
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/v1/sandboxes", post(sandboxes::create).get(sandboxes::list))
        .route("/v1/sandboxes/{id}", get(sandboxes::get).delete(sandboxes::kill))
        .route("/v1/sandboxes/{id}/timeout", post(sandboxes::set_timeout))
        .route("/v1/sandboxes/{id}/metrics", get(sandboxes::metrics))
        .route("/v1/sandboxes/{id}/host", post(ports::host))
        .route("/v1/sandboxes/{id}/ports/{port}/readiness", post(ports::readiness))
        .route("/v1/sandboxes/{id}/ports/{port}/preview-url", get(preview_urls::get_preview_url))
        .route("/v1/sandboxes/{id}/ports/{port}/signed-preview-url", post(preview_urls::signed_preview_url))
        .route("/v1/sandboxes/{id}/ports/{port}/preview-proxy-target", post(preview_urls::preview_proxy_target))
        .route("/v1/sandboxes/{id}/preview-urls", get(preview_urls::list))
        .route("/v1/sandboxes/{id}/preview-urls/{grant_id}", axum::routing::delete(preview_urls::revoke))
        .route("/v1/sandboxes/{id}/ws", get(websocket::sandbox_ws))
        .route("/v1/sandboxes/{id}/hibernate", post(snapshots::hibernate))
        .route("/v1/sandboxes/{id}/pause", post(snapshots::hibernate))
        .route("/v1/sandboxes/{id}/snapshots", post(snapshots::create))
        .route("/v1/sandboxes/{id}/resume", post(snapshots::resume))
        .route("/v1/sandboxes/{id}/fork", post(snapshots::fork))
        .route("/v1/sandboxes/{id}/lifecycle", get(lifecycle::sandbox))
        .route("/v1/sandboxes/{id}/lifecycle/ws", get(lifecycle::sandbox_ws))
        .route("/v1/snapshots", get(snapshots::list))
        .route("/v1/snapshots/{id}", get(snapshots::get).delete(snapshots::delete))
        .route("/v1/snapshots/{id}/lifecycle", get(lifecycle::snapshot))
        .route("/v1/lifecycle/events", get(lifecycle::global))
        .route("/v1/lifecycle/ws", get(lifecycle::global_ws))
        .route("/v1/lifecycle/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/v1/lifecycle/webhooks/{wid}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/v1/lifecycle/webhooks/{wid}/deliveries", get(webhooks::deliveries))
        .route("/v1/lifecycle/webhooks/{wid}/deliveries/{did}", get(webhooks::delivery))
        .route("/v1/monitor/ws", get(monitor::monitor_ws))
        .route("/v1/sandboxes/{id}/files/download-url", post(signed_files::download_url))
        .route("/v1/sandboxes/{id}/files/upload-url", post(signed_files::upload_url))
        .route("/v1/sandboxes/{id}/code/{*rest}", any(code::relay))
        .route("/v1/sandboxes/{id}/desktop/{*rest}", any(desktop::relay))
        .route("/v1/sandboxes/{id}/desktop/stream", get(desktop_stream::info))
        .route("/v1/sandboxes/{id}/desktop/stream/start", post(desktop_stream::start))
        .route("/v1/sandboxes/{id}/desktop/stream/stop", post(desktop_stream::stop))
        .route("/v1/sandboxes/{id}/desktop/stream/auth-key", get(desktop_stream::auth_key))
        .route("/v1/sandboxes/{id}/desktop/viewer", get(desktop_viewer::page))
        .route("/v1/sandboxes/{id}/desktop/viewer/ws", get(desktop_viewer::websocket))
        .route("/v1/desktop/viewer-assets/{*path}", get(viewer_assets::get))
        .route("/v1/sandboxes/{id}/{*rest}", any(relay::relay))
        .route(
            "/v1/signed/{token}",
            get(signed_files::signed_get)
                .put(signed_files::signed_put)
                .post(signed_files::signed_post)
                // Uploads stream to the sandbox's disk: no limit here (the multipart form would take one).
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/templates", get(templates::list).post(templates::legacy_create).layer(build_body_limit()))
        .route("/v1/templates/{id}", axum::routing::delete(templates::delete))
        .route("/v1/templates/{id}/builds", get(templates::builds))
        .route("/v1/templates/build", post(template_builds::build).layer(build_body_limit()))
        .route("/v1/templates/builds", post(template_builds::submit).layer(build_body_limit()))
        .route("/v1/templates/builds/{bid}", get(template_builds::status))
        .route("/v1/templates/builds/{bid}/logs", get(template_builds::logs))
        .route("/v1/templates/builds/{bid}/cancel", post(template_builds::cancel))
        .route("/v1/templates/builds/{bid}/retry", post(template_builds::retry))
        .route("/v1/templates/builds/{bid}/promote", post(template_builds::promote))
        .route("/v1/templates/validate", post(template_builds::validate_request).layer(build_body_limit()))
        .route("/v1/templates/plan", post(template_builds::plan).layer(build_body_limit()))
        .route("/v1/templates/blobs/preflight", post(template_blobs::preflight))
        .route("/v1/templates/blobs/{blob_id}", axum::routing::put(template_blobs::put))
        .route("/v1/templates/refs/{ref}", get(templates::get).delete(templates::delete))
        .route("/v1/templates/refs/{ref}/tags", get(templates::tags).post(templates::assign_tags))
        .route("/v1/templates/refs/{ref}/tags/{tag}", axum::routing::delete(templates::remove_tag))
        .route("/v1/templates/refs/{ref}/visibility", axum::routing::patch(templates::set_visibility))
        .route("/v1/templates/refs/{ref}/rename", post(templates::rename))
        .route("/v1/templates/refs/{ref}/aliases", get(templates::aliases))
        .route("/v1/templates/refs/{ref}/aliases/{alias}", axum::routing::delete(templates::remove_alias))
        .route("/v1/templates/refs/{ref}/builds", get(templates::builds))
        .route("/v1/templates/claims", post(templates::claim))
        .route("/v1/templates/claims/{token}", axum::routing::delete(templates::release_claim))
        .route("/v1/templates/namespaces/{slug}", get(templates::namespace))
        .route("/v1/template-warm-pools", get(warm_pools::list).post(warm_pools::create))
        .route(
            "/v1/template-warm-pools/{id}",
            get(warm_pools::get).patch(warm_pools::update).delete(warm_pools::delete),
        )
        .route("/v1/template-warm-pools/{id}/{action}", post(warm_pools::action))
        .route("/v1/volumes", post(volumes::create).get(volumes::list))
        .route("/v1/volumes/by-name/{name}", get(volumes::get_by_name))
        .route("/v1/volumes/{vid}", get(volumes::get).delete(volumes::delete))
        .route("/v1/volumes/{vid}/attachments", get(volumes::attachments))
        .route("/v1/volumes/{vid}/files/download-url", post(volume_files::download_url))
        .route("/v1/volumes/{vid}/files/upload-url", post(volume_files::upload_url))
        .route("/v1/volumes/{vid}/ws", get(volume_files::ws))
        .route("/v1/volumes/{vid}/{*rest}", any(volume_files::relay))
        .route("/v1/sandboxes/{id}/volumes", get(volumes::sandbox_volumes).post(volumes::sandbox_volume_attach))
        .route("/v1/sandboxes/{id}/volumes/{att}", axum::routing::delete(volumes::sandbox_volume_detach))
        .route("/v1/sandboxes/{id}/volumes/{att}/health", get(volumes::sandbox_volume_health))
        .route("/v1/sandboxes/{id}/volumes/{att}/remount", post(volumes::sandbox_volume_remount))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(super::limits::JSON_BODY_LIMIT))
        .layer(CorsLayer::permissive())
        // Outermost: requests to preview hosts go to the preview proxy before any API routing or CORS.
        .layer(axum::middleware::from_fn_with_state(state.clone(), proxy::dispatch))
        .with_state(state)
}

// Every other body read whole (JSON) is limited to `limits::JSON_BODY_LIMIT` by the router-wide layer;
// relayed bodies (file uploads, upload parts, blobs) are streams and take no limit.

/// Body limit of template build requests, which may carry their build context inline (base64).
fn build_body_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(64 << 20)
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
