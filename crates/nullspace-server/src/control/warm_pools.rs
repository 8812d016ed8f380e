//! Template warm pools: create, list, get, update, enable, disable, drain, reconcile and delete, with the
//! validation of a pool's settings. Keeping pools filled and claiming their sandboxes is
//! `warm_pool_claims.rs`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::service::ControlResult;
use super::template_refs::ResolvedTemplate;
use super::validate::invalid;
use super::{Control, ControlError};
use crate::clock;
use crate::store::warm_pools::{PoolCounts, PoolState, WarmPoolRecord};
use crate::store::Tenant;

/// Most sandboxes one pool may hold.
pub const MAX_POOL_SIZE: u32 = 32;
/// Longest pool name.
const MAX_NAME_LEN: usize = 128;
/// Modes a create may check a pool out with.
pub const CHECKOUT_MODES: [&str; 3] = ["prefer", "require", "bypass"];

/// Shared state of the warm-pool machinery: which pools are being refilled now, and the signals
/// between refills and waiting claims.
#[derive(Default)]
pub struct WarmPools {
    /// Pools with a refill running (at most one per pool).
    pub(super) refilling: Arc<Mutex<HashSet<String>>>,
    /// Wakes the refill task (a claim took a sandbox, a pool changed).
    pub(super) wake: tokio::sync::Notify,
    /// Signalled whenever a pool gained a ready sandbox (waiting `require`/`prefer` claims retry).
    pub(super) ready: tokio::sync::Notify,
    /// Members whose template start command and readiness are still running: running, not yet claimable.
    pub(super) starting: Mutex<HashSet<String>>,
}

impl WarmPools {
    /// Members still starting their template (see `starting`), for the store's claim and counts.
    pub(super) fn starting_members(&self) -> Vec<String> {
        self.starting.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

/// `resources` of a pool request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PoolResources {
    /// CPU cores.
    pub vcpus: Option<u32>,
    /// Memory, MiB.
    pub memory_mb: Option<u32>,
    /// Disk, MiB.
    pub disk_mb: Option<u32>,
}

/// Body of `POST` and `PATCH /v1/template-warm-pools`: every field optional (create requires
/// `template_ref`, `name`, `min_ready` and `max_ready`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PoolRequest {
    /// Template reference.
    #[serde(alias = "template")]
    pub template_ref: Option<String>,
    /// Name, unique per tenant.
    pub name: Option<String>,
    /// Ready sandboxes to keep.
    pub min_ready: Option<u32>,
    /// Most sandboxes at once.
    pub max_ready: Option<u32>,
    /// Size of each sandbox.
    pub resources: Option<PoolResources>,
    /// Replace idle sandboxes older than this.
    pub idle_timeout_seconds: Option<u64>,
    /// Mode of creates that name none.
    pub checkout_policy: Option<String>,
    /// Only `pinned_build` is offered.
    pub version_policy: Option<String>,
    /// Needs `track_tag`, which is not offered.
    pub track_tag: Option<String>,
    /// Not offered (refused rather than ignored): `idle_timeout_seconds` replaces idle sandboxes.
    pub stale_after_seconds: Option<u64>,
    /// Labels (string values).
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// Metadata.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Filters of `GET /v1/template-warm-pools`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PoolFilter {
    /// Template reference as given, or the template id it resolved to.
    pub template: Option<String>,
    /// `enabled`, `disabled` or `draining`.
    pub state: Option<String>,
    /// `key` or `key=value`.
    pub label: Option<String>,
    /// `ready` (at least `min_ready` ready) or `degraded` (fewer).
    pub status: Option<String>,
    /// Most pools returned.
    pub limit: Option<usize>,
}

