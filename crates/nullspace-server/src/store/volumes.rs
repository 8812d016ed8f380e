//! Volume rows: create (name unique per tenant), lookups by id and by name scoped by tenant, list, delete.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::error::query;
use super::{Store, StoreResult};

/// A volume as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRecord {
    /// `vol_…` id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Name, unique per tenant.
    pub name: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

fn decode(row: &SqliteRow) -> VolumeRecord {
    VolumeRecord {
        id: row.get("id"),
        tenant_id: row.get("tenant_id"),
        name: row.get("name"),
        created_at: row.get("created_at"),
    }
}

impl Store {
    /// Inserts a volume; `false` when the tenant already has a volume with that name.
    pub async fn insert_volume(&self, volume: &VolumeRecord) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO volumes (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(&volume.id)
        .bind(&volume.tenant_id)
        .bind(&volume.name)
        .bind(&volume.created_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert volume"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Volume `id` of `tenant_id`.
    pub async fn get_volume(&self, tenant_id: &str, id: &str) -> StoreResult<Option<VolumeRecord>> {
        let row = sqlx::query("SELECT id, tenant_id, name, created_at FROM volumes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select volume"))?;
        Ok(row.as_ref().map(decode))
    }

    /// Volume named `name` of `tenant_id`.
    pub async fn get_volume_by_name(&self, tenant_id: &str, name: &str) -> StoreResult<Option<VolumeRecord>> {
        let row =
            sqlx::query("SELECT id, tenant_id, name, created_at FROM volumes WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("select volume by name"))?;
        Ok(row.as_ref().map(decode))
    }

    /// Volumes of `tenant_id`, oldest first.
    pub async fn list_volumes(&self, tenant_id: &str) -> StoreResult<Vec<VolumeRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, created_at FROM volumes WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list volumes"))?;
        Ok(rows.iter().map(decode).collect())
    }

    /// Deletes volume `id` of `tenant_id`; whether a row went.
    pub async fn delete_volume(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM volumes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("delete volume"))?;
        Ok(result.rows_affected() == 1)
    }
}
