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
}

impl ApiError {
    /// An error with `code` and a message that says what to do.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// A 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let code = match &error {
            ControlError::SandboxNotFound { .. } => ErrorCode::SandboxNotFound,
            ControlError::TemplateNotFound { .. } => ErrorCode::TemplateNotFound,
            ControlError::SnapshotNotFound { .. } => ErrorCode::SnapshotNotFound,
            ControlError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            ControlError::NotRunning { .. } | ControlError::TemplateStart { .. } => ErrorCode::SandboxNotReady,
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
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}
