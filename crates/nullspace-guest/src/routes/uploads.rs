//! Resumable upload routes (rest.md §4a, sandbox variant) and `GET /archive` (directory downloads).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::upload_api::{
    ArchiveQuery, CompleteUploadRequest, CompleteUploadResponse, CreateUploadRequest, CreateUploadResponse,
    UploadSessionInfo,
};
use serde_json::{json, Value};

use super::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{GuestError, GuestResult};
use crate::files::archive;
use crate::files::as_user::run_as;
use crate::files::target::resolve;
use crate::state::Sandbox;
use crate::uploads::{complete, parts};

/// Header carrying a part's sha256.
pub const PART_SHA256_HEADER: &str = "x-nullspace-part-sha256";

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// `POST /uploads` (header `Idempotency-Key`: the same key answers with the same session).
pub async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateUploadRequest>,
) -> GuestResult<Json<CreateUploadResponse>> {
    let target = resolve(&sandbox, &request.target_path, request.user.as_deref())?;
    let key = header_text(&headers, "idempotency-key");
    let uploads = sandbox.uploads().clone();
    let record = crate::files::upload::run_blocking(move || uploads.create(&request, target.path, key)).await?;
    Ok(Json(CreateUploadResponse { session: record.info(sandbox.uploads().limits()) }))
}

/// `GET /uploads/{upload_id}`.
pub async fn get(
    State(sandbox): State<Sandbox>,
    PathParams(upload_id): PathParams<String>,
) -> GuestResult<Json<UploadSessionInfo>> {
    let record = sandbox.uploads().get(&upload_id)?;
    Ok(Json(record.info(sandbox.uploads().limits())))
}

/// `PUT /uploads/{upload_id}/parts/{n}` (0-based; raw body).
pub async fn put_part(
    State(sandbox): State<Sandbox>,
    PathParams((upload_id, n)): PathParams<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> GuestResult<Json<UploadSessionInfo>> {
    let declared = header_text(&headers, header::CONTENT_LENGTH.as_str()).and_then(|length| length.parse().ok());
    let sha256 = header_text(&headers, PART_SHA256_HEADER);
    let uploads = sandbox.uploads();
    let mut stream = body.into_data_stream();
    match parts::receive(uploads, &upload_id, n, declared, sha256, &mut stream).await {
        Ok(record) => Ok(Json(record.info(uploads.limits()))),
        Err(error) => {
            // A part refused before (or while) its body was read: read the rest the client is still
            // sending, so that it gets this answer instead of a connection reset mid-write.
            drain(&mut stream, uploads.limits().max_part_bytes.saturating_mul(2)).await;
            Err(error)
        }
    }
}

/// Reads and discards what is left of `stream`: at most `limit` bytes, for at most [`DRAIN_TIMEOUT`].
async fn drain<S, E>(stream: &mut S, limit: u64)
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    use futures::StreamExt;
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

/// Longest time spent reading the rest of a refused part.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `POST /uploads/{upload_id}/complete` (optional body `{whole_checksum_sha256}`).
pub async fn finish(
    State(sandbox): State<Sandbox>,
    PathParams(upload_id): PathParams<String>,
    body: axum::body::Bytes,
) -> GuestResult<Json<CompleteUploadResponse>> {
    let request: CompleteUploadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteUploadRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            GuestError::invalid(format!(
                "invalid json body: {error}; send {{\"whole_checksum_sha256\": \"…\"}} or nothing"
            ))
        })?
    };
    let uploads = sandbox.uploads().clone();
    let response = complete::complete(&sandbox, &uploads, &upload_id, request.whole_checksum_sha256).await?;
    Ok(Json(response))
}

/// `DELETE /uploads/{upload_id}`.
pub async fn abort(
    State(sandbox): State<Sandbox>,
    PathParams(upload_id): PathParams<String>,
) -> GuestResult<Json<Value>> {
    let record = sandbox.uploads().abort(&upload_id)?;
    Ok(Json(json!({"upload_id": record.upload_id, "status": record.status})))
}

/// `GET /archive?path=&user=`: the directory as a tar stream.
pub async fn download_archive(
    State(sandbox): State<Sandbox>,
    QueryParams(query): QueryParams<ArchiveQuery>,
) -> GuestResult<Response> {
    let target = resolve(&sandbox, &query.path, query.user.as_deref())?;
    let path = target.path.clone();
    let metadata = run_as(target.user.as_ref(), move || {
        std::fs::metadata(&path).map_err(|error| GuestError::file_op("archive", &path, error))
    })
    .await?;
    if !metadata.is_dir() {
        return Err(GuestError::invalid(format!("{} is not a directory; download files with GET /file", target.path)));
    }
    let mut receiver = archive::stream(target.path, target.user.as_ref()).await?;
    let chunks = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let mut response = Body::from_stream(chunks).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
    Ok(response)
}
