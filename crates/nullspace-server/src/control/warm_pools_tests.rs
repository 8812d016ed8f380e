//! Pool settings validation, list filters and what makes a create miss a pool.

use nullspace_types::sandbox::{CreateSandboxRequest, NetworkRequest};

use super::*;
use crate::control::warm_pool_claims::{members_to_start, mismatch};

fn pool() -> WarmPoolRecord {
    WarmPoolRecord {
        id: "twp_1".into(),
        tenant_id: "tn_a".into(),
        name: "small".into(),
        template_ref: "base".into(),
        template_id: "base".into(),
        min_ready: 1,
        max_ready: 2,
        vcpus: 2,
        memory_mb: 512,
        disk_mb: None,
        state: PoolState::Enabled,
        idle_timeout_seconds: None,
        checkout_policy: "prefer".into(),
        labels: serde_json::Map::new(),
        metadata: serde_json::Map::new(),
        created_at: String::new(),
        updated_at: String::new(),
        enabled_at: None,
        disabled_at: None,
        drain_requested_at: None,
        last_reconciled_at: None,
    }
}

fn request(json: serde_json::Value) -> PoolRequest {
    serde_json::from_value(json).unwrap()
}

#[test]
fn updates_apply_only_named_fields_and_keep_the_rules() {
    let mut p = pool();
    apply_request(&mut p, &request(serde_json::json!({"min_ready": 2, "resources": {"memory_mb": 1024}}))).unwrap();
    assert_eq!((p.min_ready, p.max_ready, p.vcpus, p.memory_mb), (2, 2, 2, 1024));
    for bad in [
        serde_json::json!({"min_ready": 3}),
        serde_json::json!({"max_ready": 0}),
        serde_json::json!({"max_ready": MAX_POOL_SIZE + 1}),
        serde_json::json!({"name": ""}),
        serde_json::json!({"checkout_policy": "sometimes"}),
        serde_json::json!({"version_policy": "track_tag"}),
        serde_json::json!({"labels": {"team": 3}}),
        serde_json::json!({"stale_after_seconds": 60}),
    ] {
        let mut p = pool();
        assert!(apply_request(&mut p, &request(bad.clone())).is_err(), "{bad} accepted");
    }
    let mut p = pool();
    apply_request(&mut p, &request(serde_json::json!({"idle_timeout_seconds": 0}))).unwrap();
    assert_eq!(p.idle_timeout_seconds, None, "0 means no idle timeout");
}

#[test]
fn list_filters_match_template_state_label_and_status() {
    let mut p = pool();
    p.labels.insert("team".into(), "eval".into());
    let counts = PoolCounts { ready: 0, ..PoolCounts::default() };
    let filter = |json| serde_json::from_value::<PoolFilter>(json).unwrap();
    assert!(matches(&p, &counts, &filter(serde_json::json!({"template": "base", "state": "enabled"}))));
    assert!(matches(&p, &counts, &filter(serde_json::json!({"label": "team=eval"}))));
    assert!(matches(&p, &counts, &filter(serde_json::json!({"label": "team"}))));
    assert!(!matches(&p, &counts, &filter(serde_json::json!({"label": "team=prod"}))));
    assert!(!matches(&p, &counts, &filter(serde_json::json!({"state": "disabled"}))));
    assert!(matches(&p, &counts, &filter(serde_json::json!({"status": "degraded"}))));
    assert!(!matches(&p, &PoolCounts { ready: 1, ..counts }, &filter(serde_json::json!({"status": "degraded"}))));
}

