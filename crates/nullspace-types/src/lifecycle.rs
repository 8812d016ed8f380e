//! Lifecycle events and snapshots on the wire.

use serde::{Deserialize, Serialize};

/// One lifecycle event (`evt_…`), as listed and streamed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// Event id.
    pub id: String,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// Always `customer` on the public API.
    pub audience: String,
    /// `create`, `destroy`, `timeout_updated`, `timeout_expired`, `hibernate`, `snapshot_created`,
    /// `resume_from_snapshot`, `fork` or `reconcile`.
    pub operation: String,
    /// `requested`, `succeeded` or `failed`.
    pub status: String,
    /// `user`, `system` or `reconcile`.
    pub actor_kind: String,
    /// Sandbox the event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// Snapshot involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Source sandbox of a fork or resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sandbox_id: Option<String>,
    /// Target sandbox of a fork or resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_sandbox_id: Option<String>,
    /// Why (`api`, `manual`, `timeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Error code when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Extra facts (`timeout_action`, `created_via`, …).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A page of lifecycle events.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEventList {
    /// Events on this page.
    pub events: Vec<LifecycleEvent>,
    /// Offset of the first event.
    pub offset: u64,
    /// Page size asked for.
    pub limit: u64,
    /// Whether more events follow.
    pub has_more: bool,
}

/// `SnapshotInfo` (strict: exactly these keys).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// `snap_…` id.
    pub id: String,
    /// Sandbox it was taken from.
    pub sandbox_id: String,
    /// Bytes it holds (> 0).
    pub size_bytes: u64,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Metadata of the sandbox it was taken from.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}
