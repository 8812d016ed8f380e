//! Entry points of the fuzz targets in `fuzz/` (feature `fuzzing`, never in a release build): each
//! runs one of guestd's parsers of untrusted input exactly as a request would, without a sandbox
//! around it, and returns what the target checks. Errors come back as their protocol envelope.

use std::fs::File;
use std::path::Path;

use nullspace_types::upload_api::{
    CreateUploadRequest, UploadConflict, UploadKind, UploadLimits, UploadSourceKind, UploadStatus,
};
use nullspace_types::ErrorBody;

use crate::error::GuestError;
use crate::uploads::record::{Record, MAX_UPLOAD_BYTES};
use crate::uploads::store::Uploads;

/// An error as the client would see it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The envelope.
    pub body: ErrorBody,
}

fn refusal(error: GuestError) -> Refusal {
    let (status, body) = error.envelope();
    Refusal { status: status.as_u16(), body }
}

/// The files API's resolution of a request path against the sandbox cwd `base` and the user's `home`.
pub fn resolve_path(path: &str, base: &str, home: &str) -> Result<String, Refusal> {
    crate::files::paths::resolve_against(path, base, home).map_err(refusal)
}

/// The working directory of an exec request (`requested` against `default`; must exist).
pub fn exec_working_dir(requested: Option<&str>, default: &str) -> Result<String, Refusal> {
    crate::exec::spawn::working_dir(requested, default).map_err(refusal)
}

/// Publishes `tar` as a `directory_tar` upload to `target` (absolute) with `conflict`, as completing
/// a session does; the archive is staged in `staging` (a directory the caller owns). Returns the
/// number of files and links published.
pub fn publish_tar(tar: &[u8], staging: &Path, target: &str, conflict: UploadConflict) -> Result<u64, Refusal> {
    let part = staging.join("part-0");
    std::fs::write(&part, tar).map_err(|error| refusal(GuestError::file_op("stage", "part-0", error)))?;
    let file = File::open(&part).map_err(|error| refusal(GuestError::file_op("open", "part-0", error)))?;
    let record = Record {
        status: UploadStatus::Completing,
        ..Record::new(
            "up_fuzz".into(),
            UploadKind::DirectoryTar,
            UploadSourceKind::DirectoryArchive,
            target.to_owned(),
            tar.len() as u64,
            conflict,
        )
    };
    crate::uploads::extract::publish_tar(&record, vec![file], None).map(|published| published.files).map_err(refusal)
}

/// The part plan of an upload of `content_length` bytes as a session gets it: the size of each part
/// (`None` above the largest upload guestd takes).
pub fn upload_plan(content_length: u64) -> Option<Vec<u64>> {
    if content_length > MAX_UPLOAD_BYTES {
        return None;
    }
    let record = Record::new(
        "up_plan".into(),
        UploadKind::File,
        UploadSourceKind::RestartableFile,
        "/plan".into(),
        content_length,
        UploadConflict::Merge,
    );
    Some(view(&record).part_lens)
}

/// What a session looks like to a client, for checking the part plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// Upload id.
    pub upload_id: String,
    /// Total bytes.
    pub content_length: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Number of parts.
    pub part_count: u64,
    /// The size of each part, in order.
    pub part_lens: Vec<u64>,
    /// Parts received.
    pub received: Vec<u64>,
    /// Bytes of the received parts (`accepted_bytes`).
    pub accepted_bytes: u64,
    /// First missing part while open.
    pub next_part: Option<u64>,
    /// Status.
    pub status: UploadStatus,
}

/// Upload sessions staged in a directory of the caller's.
pub struct UploadSessions {
    uploads: Uploads,
    runtime: tokio::runtime::Runtime,
}

/// Longest part list a [`SessionView`] spells out (a plan has at most 8192 parts).
const MAX_VIEW_PARTS: u64 = 1 << 14;

