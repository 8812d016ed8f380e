//! Sandbox routes: create, get, list, kill, timeout and metrics. Each handler parses, calls `control`,
//! and renders `SandboxInfo`.

use super::extract::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use nullspace_types::sandbox::{
    CreateSandboxRequest, LifecycleInfo, SandboxConfig, SandboxInfo, SandboxPage, SetTimeoutRequest, TimeoutAction,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::clock;
use crate::control::warm_pool_claims::WarmPoolAsk;
use crate::control::{create_fields, validate};
use crate::control::{CreateParams, SandboxState};
use crate::store::{ListFilter, SandboxRecord};

/// Renders a stored sandbox as the wire object.
pub fn sandbox_info(record: &SandboxRecord) -> SandboxInfo {
    let deadline = clock::ms_to_rfc3339(record.deadline_ms);
    let timeout_action = TimeoutAction::parse(&record.timeout_action).unwrap_or_default();
    SandboxInfo {
        id: record.id.clone(),
        status: record.state.status(),
        config: SandboxConfig { vcpus: record.vcpus, memory_mb: record.memory_mb },
        template: record.template.clone(),
        metadata: {
            let mut metadata = record.metadata.clone();
            if let Some(attachments) = super::volumes::attachments_value(record) {
                metadata.insert("volume_attachments".into(), attachments);
            }
            metadata
        },
        cwd: record.cwd.clone(),
        created_at: record.created_at.clone(),
        started_at: record.started_at.clone(),
        timeout_ms: record.timeout_ms,
        timeout_at: deadline.clone(),
        expires_at: deadline,
        timeout_action,
        lifecycle: LifecycleInfo { on_timeout: timeout_action.on_timeout(), auto_resume: record.auto_resume },
        auto_resume: record.auto_resume,
        snapshot_id: if matches!(record.state, SandboxState::Paused | SandboxState::Resuming) {
            record.snapshot_id.clone()
        } else {
            None
        },
    }
}

/// Keeps only the comma-separated `fields` of a JSON object.
pub(super) fn project(value: Value, fields: Option<&str>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields.filter(|f| !f.trim().is_empty()), &value) else {
        return value;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    Value::Object(
        map.iter().filter(|(key, _)| wanted.contains(&key.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
    )
}

fn to_value(info: &SandboxInfo) -> Value {
    serde_json::to_value(info).unwrap_or(Value::Null)
}

/// A `metadata=` query (a JSON object, matched as a subset); absent or blank matches everything.
pub fn metadata_filter(text: Option<&str>) -> Result<serde_json::Map<String, Value>, ApiError> {
    match text.filter(|m| !m.trim().is_empty()) {
        None => Ok(serde_json::Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ApiError::invalid("metadata filter must be a JSON object, e.g. {\"team\":\"eval\"}")),
        },
    }
}

/// `POST /v1/sandboxes`.
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (request, warm_pool) = match super::extract::json_object(&body, "sandbox create")? {
        None => (CreateSandboxRequest::default(), None),
        Some(map) => {
            validate::create_extras(&map)?;
            let warm_pool = match map.get("warm_pool") {
                None | Some(Value::Null) => None,
                Some(value) => Some(
                    serde_json::from_value::<WarmPoolAsk>(value.clone())
                        .map_err(|error| ApiError::invalid(format!("invalid warm_pool: {error}")))?,
                ),
            };
            (super::extract::from_object(map, "sandbox create")?, warm_pool)
        }
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .filter(|key| !key.is_empty() && key.len() <= 256);
    let params = CreateParams { request, idempotency_key, warm_pool };
    let (record, checkout) = state.control.create_checked(&tenant, params).await?;
    let mut answer = to_value(&sandbox_info(&record));
    if let (Some(checkout), Value::Object(map)) = (checkout, &mut answer) {
        map.insert("warm_pool_checkout".into(), serde_json::to_value(checkout).unwrap_or(Value::Null));
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Query of `GET /v1/sandboxes/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
pub struct FieldsQuery {
    fields: Option<String>,
}

impl FieldsQuery {
    /// The requested projection, if any.
    pub fn fields(&self) -> Option<&str> {
        self.fields.as_deref()
    }
}

/// `GET /v1/sandboxes/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = state.control.get(&tenant, &id).await?;
    Ok(Json(project(to_value(&sandbox_info(&record)), query.fields.as_deref())))
}

/// Query of `GET /v1/sandboxes`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    template: Option<String>,
    metadata: Option<String>,
    limit: Option<usize>,
    next_token: Option<String>,
    fields: Option<String>,
}

/// `GET /v1/sandboxes`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let states = match query.state.as_deref().filter(|s| !s.trim().is_empty()) {
        None => vec![
            SandboxState::Creating,
            SandboxState::Running,
            SandboxState::Hibernating,
            SandboxState::Paused,
            SandboxState::Resuming,
        ],
        Some(list) => {
            let mut states = Vec::new();
            for name in list.split(',').map(str::trim) {
                match name {
                    "running" => states.extend([SandboxState::Running, SandboxState::Hibernating]),
                    "paused" => states.extend([SandboxState::Paused, SandboxState::Resuming]),
                    "creating" => states.push(SandboxState::Creating),
                    "error" => states.push(SandboxState::Error),
                    "destroyed" => {} // destroyed sandboxes are never listed
                    other => {
                        return Err(ApiError::invalid(format!(
                            "unknown state {other:?}; use running, paused, creating or error"
                        )))
                    }
                }
            }
            states
        }
    };
    let metadata = metadata_filter(query.metadata.as_deref())?;
    let filter = ListFilter { states, template: query.template, metadata };
    let records = state.control.list(&tenant, &filter).await?;
    let start = match query.next_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => records
            .iter()
            .position(|record| record.id == token)
            .ok_or_else(|| ApiError::invalid("next_token is unknown or expired; list again from the start"))?,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let page: Vec<SandboxInfo> = records.iter().skip(start).take(limit).map(sandbox_info).collect();
    let next_token = records.get(start + limit).map(|record| record.id.clone());
    if query.fields.is_some() {
        let items: Vec<Value> = page.iter().map(|info| project(to_value(info), query.fields.as_deref())).collect();
        return Ok(Json(json!({ "items": items, "has_next": next_token.is_some(), "next_token": next_token })));
    }
    let body = SandboxPage { items: page, has_next: next_token.is_some(), next_token };
    Ok(Json(serde_json::to_value(body).unwrap_or(Value::Null)))
}

