//! Volume routes: create, list, get (by id or name), delete, attachments, and a sandbox's volumes.
//! Handlers parse, call `control`, and render `VolumeInfo` / `VolumeAttachment`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::volume::{CreateVolumeRequest, VolumeAttachment, VolumeInfo};
use nullspace_types::ErrorCode;
use serde_json::Value;

use super::auth::Authenticated;
use super::sandboxes::{project, FieldsQuery};
use super::{ApiError, AppState};
use crate::control::volumes::attachment;
use crate::store::SandboxRecord;

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `metadata.volume_attachments` of a sandbox's wire object (nothing when it mounts no volume).
pub fn attachments_value(record: &SandboxRecord) -> Option<Value> {
    (!record.volumes.is_empty())
        .then(|| to_value(&record.volumes.iter().map(|m| attachment(record, m)).collect::<Vec<_>>()))
}

/// `POST /v1/volumes`.
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<VolumeInfo>), ApiError> {
    let request: CreateVolumeRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!("invalid volume create body (expected {{\"name\": ...}}): {error}"))
    })?;
    let info = state.control.create_volume(&tenant, request.name.trim()).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /v1/volumes`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let infos = state.control.list_volumes(&tenant).await?;
    let fields = query.fields();
    Ok(Json(Value::Array(infos.iter().map(|info| project(to_value(info), fields)).collect())))
}

/// `GET /v1/volumes/{vid}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = state.control.get_volume(&tenant, &id).await?;
    let info = state.control.volume_info(&record).await?;
    Ok(Json(project(to_value(&info), query.fields())))
}

/// `GET /v1/volumes/by-name/{name}`; a miss is a 404 `not_found`.
pub async fn get_by_name(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = state.control.get_volume_by_name(&tenant, &name).await?;
    let info = state.control.volume_info(&record).await?;
    Ok(Json(project(to_value(&info), query.fields())))
}

/// `DELETE /v1/volumes/{vid}`.
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.control.delete_volume(&tenant, &id).await?;
    Ok(Json(serde_json::json!({"id": id, "deleted": true})))
}

/// `GET /v1/volumes/{vid}/attachments`.
pub async fn attachments(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<VolumeAttachment>>, ApiError> {
    Ok(Json(state.control.volume_attachments(&tenant, &id).await?))
}

/// `GET /v1/sandboxes/{id}/volumes`.
pub async fn sandbox_volumes(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<VolumeAttachment>>, ApiError> {
    let record = state.control.get(&tenant, &id).await?;
    Ok(Json(record.volumes.iter().map(|m| attachment(&record, m)).collect()))
}

/// `GET /v1/sandboxes/{id}/volumes/{att}/health`: the attachment as recorded.
pub async fn sandbox_volume_health(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Json<VolumeAttachment>, ApiError> {
    let record = state.control.get(&tenant, &id).await?;
    record.volumes.iter().find(|m| m.attachment_id == attachment_id).map(|m| Json(attachment(&record, m))).ok_or_else(
        || ApiError::new(ErrorCode::NotFound, format!("sandbox {id} has no volume attachment {attachment_id}")),
    )
}

/// Attach, detach and remount of a running sandbox: not available; mount volumes at create.
pub async fn runtime_attach_unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::NotImplemented,
        "attaching, detaching or remounting volumes on a running sandbox is not implemented on this server; \
         pass `volumes=[...]` when creating the sandbox instead",
    )
}
