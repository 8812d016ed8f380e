//! Desktop viewer key rows: every key minted for a sandbox's managed viewer, with its state (`active`,
//! `replaced` by a newer start, `ended` by a stop). Only the SHA-256 of a key and the nonce it is derived
//! from are stored (see `control::desktop_streams`). A sandbox keeps its newest [`KEPT_PER_SANDBOX`] keys.

use sqlx::sqlite::SqliteRow;

use super::error::{column, query};
use super::{Store, StoreResult};
use crate::clock;

/// Keys kept per sandbox (older replaced or ended ones are deleted and then read as unknown).
pub const KEPT_PER_SANDBOX: i64 = 32;

/// The state of a viewer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The current key: the viewer works.
    Active,
    /// A newer start rotated it out.
    Replaced,
    /// The stream was stopped.
    Ended,
}

impl KeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Replaced => "replaced",
            Self::Ended => "ended",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "replaced" => Some(Self::Replaced),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// A stored viewer key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopStreamRecord {
    /// SHA-256 (hex) of the key.
    pub key_hash: String,
    /// The sandbox it opens.
    pub sandbox_id: String,
    /// The sandbox's tenant.
    pub tenant_id: String,
    /// The random input the key is derived from.
    pub key_nonce: String,
    /// Input is dropped.
    pub view_only: bool,
    /// Its state.
    pub state: KeyState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once replaced or ended.
    pub ended_at: Option<String>,
}

const COLUMNS: &str = "key_hash, sandbox_id, tenant_id, key_nonce, view_only, state, created_at, ended_at";

fn decode(row: &SqliteRow) -> StoreResult<DesktopStreamRecord> {
    let key_hash: String = column(row, "key_hash", "desktop stream")?;
    let id = format!("desktop stream of {}", column::<String>(row, "sandbox_id", "desktop stream")?);
    let state: String = column(row, "state", &id)?;
    let state = KeyState::parse(&state)
        .ok_or_else(|| super::StoreError::Corrupt { id: id.clone(), reason: format!("unknown state {state:?}") })?;
    Ok(DesktopStreamRecord {
        sandbox_id: column(row, "sandbox_id", &id)?,
        tenant_id: column(row, "tenant_id", &id)?,
        key_nonce: column(row, "key_nonce", &id)?,
        view_only: column(row, "view_only", &id)?,
        state,
        created_at: column(row, "created_at", &id)?,
        ended_at: column(row, "ended_at", &id)?,
        key_hash,
    })
}

