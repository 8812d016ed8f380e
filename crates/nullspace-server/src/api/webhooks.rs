//! Lifecycle webhook routes: create, list, get, update and delete webhooks, and read their deliveries
//! with attempts. The signing secret is write-only: responses say only whether one is set.

use super::extract::{Path, Query};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::clock;
use crate::control::webhooks::NewWebhook;
use crate::control::ControlError;
use crate::store::webhooks::{AttemptRecord, DeliveryRecord, WebhookChanges, WebhookRecord};

fn webhook_json(hook: &WebhookRecord) -> Value {
    json!({
        "id": hook.id,
        "url": hook.url,
        "operations": hook.operations,
        "enabled": hook.enabled,
        "has_signing_secret": !hook.signing_secret.is_empty(),
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
        "last_delivery_at": hook.last_delivery_at,
        "last_delivery_status": hook.last_delivery_status,
        "last_error": hook.last_error,
    })
}

fn delivery_json(delivery: &DeliveryRecord) -> Value {
    json!({
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "operation": delivery.event.operation,
        "status": delivery.event.status,
        "delivery_status": delivery.delivery_status,
        "attempt_count": delivery.attempt_count,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_ms.map(clock::ms_to_rfc3339),
        "last_attempt_at": delivery.last_attempt_at,
        "last_response_status": delivery.last_response_status,
        "last_error": delivery.last_error,
    })
}

fn attempt_json(attempt: &AttemptRecord) -> Value {
    json!({
        "id": attempt.id,
        "delivery_id": attempt.delivery_id,
        "attempt_number": attempt.attempt_number,
        "attempted_at": attempt.attempted_at,
        "duration_ms": attempt.duration_ms,
        "response_status": attempt.response_status,
        "error_code": attempt.error_code,
        "error_message": attempt.error_message,
    })
}

fn webhook_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("webhook {id} not found; list webhooks with GET /v1/lifecycle/webhooks"))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    ControlError::from(error).into()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    super::extract::parse_object(body, what)
}

/// Body of `POST /v1/lifecycle/webhooks`.
#[derive(Debug, Deserialize)]
struct CreateBody {
    url: Option<String>,
    operations: Option<Vec<String>>,
    signing_secret: Option<String>,
    enabled: Option<bool>,
}

/// Body of `PATCH /v1/lifecycle/webhooks/{id}`.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    url: Option<String>,
    operations: Option<Vec<String>>,
    signing_secret: Option<String>,
    enabled: Option<bool>,
}

/// `POST /v1/lifecycle/webhooks`.
pub async fn create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    super::extract::Body(body): super::extract::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateBody = parse(&body, "webhook")?;
    let new = NewWebhook {
        url: body.url.ok_or_else(|| ApiError::invalid("url is required"))?,
        operations: body.operations.ok_or_else(|| ApiError::invalid("operations is required"))?,
        signing_secret: body.signing_secret.ok_or_else(|| ApiError::invalid("signing_secret is required"))?,
        enabled: body.enabled.unwrap_or(true),
    };
    let hook = state.control.create_webhook(&tenant, new).await?;
    Ok((StatusCode::CREATED, Json(webhook_json(&hook))))
}

/// `GET /v1/lifecycle/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let hooks = state.control.store().list_webhooks(&tenant.id).await.map_err(store_error)?;
    Ok(Json(Value::Array(hooks.iter().map(webhook_json).collect())))
}

/// `GET /v1/lifecycle/webhooks/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hook = state.control.store().get_webhook(&tenant.id, &id).await.map_err(store_error)?;
    hook.map(|hook| Json(webhook_json(&hook))).ok_or_else(|| webhook_not_found(&id))
}

/// `PATCH /v1/lifecycle/webhooks/{id}`.
pub async fn update(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let body: UpdateBody = parse(&body, "webhook update")?;
    let changes = WebhookChanges {
        url: body.url,
        operations: body.operations,
        signing_secret: body.signing_secret,
        enabled: body.enabled,
    };
    let hook = state.control.update_webhook(&tenant, &id, changes).await?;
    hook.map(|hook| Json(webhook_json(&hook))).ok_or_else(|| webhook_not_found(&id))
}

/// `DELETE /v1/lifecycle/webhooks/{id}`: the webhook with its deliveries.
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.control.store().delete_webhook(&tenant.id, &id).await.map_err(store_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(webhook_not_found(&id))
    }
}

/// Query of the delivery list.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// `GET /v1/lifecycle/webhooks/{id}/deliveries`: newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = state.control.store();
    if store.get_webhook(&tenant.id, &id).await.map_err(store_error)?.is_none() {
        return Err(webhook_not_found(&id));
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let list = store.list_deliveries(&tenant.id, &id, query.offset.unwrap_or(0), limit).await.map_err(store_error)?;
    Ok(Json(Value::Array(list.iter().map(delivery_json).collect())))
}

/// `GET /v1/lifecycle/webhooks/{id}/deliveries/{did}`: the delivery, its event and its attempts.
pub async fn delivery(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.control.store();
    if store.get_webhook(&tenant.id, &id).await.map_err(store_error)?.is_none() {
        return Err(webhook_not_found(&id));
    }
    let Some(delivery) = store.get_delivery(&tenant.id, &id, &delivery_id).await.map_err(store_error)? else {
        return Err(ApiError::new(ErrorCode::NotFound, format!("delivery {delivery_id} of webhook {id} not found")));
    };
    let attempts = store.list_attempts(&delivery.id).await.map_err(store_error)?;
    Ok(Json(json!({
        "delivery": delivery_json(&delivery),
        "event": delivery.event,
        "attempts": attempts.iter().map(attempt_json).collect::<Vec<_>>(),
    })))
}
