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
    // Whether hibernate, resume and fork keep running processes and memory (runsc), or only files.
    let memory_snapshots = state.control.node().memory_snapshots();
    let status_text = if ready { "ok" } else { "starting" };
    let body =
        json!({ "status": status_text, "ready": ready, "runtime": runtime, "memory_snapshots": memory_snapshots });
    (status, Json(body))
}
