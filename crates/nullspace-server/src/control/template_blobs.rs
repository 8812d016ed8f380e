//! Build-context blobs: the preflight (which files the server lacks), uploads checked against their
//! sha256 while they stream to disk, inline contents turned into blobs, and the path the build engine
//! reads a blob from. Blobs are per tenant, under `<data>/template-blobs/<tenant>/`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use nullspace_types::template_api::BuildRequest;
use nullspace_types::template_wire::{PreflightAnswer, PreflightRequest, PreflightResponse};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::service::ControlResult;
use super::{Control, ControlError};
use crate::clock;
use crate::store::template_blobs::BlobRecord;

/// Largest blob accepted (a whole build-context file).
pub const MAX_BLOB_BYTES: u64 = 16 << 30;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The id is not `sha256:<64 hex>`.
    #[error("blob id {0:?} is not sha256:<64 hex digits>; take blob ids from POST /v1/templates/blobs/preflight")]
    BadId(String),
    /// The content does not hash to the id.
    #[error("the uploaded content hashes to {actual}, not {expected}; upload the file's exact bytes")]
    Mismatch {
        /// The id.
        expected: String,
        /// What the body hashed to.
        actual: String,
    },
    /// Bigger than [`MAX_BLOB_BYTES`].
    #[error("the blob is larger than {MAX_BLOB_BYTES} bytes")]
    TooLarge,
    /// Reading the body failed.
    #[error("the upload body could not be read ({0}); send it again")]
    Body(String),
    /// Writing it failed.
    #[error("storing the blob failed")]
    Io(#[source] std::io::Error),
    /// Recording it failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The hex digest in blob id `blob_id`.
pub fn blob_hex(blob_id: &str) -> Option<&str> {
    let hex = blob_id.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// A directory name for `tenant_id` (tenant ids are `tn_<hex>`; anything else is hashed).
fn tenant_dir(tenant_id: &str) -> String {
    if !tenant_id.is_empty() && tenant_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        tenant_id.to_owned()
    } else {
        hex::encode(Sha256::digest(tenant_id.as_bytes()))
    }
}

impl Control {
    fn blob_dir(&self, tenant_id: &str) -> PathBuf {
        self.templates.blob_root.join(tenant_dir(tenant_id))
    }

    /// The file holding blob `blob_id` of `tenant_id`, when the tenant uploaded it and it is on disk.
    pub async fn template_blob_path(&self, tenant_id: &str, blob_id: &str) -> Option<PathBuf> {
        let hex = blob_hex(blob_id)?;
        let record = self.store.get_blob(tenant_id, blob_id).await.ok()??;
        let path = self.blob_dir(tenant_id).join(hex);
        if tokio::fs::metadata(&path).await.is_ok_and(|meta| meta.is_file()) {
            return Some(path);
        }
        tracing::warn!(blob_id, path = %record.path, "a recorded blob is missing on disk; it must be uploaded again");
        let _ = self.store.delete_blob(tenant_id, blob_id).await;
        None
    }

    /// For each file of the preflight, its blob id and whether the client must upload it (same order).
    pub async fn preflight_blobs(
        &self,
        tenant_id: &str,
        request: PreflightRequest,
    ) -> ControlResult<PreflightResponse> {
        let mut files = Vec::with_capacity(request.files.len());
        for file in request.files {
            if !super::template_validate::valid_context_path(&file.path) {
                return Err(ControlError::InvalidRequest {
                    message: format!("build context path {:?} must be relative, without '..'", file.path),
                });
            }
            if file.entry_type == "dir" {
                files.push(PreflightAnswer {
                    path: file.path,
                    entry_type: file.entry_type,
                    blob_id: None,
                    missing: false,
                    mode: file.mode,
                });
                continue;
            }
            if file.entry_type != "file" {
                return Err(ControlError::InvalidRequest {
                    message: format!("entry_type {:?} of {:?} must be file or dir", file.entry_type, file.path),
                });
            }
            let sha = file.sha256.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
            let blob_id = format!("sha256:{sha}");
            if blob_hex(&blob_id).is_none() {
                return Err(ControlError::InvalidRequest {
                    message: format!("file {:?} needs sha256 (64 hex digits) for the preflight", file.path),
                });
            }
            let missing =
                file.force_upload == Some(true) || self.template_blob_path(tenant_id, &blob_id).await.is_none();
            files.push(PreflightAnswer {
                path: file.path,
                entry_type: file.entry_type,
                blob_id: Some(blob_id),
                missing,
                mode: file.mode,
            });
        }
        Ok(PreflightResponse { files })
    }

    /// Stores the upload of blob `blob_id` for `tenant_id`: streamed to a temporary file while hashed,
    /// renamed into place only when the hash matches.
    pub async fn put_blob<S, E>(&self, tenant_id: &str, blob_id: &str, body: S) -> Result<BlobRecord, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let hex = blob_hex(blob_id).ok_or_else(|| BlobError::BadId(blob_id.to_owned()))?.to_owned();
        let dir = self.blob_dir(tenant_id);
        tokio::fs::create_dir_all(&dir).await.map_err(BlobError::Io)?;
        let temp = dir.join(format!(".upload-{}", crate::ids::claim_token()));
        let result = write_hashed(&temp, body).await;
        let (actual, size) = match result {
            Ok(done) => done,
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(error);
            }
        };
        if actual != hex {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(BlobError::Mismatch { expected: blob_id.to_owned(), actual: format!("sha256:{actual}") });
        }
        let path = dir.join(&hex);
        tokio::fs::rename(&temp, &path).await.map_err(BlobError::Io)?;
        let record = BlobRecord {
            tenant_id: tenant_id.to_owned(),
            blob_id: blob_id.to_owned(),
            size_bytes: size,
            path: path.display().to_string(),
            created_at: clock::now_rfc3339(),
        };
        self.store.insert_blob(&record).await?;
        Ok(record)
    }

    /// Turns the inline `content_base64` files of `request` into blobs of `tenant_id` (the request then
    /// references them by `blob_id` only).
    pub(super) async fn inline_files_to_blobs(&self, tenant_id: &str, request: &mut BuildRequest) -> ControlResult<()> {
        let Some(context) = request.build_context.as_mut() else { return Ok(()) };
        for file in context.files.iter_mut() {
            let Some(content) = file.content_base64.take() else { continue };
            let bytes = base64::engine::general_purpose::STANDARD.decode(content.as_bytes()).map_err(|_| {
                ControlError::InvalidRequest { message: format!("content_base64 of {:?} is not base64", file.path) }
            })?;
            let blob_id = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(bytes))]);
            self.put_blob(tenant_id, &blob_id, body).await.map_err(|error| ControlError::InvalidRequest {
                message: format!("storing the inline content of {:?} failed: {error}", file.path),
            })?;
            file.blob_id = Some(blob_id);
        }
        Ok(())
    }
}

async fn write_hashed<S, E>(path: &Path, mut body: S) -> Result<(String, u64), BlobError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path).await.map_err(BlobError::Io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| BlobError::Body(error.to_string()))?;
        size += chunk.len() as u64;
        if size > MAX_BLOB_BYTES {
            return Err(BlobError::TooLarge);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(BlobError::Io)?;
    }
    file.sync_all().await.map_err(BlobError::Io)?;
    Ok((hex::encode(hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_sha256_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(blob_hex(&good), Some("a".repeat(64).as_str()));
        for bad in [
            "blob_missing",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:../{}", "a".repeat(61)),
        ] {
            assert_eq!(blob_hex(bad), None, "{bad}");
        }
        assert_eq!(tenant_dir("tn_0123abcd"), "tn_0123abcd");
        assert_eq!(tenant_dir("../x").len(), 64);
    }
}
