//! Tests of template, tag, alias, build and log rows against a real SQLite store.

use nullspace_types::template_wire::BuildStatus;

use super::*;
use crate::store::template_builds::{BuildFilter, BuildOutcome, BuildRecord};
use crate::store::Tenant;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
    (dir, store)
}

pub(crate) fn template(id: &str, tenant: &Tenant, namespace: &str, name: &str, layers: &[&str]) -> TemplateRecord {
    TemplateRecord {
        id: id.into(),
        tenant_id: tenant.id.clone(),
        namespace: namespace.into(),
        name: name.into(),
        visibility: "private".into(),
        description: String::new(),
        image: serde_json::json!({"layers": layers, "runtime": {"envs": {}}}).to_string(),
        build_id: format!("tb_{}", &id[5..]),
        created_at: crate::clock::now_rfc3339(),
        updated_at: crate::clock::now_rfc3339(),
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|tag| tag.to_string()).collect()
}

async fn tag_names(store: &Store, id: &str) -> Vec<String> {
    store.template_tags(id).await.unwrap().into_iter().map(|tag| tag.tag).collect()
}

#[test]
fn slugs_are_lowercase_dashed_and_never_empty() {
    assert_eq!(slug_of("Alice Smith"), "alice-smith");
    assert_eq!(slug_of("--ACME__corp--"), "acme-corp");
    assert_eq!(slug_of("!!!"), "tenant");
    assert_eq!(slug_of("default"), "default");
}

#[tokio::test]
async fn namespaces_are_one_per_tenant_unique_and_never_nullspace() {
    let (_dir, store) = store().await;
    let alpha = store.ensure_tenant("Team A").await.unwrap();
    let beta = store.ensure_tenant("team-a").await.unwrap();
    let system = store.ensure_tenant("nullspace").await.unwrap();
    let first = store.ensure_namespace(&alpha.id, &alpha.name).await.unwrap();
    assert_eq!(first, "team-a");
    assert_eq!(store.ensure_namespace(&alpha.id, &alpha.name).await.unwrap(), first, "stable");
    assert_eq!(store.ensure_namespace(&beta.id, &beta.name).await.unwrap(), "team-a-2", "taken slug gets a suffix");
    assert_eq!(store.ensure_namespace(&system.id, &system.name).await.unwrap(), "nullspace-2", "reserved");
    assert_eq!(store.namespace_owner("team-a").await.unwrap(), Some(alpha.id));
}

#[tokio::test]
async fn tags_move_between_templates_and_a_name_without_tags_is_unbound() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("t").await.unwrap();
    let first = store
        .insert_template(&template("tmpl_a", &tenant, "t", "app", &[]), &tags(&["default", "stable"]))
        .await
        .unwrap();
    let second =
        store.insert_template(&template("tmpl_b", &tenant, "t", "app", &[]), &tags(&["candidate"])).await.unwrap();
    store.assign_tags(&second, &tags(&["default", "production"])).await.unwrap();
    assert_eq!(tag_names(&store, "tmpl_b").await, ["candidate", "default", "production"]);
    assert_eq!(tag_names(&store, "tmpl_a").await, ["stable"]);
    assert_eq!(store.template_by_tag("t", "app", "default").await.unwrap().unwrap().id, "tmpl_b");
    assert_eq!(store.template_by_tag("t", "app", "stable").await.unwrap().unwrap().id, "tmpl_a");
    assert_eq!(store.template_by_build("t", "app", "tb_a").await.unwrap().unwrap().id, "tmpl_a");
    assert_eq!(store.template_by_tag("u", "app", "default").await.unwrap(), None, "other namespace");

    assert!(!store.remove_tag(&first, "default").await.unwrap(), "the tag is not on this template");
    for tag in ["candidate", "default", "production"] {
        assert!(store.remove_tag(&second, tag).await.unwrap());
    }
    assert_eq!(store.template_by_tag("t", "app", "default").await.unwrap(), None, "name unbound");
    assert!(store.get_template("tmpl_b").await.unwrap().is_some(), "the id still resolves");
}