impl UploadSessions {
    /// Opens (and reloads, as guestd does at boot) the sessions staged under `staging`.
    pub fn open(staging: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
        Self { uploads: Uploads::open(staging.to_path_buf()), runtime }
    }

    /// `POST /uploads` with `body` (JSON) publishing to `target`.
    pub fn create(&self, body: &[u8], target: &str) -> Result<SessionView, Refusal> {
        let request: CreateUploadRequest =
            serde_json::from_slice(body).map_err(|error| refusal(GuestError::invalid(error.to_string())))?;
        let record = self.uploads.create(&request, target.to_owned(), None).map_err(refusal)?;
        Ok(view(&record))
    }

    /// `PUT /uploads/{id}/parts/{n}` with a `Content-Length` of `declared` and `chunks` as the body.
    pub fn put_part(
        &self,
        id: &str,
        n: u64,
        declared: Option<u64>,
        chunks: Vec<Vec<u8>>,
    ) -> Result<SessionView, Refusal> {
        let body =
            futures::stream::iter(chunks.into_iter().map(|chunk| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk))));
        let record = self
            .runtime
            .block_on(crate::uploads::parts::receive(&self.uploads, id, n, declared, None, body))
            .map_err(refusal)?;
        Ok(view(&record))
    }

    /// Every session known, as `GET /uploads/{id}` shows it.
    pub fn sessions(&self) -> Vec<SessionView> {
        self.uploads.ids().iter().filter_map(|id| self.uploads.get(id).ok()).map(|record| view(&record)).collect()
    }
}

fn view(record: &Record) -> SessionView {
    let limits =
        UploadLimits { max_upload_bytes: 0, max_part_bytes: 0, max_concurrency: 0, sandbox_staging_quota_bytes: 0 };
    let info = record.info(limits);
    SessionView {
        upload_id: record.upload_id.clone(),
        content_length: record.content_length,
        part_size: record.part_size,
        part_count: record.part_count,
        part_lens: (0..record.part_count.min(MAX_VIEW_PARTS)).map(|n| record.part_len(n)).collect(),
        received: record.received.iter().copied().collect(),
        accepted_bytes: info.accepted_bytes,
        next_part: info.next_part,
        status: record.status,
    }
}

/// The request bodies guestd parses, by route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /exec`.
    Exec,
    /// `POST /files/read`.
    Read,
    /// `POST /files/write`.
    Write,
    /// `POST /files/{info,exists,remove,mkdir}`.
    Path,
    /// `POST /files/rename`.
    Rename,
    /// `POST /files/permissions`.
    Permissions,
    /// `POST /files/{find,search}`.
    Pattern,
    /// `POST /files/replace`.
    Replace,
    /// `POST /uploads`.
    CreateUpload,
    /// `PUT /config`.
    Config,
}