impl Store {
    /// Makes `record` (state active) the sandbox's key: its active key becomes replaced, and keys beyond
    /// the newest [`KEPT_PER_SANDBOX`] are deleted, in one transaction.
    pub async fn start_desktop_stream(&self, record: &DesktopStreamRecord) -> StoreResult<()> {
        let now = clock::now_rfc3339();
        let mut tx = self.pool.begin().await.map_err(query("begin desktop stream start"))?;
        sqlx::query("UPDATE desktop_streams SET state = $1, ended_at = $2 WHERE sandbox_id = $3 AND state = $4")
            .bind(KeyState::Replaced.as_str())
            .bind(&now)
            .bind(&record.sandbox_id)
            .bind(KeyState::Active.as_str())
            .execute(&mut *tx)
            .await
            .map_err(query("replace desktop stream"))?;
        sqlx::query(&format!("INSERT INTO desktop_streams ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&record.key_hash)
            .bind(&record.sandbox_id)
            .bind(&record.tenant_id)
            .bind(&record.key_nonce)
            .bind(record.view_only)
            .bind(record.state.as_str())
            .bind(&record.created_at)
            .bind(&record.ended_at)
            .execute(&mut *tx)
            .await
            .map_err(query("insert desktop stream"))?;
        sqlx::query(
            "DELETE FROM desktop_streams WHERE sandbox_id = $1 AND key_hash NOT IN (SELECT key_hash FROM \
             desktop_streams WHERE sandbox_id = $1 ORDER BY created_at DESC, rowid DESC LIMIT $2)",
        )
        .bind(&record.sandbox_id)
        .bind(KEPT_PER_SANDBOX)
        .execute(&mut *tx)
        .await
        .map_err(query("prune desktop streams"))?;
        tx.commit().await.map_err(query("commit desktop stream start"))?;
        Ok(())
    }

    /// Ends the sandbox's active key; `false` when it had none.
    pub async fn stop_desktop_stream(&self, sandbox_id: &str) -> StoreResult<bool> {
        let result =
            sqlx::query("UPDATE desktop_streams SET state = $1, ended_at = $2 WHERE sandbox_id = $3 AND state = $4")
                .bind(KeyState::Ended.as_str())
                .bind(clock::now_rfc3339())
                .bind(sandbox_id)
                .bind(KeyState::Active.as_str())
                .execute(&self.pool)
                .await
                .map_err(query("end desktop stream"))?;
        Ok(result.rows_affected() > 0)
    }

    /// The sandbox's active key.
    pub async fn active_desktop_stream(&self, sandbox_id: &str) -> StoreResult<Option<DesktopStreamRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM desktop_streams WHERE sandbox_id = $1 AND state = $2"))
            .bind(sandbox_id)
            .bind(KeyState::Active.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select active desktop stream"))?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// The key whose SHA-256 is `key_hash`, in any state.
    pub async fn desktop_stream_by_hash(&self, key_hash: &str) -> StoreResult<Option<DesktopStreamRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM desktop_streams WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("select desktop stream"))?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// Deletes every key of `sandbox_id` (its sandbox is gone).
    pub async fn delete_desktop_streams_of_sandbox(&self, sandbox_id: &str) -> StoreResult<u64> {
        let result = sqlx::query("DELETE FROM desktop_streams WHERE sandbox_id = $1")
            .bind(sandbox_id)
            .execute(&self.pool)
            .await
            .map_err(query("delete desktop streams"))?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, tenant_id: &str, sandbox_id: &str) -> DesktopStreamRecord {
        DesktopStreamRecord {
            key_hash: hash.to_owned(),
            sandbox_id: sandbox_id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            key_nonce: format!("nonce-{hash}"),
            view_only: true,
            state: KeyState::Active,
            created_at: clock::now_rfc3339(),
            ended_at: None,
        }
    }

    async fn store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("alpha").await.unwrap().id;
        (dir, store, tenant)
    }

    async fn state(store: &Store, hash: &str) -> Option<KeyState> {
        store.desktop_stream_by_hash(hash).await.unwrap().map(|r| r.state)
    }

    #[tokio::test]
    async fn a_start_replaces_the_active_key_and_a_stop_ends_it() {
        let (_dir, store, tenant) = store().await;
        let first = record("h1", &tenant, "sb_1");
        store.start_desktop_stream(&first).await.unwrap();
        assert_eq!(store.desktop_stream_by_hash("h1").await.unwrap(), Some(first.clone()));
        assert_eq!(store.active_desktop_stream("sb_1").await.unwrap(), Some(first));
        store.start_desktop_stream(&record("h2", &tenant, "sb_1")).await.unwrap();
        store.start_desktop_stream(&record("o1", &tenant, "sb_2")).await.unwrap();
        assert_eq!(state(&store, "h1").await, Some(KeyState::Replaced));
        assert!(store.desktop_stream_by_hash("h1").await.unwrap().unwrap().ended_at.is_some());
        assert_eq!(state(&store, "h2").await, Some(KeyState::Active));
        assert_eq!(store.active_desktop_stream("sb_1").await.unwrap().unwrap().key_hash, "h2");

        assert!(store.stop_desktop_stream("sb_1").await.unwrap());
        assert!(!store.stop_desktop_stream("sb_1").await.unwrap(), "nothing left to stop");
        assert_eq!(state(&store, "h2").await, Some(KeyState::Ended));
        assert_eq!(state(&store, "h1").await, Some(KeyState::Replaced), "a stop leaves replaced keys replaced");
        assert_eq!(store.active_desktop_stream("sb_1").await.unwrap(), None);
        assert_eq!(state(&store, "o1").await, Some(KeyState::Active), "other sandboxes are untouched");
        assert_eq!(state(&store, "nope").await, None);
    }

    #[tokio::test]
    async fn old_keys_are_pruned_and_keys_die_with_their_sandbox() {
        let (_dir, store, tenant) = store().await;
        for i in 0..KEPT_PER_SANDBOX + 3 {
            store.start_desktop_stream(&record(&format!("k{i}"), &tenant, "sb_1")).await.unwrap();
        }
        store.start_desktop_stream(&record("other", &tenant, "sb_2")).await.unwrap();
        assert_eq!(state(&store, "k0").await, None, "the oldest keys are forgotten");
        assert_eq!(state(&store, "k3").await, Some(KeyState::Replaced));
        assert_eq!(state(&store, &format!("k{}", KEPT_PER_SANDBOX + 2)).await, Some(KeyState::Active));
        assert_eq!(store.delete_desktop_streams_of_sandbox("sb_1").await.unwrap(), KEPT_PER_SANDBOX as u64);
        assert_eq!(store.active_desktop_stream("sb_1").await.unwrap(), None);
        assert_eq!(state(&store, "other").await, Some(KeyState::Active));
    }
}
