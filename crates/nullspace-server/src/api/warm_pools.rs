//! Template warm pool routes (`/v1/template-warm-pools`): create, list (filters `template`, `state`,
//! `label`, `status`, `limit`), get, update, enable, disable, drain, reconcile and delete. Handlers
//! parse, call `control`, and render the pool object.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::extract::{parse_object, Body, Path, Query};
use super::{ApiError, AppState};
use crate::control::warm_pools::{PoolFilter, PoolRequest};
use crate::store::warm_pools::{PoolCounts, PoolState, WarmPoolRecord};

/// The wire object of a pool.
pub fn pool_value(pool: &WarmPoolRecord, counts: &PoolCounts) -> Value {
    let degraded_reason = match pool.state {
        PoolState::Draining => Some("drain_active"),
        PoolState::Disabled => Some("controller_disabled"),
        PoolState::Enabled => None,
    };
    json!({
        "id": pool.id,
        "warm_pool_id": pool.id,
        "name": pool.name,
        "template_ref": pool.template_ref,
        "resolved_template": pool.template_id,
        "state": pool.state.as_str(),
        "min_ready": pool.min_ready,
        "max_ready": pool.max_ready,
        "resources": {"vcpus": pool.vcpus, "memory_mb": pool.memory_mb, "disk_mb": pool.disk_mb},
        "status": {
            "target": pool.min_ready,
            "ready": counts.ready,
            "warming": counts.warming,
            "claimed": counts.claimed,
            "draining": 0,
            "failed": counts.failed,
            "expired": 0,
            "unavailable": 0,
        },
        "degraded_reason": degraded_reason,
        "idle_timeout_seconds": pool.idle_timeout_seconds,
        "checkout_policy": pool.checkout_policy,
        "version_policy": "pinned_build",
        "labels": pool.labels,
        "metadata": pool.metadata,
        "created_at": pool.created_at,
        "updated_at": pool.updated_at,
        "enabled_at": pool.enabled_at,
        "disabled_at": pool.disabled_at,
        "drain_requested_at": pool.drain_requested_at,
        "last_reconciled_at": pool.last_reconciled_at,
    })
}

fn render((pool, counts): (WarmPoolRecord, PoolCounts)) -> Json<Value> {
    Json(pool_value(&pool, &counts))
}

/// `POST /v1/template-warm-pools`.
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: PoolRequest = parse_object(&body, "warm pool")?;
    Ok((StatusCode::CREATED, render(state.control.create_warm_pool(&tenant, &request).await?)))
}

/// `GET /v1/template-warm-pools`: a bare array.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(filter): Query<PoolFilter>,
) -> Result<Json<Value>, ApiError> {
    let pools = state.control.list_warm_pools(&tenant, &filter).await?;
    Ok(Json(Value::Array(pools.iter().map(|(pool, counts)| pool_value(pool, counts)).collect())))
}

/// `GET /v1/template-warm-pools/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(render(state.control.get_warm_pool(&tenant, &id).await?))
}

/// `PATCH /v1/template-warm-pools/{id}`.
pub async fn update(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: PoolRequest = parse_object(&body, "warm pool update")?;
    Ok(render(state.control.update_warm_pool(&tenant, &id, &request).await?))
}

/// `POST /v1/template-warm-pools/{id}/{enable|disable|drain|reconcile}`.
pub async fn action(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let control = &state.control;
    let answer = match action.as_str() {
        "enable" => control.set_warm_pool_state(&tenant, &id, PoolState::Enabled).await?,
        "disable" => control.set_warm_pool_state(&tenant, &id, PoolState::Disabled).await?,
        "drain" => control.set_warm_pool_state(&tenant, &id, PoolState::Draining).await?,
        "reconcile" => control.reconcile_warm_pool(&tenant, &id).await?,
        other => {
            return Err(ApiError::new(
                nullspace_types::ErrorCode::NotFound,
                format!("no warm pool action {other:?}; use enable, disable, drain or reconcile"),
            ))
        }
    };
    Ok(render(answer))
}

/// `DELETE /v1/template-warm-pools/{id}`: idle sandboxes are destroyed, claimed ones stay.
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.control.delete_warm_pool(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