/// Applies `request` to `pool` (a new or an existing one) and checks the result.
pub fn apply_request(pool: &mut WarmPoolRecord, request: &PoolRequest) -> ControlResult<()> {
    if let Some(name) = &request.name {
        pool.name = name.trim().to_owned();
    }
    if let Some(reference) = &request.template_ref {
        pool.template_ref = reference.trim().to_owned();
    }
    if let Some(min) = request.min_ready {
        pool.min_ready = min;
    }
    if let Some(max) = request.max_ready {
        pool.max_ready = max;
    }
    if let Some(resources) = &request.resources {
        pool.vcpus = resources.vcpus.unwrap_or(pool.vcpus);
        pool.memory_mb = resources.memory_mb.unwrap_or(pool.memory_mb);
        pool.disk_mb = resources.disk_mb.or(pool.disk_mb);
    }
    if request.idle_timeout_seconds.is_some() {
        pool.idle_timeout_seconds = request.idle_timeout_seconds.filter(|seconds| *seconds > 0);
    }
    if let Some(policy) = &request.checkout_policy {
        pool.checkout_policy = policy.clone();
    }
    if let Some(labels) = &request.labels {
        pool.labels = labels.clone();
    }
    if let Some(metadata) = &request.metadata {
        pool.metadata = metadata.clone();
    }
    match request.version_policy.as_deref() {
        None | Some("pinned_build") => {}
        Some("track_tag") => {
            return Err(invalid("version_policy track_tag is not offered by this server; use pinned_build"))
        }
        Some(other) => return Err(invalid(format!("version_policy must be pinned_build or track_tag, got {other:?}"))),
    }
    if request.track_tag.as_deref().is_some_and(|tag| !tag.is_empty()) {
        return Err(invalid("track_tag needs version_policy track_tag, which this server does not offer"));
    }
    if request.stale_after_seconds.is_some() {
        return Err(invalid(
            "stale_after_seconds is not offered by this server; idle_timeout_seconds replaces idle sandboxes",
        ));
    }
    check_pool(pool)
}

/// The rules every stored pool satisfies.
pub fn check_pool(pool: &WarmPoolRecord) -> ControlResult<()> {
    if pool.name.is_empty() || pool.name.len() > MAX_NAME_LEN || pool.name.chars().any(char::is_control) {
        return Err(invalid(format!("name must be 1 to {MAX_NAME_LEN} printable characters")));
    }
    if pool.template_ref.is_empty() {
        return Err(invalid("template_ref is required, e.g. \"base\" or \"my-template:prod\""));
    }
    if pool.max_ready == 0 || pool.max_ready > MAX_POOL_SIZE {
        return Err(invalid(format!("max_ready must be from 1 to {MAX_POOL_SIZE}, got {}", pool.max_ready)));
    }
    if pool.min_ready > pool.max_ready {
        return Err(invalid(format!("min_ready ({}) must not exceed max_ready ({})", pool.min_ready, pool.max_ready)));
    }
    if !CHECKOUT_MODES.contains(&pool.checkout_policy.as_str()) {
        return Err(invalid(format!(
            "checkout_policy must be prefer, require or bypass, got {:?}",
            pool.checkout_policy
        )));
    }
    if let Some((key, _)) = pool.labels.iter().find(|(_, value)| !value.is_string()) {
        return Err(invalid(format!("labels must map names to strings; {key:?} does not")));
    }
    super::validate::metadata(&pool.metadata)
}

/// Whether `pool` with `counts` passes `filter`.
pub fn matches(pool: &WarmPoolRecord, counts: &PoolCounts, filter: &PoolFilter) -> bool {
    let template_ok = filter.template.as_ref().is_none_or(|t| *t == pool.template_ref || *t == pool.template_id);
    let state_ok = filter.state.as_ref().is_none_or(|s| s == pool.state.as_str());
    let label_ok = filter.label.as_ref().is_none_or(|label| match label.split_once('=') {
        Some((key, value)) => pool.labels.get(key).and_then(|v| v.as_str()) == Some(value),
        None => pool.labels.contains_key(label.as_str()),
    });
    let status_ok = match filter.status.as_deref() {
        None | Some("") => true,
        Some("ready") => counts.ready >= pool.min_ready,
        Some("degraded") => counts.ready < pool.min_ready,
        Some(_) => false,
    };
    template_ok && state_ok && label_ok && status_ok
}

