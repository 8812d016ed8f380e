//! Named network namespaces (`/run/netns/<name>`, the layout iproute2 uses): creating one without
//! spawning `ip`, their paths, deletion, running code inside one on a short-lived thread (`setns` and
//! `unshare` only ever on a thread this module owns), and sysctls set from inside.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;

use super::command::{self, Tool};
use super::error::NetworkError;

/// Where iproute2 keeps named network namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Path of a named namespace.
pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the named namespace `name` as `ip netns add` does (a new network namespace kept alive by a
/// bind mount at `/run/netns/<name>`, under a shared mount of that directory so that it shows in mount
/// namespaces made later) and writes `sysctls` inside it before any interface exists. Blocking: one
/// short-lived thread and a few syscalls instead of a process. With `existing` (a network namespace made
/// elsewhere, e.g. owned by a sandbox's user namespace) that one is named and set up instead.
pub(crate) fn create(
    name: &str,
    sysctls: &'static [(&'static str, &'static str)],
    existing: Option<std::fs::File>,
) -> Result<PathBuf, NetworkError> {
    ensure_shared_dir()?;
    let target = path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&target)
        .map_err(NetworkError::io("creating", &target))?;
    let pin = target.clone();
    let made = std::thread::spawn(move || {
        let errno = |operation, path: &Path| {
            let path = path.to_path_buf();
            move |e: nix::Error| NetworkError::Io { operation, path, source: std::io::Error::from(e) }
        };
        match existing {
            Some(netns) => nix::sched::setns(netns, CloneFlags::CLONE_NEWNET)
                .map_err(errno("joining the network namespace for", &pin))?,
            None => nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(errno("unsharing the network namespace for", &pin))?,
        }
        write_sysctls(sysctls)?;
        let own = Path::new("/proc/thread-self/ns/net");
        mount(Some(own), &pin, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(errno("bind-mounting the network namespace at", &pin))
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    match made {
        Ok(()) => Ok(target),
        Err(error) => {
            let _ = std::fs::remove_file(&target);
            Err(error)
        }
    }
}

/// `/run/netns` exists and is a shared mount (a bind mount of itself when it is not a mount point yet),
/// as iproute2 leaves it, so namespaces pinned there are visible in mount namespaces created later.
fn ensure_shared_dir() -> Result<(), NetworkError> {
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir).map_err(NetworkError::io("creating", dir))?;
    let share = || mount(None::<&str>, dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    let shared = match share() {
        Err(nix::Error::EINVAL) => {
            mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).and_then(|()| share())
        }
        other => other,
    };
    shared.map_err(|e| NetworkError::Io { operation: "sharing the mount of", path: dir.into(), source: e.into() })
}

/// Deletes the named namespace if it exists (its interfaces go with it once nothing runs inside).
pub(crate) async fn delete(name: &str) -> Result<(), NetworkError> {
    if !path(name).exists() {
        return Ok(());
    }
    match command::run(Tool::Ip, &["netns", "delete", name], None).await {
        Err(_) if !path(name).exists() => Ok(()),
        other => other.map(drop),
    }
}

/// Names of the named namespaces starting with `prefix`.
pub(crate) fn list(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    let mut names: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with(prefix)).collect();
    names.sort();
    names
}

/// Runs `f` on a new thread that has joined the network namespace at `netns`.
pub(crate) fn run_in<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetworkError> {
    let file = std::fs::File::open(netns).map_err(NetworkError::io("opening", netns))?;
    let owned = netns.to_path_buf();
    std::thread::spawn(move || {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|source| NetworkError::EnterNamespace { path: owned, source })?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Writes `(key, value)` sysctls (paths below `/proc/sys/`) of the calling thread's network namespace
/// (inside [`run_in`]).
pub(crate) fn write_sysctls(values: &[(&str, &str)]) -> Result<(), NetworkError> {
    for (key, value) in values {
        let path = Path::new("/proc/sys").join(key);
        std::fs::write(&path, value).map_err(NetworkError::io("writing sysctl", path))?;
    }
    Ok(())
}

/// Writes a sysctl of the node's own namespace.
pub(crate) fn set_host_sysctl(key: &str, value: &str) -> Result<(), NetworkError> {
    let path = Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(NetworkError::io("writing sysctl", path))
}
