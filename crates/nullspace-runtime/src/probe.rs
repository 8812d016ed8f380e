//! Which OCI runtimes work on this host, found by starting a real throw-away container with the same
//! spec every sandbox gets (namespaces, cgroup limits, seccomp, capabilities), and the choice of one.
//!
//! The probe's rootfs is an empty temporary directory whose `/usr` (and `/bin`, `/lib`, ... when they
//! are not symlinks into it) are read-only bind mounts of the host's, made by the runtime inside the
//! container's mount namespace: nothing is mounted on the host, and dropping the temporary directory
//! plus `destroy` removes everything the probe created.
//!
//! `select("auto")` takes the first runtime that works in the order runc, crun, runsc. runsc (gVisor)
//! isolates more strongly, but it starts several times slower and the guest daemon is not yet tested
//! under it; it moves to the front once the runtime conformance suite passes on it. crun refuses
//! hybrid cgroup hosts, which the probe reports.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::oci::OciRuntime;
use crate::spec::{BindMount, Limits, RuntimeKind, SandboxSpec};
use crate::IsolationRuntime;

/// What the probe's container prints; seeing it proves the init process really ran.
const MARKER: &str = "nullspace-probe-ok";
/// Longest wait for the probe's container to print and exit.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// The outcome of probing one runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The runtime probed.
    pub kind: RuntimeKind,
    /// It started a sandbox-like container that ran to completion.
    pub works: bool,
    /// Why it works (binary path and version) or why not.
    pub reason: String,
    /// Time `start` took, in milliseconds, when it succeeded.
    pub start_ms: Option<u64>,
}

/// The runtime chosen and the probes behind the choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeChoice {
    /// The chosen runtime.
    pub kind: RuntimeKind,
    /// Probes run to choose, in order.
    pub probes: Vec<Probe>,
}

/// Probes every runtime kind, for `nullspace doctor`.
pub async fn probe_all() -> Vec<Probe> {
    let mut out = Vec::new();
    for kind in RuntimeKind::ALL {
        out.push(probe(kind).await);
    }
    out
}

/// Chooses the runtime for `requested` (`auto`, `runc`, `crun` or `runsc`); a named runtime must work.
pub async fn select(requested: &str) -> Result<RuntimeChoice, RuntimeError> {
    let requested = requested.trim().to_ascii_lowercase();
    if requested == "auto" {
        let mut probes = Vec::new();
        for kind in RuntimeKind::ALL {
            let p = probe(kind).await;
            let works = p.works;
            probes.push(p);
            if works {
                return Ok(RuntimeChoice { kind, probes });
            }
        }
        let reasons = probes.iter().map(|p| format!("{}: {}", p.kind, p.reason)).collect::<Vec<_>>().join("; ");
        return Err(RuntimeError::NoneAvailable { reasons });
    }
    let kind = RuntimeKind::parse(&requested).ok_or(RuntimeError::UnknownRuntime { requested })?;
    let p = probe(kind).await;
    if p.works {
        Ok(RuntimeChoice { kind, probes: vec![p] })
    } else {
        Err(RuntimeError::Unavailable { kind, reason: p.reason })
    }
}

/// Starts a container running `/bin/sh -c 'echo …'` with `kind`, waits for its output, destroys it.
pub async fn probe(kind: RuntimeKind) -> Probe {
    let fail = |reason: String| Probe { kind, works: false, reason, start_ms: None };
    let Some(binary) = kind.find_binary() else {
        return fail(format!("{} not found in PATH or the sbin directories", kind.binary_name()));
    };
    let version = version_line(&binary).await;
    match run_probe(kind, &binary).await {
        Ok(ms) => Probe {
            kind,
            works: true,
            reason: format!("{} ({version}) started a test sandbox", binary.display()),
            start_ms: Some(ms),
        },
        Err(reason) => fail(format!("{} ({version}): {reason}", binary.display())),
    }
}

async fn version_line(binary: &Path) -> String {
    let out = tokio::process::Command::new(binary).arg("--version").kill_on_drop(true).output();
    match tokio::time::timeout(Duration::from_secs(10), out).await {
        Ok(Ok(o)) => String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string(),
        _ => "version unknown".to_string(),
    }
}

async fn run_probe(kind: RuntimeKind, binary: &Path) -> Result<u64, String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let tmp = tempfile::Builder::new().prefix("nullspace-probe-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let (bundle, rootfs) = (tmp.path().join("bundle"), tmp.path().join("rootfs"));
    let mounts = host_rootfs(&rootfs).map_err(|e| format!("building the probe rootfs: {e}"))?;
    std::fs::create_dir(&bundle).map_err(|e| format!("creating the probe bundle: {e}"))?;
    let id = format!("probe-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let spec = SandboxSpec {
        id: id.clone(),
        bundle_dir: bundle.clone(),
        rootfs,
        hostname: "nullspace-probe".into(),
        args: vec!["/bin/sh".into(), "-c".into(), format!("echo {MARKER}")],
        env: Vec::new(),
        mounts,
        limits: Limits { vcpus: 1, memory_mb: 128, pids: 64 },
        no_new_privileges: true,
        netns: None,
        userns: None,
    };
    let runtime = OciRuntime::new(kind, tmp.path().join("state")).with_binary(binary.to_path_buf());

    let started = Instant::now();
    let result = runtime.start(&spec).await;
    let ms = started.elapsed().as_millis() as u64;
    let outcome = match result {
        Ok(()) => wait_for_marker(&runtime, &id, &bundle.join("init.log")).await.map(|()| ms),
        Err(e) => Err(error_chain(&e)),
    };
    if let Err(e) = runtime.destroy(&id).await {
        tracing::warn!(error = %error_chain(&e), runtime = %kind, "cleanup of the probe container");
    }
    outcome
}

async fn wait_for_marker(runtime: &OciRuntime, id: &str, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + EXIT_WAIT;
    loop {
        let printed = std::fs::read_to_string(log).is_ok_and(|s| s.contains(MARKER));
        if printed {
            return Ok(());
        }
        let stopped = matches!(runtime.status(id).await.ok().flatten().as_deref(), None | Some("stopped"));
        if stopped || Instant::now() >= deadline {
            // Read once more: the output may have landed between the two checks.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains(MARKER) {
                return Ok(());
            }
            let text = text.trim();
            return Err(if text.is_empty() {
                "the test sandbox started but printed nothing".to_string()
            } else {
                format!("the test sandbox failed: {text}")
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Prepares `rootfs` to show the host's /usr and friends: symlinks stay symlinks, directories become
/// read-only bind mounts (returned, for the container spec).
pub(crate) fn host_rootfs(rootfs: &Path) -> std::io::Result<Vec<BindMount>> {
    std::fs::create_dir_all(rootfs)?;
    let mut mounts = Vec::new();
    for name in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&host)?, rootfs.join(name))?;
        } else if meta.is_dir() {
            mounts.push(BindMount { source: host, destination: format!("/{name}"), read_only: true });
        }
    }
    Ok(mounts)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
