//! Volumes attached to, detached from and probed in running sandboxes: the volume directory is opened
//! here (a subpath without following symlinks, see [`crate::Volumes::open_mount_source`]) and the
//! runtime mounts exactly that open directory into the sandbox, so nothing can be swapped in between.

use std::os::fd::OwnedFd;

use nullspace_runtime::RuntimeError;

use crate::{Node, NodeError, NodeResult, VolumeMount};

impl Node {
    fn runtime_error(sandbox_id: &str) -> impl FnOnce(RuntimeError) -> NodeError + '_ {
        move |source| {
            let sandbox_id = sandbox_id.to_owned();
            match source {
                RuntimeError::LiveMountsUnsupported { kind, .. } => {
                    NodeError::LiveMountsUnsupported { sandbox_id, runtime: kind.to_string() }
                }
                RuntimeError::NotRunning { .. } => NodeError::NotRunning { sandbox_id },
                source @ RuntimeError::MountPoint { .. } => NodeError::MountPoint { sandbox_id, source },
                source => NodeError::Runtime { sandbox_id, source },
            }
        }
    }

    fn open_source(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<OwnedFd> {
        self.volumes()
            .open_mount_source(&mount.volume_id, mount.subpath.as_deref())
            .map_err(|source| NodeError::Volume { sandbox_id: sandbox_id.to_owned(), source })
    }

    /// Mounts `mount` into running sandbox `sandbox_id` at its `mount_path` (created when missing).
    pub async fn attach_volume(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<()> {
        let source = self.open_source(sandbox_id, mount)?;
        self.runtime()
            .mount_live(sandbox_id, source, &mount.mount_path, mount.read_only)
            .await
            .map_err(Self::runtime_error(sandbox_id))?;
        tracing::info!(sandbox = %sandbox_id, volume = %mount.volume_id, path = %mount.mount_path, "volume attached");
        Ok(())
    }

    /// Unmounts `mount` from running sandbox `sandbox_id` (lazily: open files keep working until closed).
    /// Only a mount of that volume directory goes: the one at its `mount_path`, or, when renames of its
    /// parents inside the sandbox moved it, the one the sandbox's mount table shows elsewhere, except at
    /// `keep` (the paths of the sandbox's other attachments). `false` when it was mounted nowhere.
    pub async fn detach_volume(&self, sandbox_id: &str, mount: &VolumeMount, keep: &[&str]) -> NodeResult<bool> {
        let runtime_error = || Self::runtime_error(sandbox_id);
        let path = mount.mount_path.as_str();
        let Some(source) = self.find_source(sandbox_id, mount)? else {
            // The subpath is gone from the volume, so there is nothing to compare with: the mount at the
            // path goes (reached without following symlinks, like every live unmount).
            let detached = self.runtime().unmount_live(sandbox_id, path, None).await.map_err(runtime_error())?;
            tracing::info!(sandbox = %sandbox_id, path, detached, "volume detached");
            return Ok(detached);
        };
        let copy = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| NodeError::Filesystem {
                sandbox_id: sandbox_id.to_owned(),
                path: path.into(),
                source,
            })
        };
        if self.runtime().unmount_live(sandbox_id, path, Some(copy(&source)?)).await.map_err(runtime_error())? {
            tracing::info!(sandbox = %sandbox_id, path, "volume detached");
            return Ok(true);
        }
        let moved = self.runtime().find_live_mounts(sandbox_id, copy(&source)?).await.map_err(runtime_error())?;
        for at in moved.iter().filter(|at| !keep.contains(&at.as_str())) {
            if self.runtime().unmount_live(sandbox_id, at, Some(copy(&source)?)).await.map_err(runtime_error())? {
                tracing::info!(sandbox = %sandbox_id, path, moved_to = %at, "volume detached where a rename took it");
                return Ok(true);
            }
        }
        tracing::info!(sandbox = %sandbox_id, path, "volume to detach was not mounted any more");
        Ok(false)
    }

    /// The volume directory `mount` binds, opened without creating anything: `None` when its subpath was
    /// removed from the volume.
    fn find_source(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<Option<OwnedFd>> {
        self.volumes()
            .find_mount_source(&mount.volume_id, mount.subpath.as_deref())
            .map_err(|source| NodeError::Volume { sandbox_id: sandbox_id.to_owned(), source })
    }

    /// Whether `mount` is in place in running sandbox `sandbox_id`: its `mount_path` is the volume's
    /// directory. Creates nothing: a subpath removed from the volume means the mount is not in place.
    pub async fn volume_mounted(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<bool> {
        let Some(source) = self.find_source(sandbox_id, mount)? else { return Ok(false) };
        self.runtime()
            .probe_live_mount(sandbox_id, &mount.mount_path, source)
            .await
            .map_err(Self::runtime_error(sandbox_id))
    }
}
