//! Snapshot layers: a sandbox's upper dir frozen into a read-only directory that later sandboxes stack
//! as an overlay lower layer. Hibernate moves the upper dir (O(1), or a copy from a sandbox disk, a
//! filesystem of its own); a snapshot of a running sandbox (and a fork of one without a disk image: see
//! `disk_clone`) copies it while its processes are frozen. A layer appears under its final name only
//! when complete.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nullspace_runtime::{IsolationRuntime, SandboxSpec};
use nullspace_types::guest::GUEST_QUIESCED_NAME;

use crate::node::{LaunchSpec, Node};
use crate::{NodeError, NodeResult};

/// How long the guest gets to close its host socket and connections before a memory checkpoint.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(5);

impl Node {
    /// Whether hibernate, resume and fork keep processes and memory on this node (runtimes that
    /// checkpoint memory: gVisor), not only the filesystem.
    pub fn memory_snapshots(&self) -> bool {
        self.runtime_kind().checkpoints_memory()
    }

    /// Directory of the memory image of snapshot `snapshot_id`: beside its layer, never inside it (a
    /// layer is visible as the sandbox's filesystem).
    pub fn memory_dir(&self, snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{snapshot_id}.mem"))
    }

    /// The complete memory image of snapshot `snapshot_id`, if one was saved.
    pub fn memory_image(&self, snapshot_id: &str) -> Option<PathBuf> {
        Some(self.memory_dir(snapshot_id)).filter(|dir| dir.is_dir())
    }

    /// Removes the memory image of snapshot `snapshot_id` (its layer stays).
    pub fn remove_memory_image(&self, snapshot_id: &str) {
        let _ = std::fs::remove_dir_all(self.memory_dir(snapshot_id));
    }

    /// Saves the processes and memory of running sandbox `sandbox_id` as the memory image of
    /// `snapshot_id` and stops it. The guest first closes its host socket (gVisor cannot save one bound on
    /// the host); when it does not, it is woken again and the sandbox runs on. A failed checkpoint itself
    /// leaves the sandbox stopped. The image appears under its final name only when complete.
    async fn checkpoint_memory(&self, sandbox_id: &str, snapshot_id: &str) -> NodeResult<PathBuf> {
        let target = self.memory_dir(snapshot_id);
        if target.is_dir() {
            return Ok(target); // a retried hibernate: saved before the interruption
        }
        let runtime_error = |source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source };
        let marker = self.paths(sandbox_id).control.join(GUEST_QUIESCED_NAME);
        let _ = std::fs::remove_file(&marker);
        let started = Instant::now();
        self.runtime().signal(sandbox_id, "USR1").await.map_err(runtime_error)?;
        let mut pause = Duration::from_micros(500);
        // The marker is in the sandbox's control dir: look at the entry, never through it.
        while std::fs::symlink_metadata(&marker).is_err() {
            if started.elapsed() >= QUIESCE_TIMEOUT {
                let _ = self.runtime().signal(sandbox_id, "USR2").await;
                let waited_ms = started.elapsed().as_millis() as u64;
                return Err(NodeError::GuestQuiesce { sandbox_id: sandbox_id.to_owned(), waited_ms });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        let quiesced_ms = started.elapsed().as_millis() as u64;
        let staging = self.snapshots_dir().join(format!(".{snapshot_id}.mem.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        if let Err(error) = self.runtime().checkpoint(sandbox_id, &staging).await {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(runtime_error(error));
        }
        publish(&staging, &target).map_err(Self::fs_error(sandbox_id, &target))?;
        tracing::debug!(quiesced_ms, total_ms = started.elapsed().as_millis() as u64, "memory checkpointed");
        Ok(target)
    }

    /// Starts `spec` from memory image `image` and lets its guest listen again.
    pub(crate) async fn restore_memory(&self, spec: &SandboxSpec, image: &Path) -> NodeResult<()> {
        let runtime_error = |source| NodeError::Runtime { sandbox_id: spec.id.clone(), source };
        let _ = std::fs::remove_file(self.paths(&spec.id).control.join(GUEST_QUIESCED_NAME));
        self.runtime().restore(spec, image).await.map_err(runtime_error)?;
        self.runtime().signal(&spec.id, "USR2").await.map_err(runtime_error)
    }

    /// Fork with memory: checkpoints running sandbox `parent.sandbox_id` into the memory image of
    /// `snapshot_id` (it stops), moves its upper dir into layer `snapshot_id` (as hibernate does), then
    /// restores the parent under its own id with that layer stacked below a fresh upper dir. The child is
    /// launched from the same image and layers; both continue from the same memory. `parent.layers` are
    /// the parent's layers before the fork. Returns the layer's size. When the parent cannot be restored
    /// it is torn down.
    #[tracing::instrument(skip_all, fields(sandbox = %parent.sandbox_id, snapshot = %snapshot_id))]
    pub async fn fork_memory(&self, parent: &LaunchSpec, snapshot_id: &str) -> NodeResult<u64> {
        let id = parent.sandbox_id.as_str();
        let paths = self.paths(id);
        let target = self.layer_dir(snapshot_id);
        let image = self.checkpoint_memory(id, snapshot_id).await?;
        self.runtime().destroy(id).await.map_err(|source| NodeError::Runtime { sandbox_id: id.to_owned(), source })?;
        self.unmount_root(id)?;
        move_upper(&paths.upper, &target).await.map_err(Self::fs_error(id, &target))?;
        sync_dir(&self.snapshots_dir());
        let _ = std::fs::remove_dir_all(&paths.work);
        let mut relaunch = parent.clone();
        relaunch.layers.insert(0, target.clone());
        relaunch.restore_from = Some(image);
        self.launch(&relaunch).await?;
        Ok(layer_size(&target))
    }

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
        if self.memory_snapshots() && !target.exists() {
            if let Err(error) = self.checkpoint_memory(sandbox_id, snapshot_id).await {
                tracing::warn!(error = ?error, "memory checkpoint failed; hibernating the filesystem only");
            }
        }
        self.runtime()
            .destroy(sandbox_id)
            .await
            .map_err(|source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source })?;
        self.unmount_root(sandbox_id)?;
        if !target.exists() {
            move_upper(&paths.upper, &target).await.map_err(Self::fs_error(sandbox_id, &target))?;
            sync_dir(&self.snapshots_dir());
        }
        self.destroy(sandbox_id).await?;
        let memory = self.memory_image(snapshot_id).map_or(0, |dir| crate::tree_usage::tree_usage(&dir).bytes);
        Ok(layer_size(&target) + memory)
    }

