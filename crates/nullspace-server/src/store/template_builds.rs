//! Template build rows (status, timestamps, failure, cancellation; the request without secret values)
//! and their log entries, numbered from 0 per build.

use std::collections::BTreeMap;

use nullspace_types::template_wire::BuildStatus;
use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};

/// A template build as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    /// `tb_…`.
    pub id: String,
    /// `tmpl_…` it produces.
    pub template_id: String,
    /// Owner.
    pub tenant_id: String,
    /// Namespace slug of the owner.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Tags it assigns.
    pub tags: Vec<String>,
    /// Status.
    pub status: BuildStatus,
    /// `declarative`, `dockerfile`, `oci_import`, `template_base`.
    pub source_type: String,
    /// Digest of the source.
    pub source_digest: Option<String>,
    /// Digest of the build context.
    pub context_digest: Option<String>,
    /// Digest of the Dockerfile.
    pub dockerfile_digest: Option<String>,
    /// The request without secret values.
    pub request: serde_json::Value,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Queued.
    pub queued_at: Option<String>,
    /// Started.
    pub started_at: Option<String>,
    /// Ended.
    pub finished_at: Option<String>,
    /// Failure message.
    pub error: Option<String>,
    /// Failure detail (`TemplateFailureDetail`).
    pub error_detail: Option<serde_json::Value>,
    /// Phase that failed.
    pub failure_phase: Option<String>,
    /// When a cancel was asked.
    pub cancel_requested_at: Option<String>,
    /// Who asked.
    pub cancel_requested_by: Option<String>,
    /// Why.
    pub cancellation_reason: Option<String>,
    /// Build this one retries.
    pub retry_of_build_id: Option<String>,
    /// Cache counters.
    pub cache_summary: BTreeMap<String, u64>,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutcome {
    /// Terminal status.
    pub status: BuildStatus,
    /// Failure message.
    pub error: Option<String>,
    /// Failure detail.
    pub error_detail: Option<serde_json::Value>,
    /// Phase that failed.
    pub failure_phase: Option<String>,
}

/// Which builds to list.
#[derive(Debug, Clone, Default)]
pub struct BuildFilter {
    /// Builds of this template.
    pub template_id: Option<String>,
    /// Builds of this `(namespace, name)`.
    pub name: Option<(String, String)>,
    /// Only this status.
    pub status: Option<BuildStatus>,
    /// Only this source type.
    pub source_type: Option<String>,
    /// Only builds created before this `(created_at, id)` (the cursor).
    pub before: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

const COLUMNS: &str = "id, template_id, tenant_id, namespace, name, tags, status, source_type, source_digest, \
    context_digest, dockerfile_digest, request, created_at, updated_at, queued_at, started_at, finished_at, error, \
    error_detail, failure_phase, cancel_requested_at, cancel_requested_by, cancellation_reason, retry_of_build_id, \
    cache_summary";

fn decode(row: &SqliteRow) -> StoreResult<BuildRecord> {
    let id: String = column(row, "id", "?")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let json = |name: &str| -> StoreResult<serde_json::Value> {
        let text: String = column(row, name, &id)?;
        serde_json::from_str(&text).map_err(|e| corrupt(format!("{name}: {e}")))
    };
    let status: String = column(row, "status", &id)?;
    let detail: Option<String> = column(row, "error_detail", &id)?;
    Ok(BuildRecord {
        template_id: column(row, "template_id", &id)?,
        tenant_id: column(row, "tenant_id", &id)?,
        namespace: column(row, "namespace", &id)?,
        name: column(row, "name", &id)?,
        tags: serde_json::from_value(json("tags")?).map_err(|e| corrupt(format!("tags: {e}")))?,
        status: BuildStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?,
        source_type: column(row, "source_type", &id)?,
        source_digest: column(row, "source_digest", &id)?,
        context_digest: column(row, "context_digest", &id)?,
        dockerfile_digest: column(row, "dockerfile_digest", &id)?,
        request: json("request")?,
        created_at: column(row, "created_at", &id)?,
        updated_at: column(row, "updated_at", &id)?,
        queued_at: column(row, "queued_at", &id)?,
        started_at: column(row, "started_at", &id)?,
        finished_at: column(row, "finished_at", &id)?,
        error: column(row, "error", &id)?,
        error_detail: detail
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| corrupt(format!("error_detail: {e}")))?,
        failure_phase: column(row, "failure_phase", &id)?,
        cancel_requested_at: column(row, "cancel_requested_at", &id)?,
        cancel_requested_by: column(row, "cancel_requested_by", &id)?,
        cancellation_reason: column(row, "cancellation_reason", &id)?,
        retry_of_build_id: column(row, "retry_of_build_id", &id)?,
        cache_summary: serde_json::from_value(json("cache_summary")?)
            .map_err(|e| corrupt(format!("cache_summary: {e}")))?,
        id,
    })
}

impl Store {
    /// Records a new build.
    pub async fn insert_build(&self, build: &BuildRecord) -> StoreResult<()> {
        let placeholders = (1..=25).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        sqlx::query(&format!("INSERT INTO template_builds ({COLUMNS}) VALUES ({placeholders})"))
            .bind(&build.id)
            .bind(&build.template_id)
            .bind(&build.tenant_id)
            .bind(&build.namespace)
            .bind(&build.name)
            .bind(serde_json::to_string(&build.tags).unwrap_or_else(|_| "[]".into()))
            .bind(build.status.as_str())
            .bind(&build.source_type)
            .bind(&build.source_digest)
            .bind(&build.context_digest)
            .bind(&build.dockerfile_digest)
            .bind(build.request.to_string())
            .bind(&build.created_at)
            .bind(&build.updated_at)
            .bind(&build.queued_at)
            .bind(&build.started_at)
            .bind(&build.finished_at)
            .bind(&build.error)
            .bind(build.error_detail.as_ref().map(|detail| detail.to_string()))
            .bind(&build.failure_phase)
            .bind(&build.cancel_requested_at)
            .bind(&build.cancel_requested_by)
            .bind(&build.cancellation_reason)
            .bind(&build.retry_of_build_id)
            .bind(serde_json::to_string(&build.cache_summary).unwrap_or_else(|_| "{}".into()))
            .execute(&self.pool)
            .await
            .map_err(query("insert build"))?;
        Ok(())
    }

