//! `…/contexts` routes: create (kernel started before answering), list, remove, restart, interrupt.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use nullspace_types::code_api::{CodeContext, CreateContextRequest};
use serde_json::{json, Value};

use super::extract::PathParams;
use crate::error::{GatewayError, GatewayResult};
use crate::state::Shared;

/// `POST /contexts`.
pub async fn create(State(gateway): State<Shared>, body: Bytes) -> GatewayResult<Json<CodeContext>> {
    // The body is optional (`{}` or nothing means python in the default cwd).
    let request: CreateContextRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateContextRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| GatewayError::invalid(format!("invalid json body: {error}")))?
    };
    let context = gateway.create_context(request.language.as_deref(), request.cwd.as_deref())?;
    if let Err(error) = context.kernel().await {
        let _ = gateway.remove_context(&context.info.id).await;
        return Err(error);
    }
    Ok(Json(context.info.clone()))
}

/// `GET /contexts`.
pub async fn list(State(gateway): State<Shared>) -> Json<Vec<CodeContext>> {
    Json(gateway.list_contexts())
}

/// `DELETE /contexts/{id}`.
pub async fn remove(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Json<Value>> {
    gateway.remove_context(&id).await?;
    Ok(Json(json!({"id": id, "removed": true})))
}

/// `POST /contexts/{id}/restart`.
pub async fn restart(
    State(gateway): State<Shared>,
    PathParams(id): PathParams<String>,
) -> GatewayResult<Json<CodeContext>> {
    let context = gateway.context(&id)?;
    context.restart().await?;
    Ok(Json(context.info.clone()))
}

/// `POST /contexts/{id}/interrupt`.
pub async fn interrupt(
    State(gateway): State<Shared>,
    PathParams(id): PathParams<String>,
) -> GatewayResult<Json<CodeContext>> {
    let context = gateway.context(&id)?;
    context.interrupt().await;
    Ok(Json(context.info.clone()))
}