/// Parses `body` as the route's JSON (as its extractor does) and runs the checks guestd makes before
/// acting (paths resolved against `/workspace`, permissions, globs, environment, terminal sizes);
/// nothing is executed or written.
pub fn request_body(route: Body, body: &[u8]) -> Result<(), Refusal> {
    use nullspace_types::files_api::{
        PathRequest, PermissionsRequest, ReadFileRequest, RenameRequest, WriteFileRequest,
    };
    use nullspace_types::files_ops_api::{PatternRequest, ReplaceRequest};
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
        serde_json::from_slice(body)
            .map_err(|error| refusal(GuestError::invalid(format!("invalid json body: {error}"))))
    }
    let path = |path: &str| resolve_path(path, "/workspace", "/root").map(drop);
    match route {
        Body::Exec => {
            let request: crate::routes::exec::GuestExecRequest = parse(body)?;
            crate::exec::spawn::environment(&Default::default(), &request.request.envs, "/root", "root", "/bin/sh")
                .map(drop)
                .map_err(refusal)
        }
        Body::Read => path(&parse::<ReadFileRequest>(body)?.path),
        Body::Write => path(&parse::<WriteFileRequest>(body)?.path),
        Body::Path => path(&parse::<PathRequest>(body)?.path),
        Body::Rename => {
            let request: RenameRequest = parse(body)?;
            path(&request.old_path)?;
            path(&request.new_path)
        }
        Body::Permissions => {
            let request: PermissionsRequest = parse(body)?;
            path(&request.path)?;
            let mode = crate::files::info::parse_permissions(&request.permissions).map_err(refusal)?;
            assert!(mode <= 0o7777, "permissions {:?} parsed to {mode:o}", request.permissions);
            Ok(())
        }
        Body::Pattern => {
            let request: PatternRequest = parse(body)?;
            path(&request.path)?;
            crate::files::search::glob(&request.pattern).map(drop).map_err(refusal)
        }
        Body::Replace => {
            let request: ReplaceRequest = parse(body)?;
            request.files.iter().try_for_each(|file| path(file))
        }
        Body::CreateUpload => parse::<CreateUploadRequest>(body).map(drop),
        Body::Config => parse::<nullspace_types::guest::GuestConfigUpdate>(body).map(drop),
    }
}

/// A message of the exec/PTY/watch WebSocket as guestd reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// `exec_start` (its environment checked).
    ExecStart,
    /// `exec_connect`.
    ExecConnect,
    /// `file_watch` (its path resolved against `/workspace`).
    FileWatch,
    /// `pty_start` (its size checked).
    PtyStart,
    /// `pty_connect`.
    PtyConnect,
    /// `pty_input` with the bytes it writes.
    PtyInput(Vec<u8>),
    /// `pty_resize` (its size checked).
    PtyResize(u16, u16),
    /// `pty_kill`.
    PtyKill,
}

/// Parses one text message of `GET /ws`; a refused one is the protocol's error message, as JSON.
pub fn ws_message(text: &str) -> Result<WsMessage, String> {
    use crate::pty::channel::{parse_request, PtyRequest};
    use crate::ws::{parse, Request};
    match parse(text) {
        Err(message) => Err(serde_json::to_string(&message).unwrap_or_default()),
        Ok(Request::ExecStart(request)) => {
            let envs = request.envs.clone().unwrap_or_default();
            match crate::exec::spawn::environment(&Default::default(), &envs, "/root", "root", "/bin/sh") {
                Ok(_) => Ok(WsMessage::ExecStart),
                Err(error) => Err(error.message()),
            }
        }
        Ok(Request::ExecConnect(_)) => Ok(WsMessage::ExecConnect),
        Ok(Request::FileWatch(request)) => {
            resolve_path(&request.path, "/workspace", "/root").map(|_| WsMessage::FileWatch).map_err(|r| r.body.error)
        }
        Ok(Request::Pty(kind, value)) => match parse_request(&kind, value) {
            Ok(PtyRequest::Start(_)) => Ok(WsMessage::PtyStart),
            Ok(PtyRequest::Connect(_)) => Ok(WsMessage::PtyConnect),
            Ok(PtyRequest::Input(_, bytes)) => Ok(WsMessage::PtyInput(bytes)),
            Ok(PtyRequest::Resize(request)) => Ok(WsMessage::PtyResize(request.cols, request.rows)),
            Ok(PtyRequest::Kill(_)) => Ok(WsMessage::PtyKill),
            Err(error) => Err(error.message()),
        },
    }
}

/// Decodes process output `chunks` as guestd streams it (an incomplete character held back until the
/// next chunk); returns the texts sent, the last one being what is flushed at exit.
pub fn decode_output(chunks: &[&[u8]]) -> Vec<String> {
    let mut carry = crate::exec::logs::Utf8Carry::default();
    let mut out: Vec<String> = chunks.iter().map(|chunk| carry.decode(chunk)).collect();
    out.push(carry.finish());
    out
}
