//! Tenants and their API keys. Keys are stored as SHA-256 hashes; the plain key is shown once.

use sha2::{Digest, Sha256};

use super::error::{column, query};
use super::{Store, StoreResult};
use crate::clock;

/// A tenant: the owner of sandboxes; every query is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant id (`tn_…`).
    pub id: String,
    /// Tenant name (unique).
    pub name: String,
}

/// Hash under which `key` is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// The tenant named `name`, created if missing.
    pub async fn ensure_tenant(&self, name: &str) -> StoreResult<Tenant> {
        let id = format!("tn_{}", &hash_key(name)[..16]);
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(&id)
            .bind(name)
            .bind(clock::now_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(query("insert tenant"))?;
        let row = sqlx::query("SELECT id, name FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(query("select tenant"))?;
        decode_tenant(&row)
    }

    /// Stores `key` for `tenant`; a key that already exists keeps its tenant.
    pub async fn add_api_key(&self, tenant: &Tenant, key: &str) -> StoreResult<()> {
        let prefix: String = key.chars().take(8).collect();
        sqlx::query(
            "INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(hash_key(key))
        .bind(&tenant.id)
        .bind(prefix)
        .bind(clock::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query("insert api key"))?;
        Ok(())
    }

    /// The tenant owning `key`, if the key is known.
    pub async fn tenant_for_key(&self, key: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query(
            "SELECT t.id, t.name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1",
        )
        .bind(hash_key(key))
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select api key"))?;
        row.as_ref().map(decode_tenant).transpose()
    }

    /// Number of API keys stored.
    pub async fn count_api_keys(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(&self.pool)
            .await
            .map_err(query("count api keys"))?;
        column(&row, "n", "api_keys")
    }
}

fn decode_tenant(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Tenant> {
    let id: String = column(row, "id", "?")?;
    Ok(Tenant { name: column(row, "name", &id)?, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_resolve_to_their_tenant_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let alpha = store.ensure_tenant("alpha").await.unwrap();
        let beta = store.ensure_tenant("beta").await.unwrap();
        assert_eq!(store.ensure_tenant("alpha").await.unwrap(), alpha);
        store.add_api_key(&alpha, "ns_alpha_key").await.unwrap();
        store.add_api_key(&beta, "ns_beta_key").await.unwrap();
        assert_eq!(store.tenant_for_key("ns_alpha_key").await.unwrap(), Some(alpha));
        assert_eq!(store.tenant_for_key("ns_beta_key").await.unwrap(), Some(beta));
        assert_eq!(store.tenant_for_key("ns_alpha_key_WRONG").await.unwrap(), None);
        assert_eq!(store.count_api_keys().await.unwrap(), 2);
    }
}
