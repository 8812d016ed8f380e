//! The route table of guestd: the sandbox-scoped public API without its `/v1/sandboxes/{id}` prefix.

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post, put};
use axum::Router;

use super::{config, exec, file_raw, files, health, processes, pty, uploads};
use crate::error::GuestError;
use crate::state::Sandbox;
use crate::{tunnel, ws};

/// Largest JSON body (a base64 file write included).
const JSON_BODY_LIMIT: usize = 256 * 1024 * 1024;

/// Every route guestd serves.
pub fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/config", put(config::put))
        .route("/exec", post(exec::exec))
        .route("/processes", get(processes::list))
        .route("/processes/{pid}/kill", post(processes::kill_process))
        .route("/processes/{pid}/stdin", post(processes::stdin))
        .route("/processes/{pid}/logs", get(processes::logs))
        .route("/files", get(files::list))
        .route("/files/read", post(files::read))
        .route("/files/write", post(files::write))
        .route("/files/info", post(files::info))
        .route("/files/exists", post(files::exists))
        .route("/files/remove", post(files::remove))
        .route("/files/rename", post(files::rename))
        .route("/files/mkdir", post(files::mkdir))
        .route("/files/permissions", post(files::permissions))
        .route("/files/find", post(files::find))
        .route("/files/search", post(files::search_names))
        .route("/files/replace", post(files::replace_in_files))
        .route("/files/batch-write", post(file_raw::batch_write).layer(DefaultBodyLimit::disable()))
        .route("/file", get(file_raw::download).put(file_raw::upload))
        .route("/archive", get(uploads::download_archive))
        .route("/pty", get(pty::list))
        .route("/pty/{session_id}", get(pty::info).delete(pty::kill))
        .route("/pty/{session_id}/resize", post(pty::resize))
        .route("/uploads", post(uploads::create))
        .route("/uploads/{upload_id}", get(uploads::get).delete(uploads::abort))
        .route("/uploads/{upload_id}/parts/{n}", put(uploads::put_part))
        .route("/uploads/{upload_id}/complete", post(uploads::finish))
        .route("/ws", get(ws::upgrade))
        .route("/tcp/{port}", get(tunnel::tunnel))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(sandbox)
}

async fn not_found(method: Method, uri: Uri) -> GuestError {
    GuestError::UnknownRoute { method: method.to_string(), path: uri.path().to_owned() }
}
