//! Snapshot rows: a stack of frozen filesystem layers plus what a sandbox resumed from it needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreError, StoreResult};

/// The configuration a sandbox resumed or created from a snapshot gets back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotConfig {
    /// CPU cores.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Disk limit in MiB of the source (`None`: unlimited, also for snapshots taken before limits existed).
    #[serde(default)]
    pub disk_mb: Option<u32>,
    /// Create-time environment.
    pub envs: BTreeMap<String, String>,
    /// Default working directory.
    pub cwd: String,
    /// Lifetime in ms.
    pub timeout_ms: u64,
    /// `destroy` or `hibernate`.
    pub timeout_action: String,
    /// Egress policy (snapshots taken before policies were recorded restore the default).
    #[serde(default)]
    pub network: nullspace_node::network::NetworkPolicy,
    /// The snapshot has a memory image (`<layer>.mem`, runsc): sandboxes from it continue its processes.
    #[serde(default)]
    pub memory: bool,
    /// Volumes the source mounted; sandboxes from the snapshot mount them again.
    #[serde(default)]
    pub volumes: Vec<nullspace_node::VolumeMount>,
    /// The source's auto-resume (resume and fork keep it; a create from the snapshot sets its own).
    #[serde(default)]
    pub auto_resume: bool,
}

/// A snapshot as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRecord {
    /// `snap_…` id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Sandbox it was taken from.
    pub sandbox_id: String,
    /// `hibernate`, `snapshot` or `fork`.
    pub kind: String,
    /// Template reference of the source sandbox.
    pub template: String,
    /// Layer directories, top first (this snapshot's own layer, then the source's lower layers).
    pub layers: Vec<String>,
    /// Configuration to restore.
    pub config: SnapshotConfig,
    /// Metadata of the source sandbox.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Size of this snapshot's own layer.
    pub size_bytes: u64,
    /// RFC 3339 creation time.
    pub created_at: String,
}

const COLUMNS: &str = "id, tenant_id, sandbox_id, kind, template, layers, config, metadata, size_bytes, created_at";

fn decode(row: &SqliteRow) -> StoreResult<SnapshotRecord> {
    let id: String = column(row, "id", "?")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let text = |name: &str| column::<String>(row, name, &id);
    Ok(SnapshotRecord {
        tenant_id: text("tenant_id")?,
        sandbox_id: column(row, "sandbox_id", &id)?,
        kind: column(row, "kind", &id)?,
        template: column(row, "template", &id)?,
        layers: serde_json::from_str(&text("layers")?).map_err(|e| corrupt(e.to_string()))?,
        config: serde_json::from_str(&text("config")?).map_err(|e| corrupt(e.to_string()))?,
        metadata: serde_json::from_str(&text("metadata")?).map_err(|e| corrupt(e.to_string()))?,
        size_bytes: u64::try_from(column::<i64>(row, "size_bytes", &id)?).map_err(|e| corrupt(e.to_string()))?,
        created_at: text("created_at")?,
        id,
    })
}

impl Store {
    /// Records a complete snapshot.
    pub async fn insert_snapshot(&self, record: &SnapshotRecord) -> StoreResult<()> {
        sqlx::query(&format!("INSERT INTO snapshots ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(&record.id)
            .bind(&record.tenant_id)
            .bind(&record.sandbox_id)
            .bind(&record.kind)
            .bind(&record.template)
            .bind(serde_json::to_string(&record.layers).unwrap_or_default())
            .bind(serde_json::to_string(&record.config).unwrap_or_default())
            .bind(serde_json::Value::Object(record.metadata.clone()).to_string())
            .bind(i64::try_from(record.size_bytes).unwrap_or(i64::MAX))
            .bind(&record.created_at)
            .execute(&self.pool)
            .await
            .map_err(query("insert snapshot"))?;
        Ok(())
    }

    /// Snapshot `id` of `tenant_id`, unless deleted.
    pub async fn get_snapshot(&self, tenant_id: &str, id: &str) -> StoreResult<Option<SnapshotRecord>> {
        let row =
            sqlx::query(&format!("SELECT {COLUMNS} FROM snapshots WHERE tenant_id = $1 AND id = $2 AND deleted = 0"))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(query("select snapshot"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Whether a snapshot row with `id` exists (deleted or not, any tenant).
    pub async fn snapshot_exists(&self, id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT id FROM snapshots WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select snapshot id"))?;
        Ok(row.is_some())
    }

    /// User-visible snapshots of `tenant_id` (not fork layers), oldest first, optionally of one sandbox.
    pub async fn list_snapshots(&self, tenant_id: &str, sandbox_id: Option<&str>) -> StoreResult<Vec<SnapshotRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM snapshots WHERE tenant_id = $1 AND deleted = 0 AND kind <> 'fork' \
             AND ($2 IS NULL OR sandbox_id = $2) ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .bind(sandbox_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query("list snapshots"))?;
        rows.iter().map(decode).collect()
    }

    /// Marks snapshot `id` deleted; returns whether it was live.
    pub async fn delete_snapshot(&self, tenant_id: &str, id: &str) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE snapshots SET deleted = 1 WHERE tenant_id = $1 AND id = $2 AND deleted = 0")
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(query("delete snapshot"))?;
        Ok(result.rows_affected() == 1)
    }

    /// Every layer directory still referenced by a live snapshot or a sandbox that is not destroyed.
    pub async fn referenced_layers(&self) -> StoreResult<std::collections::BTreeSet<String>> {
        let mut layers = std::collections::BTreeSet::new();
        let rows = sqlx::query("SELECT id, layers FROM snapshots WHERE deleted = 0 UNION ALL SELECT id, layers FROM sandboxes WHERE state <> 'destroyed'")
            .fetch_all(&self.pool)
            .await
            .map_err(query("select referenced layers"))?;
        // A row that cannot be read fails the whole answer: treating it as "no layers" would let the
        // collector delete layers a snapshot or sandbox still stacks.
        for row in rows {
            let id: String = column(&row, "id", "?")?;
            let text: String = column(&row, "layers", &id)?;
            let listed = serde_json::from_str::<Vec<String>>(&text)
                .map_err(|error| StoreError::Corrupt { id, reason: format!("layers: {error}") })?;
            layers.extend(listed);
        }
        Ok(layers)
    }
}
