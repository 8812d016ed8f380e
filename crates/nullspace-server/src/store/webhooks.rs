//! Webhook rows: the tenant's webhooks, one delivery per (webhook, event) with its retry bookkeeping
//! (`next_attempt_ms` is what the delivery worker polls, so retries survive a restart), and every attempt.

use nullspace_types::lifecycle::LifecycleEvent;
use rand::distributions::Alphanumeric;
use rand::Rng;
use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreResult};
use crate::clock;

/// Delivery status of a delivery waiting for its next attempt.
pub const QUEUED: &str = "queued";
/// Delivery status while an attempt runs.
pub const IN_PROGRESS: &str = "in_progress";
/// Delivery status after a 2xx answer.
pub const SUCCEEDED: &str = "succeeded";
/// Delivery status after the last attempt failed.
pub const DEAD_LETTER: &str = "dead_letter";

/// A new id with `prefix` (`wh`, `del`, `att`) and 20 random lowercase alphanumerics.
pub fn new_id(prefix: &str) -> String {
    let random: String =
        rand::thread_rng().sample_iter(&Alphanumeric).take(20).map(|c| char::from(c).to_ascii_lowercase()).collect();
    format!("{prefix}_{random}")
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    /// Webhook id (`wh_…`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Target URL.
    pub url: String,
    /// Operations delivered.
    pub operations: Vec<String>,
    /// HMAC key of the signature (never shown to clients).
    pub signing_secret: String,
    /// Whether new events are delivered.
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Time of the last attempt (RFC 3339).
    pub last_delivery_at: Option<String>,
    /// Delivery status after the last attempt.
    pub last_delivery_status: Option<String>,
    /// Error of the last attempt, if it failed.
    pub last_error: Option<String>,
}

/// Changes of a webhook; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    /// New URL.
    pub url: Option<String>,
    /// New operations.
    pub operations: Option<Vec<String>>,
    /// New signing secret.
    pub signing_secret: Option<String>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// A stored delivery of one event to one webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// Delivery id (`del_…`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Webhook delivered to.
    pub webhook_id: String,
    /// Event delivered.
    pub event_id: String,
    /// The event as it was when recorded.
    pub event: LifecycleEvent,
    /// `queued`, `in_progress`, `succeeded` or `dead_letter`.
    pub delivery_status: String,
    /// Attempts made so far.
    pub attempt_count: i64,
    /// RFC 3339.
    pub created_at: String,
    /// When the next attempt is due (Unix ms), while queued.
    pub next_attempt_ms: Option<i64>,
    /// Time of the last attempt (RFC 3339).
    pub last_attempt_at: Option<String>,
    /// HTTP status of the last attempt, if one was received.
    pub last_response_status: Option<i64>,
    /// Error of the last attempt, if it failed.
    pub last_error: Option<String>,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Attempt id (`att_…`).
    pub id: String,
    /// Delivery attempted.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt_number: i64,
    /// RFC 3339.
    pub attempted_at: String,
    /// How long the request took.
    pub duration_ms: i64,
    /// HTTP status received, if any.
    pub response_status: Option<i64>,
    /// `http_status`, `timeout`, `connect_failed` or `request_failed` when it failed.
    pub error_code: Option<String>,
    /// What went wrong.
    pub error_message: Option<String>,
}

const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, operations, signing_secret, enabled, created_at, updated_at, \
                               last_delivery_at, last_delivery_status, last_error";
const DELIVERY_COLUMNS: &str = "id, tenant_id, webhook_id, event_id, event, delivery_status, attempt_count, \
                                created_at, next_attempt_ms, last_attempt_at, last_response_status, last_error";

fn decode_webhook(row: &SqliteRow) -> StoreResult<WebhookRecord> {
    let id: String = column(row, "id", "?")?;
    let operations: String = column(row, "operations", &id)?;
    let operations = serde_json::from_str(&operations)
        .map_err(|error| super::StoreError::Corrupt { id: id.clone(), reason: format!("operations: {error}") })?;
    let enabled: i64 = column(row, "enabled", &id)?;
    Ok(WebhookRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        url: column(row, "url", &id)?,
        operations,
        signing_secret: column(row, "signing_secret", &id)?,
        enabled: enabled != 0,
        created_at: column(row, "created_at", &id)?,
        updated_at: column(row, "updated_at", &id)?,
        last_delivery_at: column(row, "last_delivery_at", &id)?,
        last_delivery_status: column(row, "last_delivery_status", &id)?,
        last_error: column(row, "last_error", &id)?,
        id,
    })
}

