//! Lifecycle webhooks: validation of what tenants register, and the delivery worker.
//!
//! The worker listens to every published lifecycle event; for each enabled webhook of the event's tenant
//! that lists the event's operation it records a delivery (`queued`, due now). A dispatch loop polls the
//! store for due deliveries (every [`WorkerConfig::poll`], and at once when something was queued), claims
//! each (`in_progress`) and POSTs it, at most [`WorkerConfig::max_in_flight`] at a time. Because the due
//! time lives in the store, retries survive a restart; deliveries a stopped server left `in_progress` are
//! queued again at start. Emitting an event never waits for a delivery.
//!
//! # What a receiver gets
//! `POST <url>` with `content-type: application/json` and the body
//! `{"type":"lifecycle.event","event":<LifecycleEvent>,"webhook_id":"wh_…","delivery_id":"del_…"}`.
//! Headers: `x-nullspace-webhook-id`, `x-nullspace-delivery-id`, `x-nullspace-timestamp` (Unix seconds)
//! and `x-nullspace-signature: v1=<hex>`, where `<hex>` is HMAC-SHA256 keyed with the webhook's signing
//! secret over `"{timestamp}.{body}"` (the raw body bytes). Receivers recompute it, compare in constant
//! time, and reject stale timestamps (e.g. older than 5 minutes) to stop replays.
//!
//! # Retries
//! A 2xx answer within 10 s is `succeeded`. Anything else (other status, timeout, refused connection) is
//! retried after 1 s, 2 s, 4 s, 8 s and 16 s; the 6th failed attempt makes the delivery `dead_letter`.
//! Every attempt is recorded. Redirects are not followed. Delivery is at least once: a receiver should
//! deduplicate by `delivery_id` (or event id).
//!
//! # Destinations
//! Loopback, private, link-local and other non-public addresses, and this server's own, are refused at
//! registration and again at every delivery (after resolving, on the addresses actually connected to)
//! unless the operator allows them: see [`super::webhook_targets`]. A refused delivery is recorded with
//! error code `destination_refused` and retried like any failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, Notify, OwnedSemaphorePermit, Semaphore};

use super::events::Published;
use super::webhook_targets::{refusal_in, CheckedResolver, TargetPolicy};
use super::{Control, ControlError};
use crate::clock;
use crate::store::webhooks::{
    new_id, AttemptRecord, DeliveryRecord, WebhookChanges, WebhookRecord, DEAD_LETTER, QUEUED, SUCCEEDED,
};
use crate::store::{Store, Tenant};

/// Operations a webhook may subscribe to.
pub const OPERATIONS: [&str; 9] = [
    "create",
    "destroy",
    "timeout_updated",
    "timeout_expired",
    "hibernate",
    "snapshot_created",
    "resume_from_snapshot",
    "fork",
    "reconcile",
];

const MAX_URL_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 1024;

/// Tuning of the delivery worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often the store is polled for due deliveries.
    pub poll: Duration,
    /// Delay before the first retry; each later retry doubles it.
    pub first_retry: Duration,
    /// Attempts before a delivery becomes `dead_letter`.
    pub max_attempts: i64,
    /// Deliveries attempted at once.
    pub max_in_flight: usize,
    /// Time a receiver has to answer.
    pub timeout: Duration,
    /// Which destinations deliveries may reach.
    pub targets: Arc<TargetPolicy>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            first_retry: Duration::from_secs(1),
            max_attempts: 6,
            max_in_flight: 8,
            timeout: Duration::from_secs(10),
            targets: Arc::default(),
        }
    }
}

/// The `x-nullspace-signature` value of `body` sent at `timestamp` (Unix seconds):
/// `v1=` + hex HMAC-SHA256(`secret`, `"{timestamp}.{body}"`).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delay after failed attempt `attempt_number` (1-based): `first_retry` × 2^(n−1).
pub fn retry_delay(attempt_number: i64, first_retry: Duration) -> Duration {
    let exponent = u32::try_from(attempt_number.saturating_sub(1)).unwrap_or(0).min(16);
    first_retry.saturating_mul(1 << exponent)
}

/// Delivery status and next due time (Unix ms) after attempt `attempt_number` ended at `now_ms`.
pub fn next_step(
    attempt_number: i64,
    succeeded: bool,
    now_ms: i64,
    config: &WorkerConfig,
) -> (&'static str, Option<i64>) {
    if succeeded {
        (SUCCEEDED, None)
    } else if attempt_number >= config.max_attempts {
        (DEAD_LETTER, None)
    } else {
        let delay = i64::try_from(retry_delay(attempt_number, config.first_retry).as_millis()).unwrap_or(i64::MAX);
        (QUEUED, Some(now_ms.saturating_add(delay)))
    }
}

fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::InvalidRequest { message: message.into() }
}

