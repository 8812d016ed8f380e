//! The monitor WebSocket (`/v1/monitor/ws`): after `monitor_subscribe`, a snapshot of the tenant's
//! sandboxes, then every `interval_ms` one `monitor_metrics` (and, if asked, `monitor_processes`) per
//! running sandbox, and a `monitor_update` whenever a lifecycle event touches one of them.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use nullspace_types::exec_api::ProcessInfo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Authenticated;
use super::sandboxes::sandbox_info;
use super::AppState;
use crate::clock;
use crate::control::SandboxState;
use crate::store::{ListFilter, Tenant};

const DEFAULT_INTERVAL_MS: u64 = 2000;
const MIN_INTERVAL_MS: u64 = 250;
const MAX_INTERVAL_MS: u64 = 60_000;
/// Longest wait for a guest's process list; a slow guest skips a beat instead of stalling the stream.
const PROCESSES_TIMEOUT: Duration = Duration::from_secs(2);

/// A message from the client.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    interval_ms: Option<i64>,
    include_processes: Option<bool>,
}

/// `GET /v1/monitor/ws` (upgrade).
pub async fn monitor_ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Response {
    super::websocket::bounded(upgrade, super::limits::WS_CONTROL_MESSAGE_LIMIT)
        .on_upgrade(move |socket| stream(socket, state, tenant))
}

