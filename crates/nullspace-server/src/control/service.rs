//! The control service: validates requests, records each transition, then asks the node to act.
//! Snapshot operations live in `snapshots.rs`, the start-up reconcile in `reconcile.rs`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nullspace_node::{GuestLink, LaunchSpec, Node, RootImage, SandboxUsage};
use nullspace_types::sandbox::{CreateSandboxRequest, TimeoutAction};
use tracing::Instrument;

use super::capacity::{Capacity, Refusal};
use super::events::{Events, NewEvent};
use super::validate::{self, invalid, MAX_TIMEOUT_MS};
use super::{ControlError, SandboxState};
use crate::clock;
use crate::metrics::CpuSampler;
use crate::preview::PreviewPorts;
use crate::store::{ListFilter, SandboxRecord, Store, Tenant};

pub(super) type ControlResult<T> = Result<T, ControlError>;

/// A create request with its idempotency key.
#[derive(Debug, Clone)]
pub struct CreateParams {
    /// The request body.
    pub request: CreateSandboxRequest,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// `warm_pool` of the body: claim a ready sandbox of that pool instead of starting one.
    pub warm_pool: Option<super::warm_pool_claims::WarmPoolAsk>,
}

/// Drives sandboxes through their state machine.
#[derive(Clone)]
pub struct Control {
    pub(super) store: Store,
    pub(super) node: Arc<Node>,
    pub(super) events: Events,
    max_sandboxes: usize,
    /// Sandboxes whose destroy is running now, so retries never run a second destroy beside it.
    destroying: Arc<Mutex<HashSet<String>>>,
    /// Snapshot layers being written and not yet recorded, which the layer collector must keep.
    pub(super) pending_layers: Arc<Mutex<HashSet<String>>>,
    /// Sandboxes with a volume attach, detach or remount running now (one at a time per sandbox).
    pub(super) volume_changes: Arc<Mutex<HashSet<String>>>,
    /// Last CPU readings, for metrics.
    cpu: Arc<CpuSampler>,
    /// Open preview forwards.
    pub(super) preview: Arc<PreviewPorts>,
    /// Size limit of volumes created without one (`None`: unlimited).
    pub(super) default_volume_size: Option<u64>,
    /// Per-sandbox resource caps and the host's overcommit budget.
    pub(super) capacity: Arc<Capacity>,
    /// How big sandbox disks are (`--sandbox-disk`).
    pub(super) disk_limits: super::disk_limits::DiskLimits,
    /// Held from the capacity check until the new sandbox is recorded, so concurrent creates cannot
    /// both take the last room.
    pub(super) admission: Arc<tokio::sync::Mutex<()>>,
    /// Auto-resumes in flight, one per sandbox.
    pub(super) resumes: Arc<super::auto_resume::Resumes>,
    /// Which webhook destinations are allowed.
    pub(super) webhook_targets: Arc<super::webhook_targets::TargetPolicy>,
    /// Template builds in flight and the blob store.
    pub(super) templates: Arc<super::template_jobs::TemplateState>,
    /// Warm pool refills in flight and their signals.
    pub(super) warm: Arc<super::warm_pools::WarmPools>,
    /// Built-in templates the engine built from their recipes, once ready.
    pub(super) builtins: Arc<super::builtin_recipes::BuiltinTemplates>,
    /// The system's warm pools of built-in templates, shared by every tenant.
    pub(super) builtin_pools: Arc<super::builtin_pools::BuiltinPools>,
}

/// Removes an entry from a shared set when dropped.
pub(super) struct SetGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl<'a> SetGuard<'a> {
    /// Inserts `key`; `None` when it was already present.
    pub(super) fn insert(set: &'a Mutex<HashSet<String>>, key: String) -> Option<Self> {
        let inserted = set.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key.clone());
        inserted.then_some(Self { set, key })
    }
}

impl Drop for SetGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.key);
    }
}