/// Checks a webhook target: an absolute `http`/`https` URL whose host is allowed by `targets` (every
/// address it resolves to now).
pub async fn validate_target(url: &str, targets: &TargetPolicy) -> Result<(), ControlError> {
    validate_url(url)?;
    let parsed = url::Url::parse(url).map_err(|error| invalid(format!("url {url:?} is not a valid URL: {error}")))?;
    if let Some(host) = parsed.host() {
        targets.check_host(&host).await.map_err(|refused| invalid(refused.to_string()))?;
    }
    Ok(())
}

/// Checks a webhook target's form: an absolute `http`/`https` URL with a host.
pub fn validate_url(url: &str) -> Result<(), ControlError> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid(format!("url is longer than {MAX_URL_LEN} characters")));
    }
    let parsed = url::Url::parse(url).map_err(|error| invalid(format!("url {url:?} is not a valid URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!("url must use http or https, not {:?}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url must name a host, e.g. https://hooks.example.com/nullspace"));
    }
    Ok(())
}

/// Checks the operation list: non-empty, known names; returns it without duplicates.
pub fn validate_operations(operations: &[String]) -> Result<Vec<String>, ControlError> {
    if operations.is_empty() {
        return Err(invalid(format!("operations must not be empty; choose from {}", OPERATIONS.join(", "))));
    }
    let mut out: Vec<String> = Vec::new();
    for operation in operations {
        if !OPERATIONS.contains(&operation.as_str()) {
            return Err(invalid(format!("unknown operation {operation:?}; choose from {}", OPERATIONS.join(", "))));
        }
        if !out.contains(operation) {
            out.push(operation.clone());
        }
    }
    Ok(out)
}

/// Checks a signing secret: non-empty and of reasonable length.
pub fn validate_secret(secret: &str) -> Result<(), ControlError> {
    if secret.is_empty() {
        return Err(invalid("signing_secret must not be empty"));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(invalid(format!("signing_secret is longer than {MAX_SECRET_LEN} bytes")));
    }
    Ok(())
}

/// A webhook to register.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Target URL.
    pub url: String,
    /// Operations to deliver.
    pub operations: Vec<String>,
    /// HMAC key.
    pub signing_secret: String,
    /// Whether it starts enabled.
    pub enabled: bool,
}

impl Control {
    /// Registers a webhook for `tenant`.
    pub async fn create_webhook(&self, tenant: &Tenant, new: NewWebhook) -> Result<WebhookRecord, ControlError> {
        validate_target(&new.url, &self.webhook_targets).await?;
        let operations = validate_operations(&new.operations)?;
        validate_secret(&new.signing_secret)?;
        Ok(self.store().insert_webhook(&tenant.id, &new.url, &operations, &new.signing_secret, new.enabled).await?)
    }

    /// Changes webhook `id` of `tenant`; `None` when it does not exist.
    pub async fn update_webhook(
        &self,
        tenant: &Tenant,
        id: &str,
        mut changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, ControlError> {
        if let Some(url) = &changes.url {
            validate_target(url, &self.webhook_targets).await?;
        }
        if let Some(operations) = &changes.operations {
            changes.operations = Some(validate_operations(operations)?);
        }
        if let Some(secret) = &changes.signing_secret {
            validate_secret(secret)?;
        }
        Ok(self.store().update_webhook(&tenant.id, id, &changes).await?)
    }
}

/// Spawns the delivery worker for `control`'s events and store.
pub fn spawn_webhook_worker(control: Control) -> tokio::task::JoinHandle<()> {
    let config = WorkerConfig { targets: control.webhook_targets(), ..WorkerConfig::default() };
    spawn_worker(control.store().clone(), control.events().subscribe(), config)
}

/// Spawns the worker: records deliveries of events from `events` and dispatches due deliveries.
pub fn spawn_worker(
    store: Store,
    events: broadcast::Receiver<Published>,
    config: WorkerConfig,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // No proxy: the checked resolver must see the receiver's own name and pick its addresses.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver::new(config.targets.clone())))
            .user_agent(concat!("nullspace-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %crate::error_chain(&error), "webhook deliveries are off: no HTTP client");
                return;
            }
        };
        let wake = Arc::new(Notify::new());
        tokio::join!(enqueue_loop(store.clone(), events, wake.clone()), dispatch_loop(store, client, config, wake));
    })
}

async fn enqueue_loop(store: Store, mut events: broadcast::Receiver<Published>, wake: Arc<Notify>) {
    loop {
        let published = match events.recv().await {
            Ok(published) => published,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the webhook worker fell behind; some events are not delivered");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let hooks = match store.webhooks_for_operation(&published.tenant_id, &published.event.operation).await {
            Ok(hooks) => hooks,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), event = %published.event.id, "finding webhooks failed");
                continue;
            }
        };
        for hook in hooks {
            if let Err(error) = store.enqueue_delivery(&hook, &published.event, clock::now_ms()).await {
                tracing::warn!(error = %crate::error_chain(&error), webhook = %hook.id, "recording a delivery failed");
            }
            wake.notify_one();
        }
    }
}

