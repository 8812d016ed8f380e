//! Template warm pool rows, and pool membership of sandboxes: counting members and the compare-and-set
//! claim that hands one idle member to exactly one create.

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{SandboxRecord, Store, StoreError, StoreResult};
use crate::control::SandboxState;

/// Whether a pool keeps sandboxes ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    /// Refilled to `min_ready`; creates may claim.
    Enabled,
    /// Not refilled and not claimed from; idle members stay for a later enable.
    Disabled,
    /// Not refilled; idle members are destroyed, none can be claimed.
    Draining,
}

impl PoolState {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Draining => "draining",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "enabled" => Self::Enabled,
            "disabled" => Self::Disabled,
            "draining" => Self::Draining,
            _ => return None,
        })
    }

    /// Whether the refill task keeps this pool at its target.
    pub fn refills(self) -> bool {
        self == Self::Enabled
    }

    /// Whether idle members must be destroyed.
    pub fn destroys_idle(self) -> bool {
        self == Self::Draining
    }
}

/// A warm pool as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmPoolRecord {
    /// `twp_…` id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Name, unique per tenant.
    pub name: String,
    /// Template reference as given.
    pub template_ref: String,
    /// The built template (`tmpl_…`) or built-in name the reference resolved to.
    pub template_id: String,
    /// Idle sandboxes the refill keeps started.
    pub min_ready: u32,
    /// Most sandboxes (idle and starting) the pool holds at once.
    pub max_ready: u32,
    /// CPU cores of each member.
    pub vcpus: u32,
    /// Memory of each member, MiB.
    pub memory_mb: u32,
    /// Disk of each member, MiB, as requested.
    pub disk_mb: Option<u32>,
    /// Enabled, disabled or draining.
    pub state: PoolState,
    /// Idle members older than this are replaced (`None`: kept until claimed).
    pub idle_timeout_seconds: Option<u64>,
    /// `prefer`, `require` or `bypass`: the mode of creates that name no mode.
    pub checkout_policy: String,
    /// Labels (string map).
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// Metadata (JSON object).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// RFC 3339 times.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Last enable.
    pub enabled_at: Option<String>,
    /// Last disable.
    pub disabled_at: Option<String>,
    /// Last drain.
    pub drain_requested_at: Option<String>,
    /// Last refill pass.
    pub last_reconciled_at: Option<String>,
}

/// Members of one pool by what they are doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Idle and running: claimable.
    pub ready: u32,
    /// Idle and still starting.
    pub warming: u32,
    /// Claimed by a create and still alive.
    pub claimed: u32,
    /// Idle members that failed (error state) and await removal.
    pub failed: u32,
}

const COLUMNS: &str = "id, tenant_id, name, template_ref, template_id, min_ready, max_ready, vcpus, memory_mb, \
                       disk_mb, state, idle_timeout_seconds, checkout_policy, labels, metadata, created_at, \
                       updated_at, enabled_at, disabled_at, drain_requested_at, last_reconciled_at";

fn decode(row: &SqliteRow) -> StoreResult<WarmPoolRecord> {
    let id: String = column(row, "id", "?")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let small = |name: &str| -> StoreResult<u32> {
        let value: i64 = column(row, name, &id)?;
        u32::try_from(value).map_err(|_| corrupt(format!("column {name} out of range: {value}")))
    };
    let object = |name: &str| -> StoreResult<serde_json::Map<String, serde_json::Value>> {
        serde_json::from_str(&column::<String>(row, name, &id)?).map_err(|e| corrupt(format!("column {name}: {e}")))
    };
    let state: String = column(row, "state", &id)?;
    let disk: Option<i64> = column(row, "disk_mb", &id)?;
    let idle: Option<i64> = column(row, "idle_timeout_seconds", &id)?;
    Ok(WarmPoolRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        name: column(row, "name", &id)?,
        template_ref: column(row, "template_ref", &id)?,
        template_id: column(row, "template_id", &id)?,
        min_ready: small("min_ready")?,
        max_ready: small("max_ready")?,
        vcpus: small("vcpus")?,
        memory_mb: small("memory_mb")?,
        disk_mb: disk.map(u32::try_from).transpose().map_err(|e| corrupt(format!("disk_mb: {e}")))?,
        state: PoolState::parse(&state).ok_or_else(|| corrupt(format!("unknown pool state {state}")))?,
        idle_timeout_seconds: idle.map(u64::try_from).transpose().map_err(|e| corrupt(format!("idle: {e}")))?,
        checkout_policy: column(row, "checkout_policy", &id)?,
        labels: object("labels")?,
        metadata: object("metadata")?,
        created_at: column(row, "created_at", &id)?,
        updated_at: column(row, "updated_at", &id)?,
        enabled_at: column(row, "enabled_at", &id)?,
        disabled_at: column(row, "disabled_at", &id)?,
        drain_requested_at: column(row, "drain_requested_at", &id)?,
        last_reconciled_at: column(row, "last_reconciled_at", &id)?,
        id,
    })
}

