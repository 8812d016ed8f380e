//! Host id ranges of sandboxes under user namespaces (`sandbox_id_ranges`, migration 0011): which sandbox
//! holds which `RANGE_SIZE` block of host uids/gids. The node asks through
//! [`nullspace_node::idmap::IdRangeBook`]; which blocks exist is the node's [`RangePolicy`].

use std::collections::BTreeSet;

use nullspace_node::idmap::{BookError, BookFuture, IdRangeBook, RangePolicy, RANGE_SIZE};

use super::error::{column, query};
use super::{Store, StoreResult};
use crate::clock;

/// Inserts lost to a concurrent allocation of the same block before giving up.
const ATTEMPTS: usize = 8;

impl Store {
    /// The base of `sandbox_id`'s range: the one it holds when `policy` still allows it, else the lowest
    /// free block, recorded before it is returned. Allocations of this process run one at a time (each
    /// picks the lowest free block, so concurrent ones would all pick the same one and all but one
    /// retry, up to [`ATTEMPTS`] times: 100 concurrent creates ran out of attempts); the unique key
    /// still settles a race with another process on the same store.
    pub async fn allocate_id_range(&self, sandbox_id: &str, policy: &RangePolicy) -> StoreResult<Option<u32>> {
        let _one_at_a_time = self.id_ranges.lock().await;
        for _ in 0..ATTEMPTS {
            let rows = sqlx::query("SELECT sandbox_id, host_base FROM sandbox_id_ranges")
                .fetch_all(&self.pool)
                .await
                .map_err(query("list id ranges"))?;
            let mut taken = BTreeSet::new();
            for row in &rows {
                let holder: String = column(row, "sandbox_id", "id range")?;
                let base: i64 = column(row, "host_base", &holder)?;
                let Ok(base) = u32::try_from(base) else { continue };
                if holder == sandbox_id && policy.allows(base) {
                    return Ok(Some(base));
                }
                taken.insert(base);
            }
            let Some(base) = policy.pick(&taken) else { return Ok(None) };
            // A held range the policy no longer allows (a new /etc/subuid entry) is replaced.
            let inserted = sqlx::query(
                "INSERT INTO sandbox_id_ranges (sandbox_id, host_base, size, allocated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sandbox_id) DO UPDATE SET host_base = excluded.host_base,
                 allocated_at = excluded.allocated_at",
            )
            .bind(sandbox_id)
            .bind(i64::from(base))
            .bind(i64::from(RANGE_SIZE))
            .bind(clock::now_rfc3339())
            .execute(&self.pool)
            .await;
            match inserted {
                Ok(_) => return Ok(Some(base)),
                // Another sandbox took this block in between: look again.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(source) => return Err(query("record an id range")(source)),
            }
        }
        Ok(None)
    }

    /// Forgets `sandbox_id`'s range.
    pub async fn release_id_range(&self, sandbox_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sandbox_id_ranges WHERE sandbox_id = $1")
            .bind(sandbox_id)
            .execute(&self.pool)
            .await
            .map_err(query("release an id range"))?;
        Ok(())
    }

    /// Forgets the ranges of every sandbox not in `alive`; returns how many.
    pub async fn retain_id_ranges(&self, alive: &BTreeSet<String>) -> StoreResult<usize> {
        let rows = sqlx::query("SELECT sandbox_id FROM sandbox_id_ranges")
            .fetch_all(&self.pool)
            .await
            .map_err(query("list id ranges"))?;
        let mut released = 0;
        for row in &rows {
            let holder: String = column(row, "sandbox_id", "id range")?;
            if !alive.contains(&holder) {
                self.release_id_range(&holder).await?;
                released += 1;
            }
        }
        Ok(released)
    }

    /// The base of `sandbox_id`'s range, if it holds one.
    #[cfg(test)]
    pub async fn id_range_of(&self, sandbox_id: &str) -> StoreResult<Option<u32>> {
        let row = sqlx::query("SELECT host_base FROM sandbox_id_ranges WHERE sandbox_id = $1")
            .bind(sandbox_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("get an id range"))?;
        let Some(row) = row else { return Ok(None) };
        let base: i64 = column(&row, "host_base", sandbox_id)?;
        Ok(u32::try_from(base).ok())
    }
}

