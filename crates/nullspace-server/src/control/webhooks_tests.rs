//! Tests of the webhook signature, the retry schedule, and real deliveries to loopback receivers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

use super::*;
use crate::control::events::{Events, NewEvent};
use crate::store::webhooks::DEAD_LETTER;

#[test]
fn signature_is_hmac_sha256_of_timestamp_dot_body() {
    // Reference value: python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{}",hashlib.sha256).hexdigest())'
    let manual = "v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf";
    assert_eq!(signature("s3cret", 1_700_000_000, b"{}"), manual);
    assert_ne!(signature("other", 1_700_000_000, b"{}"), manual);
    assert_ne!(signature("s3cret", 1_700_000_001, b"{}"), manual);
    assert_eq!(signature("s3cret", 1, b"x").len(), 3 + 64);
}

#[test]
fn retries_back_off_exponentially_then_dead_letter() {
    let config = WorkerConfig::default();
    let delays: Vec<u64> = (1..=5).map(|n| retry_delay(n, config.first_retry).as_secs()).collect();
    assert_eq!(delays, vec![1, 2, 4, 8, 16]);
    assert_eq!(next_step(1, false, 1_000, &config), (QUEUED, Some(2_000)));
    assert_eq!(next_step(5, false, 1_000, &config), (QUEUED, Some(17_000)));
    assert_eq!(next_step(6, false, 1_000, &config), (DEAD_LETTER, None));
    assert_eq!(next_step(3, true, 1_000, &config), (SUCCEEDED, None));
}

#[tokio::test]
async fn registration_refuses_non_public_targets_unless_allowed() {
    let strict = TargetPolicy::default();
    for url in ["http://127.0.0.1:8080/hook", "http://localhost/x", "http://[::1]/x", "http://169.254.169.254/latest"] {
        let error = validate_target(url, &strict).await.unwrap_err();
        assert!(error.to_string().contains("refused"), "{url}: {error}");
    }
    assert!(validate_target("http://10.0.0.5/x", &strict).await.is_err());
    assert!(validate_target("http://127.0.0.1:8080/hook", &TargetPolicy::allow_all()).await.is_ok());
}

#[test]
fn urls_and_operations_are_validated() {
    assert!(validate_url("http://127.0.0.1:8080/hook").is_ok());
    assert!(validate_url("https://hooks.example.com/x?y=1").is_ok());
    for bad in ["", "not a url", "ftp://example.com/", "file:///etc/passwd", "http://", "/relative"] {
        assert!(validate_url(bad).is_err(), "{bad:?} accepted");
    }
    assert!(validate_operations(&[]).is_err());
    assert!(validate_operations(&["create".into(), "explode".into()]).is_err());
    assert_eq!(validate_operations(&["create".into(), "create".into()]).unwrap(), vec!["create".to_owned()]);
    assert!(validate_secret("").is_err());
}

/// What a receiver saw.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// Starts a loopback receiver answering `status`; returns its URL and what it received.
async fn receiver(status: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push((headers, body));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), seen)
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    events: Events,
    tenant: String,
}

async fn harness(config: WorkerConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
    let tenant = store.ensure_tenant("alpha").await.unwrap().id;
    let events = Events::new(store.clone());
    spawn_worker(store.clone(), events.subscribe(), config);
    Harness { _dir: dir, store, events, tenant }
}

fn fast() -> WorkerConfig {
    WorkerConfig {
        poll: Duration::from_millis(20),
        first_retry: Duration::from_millis(20),
        max_attempts: 3,
        max_in_flight: 4,
        timeout: Duration::from_secs(5),
        targets: Arc::new(TargetPolicy::allow_all()),
    }
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn delivers_signed_events_to_a_loopback_receiver() {
    let h = harness(fast()).await;
    let (url, seen) = receiver(StatusCode::NO_CONTENT).await;
    let hook = h.store.insert_webhook(&h.tenant, &url, &["create".to_owned()], "s3cret", true).await.unwrap();
    h.events.emit(&h.tenant, NewEvent::sandbox("destroy", "succeeded", "user", "sb_1")).await; // not subscribed
    let event = h.events.emit(&h.tenant, NewEvent::sandbox("create", "succeeded", "user", "sb_1")).await;

    let delivery = wait_for("a succeeded delivery", async || {
        let list = h.store.list_deliveries(&h.tenant, &hook.id, 0, 50).await.unwrap();
        list.into_iter().find(|d| d.delivery_status == SUCCEEDED)
    })
    .await;
    let received = seen.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "only the subscribed operation is delivered");
    let (headers, body) = &received[0];
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let timestamp: i64 = header("x-nullspace-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert_eq!(header("x-nullspace-signature"), signature("s3cret", timestamp, body.as_bytes()));
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-nullspace-webhook-id"), hook.id);
    assert_eq!(header("x-nullspace-delivery-id"), delivery.id);
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["type"], "lifecycle.event");
    assert_eq!(body["event"], serde_json::to_value(&event).unwrap());
    assert_eq!((body["webhook_id"].as_str(), body["delivery_id"].as_str()), (Some(&*hook.id), Some(&*delivery.id)));

    let attempts = h.store.list_attempts(&delivery.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].attempt_number, attempts[0].response_status), (1, Some(204)));
    let hook_now = h.store.get_webhook(&h.tenant, &hook.id).await.unwrap().unwrap();
    assert_eq!(hook_now.last_delivery_status.as_deref(), Some(SUCCEEDED));
    assert!(hook_now.last_delivery_at.is_some());
}

