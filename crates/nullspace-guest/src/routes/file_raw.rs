//! `GET /file` streams a file's bytes from disk and `PUT /file` streams a (possibly chunked) body into
//! place, both in constant memory; `POST /files/batch-write` writes the parts of a multipart body. Files
//! are opened (and created, renamed) with the credentials of the request's user.

use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::files_api::FileInfo;
use nullspace_types::files_ops_api::{BatchManifest, BatchWriteResponse, BatchWriteResult, RawFileQuery};

use super::extract::QueryParams;
use crate::error::{GuestError, GuestResult};
use crate::files::as_user::run_as;
use crate::files::bulk::read_chunks;
use crate::files::info::file_info;
use crate::files::target::resolve;
use crate::files::upload::write_stream;
use crate::state::Sandbox;

/// `GET /file?path=&user=`.
pub async fn download(
    State(sandbox): State<Sandbox>,
    QueryParams(query): QueryParams<RawFileQuery>,
) -> GuestResult<Response> {
    let target = resolve(&sandbox, &query.path, query.user.as_deref())?;
    let path = target.path.clone();
    let (file, metadata) = run_as(target.user.as_ref(), move || {
        let file = std::fs::File::open(&path).map_err(|error| GuestError::file_op("read", &path, error))?;
        let metadata = file.metadata().map_err(|error| GuestError::file_op("read", &path, error))?;
        Ok((file, metadata))
    })
    .await?;
    if metadata.is_dir() {
        return Err(GuestError::invalid(format!("{} is a directory; list it with GET /files?path=…", target.path)));
    }
    let mut response = Body::from_stream(read_chunks(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    if metadata.is_file() {
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(metadata.len()));
    }
    Ok(response)
}

/// `PUT /file?path=&user=`.
pub async fn upload(
    State(sandbox): State<Sandbox>,
    QueryParams(query): QueryParams<RawFileQuery>,
    body: Body,
) -> GuestResult<Json<FileInfo>> {
    let target = resolve(&sandbox, &query.path, query.user.as_deref())?;
    write_stream(&target.path, target.user.as_ref(), body.into_data_stream()).await?;
    let (users, path) = (sandbox.users().clone(), target.path);
    Ok(Json(run_as(target.user.as_ref(), move || file_info(&path, &users)).await?))
}

/// Largest `manifest` part of a batch write (the route takes bodies of any size: its file parts stream
/// to disk, and only the manifest is held in memory).
const MANIFEST_LIMIT: usize = 1 << 20;

/// The `manifest` part, read whole up to [`MANIFEST_LIMIT`].
async fn read_manifest(mut field: axum::extract::multipart::Field<'_>) -> GuestResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|error| GuestError::invalid(format!("invalid multipart body: {}", error.body_text())))?
    {
        if bytes.len() + chunk.len() > MANIFEST_LIMIT {
            return Err(GuestError::invalid(format!(
                "the manifest part is larger than {MANIFEST_LIMIT} bytes; send fewer files per batch"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `POST /files/batch-write`: part `manifest` first, then one part per file; results in manifest order,
/// HTTP 200 even when some files fail.
pub async fn batch_write(
    State(sandbox): State<Sandbox>,
    mut multipart: Multipart,
) -> GuestResult<Json<BatchWriteResponse>> {
    let bad_body = |error: axum::extract::multipart::MultipartError| {
        GuestError::invalid(format!("invalid multipart body: {}", error.body_text()))
    };
    let mut manifest: Option<BatchManifest> = None;
    let mut results: Vec<Option<BatchWriteResult>> = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad_body)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "manifest" {
            let bytes = read_manifest(field).await?;
            let parsed: BatchManifest = serde_json::from_slice(&bytes).map_err(|error| {
                GuestError::invalid(format!("invalid manifest: {error}; send {{\"files\":[{{\"path\",\"field\"}}]}}"))
            })?;
            results = vec![None; parsed.files.len()];
            manifest = Some(parsed);
            continue;
        }
        let Some(manifest) = &manifest else {
            return Err(GuestError::invalid("the manifest part must come before the file parts"));
        };
        let Some(index) = manifest.files.iter().position(|entry| entry.field == name) else {
            continue;
        };
        let entry = &manifest.files[index];
        let outcome = async {
            let target = resolve(&sandbox, &entry.path, manifest.user.as_deref())?;
            write_stream(&target.path, target.user.as_ref(), field).await?;
            let (users, path) = (sandbox.users().clone(), target.path);
            run_as(target.user.as_ref(), move || file_info(&path, &users)).await
        }
        .await;
        results[index] = Some(match outcome {
            Ok(info) => {
                BatchWriteResult { status: "success".into(), path: entry.path.clone(), info: Some(info), error: None }
            }
            Err(error) => BatchWriteResult {
                status: "error".into(),
                path: entry.path.clone(),
                info: None,
                error: Some(error.message()),
            },
        });
    }
    let Some(manifest) = manifest else {
        return Err(GuestError::invalid("missing the manifest part; send it first as field \"manifest\""));
    };
    let results = results
        .into_iter()
        .zip(&manifest.files)
        .map(|(result, entry)| {
            result.unwrap_or_else(|| BatchWriteResult {
                status: "error".into(),
                path: entry.path.clone(),
                info: None,
                error: Some(format!("no part named {:?} in the request", entry.field)),
            })
        })
        .collect();
    Ok(Json(BatchWriteResponse { results }))
}
