//! The control service: validates requests, records each transition, then asks the node to act.

use std::collections::HashSet;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nullspace_node::{GuestLink, LaunchSpec, Node, SandboxUsage};
use nullspace_types::sandbox::{CreateSandboxRequest, TimeoutAction};

use super::{ControlError, SandboxState};
use crate::clock;
use crate::metrics::CpuSampler;
use crate::preview::PreviewPorts;
use crate::store::{ListFilter, SandboxRecord, Store, Tenant};

/// Longest lifetime a sandbox may ask for (24 h).
const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Lifetime when the request names none (5 min, as the client's default).
const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Path prefix reserved for the runtime.
const RESERVED_PREFIX: &str = "/workspace/.nullspace";

type ControlResult<T> = Result<T, ControlError>;

/// A create request after validation.
#[derive(Debug, Clone)]
pub struct CreateParams {
    /// The request body.
    pub request: CreateSandboxRequest,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// Drives sandboxes through their state machine.
#[derive(Clone)]
pub struct Control {
    store: Store,
    node: Arc<Node>,
    max_sandboxes: usize,
    /// Sandboxes whose destroy is running now, so retries never run a second destroy beside it.
    destroying: Arc<Mutex<HashSet<String>>>,
    /// Last CPU readings, for metrics.
    cpu: Arc<CpuSampler>,
    /// Open preview forwards.
    preview: Arc<PreviewPorts>,
}

/// Removes a sandbox from the in-flight destroy set when dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.id);
    }
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::InvalidRequest { message: message.into() }
}

/// The template name a reference points at (`base`, `base:default`, `nullspace/base` → `base`).
fn template_name(reference: &str) -> &str {
    let without_namespace = reference.strip_prefix("nullspace/").unwrap_or(reference);
    without_namespace.strip_suffix(":default").unwrap_or(without_namespace)
}

fn validate_cwd(cwd: &str) -> ControlResult<()> {
    if !cwd.starts_with('/') {
        return Err(invalid(format!("cwd {cwd:?} must be an absolute path")));
    }
    if cwd.split('/').any(|part| part == "..") || cwd.contains('\0') {
        return Err(invalid(format!("cwd {cwd:?} must not contain `..` or NUL")));
    }
    if cwd == RESERVED_PREFIX || cwd.starts_with(&format!("{RESERVED_PREFIX}/")) {
        return Err(invalid(format!("cwd is reserved: {cwd:?} is under {RESERVED_PREFIX}")));
    }
    Ok(())
}

fn validate_envs(envs: &BTreeMap<String, String>) -> ControlResult<()> {
    for (key, value) in envs {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(invalid(format!(
                "environment variable {key:?} is invalid: names must be non-empty without `=` or NUL"
            )));
        }
    }
    Ok(())
}

impl Control {
    /// A control service over `store` and `node`, admitting at most `max_sandboxes` live sandboxes.
    pub fn new(store: Store, node: Arc<Node>, max_sandboxes: usize, preview: PreviewPorts) -> Self {
        Self { store, node, max_sandboxes, destroying: Arc::default(), cpu: Arc::default(), preview: Arc::new(preview) }
    }

    /// The node this control plane drives.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a sandbox and returns it running. A repeated idempotency key returns the first sandbox.
    pub async fn create(&self, tenant: &Tenant, params: CreateParams) -> ControlResult<SandboxRecord> {
        if let Some(key) = &params.idempotency_key {
            if let Some(existing) = self.store.get_sandbox_by_idempotency_key(&tenant.id, key).await? {
                return self.settled(existing).await;
            }
        }
        let request = params.request;
        if request.snapshot_id.is_some() {
            return Err(ControlError::InvalidRequest {
                message: "creating from a snapshot is not supported by this server yet; create from a template".into(),
            });
        }
        let reference = request.template.clone().unwrap_or_else(|| "base".to_owned());
        let template = self
            .node
            .templates()
            .get(template_name(&reference))
            .ok_or_else(|| ControlError::TemplateNotFound { template: reference.clone() })?;
        let vcpus = request.vcpus.unwrap_or(2);
        if !(1..=64).contains(&vcpus) {
            return Err(invalid(format!("vcpus must be between 1 and 64, got {vcpus}")));
        }
        let memory_mb = request.memory_mb.unwrap_or(512);
        if !(64..=262_144).contains(&memory_mb) {
            return Err(invalid(format!("memory_mb must be between 64 and 262144, got {memory_mb}")));
        }
        let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, got {timeout_ms}")));
        }
        let envs = request.envs.unwrap_or_default();
        validate_envs(&envs)?;
        let cwd = request.cwd.filter(|cwd| !cwd.is_empty()).unwrap_or_else(|| template.default_cwd.clone());
        validate_cwd(&cwd)?;

