//! Sandbox rows: insert, state transitions, lookups scoped by tenant, listing and deadlines.

use std::collections::BTreeMap;

use sqlx::sqlite::SqliteRow;

use nullspace_node::network::NetworkPolicy;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};
use crate::control::SandboxState;

/// A sandbox as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRecord {
    /// `sb_…` id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Current state.
    pub state: SandboxState,
    /// Template reference as requested.
    pub template: String,
    /// CPU cores.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Size of its writable disk in MiB (`None`: unlimited, its writes go to a plain host directory).
    pub disk_mb: Option<u32>,
    /// Create-time environment.
    pub envs: BTreeMap<String, String>,
    /// Metadata (JSON object).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Default working directory.
    pub cwd: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time it started running.
    pub started_at: Option<String>,
    /// Lifetime as last set, in ms.
    pub timeout_ms: u64,
    /// Deadline in Unix ms.
    pub deadline_ms: i64,
    /// `destroy` or `hibernate`.
    pub timeout_action: String,
    /// Idempotency key of the create request.
    pub idempotency_key: Option<String>,
    /// Why it failed, when state is error.
    pub error: Option<String>,
    /// Snapshot layer directories below its upper dir, top first (empty for a fresh template sandbox).
    pub layers: Vec<String>,
    /// Set while paused (and while hibernating): the snapshot holding its state.
    pub snapshot_id: Option<String>,
    /// Egress policy.
    pub network: NetworkPolicy,
    /// Volumes it mounts.
    pub volumes: Vec<nullspace_node::VolumeMount>,
    /// The warm pool it was started for (`None`: a plain sandbox).
    pub warm_pool_id: Option<String>,
    /// Whether a create claimed it from its pool (always `false` for a plain sandbox).
    pub pool_claimed: bool,
    /// Whether an SDK call or preview traffic resumes it (under its own id) while it is paused.
    pub auto_resume: bool,
}

impl SandboxRecord {
    /// Whether it is an idle pool member no create has claimed yet: such a sandbox belongs to its pool,
    /// not to the tenant's visible sandboxes.
    pub fn is_idle_pool_member(&self) -> bool {
        self.warm_pool_id.is_some() && !self.pool_claimed
    }
}

/// Filters of a sandbox listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// States to include.
    pub states: Vec<SandboxState>,
    /// Template reference, exact.
    pub template: Option<String>,
    /// Metadata entries that must all be present with equal values.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

const COLUMNS: &str = "id, tenant_id, state, template, vcpus, memory_mb, envs, metadata, cwd, created_at, started_at, \
                       timeout_ms, deadline_ms, timeout_action, idempotency_key, error, layers, snapshot_id, network, volumes, \
                       warm_pool_id, pool_claimed, auto_resume, disk_mb";

fn decode(row: &SqliteRow) -> StoreResult<SandboxRecord> {
    let id: String = column(row, "id", "?")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let text = |name: &str| column::<String>(row, name, &id);
    let number = |name: &str| column::<i64>(row, name, &id);
    let state = text("state")?;
    Ok(SandboxRecord {
        state: SandboxState::parse(&state).ok_or_else(|| corrupt(format!("unknown state {state}")))?,
        tenant_id: text("tenant_id")?,
        template: text("template")?,
        vcpus: u32::try_from(number("vcpus")?).map_err(|e| corrupt(e.to_string()))?,
        memory_mb: u32::try_from(number("memory_mb")?).map_err(|e| corrupt(e.to_string()))?,
        disk_mb: column::<Option<i64>>(row, "disk_mb", &id)?
            .map(u32::try_from)
            .transpose()
            .map_err(|e| corrupt(format!("disk_mb: {e}")))?,
        envs: serde_json::from_str(&text("envs")?).map_err(|e| corrupt(e.to_string()))?,
        metadata: serde_json::from_str(&text("metadata")?).map_err(|e| corrupt(e.to_string()))?,
        cwd: column(row, "cwd", &id)?,
        created_at: text("created_at")?,
        started_at: column(row, "started_at", &id)?,
        timeout_ms: u64::try_from(number("timeout_ms")?).map_err(|e| corrupt(e.to_string()))?,
        deadline_ms: column(row, "deadline_ms", &id)?,
        timeout_action: column(row, "timeout_action", &id)?,
        idempotency_key: column(row, "idempotency_key", &id)?,
        error: column(row, "error", &id)?,
        layers: serde_json::from_str(&text("layers")?).map_err(|e| corrupt(e.to_string()))?,
        snapshot_id: column(row, "snapshot_id", &id)?,
        network: serde_json::from_str(&text("network")?).map_err(|e| corrupt(e.to_string()))?,
        volumes: serde_json::from_str(&text("volumes")?).map_err(|e| corrupt(e.to_string()))?,
        warm_pool_id: column(row, "warm_pool_id", &id)?,
        pool_claimed: column(row, "pool_claimed", &id)?,
        auto_resume: column(row, "auto_resume", &id)?,
        id,
    })
}

