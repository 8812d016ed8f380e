//! Lifecycle event rows: append and filtered, paged reads.

use nullspace_types::lifecycle::LifecycleEvent;
use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};

/// Filters of an event listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Matches `sandbox_id`, `source_sandbox_id` or `target_sandbox_id`.
    pub any_sandbox_id: Option<String>,
    /// Exact `sandbox_id`.
    pub sandbox_id: Option<String>,
    /// Exact `snapshot_id`.
    pub snapshot_id: Option<String>,
    /// Exact `source_sandbox_id`.
    pub source_sandbox_id: Option<String>,
    /// Exact `target_sandbox_id`.
    pub target_sandbox_id: Option<String>,
    /// Exact operation.
    pub operation: Option<String>,
    /// Exact status.
    pub status: Option<String>,
    /// Inclusive lower bound of `occurred_at` (RFC 3339).
    pub from: Option<String>,
    /// Inclusive upper bound of `occurred_at` (RFC 3339).
    pub to: Option<String>,
    /// Only events after this event id (cursor replay).
    pub after_seq: Option<i64>,
}

impl EventFilter {
    /// Whether `event` passes the filter (used for live streams; mirrors the SQL).
    pub fn matches(&self, event: &LifecycleEvent) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref() == Some(w));
        let any = self.any_sandbox_id.as_ref().is_none_or(|id| {
            [&event.sandbox_id, &event.source_sandbox_id, &event.target_sandbox_id]
                .iter()
                .any(|v| v.as_ref() == Some(id))
        });
        any && eq(&self.sandbox_id, &event.sandbox_id)
            && eq(&self.snapshot_id, &event.snapshot_id)
            && eq(&self.source_sandbox_id, &event.source_sandbox_id)
            && eq(&self.target_sandbox_id, &event.target_sandbox_id)
            && self.operation.as_ref().is_none_or(|op| *op == event.operation)
            && self.status.as_ref().is_none_or(|status| *status == event.status)
            && self.from.as_ref().is_none_or(|from| event.occurred_at >= *from)
            && self.to.as_ref().is_none_or(|to| event.occurred_at <= *to)
    }
}

const COLUMNS: &str =
    "seq, id, occurred_at, operation, status, actor_kind, sandbox_id, snapshot_id, source_sandbox_id, \
                       target_sandbox_id, reason, error_code, error_message, metadata";

fn decode(row: &SqliteRow) -> StoreResult<(i64, LifecycleEvent)> {
    let id: String = column(row, "id", "?")?;
    let metadata: String = column(row, "metadata", &id)?;
    let metadata = serde_json::from_str(&metadata)
        .map_err(|error| StoreError::Corrupt { id: id.clone(), reason: format!("metadata: {error}") })?;
    let event = LifecycleEvent {
        occurred_at: column(row, "occurred_at", &id)?,
        audience: "customer".to_owned(),
        operation: column(row, "operation", &id)?,
        status: column(row, "status", &id)?,
        actor_kind: column(row, "actor_kind", &id)?,
        sandbox_id: column(row, "sandbox_id", &id)?,
        snapshot_id: column(row, "snapshot_id", &id)?,
        source_sandbox_id: column(row, "source_sandbox_id", &id)?,
        target_sandbox_id: column(row, "target_sandbox_id", &id)?,
        reason: column(row, "reason", &id)?,
        error_code: column(row, "error_code", &id)?,
        error_message: column(row, "error_message", &id)?,
        metadata,
        id: id.clone(),
    };
    Ok((column(row, "seq", &id)?, event))
}

impl Store {
    /// Appends `event` for `tenant_id`; returns its sequence number.
    pub async fn insert_event(&self, tenant_id: &str, event: &LifecycleEvent) -> StoreResult<i64> {
        let result = sqlx::query(
            "INSERT INTO events (id, tenant_id, occurred_at, operation, status, actor_kind, sandbox_id, snapshot_id, \
             source_sandbox_id, target_sandbox_id, reason, error_code, error_message, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&event.id)
        .bind(tenant_id)
        .bind(&event.occurred_at)
        .bind(&event.operation)
        .bind(&event.status)
        .bind(&event.actor_kind)
        .bind(&event.sandbox_id)
        .bind(&event.snapshot_id)
        .bind(&event.source_sandbox_id)
        .bind(&event.target_sandbox_id)
        .bind(&event.reason)
        .bind(&event.error_code)
        .bind(&event.error_message)
        .bind(serde_json::Value::Object(event.metadata.clone()).to_string())
        .execute(&self.pool)
        .await
        .map_err(query("insert event"))?;
        Ok(result.last_insert_rowid())
    }

    /// Events of `tenant_id` matching `filter`, oldest first when `ascending`, skipping `offset` and
    /// returning at most `limit` (plus whether more exist).
    pub async fn list_events(
        &self,
        tenant_id: &str,
        filter: &EventFilter,
        ascending: bool,
        offset: u64,
        limit: u64,
    ) -> StoreResult<(Vec<(i64, LifecycleEvent)>, bool)> {
        let order = if ascending { "ASC" } else { "DESC" };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE tenant_id = $1 \
             AND ($2 IS NULL OR sandbox_id = $2 OR source_sandbox_id = $2 OR target_sandbox_id = $2) \
             AND ($3 IS NULL OR sandbox_id = $3) AND ($4 IS NULL OR snapshot_id = $4) \
             AND ($5 IS NULL OR source_sandbox_id = $5) AND ($6 IS NULL OR target_sandbox_id = $6) \
             AND ($7 IS NULL OR operation = $7) AND ($8 IS NULL OR status = $8) \
             AND ($9 IS NULL OR occurred_at >= $9) AND ($10 IS NULL OR occurred_at <= $10) \
             AND ($11 IS NULL OR seq > $11) \
             ORDER BY seq {order} LIMIT $12 OFFSET $13"
        ))
        .bind(tenant_id)
        .bind(&filter.any_sandbox_id)
        .bind(&filter.sandbox_id)
        .bind(&filter.snapshot_id)
        .bind(&filter.source_sandbox_id)
        .bind(&filter.target_sandbox_id)
        .bind(&filter.operation)
        .bind(&filter.status)
        .bind(&filter.from)
        .bind(&filter.to)
        .bind(filter.after_seq)
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query("list events"))?;
        let mut events = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        let more = events.len() as u64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((events, more))
    }

    /// Sequence number of event `id` of `tenant_id`.
    pub async fn event_seq(&self, tenant_id: &str, id: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT seq FROM events WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select event seq"))?;
        row.as_ref().map(|row| column(row, "seq", id)).transpose()
    }
}
