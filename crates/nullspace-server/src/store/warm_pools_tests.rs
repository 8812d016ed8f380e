//! Pool rows and membership against a real SQLite store: the claim is a compare-and-set, idle members
//! are hidden from the tenant's listing, counts follow member states.

use std::collections::BTreeMap;

use super::*;
use crate::store::ListFilter;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
    (dir, store)
}

fn pool(tenant: &str, id: &str, name: &str) -> WarmPoolRecord {
    WarmPoolRecord {
        id: id.into(),
        tenant_id: tenant.into(),
        name: name.into(),
        template_ref: "base".into(),
        template_id: "base".into(),
        min_ready: 2,
        max_ready: 3,
        vcpus: 2,
        memory_mb: 512,
        disk_mb: None,
        state: PoolState::Enabled,
        idle_timeout_seconds: Some(60),
        checkout_policy: "prefer".into(),
        labels: serde_json::Map::new(),
        metadata: serde_json::Map::new(),
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
        enabled_at: None,
        disabled_at: None,
        drain_requested_at: None,
        last_reconciled_at: None,
    }
}

fn member(tenant: &str, id: &str, pool: Option<&str>, state: SandboxState) -> SandboxRecord {
    SandboxRecord {
        id: id.into(),
        tenant_id: tenant.into(),
        state,
        template: "base".into(),
        vcpus: 2,
        memory_mb: 512,
        disk_mb: None,
        envs: BTreeMap::new(),
        metadata: serde_json::Map::new(),
        cwd: "/workspace".into(),
        created_at: format!("2026-01-01T00:00:0{}Z", id.len() % 10),
        started_at: None,
        timeout_ms: 1000,
        deadline_ms: i64::MAX / 2,
        timeout_action: "destroy".into(),
        idempotency_key: None,
        error: None,
        layers: Vec::new(),
        snapshot_id: None,
        network: Default::default(),
        volumes: Vec::new(),
        warm_pool_id: pool.map(str::to_owned),
        pool_claimed: false,
        auto_resume: false,
    }
}

#[tokio::test]
async fn pools_round_trip_and_names_are_unique_per_tenant() {
    let (_dir, store) = store().await;
    let mut first = pool("tn_a", "twp_1", "small");
    first.labels.insert("team".into(), "eval".into());
    assert!(store.insert_warm_pool(&first).await.unwrap());
    assert!(!store.insert_warm_pool(&pool("tn_a", "twp_2", "small")).await.unwrap(), "same name, same tenant");
    assert!(store.insert_warm_pool(&pool("tn_b", "twp_3", "small")).await.unwrap(), "same name, other tenant");
    assert_eq!(store.get_warm_pool("tn_a", "twp_1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.get_warm_pool("tn_b", "twp_1").await.unwrap(), None, "another tenant's pool does not exist");
    let mut renamed = pool("tn_a", "twp_4", "other");
    assert!(store.insert_warm_pool(&renamed).await.unwrap());
    renamed.name = "small".into();
    assert!(!store.update_warm_pool(&renamed).await.unwrap(), "rename onto a taken name");
    first.state = PoolState::Draining;
    assert!(store.update_warm_pool(&first).await.unwrap());
    assert_eq!(store.get_warm_pool("tn_a", "twp_1").await.unwrap().unwrap().state, PoolState::Draining);
    assert!(store.delete_warm_pool("tn_a", "twp_1").await.unwrap());
    assert!(!store.delete_warm_pool("tn_a", "twp_1").await.unwrap());
}

#[tokio::test]
async fn a_claim_takes_each_ready_member_once_and_only_for_its_tenant_and_template() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("a").await.unwrap();
    store.insert_warm_pool(&pool(&tenant.id, "twp_1", "p")).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_1", Some("twp_1"), SandboxState::Running)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_22", Some("twp_1"), SandboxState::Running)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_333", Some("twp_1"), SandboxState::Creating)).await.unwrap();
    assert_eq!(store.claim_pool_sandbox("tn_other", "twp_1", "base", &[]).await.unwrap(), None);
    assert_eq!(store.claim_pool_sandbox(&tenant.id, "twp_1", "tmpl_other", &[]).await.unwrap(), None);
    // A member still running its template's start command is not handed out.
    let starting = ["sb_1".to_owned(), "sb_22".to_owned()];
    assert_eq!(store.claim_pool_sandbox(&tenant.id, "twp_1", "base", &starting).await.unwrap(), None);
    let counts = store.warm_pool_counts("twp_1", &starting[..1]).await.unwrap();
    assert_eq!(counts, PoolCounts { ready: 1, warming: 2, claimed: 0, failed: 0 }, "a starting member is warming");
    // Many concurrent claims: exactly the two running members are handed out, each once.
    let claims = (0..8).map(|_| {
        let store = store.clone();
        let tenant = tenant.id.clone();
        tokio::spawn(async move { store.claim_pool_sandbox(&tenant, "twp_1", "base", &[]).await.unwrap() })
    });
    let mut won: Vec<String> = Vec::new();
    for claim in claims {
        won.extend(claim.await.unwrap());
    }
    won.sort();
    assert_eq!(won, vec!["sb_1".to_owned(), "sb_22".to_owned()]);
    let counts = store.warm_pool_counts("twp_1", &[]).await.unwrap();
    assert_eq!(counts, PoolCounts { ready: 0, warming: 1, claimed: 2, failed: 0 });
}