impl Store {
    /// Inserts a new sandbox row. Returns `false` when the tenant already has a sandbox with the same
    /// idempotency key (nothing is inserted then).
    pub async fn insert_sandbox(&self, record: &SandboxRecord) -> StoreResult<bool> {
        let result = sqlx::query(&format!(
            "INSERT INTO sandboxes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) \
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
        ))
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(record.state.as_str())
        .bind(&record.template)
        .bind(i64::from(record.vcpus))
        .bind(i64::from(record.memory_mb))
        .bind(serde_json::to_string(&record.envs).unwrap_or_default())
        .bind(serde_json::Value::Object(record.metadata.clone()).to_string())
        .bind(&record.cwd)
        .bind(&record.created_at)
        .bind(&record.started_at)
        .bind(i64::try_from(record.timeout_ms).unwrap_or(i64::MAX))
        .bind(record.deadline_ms)
        .bind(&record.timeout_action)
        .bind(&record.idempotency_key)
        .bind(&record.error)
        .bind(serde_json::to_string(&record.layers).unwrap_or_default())
        .bind(&record.snapshot_id)
        .bind(serde_json::to_string(&record.network).unwrap_or_default())
        .bind(serde_json::to_string(&record.volumes).unwrap_or_default())
        .bind(&record.warm_pool_id)
        .bind(record.pool_claimed)
        .bind(record.auto_resume)
        .bind(record.disk_mb.map(i64::from))
        .execute(&self.pool)
        .await
        .map_err(query("insert sandbox"))?;
        Ok(result.rows_affected() == 1)
    }