        let live = self.store.sandboxes_in_states(&[SandboxState::Creating, SandboxState::Running]).await?.len();
        if live >= self.max_sandboxes {
            return Err(ControlError::Capacity {
                reason: format!("{live} of {} sandboxes in use", self.max_sandboxes),
            });
        }

        let now = clock::now_ms();
        let record = SandboxRecord {
            id: crate::ids::sandbox_id(),
            tenant_id: tenant.id.clone(),
            state: SandboxState::Creating,
            template: reference,
            vcpus,
            memory_mb,
            envs,
            metadata: request.metadata.unwrap_or_default(),
            cwd,
            created_at: clock::ms_to_rfc3339(now),
            started_at: None,
            timeout_ms,
            deadline_ms: now.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX)),
            timeout_action: request.timeout_action.unwrap_or_default().as_str().to_owned(),
            idempotency_key: params.idempotency_key.clone(),
            error: None,
        };
        if !self.store.insert_sandbox(&record).await? {
            // Lost a race with a concurrent request carrying the same idempotency key.
            let key = params.idempotency_key.unwrap_or_default();
            let existing = self.store.get_sandbox_by_idempotency_key(&tenant.id, &key).await?;
            return match existing {
                Some(existing) => self.settled(existing).await,
                None => Err(invalid("idempotency key conflict; retry the request")),
            };
        }
        let span = tracing::info_span!("sandbox", id = %record.id);
        let _guard = span.enter();
        let spec = LaunchSpec {
            sandbox_id: record.id.clone(),
            template: template.name.clone(),
            envs: record.envs.clone(),
            cwd: Some(record.cwd.clone()),
            vcpus,
            memory_mb,
        };
        if let Err(error) = self.node.launch(&spec).await {
            tracing::warn!(error = %crate::error_chain(&error), "launch failed");
            self.store
                .transition(&record.id, &[SandboxState::Creating], SandboxState::Error, Some(&error.to_string()))
                .await?;
            return Err(error.into());
        }
        if !self.store.transition(&record.id, &[SandboxState::Creating], SandboxState::Running, None).await? {
            // Destroyed while launching: release what the launch acquired.
            self.release(&record.id).await?;
            return Err(ControlError::SandboxNotFound { sandbox_id: record.id });
        }
        self.get(tenant, &record.id).await
    }

    /// Waits (bounded) for a sandbox found by idempotency key to leave `creating`.
    async fn settled(&self, mut record: SandboxRecord) -> ControlResult<SandboxRecord> {
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

    async fn get_for_tenant_id(&self, tenant_id: &str, id: &str) -> ControlResult<SandboxRecord> {
        match self.store.get_sandbox(tenant_id, id).await? {
            Some(record) if record.state.is_visible() => Ok(record),
            _ => Err(ControlError::SandboxNotFound { sandbox_id: id.to_owned() }),
        }
    }

    /// Sandboxes of `tenant` matching `filter`.
    pub async fn list(&self, tenant: &Tenant, filter: &ListFilter) -> ControlResult<Vec<SandboxRecord>> {
        Ok(self.store.list_sandboxes(&tenant.id, filter).await?)
    }

    /// The guest of running sandbox `id`.
    pub async fn guest(&self, tenant: &Tenant, id: &str) -> ControlResult<(SandboxRecord, GuestLink)> {
        self.guest_for_tenant_id(&tenant.id, id).await
    }

    /// The guest of running sandbox `id` of the tenant with id `tenant_id` (signed URLs carry the id).
    pub async fn guest_for_tenant_id(&self, tenant_id: &str, id: &str) -> ControlResult<(SandboxRecord, GuestLink)> {
        let record = self.get_for_tenant_id(tenant_id, id).await?;
        if !record.state.serves_requests() {
            return Err(ControlError::NotRunning { sandbox_id: id.to_owned(), state: record.state.as_str() });
        }
        let link = self.node.guest(id);
        Ok((record, link))
    }

    /// Destroys sandbox `id` of `tenant`.
    pub async fn destroy(&self, tenant: &Tenant, id: &str, reason: &str) -> ControlResult<()> {
        self.get(tenant, id).await?;
        self.destroy_any(id, reason).await
    }

    /// Destroys sandbox `id` regardless of tenant (reaper, reconcile).
    pub async fn destroy_any(&self, id: &str, reason: &str) -> ControlResult<()> {
        let moved = self
            .store
            .transition(id, &SandboxState::sources_of(SandboxState::Destroying), SandboxState::Destroying, None)
            .await?;
        if !moved {
            return Ok(()); // already destroying or destroyed: the other caller finishes the job
        }
        tracing::info!(sandbox = %id, reason, "destroying sandbox");
        self.release(id).await
    }

    /// Releases the node resources of a sandbox in `destroying` and marks it destroyed, unless another
    /// task is already doing so.
    async fn release(&self, id: &str) -> ControlResult<()> {
        let _in_flight = {
            let mut set = self.destroying.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !set.insert(id.to_owned()) {
                return Ok(());
            }
            InFlight { set: &self.destroying, id: id.to_owned() }
        };
        self.preview.close_sandbox(id);
        self.node.destroy(id).await?;
        self.cpu.forget(id);
        self.store.transition(id, &[SandboxState::Destroying], SandboxState::Destroyed, None).await?;
        Ok(())
    }

    /// The local address that forwards to `port` inside running sandbox `id`.
    pub async fn expose_port(&self, tenant: &Tenant, id: &str, port: u16) -> ControlResult<std::net::SocketAddr> {
        let (_record, guest) = self.guest(tenant, id).await?;
        self.preview.ensure(id, port, guest).await.map_err(|source| ControlError::Preview {
            sandbox_id: id.to_owned(),
            port,
            source,
        })
    }

    /// One usage sample of running sandbox `id`, with CPU averaged since the previous sample.
    pub async fn usage(&self, tenant: &Tenant, id: &str) -> ControlResult<(SandboxRecord, SandboxUsage, f64)> {
        let record = self.get(tenant, id).await?;
        let usage = self.node.usage(id, record.memory_mb);
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
        let deadline = clock::now_ms().saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX));
        self.store.set_timeout(id, timeout_ms, deadline, &action).await?;
        self.get(tenant, id).await
    }

    /// Reconciles store and host after a start: running sandboxes that still answer stay running; those
    /// that are gone, and every interrupted create or destroy, end up destroyed with nothing left behind.
    pub async fn reconcile(&self) -> ControlResult<()> {
        let records = self
            .store
            .sandboxes_in_states(&[SandboxState::Creating, SandboxState::Running, SandboxState::Error])
            .await?;
        let expected: BTreeSet<String> =
            records.iter().filter(|r| r.state == SandboxState::Running).map(|r| r.id.clone()).collect();
        let report = self.node.reconcile(&expected).await?;
        for record in &records {
            if report.alive.contains(&record.id) {
                continue;
            }
            let why = if record.state == SandboxState::Running {
                "sandbox was gone when the server restarted"
            } else {
                "server restarted before the sandbox finished creating"
            };
            let sources = SandboxState::sources_of(SandboxState::Destroying);
            self.store.transition(&record.id, &sources, SandboxState::Destroying, Some(why)).await?;
            self.store.transition(&record.id, &[SandboxState::Destroying], SandboxState::Destroyed, None).await?;
        }
        self.finish_pending_destroys().await?;
        tracing::info!(
            alive = report.alive.len(),
            gone = report.gone.len(),
            orphans = report.orphans_destroyed.len(),
            "reconciled sandboxes with the host"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_references_resolve_to_names() {
        assert_eq!(template_name("base"), "base");
        assert_eq!(template_name("nullspace/base"), "base");
        assert_eq!(template_name("base:default"), "base");
        assert_eq!(template_name("other:v1"), "other:v1");
    }

    #[test]
    fn cwd_must_be_absolute_and_not_reserved() {
        assert!(validate_cwd("/workspace").is_ok());
        assert!(validate_cwd("/tmp/x").is_ok());
        assert!(validate_cwd("relative").is_err());
        assert!(validate_cwd("/a/../b").is_err());
        let reserved = validate_cwd("/workspace/.nullspace/x").unwrap_err();
        assert!(reserved.to_string().contains("cwd is reserved"));
    }

    #[test]
    fn env_names_are_checked() {
        let mut envs = BTreeMap::new();
        envs.insert("GOOD".to_owned(), "x=y".to_owned());
        assert!(validate_envs(&envs).is_ok());
        envs.insert("BAD=NAME".to_owned(), String::new());
        assert!(validate_envs(&envs).is_err());
    }
}
