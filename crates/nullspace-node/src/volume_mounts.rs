//! Volumes attached to, detached from and probed in running sandboxes: the volume directory is opened
//! here (a subpath without following symlinks, see [`crate::Volumes::open_mount_source`]) and the
//! runtime mounts exactly that open directory into the sandbox, so nothing can be swapped in between.

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

    fn open_source(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<std::os::fd::OwnedFd> {
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

    /// Unmounts the volume at `mount_path` of running sandbox `sandbox_id` (open files keep working until
    /// closed); `false` when nothing was mounted there any more.
    pub async fn detach_volume(&self, sandbox_id: &str, mount_path: &str) -> NodeResult<bool> {
        let detached =
            self.runtime().unmount_live(sandbox_id, mount_path).await.map_err(Self::runtime_error(sandbox_id))?;
        tracing::info!(sandbox = %sandbox_id, path = %mount_path, detached, "volume detached");
        Ok(detached)
    }

    /// Whether `mount` is in place in running sandbox `sandbox_id`: its `mount_path` is the volume's
    /// directory. Creates nothing: a subpath removed from the volume means the mount is not in place.
    pub async fn volume_mounted(&self, sandbox_id: &str, mount: &VolumeMount) -> NodeResult<bool> {
        let found = self
            .volumes()
            .find_mount_source(&mount.volume_id, mount.subpath.as_deref())
            .map_err(|source| NodeError::Volume { sandbox_id: sandbox_id.to_owned(), source })?;
        let Some(source) = found else { return Ok(false) };
        self.runtime()
            .probe_live_mount(sandbox_id, &mount.mount_path, source)
            .await
            .map_err(Self::runtime_error(sandbox_id))
    }
}
