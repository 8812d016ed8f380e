//! Creating sandboxes from templates: the request checked (size, timeout, envs, cwd, metadata, network
//! policy, volumes), a warm pool tried first when the request names one, the record made and started,
//! and the template's start command run once with its readiness awaited.

use nullspace_node::network::{parse_destination, Network, NetworkPolicy};
use nullspace_types::sandbox::{CreateSandboxRequest, NetworkRequest};

use super::capacity::Refusal;
use super::service::{ControlResult, CreateParams, SetGuard};
use super::validate::{self, invalid, DEFAULT_TIMEOUT_MS};
use super::warm_pool_claims::CheckoutInfo;
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::{SandboxRecord, Tenant};

/// Working directory of sandboxes of a built template that declares none.
const DEFAULT_BUILT_CWD: &str = "/workspace";
/// Memory of a sandbox whose create and template name none, MiB.
const DEFAULT_MEMORY_MB: u32 = 512;

impl Control {
    /// Memory of a sandbox of `template_id` whose create names none: the built-in recipe's, or 512 MiB.
    pub(super) fn default_memory_mb(&self, template_id: &str) -> u32 {
        self.builtins.by_template(template_id).and_then(|(_, builtin)| builtin.memory_mb).unwrap_or(DEFAULT_MEMORY_MB)
    }

    /// Creates a sandbox and returns it running, saying how a `warm_pool` of the request was served
    /// (claimed from the pool, cold create, bypassed; snapshot creates never use a pool). A repeated
    /// idempotency key returns the first sandbox.
    pub async fn create_checked(
        &self,
        tenant: &Tenant,
        params: CreateParams,
    ) -> ControlResult<(SandboxRecord, Option<CheckoutInfo>)> {
        if let Some(key) = &params.idempotency_key {
            if let Some(existing) = self.store.get_sandbox_by_idempotency_key(&tenant.id, key).await? {
                return Ok((self.settled(existing).await?, None));
            }
        }
        let mut request = params.request;
        super::create_fields::normalize_create(&mut request)?;
        if let Some(snapshot_id) = request.snapshot_id.clone().filter(|id| !id.is_empty()) {
            let record = self.create_from_snapshot(tenant, &snapshot_id, request, params.idempotency_key).await?;
            return Ok((record, None));
        }
        let key = params.idempotency_key.as_deref();
        let (claimed, checkout) = match params.warm_pool.as_ref() {
            Some(ask) => self.checkout(tenant, &request, Some(ask), key).await?,
            None => match self.claim_builtin(tenant, &request, key).await? {
                // The system's pool is no pool of the tenant's: no id.
                Some(record) => {
                    let info = CheckoutInfo {
                        id: None,
                        source: "ready_instance",
                        hit: true,
                        mode: "prefer".into(),
                        wait_ms: 0,
                    };
                    (Some(record), Some(info))
                }
                None => (None, None),
            },
        };
        if let Some(record) = claimed {
            return Ok((record, checkout));
        }
        Ok((self.create_cold(tenant, request, params.idempotency_key, None).await?, checkout))
    }

