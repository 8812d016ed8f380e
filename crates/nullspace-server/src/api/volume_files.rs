//! Volume files without a sandbox: `/v1/volumes/{vid}/files…`, `/uploads…` and `/ws` (file watches)
//! are relayed to the volume's own guest (the same guestd file implementation sandboxes use, confined to
//! the volume), exactly like the sandbox routes; signed URLs name the volume in their claim.

use super::extract::Path;
use axum::extract::{RawQuery, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use nullspace_types::ErrorCode;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::relay::forward;
use super::signed_files::{mint, Target};
use super::{ApiError, AppState};
use crate::signing::FileOperation;

/// First path segments a volume guest serves to clients (never exec, processes or PTYs).
const VOLUME_ROUTES: &[&str] = &["files", "uploads"];

/// `ANY /v1/volumes/{vid}/{*rest}` for the file and upload routes.
pub async fn relay(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((vid, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let first = rest.split('/').next().unwrap_or_default();
    if !VOLUME_ROUTES.contains(&first) {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no route for /v1/volumes/{{vid}}/{rest}")));
    }
    let guest = state.control.volume_guest(&tenant, &vid).await?;
    let (parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let response = forward(&guest, &vid, parts.method, &path_and_query, &parts.headers, body).await?;
    if first == "uploads" {
        return volume_session_shape(response).await;
    }
    Ok(response)
}

/// Upload sessions of volumes have no `user` and name their staging quota `staging_quota_bytes`; the
/// guest answers the sandbox shape, so its (small, JSON) session answers are reshaped.
async fn volume_session_shape(response: Response) -> Result<Response, ApiError> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20).await.map_err(|error| {
        ApiError::new(ErrorCode::Internal, format!("reading the volume guest's answer failed: {error}"))
    })?;
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, axum::body::Body::from(bytes)));
    };
    fn reshape(session: &mut Value) {
        let Some(object) = session.as_object_mut() else { return };
        object.remove("user");
        if let Some(limits) = object.get_mut("limits").and_then(Value::as_object_mut) {
            if let Some(quota) = limits.remove("sandbox_staging_quota_bytes") {
                limits.insert("staging_quota_bytes".into(), quota);
            }
        }
    }
    if parts.status.is_success() {
        if let Some(session) = value.get_mut("session") {
            reshape(session);
        } else if value.get("upload_id").is_some() {
            reshape(&mut value);
        }
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::TRANSFER_ENCODING);
    Ok(Response::from_parts(parts, axum::body::Body::from(body)))
}

/// Only file watches may be opened on a volume's stream.
fn is_file_watch(text: &str) -> bool {
    serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        == Some("file_watch".to_owned())
}

/// `GET /v1/volumes/{vid}/ws` (upgrade): file watches.
pub async fn ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(vid): Path<String>,
    RawQuery(query): RawQuery,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Result<Response, ApiError> {
    let guest = state.control.volume_guest(&tenant, &vid).await?;
    let path = match query {
        Some(query) => format!("/ws?{query}"),
        None => "/ws".to_owned(),
    };
    let guest_socket = guest.websocket(&path).await.map_err(|error| {
        tracing::warn!(volume = %vid, error = %crate::error_chain(&error), "volume guest websocket failed");
        ApiError::new(ErrorCode::Internal, format!("volume {vid} did not accept the stream; retry"))
    })?;
    Ok(super::websocket::bounded(upgrade, super::limits::WS_MESSAGE_LIMIT)
        .on_upgrade(move |client| super::websocket::pump(client, guest_socket, is_file_watch)))
}

/// `POST /v1/volumes/{vid}/files/download-url`.
pub async fn download_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(vid): Path<String>,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let (url, _token) =
        mint(&state, &tenant.id, Target::Volume(&vid), &headers, &body, FileOperation::Download).await?;
    Ok(Json(json!({ "url": url })))
}

/// `POST /v1/volumes/{vid}/files/upload-url`.
pub async fn upload_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(vid): Path<String>,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let (url, token) = mint(&state, &tenant.id, Target::Volume(&vid), &headers, &body, FileOperation::Upload).await?;
    Ok(Json(json!({ "url": url, "token": token })))
}
