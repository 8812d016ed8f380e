//! `DesktopError`, the one error type of the daemon's request handling, and its single mapping to the
//! protocol's flat error envelope (`{"error": message, "code": code}`) and HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::{ErrorBody, ErrorCode};

/// Result of desktop operations.
pub type DesktopResult<T> = Result<T, DesktopError>;

/// Everything a desktop request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The request body, query or path cannot be used.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and what to send instead.
        message: String,
    },
    /// The X server is not (or no longer) answering.
    #[error("{message}")]
    NotReady {
        /// What the daemon is waiting for or saw fail.
        message: String,
    },
    /// A request to the X server failed.
    #[error("x server: cannot {what}: {message}")]
    X11 {
        /// What the daemon was doing.
        what: String,
        /// The X error or connection error.
        message: String,
    },
    /// A window id that names no window.
    #[error("window {id} not found; list windows with GET /windows")]
    WindowNotFound {
        /// The id asked for.
        id: String,
    },
    /// `_NET_ACTIVE_WINDOW` names no window.
    #[error("no window is active; launch or click a window first")]
    NoActiveWindow,
    /// A desktop entry that no XDG applications directory holds.
    #[error("desktop entry {name:?} not found in {searched}")]
    DesktopEntryNotFound {
        /// The entry asked for.
        name: String,
        /// The directories searched.
        searched: String,
    },
    /// A path given to `open` that does not exist.
    #[error("no file or directory at {path}")]
    FileNotFound {
        /// The path.
        path: String,
    },
    /// A program could not be started.
    #[error("cannot launch {command}: {message}")]
    LaunchFailed {
        /// The program.
        command: String,
        /// Why.
        message: String,
    },
    /// A recording id that names no recording.
    #[error("recording {id} not found; list recordings with GET /recording")]
    RecordingNotFound {
        /// The id asked for.
        id: String,
    },
    /// The recording is in a state that does not allow the request.
    #[error("{message}")]
    RecordingConflict {
        /// What state it is in and what to do.
        message: String,
    },
    /// The recorder could not be started or stopped.
    #[error("{message}")]
    RecordingFailed {
        /// Why, with the encoder's last output.
        message: String,
    },
    /// No route matches the request.
    #[error("no desktop route {method} {path}; see the protocol map for the desktop routes")]
    UnknownRoute {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// A file of the daemon's state could not be used.
    #[error("cannot {what}")]
    Storage {
        /// What the daemon was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl DesktopError {
    /// An `invalid_request` error with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest { message: message.into() }
    }

    /// A failed state operation.
    pub fn storage(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Storage { what: what.into(), source }
    }

    /// The context helper for X requests: `.map_err(DesktopError::x11("read the pointer"))`.
    pub fn x11<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Self + '_ {
        move |error| Self::X11 { what: what.to_owned(), message: error.to_string().to_lowercase() }
    }

    /// The HTTP status and envelope of this error: the one mapping to the protocol.
    pub fn envelope(&self) -> (StatusCode, ErrorBody) {
        let (status, code) = match self {
            Self::InvalidRequest { .. } => (400, ErrorCode::InvalidRequest.as_str()),
            Self::NotReady { .. } => (503, "desktop_not_ready"),
            Self::X11 { .. } => (500, "desktop_error"),
            Self::WindowNotFound { .. } | Self::NoActiveWindow => (404, "window_not_found"),
            Self::DesktopEntryNotFound { .. } => (404, "desktop_entry_not_found"),
            Self::FileNotFound { .. } => (404, ErrorCode::FileNotFound.as_str()),
            Self::LaunchFailed { .. } => (400, "launch_failed"),
            Self::RecordingNotFound { .. } => (404, "recording_not_found"),
            Self::RecordingConflict { .. } => (409, ErrorCode::Conflict.as_str()),
            Self::RecordingFailed { .. } => (500, "recording_failed"),
            Self::UnknownRoute { .. } => (404, ErrorCode::NotFound.as_str()),
            Self::Storage { .. } => (500, ErrorCode::Internal.as_str()),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = ErrorBody::new(ErrorCode::Internal, self.message());
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

impl IntoResponse for DesktopError {
    fn into_response(self) -> Response {
        let (status, body) = self.envelope();
        if status.is_server_error() {
            tracing::warn!(error = %body.error, code = %body.code, "request failed");
        } else {
            tracing::debug!(error = %body.error, code = %body.code, "request failed");
        }
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_end_in_not_found_so_the_client_raises_not_found_error() {
        for error in [
            DesktopError::WindowNotFound { id: "1".into() },
            DesktopError::RecordingNotFound { id: "rec_1".into() },
            DesktopError::DesktopEntryNotFound { name: "x".into(), searched: "/usr/share/applications".into() },
            DesktopError::FileNotFound { path: "/workspace/x".into() },
        ] {
            let (status, body) = error.envelope();
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(body.code.ends_with("not_found"), "{}", body.code);
        }
    }

    #[test]
    fn x_errors_say_what_failed() {
        let error = DesktopError::x11("read the pointer")("Connection Reset");
        let (status, body) = error.envelope();
        assert_eq!((status.as_u16(), body.code.as_str()), (500, "desktop_error"));
        assert_eq!(body.error, "x server: cannot read the pointer: connection reset");
    }
}
