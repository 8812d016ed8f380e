//! Wire types of persistent volumes: `VolumeInfo`, `VolumeAttachment`, and the mount entries of a create
//! request.

use serde::{Deserialize, Serialize};

/// One entry of `volumes` in `POST /v1/sandboxes` (and the body of a runtime attach).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeMountRequest {
    /// Volume name or `vol_…` id.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Absolute path inside the sandbox.
    pub mount_path: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Subtree of the volume to mount instead of its root.
    pub subpath: Option<String>,
}

/// Body of `POST /v1/volumes`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateVolumeRequest {
    /// Name, unique per tenant.
    pub name: String,
    /// Size limit in bytes (an extension of the protocol: the official client never sends it, and the
    /// server's default applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_bytes: Option<u64>,
}

/// `VolumeInfo`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// `vol_…` id.
    pub id: String,
    /// Name, unique per tenant.
    pub name: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Bytes of regular files.
    pub used_bytes: u64,
    /// Files, directories and links.
    pub inode_count: u64,
    /// Live sandboxes mounting it.
    pub mount_count: u64,
    /// `available` or `attached`.
    pub status: String,
    /// Size limit of its filesystem in bytes (none: unlimited).
    pub max_size_bytes: Option<u64>,
    /// File count limit (none).
    pub max_file_count: Option<u64>,
    /// Mount limit (none).
    pub max_mounts: Option<u64>,
    /// Last reconcile (none).
    pub last_reconciled_at: Option<String>,
    /// Host holding the data.
    pub host_id: Option<String>,
}

/// `VolumeAttachment`: one volume mounted into one sandbox.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    /// `att_…` id.
    pub id: String,
    /// `vol_…` id.
    pub volume_id: String,
    /// `sb_…` id.
    pub sandbox_id: String,
    /// Path inside the sandbox.
    pub mount_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `mounting`, `mounted`, `paused`, `released` or `failed`.
    pub state: String,
    /// Mounted subtree.
    pub subpath: Option<String>,
    /// Last error code (none).
    pub last_error_code: Option<String>,
    /// Last error message (none).
    pub last_error_message: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 last change.
    pub updated_at: String,
}
