//! `/files/*` JSON routes: translate each body into a resolved target and one file operation, run off
//! the async threads, and answer with the client's shapes.

use axum::extract::State;
use axum::Json;
use base64::Engine;
use nullspace_types::files_api::{
    ExistsResponse, FileContent, FileEncoding, FileInfo, PathRequest, PermissionsRequest, ReadFileRequest,
    RenameRequest, WriteFileRequest,
};
use nullspace_types::files_ops_api::{ListQuery, PatternRequest, ReplaceRequest, ReplaceResult, SearchMatch};

use super::extract::{JsonBody, QueryParams};
use crate::error::{GuestError, GuestResult};
use crate::files::info::{file_info, parse_permissions};
use crate::files::target::resolve;
use crate::files::upload::run_blocking;
use crate::files::{list as listing, ops, replace, search};
use crate::state::Sandbox;

type Answer<T> = GuestResult<Json<T>>;

/// `POST /files/read`.
pub async fn read(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<ReadFileRequest>) -> Answer<FileContent> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let bytes = run_blocking(move || ops::read(&target.path)).await?;
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
    let users = sandbox.users().clone();
    Ok(Json(
        run_blocking(move || {
            ops::write(&target.path, &content, target.user.as_ref())?;
            file_info(&target.path, &users)
        })
        .await?,
    ))
}

/// `POST /files/info`.
pub async fn info(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let users = sandbox.users().clone();
    Ok(Json(run_blocking(move || file_info(&target.path, &users)).await?))
}

/// `POST /files/exists`.
pub async fn exists(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<ExistsResponse> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    Ok(Json(ExistsResponse { exists: run_blocking(move || Ok(ops::exists(&target.path))).await? }))
}

/// `POST /files/remove`.
pub async fn remove(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PathRequest>,
) -> Answer<serde_json::Value> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    run_blocking(move || ops::remove(&target.path)).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /files/rename`.
pub async fn rename(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<RenameRequest>) -> Answer<FileInfo> {
    let old = resolve(&sandbox, &body.old_path, body.user.as_deref())?;
    let new = resolve(&sandbox, &body.new_path, body.user.as_deref())?;
    let users = sandbox.users().clone();
    Ok(Json(
        run_blocking(move || {
            ops::rename(&old.path, &new.path, new.user.as_ref())?;
            file_info(&new.path, &users)
        })
        .await?,
    ))
}

/// `POST /files/mkdir`.
pub async fn mkdir(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<PathRequest>) -> Answer<FileInfo> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    let users = sandbox.users().clone();
    Ok(Json(
        run_blocking(move || {
            ops::make_dir(&target.path, target.user.as_ref())?;
            file_info(&target.path, &users)
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
    let users = sandbox.users().clone();
    Ok(Json(
        run_blocking(move || {
            ops::set_mode(&target.path, mode)?;
            file_info(&target.path, &users)
        })
        .await?,
    ))
}

/// `GET /files?path=&depth=&user=`.
pub async fn list(State(sandbox): State<Sandbox>, QueryParams(query): QueryParams<ListQuery>) -> Answer<Vec<FileInfo>> {
    let path = query.path.filter(|path| !path.is_empty()).unwrap_or_else(|| "/".into());
    let target = resolve(&sandbox, &path, query.user.as_deref())?;
    let depth = query.depth.unwrap_or(1);
    let users = sandbox.users().clone();
    Ok(Json(run_blocking(move || listing::list(&target.path, depth, &users)).await?))
}

/// `POST /files/find` (content).
pub async fn find(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PatternRequest>,
) -> Answer<Vec<SearchMatch>> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    Ok(Json(run_blocking(move || search::find_content(&target.path, &body.pattern)).await?))
}

/// `POST /files/search` (names).
pub async fn search_names(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<PatternRequest>,
) -> Answer<Vec<String>> {
    let target = resolve(&sandbox, &body.path, body.user.as_deref())?;
    Ok(Json(run_blocking(move || search::search_names(&target.path, &body.pattern)).await?))
}

/// `POST /files/replace`.
pub async fn replace_in_files(
    State(sandbox): State<Sandbox>,
    JsonBody(body): JsonBody<ReplaceRequest>,
) -> Answer<ReplaceResult> {
    let mut files = Vec::with_capacity(body.files.len());
    let mut owner = None;
    for file in &body.files {
        let target = resolve(&sandbox, file, body.user.as_deref())?;
        owner = target.user;
        files.push(target.path);
    }
    let dry_run = body.dry_run.unwrap_or(false);
    Ok(Json(
        run_blocking(move || {
            replace::replace_in_files(&files, &body.pattern, &body.replacement, dry_run, owner.as_ref())
        })
        .await?,
    ))
}