impl Store {
    /// Inserts a pool; `false` when the tenant already has a pool of that name (nothing inserted).
    pub async fn insert_warm_pool(&self, pool: &WarmPoolRecord) -> StoreResult<bool> {
        let result = sqlx::query(&format!(
            "INSERT INTO warm_pools ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21) ON CONFLICT (tenant_id, name) DO NOTHING"
        ))
        .bind(&pool.id)
        .bind(&pool.tenant_id)
        .bind(&pool.name)
        .bind(&pool.template_ref)
        .bind(&pool.template_id)
        .bind(i64::from(pool.min_ready))
        .bind(i64::from(pool.max_ready))
        .bind(i64::from(pool.vcpus))
        .bind(i64::from(pool.memory_mb))
        .bind(pool.disk_mb.map(i64::from))
        .bind(pool.state.as_str())
        .bind(pool.idle_timeout_seconds.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
        .bind(&pool.checkout_policy)
        .bind(serde_json::Value::Object(pool.labels.clone()).to_string())
        .bind(serde_json::Value::Object(pool.metadata.clone()).to_string())
        .bind(&pool.created_at)
        .bind(&pool.updated_at)
        .bind(&pool.enabled_at)
        .bind(&pool.disabled_at)
        .bind(&pool.drain_requested_at)
        .bind(&pool.last_reconciled_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert warm pool"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Writes every field of an existing pool; `false` when the new name is taken by another pool of the
    /// tenant or the pool is gone.
    pub async fn update_warm_pool(&self, pool: &WarmPoolRecord) -> StoreResult<bool> {
        let taken = sqlx::query("SELECT id FROM warm_pools WHERE tenant_id = $1 AND name = $2 AND id <> $3")
            .bind(&pool.tenant_id)
            .bind(&pool.name)
            .bind(&pool.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("check warm pool name"))?;
        if taken.is_some() {
            return Ok(false);
        }
        let result = sqlx::query(
            "UPDATE warm_pools SET name = $1, template_ref = $2, template_id = $3, min_ready = $4, max_ready = $5, \
             vcpus = $6, memory_mb = $7, disk_mb = $8, state = $9, idle_timeout_seconds = $10, \
             checkout_policy = $11, labels = $12, metadata = $13, updated_at = $14, enabled_at = $15, \
             disabled_at = $16, drain_requested_at = $17, last_reconciled_at = $18 WHERE id = $19 AND tenant_id = $20",
        )
        .bind(&pool.name)
        .bind(&pool.template_ref)
        .bind(&pool.template_id)
        .bind(i64::from(pool.min_ready))
        .bind(i64::from(pool.max_ready))
        .bind(i64::from(pool.vcpus))
        .bind(i64::from(pool.memory_mb))
        .bind(pool.disk_mb.map(i64::from))
        .bind(pool.state.as_str())
        .bind(pool.idle_timeout_seconds.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
        .bind(&pool.checkout_policy)
        .bind(serde_json::Value::Object(pool.labels.clone()).to_string())
        .bind(serde_json::Value::Object(pool.metadata.clone()).to_string())
        .bind(&pool.updated_at)
        .bind(&pool.enabled_at)
        .bind(&pool.disabled_at)
        .bind(&pool.drain_requested_at)
        .bind(&pool.last_reconciled_at)
        .bind(&pool.id)
        .bind(&pool.tenant_id)
        .execute(&self.pool)
        .await
        .map_err(query("update warm pool"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a refill pass of pool `id`.
    pub async fn mark_warm_pool_reconciled(&self, id: &str, at: &str) -> StoreResult<()> {
        sqlx::query("UPDATE warm_pools SET last_reconciled_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("mark warm pool reconciled"))?;
        Ok(())
    }

    /// The pool `id` of `tenant_id`.
    pub async fn get_warm_pool(&self, tenant_id: &str, id: &str) -> StoreResult<Option<WarmPoolRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM warm_pools WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select warm pool"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Pools of `tenant_id`, oldest first.
    pub async fn list_warm_pools(&self, tenant_id: &str) -> StoreResult<Vec<WarmPoolRecord>> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM warm_pools WHERE tenant_id = $1 ORDER BY created_at, id"))
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await
                .map_err(query("list warm pools"))?;
        rows.iter().map(decode).collect()
    }

    /// Every pool across tenants (for the refill task).
    pub async fn all_warm_pools(&self) -> StoreResult<Vec<WarmPoolRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM warm_pools ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await
            .map_err(query("list all warm pools"))?;
        rows.iter().map(decode).collect()
    }

    /// Deletes pool `id` of `tenant_id`; `false` when there was none. Its members keep their rows.
    pub async fn delete_warm_pool(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM warm_pools WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("delete warm pool"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Live members of pool `pool_id` counted by what they do.
    pub async fn warm_pool_counts(&self, pool_id: &str, starting: &[String]) -> StoreResult<PoolCounts> {
        // Running members in `starting` (their template's start command still runs) are warming.
        let starting = serde_json::to_string(starting).unwrap_or_else(|_| "[]".to_owned());
        let rows = sqlx::query(
            "SELECT state, pool_claimed, id IN (SELECT value FROM json_each($2)) AS starting, COUNT(*) AS n \
             FROM sandboxes WHERE warm_pool_id = $1 AND state NOT IN ('destroying', 'destroyed') \
             GROUP BY state, pool_claimed, starting",
        )
        .bind(pool_id)
        .bind(starting)
        .fetch_all(&self.pool)
        .await
        .map_err(query("count warm pool members"))?;
        let mut counts = PoolCounts::default();
        for row in &rows {
            let state: String = column(row, "state", pool_id)?;
            let claimed: bool = column(row, "pool_claimed", pool_id)?;
            let starting: bool = column(row, "starting", pool_id)?;
            let n = u32::try_from(column::<i64>(row, "n", pool_id)?).unwrap_or(u32::MAX);
            let slot = match (claimed, SandboxState::parse(&state)) {
                (true, _) => &mut counts.claimed,
                (false, Some(SandboxState::Running)) if starting => &mut counts.warming,
                (false, Some(SandboxState::Running)) => &mut counts.ready,
                (false, Some(SandboxState::Creating)) => &mut counts.warming,
                (false, _) => &mut counts.failed,
            };
            *slot = slot.saturating_add(n);
        }
        Ok(counts)
    }

    /// Unclaimed members of pool `pool_id` that are not being destroyed, oldest first.
    pub async fn idle_pool_members(&self, pool_id: &str) -> StoreResult<Vec<SandboxRecord>> {
        let ids: Vec<(String, String)> = {
            let rows = sqlx::query(
                "SELECT id, tenant_id FROM sandboxes WHERE warm_pool_id = $1 AND pool_claimed = 0 \
                 AND state NOT IN ('destroying', 'destroyed') ORDER BY created_at, id",
            )
            .bind(pool_id)
            .fetch_all(&self.pool)
            .await
            .map_err(query("select idle pool members"))?;
            rows.iter()
                .map(|row| {
                    let id: String = column(row, "id", pool_id)?;
                    let tenant: String = column(row, "tenant_id", &id)?;
                    Ok((id, tenant))
                })
                .collect::<StoreResult<_>>()?
        };
        let mut members = Vec::new();
        for (id, tenant) in ids {
            if let Some(record) = self.get_sandbox(&tenant, &id).await? {
                members.push(record);
            }
        }
        Ok(members)
    }

    /// Unclaimed, live sandboxes whose pool no longer exists (a refill finished after a delete).
    pub async fn orphan_pool_members(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id FROM sandboxes WHERE warm_pool_id IS NOT NULL AND pool_claimed = 0 \
             AND state NOT IN ('destroying', 'destroyed') AND warm_pool_id NOT IN (SELECT id FROM warm_pools)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("select orphan pool members"))?;
        rows.iter()
            .map(|row| {
                let id: String = column(row, "id", "?")?;
                let tenant: String = column(row, "tenant_id", &id)?;
                Ok((id, tenant))
            })
            .collect()
    }

    /// The tenant with id `tenant_id` (the refill task acts for a pool's owner).
    pub async fn get_tenant_by_id(&self, tenant_id: &str) -> StoreResult<Option<super::Tenant>> {
        let row = sqlx::query("SELECT id, name FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select tenant by id"))?;
        row.map(|row| Ok(super::Tenant { id: column(&row, "id", tenant_id)?, name: column(&row, "name", tenant_id)? }))
            .transpose()
    }

    /// Claims one running, unclaimed member of pool `pool_id` of `tenant_id` started from `template`:
    /// a single compare-and-set statement, so two claims never get the same sandbox. Returns its id.
    pub async fn claim_pool_sandbox(
        &self,
        tenant_id: &str,
        pool_id: &str,
        template: &str,
        starting: &[String],
    ) -> StoreResult<Option<String>> {
        // Members still starting their template are passed as a JSON array and skipped.
        let starting = serde_json::to_string(starting).unwrap_or_else(|_| "[]".to_owned());
        let row = sqlx::query(
            "UPDATE sandboxes SET pool_claimed = 1 WHERE id = (SELECT id FROM sandboxes WHERE tenant_id = $1 \
             AND warm_pool_id = $2 AND pool_claimed = 0 AND state = $3 AND template = $4 \
             AND id NOT IN (SELECT value FROM json_each($5)) ORDER BY created_at, id \
             LIMIT 1) AND pool_claimed = 0 AND state = $3 RETURNING id",
        )
        .bind(tenant_id)
        .bind(pool_id)
        .bind(SandboxState::Running.as_str())
        .bind(template)
        .bind(starting)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("claim pool sandbox"))?;
        row.map(|row| column(&row, "id", pool_id)).transpose()
    }

    /// Gives claimed sandbox `id` the settings of the create that claimed it.
    pub async fn apply_claim(&self, record: &SandboxRecord) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sandboxes SET envs = $1, metadata = $2, cwd = $3, timeout_ms = $4, deadline_ms = $5, \
             timeout_action = $6, idempotency_key = $7, created_at = $8, auto_resume = $9 \
             WHERE id = $10 AND pool_claimed = 1",
        )
        .bind(serde_json::to_string(&record.envs).unwrap_or_default())
        .bind(serde_json::Value::Object(record.metadata.clone()).to_string())
        .bind(&record.cwd)
        .bind(i64::try_from(record.timeout_ms).unwrap_or(i64::MAX))
        .bind(record.deadline_ms)
        .bind(&record.timeout_action)
        .bind(&record.idempotency_key)
        .bind(&record.created_at)
        .bind(record.auto_resume)
        .bind(&record.id)
        .execute(&self.pool)
        .await
        .map_err(query("apply claim"))?;
        Ok(())
    }

    /// Moves claimed pool member `id` from tenant `from` to tenant `to` (the system's built-in pools
    /// serve every tenant). False when `id` is not a claimed member of `from`.
    pub async fn adopt_pool_sandbox(&self, id: &str, from: &str, to: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE sandboxes SET tenant_id = $1 WHERE id = $2 AND tenant_id = $3 AND pool_claimed = 1")
                .bind(to)
                .bind(id)
                .bind(from)
                .execute(&self.pool)
                .await
                .map_err(query("adopt pool sandbox"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes claimed pool member `id` an ordinary sandbox that belongs to no pool.
    pub async fn leave_pool(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE sandboxes SET warm_pool_id = NULL, pool_claimed = 0 WHERE id = $1 AND pool_claimed = 1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("leave pool"))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "warm_pools_tests.rs"]
mod tests;
