//! `GET /healthz`: 200 once the server can create sandboxes (base template built), 503 before.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// Readiness of the server.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let ready = state.control.node().templates().get("base").is_some();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let runtime = state.control.node().runtime_kind().as_str();
    (status, Json(json!({ "status": if ready { "ok" } else { "starting" }, "ready": ready, "runtime": runtime })))
}
