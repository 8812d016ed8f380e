//! Persistent volumes: create, look up (by id or name, always scoped by tenant), delete (refused while a
//! live sandbox mounts it), usage, attachments, and the resolution of a create request's `volumes` into
//! the mounts recorded with the sandbox.

use nullspace_node::volumes::{nested_mount, subpath_string, validate_mount_path};
use nullspace_node::VolumeMount;
use nullspace_types::volume::{VolumeAttachment, VolumeInfo, VolumeMountRequest};

use super::service::ControlResult;
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::{SandboxRecord, Tenant, VolumeRecord};

/// How long a volume guest may stay unused before it is stopped.
const GUEST_IDLE: std::time::Duration = std::time::Duration::from_secs(120);

/// Spawns the loop that stops idle volume guests.
pub fn spawn_volume_guest_reaper(control: Control) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            interval.tick().await;
            control.node.volume_guests().stop_idle(GUEST_IDLE).await;
        }
    })
}

/// Longest volume name.
const MAX_NAME_LEN: usize = 128;

/// The attachment state a mount shows while its sandbox is in `state`.
pub fn attachment_state(state: SandboxState) -> &'static str {
    match state {
        SandboxState::Creating => "mounting",
        SandboxState::Running => "mounted",
        SandboxState::Hibernating | SandboxState::Paused | SandboxState::Resuming => "paused",
        SandboxState::Error => "failed",
        SandboxState::Destroying | SandboxState::Destroyed => "released",
    }
}

/// The wire attachment of `mount` in sandbox `record`.
pub fn attachment(record: &SandboxRecord, mount: &VolumeMount) -> VolumeAttachment {
    VolumeAttachment {
        id: mount.attachment_id.clone(),
        volume_id: mount.volume_id.clone(),
        sandbox_id: record.id.clone(),
        mount_path: mount.mount_path.clone(),
        read_only: mount.read_only,
        state: attachment_state(record.state).to_owned(),
        subpath: mount.subpath.clone(),
        last_error_code: None,
        last_error_message: None,
        created_at: mount.created_at.clone(),
        // The later of the mount (an attach at runtime) and the sandbox's start (every mount is remade then).
        updated_at: record
            .started_at
            .clone()
            .filter(|started| *started > mount.created_at)
            .unwrap_or_else(|| mount.created_at.clone()),
    }
}

pub(crate) fn validate_name(name: &str) -> ControlResult<()> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars || name.starts_with('.') {
        return Err(super::validate::invalid(format!(
            "volume name {name:?} is invalid: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not starting with '.'"
        )));
    }
    Ok(())
}

impl Control {
    /// Creates volume `name` for `tenant` with an empty data directory, limited to `max_size` bytes (or
    /// the server's default limit) when given.
    pub async fn create_volume(&self, tenant: &Tenant, name: &str, max_size: Option<u64>) -> ControlResult<VolumeInfo> {
        validate_name(name)?;
        if self.store.get_volume_by_name(&tenant.id, name).await?.is_some() {
            return Err(ControlError::VolumeConflict { name: name.to_owned() });
        }
        let max_size = max_size.or(self.default_volume_size);
        let record = VolumeRecord {
            id: crate::ids::volume_id(),
            tenant_id: tenant.id.clone(),
            name: name.to_owned(),
            created_at: clock::now_rfc3339(),
            max_size_bytes: max_size,
        };
        // Checked early to refuse before any work, and again (under a lock) where the row is written.
        self.check_volume_quota(&tenant.id).await?;
        let id = record.id.clone();
        self.on_host_volumes(move |volumes| volumes.create(&id, max_size)).await?;
        let inserted = self.insert_volume_within_quota(&record).await;
        if !matches!(inserted, Ok(true)) {
            let id = record.id.clone();
            let _ = self.on_host_volumes(move |volumes| volumes.remove(&id)).await;
            inserted?;
            return Err(ControlError::VolumeConflict { name: name.to_owned() });
        }
        tracing::info!(volume = %record.id, max_size_bytes = ?max_size, "volume created");
        self.volume_info(&record).await
    }