fn decode_delivery(row: &SqliteRow) -> StoreResult<DeliveryRecord> {
    let id: String = column(row, "id", "?")?;
    let event: String = column(row, "event", &id)?;
    let event = serde_json::from_str(&event)
        .map_err(|error| super::StoreError::Corrupt { id: id.clone(), reason: format!("delivery event: {error}") })?;
    Ok(DeliveryRecord {
        tenant_id: column(row, "tenant_id", &id)?,
        webhook_id: column(row, "webhook_id", &id)?,
        event_id: column(row, "event_id", &id)?,
        event,
        delivery_status: column(row, "delivery_status", &id)?,
        attempt_count: column(row, "attempt_count", &id)?,
        created_at: column(row, "created_at", &id)?,
        next_attempt_ms: column(row, "next_attempt_ms", &id)?,
        last_attempt_at: column(row, "last_attempt_at", &id)?,
        last_response_status: column(row, "last_response_status", &id)?,
        last_error: column(row, "last_error", &id)?,
        id,
    })
}

fn decode_attempt(row: &SqliteRow) -> StoreResult<AttemptRecord> {
    let id: String = column(row, "id", "?")?;
    Ok(AttemptRecord {
        delivery_id: column(row, "delivery_id", &id)?,
        attempt_number: column(row, "attempt_number", &id)?,
        attempted_at: column(row, "attempted_at", &id)?,
        duration_ms: column(row, "duration_ms", &id)?,
        response_status: column(row, "response_status", &id)?,
        error_code: column(row, "error_code", &id)?,
        error_message: column(row, "error_message", &id)?,
        id,
    })
}

