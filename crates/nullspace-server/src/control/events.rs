//! Lifecycle events: every transition is appended to the store and broadcast to live subscribers
//! (lifecycle WebSockets, webhook delivery).

use nullspace_types::lifecycle::LifecycleEvent;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::clock;
use crate::store::Store;

/// An event as it is broadcast: the tenant it belongs to, its sequence number, the event.
#[derive(Debug, Clone)]
pub struct Published {
    /// Owning tenant.
    pub tenant_id: String,
    /// Store sequence number (orders events; cursor for replays).
    pub seq: i64,
    /// The event.
    pub event: LifecycleEvent,
}

/// An event to record; ids and timestamps are filled in by [`Events::emit`].
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// Operation (`create`, `destroy`, …).
    pub operation: &'static str,
    /// `requested`, `succeeded` or `failed`.
    pub status: &'static str,
    /// `user`, `system` or `reconcile`.
    pub actor_kind: &'static str,
    /// Sandbox concerned.
    pub sandbox_id: Option<String>,
    /// Snapshot concerned.
    pub snapshot_id: Option<String>,
    /// Source of a fork or resume.
    pub source_sandbox_id: Option<String>,
    /// Target of a fork or resume.
    pub target_sandbox_id: Option<String>,
    /// Why.
    pub reason: Option<&'static str>,
    /// Error message when failed.
    pub error_message: Option<String>,
    /// Extra facts.
    pub metadata: Map<String, Value>,
}

impl NewEvent {
    /// An event about `sandbox_id`.
    pub fn sandbox(operation: &'static str, status: &'static str, actor_kind: &'static str, sandbox_id: &str) -> Self {
        Self { operation, status, actor_kind, sandbox_id: Some(sandbox_id.to_owned()), ..Self::default() }
    }

    /// With `reason`.
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// With metadata entry `key` = `value`.
    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }

    /// With `snapshot_id`.
    pub fn snapshot(mut self, snapshot_id: &str) -> Self {
        self.snapshot_id = Some(snapshot_id.to_owned());
        self
    }
}

/// Records and publishes lifecycle events.
#[derive(Clone)]
pub struct Events {
    store: Store,
    live: broadcast::Sender<Published>,
}

impl Events {
    /// Events recorded in `store`.
    pub fn new(store: Store) -> Self {
        let (live, _) = broadcast::channel(4096);
        Self { store, live }
    }

    /// Appends and broadcasts `new` for `tenant_id`. Recording failures are logged, never fatal: an
    /// operation that succeeded stays successful.
    pub async fn emit(&self, tenant_id: &str, new: NewEvent) -> LifecycleEvent {
        let id: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(20)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        let event = LifecycleEvent {
            id: format!("evt_{id}"),
            occurred_at: clock::now_rfc3339(),
            audience: "customer".to_owned(),
            operation: new.operation.to_owned(),
            status: new.status.to_owned(),
            actor_kind: new.actor_kind.to_owned(),
            sandbox_id: new.sandbox_id,
            snapshot_id: new.snapshot_id,
            source_sandbox_id: new.source_sandbox_id,
            target_sandbox_id: new.target_sandbox_id,
            reason: new.reason.map(str::to_owned),
            error_code: new.error_message.as_ref().map(|_| "operation_failed".to_owned()),
            error_message: new.error_message,
            metadata: new.metadata,
        };
        match self.store.insert_event(tenant_id, &event).await {
            Ok(seq) => {
                let _ = self.live.send(Published { tenant_id: tenant_id.to_owned(), seq, event: event.clone() });
            }
            Err(error) => tracing::warn!(error = %crate::error_chain(&error), "recording a lifecycle event failed"),
        }
        event
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.live.subscribe()
    }
}
