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

/// The part plan of `content_length` bytes: (part size, number of parts).
pub fn plan(content_length: u64) -> (u64, u64) {
    let part_size = part_size_for(content_length);
    (part_size, content_length.div_ceil(part_size))
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
    /// A new `created` session: `content_length` bytes planned by [`plan`], published to the resolved
    /// `target_path` (`archive_format` is `tar` for directories), expiring [`SESSION_TTL_HOURS`] from now.
    pub fn new(
        upload_id: String,
        kind: UploadKind,
        source_kind: UploadSourceKind,
        target_path: String,
        content_length: u64,
        conflict: UploadConflict,
    ) -> Self {
        let (part_size, part_count) = plan(content_length);
        let now = Utc::now();
        Record {
            upload_id,
            kind,
            source_kind,
            target_path,
            content_length,
            part_size,
            part_count,
            conflict,
            archive_format: match kind {
                UploadKind::DirectoryTar => Some("tar".into()),
                UploadKind::File => None,
            },
            whole_checksum_sha256: None,
            user: None,
            status: UploadStatus::Created,
            received: BTreeSet::new(),
            created_at: now,
            updated_at: now,
            expires_at: now + Duration::hours(SESSION_TTL_HOURS),
            idempotency_key: None,
            published_bytes: 0,
            published_file_count: 0,
        }
    }

    /// Whether the session's plan is the one guestd makes for its length, with received parts inside it.
    /// A `session.json` read back from the staging directory, which root in the sandbox can rewrite, is
    /// used only when it is.
    pub fn is_consistent(&self) -> bool {
        self.content_length <= MAX_UPLOAD_BYTES
            && (self.part_size, self.part_count) == plan(self.content_length)
            && self.received.iter().all(|n| *n < self.part_count)
    }

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
        let kind = UploadKind::File;
        Record::new(
            "up_1".into(),
            kind,
            UploadSourceKind::RestartableFile,
            "/t".into(),
            content_length,
            UploadConflict::Merge,
        )
    }

    #[test]
    fn only_sessions_planned_as_guestd_plans_them_are_consistent() {
        assert!(record(20_000_000).is_consistent());
        assert!(record(0).is_consistent());
        // Found by the `upload_ranges` fuzz target: a planted `session.json` with more parts than its
        // length needs made `part_len` subtract past zero (a panic, or a wrapped size in release).
        let planted = Record { content_length: 1, part_count: 5, received: BTreeSet::from([4]), ..record(1) };
        assert!(!planted.is_consistent());
        assert!(!Record { part_size: 0, part_count: 0, ..record(5) }.is_consistent());
        assert!(!Record { part_count: 1_000_000_000_000, ..record(5) }.is_consistent());
        assert!(!Record { received: BTreeSet::from([1]), ..record(5) }.is_consistent());
        assert!(!Record { content_length: MAX_UPLOAD_BYTES + 1, ..record(MAX_UPLOAD_BYTES + 1) }.is_consistent());
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
