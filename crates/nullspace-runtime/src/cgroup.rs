//! Last step of every destroy: makes sure no cgroup directory `<mount>/nullspace/<id>` remains under
//! any mounted cgroup hierarchy (v1 controllers, named hierarchies, the v2 tree). The runtime's
//! `delete` normally removed them; this catches a runtime killed half-way and sub-cgroups.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::RuntimeError;
use crate::oci::CGROUP_PARENT;

/// Attempts to empty and remove a busy cgroup before giving up.
const RMDIR_ATTEMPTS: u32 = 50;

/// Mount points of every cgroup and cgroup2 filesystem, from this process's mount table.
pub(crate) fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(entries) = crate::mountinfo::read_own() else {
        return Vec::new();
    };
    entries.into_iter().filter(|e| matches!(e.fs_type.as_str(), "cgroup" | "cgroup2")).map(|e| e.mount_point).collect()
}

/// The directories a sandbox's cgroup may occupy, one per hierarchy, whether or not they exist.
pub(crate) fn sandbox_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_mounts().into_iter().map(|m| m.join(CGROUP_PARENT).join(id)).collect()
}

/// Removes every cgroup directory of sandbox `id`, killing stragglers that keep one busy.
pub(crate) async fn remove_sandbox_cgroups(id: &str) -> Result<(), RuntimeError> {
    for dir in sandbox_cgroup_dirs(id) {
        remove_tree(&dir).await.map_err(|source| RuntimeError::RemoveCgroup {
            id: id.to_string(),
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Child cgroups first, then the directory itself. Absent is success.
async fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            Box::pin(remove_tree(&entry.path())).await?;
        }
    }
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                attempt += 1;
                kill_members(dir);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// SIGKILLs every process still in the cgroup.
fn kill_members(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<libc::pid_t>().ok()) {
        if pid > 0 {
            tracing::warn!(pid, cgroup = %dir.display(), "killing process left in a sandbox cgroup");
            // SAFETY: kill(2) has no memory-safety preconditions; pid is a positive member pid.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}
