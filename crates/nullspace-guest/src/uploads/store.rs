//! `Uploads`: every session by id (in memory, mirrored to `<staging>/<id>/session.json`), the
//! `Idempotency-Key` index, creation, lookups with lazy expiry, abort, and the periodic sweep that
//! deletes the staging of abandoned sessions.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use nullspace_types::upload_api::{
    CreateUploadRequest, UploadFailureReason as R, UploadKind, UploadLimits, UploadStatus,
};
use serde_json::json;

use super::error::UploadError;
use super::record::{Record, MAX_CONCURRENCY, MAX_PART_BYTES, MAX_UPLOAD_BYTES, SESSION_TTL_HOURS};
use crate::error::{GuestError, GuestResult};
use crate::ids::new_id;

/// Staging directory inside the sandbox (not watched by `file_watch`).
pub const DEFAULT_STAGING_DIR: &str = "/var/lib/nullspace/uploads";

/// How often abandoned sessions are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Default)]
struct State {
    records: HashMap<String, Record>,
    keys: HashMap<String, String>,
}

/// All upload sessions of the sandbox.
pub struct Uploads {
    root: PathBuf,
    state: Mutex<State>,
}

impl Uploads {
    /// Sessions staged under `root`, reloading the ones a previous guestd left there.
    pub fn open(root: PathBuf) -> Self {
        let uploads = Self { root, state: Mutex::new(State::default()) };
        uploads.load();
        uploads
    }