impl Control {
    fn not_found(pool_id: &str) -> ControlError {
        ControlError::WarmPoolNotFound { pool_id: pool_id.to_owned() }
    }

    /// The template id `reference` resolves to for `tenant`.
    async fn pool_template(&self, tenant: &Tenant, reference: &str) -> ControlResult<String> {
        Ok(match self.resolve_template(tenant, reference).await? {
            ResolvedTemplate::Builtin { name } => name,
            ResolvedTemplate::Built { template_id, .. } => template_id,
        })
    }

    fn check_pool_size(&self, pool: &WarmPoolRecord) -> ControlResult<()> {
        self.check_build_size(pool.vcpus, pool.memory_mb).map_err(|message| invalid(format!("resources: {message}")))
    }

    /// Creates a pool (enabled) and wakes the refill.
    pub async fn create_warm_pool(
        &self,
        tenant: &Tenant,
        request: &PoolRequest,
    ) -> ControlResult<(WarmPoolRecord, PoolCounts)> {
        for (field, missing) in [
            ("template_ref", request.template_ref.is_none()),
            ("name", request.name.is_none()),
            ("min_ready", request.min_ready.is_none()),
            ("max_ready", request.max_ready.is_none()),
        ] {
            if missing {
                return Err(invalid(format!("{field} is required to create a warm pool")));
            }
        }
        let now = clock::now_rfc3339();
        let mut pool = WarmPoolRecord {
            id: crate::ids::warm_pool_id(),
            tenant_id: tenant.id.clone(),
            name: String::new(),
            template_ref: String::new(),
            template_id: String::new(),
            min_ready: 0,
            max_ready: 0,
            vcpus: 2,
            memory_mb: 512,
            disk_mb: None,
            state: PoolState::Enabled,
            idle_timeout_seconds: None,
            checkout_policy: "prefer".into(),
            labels: serde_json::Map::new(),
            metadata: serde_json::Map::new(),
            created_at: now.clone(),
            updated_at: now.clone(),
            enabled_at: Some(now),
            disabled_at: None,
            drain_requested_at: None,
            last_reconciled_at: None,
        };
        apply_request(&mut pool, request)?;
        pool.template_id = self.pool_template(tenant, &pool.template_ref).await?;
        // Sandboxes of a template with its own default memory (code-interpreter) are pooled at that size,
        // which is what a create naming no memory asks for.
        if request.resources.as_ref().and_then(|r| r.memory_mb).is_none() {
            pool.memory_mb = self.default_memory_mb(&pool.template_id);
        }
        self.check_pool_size(&pool)?;
        if !self.store.insert_warm_pool(&pool).await? {
            return Err(ControlError::TemplateConflict {
                message: format!("a warm pool named {:?} exists; pick another name or update it", pool.name),
            });
        }
        self.warm.wake.notify_one();
        Ok((pool, PoolCounts::default()))
    }

    /// Member counts of pool `pool_id`; members still starting their template count as warming.
    pub(super) async fn pool_counts(&self, pool_id: &str) -> ControlResult<PoolCounts> {
        Ok(self.store.warm_pool_counts(pool_id, &self.warm.starting_members()).await?)
    }

    /// Pool `id` of `tenant` with its member counts.
    pub async fn get_warm_pool(&self, tenant: &Tenant, id: &str) -> ControlResult<(WarmPoolRecord, PoolCounts)> {
        let pool = self.store.get_warm_pool(&tenant.id, id).await?.ok_or_else(|| Self::not_found(id))?;
        let counts = self.pool_counts(&pool.id).await?;
        Ok((pool, counts))
    }

