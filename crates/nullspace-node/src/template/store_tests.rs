//! Tests of the template store: only finished layers are ever returned, leftovers are cleaned, builds
//! are serialized; plus the real (slow) build of `base`.

use std::path::{Path, PathBuf};

use super::*;
use crate::template::BASE_TEMPLATE;

fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nullspace-templates-{tag}-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("create temp root");
    dir
}

fn layer(name: &str, hash: &str, built_at: &str) -> TemplateLayer {
    TemplateLayer {
        name: name.into(),
        description: "test".into(),
        rootfs: PathBuf::from("/elsewhere/rootfs"),
        recipe_hash: hash.into(),
        built_at: built_at.into(),
        default_user: "root".into(),
        default_cwd: "/workspace".into(),
        envs: BTreeMap::new(),
        size_bytes: 1,
    }
}

/// A layer directory as a finished build leaves it (`with_marker`) or as a crash before the marker does.
fn fake_layer(root: &Path, dir: &str, layer: &TemplateLayer, with_marker: bool) -> PathBuf {
    let dir = root.join(dir);
    std::fs::create_dir_all(dir.join("rootfs/usr/bin")).expect("mkdir");
    if with_marker {
        std::fs::write(dir.join(MARKER), serde_json::to_vec(layer).expect("json")).expect("marker");
    }
    dir
}

fn current_base_hash() -> String {
    Recipe::base().expect("recipe").hash()
}

