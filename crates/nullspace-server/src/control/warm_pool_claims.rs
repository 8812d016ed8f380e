//! Warm pools at work: the refill task that keeps each enabled pool at `min_ready` started, idle
//! sandboxes (one refill per pool at a time), and the checkout by which a sandbox create claims one of
//! them and gives it the create's envs, cwd, metadata and timeout.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use nullspace_types::guest::GuestConfigUpdate;
use nullspace_types::sandbox::CreateSandboxRequest;
use serde::{Deserialize, Serialize};

use super::events::NewEvent;
use super::service::ControlResult;
use super::validate::{self, invalid, DEFAULT_TIMEOUT_MS};
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::warm_pools::{PoolState, WarmPoolRecord};
use crate::store::{SandboxRecord, Tenant};

/// How often every pool is checked when nothing wakes the refill task sooner.
const TICK: Duration = Duration::from_secs(1);
/// Deadline of an idle member without `idle_timeout_seconds` (~100 years: never in practice).
const NO_IDLE_TIMEOUT_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// `warm_pool` of a create request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WarmPoolAsk {
    /// Pool id.
    pub id: Option<String>,
    /// `prefer`, `require` or `bypass` (the pool's `checkout_policy` when absent).
    pub mode: Option<String>,
    /// How long to wait for a ready sandbox, ms (0 when absent).
    pub wait_ms: Option<u64>,
}

/// `warm_pool_checkout` of a create answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckoutInfo {
    /// Pool id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `ready_instance`, `cold_create` or `bypassed`.
    pub source: &'static str,
    /// Whether a pool sandbox was claimed.
    pub hit: bool,
    /// Mode used.
    pub mode: String,
    /// Time spent waiting for a ready sandbox, ms.
    pub wait_ms: u64,
}

/// Removes a pool from the refilling set when the refill ends.
struct Refilling {
    set: Arc<Mutex<std::collections::HashSet<String>>>,
    pool_id: String,
}

impl Refilling {
    fn start(set: &Arc<Mutex<std::collections::HashSet<String>>>, pool_id: &str) -> Option<Self> {
        let inserted = set.lock().unwrap_or_else(|p| p.into_inner()).insert(pool_id.to_owned());
        inserted.then(|| Self { set: set.clone(), pool_id: pool_id.to_owned() })
    }
}

impl Drop for Refilling {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.pool_id);
    }
}

/// Why a create cannot take a sandbox of `pool` (`None`: it can). `template` is what the request's
/// template resolved to, `default_memory_mb` the memory its sandboxes get when a create names none.
pub fn mismatch(
    pool: &WarmPoolRecord,
    request: &CreateSandboxRequest,
    template: &str,
    default_memory_mb: u32,
) -> Option<String> {
    if template != pool.template_id {
        return Some(format!("the pool holds template {} and the request asks for {template}", pool.template_ref));
    }
    let (vcpus, memory_mb) =
        (request.vcpus.unwrap_or(validate::DEFAULT_VCPUS), request.memory_mb.unwrap_or(default_memory_mb));
    if (vcpus, memory_mb) != (pool.vcpus, pool.memory_mb) {
        return Some(format!(
            "the pool's sandboxes have {} vcpus and {} MiB, the request asks for {vcpus} and {memory_mb}",
            pool.vcpus, pool.memory_mb
        ));
    }
    if request.disk_mb != pool.disk_mb {
        return Some("the pool's sandboxes have another disk size than the request asks for".into());
    }
    let network = request.network.as_ref();
    let custom_network = request.internet_access == Some(false)
        || network.and_then(|n| n.allow_out.as_ref()).is_some_and(|list| !list.is_empty())
        || network.and_then(|n| n.deny_out.as_ref()).is_some_and(|list| !list.is_empty());
    if custom_network {
        return Some("custom networking is not poolable: pool sandboxes run the default egress policy".into());
    }
    if request.volumes.as_ref().is_some_and(|volumes| !volumes.is_empty()) {
        return Some("volume mounts are not poolable".into());
    }
    if !super::desktop::poolable(request) {
        return Some(
            "desktop settings other than the defaults are not poolable: pool sandboxes run the default desktop".into(),
        );
    }
    match pool.state {
        PoolState::Enabled => None,
        state => Some(format!("the pool is {}", state.as_str())),
    }
}

