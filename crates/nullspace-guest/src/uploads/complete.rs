//! `POST /uploads/{id}/complete`: idempotent. A completed session answers with its recorded result;
//! otherwise every part must be there, the session turns `completing` (so parts and a second
//! completion are refused meanwhile), the file is published or the tar extracted on a blocking
//! thread with the credentials of the session's user (the staged parts are opened by guestd first),
//! and the session ends `completed` (parts deleted), `failed` (bad bytes: checksum or archive
//! entries; parts deleted) or back to `staged` (target conflicts and I/O errors, which may be fixed).

use std::sync::Arc;

use nullspace_types::upload_api::{CompleteUploadResponse, UploadFailureReason as R, UploadKind, UploadStatus};
use serde_json::json;

use super::error::UploadError;
use super::extract::publish_tar;
use super::parts::closed;
use super::publish::{publish_file, Published};
use super::reader::open_parts;
use super::store::Uploads;
use crate::error::{GuestError, GuestResult};
use crate::files::as_user::run_as;
use crate::files::upload::run_blocking;
use crate::state::Sandbox;

/// Completes session `id`, verifying `whole_checksum` (or the one given at create) when known.
pub async fn complete(
    sandbox: &Sandbox,
    uploads: &Arc<Uploads>,
    id: &str,
    whole_checksum: Option<String>,
) -> GuestResult<CompleteUploadResponse> {
    let (record, done) = uploads.update(id, |record| {
        if record.status == UploadStatus::Completed {
            return Ok(true);
        }
        if let Some(error) = closed(record) {
            return Err(error.into());
        }
        let missing = record.missing(32);
        if !missing.is_empty() {
            return Err(UploadError::new(
                R::MissingParts,
                format!(
                    "upload {} is missing parts (first missing: {}); upload them, then complete again",
                    record.upload_id, missing[0]
                ),
            )
            .upload(&record.upload_id)
            .path(&record.target_path)
            .details(json!({"missing_parts": missing, "next_part": missing[0]}))
            .into());
        }
        record.status = UploadStatus::Completing;
        record.touch();
        Ok(false)
    })?;
    if done {
        return Ok(response(uploads, record));
    }
    let expected =
        whole_checksum.map(|sum| sum.trim().to_ascii_lowercase()).or_else(|| record.whole_checksum_sha256.clone());
    let owner = match record.user.as_deref() {
        Some(name) => match sandbox.user(Some(name)) {
            Ok(user) => Some(user),
            Err(error) => {
                reopen(uploads, id);
                return Err(error);
            }
        },
        None => None,
    };
    let paths: Vec<_> = (0..record.part_count).map(|n| uploads.part_path(id, n)).collect();
    let target = record.target_path.clone();
    let parts = match run_blocking(move || {
        open_parts(&paths).map_err(|error| GuestError::file_op("read staged upload of", &target, error))
    })
    .await
    {
        Ok(parts) => parts,
        Err(error) => {
            reopen(uploads, id);
            return Err(error);
        }
    };
    let job = record.clone();
    let published = run_as(owner.as_ref(), move || match job.kind {
        UploadKind::File => publish_file(&job, parts, expected.as_deref()),
        UploadKind::DirectoryTar => publish_tar(&job, parts, expected.as_deref()),
    })
    .await;
    match published {
        Ok(Published { bytes, files }) => {
            let (record, ()) = uploads.update(id, |record| {
                record.status = UploadStatus::Completed;
                record.published_bytes = bytes;
                record.published_file_count = files;
                record.touch();
                Ok(())
            })?;
            uploads.discard_parts(&record);
            tracing::debug!(upload = id, bytes, files, "upload published");
            Ok(response(uploads, record))
        }
        Err(GuestError::Upload(error)) if bad_bytes(&error) => {
            if let Ok((record, ())) = uploads.update(id, |record| {
                record.status = UploadStatus::Failed;
                record.touch();
                Ok(())
            }) {
                uploads.discard_parts(&record);
            }
            Err(GuestError::Upload(error))
        }
        Err(error) => {
            reopen(uploads, id);
            Err(error)
        }
    }
}

/// Whether `error` means the staged bytes themselves are wrong (so the session cannot succeed).
fn bad_bytes(error: &UploadError) -> bool {
    matches!(
        error.reason,
        R::WholeChecksumMismatch
            | R::DirectoryExtractInvalidPath
            | R::DirectoryExtractInvalidSymlink
            | R::DirectoryExtractUnsupportedEntry
    )
}

fn reopen(uploads: &Uploads, id: &str) {
    let _ = uploads.update(id, |record| {
        record.status = record.progress_status();
        record.touch();
        Ok(())
    });
}

fn response(uploads: &Uploads, record: super::record::Record) -> CompleteUploadResponse {
    CompleteUploadResponse {
        published_bytes: record.published_bytes,
        published_file_count: record.published_file_count,
        session: record.info(uploads.limits()),
    }
}
