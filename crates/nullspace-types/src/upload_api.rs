//! Resumable upload and archive wire types (sandbox variant of rest.md §4a): the create request, the
//! strict `UploadSessionInfo` / limits / complete-response objects of the official client, and the
//! `UploadFailureDetail` carried as `error_detail` by `file_upload_error` envelopes, and the rule both
//! ends apply to symlinks in directory archives ([`link_stays_inside`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The error code of every upload failure envelope.
pub const FILE_UPLOAD_ERROR: &str = "file_upload_error";

/// What an upload publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// One file at `target_path`.
    File,
    /// A PAX tar extracted under `target_path`.
    DirectoryTar,
}

/// Where the client's bytes come from (informational).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSourceKind {
    /// A file the client can re-read.
    RestartableFile,
    /// A stream the client spooled.
    SpooledStream,
    /// A tar the client built from a directory.
    DirectoryArchive,
}

/// What to do when the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadConflict {
    /// Overwrite files, keep other entries (default).
    #[default]
    Merge,
    /// Replace the target as a whole.
    Replace,
    /// Fail with `target_conflict`.
    Error,
}

/// Lifecycle of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// No part yet.
    Created,
    /// Some parts received.
    Uploading,
    /// Every part received.
    Staged,
    /// Publishing.
    Completing,
    /// Published.
    Completed,
    /// Aborted by the client.
    Aborted,
    /// Abandoned past `expires_at`.
    Expired,
    /// Publishing failed for good.
    Failed,
}

impl UploadStatus {
    /// Whether no further part or completion can change the session.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Aborted | Self::Expired | Self::Failed)
    }
}

/// Body of `POST /uploads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateUploadRequest {
    /// What to publish.
    pub kind: UploadKind,
    /// Source kind (informational).
    pub source_kind: UploadSourceKind,
    /// Destination path.
    pub target_path: String,
    /// Total bytes.
    pub content_length: u64,
    /// Conflict policy.
    #[serde(default)]
    pub conflict: UploadConflict,
    /// `"tar"` for directory uploads.
    #[serde(default)]
    pub archive_format: Option<String>,
    /// Always `"sha256"`.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// Expected sha256 of all bytes.
    #[serde(default)]
    pub whole_checksum_sha256: Option<String>,
    /// Opaque client metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Owner of what is published.
    #[serde(default)]
    pub user: Option<String>,
}

/// Body of `POST /uploads/{id}/complete` (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompleteUploadRequest {
    /// Expected sha256 of all bytes (overrides the one given at create).
    pub whole_checksum_sha256: Option<String>,
}

/// Sandbox upload limits (strict keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadLimits {
    /// Largest upload.
    pub max_upload_bytes: u64,
    /// Largest part.
    pub max_part_bytes: u64,
    /// Parts in flight at once.
    pub max_concurrency: u32,
    /// Staging space available.
    pub sandbox_staging_quota_bytes: u64,
}

/// `UploadSessionInfo` exactly as the client's strict dataclass expects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadSessionInfo {
    /// `up_…`.
    pub upload_id: String,
    /// What is published.
    pub kind: UploadKind,
    /// Source kind.
    pub source_kind: UploadSourceKind,
    /// Resolved destination.
    pub target_path: String,
    /// Total bytes.
    pub content_length: u64,
    /// Bytes of the parts received.
    pub accepted_bytes: u64,
    /// Staging bytes set aside.
    pub reserved_staging_bytes: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Number of parts.
    pub part_count: u64,
    /// Parts in flight at once.
    pub max_concurrency: u32,
    /// Lifecycle state.
    pub status: UploadStatus,
    /// Conflict policy.
    pub conflict: UploadConflict,
    /// Always `"sha256"`.
    pub checksum_algorithm: String,
    /// Limits.
    pub limits: UploadLimits,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Owner of what is published (key absent when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// First missing part, `null` when none is missing.
    pub next_part: Option<u64>,
    /// `"tar"` for directory uploads.
    pub archive_format: Option<String>,
    /// Expected sha256 of all bytes.
    pub whole_checksum_sha256: Option<String>,
}

/// Answer of `POST /uploads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateUploadResponse {
    /// The session.
    pub session: UploadSessionInfo,
}

/// Answer of `POST /uploads/{id}/complete` (strict keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteUploadResponse {
    /// The session, `completed`.
    pub session: UploadSessionInfo,
    /// Bytes published.
    pub published_bytes: u64,
    /// Files (and symlinks) published.
    pub published_file_count: u64,
}

