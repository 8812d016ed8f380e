//! Pulls from a real registry: Debian's `docker-registry` (distribution 2.8) on a free loopback port with
//! filesystem storage in a temp dir, once open and once behind htpasswd basic auth. The test builds its
//! images itself (tar layers gzip/zstd/plain, OCI and Docker v2 manifests, an OCI index), pushes them with
//! plain HTTP requests, pulls them through a `docker.io=` mirror and by `127.0.0.1:PORT/...` as an
//! insecure registry, and mounts the pulled layers as a read-only overlay to check the merged view.
//! Needs root (whiteouts are device nodes, overlay mounts); CI runs as root and installs the packages
//! (`scripts/install-host-deps.sh`).

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nullspace_image::layers::LayerStore;
use nullspace_image::registry::{pull, ImageReference, PullEvent, PulledImage, RegistryAuth, RegistryConfig};
use serde_json::json;
use sha2::{Digest, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn tool(path: &str, package: &str) -> PathBuf {
    let found = which(path);
    found.unwrap_or_else(|| {
        panic!("{path} not found: install the Debian package `{package}` (scripts/install-host-deps.sh)")
    })
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
}

/// A `docker-registry` process, killed when dropped.
struct Registry {
    child: Child,
    port: u16,
    credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    async fn start(credentials: Option<(&str, &str)>) -> Registry {
        let binary = tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let htpasswd = tool("htpasswd", "apache2-utils");
            let out = Command::new(htpasswd).args(["-Bbn", user, password]).output().unwrap();
            assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            let path = dir.path().join("htpasswd");
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", path.display()));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let mut registry = Registry { child, port, credentials, dir };
        registry.wait_ready().await;
        registry
    }

    /// Waits until the registry answers `/v2/` (or fails if it exits).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}");
            }
            if client.get(self.url("/v2/")).send().await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "docker-registry did not answer on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The file the registry serves blob `digest` from (its filesystem storage layout).
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().request(method, url);
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let started =
            self.request(reqwest::Method::POST, &self.url(&format!("/v2/{repo}/blobs/uploads/"))).send().await;
        let started = started.unwrap();
        assert_eq!(started.status(), 202, "starting an upload: {:?}", started.text().await);
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") { location } else { self.url(&location) };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self.request(reqwest::Method::PUT, &format!("{location}{separator}digest={digest}"));
        let response =
            put.header("content-type", "application/octet-stream").body(bytes.to_vec()).send().await.unwrap();
        assert_eq!(response.status(), 201, "uploading a blob: {:?}", response.text().await);
        digest
    }

    async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        manifest: &serde_json::Value,
    ) -> String {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let response = self.request(reqwest::Method::PUT, &url).header("content-type", media_type).body(bytes.clone());
        let response = response.send().await.unwrap();
        assert_eq!(response.status(), 201, "pushing a manifest: {:?}", response.text().await);
        sha256(&bytes)
    }
}

