//! Recording routes: start, stop, list, get, delete and download (the MP4 streamed from its file).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::desktop_api::{RecordingInfo, StartRecordingRequest, StopRecordingRequest};
use serde_json::{json, Value};

use super::extract::{JsonBody, PathParams};
use crate::error::{DesktopError, DesktopResult};
use crate::state::Shared;

/// `POST /recording/start`.
pub async fn start(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<StartRecordingRequest>,
) -> DesktopResult<Json<RecordingInfo>> {
    let size = state.run(|x11| x11.screen_size()).await?;
    state.recorder.start(body.name, size).await.map(Json)
}

/// `POST /recording/stop`.
pub async fn stop(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<StopRecordingRequest>,
) -> DesktopResult<Json<RecordingInfo>> {
    if body.recording_id.trim().is_empty() {
        return Err(DesktopError::invalid("recording_id is required"));
    }
    state.recorder.stop(&body.recording_id).await.map(Json)
}

/// `GET /recording`.
pub async fn list(State(state): State<Shared>) -> DesktopResult<Json<Vec<RecordingInfo>>> {
    state.recorder.list().await.map(Json)
}

/// `GET /recording/{id}`.
pub async fn get(
    State(state): State<Shared>,
    PathParams(id): PathParams<String>,
) -> DesktopResult<Json<RecordingInfo>> {
    state.recorder.get(&id).await.map(Json)
}

/// `DELETE /recording/{id}`.
pub async fn delete(State(state): State<Shared>, PathParams(id): PathParams<String>) -> DesktopResult<Json<Value>> {
    state.recorder.delete(&id).await?;
    Ok(Json(json!({"id": id, "deleted": true})))
}

/// `GET /recording/{id}/download`.
pub async fn download(State(state): State<Shared>, PathParams(id): PathParams<String>) -> DesktopResult<Response> {
    let (info, path) = state.recorder.file(&id).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|source| DesktopError::storage(format!("open {}", path.display()), source))?;
    let length = file.metadata().await.map(|m| m.len()).unwrap_or_default();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "video/mp4".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.mp4\"", info.id)),
        ],
        body,
    )
        .into_response())
}