#[tokio::test]
async fn idle_members_are_hidden_from_the_tenant_until_claimed() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("a").await.unwrap();
    store.insert_warm_pool(&pool(&tenant.id, "twp_1", "p")).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_plain", None, SandboxState::Running)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_idle", Some("twp_1"), SandboxState::Running)).await.unwrap();
    let filter = ListFilter { states: vec![SandboxState::Running], ..ListFilter::default() };
    let listed = |records: Vec<SandboxRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(listed(store.list_sandboxes(&tenant.id, &filter).await.unwrap()), vec!["sb_plain".to_owned()]);
    assert!(store.get_sandbox(&tenant.id, "sb_idle").await.unwrap().unwrap().is_idle_pool_member());
    assert_eq!(store.claim_pool_sandbox(&tenant.id, "twp_1", "base", &[]).await.unwrap().as_deref(), Some("sb_idle"));
    let claimed = store.get_sandbox(&tenant.id, "sb_idle").await.unwrap().unwrap();
    assert!(!claimed.is_idle_pool_member() && claimed.pool_claimed);
    assert_eq!(listed(store.list_sandboxes(&tenant.id, &filter).await.unwrap()).len(), 2);
}

#[tokio::test]
async fn counts_and_orphans_follow_member_states() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("a").await.unwrap();
    store.insert_warm_pool(&pool(&tenant.id, "twp_1", "p")).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_a", Some("twp_1"), SandboxState::Running)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_bb", Some("twp_1"), SandboxState::Error)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_ccc", Some("twp_1"), SandboxState::Destroyed)).await.unwrap();
    store.insert_sandbox(&member(&tenant.id, "sb_dddd", Some("twp_gone"), SandboxState::Running)).await.unwrap();
    let counts = store.warm_pool_counts("twp_1", &[]).await.unwrap();
    assert_eq!(counts, PoolCounts { ready: 1, warming: 0, claimed: 0, failed: 1 });
    let idle: Vec<String> = store.idle_pool_members("twp_1").await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(idle, vec!["sb_a".to_owned(), "sb_bb".to_owned()]);
    assert_eq!(store.orphan_pool_members().await.unwrap(), vec![("sb_dddd".to_owned(), tenant.id.clone())]);
    assert_eq!(store.get_tenant_by_id(&tenant.id).await.unwrap(), Some(tenant));
}
