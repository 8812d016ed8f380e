//! Which OCI runtimes work on this host, found by starting a real throw-away container with the same
//! spec every sandbox gets (namespaces, cgroup limits, seccomp, capabilities), and the choice of one.
//!
//! The probe's rootfs is an empty temporary directory whose `/usr` (and `/bin`, `/lib`, ... when they
//! are not symlinks into it) are read-only bind mounts of the host's, made by the runtime inside the
//! container's mount namespace: nothing is mounted on the host, and dropping the temporary directory
//! plus `destroy` removes everything the probe created.
//!
//! `select("auto")` takes the strongest runtime (gVisor, then runc, then crun) that works on this host and
//! serves every feature the server offers ([`crate::Feature`]); a stronger runtime that lacks a feature is
//! named in the choice's explanation, with what it lacks. Only when no full-featured runtime works does
//! `auto` fall back to the strongest one that works at all, and say what is missing. crun refuses hybrid
//! cgroup hosts, which the probe reports.

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
    /// Why this runtime: what was passed over and why, and what the chosen one lacks, if anything.
    pub explanation: String,
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
        return select_auto().await;
    }
    let kind = RuntimeKind::parse(&requested).ok_or(RuntimeError::UnknownRuntime { requested })?;
    let p = probe(kind).await;
    if p.works {
        let explanation = match kind.lacks() {
            [] => format!("{kind} was asked for and serves every feature"),
            lacks => format!("{kind} was asked for; its sandboxes lack {}", crate::features::listed(lacks)),
        };
        Ok(RuntimeChoice { kind, probes: vec![p], explanation })
    } else {
        Err(RuntimeError::Unavailable { kind, reason: p.reason })
    }
}

/// `auto`: the strongest full-featured runtime that works; runtimes lacking a feature are not even
/// probed unless none of the others works (a probe of gVisor costs a few hundred milliseconds at start).
async fn select_auto() -> Result<RuntimeChoice, RuntimeError> {
    let mut probes = Vec::new();
    for full in [true, false] {
        for kind in RuntimeKind::BY_STRENGTH.into_iter().filter(|kind| kind.serves_everything() == full) {
            let p = probe(kind).await;
            let works = p.works;
            probes.push(p);
            if works {
                return choose_auto(probes);
            }
        }
    }
    choose_auto(probes)
}

/// What `auto` chooses given `probes` (of any runtimes, in any order), with its explanation: the strongest
/// working runtime that serves every feature, else the strongest working one. `nullspace doctor` calls
/// this with a probe of every runtime.
pub fn choose_auto(probes: Vec<Probe>) -> Result<RuntimeChoice, RuntimeError> {
    let works = |kind: RuntimeKind| probes.iter().any(|p| p.kind == kind && p.works);
    let best =
        |full: bool| RuntimeKind::BY_STRENGTH.into_iter().find(|kind| kind.serves_everything() == full && works(*kind));
    let listed = crate::features::listed;
    if let Some(kind) = best(true) {
        let passed_over: Vec<String> = RuntimeKind::BY_STRENGTH
            .iter()
            .take_while(|stronger| **stronger != kind)
            .map(|stronger| match stronger.lacks() {
                [] => format!("{stronger} does not work here"),
                lacks => format!("{stronger} isolates more strongly but lacks {}", listed(lacks)),
            })
            .collect();
        let mut explanation = format!("{kind} is the strongest runtime that works here and serves every feature");
        if !passed_over.is_empty() {
            explanation.push_str(&format!(" ({})", passed_over.join("; ")));
        }
        return Ok(RuntimeChoice { kind, probes, explanation });
    }
    if let Some(kind) = best(false) {
        let explanation = format!(
            "no runtime serving every feature works here ({}); {kind} does, and its sandboxes lack {}",
            failures(&probes),
            listed(kind.lacks())
        );
        return Ok(RuntimeChoice { kind, probes, explanation });
    }
    Err(RuntimeError::NoneAvailable { reasons: failures(&probes) })
}

fn failures(probes: &[Probe]) -> String {
    probes.iter().filter(|p| !p.works).map(|p| format!("{}: {}", p.kind, p.reason)).collect::<Vec<_>>().join("; ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_of(kind: RuntimeKind, works: bool) -> Probe {
        Probe { kind, works, reason: if works { "ok".into() } else { "missing".into() }, start_ms: None }
    }

    #[test]
    fn auto_passes_over_a_stronger_runtime_that_lacks_features() {
        let probes = RuntimeKind::ALL.into_iter().map(|kind| probe_of(kind, kind != RuntimeKind::Crun)).collect();
        let choice = choose_auto(probes).unwrap();
        assert_eq!(choice.kind, RuntimeKind::Runc);
        assert!(
            choice.explanation.contains("runsc isolates more strongly but lacks sandbox networking"),
            "{}",
            choice.explanation
        );
    }

    #[test]
    fn auto_takes_crun_when_runc_fails_and_says_so() {
        let probes = vec![probe_of(RuntimeKind::Runc, false), probe_of(RuntimeKind::Crun, true)];
        let choice = choose_auto(probes).unwrap();
        assert_eq!(choice.kind, RuntimeKind::Crun);
        assert!(choice.explanation.contains("runc does not work here"), "{}", choice.explanation);
    }

    #[test]
    fn auto_falls_back_to_a_runtime_lacking_features_and_names_them() {
        let probes = vec![
            probe_of(RuntimeKind::Runc, false),
            probe_of(RuntimeKind::Crun, false),
            probe_of(RuntimeKind::Runsc, true),
        ];
        let choice = choose_auto(probes).unwrap();
        assert_eq!(choice.kind, RuntimeKind::Runsc);
        assert!(
            choice.explanation.contains("lack sandbox networking and live volume attach"),
            "{}",
            choice.explanation
        );
        assert!(choice.explanation.contains("runc: missing"), "{}", choice.explanation);
    }

    #[test]
    fn auto_fails_when_nothing_works() {
        let probes = RuntimeKind::ALL.into_iter().map(|kind| probe_of(kind, false)).collect();
        assert!(matches!(choose_auto(probes), Err(RuntimeError::NoneAvailable { .. })));
    }
}