    /// Build `id` (of any tenant: callers check ownership).
    pub async fn get_build(&self, id: &str) -> StoreResult<Option<BuildRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM template_builds WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select build"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Moves build `id` from waiting to building; whether it did.
    pub async fn start_build(&self, id: &str, now: &str) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE template_builds SET status = 'building', started_at = $1, updated_at = $1 \
             WHERE id = $2 AND status = 'waiting'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("start build"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Ends build `id` (when still waiting or building) with `outcome`; whether it did.
    pub async fn finish_build(&self, id: &str, outcome: &BuildOutcome, now: &str) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE template_builds SET status = $1, error = $2, error_detail = $3, failure_phase = $4, \
             finished_at = $5, updated_at = $5 WHERE id = $6 AND status IN ('waiting', 'building')",
        )
        .bind(outcome.status.as_str())
        .bind(&outcome.error)
        .bind(outcome.error_detail.as_ref().map(|detail| detail.to_string()))
        .bind(&outcome.failure_phase)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("finish build"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Records that a cancel of build `id` was asked (the first request wins).
    pub async fn request_build_cancel(&self, id: &str, at: &str, by: &str, reason: Option<&str>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE template_builds SET cancel_requested_at = $1, cancel_requested_by = $2, cancellation_reason = $3, \
             updated_at = $1 WHERE id = $4 AND cancel_requested_at IS NULL",
        )
        .bind(at)
        .bind(by)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query("request build cancel"))?;
        Ok(())
    }

    /// Stores the cache counters of build `id`.
    pub async fn set_build_cache_summary(&self, id: &str, summary: &BTreeMap<String, u64>) -> StoreResult<()> {
        sqlx::query("UPDATE template_builds SET cache_summary = $1 WHERE id = $2")
            .bind(serde_json::to_string(summary).unwrap_or_else(|_| "{}".into()))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("set cache summary"))?;
        Ok(())
    }

    /// Builds in one of `statuses` (of every tenant), oldest first.
    pub async fn builds_in_status(&self, statuses: &[BuildStatus]) -> StoreResult<Vec<BuildRecord>> {
        let mut builds = Vec::new();
        for status in statuses {
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM template_builds WHERE status = $1"))
                .bind(status.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(query("select builds by status"))?;
            for row in &rows {
                builds.push(decode(row)?);
            }
        }
        builds.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(builds)
    }

    /// Builds of `tenant_id` matching `filter`, newest first.
    pub async fn list_builds(&self, tenant_id: &str, filter: &BuildFilter) -> StoreResult<Vec<BuildRecord>> {
        let (template_id, namespace, name) = match (&filter.template_id, &filter.name) {
            (Some(id), _) => (Some(id.clone()), None, None),
            (None, Some((namespace, name))) => (None, Some(namespace.clone()), Some(name.clone())),
            (None, None) => (None, None, None),
        };
        let (before_at, before_id) = filter.before.clone().unzip();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM template_builds WHERE tenant_id = $1 \
             AND ($2 IS NULL OR template_id = $2) AND ($3 IS NULL OR namespace = $3) AND ($4 IS NULL OR name = $4) \
             AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR source_type = $6) \
             AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
             ORDER BY created_at DESC, id DESC LIMIT $9"
        ))
        .bind(tenant_id)
        .bind(template_id)
        .bind(namespace)
        .bind(name)
        .bind(filter.status.map(BuildStatus::as_str))
        .bind(&filter.source_type)
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query("list builds"))?;
        rows.iter().map(decode).collect()
    }

    /// Appends log entry `offset` of build `build_id`.
    pub async fn insert_build_log(&self, build_id: &str, offset: u64, entry: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO template_build_logs (build_id, log_offset, entry) VALUES ($1, $2, $3)")
            .bind(build_id)
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .bind(entry)
            .execute(&self.pool)
            .await
            .map_err(query("insert build log"))?;
        Ok(())
    }

    /// Log entries of build `build_id` from `offset` on, in order, as stored JSON.
    pub async fn build_logs(&self, build_id: &str, offset: u64) -> StoreResult<Vec<(u64, String)>> {
        let rows = sqlx::query(
            "SELECT log_offset, entry FROM template_build_logs WHERE build_id = $1 AND log_offset >= $2 ORDER BY log_offset",
        )
        .bind(build_id)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(query("select build logs"))?;
        rows.iter()
            .map(|row| {
                let offset: i64 = column(row, "log_offset", build_id)?;
                let offset = u64::try_from(offset)
                    .map_err(|e| StoreError::Corrupt { id: build_id.to_owned(), reason: format!("offset: {e}") })?;
                Ok((offset, column(row, "entry", build_id)?))
            })
            .collect()
    }

    /// The offset the next log entry of build `build_id` gets.
    pub async fn next_build_log_offset(&self, build_id: &str) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM template_build_logs WHERE build_id = $1")
            .bind(build_id)
            .fetch_one(&self.pool)
            .await
            .map_err(query("count build logs"))?;
        let count: i64 = column(&row, "n", build_id)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