    /// Pools of `tenant` passing `filter`, oldest first.
    pub async fn list_warm_pools(
        &self,
        tenant: &Tenant,
        filter: &PoolFilter,
    ) -> ControlResult<Vec<(WarmPoolRecord, PoolCounts)>> {
        if let Some(state) = filter.state.as_deref().filter(|s| PoolState::parse(s).is_none() && *s != "deleted") {
            return Err(invalid(format!("state must be enabled, disabled or draining, got {state:?}")));
        }
        let mut pools = Vec::new();
        for pool in self.store.list_warm_pools(&tenant.id).await? {
            let counts = self.pool_counts(&pool.id).await?;
            if matches(&pool, &counts, filter) {
                pools.push((pool, counts));
            }
        }
        pools.truncate(filter.limit.unwrap_or(usize::MAX));
        Ok(pools)
    }

    /// Changes the fields `request` names; a new template ref or new resources replace idle sandboxes
    /// (the refill destroys members that no longer match).
    pub async fn update_warm_pool(
        &self,
        tenant: &Tenant,
        id: &str,
        request: &PoolRequest,
    ) -> ControlResult<(WarmPoolRecord, PoolCounts)> {
        let (mut pool, _) = self.get_warm_pool(tenant, id).await?;
        apply_request(&mut pool, request)?;
        self.check_pool_size(&pool)?;
        if request.template_ref.is_some() {
            pool.template_id = self.pool_template(tenant, &pool.template_ref).await?;
        }
        pool.updated_at = clock::now_rfc3339();
        if !self.store.update_warm_pool(&pool).await? {
            return Err(ControlError::TemplateConflict {
                message: format!("another warm pool is named {:?}; pick another name", pool.name),
            });
        }
        self.warm.wake.notify_one();
        self.get_warm_pool(tenant, id).await
    }

    /// Moves pool `id` to `state`: enabled refills, disabled stops refilling (idle sandboxes stay),
    /// draining stops refilling and destroys the idle sandboxes before answering.
    pub async fn set_warm_pool_state(
        &self,
        tenant: &Tenant,
        id: &str,
        state: PoolState,
    ) -> ControlResult<(WarmPoolRecord, PoolCounts)> {
        let (mut pool, _) = self.get_warm_pool(tenant, id).await?;
        let now = clock::now_rfc3339();
        pool.state = state;
        pool.updated_at = now.clone();
        match state {
            PoolState::Enabled => pool.enabled_at = Some(now),
            PoolState::Disabled => pool.disabled_at = Some(now),
            PoolState::Draining => pool.drain_requested_at = Some(now),
        }
        self.store.update_warm_pool(&pool).await?;
        if state.destroys_idle() {
            self.destroy_idle_members(&pool.id, |_| true).await?;
        }
        self.warm.wake.notify_one();
        self.get_warm_pool(tenant, id).await
    }

    /// One refill pass of pool `id` now (replacing failed and mismatched members, starting missing ones in
    /// the background); answers at once with the counts.
    pub async fn reconcile_warm_pool(&self, tenant: &Tenant, id: &str) -> ControlResult<(WarmPoolRecord, PoolCounts)> {
        let (pool, _) = self.get_warm_pool(tenant, id).await?;
        self.refill_pool(&pool).await?;
        self.get_warm_pool(tenant, id).await
    }

    /// Destroys the idle sandboxes of pool `id` and deletes it. Claimed sandboxes are the tenant's and stay.
    pub async fn delete_warm_pool(&self, tenant: &Tenant, id: &str) -> ControlResult<()> {
        let (pool, _) = self.get_warm_pool(tenant, id).await?;
        // Draining first: no claim takes a member while they go, no refill starts new ones.
        let mut draining = pool.clone();
        draining.state = PoolState::Draining;
        self.store.update_warm_pool(&draining).await?;
        self.destroy_idle_members(&pool.id, |_| true).await?;
        if !self.store.delete_warm_pool(&tenant.id, id).await? {
            return Err(Self::not_found(id));
        }
        // A refill that was starting a member when the drain began may have finished since.
        self.destroy_idle_members(&pool.id, |_| true).await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "warm_pools_tests.rs"]
mod tests;
