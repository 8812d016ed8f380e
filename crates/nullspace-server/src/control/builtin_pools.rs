//! Warm pools the server keeps for built-in templates and shares between tenants, so that a create of
//! `code-interpreter` answers with its gateway and default kernel already running instead of paying
//! their start (hundreds of milliseconds of Python imports) on every create.
//!
//! Each pool belongs to the system tenant (no API key ever reaches it) and is kept by the ordinary
//! refill task. A create that names no `warm_pool` and whose settings the idle members already have
//! takes one: the member moves to the creating tenant, leaves the pool and is from then on an ordinary
//! sandbox of theirs. Members never held anything of a tenant's: they were started from the template
//! alone. A create's envs and cwd reach a member as they reach a cold sandbox: commands get them from
//! guestd, and the template's start command never sees them either way (the code-interpreter gateway
//! reads the sandbox's envs from guestd and sets them in its kernels). Default size and network and no
//! volumes qualify, as for any pool; every other create, and every create naming a `warm_pool`, is
//! served as before.

use std::collections::HashMap;
use std::sync::Mutex;

use nullspace_types::sandbox::CreateSandboxRequest;

use super::builtin_recipes::SYSTEM_TENANT;
use super::service::ControlResult;
use super::template_refs::ResolvedTemplate;
use super::validate;
use super::warm_pool_claims::mismatch;
use super::warm_pools::{PoolRequest, PoolResources};
use super::Control;
use crate::store::{SandboxRecord, Tenant};

/// Claims tried per create before it goes cold (a member that cannot take the request is destroyed).
const CLAIM_ATTEMPTS: usize = 2;

/// The system's pool of one built-in template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BuiltinPool {
    tenant_id: String,
    pool_id: String,
}

/// The built-in pools, by the template id they hold.
#[derive(Debug, Default)]
pub struct BuiltinPools {
    by_template: Mutex<HashMap<String, BuiltinPool>>,
}

impl BuiltinPools {
    fn get(&self, template_id: &str) -> Option<BuiltinPool> {
        self.by_template.lock().unwrap_or_else(|p| p.into_inner()).get(template_id).cloned()
    }

    fn set(&self, template_id: &str, pool: Option<BuiltinPool>) {
        let mut map = self.by_template.lock().unwrap_or_else(|p| p.into_inner());
        match pool {
            Some(pool) => map.insert(template_id.to_owned(), pool),
            None => map.remove(template_id),
        };
    }
}

/// The name of the system's pool of built-in `name`.
fn pool_name(name: &str) -> String {
    format!("builtin-{name}")
}

impl Control {
    /// Keeps `size` idle sandboxes of built-in `name` started in the system's pool for it: creates or
    /// updates the pool for its template `template_id`, or deletes it when `size` is 0 or the built-in
    /// is not there (`None`: not built on this server).
    pub(super) async fn ensure_builtin_pool(
        &self,
        name: &str,
        template_id: Option<&str>,
        size: u32,
    ) -> ControlResult<()> {
        let tenant = self.store.ensure_tenant(SYSTEM_TENANT).await?;
        let wanted = pool_name(name);
        let existing = self.store.list_warm_pools(&tenant.id).await?.into_iter().find(|pool| pool.name == wanted);
        let Some(template_id) = template_id.filter(|_| size > 0) else {
            if let Some(template_id) = template_id {
                self.builtin_pools.set(template_id, None);
            }
            if let Some(pool) = existing {
                self.delete_warm_pool(&tenant, &pool.id).await?;
            }
            return Ok(());
        };
        let request = PoolRequest {
            template_ref: Some(template_id.to_owned()),
            name: Some(wanted),
            min_ready: Some(size),
            max_ready: Some(size),
            resources: Some(PoolResources {
                vcpus: Some(validate::DEFAULT_VCPUS),
                memory_mb: Some(self.default_memory_mb(template_id)),
                disk_mb: None,
            }),
            checkout_policy: Some("prefer".to_owned()),
            ..PoolRequest::default()
        };
        let (pool, _) = match existing {
            Some(pool) => self.update_warm_pool(&tenant, &pool.id, &request).await?,
            None => self.create_warm_pool(&tenant, &request).await?,
        };
        tracing::info!(template = %name, pool = %pool.id, size, "built-in warm pool kept for every tenant");
        self.builtin_pools.set(template_id, Some(BuiltinPool { tenant_id: tenant.id, pool_id: pool.id }));
        Ok(())
    }

    /// A started sandbox from the built-in pool of the request's template, given to `tenant` with the
    /// request's settings; `None` when there is no such pool, the request does not fit it, or it has
    /// no idle member now (the create then goes cold; it never waits for one).
    pub(super) async fn claim_builtin(
        &self,
        tenant: &Tenant,
        request: &CreateSandboxRequest,
        idempotency_key: Option<&str>,
    ) -> ControlResult<Option<SandboxRecord>> {
        let reference = request.template.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "base".to_owned());
        let template = match self.resolve_template(tenant, &reference).await? {
            ResolvedTemplate::Built { template_id, .. } => template_id,
            ResolvedTemplate::Builtin { .. } => return Ok(None),
        };
        let Some(builtin) = self.builtin_pools.get(&template) else { return Ok(None) };
        if builtin.tenant_id == tenant.id {
            return Ok(None);
        }
        let Some(pool) = self.store.get_warm_pool(&builtin.tenant_id, &builtin.pool_id).await? else {
            return Ok(None);
        };
        if mismatch(&pool, request, &template, self.default_memory_mb(&template)).is_some() {
            return Ok(None);
        }
        let envs = self.claim_settings(&template, request)?;
        for _ in 0..CLAIM_ATTEMPTS {
            let starting = self.warm.starting_members();
            let Some(id) = self.store.claim_pool_sandbox(&pool.tenant_id, &pool.id, &template, &starting).await? else {
                return Ok(None);
            };
            self.warm.wake.notify_one();
            if !self.adopt_within_quota(&id, &pool.tenant_id, &tenant.id).await? {
                continue;
            }
            match self.finish_claim(tenant, &id, None, request, envs.clone(), idempotency_key).await {
                Ok(record) => {
                    self.store.leave_pool(&id).await?;
                    return Ok(Some(record));
                }
                Err(error) => {
                    tracing::warn!(sandbox = %id, error = %crate::error_chain(&error), "a built-in pool sandbox could not take the request's settings; destroying it");
                    if let Some(record) = self.store.get_sandbox(&tenant.id, &id).await? {
                        self.destroy_record(&record, "warm_pool_claim_failed", "system").await?;
                    }
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_found_by_the_template_they_hold() {
        let pools = BuiltinPools::default();
        let pool = BuiltinPool { tenant_id: "tn_system".into(), pool_id: "wp_1".into() };
        pools.set("tmpl_ci", Some(pool.clone()));
        assert_eq!(pools.get("tmpl_ci"), Some(pool));
        assert_eq!(pools.get("tmpl_other"), None);
        pools.set("tmpl_ci", None);
        assert_eq!(pools.get("tmpl_ci"), None);
        assert_eq!(pool_name("code-interpreter"), "builtin-code-interpreter");
    }
}