impl Control {
    /// A control service over `store` and `node`, admitting at most `max_sandboxes` live sandboxes.
    pub fn new(store: Store, node: Arc<Node>, max_sandboxes: usize, preview: PreviewPorts) -> Self {
        Self {
            events: Events::new(store.clone()),
            store,
            node,
            max_sandboxes,
            destroying: Arc::default(),
            pending_layers: Arc::default(),
            volume_changes: Arc::default(),
            cpu: Arc::default(),
            preview: Arc::new(preview),
            default_volume_size: None,
            capacity: Arc::new(
                Capacity::detect(&super::capacity::CapacitySettings::default()).expect("defaults are valid"),
            ),
            disk_limits: super::disk_limits::DiskLimits::Unlimited,
            admission: Arc::default(),
            resumes: Arc::default(),
            webhook_targets: Arc::default(),
            templates: Arc::new(super::template_jobs::TemplateState::new(
                std::env::temp_dir().join("nullspace-template-blobs"),
                1,
            )),
            warm: Arc::default(),
            builtins: Arc::default(),
            builtin_pools: Arc::default(),
        }
    }

    /// Refuses build sandboxes larger than this server's per-sandbox caps.
    pub(super) fn check_build_size(&self, vcpus: u32, memory_mb: u32) -> Result<(), String> {
        self.capacity.check_size(vcpus, memory_mb).map_err(|refusal| match refusal {
            Refusal::TooLarge(message) | Refusal::NoRoom(message) => format!("build_config: {message}"),
        })
    }

