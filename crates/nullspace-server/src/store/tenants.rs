//! Tenant quotas: the limits the operator set per tenant and what the tenant holds now (the figures
//! quota checks compare), plus lookups of tenants by name for the CLI.

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult, Tenant};
use crate::clock;
use crate::control::SandboxState;

/// Limits of one tenant; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sandboxes it may hold (creating, running, hibernating or paused).
    pub max_sandboxes: Option<u64>,
    /// vCPUs its sandboxes may reserve together (paused ones reserve none).
    pub max_vcpus: Option<u64>,
    /// Memory its sandboxes may reserve together, MiB (paused ones reserve none).
    pub max_memory_mb: Option<u64>,
    /// Disk its sandboxes may reserve together, MiB (paused ones included).
    pub max_disk_mb: Option<u64>,
    /// Volumes it may hold.
    pub max_volumes: Option<u64>,
}

/// A change of limits: `None` keeps a limit, `Some(None)` removes it, `Some(Some(n))` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// See [`TenantLimits::max_sandboxes`].
    pub max_sandboxes: Option<Option<u64>>,
    /// See [`TenantLimits::max_vcpus`].
    pub max_vcpus: Option<Option<u64>>,
    /// See [`TenantLimits::max_memory_mb`].
    pub max_memory_mb: Option<Option<u64>>,
    /// See [`TenantLimits::max_disk_mb`].
    pub max_disk_mb: Option<Option<u64>>,
    /// See [`TenantLimits::max_volumes`].
    pub max_volumes: Option<Option<u64>>,
}

impl LimitsUpdate {
    /// `current` with this change applied.
    pub fn apply(&self, current: TenantLimits) -> TenantLimits {
        TenantLimits {
            max_sandboxes: self.max_sandboxes.unwrap_or(current.max_sandboxes),
            max_vcpus: self.max_vcpus.unwrap_or(current.max_vcpus),
            max_memory_mb: self.max_memory_mb.unwrap_or(current.max_memory_mb),
            max_disk_mb: self.max_disk_mb.unwrap_or(current.max_disk_mb),
            max_volumes: self.max_volumes.unwrap_or(current.max_volumes),
        }
    }
}

/// What a tenant holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Sandboxes creating, running, hibernating or paused (idle members of its own warm pools too).
    pub sandboxes: u64,
    /// vCPUs of those not paused.
    pub vcpus: u64,
    /// Memory of those not paused, MiB.
    pub memory_mb: u64,
    /// Disk of all of them, MiB (a sandbox without a disk size counts none).
    pub disk_mb: u64,
    /// Volumes.
    pub volumes: u64,
}

/// States whose sandboxes count against a tenant's limits.
const HELD: [SandboxState; 4] =
    [SandboxState::Creating, SandboxState::Running, SandboxState::Hibernating, SandboxState::Paused];

fn limit(row: &SqliteRow, name: &str, id: &str) -> StoreResult<Option<u64>> {
    column::<Option<i64>>(row, name, id)?
        .map(u64::try_from)
        .transpose()
        .map_err(|error| StoreError::Corrupt { id: id.to_owned(), reason: format!("{name}: {error}") })
}

fn count(row: &SqliteRow, name: &str, id: &str) -> StoreResult<u64> {
    u64::try_from(column::<i64>(row, name, id)?)
        .map_err(|error| StoreError::Corrupt { id: id.to_owned(), reason: format!("{name}: {error}") })
}

fn stored(value: Option<u64>) -> Option<i64> {
    value.map(|value| i64::try_from(value).unwrap_or(i64::MAX))
}