fn operations_json(operations: &[String]) -> String {
    serde_json::to_string(operations).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Creates a webhook for `tenant_id`.
    pub async fn insert_webhook(
        &self,
        tenant_id: &str,
        url: &str,
        operations: &[String],
        signing_secret: &str,
        enabled: bool,
    ) -> StoreResult<WebhookRecord> {
        let now = clock::now_rfc3339();
        let record = WebhookRecord {
            id: new_id("wh"),
            tenant_id: tenant_id.to_owned(),
            url: url.to_owned(),
            operations: operations.to_vec(),
            signing_secret: signing_secret.to_owned(),
            enabled,
            created_at: now.clone(),
            updated_at: now,
            last_delivery_at: None,
            last_delivery_status: None,
            last_error: None,
        };
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, url, operations, signing_secret, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.id)
        .bind(tenant_id)
        .bind(url)
        .bind(operations_json(operations))
        .bind(signing_secret)
        .bind(i64::from(enabled))
        .bind(&record.created_at)
        .bind(&record.updated_at)
        .execute(&self.pool)
        .await
        .map_err(query("insert webhook"))?;
        Ok(record)
    }

    /// Webhooks of `tenant_id`, oldest first.
    pub async fn list_webhooks(&self, tenant_id: &str) -> StoreResult<Vec<WebhookRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list webhooks"))?;
        rows.iter().map(decode_webhook).collect()
    }

    /// Webhook `id` of `tenant_id`.
    pub async fn get_webhook(&self, tenant_id: &str, id: &str) -> StoreResult<Option<WebhookRecord>> {
        let row = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select webhook"))?;
        row.as_ref().map(decode_webhook).transpose()
    }

    /// Applies `changes` to webhook `id` of `tenant_id`; `None` when it does not exist.
    pub async fn update_webhook(
        &self,
        tenant_id: &str,
        id: &str,
        changes: &WebhookChanges,
    ) -> StoreResult<Option<WebhookRecord>> {
        let result = sqlx::query(
            "UPDATE webhooks SET url = COALESCE($3, url), operations = COALESCE($4, operations), \
             signing_secret = COALESCE($5, signing_secret), enabled = COALESCE($6, enabled), updated_at = $7 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(&changes.url)
        .bind(changes.operations.as_deref().map(operations_json))
        .bind(&changes.signing_secret)
        .bind(changes.enabled.map(i64::from))
        .bind(clock::now_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(query("update webhook"))?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_webhook(tenant_id, id).await
    }

    /// Deletes webhook `id` of `tenant_id` with its deliveries and attempts; whether it existed.
    pub async fn delete_webhook(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(query("begin delete webhook"))?;
        let result = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query("delete webhook"))?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2)",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(query("delete webhook attempts"))?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query("delete webhook deliveries"))?;
        tx.commit().await.map_err(query("commit delete webhook"))?;
        Ok(result.rows_affected() > 0)
    }

    /// Enabled webhooks of `tenant_id` that subscribe to `operation`.
    pub async fn webhooks_for_operation(&self, tenant_id: &str, operation: &str) -> StoreResult<Vec<WebhookRecord>> {
        let rows = sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND enabled = 1"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(query("select webhooks for event"))?;
        let hooks = rows.iter().map(decode_webhook).collect::<StoreResult<Vec<_>>>()?;
        Ok(hooks.into_iter().filter(|hook| hook.operations.iter().any(|op| op == operation)).collect())
    }

    /// Records a queued delivery of `event` to `webhook`, due at `due_ms`; `None` when this event was
    /// already recorded for this webhook.
    pub async fn enqueue_delivery(
        &self,
        webhook: &WebhookRecord,
        event: &LifecycleEvent,
        due_ms: i64,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let record = DeliveryRecord {
            id: new_id("del"),
            tenant_id: webhook.tenant_id.clone(),
            webhook_id: webhook.id.clone(),
            event_id: event.id.clone(),
            event: event.clone(),
            delivery_status: QUEUED.to_owned(),
            attempt_count: 0,
            created_at: clock::now_rfc3339(),
            next_attempt_ms: Some(due_ms),
            last_attempt_at: None,
            last_response_status: None,
            last_error: None,
        };
        let result = sqlx::query(
            "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event, operation, status, \
             delivery_status, attempt_count, created_at, created_ms, next_attempt_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11) ON CONFLICT (webhook_id, event_id) DO NOTHING",
        )
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.webhook_id)
        .bind(&record.event_id)
        .bind(serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned()))
        .bind(&event.operation)
        .bind(&event.status)
        .bind(QUEUED)
        .bind(&record.created_at)
        .bind(clock::now_ms())
        .bind(due_ms)
        .execute(&self.pool)
        .await
        .map_err(query("insert webhook delivery"))?;
        Ok((result.rows_affected() > 0).then_some(record))
    }

    /// Deliveries of webhook `webhook_id` of `tenant_id`, newest first.
    pub async fn list_deliveries(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        offset: u64,
        limit: u64,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 \
             ORDER BY created_ms DESC, id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(tenant_id)
        .bind(webhook_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query("list webhook deliveries"))?;
        rows.iter().map(decode_delivery).collect()
    }

    /// Delivery `id` of webhook `webhook_id` of `tenant_id`.
    pub async fn get_delivery(
        &self,
        tenant_id: &str,
        webhook_id: &str,
        id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3"
        ))
        .bind(tenant_id)
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("select webhook delivery"))?;
        row.as_ref().map(decode_delivery).transpose()
    }

    /// Attempts of delivery `delivery_id`, first first.
    pub async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT id, delivery_id, attempt_number, attempted_at, duration_ms, response_status, error_code, \
             error_message FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt_number",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list webhook attempts"))?;
        rows.iter().map(decode_attempt).collect()
    }

    /// Queued deliveries (all tenants) whose next attempt is due at `now_ms`, most overdue first.
    pub async fn due_deliveries(&self, now_ms: i64, limit: u64) -> StoreResult<Vec<DeliveryRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE delivery_status = $1 AND next_attempt_ms <= $2 \
             ORDER BY next_attempt_ms LIMIT $3"
        ))
        .bind(QUEUED)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select due webhook deliveries"))?;
        rows.iter().map(decode_delivery).collect()
    }

    /// Moves delivery `id` from `queued` to `in_progress`; false when someone else took it.
    pub async fn claim_delivery(&self, id: &str) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE webhook_deliveries SET delivery_status = $2 WHERE id = $1 AND delivery_status = $3")
                .bind(id)
                .bind(IN_PROGRESS)
                .bind(QUEUED)
                .execute(&self.pool)
                .await
                .map_err(query("claim webhook delivery"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Puts deliveries left `in_progress` by a stopped server back in the queue, due now.
    pub async fn requeue_interrupted_deliveries(&self) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE webhook_deliveries SET delivery_status = $1, next_attempt_ms = $2 WHERE delivery_status = $3",
        )
        .bind(QUEUED)
        .bind(clock::now_ms())
        .bind(IN_PROGRESS)
        .execute(&self.pool)
        .await
        .map_err(query("requeue webhook deliveries"))?;
        Ok(result.rows_affected())
    }

    /// Records `attempt` of `delivery`, moves the delivery to `delivery_status` (due again at
    /// `next_attempt_ms` when queued) and updates the webhook's last-delivery fields, in one transaction.
    pub async fn record_attempt(
        &self,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
        delivery_status: &str,
        next_attempt_ms: Option<i64>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(query("begin record attempt"))?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET delivery_status = $2, attempt_count = $3, next_attempt_ms = $4, \
             last_attempt_at = $5, last_response_status = $6, last_error = $7 WHERE id = $1",
        )
        .bind(&delivery.id)
        .bind(delivery_status)
        .bind(attempt.attempt_number)
        .bind(next_attempt_ms)
        .bind(&attempt.attempted_at)
        .bind(attempt.response_status)
        .bind(&attempt.error_message)
        .execute(&mut *tx)
        .await
        .map_err(query("update webhook delivery"))?;
        if updated.rows_affected() == 0 {
            return Ok(()); // deleted with its webhook meanwhile: nothing to record
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt_number, attempted_at, duration_ms, \
             response_status, error_code, error_message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&attempt.id)
        .bind(&attempt.delivery_id)
        .bind(attempt.attempt_number)
        .bind(&attempt.attempted_at)
        .bind(attempt.duration_ms)
        .bind(attempt.response_status)
        .bind(&attempt.error_code)
        .bind(&attempt.error_message)
        .execute(&mut *tx)
        .await
        .map_err(query("insert webhook attempt"))?;
        sqlx::query(
            "UPDATE webhooks SET last_delivery_at = $3, last_delivery_status = $4, last_error = $5 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&delivery.tenant_id)
        .bind(&delivery.webhook_id)
        .bind(&attempt.attempted_at)
        .bind(delivery_status)
        .bind(&attempt.error_message)
        .execute(&mut *tx)
        .await
        .map_err(query("update webhook last delivery"))?;
        tx.commit().await.map_err(query("commit record attempt"))
    }

    /// Ends delivery `id` as `dead_letter` without an attempt (its webhook was disabled meanwhile).
    pub async fn abandon_delivery(&self, id: &str, reason: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET delivery_status = $2, next_attempt_ms = NULL, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(DEAD_LETTER)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(query("abandon webhook delivery"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, operation: &str) -> LifecycleEvent {
        LifecycleEvent {
            id: id.to_owned(),
            occurred_at: clock::now_rfc3339(),
            audience: "customer".to_owned(),
            operation: operation.to_owned(),
            status: "succeeded".to_owned(),
            actor_kind: "user".to_owned(),
            sandbox_id: Some("sb_1".to_owned()),
            snapshot_id: None,
            source_sandbox_id: None,
            target_sandbox_id: None,
            reason: None,
            error_code: None,
            error_message: None,
            metadata: serde_json::Map::new(),
        }
    }

    async fn store() -> (tempfile::TempDir, Store, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let alpha = store.ensure_tenant("alpha").await.unwrap().id;
        let beta = store.ensure_tenant("beta").await.unwrap().id;
        (dir, store, alpha, beta)
    }

    #[tokio::test]
    async fn webhook_crud_is_scoped_by_tenant() {
        let (_dir, store, alpha, beta) = store().await;
        let ops = vec!["create".to_owned(), "destroy".to_owned()];
        let hook = store.insert_webhook(&alpha, "http://127.0.0.1:9/h", &ops, "s3cret", true).await.unwrap();
        assert!(hook.id.starts_with("wh_"));
        assert_eq!(store.list_webhooks(&alpha).await.unwrap(), vec![hook.clone()]);
        assert!(store.list_webhooks(&beta).await.unwrap().is_empty());
        assert_eq!(store.get_webhook(&beta, &hook.id).await.unwrap(), None);

        let changes =
            WebhookChanges { enabled: Some(false), operations: Some(vec!["fork".into()]), ..Default::default() };
        assert_eq!(store.update_webhook(&beta, &hook.id, &changes).await.unwrap(), None);
        let updated = store.update_webhook(&alpha, &hook.id, &changes).await.unwrap().unwrap();
        assert!(!updated.enabled);
        assert_eq!(updated.operations, vec!["fork".to_owned()]);
        assert_eq!(updated.url, hook.url);
        assert_eq!(updated.signing_secret, "s3cret");

        assert!(!store.delete_webhook(&beta, &hook.id).await.unwrap());
        assert!(store.delete_webhook(&alpha, &hook.id).await.unwrap());
        assert_eq!(store.get_webhook(&alpha, &hook.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn only_enabled_webhooks_of_the_operation_match() {
        let (_dir, store, alpha, beta) = store().await;
        let create = vec!["create".to_owned()];
        let on = store.insert_webhook(&alpha, "http://a/", &create, "k", true).await.unwrap();
        store.insert_webhook(&alpha, "http://b/", &create, "k", false).await.unwrap();
        store.insert_webhook(&alpha, "http://c/", &["destroy".to_owned()], "k", true).await.unwrap();
        store.insert_webhook(&beta, "http://d/", &create, "k", true).await.unwrap();
        let found = store.webhooks_for_operation(&alpha, "create").await.unwrap();
        assert_eq!(found.iter().map(|h| h.id.clone()).collect::<Vec<_>>(), vec![on.id]);
    }

    #[tokio::test]
    async fn delivery_bookkeeping_tracks_attempts_and_due_times() {
        let (_dir, store, alpha, beta) = store().await;
        let hook = store.insert_webhook(&alpha, "http://a/", &["create".to_owned()], "k", true).await.unwrap();
        let evt = event("evt_1", "create");
        let delivery = store.enqueue_delivery(&hook, &evt, 1_000).await.unwrap().unwrap();
        assert!(delivery.id.starts_with("del_"));
        assert_eq!(store.enqueue_delivery(&hook, &evt, 1_000).await.unwrap(), None, "one delivery per event");

        assert!(store.due_deliveries(999, 10).await.unwrap().is_empty());
        assert_eq!(store.due_deliveries(1_000, 10).await.unwrap(), vec![delivery.clone()]);
        assert!(store.claim_delivery(&delivery.id).await.unwrap());
        assert!(!store.claim_delivery(&delivery.id).await.unwrap(), "a claimed delivery is not claimed twice");
        assert!(store.due_deliveries(i64::MAX, 10).await.unwrap().is_empty());

        let failed = AttemptRecord {
            id: new_id("att"),
            delivery_id: delivery.id.clone(),
            attempt_number: 1,
            attempted_at: clock::now_rfc3339(),
            duration_ms: 3,
            response_status: Some(500),
            error_code: Some("http_status".into()),
            error_message: Some("receiver answered 500".into()),
        };
        store.record_attempt(&delivery, &failed, QUEUED, Some(2_000)).await.unwrap();
        let stored = store.get_delivery(&alpha, &hook.id, &delivery.id).await.unwrap().unwrap();
        assert_eq!((stored.delivery_status.as_str(), stored.attempt_count), (QUEUED, 1));
        assert_eq!((stored.next_attempt_ms, stored.last_response_status), (Some(2_000), Some(500)));
        let hook_now = store.get_webhook(&alpha, &hook.id).await.unwrap().unwrap();
        assert_eq!(hook_now.last_delivery_status.as_deref(), Some(QUEUED));
        assert_eq!(hook_now.last_error.as_deref(), Some("receiver answered 500"));

        // A restart while in progress puts the delivery back in the queue.
        assert!(store.claim_delivery(&delivery.id).await.unwrap());
        assert_eq!(store.requeue_interrupted_deliveries().await.unwrap(), 1);
        assert!(store.claim_delivery(&delivery.id).await.unwrap());

        let ok = AttemptRecord {
            id: new_id("att"),
            attempt_number: 2,
            response_status: Some(204),
            error_code: None,
            error_message: None,
            ..failed.clone()
        };
        store.record_attempt(&delivery, &ok, SUCCEEDED, None).await.unwrap();
        let attempts = store.list_attempts(&delivery.id).await.unwrap();
        assert_eq!(attempts, vec![failed, ok]);
        let listed = store.list_deliveries(&alpha, &hook.id, 0, 50).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].delivery_status.as_str(), listed[0].attempt_count), (SUCCEEDED, 2));
        assert_eq!(listed[0].event, evt);
        assert!(store.list_deliveries(&beta, &hook.id, 0, 50).await.unwrap().is_empty());
        assert_eq!(store.get_delivery(&beta, &hook.id, &delivery.id).await.unwrap(), None);
        assert_eq!(store.get_webhook(&alpha, &hook.id).await.unwrap().unwrap().last_error, None);

        assert!(store.delete_webhook(&alpha, &hook.id).await.unwrap());
        assert!(store.list_attempts(&delivery.id).await.unwrap().is_empty());
    }
}