/// The `interval_ms` asked for, clamped to what the server allows.
fn interval(asked: Option<i64>) -> Duration {
    let ms = asked.and_then(|ms| u64::try_from(ms).ok()).unwrap_or(DEFAULT_INTERVAL_MS);
    Duration::from_millis(ms.clamp(MIN_INTERVAL_MS, MAX_INTERVAL_MS))
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

fn error(id: &str, message: &str) -> Message {
    text(json!({"type": "monitor_error", "id": id, "message": message}))
}

/// One subscription's connection.
struct Session {
    socket: WebSocket,
    state: AppState,
    tenant: Tenant,
    id: String,
}

async fn stream(mut socket: WebSocket, state: AppState, tenant: Tenant) {
    let subscribe = loop {
        match socket.recv().await {
            Some(Ok(Message::Text(body))) => match serde_json::from_str::<ClientMessage>(body.as_str()) {
                Ok(message) if message.kind == "monitor_subscribe" => break message,
                Ok(message) if message.kind == "monitor_unsubscribe" => return,
                Ok(message) => {
                    let id = message.id.unwrap_or_default();
                    let reason = format!("unexpected message type {:?}; send monitor_subscribe first", message.kind);
                    if socket.send(error(&id, &reason)).await.is_err() {
                        return;
                    }
                }
                Err(parse) => {
                    let reason = format!("invalid message: {parse}; send {{\"type\":\"monitor_subscribe\",\"id\":…}}");
                    if socket.send(error("", &reason)).await.is_err() {
                        return;
                    }
                }
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
            _ => return,
        }
    };
    let id = subscribe.id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| "monitor".to_owned());
    let mut session = Session { socket, state, tenant, id };
    // Subscribe to events before the snapshot so no change falls between the two.
    let mut live = session.state.control.events().subscribe();
    if session.snapshot().await.is_err() {
        return;
    }
    let include_processes = subscribe.include_processes.unwrap_or(false);
    let mut ticker = tokio::time::interval(interval(subscribe.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let sent = tokio::select! {
            _ = ticker.tick() => session.metrics(include_processes).await,
            received = live.recv() => match received {
                Ok(published) if published.tenant_id == session.tenant.id => match published.event.sandbox_id {
                    Some(sandbox_id) => session.update(&sandbox_id).await,
                    None => Ok(()),
                },
                Ok(_) => Ok(()),
                Err(RecvError::Lagged(_)) => session.snapshot().await, // resynchronize
                Err(RecvError::Closed) => return,
            },
            incoming = session.socket.recv() => match incoming {
                Some(Ok(Message::Text(body))) => {
                    let message = serde_json::from_str::<ClientMessage>(body.as_str()).unwrap_or_default();
                    if message.kind == "monitor_unsubscribe" {
                        let _ = session.socket.send(Message::Close(None)).await;
                        return;
                    }
                    Ok(())
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => Ok(()),
            },
        };
        if sent.is_err() {
            return;
        }
    }
}

impl Session {
    async fn send(&mut self, value: Value) -> Result<(), axum::Error> {
        self.socket.send(text(value)).await
    }

    async fn snapshot(&mut self) -> Result<(), axum::Error> {
        let states = vec![
            SandboxState::Creating,
            SandboxState::Running,
            SandboxState::Hibernating,
            SandboxState::Paused,
            SandboxState::Resuming,
        ];
        let filter = ListFilter { states, template: None, metadata: serde_json::Map::new() };
        match self.state.control.list(&self.tenant, &filter).await {
            Ok(records) => {
                let sandboxes: Vec<_> = records.iter().map(sandbox_info).collect();
                let message = json!({"type": "monitor_snapshot", "id": self.id, "sandboxes": sandboxes});
                self.send(message).await
            }
            Err(failure) => {
                tracing::warn!(error = %crate::error_chain(&failure), "monitor snapshot failed");
                let id = self.id.clone();
                self.socket.send(error(&id, "listing sandboxes failed; see the server log")).await
            }
        }
    }

    async fn update(&mut self, sandbox_id: &str) -> Result<(), axum::Error> {
        let sandbox = self.state.control.get(&self.tenant, sandbox_id).await.ok().map(|record| sandbox_info(&record));
        let removed = sandbox.is_none();
        let message = json!({
            "type": "monitor_update",
            "id": self.id,
            "sandbox_id": sandbox_id,
            "sandbox": sandbox,
            "removed": removed,
        });
        self.send(message).await
    }

    async fn metrics(&mut self, include_processes: bool) -> Result<(), axum::Error> {
        let filter =
            ListFilter { states: vec![SandboxState::Running], template: None, metadata: serde_json::Map::new() };
        let Ok(records) = self.state.control.list(&self.tenant, &filter).await else { return Ok(()) };
        for record in records {
            // A sandbox destroyed since the listing simply has no sample.
            let Ok((record, usage, cpu_percent)) = self.state.control.usage(&self.tenant, &record.id).await else {
                continue;
            };
            let message = json!({
                "type": "monitor_metrics",
                "id": self.id,
                "sandbox_id": record.id,
                "metrics": {
                    "cpu_percent": cpu_percent,
                    "timestamp": clock::now_rfc3339(),
                    "cpu_count": record.vcpus,
                    "mem_used_bytes": usage.mem_used_bytes,
                    "mem_total_bytes": usage.mem_total_bytes,
                    "disk_used_bytes": usage.disk_used_bytes,
                    "disk_total_bytes": usage.disk_total_bytes,
                },
            });
            self.send(message).await?;
            if include_processes {
                if let Some(processes) = processes(&self.state, &self.tenant, &record.id).await {
                    let message = json!({
                        "type": "monitor_processes",
                        "id": self.id,
                        "sandbox_id": record.id,
                        "processes": processes,
                    });
                    self.send(message).await?;
                }
            }
        }
        Ok(())
    }
}

/// The guest's process list of `sandbox_id`, or `None` when the guest does not answer in time.
async fn processes(state: &AppState, tenant: &Tenant, sandbox_id: &str) -> Option<Vec<ProcessInfo>> {
    let (_record, guest) = state.control.guest_if_running(tenant, sandbox_id).await.ok()?;
    let fetch = async move {
        let request = hyper::Request::get("/processes").body(Empty::<Bytes>::new()).ok()?;
        let response = guest.send(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice::<Vec<ProcessInfo>>(&body).ok()
    };
    tokio::time::timeout(PROCESSES_TIMEOUT, fetch).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_default_and_clamp() {
        assert_eq!(interval(None), Duration::from_millis(2000));
        assert_eq!(interval(Some(10)), Duration::from_millis(250));
        assert_eq!(interval(Some(-5)), Duration::from_millis(2000));
        assert_eq!(interval(Some(1000)), Duration::from_millis(1000));
        assert_eq!(interval(Some(10_000_000)), Duration::from_millis(60_000));
    }
}
