//! Snapshot routes: hibernate, snapshot, resume, fork, and `/v1/snapshots`.

use super::extract::{json_object, Body, Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::lifecycle::SnapshotInfo;
use nullspace_types::sandbox::SandboxInfo;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::sandboxes::{metadata_filter, sandbox_info};
use super::{ApiError, AppState};
use crate::control::create_fields;
use crate::store::SnapshotRecord;

fn snapshot_info(snapshot: &SnapshotRecord) -> SnapshotInfo {
    SnapshotInfo {
        id: snapshot.id.clone(),
        sandbox_id: snapshot.sandbox_id.clone(),
        size_bytes: snapshot.size_bytes.max(1),
        created_at: snapshot.created_at.clone(),
        metadata: snapshot.metadata.clone(),
    }
}

/// `POST /v1/sandboxes/{id}/hibernate`.
pub async fn hibernate(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SnapshotInfo>, ApiError> {
    Ok(Json(snapshot_info(&state.control.hibernate(&tenant, &id).await?)))
}

/// `POST /v1/sandboxes/{id}/snapshots`.
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(snapshot_info(&state.control.snapshot(&tenant, &id).await?))))
}

/// `POST /v1/sandboxes/{snapshot_id}/resume` (a paused sandbox id works too); no body.
pub async fn resume(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<SandboxInfo>, ApiError> {
    create_fields::no_body("resume", json_object(&body, "resume")?.as_ref())?;
    Ok(Json(sandbox_info(&state.control.resume(&tenant, &id).await?)))
}

/// `POST /v1/sandboxes/{id}/fork`; no body.
pub async fn fork(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<SandboxInfo>), ApiError> {
    create_fields::no_body("fork", json_object(&body, "fork")?.as_ref())?;
    Ok((StatusCode::CREATED, Json(sandbox_info(&state.control.fork(&tenant, &id).await?))))
}

/// Query of `GET /v1/snapshots`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    sandbox_id: Option<String>,
    metadata: Option<String>,
}

/// `GET /v1/snapshots`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<SnapshotInfo>>, ApiError> {
    let metadata = metadata_filter(query.metadata.as_deref())?;
    let sandbox_id = query.sandbox_id.as_deref().filter(|id| !id.is_empty());
    let snapshots = state.control.list_snapshots(&tenant, sandbox_id, &metadata).await?;
    Ok(Json(snapshots.iter().map(snapshot_info).collect()))
}

/// `GET /v1/snapshots/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SnapshotInfo>, ApiError> {
    Ok(Json(snapshot_info(&state.control.get_snapshot(&tenant, &id).await?)))
}

/// `DELETE /v1/snapshots/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.control.delete_snapshot(&tenant, &id).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}