impl Store {
    /// The tenant named `name`, if it exists.
    pub async fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select tenant by name"))?;
        row.map(|row| {
            let id: String = column(&row, "id", name)?;
            Ok(Tenant { name: column(&row, "name", &id)?, id })
        })
        .transpose()
    }

    /// The limits of `tenant_id` (none when it has no row).
    pub async fn tenant_limits(&self, tenant_id: &str) -> StoreResult<TenantLimits> {
        let row = sqlx::query(
            "SELECT max_sandboxes, max_vcpus, max_memory_mb, max_disk_mb, max_volumes FROM tenant_limits \
             WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select tenant limits"))?;
        let Some(row) = row else { return Ok(TenantLimits::default()) };
        Ok(TenantLimits {
            max_sandboxes: limit(&row, "max_sandboxes", tenant_id)?,
            max_vcpus: limit(&row, "max_vcpus", tenant_id)?,
            max_memory_mb: limit(&row, "max_memory_mb", tenant_id)?,
            max_disk_mb: limit(&row, "max_disk_mb", tenant_id)?,
            max_volumes: limit(&row, "max_volumes", tenant_id)?,
        })
    }

    /// Applies `update` to the limits of `tenant_id` in one statement and returns the result.
    pub async fn set_tenant_limits(&self, tenant_id: &str, update: &LimitsUpdate) -> StoreResult<TenantLimits> {
        let mut tx = self.pool.begin().await.map_err(query("begin set tenant limits"))?;
        let current = {
            let row = sqlx::query(
                "SELECT max_sandboxes, max_vcpus, max_memory_mb, max_disk_mb, max_volumes FROM tenant_limits \
                 WHERE tenant_id = $1",
            )
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query("select tenant limits"))?;
            match row {
                Some(row) => TenantLimits {
                    max_sandboxes: limit(&row, "max_sandboxes", tenant_id)?,
                    max_vcpus: limit(&row, "max_vcpus", tenant_id)?,
                    max_memory_mb: limit(&row, "max_memory_mb", tenant_id)?,
                    max_disk_mb: limit(&row, "max_disk_mb", tenant_id)?,
                    max_volumes: limit(&row, "max_volumes", tenant_id)?,
                },
                None => TenantLimits::default(),
            }
        };
        let limits = update.apply(current);
        sqlx::query(
            "INSERT INTO tenant_limits (tenant_id, max_sandboxes, max_vcpus, max_memory_mb, max_disk_mb, max_volumes, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET \
             max_sandboxes = excluded.max_sandboxes, max_vcpus = excluded.max_vcpus, \
             max_memory_mb = excluded.max_memory_mb, max_disk_mb = excluded.max_disk_mb, \
             max_volumes = excluded.max_volumes, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(stored(limits.max_sandboxes))
        .bind(stored(limits.max_vcpus))
        .bind(stored(limits.max_memory_mb))
        .bind(stored(limits.max_disk_mb))
        .bind(stored(limits.max_volumes))
        .bind(clock::now_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(query("set tenant limits"))?;
        tx.commit().await.map_err(query("commit tenant limits"))?;
        Ok(limits)
    }

    /// What `tenant_id` holds now, leaving out sandbox `excluding` (a paused sandbox a resume replaces).
    pub async fn tenant_usage(&self, tenant_id: &str, excluding: Option<&str>) -> StoreResult<TenantUsage> {
        let held = serde_json::to_string(&HELD.map(SandboxState::as_str)).unwrap_or_else(|_| "[]".to_owned());
        let row = sqlx::query(
            "SELECT COUNT(*) AS sandboxes, \
             COALESCE(SUM(CASE WHEN state = $3 THEN 0 ELSE vcpus END), 0) AS vcpus, \
             COALESCE(SUM(CASE WHEN state = $3 THEN 0 ELSE memory_mb END), 0) AS memory_mb, \
             COALESCE(SUM(COALESCE(disk_mb, 0)), 0) AS disk_mb, \
             (SELECT COUNT(*) FROM volumes WHERE tenant_id = $1) AS volumes \
             FROM sandboxes WHERE tenant_id = $1 AND state IN (SELECT value FROM json_each($2)) AND id <> $4",
        )
        .bind(tenant_id)
        .bind(held)
        .bind(SandboxState::Paused.as_str())
        .bind(excluding.unwrap_or_default())
        .fetch_one(&self.pool)
        .await
        .map_err(query("select tenant usage"))?;
        Ok(TenantUsage {
            sandboxes: count(&row, "sandboxes", tenant_id)?,
            vcpus: count(&row, "vcpus", tenant_id)?,
            memory_mb: count(&row, "memory_mb", tenant_id)?,
            disk_mb: count(&row, "disk_mb", tenant_id)?,
            volumes: count(&row, "volumes", tenant_id)?,
        })
    }

    /// Puts claimed pool member `id` back into its pool (a claim whose adoption a quota refused).
    pub async fn unclaim_pool_sandbox(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE sandboxes SET pool_claimed = 0 WHERE id = $1 AND pool_claimed = 1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("unclaim pool sandbox"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VolumeRecord;

    #[tokio::test]
    async fn limits_are_set_changed_and_cleared_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("t").await.unwrap();
        assert_eq!(store.tenant_limits(&tenant.id).await.unwrap(), TenantLimits::default());
        let set = LimitsUpdate { max_sandboxes: Some(Some(3)), max_vcpus: Some(Some(4)), ..LimitsUpdate::default() };
        store.set_tenant_limits(&tenant.id, &set).await.unwrap();
        let change = LimitsUpdate { max_sandboxes: Some(None), max_volumes: Some(Some(2)), ..LimitsUpdate::default() };
        let limits = store.set_tenant_limits(&tenant.id, &change).await.unwrap();
        let expected = TenantLimits { max_vcpus: Some(4), max_volumes: Some(2), ..TenantLimits::default() };
        assert_eq!(limits, expected);
        assert_eq!(store.tenant_limits(&tenant.id).await.unwrap(), expected);
        assert_eq!(store.tenant_by_name("t").await.unwrap(), Some(tenant));
        assert_eq!(store.tenant_by_name("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn usage_counts_held_sandboxes_and_volumes_of_the_tenant_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("t").await.unwrap();
        let other = store.ensure_tenant("o").await.unwrap();
        let sandbox = |id: &str, tenant_id: &str, state: &str, vcpus: i64, memory: i64| {
            sqlx::query(
                "INSERT INTO sandboxes (id, tenant_id, state, template, vcpus, memory_mb, envs, metadata, cwd, \
                 created_at, timeout_ms, deadline_ms, timeout_action) \
                 VALUES ($1, $2, $3, 'base', $4, $5, '{}', '{}', '/', 'now', 1, 1, 'destroy')",
            )
            .bind(id.to_owned())
            .bind(tenant_id.to_owned())
            .bind(state.to_owned())
            .bind(vcpus)
            .bind(memory)
        };
        for (id, tenant_id, state, vcpus, memory) in [
            ("sb_run", &tenant.id, "running", 2, 512),
            ("sb_new", &tenant.id, "creating", 1, 256),
            ("sb_paused", &tenant.id, "paused", 4, 4096),
            ("sb_gone", &tenant.id, "destroyed", 8, 8192),
            ("sb_err", &tenant.id, "error", 8, 8192),
            ("sb_other", &other.id, "running", 8, 8192),
        ] {
            sandbox(id, tenant_id, state, vcpus, memory).execute(&store.pool).await.unwrap();
        }
        for (id, disk) in [("sb_run", 1024), ("sb_paused", 2048), ("sb_gone", 4096)] {
            sqlx::query("UPDATE sandboxes SET disk_mb = $1 WHERE id = $2")
                .bind(disk)
                .bind(id)
                .execute(&store.pool)
                .await
                .unwrap();
        }
        let volume = VolumeRecord {
            id: "vol_1".into(),
            tenant_id: tenant.id.clone(),
            name: "v".into(),
            created_at: "now".into(),
            max_size_bytes: None,
        };
        store.insert_volume(&volume).await.unwrap();
        let usage = store.tenant_usage(&tenant.id, None).await.unwrap();
        assert_eq!(usage, TenantUsage { sandboxes: 3, vcpus: 3, memory_mb: 768, disk_mb: 3072, volumes: 1 });
        let without_paused = store.tenant_usage(&tenant.id, Some("sb_paused")).await.unwrap();
        assert_eq!(without_paused.sandboxes, 2);
        let empty = store.ensure_tenant("e").await.unwrap();
        assert_eq!(store.tenant_usage(&empty.id, None).await.unwrap(), TenantUsage::default());
    }
}
