//! Uploaded build-context blobs (per tenant) and template name claims.

use super::error::{column, query};
use super::{Store, StoreResult};

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    /// Owner.
    pub tenant_id: String,
    /// `sha256:<hex>`.
    pub blob_id: String,
    /// Size.
    pub size_bytes: u64,
    /// File holding it.
    pub path: String,
    /// Uploaded.
    pub created_at: String,
}

/// A reserved template name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// Token releasing it.
    pub token: String,
    /// Owner.
    pub tenant_id: String,
    /// `<namespace>/<name>`.
    pub canonical_ref: String,
    /// When it lapses.
    pub expires_at: String,
}

impl Store {
    /// Records blob `blob` (an existing record stays).
    pub async fn insert_blob(&self, blob: &BlobRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO template_blobs (tenant_id, blob_id, size_bytes, path, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, blob_id) DO NOTHING",
        )
        .bind(&blob.tenant_id)
        .bind(&blob.blob_id)
        .bind(i64::try_from(blob.size_bytes).unwrap_or(i64::MAX))
        .bind(&blob.path)
        .bind(&blob.created_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert blob"))?;
        Ok(())
    }

    /// Blob `blob_id` of `tenant_id`.
    pub async fn get_blob(&self, tenant_id: &str, blob_id: &str) -> StoreResult<Option<BlobRecord>> {
        let row = sqlx::query(
            "SELECT tenant_id, blob_id, size_bytes, path, created_at FROM template_blobs WHERE tenant_id = $1 AND blob_id = $2",
        )
        .bind(tenant_id)
        .bind(blob_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select blob"))?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = column(&row, "size_bytes", blob_id)?;
        Ok(Some(BlobRecord {
            tenant_id: column(&row, "tenant_id", blob_id)?,
            blob_id: column(&row, "blob_id", blob_id)?,
            size_bytes: u64::try_from(size).unwrap_or(0),
            path: column(&row, "path", blob_id)?,
            created_at: column(&row, "created_at", blob_id)?,
        }))
    }

    /// Forgets blob `blob_id` of `tenant_id` (its file went missing).
    pub async fn delete_blob(&self, tenant_id: &str, blob_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM template_blobs WHERE tenant_id = $1 AND blob_id = $2")
            .bind(tenant_id)
            .bind(blob_id)
            .execute(&self.pool)
            .await
            .map_err(query("delete blob"))?;
        Ok(())
    }

    /// Records claim `claim`.
    pub async fn insert_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO template_name_claims (token, tenant_id, canonical_ref, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&claim.token)
        .bind(&claim.tenant_id)
        .bind(&claim.canonical_ref)
        .bind(&claim.expires_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert claim"))?;
        Ok(())
    }

    /// Releases claim `token` of `tenant_id`; whether it existed.
    pub async fn delete_claim(&self, tenant_id: &str, token: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM template_name_claims WHERE tenant_id = $1 AND token = $2")
            .bind(tenant_id)
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(query("delete claim"))?;
        Ok(result.rows_affected() == 1)
    }
}