    /// Applies per-sandbox resource caps and the host's overcommit budget.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = Arc::new(capacity);
        self
    }

    /// Applies the disk limits of sandboxes.
    pub fn with_disk_limits(mut self, limits: super::disk_limits::DiskLimits) -> Self {
        self.disk_limits = limits;
        self
    }

    /// Sets which webhook destinations are allowed.
    pub fn with_webhook_targets(mut self, targets: super::webhook_targets::TargetPolicy) -> Self {
        self.webhook_targets = Arc::new(targets);
        self
    }

    /// The webhook destination policy.
    pub fn webhook_targets(&self) -> Arc<super::webhook_targets::TargetPolicy> {
        self.webhook_targets.clone()
    }

    /// Gives volumes created without a size limit this one (`None`: they stay unlimited).
    pub fn with_default_volume_size(mut self, size: Option<u64>) -> Self {
        self.default_volume_size = size;
        self
    }

    /// The node this control plane drives.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Lifecycle events.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Fails with `invalid_request` when a sandbox of `vcpus` and `memory_mb` is larger than this server
    /// allows, and with `capacity_exceeded` when the host runs its maximum of sandboxes or the live ones'
    /// reservations leave no room for it (host capacity × overcommit ratio).
    pub(super) async fn admit(&self, vcpus: u32, memory_mb: u32) -> ControlResult<()> {
        let live = self
            .store
            .sandboxes_in_states(&[
                SandboxState::Creating,
                SandboxState::Running,
                SandboxState::Hibernating,
                SandboxState::Resuming,
            ])
            .await?;
        if live.len() >= self.max_sandboxes {
            return Err(ControlError::Capacity {
                reason: format!(
                    "{} of {} sandboxes in use (the most this host holds, or --max-sandboxes)",
                    live.len(),
                    self.max_sandboxes
                ),
            });
        }
        let reserved = live.iter().fold((0_u64, 0_u64), |(cpus, memory), record| {
            (cpus + u64::from(record.vcpus), memory + u64::from(record.memory_mb))
        });
        self.capacity.admit(reserved, vcpus, memory_mb).map_err(|refusal| match refusal {
            Refusal::TooLarge(message) => invalid(message),
            Refusal::NoRoom(reason) => ControlError::Capacity { reason },
        })
    }

    /// Records a new sandbox and launches it (from memory image `restore_from` when set); when a
    /// concurrent request with the same idempotency key won the insert, waits for that sandbox instead.
    pub(super) async fn insert_and_start(
        &self,
        record: SandboxRecord,
        reason: &'static str,
        restore_from: Option<PathBuf>,
    ) -> ControlResult<SandboxRecord> {
        self.insert_and_start_replacing(record, reason, restore_from, None).await
    }

    /// [`Self::insert_and_start`] for a sandbox that takes the place of paused sandbox `replaces` (a
    /// resume), which then does not count against the tenant's limits.
    pub(super) async fn insert_and_start_replacing(
        &self,
        record: SandboxRecord,
        reason: &'static str,
        restore_from: Option<PathBuf>,
        replaces: Option<&str>,
    ) -> ControlResult<SandboxRecord> {
        let record = self.prepare_volumes(record).await?;
        let admission = self.admission.lock().await;
        // Checked again under the lock: another create may have taken the room since the early check.
        self.admit(record.vcpus, record.memory_mb).await?;
        // The tenant's limits, checked under the same lock until the row is written.
        self.check_sandbox_quota(&record, replaces).await?;
        let inserted = self.store.insert_sandbox(&record).await?;
        drop(admission);
        if inserted {
            return self.start(record, reason, restore_from).await;
        }
        let key = record.idempotency_key.clone().unwrap_or_default();
        match self.store.get_sandbox_by_idempotency_key(&record.tenant_id, &key).await? {
            Some(existing) => self.settled(existing).await,
            None => Err(invalid("idempotency key conflict; retry the request")),
        }
    }

    /// Launches a recorded `creating` sandbox and moves it to `running`, emitting create events.
    pub(super) async fn start(
        &self,
        record: SandboxRecord,
        reason: &'static str,
        restore_from: Option<PathBuf>,
    ) -> ControlResult<SandboxRecord> {
        let span = tracing::info_span!("sandbox", id = %record.id);
        self.start_in_span(record, reason, restore_from).instrument(span).await
    }

    async fn start_in_span(
        &self,
        record: SandboxRecord,
        reason: &'static str,
        restore_from: Option<PathBuf>,
    ) -> ControlResult<SandboxRecord> {
        let created = |status| {
            NewEvent::sandbox("create", status, "user", &record.id)
                .reason(reason)
                .meta("timeout_action", record.timeout_action.clone())
        };
        // A pool member's create is the pool's business; the create that claims it emits the events.
        let quiet = record.is_idle_pool_member();
        if !quiet {
            self.events.emit(&record.tenant_id, created("requested")).await;
        }
        let launched = match self.launch_spec(&record, restore_from).await {
            Ok(spec) => self.node.launch(&spec).await.map_err(ControlError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = launched {
            tracing::warn!(error = %crate::error_chain(&error), "launch failed");
            let message = error.to_string();
            self.store.transition(&record.id, &[SandboxState::Creating], SandboxState::Error, Some(&message)).await?;
            let mut failed = created("failed");
            failed.error_message = Some(message);
            if !quiet {
                self.events.emit(&record.tenant_id, failed).await;
            }
            return Err(error);
        }
        if !self.store.transition(&record.id, &[SandboxState::Creating], SandboxState::Running, None).await? {
            // Destroyed while launching: release what the launch acquired.
            self.release(&record.id).await?;
            return Err(ControlError::SandboxNotFound { sandbox_id: record.id });
        }
        if quiet {
            return self
                .store
                .get_sandbox(&record.tenant_id, &record.id)
                .await?
                .ok_or(ControlError::SandboxNotFound { sandbox_id: record.id });
        }
        self.events.emit(&record.tenant_id, created("succeeded")).await;
        self.get_for_tenant_id(&record.tenant_id, &record.id).await
    }

    /// What the node launches for `record` (from memory image `restore_from` when set).
    pub(super) async fn launch_spec(
        &self,
        record: &SandboxRecord,
        restore_from: Option<PathBuf>,
    ) -> ControlResult<LaunchSpec> {
        Ok(LaunchSpec {
            sandbox_id: record.id.clone(),
            root: self.root_image(&record.template).await?,
            envs: record.envs.clone(),
            cwd: Some(record.cwd.clone()),
            layers: record.layers.iter().map(PathBuf::from).collect(),
            network: record.network.clone(),
            vcpus: record.vcpus,
            memory_mb: record.memory_mb,
            disk_mb: record.disk_mb,
            restore_from,
            volumes: record.volumes.clone(),
            build: false,
            inputs: Vec::new(),
        })
    }

    /// The root filesystem of template `template` (a built-in name or a built template's id).
    pub(super) async fn root_image(&self, template: &str) -> ControlResult<RootImage> {
        if template.starts_with("tmpl_") {
            return self.built_root_image(template).await;
        }
        let name = validate::template_name(template);
        let layer = self
            .node
            .templates()
            .get(name)
            .ok_or_else(|| ControlError::TemplateNotFound { template: template.to_owned() })?;
        Ok(RootImage::of_builtin(&layer))
    }

    /// Waits (bounded) for a sandbox found by idempotency key to leave `creating`.
    pub(super) async fn settled(&self, mut record: SandboxRecord) -> ControlResult<SandboxRecord> {
        for _ in 0..600 {
            if record.state != SandboxState::Creating {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            record = self
                .store
                .get_sandbox(&record.tenant_id, &record.id)
                .await?
                .ok_or_else(|| ControlError::SandboxNotFound { sandbox_id: record.id.clone() })?;
        }
        if !record.state.is_visible() {
            return Err(ControlError::SandboxNotFound { sandbox_id: record.id });
        }
        Ok(record)
    }

    /// The visible sandbox `id` of `tenant`.
    pub async fn get(&self, tenant: &Tenant, id: &str) -> ControlResult<SandboxRecord> {
        self.get_for_tenant_id(&tenant.id, id).await
    }

    pub(super) async fn get_for_tenant_id(&self, tenant_id: &str, id: &str) -> ControlResult<SandboxRecord> {
        match self.store.get_sandbox(tenant_id, id).await? {
            Some(record) if record.state.is_visible() && !record.is_idle_pool_member() => Ok(record),
            _ => Err(ControlError::SandboxNotFound { sandbox_id: id.to_owned() }),
        }
    }

    /// Sandboxes of `tenant` matching `filter`.
    pub async fn list(&self, tenant: &Tenant, filter: &ListFilter) -> ControlResult<Vec<SandboxRecord>> {
        Ok(self.store.list_sandboxes(&tenant.id, filter).await?)
    }

    /// The guest of running sandbox `id`, for a request that uses the sandbox: a paused sandbox with
    /// auto-resume is resumed first (see [`Control::ensure_running_for_access`]).
    pub async fn guest(&self, tenant: &Tenant, id: &str) -> ControlResult<(SandboxRecord, GuestLink)> {
        self.guest_for_tenant_id(&tenant.id, id).await
    }

    /// [`Control::guest`] for the tenant with id `tenant_id` (signed URLs carry the id).
    pub async fn guest_for_tenant_id(&self, tenant_id: &str, id: &str) -> ControlResult<(SandboxRecord, GuestLink)> {
        let record = self.ensure_running_for_access(tenant_id, id).await?;
        Self::running_guest(record, &self.node)
    }

    /// The guest of sandbox `id` only if it runs now: for observers (monitors) that must not wake it.
    pub async fn guest_if_running(&self, tenant: &Tenant, id: &str) -> ControlResult<(SandboxRecord, GuestLink)> {
        let record = self.get(tenant, id).await?;
        Self::running_guest(record, &self.node)
    }

    fn running_guest(record: SandboxRecord, node: &Node) -> ControlResult<(SandboxRecord, GuestLink)> {
        if !record.state.serves_requests() {
            return Err(ControlError::NotRunning { sandbox_id: record.id, state: record.state.as_str() });
        }
        let link = node.guest(&record.id);
        Ok((record, link))
    }

    /// Destroys sandbox `id` of `tenant` (a paused one together with its snapshot).
    pub async fn destroy(&self, tenant: &Tenant, id: &str, reason: &'static str) -> ControlResult<()> {
        let record = self.get(tenant, id).await?;
        self.destroy_record(&record, reason, "user").await
    }

    /// Destroys `record`'s sandbox, emitting `destroy` requested and succeeded.
    pub(super) async fn destroy_record(
        &self,
        record: &SandboxRecord,
        reason: &'static str,
        actor: &'static str,
    ) -> ControlResult<()> {
        let destroy = |status| NewEvent::sandbox("destroy", status, actor, &record.id).reason(reason);
        let moved = self
            .store
            .transition(&record.id, &SandboxState::sources_of(SandboxState::Destroying), SandboxState::Destroying, None)
            .await?;
        if !moved {
            return Ok(()); // already destroying or destroyed: the other caller finishes the job
        }
        let quiet = record.is_idle_pool_member();
        if !quiet {
            self.events.emit(&record.tenant_id, destroy("requested")).await;
        }
        tracing::info!(sandbox = %record.id, reason, "destroying sandbox");
        if record.state == SandboxState::Paused {
            if let Some(snapshot_id) = &record.snapshot_id {
                self.store.delete_snapshot(&record.tenant_id, snapshot_id).await?;
            }
        }
        self.release(&record.id).await?;
        if !quiet {
            self.events.emit(&record.tenant_id, destroy("succeeded")).await;
        }
        Ok(())
    }

    /// Releases the node resources of a sandbox in `destroying` and marks it destroyed, unless another
    /// task is already doing so; then removes snapshot layers nothing references any more.
    pub(super) async fn release(&self, id: &str) -> ControlResult<()> {
        let Some(_in_flight) = SetGuard::insert(&self.destroying, id.to_owned()) else { return Ok(()) };
        self.preview.close_sandbox(id);
        self.store.delete_preview_grants_of_sandbox(id).await?; // preview grants die with their sandbox
        self.store.delete_desktop_streams_of_sandbox(id).await?; // and so do desktop viewer keys
        self.node.destroy(id).await?;
        self.cpu.forget(id);
        self.store.transition(id, &[SandboxState::Destroying], SandboxState::Destroyed, None).await?;
        self.collect_layers().await
    }

    /// The local address that forwards to `port` inside running sandbox `id`.
    pub async fn expose_port(&self, tenant: &Tenant, id: &str, port: u16) -> ControlResult<std::net::SocketAddr> {
        let (record, guest) = self.guest(tenant, id).await?;
        let wake = record.auto_resume.then(|| self.waker(&record.tenant_id, id));
        self.preview.ensure(id, port, guest, wake).await.map_err(|source| ControlError::Preview {
            sandbox_id: id.to_owned(),
            port,
            source,
        })
    }

    /// One usage sample of running sandbox `id`, with CPU averaged since the previous sample.
    pub async fn usage(&self, tenant: &Tenant, id: &str) -> ControlResult<(SandboxRecord, SandboxUsage, f64)> {
        let record = self.get(tenant, id).await?;
        let usage = self.node.usage(id, record.memory_mb).await;
        let cpu_percent = self.cpu.percent(id, usage.cpu_usage_ns, record.vcpus);
        Ok((record, usage, cpu_percent))
    }

    /// Finishes destroys that were interrupted (rows left in `destroying`).
    pub async fn finish_pending_destroys(&self) -> ControlResult<()> {
        for record in self.store.sandboxes_in_states(&[SandboxState::Destroying]).await? {
            self.release(&record.id).await?;
        }
        Ok(())
    }

    /// Sets a new lifetime (from now) for sandbox `id`.
    pub async fn set_timeout(
        &self,
        tenant: &Tenant,
        id: &str,
        timeout_ms: u64,
        action: Option<TimeoutAction>,
    ) -> ControlResult<SandboxRecord> {
        let record = self.get(tenant, id).await?;
        if timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!("timeout_ms must be at most {MAX_TIMEOUT_MS}, got {timeout_ms}")));
        }
        let action = action.map_or(record.timeout_action.clone(), |a| a.as_str().to_owned());
        let event = |status| {
            NewEvent::sandbox("timeout_updated", status, "user", id)
                .reason("api")
                .meta("timeout_action", action.clone())
                .meta("timeout_ms", timeout_ms)
        };
        self.events.emit(&tenant.id, event("requested")).await;
        let deadline = clock::now_ms().saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        self.store.set_timeout(id, timeout_ms, deadline, &action).await?;
        self.events.emit(&tenant.id, event("succeeded")).await;
        self.get(tenant, id).await
    }

    /// Handles a passed deadline: `timeout_expired`, then destroy or hibernate as the sandbox asked.
    pub async fn expire(&self, tenant_id: &str, id: &str) -> ControlResult<()> {
        let Some(record) = self.store.get_sandbox(tenant_id, id).await? else { return Ok(()) };
        if record.state != SandboxState::Running {
            return Ok(());
        }
        if record.is_idle_pool_member() {
            // Idle past the pool's idle timeout: replaced by the refill, nothing for the tenant to see.
            return self.destroy_record(&record, "warm_pool_idle_timeout", "system").await;
        }
        let action = record.timeout_action.clone();
        let expired = NewEvent::sandbox("timeout_expired", "succeeded", "system", id)
            .reason("timeout")
            .meta("timeout_action", action.clone());
        self.events.emit(tenant_id, expired).await;
        if action == TimeoutAction::Hibernate.as_str() {
            match self.hibernate_record(&record, "timeout", "system").await {
                Ok(_) => return Ok(()),
                // A volume attach or detach is running: the next reaper tick hibernates it.
                Err(ControlError::Busy { .. }) => return Ok(()),
                Err(error) => {
                    tracing::warn!(sandbox = %id, error = %crate::error_chain(&error), "hibernate at deadline failed; destroying")
                }
            }
        }
        let current = self.store.get_sandbox(tenant_id, id).await?.unwrap_or(record);
        self.destroy_record(&current, "timeout", "system").await
    }
}