#[tokio::test]
async fn failing_receivers_are_retried_then_dead_lettered() {
    let h = harness(fast()).await;
    let (url, seen) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let hook = h.store.insert_webhook(&h.tenant, &url, &["create".to_owned()], "k", true).await.unwrap();
    h.events.emit(&h.tenant, NewEvent::sandbox("create", "succeeded", "user", "sb_1")).await;

    let delivery = wait_for("a dead-lettered delivery", async || {
        let list = h.store.list_deliveries(&h.tenant, &hook.id, 0, 50).await.unwrap();
        list.into_iter().find(|d| d.delivery_status == DEAD_LETTER)
    })
    .await;
    assert_eq!(delivery.attempt_count, 3);
    assert_eq!(delivery.last_response_status, Some(500));
    let attempts = h.store.list_attempts(&delivery.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.attempt_number).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(attempts.iter().all(|a| a.response_status == Some(500) && a.error_code.as_deref() == Some("http_status")));
    assert_eq!(seen.lock().unwrap().len(), 3);
    let hook_now = h.store.get_webhook(&h.tenant, &hook.id).await.unwrap().unwrap();
    assert_eq!(hook_now.last_delivery_status.as_deref(), Some(DEAD_LETTER));
    assert!(hook_now.last_error.unwrap_or_default().contains("500"));
}

#[tokio::test]
async fn unreachable_receivers_record_connection_errors() {
    let h = harness(WorkerConfig { max_attempts: 1, ..fast() }).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap(); // dropped: refuses
    let url = format!("http://{closed}/hook");
    let hook = h.store.insert_webhook(&h.tenant, &url, &["create".to_owned()], "k", true).await.unwrap();
    h.events.emit(&h.tenant, NewEvent::sandbox("create", "succeeded", "user", "sb_1")).await;
    let delivery = wait_for("a dead-lettered delivery", async || {
        let list = h.store.list_deliveries(&h.tenant, &hook.id, 0, 50).await.unwrap();
        list.into_iter().find(|d| d.delivery_status == DEAD_LETTER)
    })
    .await;
    let attempts = h.store.list_attempts(&delivery.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].response_status, attempts[0].error_code.as_deref()), (None, Some("connect_failed")));
}

#[tokio::test]
async fn disabled_webhooks_and_other_tenants_get_nothing() {
    let h = harness(fast()).await;
    let (off_url, off_seen) = receiver(StatusCode::OK).await;
    let (on_url, on_seen) = receiver(StatusCode::OK).await;
    let other = h.store.ensure_tenant("beta").await.unwrap().id;
    let ops = ["create".to_owned()];
    let off = h.store.insert_webhook(&h.tenant, &off_url, &ops, "k", false).await.unwrap();
    let foreign = h.store.insert_webhook(&other, &off_url, &ops, "k", true).await.unwrap();
    let on = h.store.insert_webhook(&h.tenant, &on_url, &ops, "k", true).await.unwrap();
    h.events.emit(&h.tenant, NewEvent::sandbox("create", "succeeded", "user", "sb_1")).await;

    wait_for("the enabled webhook's delivery", async || {
        let list = h.store.list_deliveries(&h.tenant, &on.id, 0, 50).await.unwrap();
        list.into_iter().find(|d| d.delivery_status == SUCCEEDED)
    })
    .await;
    assert_eq!(on_seen.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(off_seen.lock().unwrap().is_empty());
    assert!(h.store.list_deliveries(&h.tenant, &off.id, 0, 50).await.unwrap().is_empty());
    assert!(h.store.list_deliveries(&other, &foreign.id, 0, 50).await.unwrap().is_empty());
}

/// A webhook recorded while it was allowed (or whose name resolves elsewhere later) is still refused at
/// delivery: by IP literal, and by a name that resolves to loopback, with nothing reaching the receiver.
#[tokio::test]
async fn deliveries_to_refused_addresses_are_not_sent() {
    let strict = WorkerConfig { max_attempts: 1, targets: Arc::new(TargetPolicy::default()), ..fast() };
    let h = harness(strict).await;
    let (url, seen) = receiver(StatusCode::OK).await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let ops = ["create".to_owned()];
    let literal = h.store.insert_webhook(&h.tenant, &url, &ops, "k", true).await.unwrap();
    let named = h.store.insert_webhook(&h.tenant, &by_name, &ops, "k", true).await.unwrap();
    h.events.emit(&h.tenant, NewEvent::sandbox("create", "succeeded", "user", "sb_1")).await;
    for hook in [&literal, &named] {
        let delivery = wait_for("a dead-lettered delivery", async || {
            let list = h.store.list_deliveries(&h.tenant, &hook.id, 0, 50).await.unwrap();
            list.into_iter().find(|d| d.delivery_status == DEAD_LETTER)
        })
        .await;
        let attempts = h.store.list_attempts(&delivery.id).await.unwrap();
        assert_eq!(attempts[0].error_code.as_deref(), Some("destination_refused"), "{}", hook.url);
        assert!(attempts[0].error_message.as_deref().unwrap_or_default().contains("loopback"));
    }
    assert!(seen.lock().unwrap().is_empty(), "a refused destination received a delivery");
}