/// A tar layer: (path, kind, content or link target, mode).
fn tar_layer(entries: &[(&str, tar::EntryType, &str, u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(*mode);
        header.set_mtime(1_600_000_000);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                header.set_size(0);
                builder.append_link(&mut header, path, data).unwrap();
            }
            _ => {
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_bytes()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The test images' content.
struct Images {
    /// The uncompressed layers, bottom first.
    tars: Vec<Vec<u8>>,
    oci_manifest_digest: String,
    index_digest: String,
}

/// Pushes to `repo`: `:oci` (OCI manifest: gzip, zstd and plain layers), `:multi` (an OCI index with an
/// arm64 image and `:oci` as amd64) and `:docker` (a Docker v2 manifest sharing `:oci`'s bottom layer).
async fn push_images(registry: &Registry, repo: &str) -> Images {
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};
    let base = tar_layer(&[
        ("etc/", D, "", 0o755),
        ("etc/keep", F, "base", 0o644),
        ("etc/deleted", F, "gone soon", 0o644),
        ("opq/", D, "", 0o755),
        ("opq/old1", F, "old", 0o644),
        ("opq/old2", F, "old", 0o644),
        ("link", S, "etc/keep", 0o777),
    ]);
    let change = tar_layer(&[
        ("etc/", D, "", 0o755),
        ("etc/.wh.deleted", F, "", 0o644),
        ("etc/added", F, "added", 0o644),
        ("opq/", D, "", 0o755),
        ("opq/.wh..wh..opq", F, "", 0o644),
        ("opq/new", F, "new", 0o644),
    ]);
    let links =
        tar_layer(&[("bin/", D, "", 0o755), ("bin/tool", F, "#!/bin/sh\n", 0o755), ("bin/alias", H, "bin/tool", 0)]);
    let blobs = [
        (gzip(&base), "application/vnd.oci.image.layer.v1.tar+gzip"),
        (zstd::encode_all(change.as_slice(), 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd"),
        (links.clone(), "application/vnd.oci.image.layer.v1.tar"),
    ];
    let tars = vec![base.clone(), change, links];
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", "MODE=test"], "Cmd": ["/bin/tool"], "WorkingDir": "/srv", "User": "1000",
                   "ExposedPorts": {"8080/tcp": {}}, "Labels": {"app": "demo"}, "Volumes": {"/data": {}},
                   "Healthcheck": {"Test": ["CMD", "/bin/tool"], "Interval": 5_000_000_000u64, "Retries": 2}},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| sha256(t)).collect::<Vec<_>>()}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = registry.push_blob(repo, &config).await;
    let mut layers = Vec::new();
    for (blob, media_type) in &blobs {
        let digest = registry.push_blob(repo, blob).await;
        layers.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
    }
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers
    });
    let oci_manifest_digest = registry.push_manifest(repo, "oci", OCI_MANIFEST, &manifest).await;
    let oci_manifest_size = serde_json::to_vec(&manifest).unwrap().len();

    // An arm64 image (one layer) and the index that offers both.
    let arm_layer = gzip(&tar_layer(&[("arm", F, "arm64", 0o644)]));
    let arm_layer_digest = registry.push_blob(repo, &arm_layer).await;
    let arm_config = json!({"architecture": "arm64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar_layer(&[("arm", F, "arm64", 0o644)]))]}});
    let arm_config = serde_json::to_vec(&arm_config).unwrap();
    let arm_config_digest = registry.push_blob(repo, &arm_config).await;
    let arm_manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": arm_config_digest, "size": arm_config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": arm_layer_digest, "size": arm_layer.len()}]
    });
    let arm_digest = registry.push_manifest(repo, "arm", OCI_MANIFEST, &arm_manifest).await;
    let arm_size = serde_json::to_vec(&arm_manifest).unwrap().len();
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": arm_size, "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": oci_manifest_digest, "size": oci_manifest_size, "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    });
    let index_digest = registry.push_manifest(repo, "multi", OCI_INDEX, &index).await;

    // A Docker v2 image whose bottom layer is `:oci`'s (same compressed blob).
    let docker_config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&base)]}});
    let docker_config = serde_json::to_vec(&docker_config).unwrap();
    let docker_config_digest = registry.push_blob(repo, &docker_config).await;
    let docker_manifest = json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": docker_config_digest, "size": docker_config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layers[0]["digest"], "size": blobs[0].0.len()}]
    });
    registry.push_manifest(repo, "docker", DOCKER_MANIFEST, &docker_manifest).await;
    Images { tars, oci_manifest_digest, index_digest }
}

fn is_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("skipping registry pull test: not root (whiteouts are device nodes; overlay mounts)");
    }
    root
}

/// Pulls, collecting the events.
async fn pull_events(
    store: &LayerStore,
    config: &RegistryConfig,
    reference: &str,
    auth: &RegistryAuth,
) -> (Result<PulledImage, nullspace_image::ImageError>, Vec<PullEvent>) {
    let events = Mutex::new(Vec::new());
    let record = |event: PullEvent| events.lock().unwrap().push(event);
    let reference = ImageReference::parse(reference).unwrap();
    let result = pull(store, config, &reference, auth, &record).await;
    (result, events.into_inner().unwrap())
}

