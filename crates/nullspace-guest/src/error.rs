//! `GuestError`, the one error type of guestd's request handling, and its single mapping to the
//! protocol's error envelope (`{"error": message, "code": code}`, plus `error_detail` for upload
//! failures) and HTTP status.

use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::upload_api::FILE_UPLOAD_ERROR;
use nullspace_types::{ErrorBody, ErrorCode};

use crate::uploads::error::UploadError;

/// Result of guest operations.
pub type GuestResult<T> = Result<T, GuestError>;

/// Everything a request to guestd can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The request body or query cannot be used.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and what to send instead.
        message: String,
    },
    /// A path does not exist.
    #[error("file not found: {path}; check the path (relative paths resolve against the sandbox cwd)")]
    FileNotFound {
        /// The resolved path.
        path: String,
    },
    /// A pid that is neither running nor a process guestd started.
    #[error("process {pid} not found; list processes with GET /processes")]
    ProcessNotFound {
        /// The pid asked for.
        pid: i64,
    },
    /// The process no longer accepts input.
    #[error("process {pid} has exited or closed its stdin")]
    StdinClosed {
        /// The pid.
        pid: u32,
    },
    /// A user name not in the sandbox's /etc/passwd.
    #[error("unknown user {user:?}; use a user that exists in the sandbox's /etc/passwd")]
    UnknownUser {
        /// The name asked for.
        user: String,
    },
    /// A filesystem operation failed.
    #[error("cannot {op} {path}")]
    FileOp {
        /// The operation (`read`, `write`, …).
        op: &'static str,
        /// The resolved path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A command could not be started.
    #[error("cannot start {command:?}")]
    Spawn {
        /// The program.
        command: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A TCP port inside the sandbox refused the tunnel.
    #[error("cannot connect to port {port} inside the sandbox; start a server listening on 127.0.0.1:{port} first")]
    PortUnreachable {
        /// The port.
        port: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A PTY session id (or shell pid) that names no live session.
    #[error("pty session {session} not found; list live sessions with GET /pty")]
    PtySessionNotFound {
        /// The id (or `with pid N`) asked for.
        session: String,
    },
    /// An upload id that names no session.
    #[error("upload session {upload_id} not found; create one with POST /uploads")]
    UploadNotFound {
        /// The id asked for.
        upload_id: String,
    },
    /// An upload session failed (sent with `error_detail`).
    #[error(transparent)]
    Upload(Box<UploadError>),
    /// No route matches the request.
    #[error("no guest route {method} {path}; see the protocol map for the sandbox routes")]
    UnknownRoute {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// Anything else.
    #[error("internal error: {context}")]
    Internal {
        /// What guestd was doing.
        context: String,
    },
}

impl From<UploadError> for GuestError {
    fn from(error: UploadError) -> Self {
        Self::Upload(Box::new(error))
    }
}

impl GuestError {
    /// An `invalid_request` error with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into() }
    }

    /// A failed filesystem operation on `path`.
    pub fn file_op(op: &'static str, path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            return Self::FileNotFound { path: path.to_owned() };
        }
        Self::FileOp { op, path: path.to_owned(), source }
    }

    /// The HTTP status and envelope of this error: the one mapping to the protocol.
    pub fn envelope(&self) -> (StatusCode, ErrorBody) {
        let message = self.message();
        let (status, code) = match self {
            Self::InvalidRequest { .. } | Self::UnknownUser { .. } => (400, ErrorCode::InvalidRequest.as_str()),
            Self::FileNotFound { .. } => (404, ErrorCode::FileNotFound.as_str()),
            Self::ProcessNotFound { .. }
            | Self::UnknownRoute { .. }
            | Self::PtySessionNotFound { .. }
            | Self::UploadNotFound { .. } => (404, ErrorCode::NotFound.as_str()),
            Self::Upload(error) => (error.status(), FILE_UPLOAD_ERROR),
            Self::StdinClosed { .. } => (409, ErrorCode::Conflict.as_str()),
            Self::FileOp { source, path, .. } => io_status(source, path),
            Self::Spawn { .. } => (500, ErrorCode::ExecFailed.as_str()),
            Self::PortUnreachable { .. } => (502, "port_unreachable"),
            Self::Internal { .. } => (500, ErrorCode::Internal.as_str()),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = ErrorBody::new(ErrorCode::Internal, message);
        body.code = code.to_owned();
        (status, body)
    }

    /// The full message: this error and its source, lowercase.
    pub fn message(&self) -> String {
        match std::error::Error::source(self) {
            Some(source) => format!("{self}: {}", source.to_string().to_lowercase()),
            None => self.to_string(),
        }
    }
}

/// Whether this guest serves a volume's files (`--volume`), where a full filesystem means the volume
/// reached its size limit.
static SERVES_VOLUME: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this guest as the file server of a volume (set once at start).
pub fn set_serves_volume() {
    SERVES_VOLUME.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The code of a write to `path` that found no space left: on a volume (this guest serves one, or the
/// path is on a volume mount of the sandbox) it is `volume_quota_exceeded`, the client's
/// `QuotaExceededError`; on the sandbox's own disk, `insufficient_storage`.
fn storage_full(path: &str) -> (u16, &'static str) {
    if SERVES_VOLUME.load(std::sync::atomic::Ordering::Relaxed) || on_mounted_filesystem(path) {
        (507, "volume_quota_exceeded")
    } else {
        (507, "insufficient_storage")
    }
}

/// Whether the directory holding `path` is on another filesystem than `/` and not a tmpfs: inside a
/// sandbox (root on its overlay) such a writable directory is a volume mount.
fn on_mounted_filesystem(path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::metadata("/") else { return false };
    let dir = std::path::Path::new(path)
        .ancestors()
        .skip(1)
        .find(|dir| std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir()));
    let Some(dir) = dir else { return false };
    let on_other_device = std::fs::metadata(dir).is_ok_and(|meta| meta.dev() != root.dev());
    on_other_device
        && nix::sys::statfs::statfs(dir).is_ok_and(|stat| stat.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC)
}

fn io_status(error: &io::Error, path: &str) -> (u16, &'static str) {
    use io::ErrorKind as K;
    match error.kind() {
        K::NotFound => (404, ErrorCode::FileNotFound.as_str()),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => storage_full(path),
        // Inside a sandbox the only read-only filesystems a file operation can write to are read-only
        // volume mounts (and /sys, /proc/sys, which no one writes through the files API on purpose).
        K::ReadOnlyFilesystem => (403, ErrorCode::VolumeReadOnly.as_str()),
        K::PermissionDenied => (403, "permission_denied"),
        K::IsADirectory
        | K::NotADirectory
        | K::AlreadyExists
        | K::DirectoryNotEmpty
        | K::InvalidInput
        | K::InvalidData
        | K::CrossesDevices
        | K::InvalidFilename => (400, ErrorCode::InvalidRequest.as_str()),
        _ => match error.raw_os_error() {
            Some(libc::EROFS) => (403, ErrorCode::VolumeReadOnly.as_str()),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => storage_full(path),
            Some(libc::EPERM) | Some(libc::EACCES) => (403, "permission_denied"),
            _ => (500, ErrorCode::Internal.as_str()),
        },
    }
}

impl IntoResponse for GuestError {
    fn into_response(self) -> Response {
        let (status, body) = self.envelope();
        // Most failures are the caller's doing; only guestd's own faults are worth a warning.
        if matches!(self, Self::Internal { .. }) {
            tracing::warn!(error = %body.error, code = %body.code, "request failed");
        } else {
            tracing::debug!(error = %body.error, code = %body.code, "request failed");
        }
        let mut value = serde_json::to_value(&body).unwrap_or_default();
        if let (Self::Upload(error), Some(object)) = (&self, value.as_object_mut()) {
            object.insert("retryable".into(), error.retryable.into());
            object.insert("error_detail".into(), serde_json::to_value(error.detail()).unwrap_or_default());
        }
        (status, Json(value)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_map_to_file_not_found() {
        let error = GuestError::file_op("read", "/x", io::Error::from(io::ErrorKind::NotFound));
        let (status, body) = error.envelope();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body.code, "file_not_found");
        assert!(body.error.contains("/x"));
    }

    #[test]
    fn only_a_directory_on_another_non_tmpfs_filesystem_counts_as_a_mount() {
        assert!(!on_mounted_filesystem("/etc/new-file"), "the root filesystem");
        assert!(on_mounted_filesystem("/proc/self/new-file"), "procfs is another filesystem");
        if nix::sys::statfs::statfs("/dev/shm").is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC) {
            assert!(!on_mounted_filesystem("/dev/shm/x"), "a tmpfs is scratch space, not a volume");
        }
        assert!(!on_mounted_filesystem(""), "no directory");
    }

    #[test]
    fn a_full_filesystem_is_insufficient_storage_and_a_full_volume_its_quota() {
        // Both checks in one test: the volume flag is process-wide and only ever set, never cleared.
        let full = || GuestError::file_op("write", "/etc/big", io::Error::from_raw_os_error(libc::ENOSPC)).envelope();
        let (status, body) = full();
        assert_eq!((status.as_u16(), body.code.as_str()), (507, "insufficient_storage"));
        assert!(body.error.contains("no space left"), "{}", body.error);
        set_serves_volume();
        let (status, body) = full();
        assert_eq!((status.as_u16(), body.code.as_str()), (507, "volume_quota_exceeded"));
        let quota = GuestError::file_op("write", "/a", io::Error::from_raw_os_error(libc::EDQUOT)).envelope();
        assert_eq!(quota.1.code, "volume_quota_exceeded");
    }

    #[test]
    fn spawn_failures_are_exec_failed_with_the_cause() {
        let error = GuestError::Spawn { command: "x".into(), source: io::Error::from_raw_os_error(libc::EAGAIN) };
        let (status, body) = error.envelope();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.code, "exec_failed");
        assert!(body.error.starts_with("cannot start \"x\": "));
    }

    #[test]
    fn read_only_filesystems_are_volume_read_only() {
        let error = GuestError::file_op("write", "/data/x", io::Error::from_raw_os_error(libc::EROFS));
        let (status, body) = error.envelope();
        assert_eq!(status.as_u16(), 403);
        assert_eq!(body.code, "volume_read_only");
    }

    #[test]
    fn permission_errors_are_403() {
        let error = GuestError::file_op("write", "/proc/x", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(error.envelope().0, StatusCode::FORBIDDEN);
    }
}
