//! `PUT /uploads/{id}/parts/{n}`: streams one part's body into a temporary file in the session's
//! staging directory while hashing it, checks its size and `x-nullspace-part-sha256`, then renames
//! it into place. Parts may arrive concurrently and out of order; a re-sent part replaces the old one.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use nullspace_types::upload_api::{UploadFailureReason as R, UploadStatus};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::UploadError;
use super::record::Record;
use super::store::Uploads;
use crate::error::{GuestError, GuestResult};
use crate::files::bulk::ChunkWriter;

static PART_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The error for a request on a session that no longer takes parts or completions.
pub fn closed(record: &Record) -> Option<UploadError> {
    let (reason, what) = match record.status {
        UploadStatus::Completed => (R::UploadAlreadyCompleted, "was already completed"),
        UploadStatus::Completing => (R::UploadAlreadyCompleted, "is being completed"),
        UploadStatus::Aborted => (R::UploadAborted, "was aborted"),
        UploadStatus::Failed => (R::UploadAborted, "failed earlier"),
        UploadStatus::Expired => (R::UploadExpired, "expired"),
        _ => return None,
    };
    let message = format!("upload session {} {what}; start a new upload", record.upload_id);
    Some(
        UploadError::new(reason, message)
            .upload(&record.upload_id)
            .path(&record.target_path)
            .details(json!({"status": record.status})),
    )
}

/// Receives part `n` of session `id` from `body` (`declared_len` from Content-Length, `sha256` from
/// the part header) and returns the updated session.
pub async fn receive<S, E>(
    uploads: &Uploads,
    id: &str,
    n: u64,
    declared_len: Option<u64>,
    sha256: Option<String>,
    mut body: S,
) -> GuestResult<Record>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let record = uploads.get(id)?;
    if let Some(error) = closed(&record) {
        return Err(error.part(n).into());
    }
    let fail = |reason, message: String| UploadError::new(reason, message).upload(id).path(&record.target_path).part(n);
    if n >= record.part_count {
        return Err(fail(
            R::PartOutOfRange,
            format!("part {n} is out of range; this upload has parts 0..{}", record.part_count),
        )
        .details(json!({"part_count": record.part_count}))
        .into());
    }
    let expected = record.part_len(n);
    let size_error = |actual: u64| {
        fail(
            R::PartSizeMismatch,
            format!("part {n} must be {expected} bytes, got {actual}; send exactly part_size bytes (the last part holds the rest)"),
        )
        .details(json!({"expected_bytes": expected, "actual_bytes": actual}))
    };
    if let Some(declared) = declared_len.filter(|declared| *declared != expected) {
        return Err(size_error(declared).into());
    }
    let final_path = uploads.part_path(id, n);
    let temp = uploads.dir(id).join(format!("part-{n}.tmp-{}", PART_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let temp_name = temp.display().to_string();
    let written = async {
        let file = std::fs::File::create(&temp).map_err(|error| GuestError::file_op("stage", &temp_name, error))?;
        // Staged parts are not synced: the publish syncs the file it makes of them.
        let writer = ChunkWriter::start(file, false);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|error| GuestError::invalid(format!("part {n} broke off: {error}; send it again")))?;
            total += chunk.len() as u64;
            if total > expected {
                return Err(size_error(total).into());
            }
            hasher.update(&chunk);
            if writer.send(chunk).await.is_err() {
                break; // the writer's error comes from `finish`
            }
        }
        writer.finish().await.map_err(|error| GuestError::file_op("stage", &temp_name, error))?;
        if total != expected {
            return Err(size_error(total).into());
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(claimed) = sha256.as_ref().map(|sum| sum.trim().to_ascii_lowercase()) {
            if claimed != actual {
                return Err(fail(
                    R::InvalidPartChecksum,
                    format!("part {n} does not match its x-nullspace-part-sha256; send it again"),
                )
                .details(json!({"expected_sha256": claimed, "actual_sha256": actual}))
                .into());
            }
        }
        tokio::fs::rename(&temp, &final_path).await.map_err(|error| GuestError::file_op("stage", &temp_name, error))
    }
    .await;
    if let Err(error) = written {
        let _ = tokio::fs::remove_file(&temp).await;
        // A session aborted meanwhile has no staging directory left: report the abort.
        if let Ok(record) = uploads.get(id) {
            if let Some(closed) = closed(&record) {
                return Err(closed.part(n).into());
            }
        }
        return Err(error);
    }
    let (record, ()) = uploads.update(id, |record| {
        if let Some(error) = closed(record) {
            return Err(error.part(n).into());
        }
        record.received.insert(n);
        record.status = record.progress_status();
        record.touch();
        Ok(())
    })?;
    Ok(record)
}