    /// Creates and starts a sandbox from a template. `pool` makes it an idle member of that warm pool
    /// (hidden from the tenant, no create events, deadline `pool.1` in Unix ms) instead of a sandbox of
    /// the caller's.
    pub(super) async fn create_cold(
        &self,
        tenant: &Tenant,
        request: CreateSandboxRequest,
        idempotency_key: Option<String>,
        pool: Option<(String, i64)>,
    ) -> ControlResult<SandboxRecord> {
        let reference = request.template.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "base".to_owned());
        // A sandbox keeps the template it was created from: the record holds the resolved id, not the
        // ref (a tag can move to another build later).
        let (template_id, default_cwd, runtime) = match self.resolve_template(tenant, &reference).await? {
            super::template_refs::ResolvedTemplate::Builtin { name } => {
                let layer = self
                    .node
                    .templates()
                    .get(&name)
                    .ok_or_else(|| ControlError::TemplateNotFound { template: reference.clone() })?;
                (name, layer.default_cwd, None)
            }
            super::template_refs::ResolvedTemplate::Built { template_id, image } => {
                let cwd = image.runtime.default_workdir.clone().unwrap_or_else(|| DEFAULT_BUILT_CWD.to_owned());
                (template_id, cwd, Some(image.runtime))
            }
        };
        let vcpus = request.vcpus.unwrap_or(validate::DEFAULT_VCPUS);
        let memory_mb = request.memory_mb.unwrap_or_else(|| self.default_memory_mb(&template_id));
        self.capacity.check_size(vcpus, memory_mb).map_err(|refusal| match refusal {
            Refusal::TooLarge(message) | Refusal::NoRoom(message) => invalid(message),
        })?;
        let disk_mb = self.disk_limits.for_create(request.disk_mb).map_err(invalid)?;
        let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        validate::timeout(timeout_ms)?;
        let envs = self.create_envs(&template_id, &request)?;
        let cwd = request.cwd.filter(|cwd| !cwd.is_empty()).unwrap_or(default_cwd);
        validate::cwd(&cwd)?;
        if let Some(metadata) = &request.metadata {
            validate::metadata(metadata)?;
        }
        let network = network_policy(request.internet_access, request.network.as_ref())?;
        let volumes = self.resolve_mounts(tenant, request.volumes.as_deref().unwrap_or_default()).await?;
        self.admit(vcpus, memory_mb).await?;
        let mut record = new_record(
            tenant,
            template_id,
            (vcpus, memory_mb),
            envs,
            request.metadata.unwrap_or_default(),
            cwd,
            timeout_ms,
            request.timeout_action.unwrap_or_default().as_str(),
            Vec::new(),
            idempotency_key,
        );
        record.network = network;
        record.volumes = volumes;
        record.auto_resume = request.auto_resume.unwrap_or(false);
        record.disk_mb = disk_mb;
        if let Some((pool_id, deadline_ms)) = pool {
            record.warm_pool_id = Some(pool_id);
            record.deadline_ms = deadline_ms;
        }
        let ours = record.id.clone();
        // A pool member is not claimable until its template's start command ran and its readiness held.
        let _starting = record.warm_pool_id.as_ref().and_then(|_| SetGuard::insert(&self.warm.starting, ours.clone()));
        let record = self.insert_and_start(record, "api", None).await?;
        // Under an idempotency key another request may have made the sandbox: that one starts it.
        if let Some(runtime) = runtime.filter(|_| record.id == ours) {
            if let Err(error) = self.start_template(&record.id, &runtime, &record.envs).await {
                if let Err(cleanup) = self.destroy_record(&record, "template_start_failed", "system").await {
                    tracing::warn!(sandbox = %record.id, error = %crate::error_chain(&cleanup), "cannot remove a sandbox whose template did not start");
                }
                return Err(error);
            }
        }
        Ok(record)
    }
}

/// The egress policy of a create request; bad entries are a 400.
pub(crate) fn network_policy(
    internet_access: Option<bool>,
    request: Option<&NetworkRequest>,
) -> ControlResult<NetworkPolicy> {
    let parse = |entries: Option<&Vec<String>>| -> ControlResult<Vec<_>> {
        entries
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|entry| parse_destination(entry).map_err(|error| invalid(error.to_string())))
            .collect()
    };
    let policy = NetworkPolicy {
        internet_access: internet_access.unwrap_or(true),
        allow_out: parse(request.and_then(|r| r.allow_out.as_ref()))?,
        deny_out: parse(request.and_then(|r| r.deny_out.as_ref()))?,
    };
    Network::validate_policy(&policy).map_err(|error| invalid(error.to_string()))?;
    Ok(policy)
}

/// A new `creating` record.
#[expect(clippy::too_many_arguments, reason = "a plain constructor of one row")]
pub(super) fn new_record(
    tenant: &Tenant,
    template: String,
    (vcpus, memory_mb): (u32, u32),
    envs: std::collections::BTreeMap<String, String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    cwd: String,
    timeout_ms: u64,
    timeout_action: &str,
    layers: Vec<String>,
    idempotency_key: Option<String>,
) -> SandboxRecord {
    let now = clock::now_ms();
    SandboxRecord {
        id: crate::ids::sandbox_id(),
        tenant_id: tenant.id.clone(),
        state: SandboxState::Creating,
        template,
        vcpus,
        memory_mb,
        disk_mb: None,
        envs,
        metadata,
        cwd,
        created_at: clock::ms_to_rfc3339(now),
        started_at: None,
        timeout_ms,
        deadline_ms: now.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX)),
        timeout_action: timeout_action.to_owned(),
        idempotency_key,
        error: None,
        layers,
        snapshot_id: None,
        network: NetworkPolicy::default(),
        volumes: Vec::new(),
        warm_pool_id: None,
        pool_claimed: false,
        auto_resume: false,
    }
}