async fn dispatch_loop(store: Store, client: reqwest::Client, config: WorkerConfig, wake: Arc<Notify>) {
    match store.requeue_interrupted_deliveries().await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "resuming webhook deliveries interrupted by the last stop"),
        Err(error) => tracing::warn!(error = %crate::error_chain(&error), "requeueing webhook deliveries failed"),
    }
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        tokio::select! {
            () = tokio::time::sleep(config.poll) => {}
            () = wake.notified() => {}
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        let due = match store.due_deliveries(clock::now_ms(), free as u64).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "reading due webhook deliveries failed");
                continue;
            }
        };
        for delivery in due {
            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
            match store.claim_delivery(&delivery.id).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), delivery = %delivery.id, "claiming failed");
                    continue;
                }
            }
            let job =
                Attempt { store: store.clone(), client: client.clone(), config: config.clone(), wake: wake.clone() };
            tokio::spawn(job.run(delivery, permit));
        }
    }
}

/// What one delivery attempt needs.
struct Attempt {
    store: Store,
    client: reqwest::Client,
    config: WorkerConfig,
    wake: Arc<Notify>,
}

/// Outcome of one POST.
struct Answer {
    response_status: Option<i64>,
    error_code: Option<&'static str>,
    error_message: Option<String>,
}

impl Attempt {
    async fn run(self, delivery: DeliveryRecord, _permit: OwnedSemaphorePermit) {
        let hook = match self.store.get_webhook(&delivery.tenant_id, &delivery.webhook_id).await {
            Ok(Some(hook)) if hook.enabled => hook,
            Ok(found) => {
                let reason = if found.is_some() { "webhook was disabled" } else { "webhook was deleted" };
                if let Err(error) = self.store.abandon_delivery(&delivery.id, reason).await {
                    tracing::warn!(error = %crate::error_chain(&error), delivery = %delivery.id, "abandoning failed");
                }
                return;
            }
            Err(error) => {
                // Left in progress; the next start queues it again.
                tracing::warn!(error = %crate::error_chain(&error), delivery = %delivery.id, "reading webhook failed");
                return;
            }
        };
        let attempt_number = delivery.attempt_count + 1;
        let attempted_at = clock::now_rfc3339();
        let started = Instant::now();
        let answer = self.post(&hook, &delivery).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, next) = next_step(attempt_number, answer.error_code.is_none(), clock::now_ms(), &self.config);
        let attempt = AttemptRecord {
            id: new_id("att"),
            delivery_id: delivery.id.clone(),
            attempt_number,
            attempted_at,
            duration_ms,
            response_status: answer.response_status,
            error_code: answer.error_code.map(str::to_owned),
            error_message: answer.error_message,
        };
        tracing::debug!(delivery = %delivery.id, webhook = %hook.id, attempt_number, status, "webhook attempt");
        if let Err(error) = self.store.record_attempt(&delivery, &attempt, status, next).await {
            tracing::warn!(error = %crate::error_chain(&error), delivery = %delivery.id, "recording attempt failed");
        }
        self.wake.notify_one();
    }

    async fn post(&self, hook: &WebhookRecord, delivery: &DeliveryRecord) -> Answer {
        let body = json!({
            "type": "lifecycle.event",
            "event": delivery.event,
            "webhook_id": hook.id,
            "delivery_id": delivery.id,
        })
        .to_string();
        // IP literals never reach the resolver: check them here.
        let literal = url::Url::parse(&hook.url).ok().and_then(|url| match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        });
        if let Some(Err(refused)) = literal.map(|ip| self.config.targets.check(ip)) {
            return Answer {
                response_status: None,
                error_code: Some("destination_refused"),
                error_message: Some(refused.to_string()),
            };
        }
        let timestamp = chrono::Utc::now().timestamp();
        let result = self
            .client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-nullspace-webhook-id", &hook.id)
            .header("x-nullspace-delivery-id", &delivery.id)
            .header("x-nullspace-timestamp", timestamp.to_string())
            .header("x-nullspace-signature", signature(&hook.signing_secret, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status();
                let response_status = Some(i64::from(status.as_u16()));
                if status.is_success() {
                    Answer { response_status, error_code: None, error_message: None }
                } else {
                    let message = format!("receiver answered {status}");
                    Answer { response_status, error_code: Some("http_status"), error_message: Some(message) }
                }
            }
            Err(error) => {
                let code = if refusal_in(&error).is_some() {
                    "destination_refused"
                } else if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connect_failed"
                } else {
                    "request_failed"
                };
                Answer {
                    response_status: None,
                    error_code: Some(code),
                    error_message: Some(crate::error_chain(&error)),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