/// How many idle sandboxes a refill of `pool` starts: up to `min_ready` idle (ready or starting), never
/// past `max_ready`; claimed sandboxes are the tenant's and do not count.
pub fn members_to_start(pool: &WarmPoolRecord, counts: &crate::store::warm_pools::PoolCounts) -> u32 {
    let idle = counts.ready.saturating_add(counts.warming);
    pool.min_ready.saturating_sub(idle).min(pool.max_ready.saturating_sub(idle))
}

/// Spawns the refill task on the current runtime.
pub fn spawn_warm_pool_refiller(control: Control) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = control.refill_all().await {
                tracing::warn!(error = %crate::error_chain(&error), "warm pool refill failed");
            }
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = control.warm.wake.notified() => {}
            }
        }
    })
}

impl Control {
    /// One pass over every pool, and removal of members whose pool is gone.
    async fn refill_all(&self) -> ControlResult<()> {
        for (id, tenant_id) in self.store.orphan_pool_members().await? {
            if let Some(record) = self.store.get_sandbox(&tenant_id, &id).await? {
                self.destroy_record(&record, "warm_pool_deleted", "system").await?;
            }
        }
        for pool in self.store.all_warm_pools().await? {
            if let Err(error) = self.refill_pool(&pool).await {
                tracing::warn!(pool = %pool.id, error = %crate::error_chain(&error), "warm pool refill failed");
            }
        }
        Ok(())
    }

    /// Destroys idle members of pool `pool_id` for which `doomed` holds.
    pub(super) async fn destroy_idle_members(
        &self,
        pool_id: &str,
        doomed: impl Fn(&SandboxRecord) -> bool,
    ) -> ControlResult<()> {
        for member in self.store.idle_pool_members(pool_id).await? {
            if doomed(&member) {
                self.destroy_record(&member, "warm_pool", "system").await?;
            }
        }
        Ok(())
    }

