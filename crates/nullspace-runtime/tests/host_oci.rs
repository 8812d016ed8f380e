//! Host tests: real containers through runc, as root (CI runs them in the normal `cargo test`). Each
//! test skips with a printed message only when runc is missing or we are not root. The rootfs is an
//! empty directory plus read-only bind mounts of the host's /usr (made inside the container's mount
//! namespace, so nothing is mounted on the host).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nullspace_runtime::{
    probe, select, BindMount, IsolationRuntime, Limits, OciRuntime, RuntimeError, RuntimeKind, SandboxSpec,
};

/// Probes of concurrently running tests would show up in each other's leftover checks.
static PROBE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn runc_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if RuntimeKind::Runc.find_binary().is_none() || !root {
        eprintln!("SKIPPED: host runtime tests need root and runc (apt-get install runc)");
        return false;
    }
    true
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    runtime: OciRuntime,
    spec: SandboxSpec,
}

fn sandbox(name: &str, args: &[&str]) -> Sandbox {
    let tmp = tempfile::Builder::new().prefix("nullspace-rt-test-").tempdir().unwrap();
    let (bundle, rootfs) = (tmp.path().join("bundle"), tmp.path().join("rootfs"));
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::create_dir_all(&rootfs).unwrap();
    let mut mounts = Vec::new();
    for name in ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&host).unwrap(), rootfs.join(name)).unwrap();
        } else if meta.is_dir() {
            mounts.push(BindMount { source: host, destination: format!("/{name}"), read_only: true });
        }
    }
    let id = format!("nstest-{name}-{}", std::process::id());
    let spec = SandboxSpec {
        id,
        bundle_dir: bundle,
        rootfs,
        hostname: format!("test-{name}"),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["HOME=/root".into()],
        mounts,
        limits: Limits { vcpus: 1, memory_mb: 256, pids: 128 },
        no_new_privileges: true,
        netns: None,
        userns: None,
    };
    let runtime = OciRuntime::new(RuntimeKind::Runc, tmp.path().join("state"));
    Sandbox { _tmp: tmp, runtime, spec }
}

fn cgroup_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            matches!(f.get(2), Some(&"cgroup") | Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .collect()
}

fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_mounts().into_iter().map(|m| m.join("nullspace").join(id)).filter(|d| d.exists()).collect()
}

fn memory_limit(id: &str) -> Option<String> {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/memory/nullspace/{id}/memory.limit_in_bytes"));
    let v2 = PathBuf::from(format!("/sys/fs/cgroup/nullspace/{id}/memory.max"));
    [v1, v2].iter().find_map(|p| std::fs::read_to_string(p).ok()).map(|s| s.trim().to_string())
}

