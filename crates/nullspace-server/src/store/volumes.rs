//! Volume rows: create (name unique per tenant), lookups by id and by name scoped by tenant, list, delete.

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};

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
    /// Size limit in bytes (`None`: unlimited).
    pub max_size_bytes: Option<u64>,
}

fn decode(row: &SqliteRow) -> StoreResult<VolumeRecord> {
    let id: String = column(row, "id", "?")?;
    let max_size_bytes = column::<Option<i64>>(row, "max_size_bytes", &id)?
        .map(u64::try_from)
        .transpose()
        .map_err(|error| StoreError::Corrupt { id: id.clone(), reason: format!("max_size_bytes: {error}") })?;
    Ok(VolumeRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        name: column(row, "name", &id)?,
        created_at: column(row, "created_at", &id)?,
        max_size_bytes,
        id,
    })
}

impl Store {
    /// Inserts a volume; `false` when the tenant already has a volume with that name.
    pub async fn insert_volume(&self, volume: &VolumeRecord) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO volumes (id, tenant_id, name, created_at, max_size_bytes) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(&volume.id)
        .bind(&volume.tenant_id)
        .bind(&volume.name)
        .bind(&volume.created_at)
        .bind(volume.max_size_bytes.map(|size| size.min(i64::MAX as u64) as i64))
        .execute(&self.pool)
        .await
        .map_err(query("insert volume"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Volume `id` of `tenant_id`.
    pub async fn get_volume(&self, tenant_id: &str, id: &str) -> StoreResult<Option<VolumeRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, created_at, max_size_bytes FROM volumes WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select volume"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Volume named `name` of `tenant_id`.
    pub async fn get_volume_by_name(&self, tenant_id: &str, name: &str) -> StoreResult<Option<VolumeRecord>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, created_at, max_size_bytes FROM volumes WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select volume by name"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Volumes of `tenant_id`, oldest first.
    pub async fn list_volumes(&self, tenant_id: &str) -> StoreResult<Vec<VolumeRecord>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, created_at, max_size_bytes FROM volumes WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list volumes"))?;
        rows.iter().map(decode).collect()
    }

    /// Every volume of every tenant (what the host must hold).
    pub async fn all_volumes(&self) -> StoreResult<Vec<VolumeRecord>> {
        let rows = sqlx::query("SELECT id, tenant_id, name, created_at, max_size_bytes FROM volumes ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(query("list all volumes"))?;
        rows.iter().map(decode).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(id: &str, tenant_id: &str, name: &str) -> VolumeRecord {
        VolumeRecord {
            id: id.into(),
            tenant_id: tenant_id.into(),
            name: name.into(),
            created_at: format!("2026-01-01T00:00:0{}Z", id.len() % 10),
            max_size_bytes: None,
        }
    }

    #[tokio::test]
    async fn names_are_unique_per_tenant_and_lookups_are_tenant_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let alpha = store.ensure_tenant("alpha").await.unwrap();
        let beta = store.ensure_tenant("beta").await.unwrap();
        assert!(store.insert_volume(&volume("vol_a", &alpha.id, "data")).await.unwrap());
        assert!(!store.insert_volume(&volume("vol_b", &alpha.id, "data")).await.unwrap(), "duplicate name");
        assert!(store.insert_volume(&volume("vol_c", &beta.id, "data")).await.unwrap(), "same name, other tenant");

        assert_eq!(store.get_volume(&alpha.id, "vol_a").await.unwrap().unwrap().name, "data");
        assert_eq!(store.get_volume(&beta.id, "vol_a").await.unwrap(), None, "other tenant's id");
        assert_eq!(store.get_volume_by_name(&beta.id, "data").await.unwrap().unwrap().id, "vol_c");
        assert_eq!(store.get_volume_by_name(&alpha.id, "nope").await.unwrap(), None);
        let listed: Vec<String> = store.list_volumes(&alpha.id).await.unwrap().into_iter().map(|v| v.id).collect();
        assert_eq!(listed, ["vol_a"]);

        assert!(!store.delete_volume(&beta.id, "vol_a").await.unwrap(), "other tenant cannot delete");
        assert!(store.delete_volume(&alpha.id, "vol_a").await.unwrap());
        assert_eq!(store.get_volume(&alpha.id, "vol_a").await.unwrap(), None);
        assert!(store.insert_volume(&volume("vol_d", &alpha.id, "data")).await.unwrap(), "name free again");

        let sized = VolumeRecord { max_size_bytes: Some(64 << 20), ..volume("vol_e", &beta.id, "sized") };
        assert!(store.insert_volume(&sized).await.unwrap());
        assert_eq!(store.get_volume(&beta.id, "vol_e").await.unwrap().unwrap().max_size_bytes, Some(64 << 20));
        let all: Vec<String> = store.all_volumes().await.unwrap().into_iter().map(|v| v.id).collect();
        assert_eq!(all, ["vol_c", "vol_d", "vol_e"], "every tenant's volumes");
    }
}
