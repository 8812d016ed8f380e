//! `…/artifacts` routes: list with filters and cursor, get, download and preview (the bytes), delete.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::code_api::{Artifact, ListArtifactsQuery, Page};
use serde_json::{json, Value};

use super::extract::{PathParams, QueryParams};
use crate::error::GatewayResult;
use crate::state::Shared;

/// `GET /artifacts`.
pub async fn list(
    State(gateway): State<Shared>,
    QueryParams(query): QueryParams<ListArtifactsQuery>,
) -> GatewayResult<Json<Page<Artifact>>> {
    gateway.artifacts.list(&query).map(Json)
}

/// `GET /artifacts/{id}`.
pub async fn get(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Json<Artifact>> {
    gateway.artifacts.get(&id).map(Json)
}

/// `DELETE /artifacts/{id}`.
pub async fn delete(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Json<Value>> {
    gateway.artifacts.delete(&id)?;
    Ok(Json(json!({"id": id, "deleted": true})))
}

/// `GET /artifacts/{id}/download`: the bytes as an attachment.
pub async fn download(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Response> {
    let (artifact, bytes) = gateway.artifacts.read(&id)?;
    let disposition = format!("attachment; filename=\"{}\"", artifact.name.replace('"', ""));
    Ok(([(header::CONTENT_TYPE, artifact.mime_type), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}

/// `GET /artifacts/{id}/preview`: the bytes, to show inline.
pub async fn preview(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Response> {
    let (artifact, bytes) = gateway.artifacts.read(&id)?;
    Ok(([(header::CONTENT_TYPE, artifact.mime_type), (header::CONTENT_DISPOSITION, "inline".to_owned())], bytes)
        .into_response())
}
