//! The store: the durable record of tenants (their keys and limits) and sandboxes. Queries are plain SQL with `$n`
//! placeholders so the same statements run on SQLite (embedded) and PostgreSQL.

pub mod desktop_streams;
mod error;
mod events;
mod id_ranges;
mod keys;
pub mod preview_grants;
mod sandboxes;
mod snapshots;
pub mod template_blobs;
pub mod template_builds;
pub mod templates;
pub mod tenants;
mod volumes;
pub mod warm_pools;
pub mod webhooks;

pub use error::StoreError;
pub use events::EventFilter;
pub use keys::{hash_key, Tenant};
pub use sandboxes::{ListFilter, SandboxRecord};
pub use snapshots::{SnapshotConfig, SnapshotRecord};
pub use tenants::{LimitsUpdate, TenantLimits, TenantUsage};
pub use volumes::VolumeRecord;

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// Handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Serializes this process's id range allocations (see `allocate_id_range`): concurrent
    /// creates would otherwise race for the same lowest free block and lose to each other.
    id_ranges: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path` and applies migrations.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Self { pool, id_ranges: Default::default() })
    }
}