impl IdRangeBook for Store {
    fn allocate<'a>(&'a self, sandbox_id: &'a str, policy: &'a RangePolicy) -> BookFuture<'a, u32> {
        Box::pin(async move {
            match self.allocate_id_range(sandbox_id, policy).await {
                Ok(Some(base)) => Ok(base),
                Ok(None) => Err(BookError::from("every host id range is taken")),
                Err(error) => Err(BookError::from(error)),
            }
        })
    }

    fn release<'a>(&'a self, sandbox_id: &'a str) -> BookFuture<'a, ()> {
        Box::pin(async move { self.release_id_range(sandbox_id).await.map_err(BookError::from) })
    }

    fn retain<'a>(&'a self, alive: &'a BTreeSet<String>) -> BookFuture<'a, ()> {
        Box::pin(async move {
            let released = self.retain_id_ranges(alive).await.map_err(BookError::from)?;
            if released > 0 {
                tracing::info!(released, "released the id ranges of sandboxes that are gone");
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nullspace_node::idmap::FIRST_BASE;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn each_sandbox_gets_its_own_range_and_keeps_it_until_released() {
        let (_dir, store) = store().await;
        let policy = RangePolicy::default();
        let a = store.allocate_id_range("sb_a", &policy).await.unwrap().unwrap();
        let b = store.allocate_id_range("sb_b", &policy).await.unwrap().unwrap();
        assert_eq!(a, FIRST_BASE);
        assert_eq!(b, FIRST_BASE + RANGE_SIZE);
        // Asking again (a relaunch under the same id) returns the held range.
        assert_eq!(store.allocate_id_range("sb_a", &policy).await.unwrap(), Some(a));
        store.release_id_range("sb_a").await.unwrap();
        assert_eq!(store.id_range_of("sb_a").await.unwrap(), None);
        // A released block is handed out again; a live one never is.
        let c = store.allocate_id_range("sb_c", &policy).await.unwrap().unwrap();
        assert_eq!(c, a);
        assert_eq!(store.id_range_of("sb_b").await.unwrap(), Some(b));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_hundred_concurrent_allocations_all_get_distinct_ranges() {
        let (_dir, store) = store().await;
        let policy = RangePolicy::default();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (store, policy) = (store.clone(), policy.clone());
                tokio::spawn(async move { store.allocate_id_range(&format!("sb_{i}"), &policy).await })
            })
            .collect();
        let mut bases = BTreeSet::new();
        for task in tasks {
            let base = task.await.unwrap().unwrap().expect("a range for every sandbox");
            assert!(bases.insert(base), "block {base} handed out twice");
        }
        assert_eq!(bases.len(), 100);
    }

    #[tokio::test]
    async fn retain_releases_only_the_ranges_of_gone_sandboxes() {
        let (_dir, store) = store().await;
        let policy = RangePolicy::default();
        for id in ["sb_live", "sb_gone"] {
            store.allocate_id_range(id, &policy).await.unwrap().unwrap();
        }
        let alive: BTreeSet<String> = ["sb_live".to_owned()].into();
        assert_eq!(store.retain_id_ranges(&alive).await.unwrap(), 1);
        assert!(store.id_range_of("sb_live").await.unwrap().is_some());
        assert_eq!(store.id_range_of("sb_gone").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_held_range_the_policy_no_longer_allows_is_replaced() {
        let (_dir, store) = store().await;
        let first = store.allocate_id_range("sb_a", &RangePolicy::default()).await.unwrap().unwrap();
        let subuid = format!("alice:{first}:65536\n");
        let policy = RangePolicy::from_subid_files(&[&subuid]);
        let moved = store.allocate_id_range("sb_a", &policy).await.unwrap().unwrap();
        assert_ne!(moved, first);
        assert_eq!(store.id_range_of("sb_a").await.unwrap(), Some(moved));
    }
}
