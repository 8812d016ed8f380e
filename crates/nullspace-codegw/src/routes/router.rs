//! The route table of the gateway: the code API without its `/v1/sandboxes/{id}/code` prefix.

use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::Router;

use super::{artifacts, contexts, execute, health, runs};
use crate::error::GatewayError;
use crate::state::Shared;

/// Every route the gateway serves.
pub fn router(gateway: Shared) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/execute", post(execute::execute))
        .route("/contexts", post(contexts::create).get(contexts::list))
        .route("/contexts/{id}", axum::routing::delete(contexts::remove))
        .route("/contexts/{id}/restart", post(contexts::restart))
        .route("/contexts/{id}/interrupt", post(contexts::interrupt))
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/artifacts", get(artifacts::list))
        .route("/artifacts/{id}", get(artifacts::get).delete(artifacts::delete))
        .route("/artifacts/{id}/download", get(artifacts::download))
        .route("/artifacts/{id}/preview", get(artifacts::preview))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(gateway)
}

async fn not_found(method: Method, uri: Uri) -> GatewayError {
    GatewayError::UnknownRoute { method: method.to_string(), path: uri.path().to_owned() }
}