async fn wait_for_log(bundle: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(bundle.join("init.log")).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie is dead; it only waits for its (non-subreaper) parent.
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn start_list_limit_destroy() {
    if !runc_available() {
        return;
    }
    let script = "echo lo=$(cat /sys/class/net/lo/flags); grep CapEff /proc/self/status; \
                  echo host=$(cat /proc/sys/kernel/hostname); \
                  unshare -U true 2>/dev/null && echo unshare=allowed || echo unshare=denied; \
                  setarch $(uname -m) -R true && echo no_aslr=allowed; \
                  setarch $(uname -m) -X true 2>/dev/null && echo rie=allowed || echo rie=denied; \
                  if command -v python3 >/dev/null; then python3 -c \"$PY\"; else echo loopback=skipped; fi; \
                  echo ready; exec sleep 30";
    let sb = sandbox("sleep", &["/bin/sh", "-c", script]);
    // 127.0.0.1 works in the new netns; threads work although clone3 returns ENOSYS.
    let py = "import socket, threading\n\
              s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
              c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b'x')\n\
              t = threading.Thread(target=lambda: None); t.start(); t.join()\n\
              print('loopback=' + ('ok' if a.recv(1) == b'x' else 'broken'))";
    let mut sb = sb;
    sb.spec.env.push(format!("PY={py}"));
    let (rt, spec) = (&sb.runtime, &sb.spec);

    let t = Instant::now();
    rt.start(spec).await.unwrap();
    let start_ms = t.elapsed().as_millis();

    assert_eq!(rt.list().await.unwrap(), vec![spec.id.clone()]);
    let info = rt.containers().await.unwrap().pop().unwrap();
    assert_eq!(info.status, "running");
    assert!(process_alive(info.pid));
    assert_eq!(memory_limit(&spec.id).as_deref(), Some("268435456"));
    if Path::new("/sys/fs/cgroup/pids/nullspace").exists() {
        let pids = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/nullspace/{}/pids.max", spec.id)).unwrap();
        assert_eq!(pids.trim(), "128");
    }

    let log = wait_for_log(&spec.bundle_dir, "ready").await;
    assert!(log.contains("lo=0x9"), "loopback must be up in the new netns: {log}");
    assert!(
        log.contains("CapEff:\t00000000200405fb"),
        "docker default capabilities minus MKNOD, NET_RAW, SETFCAP: {log}"
    );
    assert!(log.contains("host=test-sleep"), "{log}");
    assert!(log.contains("loopback=ok") || log.contains("loopback=skipped"), "{log}");
    assert!(log.contains("unshare=denied"), "seccomp must deny unshare: {log}");

    let t = Instant::now();
    rt.destroy(&spec.id).await.unwrap();
    let destroy_ms = t.elapsed().as_millis();
    eprintln!("runc start {start_ms} ms, destroy {destroy_ms} ms");

    assert!(rt.list().await.unwrap().is_empty());
    assert!(cgroup_dirs(&spec.id).is_empty(), "cgroups left: {:?}", cgroup_dirs(&spec.id));
    assert!(!process_alive(info.pid), "init process {} survived destroy", info.pid);
    // Idempotent.
    rt.destroy(&spec.id).await.unwrap();
}

