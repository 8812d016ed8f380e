//! Named network namespaces (`/run/netns/<name>`, created by `link::create_namespace_and_veth`): their
//! paths, deletion, running code inside one on a short-lived thread (`setns` only ever on a thread this
//! module owns), and sysctls set from inside.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use super::command::{self, Tool};
use super::error::NetworkError;

/// Where iproute2 keeps named network namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Path of a named namespace.
pub(crate) fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
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