/// A read-only overlay of `layers` (bottom first), unmounted when dropped.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(store: &LayerStore, layers: &[nullspace_image::layers::LayerId], target: &Path) -> Overlay {
        std::fs::create_dir_all(target).unwrap();
        let lower: Vec<String> = layers.iter().rev().map(|id| store.path(id).display().to_string()).collect();
        let options = format!("ro,lowerdir={}", lower.join(":"));
        let status =
            Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(target).status().unwrap();
        assert!(status.success(), "mount -t overlay -o {options}");
        Overlay(target.to_owned())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_through_a_mirror_and_an_insecure_registry_into_a_stackable_overlay() {
    if !is_root() {
        return;
    }
    let registry = Registry::start(None).await;
    let images = push_images(&registry, "library/app").await;
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::new(tmp.path().join("layers")).unwrap();
    let port = registry.port;

    // Through a docker.io mirror: `app:oci` is docker.io/library/app:oci.
    let mirror = RegistryConfig::from_flags(&[format!("docker.io=http://127.0.0.1:{port}")], &[]).unwrap();
    let (pulled, events) = pull_events(&store, &mirror, "app:oci", &RegistryAuth::Anonymous).await;
    let pulled = pulled.unwrap();
    let diff_ids: Vec<String> = images.tars.iter().map(|t| sha256(t)).collect();
    assert_eq!(pulled.layers.iter().map(|id| id.to_string()).collect::<Vec<_>>(), diff_ids);
    assert_eq!(pulled.manifest_digest, images.oci_manifest_digest);
    assert_eq!(pulled.index_digest, None);
    let c = &pulled.config;
    assert_eq!(
        (c.env.len(), c.cmd.as_deref(), c.working_dir.as_deref()),
        (2, Some(&["/bin/tool".to_owned()][..]), Some("/srv"))
    );
    assert_eq!(
        (c.user.as_deref(), c.exposed_ports.as_slice(), c.volumes.as_slice()),
        (Some("1000"), &["8080/tcp".to_owned()][..], &["/data".to_owned()][..])
    );
    assert_eq!(c.healthcheck.as_ref().map(|h| (h.interval_ns, h.retries)), Some((5_000_000_000, 2)));
    assert!(
        matches!(&events[0], PullEvent::Resolving { endpoint, .. } if endpoint == &format!("http://127.0.0.1:{port}"))
    );
    let published = events.iter().filter(|e| matches!(e, PullEvent::LayerPublished { .. })).count();
    assert_eq!(published, 3, "{events:?}");

    // The merged view: the whiteout deletes, the opaque dir hides the lower contents, links hold.
    let merged = tmp.path().join("merged");
    let overlay = Overlay::mount(&store, &pulled.layers, &merged);
    assert_eq!(std::fs::read_to_string(merged.join("etc/keep")).unwrap(), "base");
    assert_eq!(std::fs::read_to_string(merged.join("etc/added")).unwrap(), "added");
    assert!(!merged.join("etc/deleted").exists(), "the whiteout deletes etc/deleted");
    assert!(store.path(&pulled.layers[0]).join("etc/deleted").exists(), "the bottom layer still has it");
    let opq: HashSet<String> =
        std::fs::read_dir(merged.join("opq")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(opq, HashSet::from(["new".to_owned()]), "the opaque dir replaces old1/old2");
    assert_eq!(std::fs::read_to_string(merged.join("link")).unwrap(), "base");
    let (tool, alias) =
        (std::fs::metadata(merged.join("bin/tool")).unwrap(), std::fs::metadata(merged.join("bin/alias")).unwrap());
    assert_eq!((tool.ino(), tool.mode() & 0o777), (alias.ino(), 0o755));
    drop(overlay);

    // By host:port as an insecure registry (HTTPS is tried first, then plain HTTP): all layers cached.
    let insecure = RegistryConfig::from_flags(&[], &[format!("127.0.0.1:{port}")]).unwrap();
    let (again, events) =
        pull_events(&store, &insecure, &format!("127.0.0.1:{port}/library/app:oci"), &RegistryAuth::Anonymous).await;
    assert_eq!(again.unwrap().layers, pulled.layers);
    let cached = events.iter().filter(|e| matches!(e, PullEvent::LayerCached { .. })).count();
    assert_eq!(cached, 3, "{events:?}");
    let tried: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Resolving { endpoint, .. } => Some(endpoint.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tried, [format!("https://127.0.0.1:{port}"), format!("http://127.0.0.1:{port}")]);

    // An index resolves to its linux/amd64 image; a Docker v2 image shares the stored bottom layer.
    let (multi, _) = pull_events(&store, &mirror, "app:multi", &RegistryAuth::Anonymous).await;
    let multi = multi.unwrap();
    assert_eq!(
        (multi.manifest_digest.as_str(), multi.index_digest.as_deref()),
        (images.oci_manifest_digest.as_str(), Some(images.index_digest.as_str()))
    );
    let (docker, events) = pull_events(&store, &mirror, "app:docker", &RegistryAuth::Anonymous).await;
    assert_eq!(docker.unwrap().layers, pulled.layers[..1]);
    assert!(matches!(events.last(), Some(PullEvent::LayerCached { .. })), "{events:?}");
    assert_eq!(store.list().len(), 3, "one copy of each content");

    // An arm64-only image is refused; unknown tags and repositories are image_not_found.
    let (arm, _) = pull_events(&store, &mirror, "app:arm", &RegistryAuth::Anonymous).await;
    assert_eq!(arm.unwrap_err().code(), "unsupported_platform");
    for missing in ["app:nope", "nothing/here:1"] {
        let (result, _) = pull_events(&store, &mirror, missing, &RegistryAuth::Anonymous).await;
        let error = result.unwrap_err();
        assert_eq!(error.code(), "image_not_found", "{missing}: {error}");
    }
    assert_eq!(store.list().len(), 3);
    assert_eq!(std::fs::read_dir(store.root()).unwrap().count(), 3, "no staging left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_used_and_wrong_credentials_are_registry_unauthorized() {
    if !is_root() {
        return;
    }
    let registry = Registry::start(Some(("builder", "s3cret"))).await;
    push_images(&registry, "team/app").await;
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::new(tmp.path().join("layers")).unwrap();
    let port = registry.port;
    let config = RegistryConfig::from_flags(&[], &[format!("127.0.0.1:{port}")]).unwrap();
    let reference = format!("127.0.0.1:{port}/team/app:oci");
    let wrong = RegistryAuth::Basic { username: "builder".into(), password: "wrong".into() };
    for auth in [wrong, RegistryAuth::Anonymous] {
        let (result, _) = pull_events(&store, &config, &reference, &auth).await;
        let error = result.unwrap_err();
        assert_eq!(error.code(), "registry_unauthorized", "{auth:?}: {error}");
        assert!(error.to_string().contains("password"), "the message says what to check: {error}");
    }
    let request = json!({"kind": "basic", "username": "builder", "password": "s3cret"});
    let right = RegistryAuth::from_request(&request).unwrap();
    let (result, _) = pull_events(&store, &config, &reference, &right).await;
    assert_eq!(result.unwrap().layers.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blobs_and_lying_configs_are_digest_mismatches_and_nothing_is_published() {
    if !is_root() {
        return;
    }
    let registry = Registry::start(None).await;
    let images = push_images(&registry, "library/app").await;
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::new(tmp.path().join("layers")).unwrap();
    let mirror = RegistryConfig::from_flags(&[format!("docker.io=http://127.0.0.1:{}", registry.port)], &[]).unwrap();

    // A config whose diff_id does not match the (intact) layer's content.
    let layer = gzip(&tar_layer(&[("f", tar::EntryType::Regular, "content", 0o644)]));
    let layer_digest = registry.push_blob("library/liar", &layer).await;
    let claimed = sha256(b"not the layer");
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [claimed]}});
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = registry.push_blob("library/liar", &config).await;
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
    });
    registry.push_manifest("library/liar", "1", OCI_MANIFEST, &manifest).await;
    let (result, _) = pull_events(&store, &mirror, "liar:1", &RegistryAuth::Anonymous).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "digest_mismatch", "{error}");
    assert!(store.list().is_empty());

    // The registry serves a blob whose bytes no longer match its digest (same length).
    let top_digest = sha256(&images.tars[2]);
    let blob = registry.blob_file(&top_digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 600;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let (result, _) = pull_events(&store, &mirror, "app:oci", &RegistryAuth::Anonymous).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "digest_mismatch", "{error}");
    assert!(!store.list().iter().any(|layer| layer.id.to_string() == top_digest), "the corrupt layer is not stored");
    let staging = std::fs::read_dir(store.root())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'));
    assert_eq!(staging.count(), 0, "no staging left behind");
}

#[tokio::test]
async fn an_unreachable_registry_says_how_to_reach_one() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::new(tmp.path().join("layers")).unwrap();
    let config = RegistryConfig::from_flags(&[], &[format!("127.0.0.1:{port}")]).unwrap();
    let (result, _) = pull_events(&store, &config, &format!("127.0.0.1:{port}/x:1"), &RegistryAuth::Anonymous).await;
    let error = result.unwrap_err();
    assert_eq!(error.code(), "registry_unreachable", "{error}");
    assert!(error.to_string().contains("--registry-mirror"), "{error}");
}