    /// Runs `work` on this host's volumes off the async threads (formatting, mounting and removing block).
    async fn on_host_volumes<T: Send + 'static>(
        &self,
        work: impl FnOnce(&nullspace_node::volumes::Volumes) -> Result<T, nullspace_node::VolumeError> + Send + 'static,
    ) -> ControlResult<T> {
        let volumes = self.node.volumes().clone();
        tokio::task::spawn_blocking(move || work(&volumes))
            .await
            .map_err(|error| {
                ControlError::Volume(nullspace_node::VolumeError::Missing { volume_id: error.to_string() })
            })?
            .map_err(ControlError::Volume)
    }

    /// Brings the host's volumes in line with the store at start: mounts the filesystems of size-limited
    /// volumes (gone after a host restart) and removes what a crash left of deleted or half-created ones.
    pub async fn reconcile_volumes(&self) -> ControlResult<()> {
        let records = self.store.all_volumes().await?;
        let volumes = self.node.volumes().clone();
        let known: std::collections::BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let (mounted, removed) = tokio::task::spawn_blocking(move || {
            let mut mounted = 0usize;
            for id in &known {
                match volumes.ensure_mounted(id) {
                    Ok(()) => mounted += 1,
                    Err(error) => {
                        tracing::error!(volume = %id, error = %crate::error_chain(&error), "volume not mounted")
                    }
                }
            }
            let mut removed = Vec::new();
            for id in volumes.host_volume_ids().into_iter().filter(|id| !known.contains(id)) {
                match volumes.remove(&id) {
                    Ok(()) => removed.push(id),
                    Err(error) => {
                        tracing::warn!(volume = %id, error = %crate::error_chain(&error), "stale volume kept")
                    }
                }
            }
            (mounted, removed)
        })
        .await
        .unwrap_or_default();
        tracing::info!(volumes = mounted, stale_removed = removed.len(), "reconciled volumes with the host");
        Ok(())
    }

    /// Volume `id` of `tenant`.
    pub async fn get_volume(&self, tenant: &Tenant, id: &str) -> ControlResult<VolumeRecord> {
        self.store
            .get_volume(&tenant.id, id)
            .await?
            .ok_or_else(|| ControlError::VolumeNotFound { volume: id.to_owned() })
    }

    /// Volume `id` of the tenant with id `tenant_id` (signed URLs carry the id).
    pub async fn volume_for_tenant_id(&self, tenant_id: &str, id: &str) -> ControlResult<VolumeRecord> {
        self.store
            .get_volume(tenant_id, id)
            .await?
            .ok_or_else(|| ControlError::VolumeNotFound { volume: id.to_owned() })
    }

    /// The guest serving volume `id`'s files (started on demand).
    pub async fn volume_guest(&self, tenant: &Tenant, id: &str) -> ControlResult<nullspace_node::GuestLink> {
        self.volume_guest_for_tenant_id(&tenant.id, id).await
    }

    /// The guest serving the files of volume `id` of the tenant with id `tenant_id`.
    pub async fn volume_guest_for_tenant_id(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> ControlResult<nullspace_node::GuestLink> {
        let volume = self.volume_for_tenant_id(tenant_id, id).await?;
        Ok(self.node.volume_guests().link(&volume.id).await?)
    }

    /// Volume named `name` of `tenant`.
    pub async fn get_volume_by_name(&self, tenant: &Tenant, name: &str) -> ControlResult<VolumeRecord> {
        self.store
            .get_volume_by_name(&tenant.id, name)
            .await?
            .ok_or_else(|| ControlError::VolumeNotFound { volume: name.to_owned() })
    }

    /// Volume named or identified by `reference` (an id first, then a name).
    pub async fn volume_by_ref(&self, tenant: &Tenant, reference: &str) -> ControlResult<VolumeRecord> {
        if let Some(volume) = self.store.get_volume(&tenant.id, reference).await? {
            return Ok(volume);
        }
        self.get_volume_by_name(tenant, reference).await
    }

    /// Volumes of `tenant`.
    pub async fn list_volumes(&self, tenant: &Tenant) -> ControlResult<Vec<VolumeInfo>> {
        let mut infos = Vec::new();
        for record in self.store.list_volumes(&tenant.id).await? {
            infos.push(self.volume_info(&record).await?);
        }
        Ok(infos)
    }

    /// The wire object of `record`, with its usage walked now.
    pub async fn volume_info(&self, record: &VolumeRecord) -> ControlResult<VolumeInfo> {
        let volumes = self.node.volumes().clone();
        let id = record.id.clone();
        let usage = tokio::task::spawn_blocking(move || volumes.usage(&id)).await.unwrap_or_default();
        // Sandboxes, not mounts: one sandbox may mount a volume at several paths.
        let live = self.live_attachments(&record.tenant_id, &record.id).await?;
        let mount_count =
            live.iter().map(|a| a.sandbox_id.as_str()).collect::<std::collections::BTreeSet<_>>().len() as u64;
        Ok(VolumeInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            created_at: record.created_at.clone(),
            used_bytes: usage.used_bytes,
            inode_count: usage.inode_count,
            mount_count,
            status: if mount_count > 0 { "attached" } else { "available" }.to_owned(),
            max_size_bytes: record.max_size_bytes,
            max_file_count: None,
            max_mounts: None,
            last_reconciled_at: None,
            host_id: None,
        })
    }

    /// Attachments of volume `volume_id` in sandboxes that are creating or running (the live mounts).
    async fn live_attachments(&self, tenant_id: &str, volume_id: &str) -> ControlResult<Vec<VolumeAttachment>> {
        self.attachments_in(tenant_id, volume_id, &[SandboxState::Creating, SandboxState::Running]).await
    }

    async fn attachments_in(
        &self,
        tenant_id: &str,
        volume_id: &str,
        states: &[SandboxState],
    ) -> ControlResult<Vec<VolumeAttachment>> {
        let records = self.store.sandboxes_in_states(states).await?;
        Ok(records
            .iter()
            .filter(|record| record.tenant_id == tenant_id)
            .flat_map(|record| {
                record.volumes.iter().filter(|m| m.volume_id == volume_id).map(move |m| attachment(record, m))
            })
            .collect())
    }

    /// Attachments of volume `id`: its mounts in live and paused sandboxes.
    pub async fn volume_attachments(&self, tenant: &Tenant, id: &str) -> ControlResult<Vec<VolumeAttachment>> {
        let volume = self.get_volume(tenant, id).await?;
        let states = [
            SandboxState::Creating,
            SandboxState::Running,
            SandboxState::Hibernating,
            SandboxState::Paused,
            SandboxState::Resuming,
        ];
        self.attachments_in(&tenant.id, &volume.id, &states).await
    }

    /// Deletes volume `id` and its data; refused with `volume_busy` while a live sandbox mounts it.
    pub async fn delete_volume(&self, tenant: &Tenant, id: &str) -> ControlResult<()> {
        let volume = self.get_volume(tenant, id).await?;
        let live = self.live_attachments(&tenant.id, &volume.id).await?;
        if !live.is_empty() {
            let mut sandboxes: Vec<&str> = live.iter().map(|a| a.sandbox_id.as_str()).collect();
            sandboxes.dedup();
            return Err(ControlError::VolumeBusy { volume_id: volume.id, sandboxes: sandboxes.join(", ") });
        }
        self.store.delete_volume(&tenant.id, &volume.id).await?;
        self.node.volume_guests().stop(&volume.id).await;
        let vid = volume.id.clone();
        self.on_host_volumes(move |volumes| volumes.remove(&vid)).await?;
        tracing::info!(volume = %volume.id, "volume deleted");
        Ok(())
    }

    /// The mounts of a create request: each volume found by id or name, mount paths checked, subpaths
    /// normalized.
    pub(super) async fn resolve_mounts(
        &self,
        tenant: &Tenant,
        requests: &[VolumeMountRequest],
    ) -> ControlResult<Vec<VolumeMount>> {
        let mut mounts: Vec<VolumeMount> = Vec::new();
        for request in requests {
            let reference = request.reference.trim();
            if reference.is_empty() {
                return Err(super::validate::invalid("volume ref must be a volume name or vol_ id"));
            }
            let volume = self.volume_by_ref(tenant, reference).await?;
            let mount_path = validate_mount_path(&request.mount_path).map_err(ControlError::Volume)?;
            if let Some(other) = nested_mount(mounts.iter().map(|m| m.mount_path.as_str()), &mount_path) {
                return Err(super::validate::invalid(format!(
                    "mount_path {mount_path} overlaps {other}: volume mounts cannot share or nest paths; use separate ones such as /data and /cache"
                )));
            }
            let subpath = match request.subpath.as_deref() {
                Some(subpath) => subpath_string(subpath).map_err(ControlError::Volume)?,
                None => None,
            };
            mounts.push(VolumeMount {
                attachment_id: String::new(),
                volume_id: volume.id,
                mount_path,
                read_only: request.read_only,
                subpath,
                created_at: String::new(),
            });
        }
        Ok(mounts)
    }

    /// Gives a new sandbox's mounts fresh attachment ids and checks their volumes still exist.
    pub(super) async fn prepare_volumes(&self, mut record: SandboxRecord) -> ControlResult<SandboxRecord> {
        let now = clock::now_rfc3339();
        for mount in &mut record.volumes {
            if self.store.get_volume(&record.tenant_id, &mount.volume_id).await?.is_none() {
                return Err(super::validate::invalid(format!(
                    "volume {} (mounted at {}) was deleted; it cannot be mounted again",
                    mount.volume_id, mount.mount_path
                )));
            }
            mount.attachment_id = crate::ids::attachment_id();
            mount.created_at = now.clone();
        }
        Ok(record)
    }
}
