//! `GET /health`: protocol version and sandbox id, for the node's readiness wait.

use axum::extract::State;
use axum::Json;
use nullspace_types::guest::{GuestHealth, GUEST_PROTOCOL_VERSION};

use crate::state::Sandbox;

/// `GET /health`.
pub async fn health(State(sandbox): State<Sandbox>) -> Json<GuestHealth> {
    Json(GuestHealth { protocol_version: GUEST_PROTOCOL_VERSION, sandbox_id: sandbox.id().to_owned() })
}
