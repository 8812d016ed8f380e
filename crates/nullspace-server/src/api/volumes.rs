//! Volume routes: create, list, get (by id or name), delete, attachments, and a sandbox's volumes
//! (list, attach, detach, health, remount).
//! Handlers parse, call `control`, and render `VolumeInfo` / `VolumeAttachment`.

use super::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::volume::{CreateVolumeRequest, VolumeAttachment, VolumeInfo, VolumeMountRequest};
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
    super::extract::Body(body): super::extract::Body,
) -> Result<(StatusCode, Json<VolumeInfo>), ApiError> {
    let request: CreateVolumeRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!("invalid volume create body (expected {{\"name\": ...}}): {error}"))
    })?;
    let info = state.control.create_volume(&tenant, request.name.trim(), request.max_size_bytes).await?;
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

/// `POST /v1/sandboxes/{id}/volumes`: mounts a volume into the running sandbox.
pub async fn sandbox_volume_attach(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<VolumeAttachment>, ApiError> {
    let request: VolumeMountRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!(
            "invalid volume attach body (expected {{\"ref\": ..., \"mount_path\": ..., \"read_only\": ..., \"subpath\": ...}}): {error}"
        ))
    })?;
    Ok(Json(state.control.attach_volume(&tenant, &id, &request).await?))
}

/// `DELETE /v1/sandboxes/{id}/volumes/{att}`: unmounts the attachment; answers it `released`.
pub async fn sandbox_volume_detach(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Json<VolumeAttachment>, ApiError> {
    Ok(Json(state.control.detach_volume(&tenant, &id, &attachment_id).await?))
}

/// `GET /v1/sandboxes/{id}/volumes/{att}/health`: the attachment with its mount probed now.
pub async fn sandbox_volume_health(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Json<VolumeAttachment>, ApiError> {
    Ok(Json(state.control.volume_health(&tenant, &id, &attachment_id).await?))
}

/// `POST /v1/sandboxes/{id}/volumes/{att}/remount`: mounts the attachment again in place.
pub async fn sandbox_volume_remount(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Json<VolumeAttachment>, ApiError> {
    Ok(Json(state.control.remount_volume(&tenant, &id, &attachment_id).await?))
}