/// Why an upload failed (the client's `UploadFailureReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadFailureReason {
    /// Not enough staging space.
    InsufficientStagingSpace,
    /// Larger than allowed or than announced.
    SizeLimitExceeded,
    /// A part's sha256 differs from its header.
    InvalidPartChecksum,
    /// A part number outside `0..part_count`.
    PartOutOfRange,
    /// A part of the wrong size.
    PartSizeMismatch,
    /// The assembled bytes' sha256 differs.
    WholeChecksumMismatch,
    /// The session expired.
    UploadExpired,
    /// The session was aborted.
    UploadAborted,
    /// The session was already completed.
    UploadAlreadyCompleted,
    /// The target exists and the policy is `error` (or cannot be replaced).
    TargetConflict,
    /// An archive entry path is absolute or escapes the target.
    DirectoryExtractInvalidPath,
    /// An archive symlink is absolute or escapes the target.
    DirectoryExtractInvalidSymlink,
    /// An archive entry is neither file, directory nor symlink.
    DirectoryExtractUnsupportedEntry,
    /// Completion before every part arrived.
    MissingParts,
}

/// The client's `UploadFailureDetail`, sent as `error_detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadFailureDetail {
    /// Why.
    pub reason: UploadFailureReason,
    /// Human-readable message.
    pub message: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// Session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Path concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Part concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u64>,
    /// Extra facts (expected/actual sizes or checksums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Query of `GET /archive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveQuery {
    /// Directory to archive.
    pub path: String,
    /// User the path resolves for.
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_key_is_absent_when_unset_and_optionals_are_null() {
        let session = UploadSessionInfo {
            upload_id: "up_1".into(),
            kind: UploadKind::DirectoryTar,
            source_kind: UploadSourceKind::DirectoryArchive,
            target_path: "/w".into(),
            content_length: 1,
            accepted_bytes: 0,
            reserved_staging_bytes: 1,
            part_size: 1,
            part_count: 1,
            max_concurrency: 4,
            status: UploadStatus::Created,
            conflict: UploadConflict::Merge,
            checksum_algorithm: "sha256".into(),
            limits: UploadLimits {
                max_upload_bytes: 1,
                max_part_bytes: 1,
                max_concurrency: 4,
                sandbox_staging_quota_bytes: 1,
            },
            created_at: "t".into(),
            updated_at: "t".into(),
            expires_at: "t".into(),
            user: None,
            next_part: Some(0),
            archive_format: Some("tar".into()),
            whole_checksum_sha256: None,
        };
        let json = serde_json::to_value(&session).unwrap();
        assert!(json.get("user").is_none());
        assert_eq!(json["kind"], "directory_tar");
        assert!(json["whole_checksum_sha256"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 20);
    }
}

/// Whether a symlink in a directory archive, at relative path `entry` and pointing to `link`, resolves
/// inside the archive's root: `link` is relative, never climbs above the root, and climbs (`..`) only
/// before its first name. A `..` after a name is resolved by the kernel from wherever that name leads,
/// which may be another link of the archive (`d -> .` makes `d/..` the root's parent), so it is refused
/// rather than resolved lexically. Both the guest (extracting uploads, building downloads) and the
/// client (extracting downloads) refuse other links.
pub fn link_stays_inside(entry: &std::path::Path, link: &std::path::Path) -> bool {
    use std::path::Component;
    if link.as_os_str().is_empty() || link.is_absolute() {
        return false;
    }
    let mut depth = entry.parent().map_or(0, |parent| parent.components().count()) as i64;
    let mut named = false;
    for component in link.components() {
        match component {
            Component::Normal(_) => {
                depth += 1;
                named = true;
            }
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 || named {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod link_tests {
    use super::link_stays_inside;
    use std::path::Path;

    #[test]
    fn links_may_not_leave_the_archive_root() {
        assert!(link_stays_inside(Path::new("linked.txt"), Path::new("alpha.txt")));
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("../../x")));
        assert!(link_stays_inside(Path::new("a/link"), Path::new("c/./d")));
        assert!(!link_stays_inside(Path::new("a/l"), Path::new("../../x")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("../x")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("/etc/passwd")));
        // Found by the `paths` and `tar_extract` fuzz targets: with `d -> .` in the same archive,
        // `e -> d/..` resolved to the parent of the extraction root.
        assert!(link_stays_inside(Path::new("d"), Path::new(".")));
        assert!(!link_stays_inside(Path::new("e"), Path::new("d/..")));
        assert!(!link_stays_inside(Path::new("a/b/l"), Path::new("c/../../x")));
        assert!(link_stays_inside(Path::new("a/b/l"), Path::new("./../c/d")));
        assert!(!link_stays_inside(Path::new("l"), Path::new("")));
    }
}
