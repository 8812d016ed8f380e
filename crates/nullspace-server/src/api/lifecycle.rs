//! Lifecycle event routes: paged lists (global, per sandbox, per snapshot) and the live WebSocket
//! streams with replay.

use super::extract::{Path, Query};
use axum::extract::ws::{Message, WebSocket};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use nullspace_types::lifecycle::{LifecycleEvent, LifecycleEventList};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::control::ControlError;
use crate::store::{EventFilter, Tenant};

/// Query of the event lists.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    offset: Option<u64>,
    limit: Option<u64>,
    order: Option<String>,
    operation: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    audience: Option<String>,
    sandbox_id: Option<String>,
    snapshot_id: Option<String>,
    source_sandbox_id: Option<String>,
    target_sandbox_id: Option<String>,
}

impl EventsQuery {
    /// The filters every event list shares: operation, status and the time range.
    fn common_filter(&self) -> EventFilter {
        EventFilter {
            operation: nonempty(self.operation.clone()),
            status: nonempty(self.status.clone()),
            from: nonempty(self.from.clone()),
            to: nonempty(self.to.clone()),
            ..EventFilter::default()
        }
    }
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

async fn list_events(
    state: &AppState,
    tenant: &Tenant,
    query: EventsQuery,
    filter: EventFilter,
) -> Result<Json<LifecycleEventList>, ApiError> {
    if let Some(audience) = query.audience.as_deref().filter(|a| !a.is_empty()) {
        if audience != "customer" {
            return Err(ApiError::invalid("audience must be `customer`"));
        }
    }
    let ascending = match query.order.as_deref() {
        None | Some("") | Some("desc") => false,
        Some("asc") => true,
        Some(other) => return Err(ApiError::invalid(format!("order must be asc or desc, got {other:?}"))),
    };
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let (events, has_more) = state
        .control
        .store()
        .list_events(&tenant.id, &filter, ascending, offset, limit)
        .await
        .map_err(crate::control::ControlError::from)?;
    Ok(Json(LifecycleEventList { events: events.into_iter().map(|(_, e)| e).collect(), offset, limit, has_more }))
}

/// `GET /v1/lifecycle/events`.
pub async fn global(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(query): Query<EventsQuery>,
) -> Result<Json<LifecycleEventList>, ApiError> {
    let filter = EventFilter {
        sandbox_id: nonempty(query.sandbox_id.clone()),
        snapshot_id: nonempty(query.snapshot_id.clone()),
        source_sandbox_id: nonempty(query.source_sandbox_id.clone()),
        target_sandbox_id: nonempty(query.target_sandbox_id.clone()),
        ..query.common_filter()
    };
    list_events(&state, &tenant, query, filter).await
}

/// `GET /v1/sandboxes/{id}/lifecycle`: events whose sandbox, source or target is `id`.
pub async fn sandbox(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<LifecycleEventList>, ApiError> {
    let filter = EventFilter { any_sandbox_id: Some(id.clone()), ..query.common_filter() };
    let events = list_events(&state, &tenant, query, filter).await?;
    // Another tenant's (or an unknown) sandbox is a 404, as on every route; the tenant's own destroyed
    // sandboxes keep their history.
    if events.0.events.is_empty() {
        let known = state.control.store().get_sandbox(&tenant.id, &id).await.map_err(ControlError::from)?;
        if known.is_none_or(|record| record.is_idle_pool_member()) {
            return Err(ControlError::SandboxNotFound { sandbox_id: id }.into());
        }
    }
    Ok(events)
}

/// `GET /v1/snapshots/{id}/lifecycle`.
pub async fn snapshot(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<LifecycleEventList>, ApiError> {
    let filter = EventFilter { snapshot_id: Some(id.clone()), ..query.common_filter() };
    let events = list_events(&state, &tenant, query, filter).await?;
    // As for sandboxes: no events and no snapshot of this tenant is a 404 (a deleted one keeps its events).
    if events.0.events.is_empty()
        && state.control.store().get_snapshot(&tenant.id, &id).await.map_err(ControlError::from)?.is_none()
    {
        return Err(ControlError::SnapshotNotFound { snapshot_id: id }.into());
    }
    Ok(events)
}

/// The `subscribe` message of the lifecycle stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Subscribe {
    #[serde(rename = "type")]
    kind: String,
    sandbox_id: Option<String>,
    snapshot_id: Option<String>,
    operation: Option<String>,
    status: Option<String>,
    live_only: Option<bool>,
    after_event_id: Option<String>,
    replay_limit: Option<u64>,
    metadata: Option<serde_json::Map<String, Value>>,
}

/// `GET /v1/lifecycle/ws` (upgrade).
pub async fn global_ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Response {
    super::websocket::bounded(upgrade, super::limits::WS_CONTROL_MESSAGE_LIMIT)
        .on_upgrade(move |socket| stream(socket, state, tenant, None))
}

/// `GET /v1/sandboxes/{id}/lifecycle/ws` (upgrade): the stream with an implicit sandbox filter.
pub async fn sandbox_ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Result<Response, ApiError> {
    // Answered before the upgrade: another tenant's (or an unknown) sandbox is 404, as on every route.
    let known = state.control.store().get_sandbox(&tenant.id, &id).await.map_err(ControlError::from)?;
    if known.is_none_or(|record| record.is_idle_pool_member()) {
        return Err(ControlError::SandboxNotFound { sandbox_id: id }.into());
    }
    Ok(super::websocket::bounded(upgrade, super::limits::WS_CONTROL_MESSAGE_LIMIT)
        .on_upgrade(move |socket| stream(socket, state, tenant, Some(id))))
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

async fn stream(mut socket: WebSocket, state: AppState, tenant: Tenant, implicit_sandbox: Option<String>) {
    let subscribe = loop {
        match socket.recv().await {
            Some(Ok(Message::Text(body))) => {
                match serde_json::from_str::<Subscribe>(body.as_str()) {
                    Ok(subscribe) if subscribe.kind == "subscribe" => break subscribe,
                    _ => {
                        let _ = socket.send(text(json!({"type": "error", "message": "invalid message: expected {\"type\":\"subscribe\"}"}))).await;
                        return;
                    }
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return,
        }
    };
    let sandbox_id = nonempty(subscribe.sandbox_id.clone()).or(implicit_sandbox);
    let filter = EventFilter {
        any_sandbox_id: sandbox_id.clone(),
        snapshot_id: nonempty(subscribe.snapshot_id.clone()),
        operation: nonempty(subscribe.operation.clone()),
        status: nonempty(subscribe.status.clone()),
        ..EventFilter::default()
    };
    let metadata = subscribe.metadata.clone().unwrap_or_default();
    let matches = |event: &LifecycleEvent| {
        filter.matches(event) && metadata.iter().all(|(key, value)| event.metadata.get(key) == Some(value))
    };
    // Subscribe before replaying so nothing falls between the two; duplicates are skipped by sequence.
    let mut live = state.control.events().subscribe();
    let replay = !subscribe.live_only.unwrap_or(false)
        && (subscribe.replay_limit.is_some() || subscribe.after_event_id.is_some());
    let mut subscription = serde_json::Map::new();
    subscription.insert("audience".into(), json!("customer"));
    for (key, value) in
        [("sandbox_id", &sandbox_id), ("snapshot_id", &filter.snapshot_id), ("operation", &filter.operation)]
    {
        if let Some(value) = value {
            subscription.insert(key.into(), json!(value));
        }
    }
    let mode = if replay { "cursor_replay" } else { "live_only" };
    if socket
        .send(text(json!({"type": "subscribed", "subscription": subscription, "reconnect_mode": mode})))
        .await
        .is_err()
    {
        return;
    }
    let mut last_seq = 0i64;
    if replay {
        let store = state.control.store();
        let after = match subscribe.after_event_id.as_deref() {
            Some(id) => store.event_seq(&tenant.id, id).await.ok().flatten(),
            None => None,
        };
        let replay_filter = EventFilter { after_seq: after, ..filter.clone() };
        let limit = subscribe.replay_limit.unwrap_or(100).clamp(1, 1000);
        // Newest `limit` matching events, sent oldest first.
        if let Ok((mut events, _)) = store.list_events(&tenant.id, &replay_filter, false, 0, limit).await {
            events.reverse();
            for (seq, event) in events.into_iter().filter(|(_, e)| matches(e)) {
                last_seq = last_seq.max(seq);
                if socket.send(text(json!({"type": "event", "event": event}))).await.is_err() {
                    return;
                }
            }
        }
    }
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(published) => {
                    if published.tenant_id != tenant.id || published.seq <= last_seq || !matches(&published.event) {
                        continue;
                    }
                    last_seq = published.seq;
                    if socket.send(text(json!({"type": "event", "event": published.event}))).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // The client reconnects with after_event_id and replays what it missed.
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // a later `subscribe` is ignored, pings are answered by axum
            },
        }
    }
}