    /// The staging root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Staging directory of session `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Path of part `n` of session `id`.
    pub fn part_path(&self, id: &str, n: u64) -> PathBuf {
        self.dir(id).join(format!("part-{n}"))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        let mut state = self.lock();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path().join("session.json");
            let Some(mut record) = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok())
                .filter(Record::is_consistent)
            else {
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            };
            if !record.status.is_terminal() {
                // Trust the part files, not the last snapshot; an interrupted completion is reopened.
                let received: BTreeSet<u64> = (0..record.part_count)
                    .filter(|n| {
                        std::fs::metadata(self.part_path(&record.upload_id, *n))
                            .is_ok_and(|meta| meta.len() == record.part_len(*n))
                    })
                    .collect();
                record.received = received;
                record.status = record.progress_status();
            }
            if let Some(key) = &record.idempotency_key {
                state.keys.insert(key.clone(), record.upload_id.clone());
            }
            state.records.insert(record.upload_id.clone(), record);
        }
    }

    /// Current limits (the staging quota is the free space of the staging filesystem).
    pub fn limits(&self) -> UploadLimits {
        UploadLimits {
            max_upload_bytes: MAX_UPLOAD_BYTES,
            max_part_bytes: MAX_PART_BYTES,
            max_concurrency: MAX_CONCURRENCY,
            sandbox_staging_quota_bytes: free_space(&self.root),
        }
    }

    /// Creates a session for `request` publishing to the resolved `target` (or returns the session
    /// created earlier with the same idempotency `key`).
    pub fn create(&self, request: &CreateUploadRequest, target: String, key: Option<String>) -> GuestResult<Record> {
        if let Some(existing) = key
            .as_ref()
            .and_then(|key| self.lock().keys.get(key).cloned())
            .and_then(|id| self.lock().records.get(&id).cloned())
        {
            return Ok(existing);
        }
        validate(request)?;
        let length = request.content_length;
        if length > MAX_UPLOAD_BYTES {
            return Err(UploadError::new(
                R::SizeLimitExceeded,
                format!("upload of {length} bytes exceeds the limit of {MAX_UPLOAD_BYTES} bytes"),
            )
            .path(&target)
            .details(json!({"content_length": length, "max_upload_bytes": MAX_UPLOAD_BYTES}))
            .into());
        }
        std::fs::create_dir_all(&self.root)
            .and_then(|()| {
                // Staged bytes are guestd's until published with the user's credentials.
                std::fs::set_permissions(&self.root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            })
            .map_err(|error| GuestError::file_op("create", &self.root.display().to_string(), error))?;
        let free = free_space(&self.root);
        if length > free {
            return Err(UploadError::new(
                R::InsufficientStagingSpace,
                format!("not enough staging space for {length} bytes ({free} bytes free); free some disk space in the sandbox"),
            )
            .path(&target)
            .details(json!({"content_length": length, "available_bytes": free}))
            .into());
        }
        let record = Record {
            whole_checksum_sha256: request.whole_checksum_sha256.as_ref().map(|sum| sum.to_ascii_lowercase()),
            user: request.user.clone().filter(|user| !user.trim().is_empty()),
            idempotency_key: key.clone(),
            ..Record::new(new_id("up_"), request.kind, request.source_kind, target, length, request.conflict)
        };
        let dir = self.dir(&record.upload_id);
        std::fs::create_dir_all(&dir)
            .map_err(|error| GuestError::file_op("create", &dir.display().to_string(), error))?;
        let mut state = self.lock();
        if let Some(existing) = key.as_ref().and_then(|key| state.keys.get(key)).and_then(|id| state.records.get(id)) {
            let existing = existing.clone();
            drop(state);
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(existing);
        }
        self.persist(&record)?;
        if let Some(key) = key {
            state.keys.insert(key, record.upload_id.clone());
        }
        state.records.insert(record.upload_id.clone(), record.clone());
        Ok(record)
    }

    /// The ids of every session known (the fuzz targets list what a reload found).
    #[cfg(feature = "fuzzing")]
    pub fn ids(&self) -> Vec<String> {
        self.lock().records.keys().cloned().collect()
    }

    /// The session `id` (expiring it first if it is past its time).
    pub fn get(&self, id: &str) -> GuestResult<Record> {
        let mut state = self.lock();
        let Some(record) = state.records.get_mut(id) else {
            return Err(GuestError::UploadNotFound { upload_id: id.to_owned() });
        };
        if !record.status.is_terminal() && record.status != UploadStatus::Completing && record.expires_at < Utc::now() {
            record.status = UploadStatus::Expired;
            record.updated_at = Utc::now();
            let record = record.clone();
            self.discard_parts(&record);
            let _ = self.persist(&record);
            return Ok(record);
        }
        Ok(record.clone())
    }

    /// Applies `change` to session `id` under the lock and persists the result.
    pub fn update<T>(&self, id: &str, change: impl FnOnce(&mut Record) -> GuestResult<T>) -> GuestResult<(Record, T)> {
        let mut state = self.lock();
        let Some(record) = state.records.get_mut(id) else {
            return Err(GuestError::UploadNotFound { upload_id: id.to_owned() });
        };
        let mut draft = record.clone();
        let value = change(&mut draft)?;
        self.persist(&draft)?;
        *record = draft.clone();
        Ok((draft, value))
    }

    /// Aborts session `id`: its parts are deleted, a tombstone stays until the sweep.
    pub fn abort(&self, id: &str) -> GuestResult<Record> {
        let (record, ()) = self.update(id, |record| {
            if !record.status.is_terminal() {
                record.status = UploadStatus::Aborted;
                record.touch();
            }
            Ok(())
        })?;
        self.discard_parts(&record);
        Ok(record)
    }

    /// Deletes the part files of `record` (its `session.json` stays).
    pub fn discard_parts(&self, record: &Record) {
        let Ok(entries) = std::fs::read_dir(self.dir(&record.upload_id)) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name() != "session.json" {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Expires idle sessions (deleting their parts) and forgets tombstones older than the TTL.
    pub fn sweep(&self) {
        let now = Utc::now();
        let ids: Vec<String> = self.lock().records.keys().cloned().collect();
        for id in ids {
            let Ok(record) = self.get(&id) else { continue };
            let stale =
                record.status.is_terminal() && record.updated_at + chrono::Duration::hours(SESSION_TTL_HOURS) < now;
            if stale {
                let mut state = self.lock();
                state.records.remove(&id);
                state.keys.retain(|_, value| *value != id);
                drop(state);
                let _ = std::fs::remove_dir_all(self.dir(&id));
            }
        }
    }

    fn persist(&self, record: &Record) -> GuestResult<()> {
        let dir = self.dir(&record.upload_id);
        let path = dir.join("session.json");
        let temp = dir.join("session.json.tmp");
        let fail = |error| GuestError::file_op("save upload session", &path.display().to_string(), error);
        let bytes = serde_json::to_vec(record)
            .map_err(|error| GuestError::Internal { context: format!("cannot encode upload session: {error}") })?;
        std::fs::write(&temp, bytes).map_err(fail)?;
        std::fs::rename(&temp, &path).map_err(fail)
    }
}

fn validate(request: &CreateUploadRequest) -> GuestResult<()> {
    if request.target_path.trim().is_empty() {
        return Err(GuestError::invalid("target_path is empty; name where the upload goes"));
    }
    if let Some(algorithm) = &request.checksum_algorithm {
        if algorithm != "sha256" {
            return Err(GuestError::invalid(format!("unsupported checksum_algorithm {algorithm:?}; use \"sha256\"")));
        }
    }
    if let Some(format) = &request.archive_format {
        if format != "tar" || request.kind != UploadKind::DirectoryTar {
            return Err(GuestError::invalid(format!(
                "archive_format {format:?} is only valid as \"tar\" with kind \"directory_tar\""
            )));
        }
    }
    if let Some(sum) = &request.whole_checksum_sha256 {
        if sum.len() != 64 || !sum.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(GuestError::invalid("whole_checksum_sha256 must be 64 hex digits"));
        }
    }
    Ok(())
}

/// Bytes available to guestd on the filesystem holding `path` (its nearest existing ancestor).
pub fn free_space(path: &Path) -> u64 {
    let mut probe = Some(path);
    while let Some(candidate) = probe {
        if let Ok(stat) = nix::sys::statvfs::statvfs(candidate) {
            #[allow(clippy::unnecessary_cast)] // the field types differ between libc targets
            return (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64);
        }
        probe = candidate.parent();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use nullspace_types::upload_api::{UploadConflict, UploadSourceKind};

    #[test]
    fn a_session_file_with_another_plan_is_dropped_at_reload() {
        let staging = tempfile::tempdir().unwrap();
        let good = Record::new(
            "up_good".into(),
            UploadKind::File,
            UploadSourceKind::RestartableFile,
            "/t".into(),
            5,
            UploadConflict::Merge,
        );
        // Found by the `upload_ranges` fuzz target: 5 parts for 1 byte made the reload's part sizes
        // subtract past zero; a billion parts made it probe part files for hours.
        let planted = Record { content_length: 1, part_count: 5, upload_id: "up_bad".into(), ..good.clone() };
        for record in [&good, &planted] {
            let dir = staging.path().join(&record.upload_id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("session.json"), serde_json::to_vec(record).unwrap()).unwrap();
        }
        let uploads = Uploads::open(staging.path().to_path_buf());
        assert_eq!(uploads.get("up_good").unwrap().part_count, 1);
        assert!(uploads.get("up_bad").is_err());
        assert!(!staging.path().join("up_bad").exists());
    }
}
