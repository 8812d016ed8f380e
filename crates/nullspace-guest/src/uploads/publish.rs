//! Publishing a `file` upload: the parts are copied in order into a hidden temporary file beside the
//! target while hashed, the whole checksum is verified, the file is synced, given its owner and mode
//! (the named user's, or the replaced file's), and renamed over the target. The target is never seen
//! truncated; a failed publish leaves it untouched.

use std::fs::File;
use std::io::{self, Read, Write};

use nullspace_types::upload_api::{UploadConflict, UploadFailureReason as R};
use serde_json::json;

use super::error::UploadError;
use super::reader::{HashingReader, PartsReader};
use super::record::Record;
use crate::error::{GuestError, GuestResult};
use crate::files::bulk::{Writeback, READ_CHUNK};
use crate::files::ops::ensure_parents;
pub use crate::files::upload::sync_parent;
use crate::files::upload::{adopt_ownership, temp_path};

/// What a completion published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Bytes.
    pub bytes: u64,
    /// Files and symlinks.
    pub files: u64,
}

/// The `target_conflict` error for `record`.
pub fn conflict(record: &Record, why: &str) -> UploadError {
    UploadError::new(
        R::TargetConflict,
        format!("{} {why}; remove it or upload with conflict \"replace\"", record.target_path),
    )
    .upload(&record.upload_id)
    .path(&record.target_path)
    .details(json!({"conflict": record.conflict}))
}

/// The `whole_checksum_mismatch` error for `record`.
pub fn checksum_mismatch(record: &Record, expected: &str, actual: &str) -> UploadError {
    UploadError::new(
        R::WholeChecksumMismatch,
        "the uploaded bytes do not match whole_checksum_sha256; upload the file again",
    )
    .upload(&record.upload_id)
    .path(&record.target_path)
    .details(json!({"expected_whole_checksum_sha256": expected, "actual_whole_checksum_sha256": actual}))
}

/// Publishes the staged `parts` of a `file` upload.
pub fn publish_file(record: &Record, parts: Vec<File>, expected: Option<&str>) -> GuestResult<Published> {
    let target = record.target_path.as_str();
    let existing = std::fs::symlink_metadata(target).ok();
    if let Some(metadata) = &existing {
        if metadata.is_dir() {
            return Err(conflict(record, "is a directory").into());
        }
        if record.conflict == UploadConflict::Error {
            return Err(conflict(record, "already exists").into());
        }
    }
    ensure_parents(target)?;
    let temp = temp_path(target);
    let result = (|| {
        let fail = |error| GuestError::file_op("write", target, error);
        let mut file = File::options().write(true).create_new(true).open(&temp).map_err(fail)?;
        let mut reader = HashingReader::new(PartsReader::new(parts));
        copy_durably(&mut reader, &mut file).map_err(fail)?;
        let (actual, bytes) = reader.finish().map_err(fail)?;
        if let Some(expected) = expected.filter(|expected| *expected != actual) {
            return Err(checksum_mismatch(record, expected, &actual).into());
        }
        file.flush().map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        adopt_ownership(&temp, target, existing.as_ref())?;
        std::fs::rename(&temp, target).map_err(fail)?;
        sync_parent(target);
        Ok(Published { bytes, files: 1 })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Copies `reader` to the end into `file` in large chunks, starting the file's writeback as it fills
/// (the caller syncs it).
fn copy_durably(reader: &mut impl Read, file: &mut File) -> io::Result<()> {
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut writeback = Writeback::default();
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        file.write_all(&buffer[..read])?;
        writeback.advance(file, read);
    }
}
