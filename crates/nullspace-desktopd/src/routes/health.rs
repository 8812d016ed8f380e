//! `GET /health`: 200 while the X server runs and answers a round trip, 503 otherwise (the template's
//! readiness check).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{DesktopError, DesktopResult};
use crate::state::Shared;

/// The readiness probe.
pub async fn health(State(state): State<Shared>) -> DesktopResult<Json<Value>> {
    state.run(|x11| x11.ping()).await.map_err(|error| match error {
        DesktopError::NotReady { .. } => error,
        other => DesktopError::NotReady { message: format!("the X server does not answer: {}", other.message()) },
    })?;
    let settings = state.settings;
    Ok(Json(json!({
        "status": "ok",
        "display": settings.display_name(),
        "resolution": settings.geometry(),
        "dpi": settings.dpi,
        "window_manager": state.desktop.wm_ready.load(Ordering::SeqCst)
            && state.desktop.window_manager.as_ref().is_some_and(|wm| wm.alive()),
    })))
}
