//! Template warm-pool endpoints (`/v1/template-warm-pools…`, rest.md §7a): create, list, get, update,
//! the enable/disable/drain/reconcile actions, delete, and a polling wait for ready capacity. Bodies
//! follow the official client's `template_warm_pool.py` (unset fields are left out).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{segment, Client};
use crate::error::ClientError;
use crate::template_types::WarmPoolInfo;
use nullspace_types::sandbox::{CreateSandboxRequest, SandboxInfo};

/// How long a create from a pool may take (a `require` waits for the pool).
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

const BASE: &str = "/v1/template-warm-pools";

/// Sandbox resources of a warm pool's instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmPoolResources {
    /// vCPUs (official default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// Memory in MiB (official default 512).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Disk in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
}

/// Body of `POST /v1/template-warm-pools` and, with every field optional, of `PATCH …/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmPoolSpec {
    /// Template ref the pool keeps ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ready instances to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready: Option<u32>,
    /// Most ready or warming instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ready: Option<u32>,
    /// Instance resources (sent whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<WarmPoolResources>,
    /// Seconds an idle ready instance lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds after which a ready instance is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_after_seconds: Option<u64>,
    /// Default checkout: `prefer`, `require` or `bypass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_policy: Option<String>,
    /// `pinned_build` or `track_tag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_policy: Option<String>,
    /// Tag followed with `track_tag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_tag: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Map<String, Value>>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// Filters of `GET /v1/template-warm-pools`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListWarmPools {
    /// Only pools of this template ref.
    pub template: Option<String>,
    /// Only pools in this state.
    pub state: Option<String>,
    /// Only pools with these `KEY=VALUE` labels.
    pub labels: Vec<String>,
    /// Only pools with this public status.
    pub status: Option<String>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// The state changes a warm pool takes as `POST …/{id}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmPoolAction {
    /// Start filling.
    Enable,
    /// Stop filling (ready instances stay).
    Disable,
    /// Release the ready instances.
    Drain,
    /// Fill or trim now.
    Reconcile,
}

impl WarmPoolAction {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Drain => "drain",
            Self::Reconcile => "reconcile",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PoolList {
    Items { items: Vec<WarmPoolInfo> },
    List(Vec<WarmPoolInfo>),
}

fn pool_path(id: &str) -> String {
    format!("{BASE}/{}", segment(id))
}

impl Client {
    /// `POST /v1/template-warm-pools`.
    pub async fn create_warm_pool(&self, spec: &WarmPoolSpec) -> Result<WarmPoolInfo, ClientError> {
        let pool: WarmPoolInfo = self.send_json(self.request(Method::POST, BASE)?.json(spec)).await?;
        Ok(pool.with_legacy_names())
    }

    /// `GET /v1/template-warm-pools` (a bare array or `{items}`).
    pub async fn list_warm_pools(&self, query: &ListWarmPools) -> Result<Vec<WarmPoolInfo>, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        params.extend(query.template.clone().map(|t| ("template", t)));
        params.extend(query.state.clone().map(|s| ("state", s)));
        params.extend(query.labels.iter().map(|l| ("label", l.clone())));
        params.extend(query.status.clone().map(|s| ("status", s)));
        params.extend(query.limit.map(|l| ("limit", l.to_string())));
        let list: PoolList = self.send_json(self.request(Method::GET, BASE)?.query(&params)).await?;
        let items = match list {
            PoolList::Items { items } | PoolList::List(items) => items,
        };
        Ok(items.into_iter().map(WarmPoolInfo::with_legacy_names).collect())
    }

    /// `GET /v1/template-warm-pools/{id}`.
    pub async fn get_warm_pool(&self, id: &str) -> Result<WarmPoolInfo, ClientError> {
        let pool: WarmPoolInfo = self.send_json(self.request(Method::GET, &pool_path(id))?).await?;
        Ok(pool.with_legacy_names())
    }

    /// `PATCH /v1/template-warm-pools/{id}` with the fields set in `spec`.
    pub async fn update_warm_pool(&self, id: &str, spec: &WarmPoolSpec) -> Result<WarmPoolInfo, ClientError> {
        let pool: WarmPoolInfo = self.send_json(self.request(Method::PATCH, &pool_path(id))?.json(spec)).await?;
        Ok(pool.with_legacy_names())
    }

