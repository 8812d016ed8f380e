//! The protocol's error envelope (`{"error": message, "code": code}`) and the stable error codes.

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code as the official client understands it.
///
/// The client picks its exception class from this code only, never from the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Missing or unknown API key (401).
    Unauthorized,
    /// Request body or query could not be understood (400).
    InvalidRequest,
    /// Generic missing object (404).
    NotFound,
    /// Sandbox id unknown, destroyed, or owned by another tenant (404).
    SandboxNotFound,
    /// Snapshot id unknown, deleted, or owned by another tenant (404).
    SnapshotNotFound,
    /// Template reference unknown (404).
    TemplateNotFound,
    /// A path inside a sandbox does not exist (404).
    FileNotFound,
    /// Template build id unknown or owned by another tenant (404).
    BuildNotFound,
    /// An uploaded file was refused (checksum mismatch, unknown blob) (400).
    FileUploadError,
    /// The object is in a state that does not allow the request (409).
    Conflict,
    /// The sandbox exists but cannot serve the request yet (409).
    SandboxNotReady,
    /// The host has no room for another sandbox (503).
    CapacityExceeded,
    /// A create that required a warm pool found no ready sandbox in it (503).
    WarmPoolUnavailable,
    /// A command could not be started in the sandbox (500).
    ExecFailed,
    /// The volume is mounted and cannot be deleted now (409).
    VolumeBusy,
    /// A write hit a read-only volume mount (403).
    VolumeReadOnly,
    /// This deployment does not offer the feature (501).
    FeatureUnavailable,
    /// The endpoint exists in the protocol but this server does not implement it (501).
    NotImplemented,
    /// Something failed on the server side (500).
    Internal,
    /// Raw VNC access to desktops is off on this server (`--desktop-raw-vnc` turns it on) (403).
    DesktopRawVncDisabled,
    /// The request would take the tenant past one of its limits (`nullspace tenant set-limits`) (403).
    QuotaExceeded,
    /// The API key sent more requests than `--rate-limit` allows; retry after `Retry-After` seconds (429).
    RateLimitExceeded,
    /// The request body is larger than the route accepts (413).
    PayloadTooLarge,
    /// A disk is full: the server's data disk, or a sandbox's own (507).
    InsufficientStorage,
}

impl ErrorCode {
    /// The code string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::SandboxNotFound => "sandbox_not_found",
            Self::TemplateNotFound => "template_not_found",
            Self::SnapshotNotFound => "snapshot_not_found",
            Self::FileNotFound => "file_not_found",
            Self::BuildNotFound => "build_not_found",
            Self::FileUploadError => "file_upload_error",
            Self::Conflict => "conflict",
            Self::SandboxNotReady => "sandbox_not_ready",
            Self::CapacityExceeded => "capacity_exceeded",
            Self::WarmPoolUnavailable => "warm_pool_unavailable",
            Self::ExecFailed => "exec_failed",
            Self::VolumeBusy => "volume_busy",
            Self::VolumeReadOnly => "volume_read_only",
            Self::FeatureUnavailable => "feature_unavailable",
            Self::NotImplemented => "not_implemented",
            Self::Internal => "internal_error",
            Self::DesktopRawVncDisabled => "desktop_raw_vnc_disabled",
            Self::QuotaExceeded => "quota_exceeded",
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InsufficientStorage => "insufficient_storage",
        }
    }

    /// The HTTP status the server answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::InvalidRequest | Self::FileUploadError => 400,
            Self::NotFound
            | Self::SandboxNotFound
            | Self::SnapshotNotFound
            | Self::TemplateNotFound
            | Self::BuildNotFound
            | Self::FileNotFound => 404,
            Self::Conflict | Self::SandboxNotReady | Self::VolumeBusy => 409,
            Self::VolumeReadOnly | Self::DesktopRawVncDisabled | Self::QuotaExceeded => 403,
            Self::RateLimitExceeded => 429,
            Self::PayloadTooLarge => 413,
            Self::CapacityExceeded | Self::WarmPoolUnavailable => 503,
            Self::ExecFailed | Self::Internal => 500,
            Self::FeatureUnavailable | Self::NotImplemented => 501,
            Self::InsufficientStorage => 507,
        }
    }
}

/// The flat error envelope every non-2xx response carries.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message, lowercase, saying what failed and what to do next.
    pub error: String,
    /// Stable error code (see [`ErrorCode`]); kept as a string so unknown codes survive a round trip.
    pub code: String,
    /// Whether retrying the same request may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// What the caller should do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
    /// Structured facts about the error (a quota error: which limit, the limit, current use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    /// An envelope for `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
            code: code.as_str().to_owned(),
            retryable: None,
            suggested_action: None,
            details: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_flat_and_omits_unset_fields() {
        let body = ErrorBody::new(ErrorCode::SandboxNotFound, "sandbox sb_x not found");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json, serde_json::json!({"error": "sandbox sb_x not found", "code": "sandbox_not_found"}));
    }

    #[test]
    fn statuses_match_the_client_conventions() {
        assert_eq!(ErrorCode::Unauthorized.http_status(), 401);
        assert_eq!(ErrorCode::SandboxNotFound.http_status(), 404);
        assert_eq!(ErrorCode::CapacityExceeded.http_status(), 503);
        assert_eq!(ErrorCode::InsufficientStorage.http_status(), 507);
    }
}