#[tokio::test]
async fn visibility_belongs_to_the_name_and_new_builds_inherit_it() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("t").await.unwrap();
    store.insert_template(&template("tmpl_a", &tenant, "t", "app", &[]), &tags(&["default"])).await.unwrap();
    store.set_visibility("t", "app", "public").await.unwrap();
    let later = store.insert_template(&template("tmpl_b", &tenant, "t", "app", &[]), &tags(&["next"])).await.unwrap();
    assert_eq!(later.visibility, "public");
    assert_eq!(store.get_template("tmpl_a").await.unwrap().unwrap().visibility, "public");
    let other = store.insert_template(&template("tmpl_c", &tenant, "t", "other", &[]), &[]).await.unwrap();
    assert_eq!(other.visibility, "private");
}

#[tokio::test]
async fn rename_moves_tags_and_keeps_an_alias_and_delete_is_soft() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("t").await.unwrap();
    let record =
        store.insert_template(&template("tmpl_a", &tenant, "t", "old", &["l1"]), &tags(&["default"])).await.unwrap();
    store.rename_templates(&record, "new").await.unwrap();
    assert_eq!(store.template_by_tag("t", "new", "default").await.unwrap().unwrap().id, "tmpl_a");
    assert_eq!(store.template_by_tag("t", "old", "default").await.unwrap(), None);
    assert_eq!(store.alias_target("t/old").await.unwrap().as_deref(), Some("tmpl_a"));
    assert_eq!(store.template_aliases("tmpl_a").await.unwrap()[0].alias_ref, "t/old");

    let other = store.ensure_tenant("o").await.unwrap();
    assert!(!store.delete_template(&other.id, "tmpl_a").await.unwrap(), "another tenant cannot delete");
    assert!(store.delete_template(&tenant.id, "tmpl_a").await.unwrap());
    assert_eq!(store.get_template("tmpl_a").await.unwrap(), None);
    assert!(store.template_tags("tmpl_a").await.unwrap().is_empty());
    assert_eq!(store.alias_target("t/old").await.unwrap(), None);
    assert!(store.list_templates(&tenant.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn layers_stay_in_use_while_a_live_sandbox_uses_a_deleted_template() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("t").await.unwrap();
    store.insert_template(&template("tmpl_a", &tenant, "t", "a", &["la1", "la2"]), &[]).await.unwrap();
    store.insert_template(&template("tmpl_b", &tenant, "t", "b", &["lb"]), &[]).await.unwrap();
    store.insert_template(&template("tmpl_c", &tenant, "t", "c", &["lc"]), &[]).await.unwrap();
    let mut expected: Vec<&str> = vec!["la1", "la2", "lb", "lc"];
    let mut in_use: Vec<String> = store.layers_in_use().await.unwrap().into_iter().collect();
    in_use.sort();
    assert_eq!(in_use, expected);

    // tmpl_b is used by a running sandbox, tmpl_c by none: after both are deleted only b's layer stays.
    sqlx::query(
        "INSERT INTO sandboxes (id, tenant_id, state, template, vcpus, memory_mb, envs, metadata, cwd, created_at, \
         timeout_ms, deadline_ms, timeout_action) VALUES ('sb_1', $1, 'running', 'tmpl_b', 1, 256, '{}', '{}', '/', 'x', 1, 1, 'kill')",
    )
    .bind(&tenant.id)
    .execute(&store.pool)
    .await
    .unwrap();
    store.delete_template(&tenant.id, "tmpl_b").await.unwrap();
    store.delete_template(&tenant.id, "tmpl_c").await.unwrap();
    expected.retain(|layer| *layer != "lc");
    let mut in_use: Vec<String> = store.layers_in_use().await.unwrap().into_iter().collect();
    in_use.sort();
    assert_eq!(in_use, expected);
}

fn build(id: &str, tenant: &Tenant, status: BuildStatus, created_at: &str) -> BuildRecord {
    BuildRecord {
        id: id.into(),
        template_id: format!("tmpl_{id}"),
        tenant_id: tenant.id.clone(),
        namespace: "t".into(),
        name: "app".into(),
        tags: tags(&["default"]),
        status,
        source_type: "declarative".into(),
        source_digest: None,
        context_digest: None,
        dockerfile_digest: None,
        request: serde_json::json!({"base_image": "debian"}),
        created_at: created_at.into(),
        updated_at: created_at.into(),
        queued_at: Some(created_at.into()),
        started_at: None,
        finished_at: None,
        error: None,
        error_detail: None,
        failure_phase: None,
        cancel_requested_at: None,
        cancel_requested_by: None,
        cancellation_reason: None,
        retry_of_build_id: None,
        cache_summary: Default::default(),
    }
}

#[tokio::test]
async fn builds_move_through_their_statuses_once_and_list_newest_first() {
    let (_dir, store) = store().await;
    let tenant = store.ensure_tenant("t").await.unwrap();
    let other = store.ensure_tenant("o").await.unwrap();
    store.insert_build(&build("tb_1", &tenant, BuildStatus::Waiting, "2026-01-01T00:00:01.000Z")).await.unwrap();
    store.insert_build(&build("tb_2", &tenant, BuildStatus::Waiting, "2026-01-01T00:00:02.000Z")).await.unwrap();
    store.insert_build(&build("tb_3", &other, BuildStatus::Waiting, "2026-01-01T00:00:03.000Z")).await.unwrap();
    assert!(store.start_build("tb_1", "2026-01-01T00:00:04.000Z").await.unwrap());
    assert!(!store.start_build("tb_1", "2026-01-01T00:00:04.000Z").await.unwrap(), "already building");
    let failed = BuildOutcome {
        status: BuildStatus::Error,
        error: Some("boom".into()),
        error_detail: Some(serde_json::json!({"code": "build_error"})),
        failure_phase: Some("build_step".into()),
    };
    assert!(store.finish_build("tb_1", &failed, "2026-01-01T00:00:05.000Z").await.unwrap());
    let ready = BuildOutcome { status: BuildStatus::Ready, error: None, error_detail: None, failure_phase: None };
    assert!(!store.finish_build("tb_1", &ready, "x").await.unwrap(), "a terminal build stays as it ended");
    let stored = store.get_build("tb_1").await.unwrap().unwrap();
    assert_eq!(stored.status, BuildStatus::Error);
    assert_eq!(stored.error_detail.unwrap()["code"], "build_error");
    assert_eq!(stored.started_at.as_deref(), Some("2026-01-01T00:00:04.000Z"));

    let interrupted = store.builds_in_status(&[BuildStatus::Waiting, BuildStatus::Building]).await.unwrap();
    assert_eq!(interrupted.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["tb_2", "tb_3"]);

    let all = BuildFilter { limit: 10, ..BuildFilter::default() };
    let listed: Vec<String> = store.list_builds(&tenant.id, &all).await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(listed, ["tb_2", "tb_1"], "newest first, tenant's own only");
    let page = BuildFilter {
        limit: 10,
        before: Some(("2026-01-01T00:00:02.000Z".into(), "tb_2".into())),
        ..BuildFilter::default()
    };
    assert_eq!(store.list_builds(&tenant.id, &page).await.unwrap()[0].id, "tb_1");
    let errors = BuildFilter { limit: 10, status: Some(BuildStatus::Error), ..BuildFilter::default() };
    assert_eq!(store.list_builds(&tenant.id, &errors).await.unwrap().len(), 1);
}

#[tokio::test]
async fn log_offsets_are_unique_per_build() {
    let (_dir, store) = store().await;
    store.insert_build_log("tb_1", 0, "{}").await.unwrap();
    store.insert_build_log("tb_2", 0, "{}").await.unwrap();
    assert!(store.insert_build_log("tb_1", 0, "{}").await.is_err(), "an offset is written once");
    assert_eq!(store.next_build_log_offset("tb_1").await.unwrap(), 1);
    assert_eq!(store.next_build_log_offset("tb_9").await.unwrap(), 0);
}
