//! Volumes attached to running sandboxes after create: attach, detach, health and remount. The node
//! mounts and unmounts inside the sandbox; the sandbox's recorded mounts follow, so hibernate, resume and
//! fork mount exactly what is attached, and deleting the volume is refused while it is.

use nullspace_node::volumes::{nested_mount, subpath_string, validate_mount_path};
use nullspace_node::VolumeMount;
use nullspace_types::volume::{VolumeAttachment, VolumeMountRequest};

use super::service::{ControlResult, SetGuard};
use super::volumes::attachment;
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::{SandboxRecord, Tenant};

/// `last_error_code` of an attachment whose mount is not in place.
const MOUNT_MISSING: &str = "volume_mount_missing";

impl Control {
    /// The running sandbox `id` of `tenant`, held against other volume changes and state captures of it.
    async fn running_for_volume_change(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> ControlResult<(SandboxRecord, SetGuard<'_>)> {
        let (record, guard) = self.hold_mounts(&self.get(tenant, id).await?).await?;
        if record.state != SandboxState::Running {
            return Err(ControlError::NotRunning { sandbox_id: record.id.clone(), state: record.state.as_str() });
        }
        Ok((record, guard))
    }

    /// Holds sandbox `record` against attach, detach and remount while its state is captured (hibernate,
    /// snapshot, fork), and returns it as stored now, with exactly the mounts attached until then.
    pub(super) async fn hold_mounts(&self, record: &SandboxRecord) -> ControlResult<(SandboxRecord, SetGuard<'_>)> {
        let guard = SetGuard::insert(&self.volume_changes, record.id.clone()).ok_or_else(|| ControlError::Busy {
            what: format!("a volume change or state capture of sandbox {}", record.id),
        })?;
        let current = self.get_for_tenant_id(&record.tenant_id, &record.id).await?;
        Ok((current, guard))
    }

    /// Records `volumes` as the mounts of running sandbox `record`; a sandbox that stopped running
    /// meanwhile is reported.
    async fn record_volumes(&self, record: &SandboxRecord, volumes: &[VolumeMount]) -> ControlResult<()> {
        if self.store.set_running_sandbox_volumes(&record.id, volumes).await? {
            Ok(())
        } else {
            let state = self.get_for_tenant_id(&record.tenant_id, &record.id).await?.state;
            Err(ControlError::NotRunning { sandbox_id: record.id.clone(), state: state.as_str() })
        }
    }

    /// Mounts volume `request.ref` into running sandbox `id` at `request.mount_path`.
    pub async fn attach_volume(
        &self,
        tenant: &Tenant,
        id: &str,
        request: &VolumeMountRequest,
    ) -> ControlResult<VolumeAttachment> {
        let (mut record, _guard) = self.running_for_volume_change(tenant, id).await?;
        let reference = request.reference.trim();
        if reference.is_empty() {
            return Err(super::validate::invalid("volume ref must be a volume name or vol_ id"));
        }
        let volume = self.volume_by_ref(tenant, reference).await?;
        let mount_path = validate_mount_path(&request.mount_path).map_err(ControlError::Volume)?;
        let taken = nested_mount(record.volumes.iter().map(|m| m.mount_path.as_str()), &mount_path)
            .and_then(|path| record.volumes.iter().find(|m| m.mount_path == path));
        if let Some(taken) = taken {
            return Err(super::validate::invalid(format!(
                "{mount_path} overlaps {} of volume {} (attachment {}); volume mounts cannot share or nest paths: detach it first or pick a separate path",
                taken.mount_path, taken.volume_id, taken.attachment_id
            )));
        }
        let subpath = match request.subpath.as_deref() {
            Some(subpath) => subpath_string(subpath).map_err(ControlError::Volume)?,
            None => None,
        };
        let mount = VolumeMount {
            attachment_id: crate::ids::attachment_id(),
            volume_id: volume.id,
            mount_path,
            read_only: request.read_only,
            subpath,
            created_at: clock::now_rfc3339(),
        };
        self.node.attach_volume(&record.id, &mount).await?;
        record.volumes.push(mount.clone());
        if let Err(error) = self.record_volumes(&record, &record.volumes).await {
            // Leave no mount the store does not know of.
            if let Err(undo) = self.node.detach_volume(&record.id, &mount, &others(&record, &mount)).await {
                tracing::warn!(error = %crate::error_chain(&undo), "undoing an unrecorded volume attach failed");
            }
            return Err(error);
        }
        Ok(attachment(&record, &mount))
    }

    /// Unmounts attachment `attachment_id` of running sandbox `id` and forgets it; the attachment is
    /// returned as `released`.
    pub async fn detach_volume(
        &self,
        tenant: &Tenant,
        id: &str,
        attachment_id: &str,
    ) -> ControlResult<VolumeAttachment> {
        let (mut record, _guard) = self.running_for_volume_change(tenant, id).await?;
        let index = find(&record, attachment_id)?;
        let mount = record.volumes[index].clone();
        if !self.node.detach_volume(&record.id, &mount, &others(&record, &mount)).await? {
            tracing::warn!(sandbox = %record.id, path = %mount.mount_path, "detached volume was not mounted any more");
        }
        record.volumes.remove(index);
        self.record_volumes(&record, &record.volumes).await?;
        let mut released = attachment(&record, &mount);
        released.state = "released".into();
        released.updated_at = clock::now_rfc3339();
        Ok(released)
    }

    /// Attachment `attachment_id` of sandbox `id` as it is now: while the sandbox runs, its mount is
    /// probed, and a mount that is not in place is `failed` with `last_error_code` `volume_mount_missing`.
    pub async fn volume_health(
        &self,
        tenant: &Tenant,
        id: &str,
        attachment_id: &str,
    ) -> ControlResult<VolumeAttachment> {
        let record = self.get(tenant, id).await?;
        let mount = &record.volumes[find(&record, attachment_id)?];
        let mut current = attachment(&record, mount);
        if record.state == SandboxState::Running && !self.node.volume_mounted(&record.id, mount).await? {
            current.state = "failed".into();
            current.last_error_code = Some(MOUNT_MISSING.into());
            current.last_error_message = Some(format!(
                "{} is not mounted in the sandbox (it was unmounted or moved); remount the attachment",
                mount.mount_path
            ));
        }
        current.updated_at = clock::now_rfc3339();
        Ok(current)
    }

    /// Mounts attachment `attachment_id` of running sandbox `id` again in place (what is mounted at its
    /// path is replaced by a fresh mount of the volume).
    pub async fn remount_volume(
        &self,
        tenant: &Tenant,
        id: &str,
        attachment_id: &str,
    ) -> ControlResult<VolumeAttachment> {
        let (record, _guard) = self.running_for_volume_change(tenant, id).await?;
        let mount = &record.volumes[find(&record, attachment_id)?];
        if self.store.get_volume(&record.tenant_id, &mount.volume_id).await?.is_none() {
            return Err(ControlError::VolumeNotFound { volume: mount.volume_id.clone() });
        }
        self.node.detach_volume(&record.id, mount, &others(&record, mount)).await?;
        self.node.attach_volume(&record.id, mount).await?;
        let mut current = attachment(&record, mount);
        current.updated_at = clock::now_rfc3339();
        Ok(current)
    }
}

/// The mount paths of `record`'s attachments other than `mount`: a detach leaves mounts there alone.
fn others<'a>(record: &'a SandboxRecord, mount: &VolumeMount) -> Vec<&'a str> {
    record.volumes.iter().filter(|m| m.attachment_id != mount.attachment_id).map(|m| m.mount_path.as_str()).collect()
}

/// Index of attachment `attachment_id` in `record`'s mounts.
fn find(record: &SandboxRecord, attachment_id: &str) -> ControlResult<usize> {
    record.volumes.iter().position(|m| m.attachment_id == attachment_id).ok_or_else(|| {
        ControlError::AttachmentNotFound { sandbox_id: record.id.clone(), attachment_id: attachment_id.to_owned() }
    })
}