    /// The sandbox `id` of `tenant_id`, in any state.
    pub async fn get_sandbox(&self, tenant_id: &str, id: &str) -> StoreResult<Option<SandboxRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sandboxes WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select sandbox"))?;
        row.as_ref().map(decode).transpose()
    }

    /// The sandbox created by `tenant_id` with `key`.
    pub async fn get_sandbox_by_idempotency_key(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> StoreResult<Option<SandboxRecord>> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM sandboxes WHERE tenant_id = $1 AND idempotency_key = $2"))
                .bind(tenant_id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("select sandbox by idempotency key"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Sandboxes of `tenant_id` matching `filter`, oldest first.
    pub async fn list_sandboxes(&self, tenant_id: &str, filter: &ListFilter) -> StoreResult<Vec<SandboxRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE tenant_id = $1 \
                 AND (warm_pool_id IS NULL OR pool_claimed = 1) ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list sandboxes"))?;
        let mut records = Vec::new();
        for row in &rows {
            let record = decode(row)?;
            let state_ok = filter.states.contains(&record.state);
            let template_ok = filter.template.as_ref().is_none_or(|t| *t == record.template);
            let metadata_ok = filter.metadata.iter().all(|(key, value)| record.metadata.get(key) == Some(value));
            if state_ok && template_ok && metadata_ok {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Every sandbox in one of `states`, across tenants (for the reaper and the reconcile).
    pub async fn sandboxes_in_states(&self, states: &[SandboxState]) -> StoreResult<Vec<SandboxRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM sandboxes WHERE state <> $1"))
            .bind(SandboxState::Destroyed.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(query("select sandboxes by state"))?;
        let mut records = Vec::new();
        for row in &rows {
            let record = decode(row)?;
            if states.contains(&record.state) {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Ids of running sandboxes whose deadline is at or before `now_ms`.
    pub async fn expired_sandboxes(&self, now_ms: i64) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT id, tenant_id FROM sandboxes WHERE state = $1 AND deadline_ms <= $2")
            .bind(SandboxState::Running.as_str())
            .bind(now_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(query("select expired sandboxes"))?;
        rows.iter()
            .map(|row| {
                let id: String = column(row, "id", "?")?;
                let tenant: String = column(row, "tenant_id", &id)?;
                Ok((id, tenant))
            })
            .collect()
    }

    /// Moves sandbox `id` from one of `from` to `to`; returns whether the row was in one of `from`.
    /// This compare-and-set is what makes concurrent transitions safe. Every `from → to` must be a
    /// transition the state machine allows ([`SandboxState::can_become`]); otherwise nothing is written.
    pub async fn transition(
        &self,
        id: &str,
        from: &[SandboxState],
        to: SandboxState,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        if let Some(state) = from.iter().find(|state| !state.can_become(to)) {
            return Err(StoreError::IllegalTransition { id: id.to_owned(), from: state.as_str(), to: to.as_str() });
        }
        let mut changed = false;
        for state in from {
            let started = if to == SandboxState::Running { Some(crate::clock::now_rfc3339()) } else { None };
            let result = sqlx::query(
                "UPDATE sandboxes SET state = $1, error = COALESCE($2, error), started_at = COALESCE($3, started_at) \
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(error)
            .bind(started)
            .bind(id)
            .bind(state.as_str())
            .execute(&self.pool)
            .await
            .map_err(query("transition sandbox"))?;
            changed |= result.rows_affected() == 1;
            if changed {
                break;
            }
        }
        Ok(changed)
    }

    /// Sets a new lifetime and deadline for sandbox `id`.
    pub async fn set_timeout(&self, id: &str, timeout_ms: u64, deadline_ms: i64, action: &str) -> StoreResult<()> {
        sqlx::query("UPDATE sandboxes SET timeout_ms = $1, deadline_ms = $2, timeout_action = $3 WHERE id = $4")
            .bind(i64::try_from(timeout_ms).unwrap_or(i64::MAX))
            .bind(deadline_ms)
            .bind(action)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("set timeout"))?;
        Ok(())
    }
}

impl Store {
    /// Records the snapshot a sandbox is being hibernated into (before the side effect) or was.
    pub async fn set_sandbox_snapshot(&self, id: &str, snapshot_id: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE sandboxes SET snapshot_id = $1 WHERE id = $2")
            .bind(snapshot_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("set sandbox snapshot"))?;
        Ok(())
    }

    /// Replaces the layer stack of sandbox `id` (top first), e.g. after a fork stacked a new layer below
    /// the parent's fresh upper dir.
    pub async fn set_sandbox_layers(&self, id: &str, layers: &[String]) -> StoreResult<()> {
        sqlx::query("UPDATE sandboxes SET layers = $1 WHERE id = $2")
            .bind(serde_json::to_string(layers).unwrap_or_default())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("set sandbox layers"))?;
        Ok(())
    }

    /// Replaces the mounts of sandbox `id` while it is running; `false` when it is not running (nothing
    /// changed).
    pub async fn set_running_sandbox_volumes(
        &self,
        id: &str,
        volumes: &[nullspace_node::VolumeMount],
    ) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE sandboxes SET volumes = $1 WHERE id = $2 AND state = $3")
            .bind(serde_json::to_string(volumes).unwrap_or_default())
            .bind(id)
            .bind(SandboxState::Running.as_str())
            .execute(&self.pool)
            .await
            .map_err(query("set sandbox volumes"))?;
        Ok(result.rows_affected() == 1)
    }

    /// The sandbox in `paused` whose snapshot is `snapshot_id`.
    pub async fn paused_sandbox_of_snapshot(
        &self,
        tenant_id: &str,
        snapshot_id: &str,
    ) -> StoreResult<Option<SandboxRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sandboxes WHERE tenant_id = $1 AND snapshot_id = $2 AND state = $3"
        ))
        .bind(tenant_id)
        .bind(snapshot_id)
        .bind(SandboxState::Paused.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select paused sandbox"))?;
        row.as_ref().map(decode).transpose()
    }
}

#[cfg(test)]
mod transition_tests {
    use super::*;

    #[tokio::test]
    async fn the_store_refuses_transitions_the_state_machine_forbids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let refused = store.transition("sb_x", &[SandboxState::Destroyed], SandboxState::Running, None).await;
        assert!(matches!(refused, Err(StoreError::IllegalTransition { from: "destroyed", to: "running", .. })));
        let mixed = [SandboxState::Running, SandboxState::Paused];
        let refused = store.transition("sb_x", &mixed, SandboxState::Hibernating, None).await;
        assert!(matches!(refused, Err(StoreError::IllegalTransition { from: "paused", .. })));
        // An allowed transition of a row that is not there is simply not applied.
        let applied = store.transition("sb_x", &[SandboxState::Running], SandboxState::Error, None).await.unwrap();
        assert!(!applied);
        let refused = store.transition("sb_x", &[SandboxState::Paused], SandboxState::Running, None).await;
        assert!(matches!(refused, Err(StoreError::IllegalTransition { from: "paused", to: "running", .. })));
    }

    #[tokio::test]
    async fn of_concurrent_resumes_of_one_paused_sandbox_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("t").await.unwrap();
        sqlx::query(
            "INSERT INTO sandboxes (id, tenant_id, state, template, vcpus, memory_mb, envs, metadata, cwd, \
             created_at, timeout_ms, deadline_ms, timeout_action, auto_resume) \
             VALUES ('sb_p', $1, 'paused', 'base', 1, 512, '{}', '{}', '/', 'now', 1, 1, 'hibernate', 1)",
        )
        .bind(&tenant.id)
        .execute(&store.pool)
        .await
        .unwrap();
        let attempts = (0..8).map(|_| store.transition("sb_p", &[SandboxState::Paused], SandboxState::Resuming, None));
        let won =
            futures::future::join_all(attempts).await.into_iter().filter(|result| *result.as_ref().unwrap()).count();
        assert_eq!(won, 1);
        let record = store.get_sandbox(&tenant.id, "sb_p").await.unwrap().unwrap();
        assert_eq!((record.state, record.auto_resume), (SandboxState::Resuming, true));
    }

    #[tokio::test]
    async fn a_row_with_a_value_of_the_wrong_type_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("t").await.unwrap();
        sqlx::query(
            "INSERT INTO sandboxes (id, tenant_id, state, template, vcpus, memory_mb, envs, metadata, cwd, \
             created_at, timeout_ms, deadline_ms, timeout_action) \
             VALUES ('sb_bad', $1, 'running', 'base', 'many', 512, '{}', '{}', '/', 'now', 1, 1, 'destroy')",
        )
        .bind(&tenant.id)
        .execute(&store.pool)
        .await
        .unwrap();
        let read = store.get_sandbox(&tenant.id, "sb_bad").await;
        assert!(
            matches!(&read, Err(StoreError::Corrupt { id, reason }) if id == "sb_bad" && reason.contains("vcpus")),
            "{read:?}"
        );
    }
}