#[test]
fn a_layer_without_marker_is_never_returned() {
    let root = temp_root("half");
    let store = TemplateStore::new(root.clone());
    assert!(store.get("base").is_none());
    assert!(store.list().is_empty());

    // Renamed into place but the marker not yet written; a build dir (even one carrying a marker); a
    // marker whose rootfs is gone; a marker half written.
    fake_layer(&root, "base-aaaa-1", &layer("base", "h", "2025-01-01T00:00:00.000Z"), false);
    fake_layer(&root, ".build-base-2", &layer("base", "h", "2025-01-01T00:00:00.000Z"), true);
    let no_rootfs = fake_layer(&root, "base-bbbb-3", &layer("base", "h", "2025-01-01T00:00:00.000Z"), true);
    std::fs::remove_dir_all(no_rootfs.join("rootfs")).expect("rm");
    let torn = fake_layer(&root, "base-cccc-4", &layer("base", "h", "2025-01-01T00:00:00.000Z"), false);
    std::fs::write(torn.join(MARKER), b"{\"name\":\"ba").expect("write");
    assert!(store.get("base").is_none());
    assert!(store.list().is_empty());

    // Once the marker exists, the layer is ready, with rootfs pointing into the store.
    let ready = fake_layer(&root, "base-dddd-5", &layer("base", "h", "2025-01-01T00:00:00.000Z"), true);
    let got = store.get("base").expect("ready layer");
    assert_eq!(got.rootfs, ready.join("rootfs"));
    assert_eq!(store.list().len(), 1);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn newest_layer_of_a_name_wins() {
    let root = temp_root("newest");
    let store = TemplateStore::new(root.clone());
    fake_layer(&root, "base-old", &layer("base", "old", "2025-01-01T00:00:00.000Z"), true);
    fake_layer(&root, "base-new", &layer("base", "new", "2025-02-01T00:00:00.000Z"), true);
    fake_layer(&root, "desktop-x", &layer("desktop", "d", "2024-01-01T00:00:00.000Z"), true);
    assert_eq!(store.get("base").expect("base").recipe_hash, "new");
    let names: Vec<String> = store.list().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["base", "desktop"]);
    assert!(store.get("code-interpreter").is_none());
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn ensure_base_reuses_a_current_layer_and_cleans_leftovers() {
    let root = temp_root("ensure");
    let store = TemplateStore::new(root.clone());
    let hash = current_base_hash();
    let stale_build = fake_layer(&root, ".build-base-dead", &layer("base", &hash, "2030-01-01T00:00:00.000Z"), false);
    std::fs::write(stale_build.join("rootfs/usr/bin/python3"), b"partial").expect("write");
    let unmarked = fake_layer(&root, "base-unmarked", &layer("base", &hash, "2030-01-01T00:00:00.000Z"), false);
    let old = fake_layer(&root, "base-old", &layer("base", "0ld", "2025-01-01T00:00:00.000Z"), true);
    let current = fake_layer(&root, "base-current", &layer(BASE_TEMPLATE, &hash, "2025-06-01T00:00:00.000Z"), true);
    let other = fake_layer(&root, "desktop-x", &layer("desktop", "d", "2024-01-01T00:00:00.000Z"), true);

    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |line: &str| lines.lock().expect("lock").push(line.to_owned());
    let got = store.ensure_base(&progress).await.expect("no build needed");

    assert_eq!(got.rootfs, current.join("rootfs"));
    assert_eq!(got.recipe_hash, hash);
    assert!(lines.lock().expect("lock").is_empty(), "nothing was built");
    assert!(!stale_build.exists(), "stale build dir removed");
    assert!(!unmarked.exists(), "unmarked layer dir removed");
    assert!(!old.exists(), "layer of an older recipe removed");
    assert!(other.exists(), "other templates untouched");
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .expect("read")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(BUILD_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn the_store_lock_is_exclusive() {
    let root = temp_root("lock");
    let store = TemplateStore::new(root.clone());
    let held = store.lock().await.expect("lock");
    let second = File::options().write(true).open(root.join(LOCK)).expect("open");
    let attempt = nix::fcntl::Flock::lock(second, nix::fcntl::FlockArg::LockExclusiveNonblock);
    assert!(attempt.is_err(), "a second build must wait");
    drop(held);
    let third = File::options().write(true).open(root.join(LOCK)).expect("open");
    assert!(nix::fcntl::Flock::lock(third, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok());
    let _ = std::fs::remove_dir_all(&root);
}

/// The real build: runs mmdebstrap against the host's Debian mirror. Run it with
/// `cargo test -p nullspace-node template -- --ignored --nocapture` or `NULLSPACE_TEST_BUILD_TEMPLATE=1`.
#[tokio::test]
#[ignore = "needs: network mirror, ~1 min"]
async fn builds_the_base_template() {
    build_base_for_real().await;
}

#[tokio::test]
async fn builds_the_base_template_when_asked() {
    if std::env::var("NULLSPACE_TEST_BUILD_TEMPLATE").as_deref() != Ok("1") {
        eprintln!("skipped: set NULLSPACE_TEST_BUILD_TEMPLATE=1 to build the base template");
        return;
    }
    build_base_for_real().await;
}

async fn build_base_for_real() {
    let root = temp_root("real");
    let store = TemplateStore::new(root.clone());
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("build: {line}");
    let layer = store.ensure_base(&progress).await.unwrap_or_else(|e| panic!("build failed: {e}"));
    let took = started.elapsed();
    eprintln!("base template built in {took:.1?}, {} bytes, at {}", layer.size_bytes, layer.rootfs.display());

    let rootfs = &layer.rootfs;
    for path in [
        "usr/bin/python3",
        "usr/bin/git",
        "usr/bin/bash",
        "usr/bin/which",
        "usr/bin/s3fs",
        "home/user",
        "workspace",
        "root/.ssh",
        "etc/sudoers.d/user",
        "usr/local/bin/mount-s3.sh",
        "usr/local/bin/mount-gcs.sh",
    ] {
        assert!(rootfs.join(path).exists(), "{path} missing from the base template");
    }
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(rootfs.join(p)).expect("stat").permissions().mode() & 0o7777
    };
    assert_eq!(mode("workspace"), 0o755);
    assert_eq!(mode("root/.ssh"), 0o700);
    assert_eq!(mode("usr/local/bin/mount-s3.sh") & 0o111, 0o111);
    assert!(!rootfs.join("root/.passwd-s3fs").exists());
    assert!(!rootfs.join("etc/ssh/ssh_host_ed25519_key").exists(), "host keys are made per sandbox");
    assert_eq!(store.get("base").as_ref(), Some(&layer));

    let chroot = |args: &[&str]| {
        std::process::Command::new("chroot")
            .arg(rootfs)
            .args(args)
            .env_clear()
            .envs(&layer.envs)
            .output()
            .expect("chroot")
    };
    let out = chroot(&["python3", "-c", "print(1)"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{out:?}");
    let out = chroot(&["sh", "-c", "unset S3_BUCKET; /usr/local/bin/mount-s3.sh"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("S3_BUCKET"), "{out:?}");
    let out = chroot(&["id", "-u", "user"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000");

    // A second call reuses the layer.
    let again = store.ensure_base(&progress).await.expect("reuse");
    assert_eq!(again, layer);
    let _ = std::fs::remove_dir_all(&root);
}
