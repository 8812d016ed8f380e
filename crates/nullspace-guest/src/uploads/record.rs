//! The state of one upload session as guestd keeps it (in memory and as `session.json` in its staging
//! directory), the part plan chosen from the content length, and its strict wire view.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use nullspace_types::upload_api::{
    UploadConflict, UploadKind, UploadLimits, UploadSessionInfo, UploadSourceKind, UploadStatus,
};
use serde::{Deserialize, Serialize};

/// Smallest part size.
pub const MIN_PART_BYTES: u64 = 8 * 1024 * 1024;
/// Largest part size (also `max_part_bytes`).
pub const MAX_PART_BYTES: u64 = 64 * 1024 * 1024;
/// Parts the plan aims to stay under before growing the part size.
const TARGET_PART_COUNT: u64 = 1024;
/// Largest upload (`max_upload_bytes`).
pub const MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024 * 1024;
/// Parts a client may send at once.
pub const MAX_CONCURRENCY: u32 = 4;
/// How long a session lives without activity.
pub const SESSION_TTL_HOURS: i64 = 24;

/// The part size for `content_length` bytes: 8 MiB, grown in MiB steps up to 64 MiB so that big
/// uploads stay near 1024 parts.
pub fn part_size_for(content_length: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let wanted = content_length.div_ceil(TARGET_PART_COUNT).div_ceil(MIB) * MIB;
    wanted.clamp(MIN_PART_BYTES, MAX_PART_BYTES)
}

/// One session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// `up_…`.
    pub upload_id: String,
    /// What is published.
    pub kind: UploadKind,
    /// Source kind.
    pub source_kind: UploadSourceKind,
    /// Resolved absolute target.
    pub target_path: String,
    /// Total bytes.
    pub content_length: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Number of parts.
    pub part_count: u64,
    /// Conflict policy.
    pub conflict: UploadConflict,
    /// `"tar"` for directories.
    pub archive_format: Option<String>,
    /// Expected sha256 of all bytes.
    pub whole_checksum_sha256: Option<String>,
    /// Owner of what is published.
    pub user: Option<String>,
    /// Lifecycle state.
    pub status: UploadStatus,
    /// Parts received and verified.
    pub received: BTreeSet<u64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When an idle session expires.
    pub expires_at: DateTime<Utc>,
    /// `Idempotency-Key` of the create request.
    pub idempotency_key: Option<String>,
    /// Bytes published (once completed).
    pub published_bytes: u64,
    /// Files published (once completed).
    pub published_file_count: u64,
}

impl Record {
    /// Size of part `n` (the last one may be shorter).
    pub fn part_len(&self, n: u64) -> u64 {
        if n + 1 < self.part_count {
            self.part_size
        } else {
            self.content_length - self.part_size * n.min(self.part_count.saturating_sub(1))
        }
    }

    /// First missing part.
    pub fn next_part(&self) -> Option<u64> {
        (0..self.part_count).find(|n| !self.received.contains(n))
    }

    /// Parts not received, at most `limit` of them.
    pub fn missing(&self, limit: usize) -> Vec<u64> {
        (0..self.part_count).filter(|n| !self.received.contains(n)).take(limit).collect()
    }

    /// Bytes of the received parts.
    pub fn accepted_bytes(&self) -> u64 {
        self.received.iter().map(|n| self.part_len(*n)).sum()
    }

    /// Marks activity: `updated_at` now, expiry pushed back.
    pub fn touch(&mut self) {
        self.updated_at = Utc::now();
        self.expires_at = self.updated_at + Duration::hours(SESSION_TTL_HOURS);
    }

    /// Status for the parts received (while still open).
    pub fn progress_status(&self) -> UploadStatus {
        if self.next_part().is_none() {
            UploadStatus::Staged
        } else if self.received.is_empty() {
            UploadStatus::Created
        } else {
            UploadStatus::Uploading
        }
    }

    /// The strict wire object.
    pub fn info(&self, limits: UploadLimits) -> UploadSessionInfo {
        let open = !self.status.is_terminal();
        UploadSessionInfo {
            upload_id: self.upload_id.clone(),
            kind: self.kind,
            source_kind: self.source_kind,
            target_path: self.target_path.clone(),
            content_length: self.content_length,
            accepted_bytes: self.accepted_bytes(),
            reserved_staging_bytes: if open { self.content_length } else { 0 },
            part_size: self.part_size,
            part_count: self.part_count,
            max_concurrency: MAX_CONCURRENCY,
            status: self.status,
            conflict: self.conflict,
            checksum_algorithm: "sha256".into(),
            limits,
            created_at: stamp(self.created_at),
            updated_at: stamp(self.updated_at),
            expires_at: stamp(self.expires_at),
            user: self.user.clone(),
            next_part: if open { self.next_part() } else { None },
            archive_format: self.archive_format.clone(),
            whole_checksum_sha256: self.whole_checksum_sha256.clone(),
        }
    }
}

fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_length: u64) -> Record {
        let part_size = part_size_for(content_length);
        let now = Utc::now();
        Record {
            upload_id: "up_1".into(),
            kind: UploadKind::File,
            source_kind: UploadSourceKind::RestartableFile,
            target_path: "/t".into(),
            content_length,
            part_size,
            part_count: content_length.div_ceil(part_size),
            conflict: UploadConflict::Merge,
            archive_format: None,
            whole_checksum_sha256: None,
            user: None,
            status: UploadStatus::Created,
            received: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            expires_at: now,
            idempotency_key: None,
            published_bytes: 0,
            published_file_count: 0,
        }
    }

    #[test]
    fn plans_parts_between_8_and_64_mib() {
        assert_eq!(part_size_for(1), MIN_PART_BYTES);
        assert_eq!(part_size_for(20 * 1024 * 1024 * 1024), 20 * 1024 * 1024);
        assert_eq!(part_size_for(MAX_UPLOAD_BYTES), MAX_PART_BYTES);
    }

    #[test]
    fn last_part_is_shorter_and_next_part_is_the_first_gap() {
        let mut session = record(MIN_PART_BYTES * 2 + 5);
        assert_eq!(session.part_count, 3);
        assert_eq!(session.part_len(2), 5);
        assert_eq!(session.part_len(0), MIN_PART_BYTES);
        session.received.insert(1);
        assert_eq!(session.next_part(), Some(0));
        assert_eq!(session.progress_status(), UploadStatus::Uploading);
        session.received.extend([0, 2]);
        assert_eq!(session.next_part(), None);
        assert_eq!(session.accepted_bytes(), session.content_length);
        assert_eq!(record(0).part_count, 0);
    }
}