    /// `POST /v1/template-warm-pools/{id}/{enable|disable|drain|reconcile}`.
    pub async fn warm_pool_action(&self, id: &str, action: WarmPoolAction) -> Result<WarmPoolInfo, ClientError> {
        let path = format!("{}/{}", pool_path(id), action.as_str());
        let pool: WarmPoolInfo = self.send_json(self.request(Method::POST, &path)?).await?;
        Ok(pool.with_legacy_names())
    }

    /// `DELETE /v1/template-warm-pools/{id}`.
    pub async fn delete_warm_pool(&self, id: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &pool_path(id))?).await
    }

    /// Polls the pool every `interval` until it has `min_ready` ready instances (default: its own
    /// `min_ready`). `Ok(Err(pool))` when `timeout` passes first, with the pool as last seen.
    pub async fn wait_warm_pool(
        &self,
        id: &str,
        min_ready: Option<u64>,
        timeout: Duration,
        interval: Duration,
    ) -> Result<Result<WarmPoolInfo, WarmPoolInfo>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let pool = self.get_warm_pool(id).await?;
            if pool.status.ready >= min_ready.unwrap_or(pool.min_ready) {
                return Ok(Ok(pool));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Err(pool));
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
        }
    }
}

impl Client {
    /// `POST /v1/sandboxes` with `warm_pool: {id, mode}`: claims a ready sandbox of the pool (`prefer`
    /// falls back to a cold create, `require` fails with `warm_pool_unavailable`).
    pub async fn create_sandbox_from_pool(
        &self,
        request: &CreateSandboxRequest,
        pool_id: &str,
        mode: &str,
    ) -> Result<(SandboxInfo, Option<Value>), ClientError> {
        self.create_sandbox_checked_out(request, Some(serde_json::json!({"id": pool_id, "mode": mode}))).await
    }

    /// Creates a sandbox with `warm_pool` as the request's (`None`: the server's choice, which may be a
    /// built-in template's pool; `{"mode": "bypass"}`: a cold create) and returns it with the server's
    /// `warm_pool_checkout` answer.
    pub async fn create_sandbox_checked_out(
        &self,
        request: &CreateSandboxRequest,
        warm_pool: Option<Value>,
    ) -> Result<(SandboxInfo, Option<Value>), ClientError> {
        let mut body = serde_json::to_value(request).unwrap_or(Value::Null);
        if let (Value::Object(map), Some(warm_pool)) = (&mut body, warm_pool) {
            map.insert("warm_pool".into(), warm_pool);
        }
        let builder = self
            .request(Method::POST, "/v1/sandboxes")?
            .header("Idempotency-Key", crate::sandboxes::new_idempotency_key())
            .timeout(CREATE_TIMEOUT)
            .json(&body);
        let answer: Value = self.send_json(builder).await?;
        let checkout = answer.get("warm_pool_checkout").cloned();
        let info = serde_json::from_value(answer)
            .map_err(|source| ClientError::Decode { url: self.url("/v1/sandboxes"), source })?;
        Ok((info, checkout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_leave_unset_fields_out() {
        let spec = WarmPoolSpec {
            template_ref: Some("team/api:stable".into()),
            name: Some("small".into()),
            min_ready: Some(0),
            max_ready: Some(2),
            resources: Some(WarmPoolResources { vcpus: Some(2), memory_mb: Some(512), disk_mb: None }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"template_ref": "team/api:stable", "name": "small", "min_ready": 0, "max_ready": 2,
                "resources": {"vcpus": 2, "memory_mb": 512}})
        );
        let scale = WarmPoolSpec { min_ready: Some(3), ..Default::default() };
        assert_eq!(serde_json::to_value(&scale).unwrap(), serde_json::json!({"min_ready": 3}));
    }

    #[test]
    fn lists_may_be_arrays_or_items() {
        let items: PoolList = serde_json::from_str(r#"{"items":[{"id":"twp_1"}]}"#).unwrap();
        assert!(matches!(items, PoolList::Items { items } if items[0].id == "twp_1"));
        assert!(matches!(serde_json::from_str::<PoolList>("[]").unwrap(), PoolList::List(v) if v.is_empty()));
    }
}