    /// Removes failed and outdated idle members of `pool` (all of them when draining), then, when it
    /// is enabled and short of `min_ready`, starts the missing ones in the background unless a refill
    /// of it is already running.
    pub(super) async fn refill_pool(&self, pool: &WarmPoolRecord) -> ControlResult<()> {
        let draining = pool.state.destroys_idle();
        self.destroy_idle_members(&pool.id, |member| {
            draining
                || member.state == SandboxState::Error
                || member.template != pool.template_id
                || (member.vcpus, member.memory_mb) != (pool.vcpus, pool.memory_mb)
        })
        .await?;
        self.store.mark_warm_pool_reconciled(&pool.id, &clock::now_rfc3339()).await?;
        if !pool.state.refills() {
            return Ok(());
        }
        // Taken before counting: a refill that ends between the count and its start cannot make this
        // one start more than are missing.
        let Some(guard) = Refilling::start(&self.warm.refilling, &pool.id) else { return Ok(()) };
        let missing = members_to_start(pool, &self.pool_counts(&pool.id).await?);
        if missing == 0 {
            return Ok(());
        }
        let control = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let _guard = guard;
            for _ in 0..missing {
                // The pool may have been disabled, drained or deleted since.
                match control.store.get_warm_pool(&pool.tenant_id, &pool.id).await {
                    Ok(Some(current)) if current.state.refills() && current.template_id == pool.template_id => {}
                    _ => return,
                }
                if let Err(error) = control.start_member(&pool).await {
                    tracing::warn!(pool = %pool.id, error = %crate::error_chain(&error), "starting a warm pool sandbox failed");
                    return; // the next pass retries
                }
                control.warm.ready.notify_waiters();
            }
        });
        Ok(())
    }

    /// Starts one idle member of `pool` through the normal create path.
    async fn start_member(&self, pool: &WarmPoolRecord) -> ControlResult<SandboxRecord> {
        let tenant = self
            .store
            .get_tenant_by_id(&pool.tenant_id)
            .await?
            .ok_or_else(|| invalid(format!("the tenant of warm pool {} is gone", pool.id)))?;
        let request = CreateSandboxRequest {
            template: Some(pool.template_id.clone()),
            vcpus: Some(pool.vcpus),
            memory_mb: Some(pool.memory_mb),
            disk_mb: pool.disk_mb,
            ..CreateSandboxRequest::default()
        };
        let idle_ms = pool
            .idle_timeout_seconds
            .map_or(NO_IDLE_TIMEOUT_MS, |seconds| i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX));
        let deadline = clock::now_ms().saturating_add(idle_ms);
        self.create_cold(&tenant, request, None, Some((pool.id.clone(), deadline))).await
    }

    /// The checkout of a create naming `ask`: a claimed sandbox (already given the request's settings),
    /// or `None` for a cold create, with what to report. Fails with `warm_pool_unavailable` when the mode
    /// is `require` and no ready sandbox was found within `wait_ms`.
    pub(super) async fn checkout(
        &self,
        tenant: &Tenant,
        request: &CreateSandboxRequest,
        ask: Option<&WarmPoolAsk>,
        idempotency_key: Option<&str>,
    ) -> ControlResult<(Option<SandboxRecord>, Option<CheckoutInfo>)> {
        let Some(ask) = ask else { return Ok((None, None)) };
        let pool_id = ask.id.as_deref().map(str::trim).filter(|id| !id.is_empty());
        let Some(pool_id) = pool_id else {
            if ask.mode.as_deref() == Some("bypass") {
                let info = CheckoutInfo { id: None, source: "bypassed", hit: false, mode: "bypass".into(), wait_ms: 0 };
                return Ok((None, Some(info)));
            }
            return Err(invalid("warm_pool.id is required when warm_pool.mode is prefer or require"));
        };
        let pool = self
            .store
            .get_warm_pool(&tenant.id, pool_id)
            .await?
            .ok_or_else(|| ControlError::WarmPoolNotFound { pool_id: pool_id.to_owned() })?;
        let mode = ask.mode.clone().unwrap_or_else(|| pool.checkout_policy.clone());
        let info =
            |source, hit, wait_ms| CheckoutInfo { id: Some(pool.id.clone()), source, hit, mode: mode.clone(), wait_ms };
        if mode == "bypass" {
            return Ok((None, Some(info("bypassed", false, 0))));
        }
        let require = mode == "require";
        let miss = |reason: String| -> ControlResult<(Option<SandboxRecord>, Option<CheckoutInfo>)> {
            if require {
                Err(ControlError::WarmPoolUnavailable { pool_id: pool.id.clone(), reason })
            } else {
                Ok((None, Some(info("cold_create", false, 0))))
            }
        };
        let reference = request.template.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "base".to_owned());
        let template = match self.resolve_template(tenant, &reference).await? {
            super::template_refs::ResolvedTemplate::Builtin { name } => name,
            super::template_refs::ResolvedTemplate::Built { template_id, .. } => template_id,
        };
        if let Some(reason) = mismatch(&pool, request, &template, self.default_memory_mb(&template)) {
            return miss(reason);
        }
        let envs = self.claim_settings(&template, request)?;
        let wait = Duration::from_millis(ask.wait_ms.unwrap_or(0));
        let started = Instant::now();
        loop {
            let ready = self.warm.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            let starting = self.warm.starting_members();
            if let Some(id) = self.store.claim_pool_sandbox(&tenant.id, &pool.id, &template, &starting).await? {
                self.warm.wake.notify_one();
                match self.finish_claim(tenant, &id, Some(&pool.id), request, envs.clone(), idempotency_key).await {
                    Ok(record) => {
                        let waited = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        return Ok((Some(record), Some(info("ready_instance", true, waited))));
                    }
                    Err(error) => {
                        tracing::warn!(sandbox = %id, error = %crate::error_chain(&error), "a claimed warm pool sandbox could not take the request's settings; destroying it");
                        if let Some(record) = self.store.get_sandbox(&tenant.id, &id).await? {
                            self.destroy_record(&record, "warm_pool_claim_failed", "system").await?;
                        }
                        continue;
                    }
                }
            }
            let Some(left) = wait.checked_sub(started.elapsed()).filter(|left| !left.is_zero()) else { break };
            let _ = tokio::time::timeout(left, ready).await;
        }
        miss(format!("no ready sandbox within {} ms", wait.as_millis()))
    }

    /// The envs a claimed sandbox of `template` gets from `request`, after checking the request's settings
    /// (timeout, envs, cwd, metadata): bad settings fail the request before a pool sandbox is taken, as
    /// they would fail a cold create.
    pub(super) fn claim_settings(
        &self,
        template: &str,
        request: &CreateSandboxRequest,
    ) -> ControlResult<BTreeMap<String, String>> {
        validate::timeout(request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))?;
        let envs = self.create_envs(template, request)?;
        if let Some(cwd) = request.cwd.as_deref().filter(|cwd| !cwd.is_empty()) {
            validate::cwd(cwd)?;
        }
        if let Some(metadata) = &request.metadata {
            validate::metadata(metadata)?;
        }
        Ok(envs)
    }

    /// Gives claimed sandbox `id` the request's envs and cwd (in the guest), metadata and timeout (in its
    /// record), and emits its create events (naming `pool_id`, the tenant's pool it came from, if any).
    pub(super) async fn finish_claim(
        &self,
        tenant: &Tenant,
        id: &str,
        pool_id: Option<&str>,
        request: &CreateSandboxRequest,
        envs: BTreeMap<String, String>,
        idempotency_key: Option<&str>,
    ) -> ControlResult<SandboxRecord> {
        let mut record = self
            .store
            .get_sandbox(&tenant.id, id)
            .await?
            .ok_or_else(|| ControlError::SandboxNotFound { sandbox_id: id.to_owned() })?;
        let cwd = request.cwd.clone().filter(|cwd| !cwd.is_empty()).unwrap_or_else(|| record.cwd.clone());
        if envs != record.envs || cwd != record.cwd {
            let all = self.node().sandbox_envs(&self.root_image(&record.template).await?.envs, &envs);
            self.reconfigure_guest(id, &GuestConfigUpdate { envs: all, cwd: cwd.clone() }).await?;
        }
        let now = clock::now_ms();
        let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        record.envs = envs;
        record.cwd = cwd;
        record.metadata = request.metadata.clone().unwrap_or_default();
        record.timeout_ms = timeout_ms;
        record.deadline_ms = now.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        record.timeout_action = request.timeout_action.unwrap_or_default().as_str().to_owned();
        record.auto_resume = request.auto_resume.unwrap_or(false);
        record.idempotency_key = idempotency_key.map(str::to_owned);
        record.created_at = clock::ms_to_rfc3339(now);
        self.store.apply_claim(&record).await?;
        let created = |status| {
            let event = NewEvent::sandbox("create", status, "user", id)
                .reason("warm_pool")
                .meta("timeout_action", record.timeout_action.clone());
            match pool_id {
                Some(pool_id) => event.meta("warm_pool_id", pool_id.to_owned()),
                None => event,
            }
        };
        self.events.emit(&tenant.id, created("requested")).await;
        let claimed = self.get_for_tenant_id(&tenant.id, id).await?;
        if claimed.state != SandboxState::Running {
            return Err(ControlError::NotRunning { sandbox_id: id.to_owned(), state: claimed.state.as_str() });
        }
        self.events.emit(&tenant.id, created("succeeded")).await;
        Ok(claimed)
    }

    /// `PUT /config` on the guest of sandbox `id` (host only; the relay never forwards clients there).
    async fn reconfigure_guest(&self, id: &str, update: &GuestConfigUpdate) -> ControlResult<()> {
        let failed = |message: String| invalid(format!("sandbox {id} did not take its new configuration: {message}"));
        let body = serde_json::to_vec(update).unwrap_or_default();
        let http = hyper::Request::put("/config")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| failed(e.to_string()))?;
        let response = self.node().guest(id).send(http).await?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.into_body().collect().await.map_err(|e| failed(e.to_string()))?.to_bytes();
            return Err(failed(format!("{status}: {}", String::from_utf8_lossy(&bytes))));
        }
        Ok(())
    }
}