#[tokio::test]
async fn destroy_unknown_id_succeeds() {
    if !runc_available() {
        return;
    }
    let sb = sandbox("unknown", &["/bin/true"]);
    // State root does not exist yet.
    sb.runtime.destroy("sb_does_not_exist").await.unwrap();
    assert!(sb.runtime.list().await.unwrap().is_empty());
    // State root exists, id does not.
    std::fs::create_dir_all(sb.runtime.state_root()).unwrap();
    sb.runtime.destroy("sb_does_not_exist").await.unwrap();
    assert!(sb.runtime.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn failed_start_reports_and_leaves_nothing() {
    if !runc_available() {
        return;
    }
    let sb = sandbox("fail", &["/no/such/binary"]);
    let err = sb.runtime.start(&sb.spec).await.unwrap_err();
    match &err {
        RuntimeError::Start { id, stderr } => {
            assert_eq!(id, &sb.spec.id);
            assert!(stderr.contains("/no/such/binary"), "{stderr}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(sb.runtime.list().await.unwrap().is_empty());
    assert!(cgroup_dirs(&sb.spec.id).is_empty());
}

#[tokio::test]
async fn probe_and_select_runc() {
    if !runc_available() {
        return;
    }
    let _probing = PROBE_LOCK.lock().await;
    let p = probe(RuntimeKind::Runc).await;
    assert!(p.works, "{}", p.reason);
    eprintln!("probe: {p:?}");
    assert!(p.start_ms.is_some());
    let choice = select("auto").await.unwrap();
    assert_eq!(choice.kind, RuntimeKind::Runc);
    assert_eq!(select("runc").await.unwrap().kind, RuntimeKind::Runc);
    assert!(matches!(select("docker").await, Err(RuntimeError::UnknownRuntime { .. })));
    // The probes cleaned up after themselves.
    let leftovers: Vec<_> = cgroup_mounts()
        .into_iter()
        .filter_map(|m| std::fs::read_dir(m.join("nullspace")).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("probe-{}-", std::process::id())))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn destroy_removes_orphan_cgroups_and_their_processes() {
    if !runc_available() {
        return;
    }
    // What a runtime killed half-way leaves behind: cgroup dirs (one with a child cgroup) and a live
    // process inside one of them, but no container state.
    let sb = sandbox("orphan", &["/bin/true"]);
    let id = sb.spec.id.clone();
    let mounts = cgroup_mounts();
    let dirs: Vec<PathBuf> =
        mounts.iter().filter(|m| m.join("cgroup.procs").exists()).map(|m| m.join("nullspace").join(&id)).collect();
    assert!(!dirs.is_empty(), "no writable cgroup hierarchy: {mounts:?}");
    for d in &dirs {
        std::fs::create_dir_all(d.join("child")).unwrap();
    }
    let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(dirs[0].join("child").join("cgroup.procs"), sleeper.id().to_string()).unwrap();

    sb.runtime.destroy(&id).await.unwrap();

    assert!(cgroup_dirs(&id).is_empty(), "cgroups left: {:?}", cgroup_dirs(&id));
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the straggler was killed");
}

#[tokio::test]
async fn probe_all_reports_every_kind() {
    if !runc_available() {
        return;
    }
    let _probing = PROBE_LOCK.lock().await;
    let probes = nullspace_runtime::probe_all().await;
    for p in &probes {
        eprintln!("probe {}: works={} start_ms={:?} {}", p.kind, p.works, p.start_ms, p.reason);
        assert!(!p.reason.is_empty());
        assert_eq!(p.works, p.start_ms.is_some());
    }
    let kinds: Vec<RuntimeKind> = probes.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, RuntimeKind::ALL);
    assert!(probes[0].works, "runc must work here: {}", probes[0].reason);
}

#[tokio::test]
async fn runsc_start_list_destroy_when_installed() {
    if !runc_available() {
        return;
    }
    let Some(binary) = RuntimeKind::Runsc.find_binary() else {
        eprintln!("SKIPPED: runsc is not installed");
        return;
    };
    let mut sb = sandbox("runsc", &["/bin/sh", "-c", "echo ready; exec sleep 30"]);
    sb.runtime = OciRuntime::new(RuntimeKind::Runsc, sb.runtime.state_root().to_path_buf()).with_binary(binary);
    let (rt, spec) = (&sb.runtime, &sb.spec);
    let t = Instant::now();
    rt.start(spec).await.unwrap();
    let start_ms = t.elapsed().as_millis();
    assert_eq!(rt.list().await.unwrap(), vec![spec.id.clone()]);
    assert!(wait_for_log(&spec.bundle_dir, "ready").await.contains("ready"));
    let t = Instant::now();
    rt.destroy(&spec.id).await.unwrap();
    eprintln!("runsc start {start_ms} ms, destroy {} ms", t.elapsed().as_millis());
    assert!(rt.list().await.unwrap().is_empty());
    assert!(cgroup_dirs(&spec.id).is_empty(), "cgroups left: {:?}", cgroup_dirs(&spec.id));
}

#[tokio::test]
async fn live_mounts_attach_probe_and_detach_inside_the_sandbox_only() {
    if !runc_available() {
        return;
    }
    let sb = sandbox("livemount", &["/bin/sh", "-c", "echo ready; exec sleep 60"]);
    let id = sb.spec.id.clone();
    sb.runtime.start(&sb.spec).await.unwrap();
    assert!(wait_for_log(&sb.spec.bundle_dir, "ready").await.contains("ready"));
    let pid = sb.runtime.containers().await.unwrap().into_iter().find(|c| c.id == id).unwrap().pid;
    let inside = |path: &str| PathBuf::from(format!("/proc/{pid}/root{path}"));
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("f"), "hello").unwrap();
    let open = || std::fs::File::open(volume.path()).map(std::os::fd::OwnedFd::from).unwrap();
    // runc 1.1 binds its own binary read-only over a `runc.XXXXXX` file in its state dir while a container
    // starts (its CVE-2019-5736 guard): transient mounts of the other tests' containers, left out here.
    let host_mounts = || {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let runc_guard = |line: &&str| {
            let mount_point = line.split(' ').nth(4).unwrap_or_default();
            mount_point.rsplit('/').next().is_some_and(|name| name.starts_with("runc."))
        };
        table.lines().filter(|line| !runc_guard(line)).collect::<Vec<_>>().join("\n")
    };
    let host_before = host_mounts();

    // Read-only: the files are there, writing fails, the host's mount table does not change.
    sb.runtime.mount_live(&id, open(), "/mnt/data/ro", true).await.unwrap();
    assert_eq!(std::fs::read_to_string(inside("/mnt/data/ro/f")).unwrap(), "hello");
    let denied = std::fs::write(inside("/mnt/data/ro/new"), "x").unwrap_err();
    assert_eq!(denied.raw_os_error(), Some(libc::EROFS), "{denied}");
    assert!(sb.runtime.probe_live_mount(&id, "/mnt/data/ro", open()).await.unwrap());
    assert!(!sb.runtime.probe_live_mount(&id, "/mnt/data", open()).await.unwrap());
    assert!(!sb.runtime.probe_live_mount(&id, "/nowhere", open()).await.unwrap());
    assert_eq!(host_mounts(), host_before);

    // Read-write: writes land in the host directory.
    sb.runtime.mount_live(&id, open(), "/rw", false).await.unwrap();
    std::fs::write(inside("/rw/written"), "from inside").unwrap();
    assert_eq!(std::fs::read_to_string(volume.path().join("written")).unwrap(), "from inside");

    // A symlink planted on the way is refused (it could point at a path the runtime owns).
    std::os::unix::fs::symlink("/mnt", sb.spec.rootfs.join("link")).unwrap();
    let refused = sb.runtime.mount_live(&id, open(), "/link/x", false).await.unwrap_err();
    assert!(matches!(refused, RuntimeError::MountPoint { .. }), "{refused:?}");
    assert!(!sb.spec.rootfs.join("mnt/x").exists());

    // Detach: gone inside, a second detach finds nothing, the volume's files stay.
    assert!(sb.runtime.unmount_live(&id, "/mnt/data/ro", Some(open())).await.unwrap());
    assert!(!inside("/mnt/data/ro/f").exists());
    assert!(!sb.runtime.probe_live_mount(&id, "/mnt/data/ro", open()).await.unwrap());
    assert!(!sb.runtime.unmount_live(&id, "/mnt/data/ro", None).await.unwrap());
    assert!(volume.path().join("f").exists());

    // An unmount never follows a symlink the sandbox planted, and with a source it only removes a mount
    // of that directory.
    std::os::unix::fs::symlink("/", sb.spec.rootfs.join("up")).unwrap();
    assert!(sb.runtime.probe_live_mount(&id, "/up/rw", open()).await.unwrap(), "a probe resolves inside the root");
    assert!(!sb.runtime.unmount_live(&id, "/up/rw", None).await.unwrap());
    let other = tempfile::tempdir().unwrap();
    let other_fd = std::fs::File::open(other.path()).map(std::os::fd::OwnedFd::from).unwrap();
    assert!(!sb.runtime.unmount_live(&id, "/rw", Some(other_fd)).await.unwrap());
    assert!(sb.runtime.probe_live_mount(&id, "/rw", open()).await.unwrap(), "still mounted");

    // A rename of a parent moves the mount; the mount table finds it where it went.
    sb.runtime.mount_live(&id, open(), "/p/q/vol", false).await.unwrap();
    std::fs::rename(sb.spec.rootfs.join("p"), sb.spec.rootfs.join("p2")).unwrap();
    let mut found = sb.runtime.find_live_mounts(&id, open()).await.unwrap();
    found.sort();
    assert_eq!(found, ["/p2/q/vol", "/rw"]);
    assert!(sb.runtime.unmount_live(&id, "/p2/q/vol", Some(open())).await.unwrap());
    assert_eq!(sb.runtime.find_live_mounts(&id, open()).await.unwrap(), ["/rw"]);

    sb.runtime.destroy(&id).await.unwrap();
    let gone = sb.runtime.mount_live(&id, open(), "/late", false).await.unwrap_err();
    assert!(matches!(gone, RuntimeError::NotRunning { .. }), "{gone:?}");
    assert_eq!(host_mounts(), host_before);
}
