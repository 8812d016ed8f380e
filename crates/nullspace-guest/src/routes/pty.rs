//! PTY REST routes (rest.md §3): list, describe, kill and resize sessions opened over the WebSocket.

use axum::extract::State;
use axum::Json;
use nullspace_types::pty_api::{PtyResizeRequest, PtySessionInfo};
use serde_json::{json, Value};

use super::extract::{JsonBody, PathParams};
use crate::error::{GuestError, GuestResult};
use crate::pty::table::check_size;
use crate::state::Sandbox;

/// `GET /pty`.
pub async fn list(State(sandbox): State<Sandbox>) -> Json<Vec<PtySessionInfo>> {
    Json(sandbox.ptys().list())
}

/// `GET /pty/{session_id}`.
pub async fn info(
    State(sandbox): State<Sandbox>,
    PathParams(session_id): PathParams<String>,
) -> GuestResult<Json<PtySessionInfo>> {
    Ok(Json(sandbox.ptys().get(&session_id)?.info()))
}

/// `DELETE /pty/{session_id}`.
pub async fn kill(
    State(sandbox): State<Sandbox>,
    PathParams(session_id): PathParams<String>,
) -> GuestResult<Json<Value>> {
    sandbox.ptys().get(&session_id)?.kill();
    Ok(Json(json!({"session_id": session_id, "killed": true})))
}

/// `POST /pty/{session_id}/resize`.
pub async fn resize(
    State(sandbox): State<Sandbox>,
    PathParams(session_id): PathParams<String>,
    JsonBody(request): JsonBody<PtyResizeRequest>,
) -> GuestResult<Json<PtySessionInfo>> {
    check_size(request.cols, request.rows)?;
    let session = sandbox.ptys().get(&session_id)?;
    session
        .resize(request.cols, request.rows)
        .map_err(|error| GuestError::Internal { context: format!("cannot resize session {session_id}: {error}") })?;
    Ok(Json(session.info()))
}