#[test]
fn a_create_misses_the_pool_when_its_settings_are_not_poolable() {
    let p = pool();
    let plain = CreateSandboxRequest { vcpus: Some(2), memory_mb: Some(512), ..CreateSandboxRequest::default() };
    assert_eq!(mismatch(&p, &plain, "base", 512), None);
    assert!(mismatch(&p, &plain, "tmpl_other", 512).is_some());
    assert!(mismatch(&p, &CreateSandboxRequest { memory_mb: Some(1024), ..plain.clone() }, "base", 512).is_some());
    // Another disk size than the pool's members have is a cold create.
    assert!(mismatch(&p, &CreateSandboxRequest { disk_mb: Some(64), ..plain.clone() }, "base", 512).is_some());
    let sized = WarmPoolRecord { disk_mb: Some(64), ..pool() };
    assert_eq!(mismatch(&sized, &CreateSandboxRequest { disk_mb: Some(64), ..plain.clone() }, "base", 512), None);
    assert!(
        mismatch(&p, &CreateSandboxRequest { internet_access: Some(false), ..plain.clone() }, "base", 512).is_some()
    );
    let deny = NetworkRequest { deny_out: Some(vec!["10.0.0.0/8".into()]), allow_out: None };
    assert!(mismatch(&p, &CreateSandboxRequest { network: Some(deny), ..plain.clone() }, "base", 512).is_some());
    let disabled = WarmPoolRecord { state: PoolState::Disabled, ..pool() };
    assert!(mismatch(&disabled, &plain, "base", 512).unwrap().contains("disabled"));
}

#[test]
fn a_create_naming_no_size_gets_the_template_default_memory_when_matched() {
    // A pool of a template whose sandboxes default to 2048 MiB (code-interpreter) serves a create that
    // names no memory; a template defaulting to 512 MiB does not match that pool.
    let p = WarmPoolRecord { memory_mb: 2048, ..pool() };
    let unsized_request = CreateSandboxRequest::default();
    assert_eq!(mismatch(&p, &unsized_request, "base", 2048), None);
    assert!(mismatch(&p, &unsized_request, "base", 512).unwrap().contains("2048 MiB"));
}

#[test]
fn only_the_default_desktop_is_poolable() {
    use nullspace_types::sandbox::{DesktopSettings, Resolution};
    let p = pool();
    let plain = CreateSandboxRequest { vcpus: Some(2), memory_mb: Some(512), ..CreateSandboxRequest::default() };
    let desktop = |settings: DesktopSettings| CreateSandboxRequest { desktop: Some(settings), ..plain.clone() };
    let defaults = DesktopSettings {
        resolution: Some(Resolution { width: 1920, height: 1080 }),
        dpi: Some(96),
        display: Some(":1".into()),
    };
    assert_eq!(mismatch(&p, &desktop(defaults), "base", 512), None);
    assert_eq!(mismatch(&p, &desktop(DesktopSettings::default()), "base", 512), None);
    let small =
        DesktopSettings { resolution: Some(Resolution { width: 1280, height: 800 }), ..DesktopSettings::default() };
    assert!(mismatch(&p, &desktop(small), "base", 512).unwrap().contains("desktop settings"));
    let other_display = DesktopSettings { display: Some(":2".into()), ..DesktopSettings::default() };
    assert!(mismatch(&p, &desktop(other_display), "base", 512).is_some());
}

#[test]
fn a_refill_starts_what_is_missing_up_to_min_ready_and_never_past_max_ready() {
    let p = WarmPoolRecord { min_ready: 3, max_ready: 4, ..pool() };
    let counts = |ready, warming, claimed| PoolCounts { ready, warming, claimed, failed: 0 };
    assert_eq!(members_to_start(&p, &counts(0, 0, 0)), 3);
    assert_eq!(members_to_start(&p, &counts(1, 1, 5)), 1, "claimed sandboxes are not the pool's");
    assert_eq!(members_to_start(&p, &counts(3, 0, 0)), 0);
    assert_eq!(members_to_start(&p, &counts(2, 3, 0)), 0, "over target (max_ready lowered): none");
    let capped = WarmPoolRecord { min_ready: 4, max_ready: 4, ..pool() };
    assert_eq!(members_to_start(&capped, &counts(0, 4, 0)), 0, "starting ones count");
}
