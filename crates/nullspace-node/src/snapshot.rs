//! Snapshot layers: a sandbox's upper dir frozen into a read-only directory that later sandboxes stack
//! as an overlay lower layer. Hibernate moves the upper dir (O(1)); snapshot and fork of a running sandbox
//! copy it while its processes are frozen. A layer appears under its final name only when complete.

use std::path::{Path, PathBuf};

use nullspace_runtime::IsolationRuntime;

use crate::node::Node;
use crate::{NodeError, NodeResult};

impl Node {
    /// Directory of snapshot layer `snapshot_id`.
    pub fn layer_dir(&self, snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(snapshot_id)
    }

    fn fs_error(sandbox_id: &str, path: &Path) -> impl FnOnce(std::io::Error) -> NodeError {
        let (sandbox_id, path) = (sandbox_id.to_owned(), path.to_path_buf());
        move |source| NodeError::Filesystem { sandbox_id, path, source }
    }

    /// Copies the upper dir of running sandbox `sandbox_id` into layer `snapshot_id` while the sandbox
    /// is frozen; the sandbox keeps running. Returns the layer's size.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox_id, snapshot = %snapshot_id))]
    pub async fn capture(&self, sandbox_id: &str, snapshot_id: &str) -> NodeResult<u64> {
        let paths = self.paths(sandbox_id);
        let target = self.layer_dir(snapshot_id);
        let staging = self.snapshots_dir().join(format!(".{snapshot_id}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        let runtime_error = |source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source };
        self.runtime().freeze(sandbox_id).await.map_err(runtime_error)?;
        let copied = copy_tree(&paths.upper, &staging).await;
        let thawed = self.runtime().thaw(sandbox_id).await;
        copied.map_err(Self::fs_error(sandbox_id, &staging))?;
        thawed.map_err(runtime_error)?;
        publish(&staging, &target).map_err(Self::fs_error(sandbox_id, &target))?;
        Ok(layer_size(&target))
    }

    /// Stops sandbox `sandbox_id` and turns its upper dir into layer `snapshot_id`, then releases
    /// everything else it owned. Safe to run again after an interruption: an existing layer is kept.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox_id, snapshot = %snapshot_id))]
    pub async fn hibernate(&self, sandbox_id: &str, snapshot_id: &str) -> NodeResult<u64> {
        let paths = self.paths(sandbox_id);
        let target = self.layer_dir(snapshot_id);
        self.runtime()
            .destroy(sandbox_id)
            .await
            .map_err(|source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source })?;
        crate::overlay::unmount(&paths.rootfs).map_err(|source| NodeError::Overlay {
            operation: "unmount",
            sandbox_id: sandbox_id.to_owned(),
            source,
        })?;
        if !target.exists() {
            std::fs::rename(&paths.upper, &target).map_err(Self::fs_error(sandbox_id, &target))?;
            sync_dir(&self.snapshots_dir());
        }
        self.destroy(sandbox_id).await?;
        Ok(layer_size(&target))
    }

    /// Removes snapshot layer directories that are not in `referenced` (directory paths), and leftovers
    /// of interrupted captures.
    pub fn collect_layers(&self, referenced: &std::collections::BTreeSet<String>) -> usize {
        let mut removed = 0;
        let Ok(entries) = std::fs::read_dir(self.snapshots_dir()) else { return 0 };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let partial = name.starts_with('.') && name.ends_with(".partial");
            if partial || !referenced.contains(&path.to_string_lossy().into_owned()) {
                if std::fs::remove_dir_all(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// `cp -a` keeps owners, modes, timestamps, hard links and the xattrs overlayfs uses for whiteouts and
/// opaque directories (reflinks where the filesystem can).
async fn copy_tree(source: &Path, target: &Path) -> std::io::Result<()> {
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(source)
        .arg(target)
        .kill_on_drop(true)
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("cp -a exited with {status}")))
    }
}

/// Makes a complete staging dir visible under its final name: every file and directory in it is
/// fsynced (cheap for the small change sets snapshots usually hold), then it is renamed into place.
fn publish(staging: &Path, target: &Path) -> std::io::Result<()> {
    fsync_tree(staging)?;
    std::fs::rename(staging, target)?;
    if let Some(parent) = target.parent() {
        sync_dir(parent);
    }
    Ok(())
}

fn fsync_tree(root: &Path) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                std::fs::File::open(entry.path())?.sync_all()?;
            }
        }
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Bytes in a layer (at least 1: an empty change set still is a snapshot).
pub fn layer_size(dir: &Path) -> u64 {
    crate::metrics::directory_size(dir).max(1)
}
