//! `/files/*` JSON routes: translate each body into a resolved target and one file operation, run off
//! the async threads with the credentials of the request's user, and answer with the client's shapes.
//! Walks (list, find, search) answer with the `x-nullspace-truncated: true` header when a budget cut
//! them short.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use nullspace_types::files_api::{
    ExistsResponse, FileContent, FileEncoding, FileInfo, PathRequest, PermissionsRequest, ReadFileRequest,
    RenameRequest, WriteFileRequest,
};
use nullspace_types::files_ops_api::{ListQuery, PatternRequest, ReplaceRequest, ReplaceResult};

use super::extract::{JsonBody, QueryParams};
use crate::error::{GuestError, GuestResult};
use crate::files::as_user::run_as;
use crate::files::info::{file_info, parse_permissions};
use crate::files::search::Found;
use crate::files::target::resolve;
use crate::files::walk::{walk_slot, Budget, LIST_LIMITS, SEARCH_LIMITS, TRUNCATED_HEADER};
use crate::files::{list as listing, ops, replace, search};
use crate::state::Sandbox;

type Answer<T> = GuestResult<Json<T>>;

/// `POST /files/read`.
pub async fn read(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<ReadFileRequest>) -> Answer<FileContent> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let path = target.path;
    let bytes = run_as(target.user.as_ref(), move || ops::read(&path)).await?;
    let content = match body.encoding.unwrap_or_default() {
        FileEncoding::Utf8 => String::from_utf8_lossy(&bytes).into_owned(),
        FileEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(&bytes),
    };
    Ok(Json(FileContent { content }))
}

/// `POST /files/write`.
pub async fn write(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<WriteFileRequest>) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let content = match body.encoding.unwrap_or_default() {
        FileEncoding::Utf8 => body.content.into_bytes(),
        FileEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(body.content.trim())
            .map_err(|error| GuestError::invalid(format!("content is not valid base64: {error}")))?,
    };
    let (users, path) = (sandbox.users().clone(), target.path);
    Ok(Json(
        run_as(target.user.as_ref(), move || {
            ops::write(&path, &content)?;
            file_info(&path, &users)
        })
        .await?,
    ))
}

/// `POST /files/info`.
pub async fn info(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let (users, path) = (sandbox.users().clone(), target.path);
    Ok(Json(run_as(target.user.as_ref(), move || file_info(&path, &users)).await?))
}

/// `POST /files/exists`.
pub async fn exists(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<ExistsResponse> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let path = target.path;
    Ok(Json(ExistsResponse { exists: run_as(target.user.as_ref(), move || Ok(ops::exists(&path))).await? }))
}

/// `POST /files/remove`.
pub async fn remove(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Answer<serde_json::Value> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let path = target.path;
    run_as(target.user.as_ref(), move || ops::remove(&path)).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /files/rename`.
pub async fn rename(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<RenameRequest>) -> Answer<FileInfo> {
    let old = resolve(&sandbox, &body.old_path, body.user.as_deref())?;
    let new = resolve(&sandbox, &body.new_path, body.user.as_deref())?;
    let users = sandbox.users().clone();
    let (old, new_path) = (old.path, new.path);
    Ok(Json(
        run_as(new.user.as_ref(), move || {
            ops::rename(&old, &new_path)?;
            file_info(&new_path, &users)
        })
        .await?,
    ))
}

/// `POST /files/mkdir`.
pub async fn mkdir(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let (users, path) = (sandbox.users().clone(), target.path);
    Ok(Json(
        run_as(target.user.as_ref(), move || {
            ops::make_dir(&path)?;
            file_info(&path, &users)
        })
        .await?,
    ))
}

/// `POST /files/permissions`.
pub async fn permissions(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PermissionsRequest>,
) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let mode = parse_permissions(&body.permissions)?;
    let (users, path) = (sandbox.users().clone(), target.path);
    Ok(Json(
        run_as(target.user.as_ref(), move || {
            ops::set_mode(&path, mode)?;
            file_info(&path, &users)
        })
        .await?,
    ))
}

/// The JSON list of `found`, flagged with [`TRUNCATED_HEADER`] when a budget cut it short.
fn found_response<T: serde::Serialize>(found: Found<T>) -> Response {
    let mut response = Json(found.items).into_response();
    if found.truncated {
        response.headers_mut().insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// `GET /files?path=&depth=&user=`.
pub async fn list(State(sandbox): State<Sandbox>, QueryParams(query): QueryParams<ListQuery>) -> GuestResult<Response> {
    let path = query.path.filter(|path| !path.is_empty()).unwrap_or_else(|| "/".into());
    let target = resolve(&sandbox, &path, query.user.as_deref())?;
    let depth = query.depth.unwrap_or(1);
    let (users, path) = (sandbox.users().clone(), target.path);
    let _slot = walk_slot().await;
    let found =
        run_as(target.user.as_ref(), move || listing::list(&path, depth, &users, Budget::new(LIST_LIMITS))).await?;
    Ok(found_response(found))
}

/// `POST /files/find` (content).
pub async fn find(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PatternRequest>) -> GuestResult<Response> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let (path, pattern) = (target.path, body.pattern);
    let _slot = walk_slot().await;
    let found =
        run_as(target.user.as_ref(), move || search::find_content(&path, &pattern, Budget::new(SEARCH_LIMITS))).await?;
    Ok(found_response(found))
}

/// `POST /files/search` (names).
pub async fn search_names(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PatternRequest>,
) -> GuestResult<Response> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let (path, pattern) = (target.path, body.pattern);
    let _slot = walk_slot().await;
    let found =
        run_as(target.user.as_ref(), move || search::search_names(&path, &pattern, Budget::new(SEARCH_LIMITS))).await?;
    Ok(found_response(found))
}

/// `POST /files/replace`.
pub async fn replace_in_files(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<ReplaceRequest>,
) -> Answer<ReplaceResult> {
    let mut files = Vec::with_capacity(body.files.len());
    let mut user = None;
    for file in &body.files {
        let target = resolve(&sandbox, file, body.user.as_deref())?;
        user = target.user;
        files.push(target.path);
    }
    let dry_run = body.dry_run.unwrap_or(false);
    Ok(Json(
        run_as(user.as_ref(), move || replace::replace_in_files(&files, &body.pattern, &body.replacement, dry_run))
            .await?,
    ))
}
