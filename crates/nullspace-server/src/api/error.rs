//! The one place errors become HTTP responses: the protocol's flat error envelope and its status codes.
//! Internal details are logged on the server, never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::{ErrorBody, ErrorCode};

use crate::control::ControlError;

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// Structured facts for the envelope's `details`.
    details: Option<serde_json::Value>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `code` and a message that says what to do.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None }
    }

    /// Its code and message (for answers outside HTTP, such as a WebSocket's `error` message).
    pub fn parts(&self) -> (ErrorCode, &str) {
        (self.code, &self.message)
    }

    /// Adds `details` to the envelope.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a `Retry-After: secs` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

/// Whether `error` comes from a full disk: `ENOSPC` anywhere in its chain, SQLite's `SQLITE_FULL`, or a
/// host tool (`mkfs.ext4`, `mount`) that said so.
pub fn is_storage_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull {
                return true;
            }
        }
        if let Some(sqlx::Error::Database(database)) = error.downcast_ref::<sqlx::Error>() {
            // SQLITE_FULL (13), also in its extended forms (the low byte is the primary code).
            if database.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == 13) {
                return true;
            }
        }
        if error.to_string().contains("No space left on device") {
            return true;
        }
        next = error.source();
    }
    false
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        if let ControlError::Quota(refusal) = &error {
            return Self::new(ErrorCode::QuotaExceeded, refusal.to_string()).with_details(refusal.details());
        }
        if is_storage_full(&error) {
            tracing::error!(error = %crate::error_chain(&error), "a disk is full");
            return Self::new(
                ErrorCode::InsufficientStorage,
                "the server's disk is full; try again once space is freed (operators: free space in the data dir)",
            );
        }
        let code = match &error {
            ControlError::Quota(_) => ErrorCode::QuotaExceeded,
            ControlError::SandboxNotFound { .. } => ErrorCode::SandboxNotFound,
            ControlError::TemplateNotFound { .. } => ErrorCode::TemplateNotFound,
            ControlError::SnapshotNotFound { .. } => ErrorCode::SnapshotNotFound,
            ControlError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            ControlError::NotRunning { .. }
            | ControlError::TemplateStart { .. }
            | ControlError::ResumeFailed { .. } => ErrorCode::SandboxNotReady,
            ControlError::Capacity { .. } => ErrorCode::CapacityExceeded,
            ControlError::VolumeNotFound { .. } => ErrorCode::NotFound,
            ControlError::VolumeConflict { .. } => ErrorCode::Conflict,
            ControlError::VolumeBusy { .. } => ErrorCode::VolumeBusy,
            ControlError::AttachmentNotFound { .. } => ErrorCode::NotFound,
            ControlError::Busy { .. } => ErrorCode::Conflict,
            ControlError::BuildNotFound { .. } => ErrorCode::BuildNotFound,
            ControlError::TemplateConflict { .. } => ErrorCode::Conflict,
            ControlError::WarmPoolNotFound { .. } | ControlError::ClaimNotFound { .. } => ErrorCode::NotFound,
            ControlError::WarmPoolUnavailable { .. } => ErrorCode::WarmPoolUnavailable,
            ControlError::Node(nullspace_node::NodeError::LiveMountsUnsupported { .. }) => {
                ErrorCode::FeatureUnavailable
            }
            ControlError::Node(nullspace_node::NodeError::NotRunning { .. }) => ErrorCode::SandboxNotReady,
            ControlError::Node(nullspace_node::NodeError::MountPoint { .. }) => ErrorCode::InvalidRequest,
            ControlError::Volume(
                nullspace_node::VolumeError::InvalidMountPath { .. }
                | nullspace_node::VolumeError::InvalidSubpath { .. }
                | nullspace_node::VolumeError::InvalidSize { .. },
            ) => ErrorCode::InvalidRequest,
            ControlError::Node(nullspace_node::NodeError::Volume {
                source: nullspace_node::VolumeError::InvalidSubpath { .. } | nullspace_node::VolumeError::Missing { .. },
                ..
            }) => ErrorCode::InvalidRequest,
            ControlError::Node(_) | ControlError::Store(_) | ControlError::Preview { .. } | ControlError::Volume(_) => {
                tracing::error!(error = %crate::error_chain(&error), "internal error");
                return Self::new(ErrorCode::Internal, "internal error; see the server log for details");
            }
        };
        Self::new(code, crate::error_chain(&error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = ErrorBody::new(self.code, self.message);
        body.details = self.details;
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("launching failed")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn a_full_disk_anywhere_in_the_chain_is_insufficient_storage() {
        let full = Wrapper(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(is_storage_full(&full));
        let other = Wrapper(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(!is_storage_full(&other));
        let tool = std::io::Error::other("`mkfs.ext4 -q` failed: No space left on device while writing");
        assert!(is_storage_full(&tool));
        let answer = ApiError::from(ControlError::Node(nullspace_node::NodeError::Filesystem {
            sandbox_id: "sb_x".into(),
            path: "/data/sandboxes/sb_x".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        }));
        assert_eq!(answer.code, ErrorCode::InsufficientStorage);
        assert!(!answer.message.contains("os error"), "{}", answer.message);
    }
}