/// `DELETE /v1/sandboxes/{id}`.
pub async fn kill(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.control.destroy(&tenant, &id, "manual").await?;
    Ok(Json(json!({ "id": id, "status": "destroyed" })))
}

/// `POST /v1/sandboxes/{id}/timeout`.
pub async fn set_timeout(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<SandboxInfo>, ApiError> {
    let request: SetTimeoutRequest = super::extract::parse_object(&body, "timeout")?;
    let timeout_ms = request.timeout_ms.ok_or_else(|| ApiError::invalid("timeout_ms is required"))?;
    let action = create_fields::timeout_action(request.timeout_action, request.lifecycle.as_ref())?;
    let record = state.control.set_timeout(&tenant, &id, timeout_ms, action).await?;
    Ok(Json(sandbox_info(&record)))
}

/// `GET /v1/sandboxes/{id}/metrics`: one sample, CPU averaged since the previous sample.
pub async fn metrics(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (record, usage, cpu_percent) = state.control.usage(&tenant, &id).await?;
    Ok(Json(json!([{
        "timestamp": clock::now_rfc3339(),
        "cpu_percent": cpu_percent,
        "cpu_count": record.vcpus,
        "mem_used_bytes": usage.mem_used_bytes,
        "mem_total_bytes": usage.mem_total_bytes,
        "disk_used_bytes": usage.disk_used_bytes,
        "disk_total_bytes": usage.disk_total_bytes,
    }])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_keeps_only_named_fields() {
        let value = json!({"id": "sb_1", "status": "running", "metadata": {}});
        assert_eq!(project(value.clone(), Some("id,status")), json!({"id": "sb_1", "status": "running"}));
        assert_eq!(project(value.clone(), None), value);
    }
}