    /// Ends build sandbox `sandbox_id` and moves its upper dir (every write of the step, with overlay
    /// whiteouts for what it deleted) to `target`, a fresh path on the data dir's filesystem that the
    /// caller publishes as a layer; the rest of the sandbox is released. The runtime is stopped and the
    /// overlay unmounted first, so the directory is complete and nothing writes to it any more.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox_id))]
    pub async fn commit_upper(&self, sandbox_id: &str, target: &Path) -> NodeResult<()> {
        let paths = self.paths(sandbox_id);
        self.runtime()
            .destroy(sandbox_id)
            .await
            .map_err(|source| NodeError::Runtime { sandbox_id: sandbox_id.to_owned(), source })?;
        self.unmount_root(sandbox_id)?;
        move_upper(&paths.upper, target).await.map_err(Self::fs_error(sandbox_id, target))?;
        self.destroy(sandbox_id).await
    }

    /// Removes snapshot layer directories that are not in `referenced` (directory paths), with their
    /// memory images (`<layer>.mem`) and the staging dirs of interrupted captures and checkpoints
    /// (`.<layer>.partial`, `.<layer>.mem.partial`; kept while their layer is referenced, i.e. pending).
    pub fn collect_layers(&self, referenced: &std::collections::BTreeSet<String>) -> usize {
        let mut removed = 0;
        let Ok(entries) = std::fs::read_dir(self.snapshots_dir()) else { return 0 };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let layer = self.snapshots_dir().join(layer_of(&name));
            if !referenced.contains(&layer.to_string_lossy().into_owned()) && std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// The layer an entry of the snapshots dir belongs to: `X` for `X`, `X.mem`, `.X.partial`, `.X.mem.partial`.
fn layer_of(name: &str) -> &str {
    match name.strip_prefix('.').and_then(|rest| rest.strip_suffix(".partial")) {
        Some(staged) => staged.strip_suffix(".mem").unwrap_or(staged),
        None => name.strip_suffix(".mem").unwrap_or(name),
    }
}

/// Moves the upper dir `upper` of a stopped sandbox to `target`: a rename (O(1)) when both are on one
/// filesystem; from a sandbox disk (a filesystem of its own) a copy staged beside `target` and published
/// complete, after which `upper` is removed.
async fn move_upper(upper: &Path, target: &Path) -> std::io::Result<()> {
    match std::fs::rename(upper, target) {
        Err(error) if error.raw_os_error() == Some(nix::errno::Errno::EXDEV as i32) => {
            let name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let staging = target.with_file_name(format!(".{name}.partial"));
            let _ = std::fs::remove_dir_all(&staging);
            copy_tree(upper, &staging).await?;
            publish(&staging, target)?;
            std::fs::remove_dir_all(upper)
        }
        other => other,
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
    crate::tree_usage::tree_usage(dir).bytes.max(1)
}

#[cfg(test)]
mod tests {
    use super::layer_of;

    #[test]
    fn memory_images_and_staging_dirs_belong_to_their_layer() {
        for name in ["snap_ab1", "snap_ab1.mem", ".snap_ab1.partial", ".snap_ab1.mem.partial"] {
            assert_eq!(layer_of(name), "snap_ab1", "{name}");
        }
    }
}
