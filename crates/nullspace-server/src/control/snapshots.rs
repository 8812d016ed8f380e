//! Snapshots, hibernate, resume and fork. A snapshot is a stack of frozen layer directories plus the
//! configuration to restore; sandboxes resumed from it stack those layers below a fresh upper dir, so
//! resume costs a mount, not a copy of the filesystem. A fork of a sandbox with a disk, on a data dir
//! that reflinks, copies the disk image instead (O(1)) and makes no layer.

use nullspace_types::sandbox::CreateSandboxRequest;

use super::events::NewEvent;
use super::sandbox_create::new_record;
use super::service::{ControlResult, SetGuard};
use super::validate::{self};
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::{SandboxRecord, SnapshotConfig, SnapshotRecord, Tenant};

impl Control {
    pub(super) fn snapshot_record(
        &self,
        record: &SandboxRecord,
        snapshot_id: &str,
        kind: &str,
        size_bytes: u64,
    ) -> SnapshotRecord {
        let mut layers = vec![self.node.layer_dir(snapshot_id).to_string_lossy().into_owned()];
        layers.extend(record.layers.iter().cloned());
        SnapshotRecord {
            id: snapshot_id.to_owned(),
            tenant_id: record.tenant_id.clone(),
            sandbox_id: record.id.clone(),
            kind: kind.to_owned(),
            template: record.template.clone(),
            layers,
            config: SnapshotConfig {
                vcpus: record.vcpus,
                memory_mb: record.memory_mb,
                disk_mb: record.disk_mb,
                envs: record.envs.clone(),
                cwd: record.cwd.clone(),
                timeout_ms: record.timeout_ms,
                timeout_action: record.timeout_action.clone(),
                network: record.network.clone(),
                memory: self.node.memory_image(snapshot_id).is_some(),
                volumes: record.volumes.clone(),
                auto_resume: record.auto_resume,
            },
            metadata: record.metadata.clone(),
            size_bytes,
            created_at: clock::now_rfc3339(),
        }
    }

    fn running(record: &SandboxRecord) -> ControlResult<()> {
        if record.state == SandboxState::Running {
            Ok(())
        } else {
            Err(ControlError::NotRunning { sandbox_id: record.id.clone(), state: record.state.as_str() })
        }
    }

    /// Hibernates running sandbox `id`: its filesystem becomes a snapshot, everything running is released,
    /// and the id stays visible as `paused` until it is resumed or killed.
    pub async fn hibernate(&self, tenant: &Tenant, id: &str) -> ControlResult<SnapshotRecord> {
        let record = self.get(tenant, id).await?;
        self.hibernate_record(&record, "api", "user").await
    }

    pub(super) async fn hibernate_record(
        &self,
        record: &SandboxRecord,
        reason: &'static str,
        actor: &'static str,
    ) -> ControlResult<SnapshotRecord> {
        Self::running(record)?;
        let (record, _mounts_held) = self.hold_mounts(record).await?;
        let record = &record;
        let snapshot_id = crate::ids::snapshot_id();
        let layer = self.node.layer_dir(&snapshot_id).to_string_lossy().into_owned();
        let _pending = SetGuard::insert(&self.pending_layers, layer);
        let timeout_meta = |event: NewEvent| {
            if reason == "timeout" {
                event.meta("timeout_action", record.timeout_action.clone())
            } else {
                event
            }
        };
        let hibernate = |status| timeout_meta(NewEvent::sandbox("hibernate", status, actor, &record.id).reason(reason));
        // Record where the state goes before anything happens, so a crash can finish or undo the hibernate.
        self.store.set_sandbox_snapshot(&record.id, Some(&snapshot_id)).await?;
        if !self.store.transition(&record.id, &[SandboxState::Running], SandboxState::Hibernating, None).await? {
            return Err(ControlError::NotRunning { sandbox_id: record.id.clone(), state: "changing state" });
        }
        self.events.emit(&record.tenant_id, hibernate("requested")).await;
        // With auto-resume the preview ports stay open: their next connection resumes the sandbox.
        if !record.auto_resume {
            self.preview.close_sandbox(&record.id);
        }
        let size = match self.node.hibernate(&record.id, &snapshot_id).await {
            Ok(size) => size,
            Err(error) => {
                let message = error.to_string();
                let mut failed = hibernate("failed");
                failed.error_message = Some(message);
                self.events.emit(&record.tenant_id, failed).await;
                // The sandbox may be half torn down: finish the teardown rather than leave it inconsistent.
                self.store.transition(&record.id, &[SandboxState::Hibernating], SandboxState::Destroying, None).await?;
                self.release(&record.id).await?;
                return Err(error.into());
            }
        };
        let snapshot = self.snapshot_record(record, &snapshot_id, "hibernate", size);
        self.store.insert_snapshot(&snapshot).await?;
        self.store.transition(&record.id, &[SandboxState::Hibernating], SandboxState::Paused, None).await?;
        self.events.emit(&record.tenant_id, hibernate("succeeded").snapshot(&snapshot_id)).await;
        let created = NewEvent::sandbox("snapshot_created", "succeeded", actor, &record.id)
            .reason(reason)
            .snapshot(&snapshot_id)
            .meta("created_via", "hibernate");
        self.events.emit(&record.tenant_id, timeout_meta(created)).await;
        Ok(snapshot)
    }

    /// Captures running sandbox `id` into a new snapshot; the sandbox keeps running.
    pub async fn snapshot(&self, tenant: &Tenant, id: &str) -> ControlResult<SnapshotRecord> {
        let record = self.get(tenant, id).await?;
        Self::running(&record)?;
        let (record, _mounts_held) = self.hold_mounts(&record).await?;
        let snapshot = self.capture(&record, "snapshot").await?;
        let created = NewEvent::sandbox("snapshot_created", "succeeded", "user", id)
            .reason("api")
            .snapshot(&snapshot.id)
            .meta("created_via", "api");
        self.events.emit(&tenant.id, created).await;
        Ok(snapshot)
    }

    async fn capture(&self, record: &SandboxRecord, kind: &str) -> ControlResult<SnapshotRecord> {
        Self::running(record)?;
        let snapshot_id = crate::ids::snapshot_id();
        let layer = self.node.layer_dir(&snapshot_id).to_string_lossy().into_owned();
        let _pending = SetGuard::insert(&self.pending_layers, layer);
        let size = self.node.capture(&record.id, &snapshot_id).await?;
        let snapshot = self.snapshot_record(record, &snapshot_id, kind, size);
        self.store.insert_snapshot(&snapshot).await?;
        Ok(snapshot)
    }

    /// The live snapshot `snapshot_or_sandbox_id` of `tenant`, or the snapshot of paused sandbox with that
    /// id. Unknown or deleted → `sandbox_not_found`, as the client expects on resume.
    async fn resolve_snapshot(&self, tenant: &Tenant, snapshot_or_sandbox_id: &str) -> ControlResult<SnapshotRecord> {
        let not_found = || ControlError::SandboxNotFound { sandbox_id: snapshot_or_sandbox_id.to_owned() };
        if let Some(snapshot) = self.store.get_snapshot(&tenant.id, snapshot_or_sandbox_id).await? {
            return Ok(snapshot);
        }
        let record = self.store.get_sandbox(&tenant.id, snapshot_or_sandbox_id).await?.ok_or_else(not_found)?;
        match (record.state, record.snapshot_id) {
            (SandboxState::Paused, Some(snapshot_id)) => {
                self.store.get_snapshot(&tenant.id, &snapshot_id).await?.ok_or_else(not_found)
            }
            _ => Err(not_found()),
        }
    }

    fn record_from_snapshot(
        &self,
        tenant: &Tenant,
        snapshot: &SnapshotRecord,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        timeout_ms: Option<u64>,
        idempotency_key: Option<String>,
    ) -> SandboxRecord {
        let config = &snapshot.config;
        let mut record = new_record(
            tenant,
            snapshot.template.clone(),
            (config.vcpus, config.memory_mb),
            config.envs.clone(),
            metadata.unwrap_or_else(|| snapshot.metadata.clone()),
            config.cwd.clone(),
            timeout_ms.unwrap_or(config.timeout_ms),
            &config.timeout_action,
            snapshot.layers.clone(),
            idempotency_key,
        );
        record.network = config.network.clone();
        record.volumes = config.volumes.clone();
        record.auto_resume = config.auto_resume;
        record.disk_mb = self.disk_limits.inherit(config.disk_mb);
        record
    }

    /// Resumes a snapshot (or a paused sandbox) as a new running sandbox with the original configuration;
    /// the paused alias of the source goes away.
    pub async fn resume(&self, tenant: &Tenant, snapshot_or_sandbox_id: &str) -> ControlResult<SandboxRecord> {
        let snapshot = self.resolve_snapshot(tenant, snapshot_or_sandbox_id).await?;
        self.admit(snapshot.config.vcpus, snapshot.config.memory_mb).await?;
        let record = self.record_from_snapshot(tenant, &snapshot, None, None, None);
        let memory = self.memory_of(&snapshot);
        let from_files = memory.is_none();
        // The paused alias goes away once the resumed sandbox runs: it does not count beside it.
        let alias = self.store.paused_sandbox_of_snapshot(&tenant.id, &snapshot.id).await?.map(|alias| alias.id);
        let resumed = self.insert_and_start_replacing(record, "resume", memory, alias.as_deref()).await?;
        if from_files {
            self.restart_template(&resumed).await;
        }
        if let Some(alias) = self.store.paused_sandbox_of_snapshot(&tenant.id, &snapshot.id).await? {
            // Only if it is still paused: an alias being auto-resumed meanwhile lives on.
            if self.store.transition(&alias.id, &[SandboxState::Paused], SandboxState::Destroying, None).await? {
                self.release(&alias.id).await?;
            }
        }
        let mut event = NewEvent::sandbox("resume_from_snapshot", "succeeded", "user", &resumed.id)
            .reason("api")
            .snapshot(&snapshot.id);
        event.source_sandbox_id = Some(snapshot.sandbox_id.clone());
        event.target_sandbox_id = Some(resumed.id.clone());
        self.events.emit(&tenant.id, event).await;
        Ok(resumed)
    }

    /// `POST /v1/sandboxes` with `snapshot_id`: an independent sandbox from a snapshot.
    pub(super) async fn create_from_snapshot(
        &self,
        tenant: &Tenant,
        snapshot_id: &str,
        request: CreateSandboxRequest,
        idempotency_key: Option<String>,
    ) -> ControlResult<SandboxRecord> {
        let snapshot = self
            .store
            .get_snapshot(&tenant.id, snapshot_id)
            .await?
            .ok_or_else(|| ControlError::SnapshotNotFound { snapshot_id: snapshot_id.to_owned() })?;
        if let Some(timeout_ms) = request.timeout_ms {
            validate::timeout(timeout_ms)?;
        }
        if let Some(metadata) = &request.metadata {
            validate::metadata(metadata)?;
        }
        if request.desktop.is_some() {
            return Err(validate::invalid(
                "desktop: a sandbox created from a snapshot keeps the desktop settings of the snapshot's sandbox: leave out desktop",
            ));
        }
        super::create_fields::snapshot_create(&request, &snapshot.config)?;
        self.admit(snapshot.config.vcpus, snapshot.config.memory_mb).await?;
        // A create from a snapshot may ask for another disk size; otherwise it keeps the snapshot's.
        let disk_mb = match request.disk_mb {
            Some(_) => self.disk_limits.for_create(request.disk_mb).map_err(validate::invalid)?,
            None => self.disk_limits.inherit(snapshot.config.disk_mb),
        };
        let mut record =
            self.record_from_snapshot(tenant, &snapshot, request.metadata, request.timeout_ms, idempotency_key);
        record.disk_mb = disk_mb;
        // The caller's to set (the request was normalized: `lifecycle.on_timeout` is in `timeout_action`).
        if let Some(action) = request.timeout_action {
            record.timeout_action = action.as_str().to_owned();
        }
        if let Some(auto_resume) = request.auto_resume {
            record.auto_resume = auto_resume;
        }
        let memory = self.memory_of(&snapshot);
        let from_files = memory.is_none();
        let ours = record.id.clone();
        let created = self.insert_and_start(record, "api", memory).await?;
        // Under an idempotency key another request may have made it: that one starts it.
        if from_files && created.id == ours {
            self.restart_template(&created).await;
        }
        Ok(created)
    }

    /// The memory image to restore sandboxes of `snapshot` from: only when it has one and this node's
    /// runtime can restore it (a server restarted under runc boots such a snapshot from its files).
    pub(super) fn memory_of(&self, snapshot: &SnapshotRecord) -> Option<std::path::PathBuf> {
        let usable = snapshot.config.memory && self.node.memory_snapshots();
        usable.then(|| self.node.memory_image(&snapshot.id)).flatten()
    }

    /// Forks running sandbox `id`: a child with a copy of its filesystem and its configuration; both run on
    /// independently.
    pub async fn fork(&self, tenant: &Tenant, id: &str) -> ControlResult<SandboxRecord> {
        let parent = self.get(tenant, id).await?;
        Self::running(&parent)?;
        let (parent, _mounts_held) = self.hold_mounts(&parent).await?;
        self.admit(parent.vcpus, parent.memory_mb).await?;
        if !self.node.memory_snapshots() && parent.disk_mb.is_some() && self.node.forks_by_disk_copy(&parent.id) {
            return self.fork_disk(tenant, &parent).await;
        }
        let (layer, restore_from) = if self.node.memory_snapshots() {
            let layer = self.fork_layer_with_memory(&parent).await?;
            let image = self.memory_of(&layer);
            (layer, image)
        } else {
            (self.capture(&parent, "fork").await?, None)
        };
        let mut record = self.record_from_snapshot(tenant, &layer, None, None, None);
        record.metadata = parent.metadata.clone();
        let child = self.insert_and_start(record, "fork", restore_from).await;
        // The fork layer is kept alive by the child's layer list, not by a visible snapshot; nothing
        // restores the fork's memory image again.
        self.store.delete_snapshot(&tenant.id, &layer.id).await?;
        self.node.remove_memory_image(&layer.id);
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                self.collect_layers().await?;
                return Err(error);
            }
        };
        if !self.node.memory_snapshots() {
            self.restart_template(&child).await;
        }
        let mut event = NewEvent::sandbox("fork", "succeeded", "user", &child.id).reason("api");
        event.source_sandbox_id = Some(parent.id.clone());
        event.target_sandbox_id = Some(child.id.clone());
        self.events.emit(&tenant.id, event).await;
        Ok(child)
    }

    /// Fork of a running sandbox whose writes live on a disk image (runc/crun with a disk limit): the
    /// child's disk starts as a copy of the parent's image (a reflink where the data dir's filesystem
    /// shares blocks; see `nullspace_node::disk_clone`) and it stacks the parent's layers below it, so no
    /// snapshot layer is made. A child that is never recorded has its copy released here; once recorded,
    /// its launch (or the reaper) owns it.
    async fn fork_disk(&self, tenant: &Tenant, parent: &SandboxRecord) -> ControlResult<SandboxRecord> {
        let mut record = new_record(
            tenant,
            parent.template.clone(),
            (parent.vcpus, parent.memory_mb),
            parent.envs.clone(),
            parent.metadata.clone(),
            parent.cwd.clone(),
            parent.timeout_ms,
            &parent.timeout_action,
            parent.layers.clone(),
            None,
        );
        record.network = parent.network.clone();
        record.volumes = parent.volumes.clone();
        record.auto_resume = parent.auto_resume;
        // The copy is the parent's filesystem, of the parent's size.
        record.disk_mb = parent.disk_mb;
        let child_id = record.id.clone();
        let started = match self.node.clone_disk(&parent.id, &child_id).await {
            Ok(_) => self.insert_and_start(record, "fork", None).await,
            Err(error) => Err(error.into()),
        };
        let child = match started {
            Ok(child) => child,
            Err(error) => {
                if self.store.get_sandbox(&tenant.id, &child_id).await?.is_none() {
                    if let Err(release) = self.node.destroy(&child_id).await {
                        let release = crate::error_chain(&release);
                        tracing::warn!(error = %release, sandbox = %child_id, "cannot release a fork's disk copy");
                    }
                }
                return Err(error);
            }
        };
        self.restart_template(&child).await;
        let mut event = NewEvent::sandbox("fork", "succeeded", "user", &child.id).reason("api");
        event.source_sandbox_id = Some(parent.id.clone());
        event.target_sandbox_id = Some(child.id.clone());
        self.events.emit(&tenant.id, event).await;
        Ok(child)
    }

    /// The fork layer of running sandbox `parent` on a runtime that checkpoints memory: the parent is
    /// checkpointed (it stops), its upper dir becomes the layer, and it is restored under its own id on top
    /// of that layer, so the child launched from the same image continues from the same memory. The
    /// parent's record lists the new layer first. A parent that cannot be restored is torn down.
    async fn fork_layer_with_memory(&self, parent: &SandboxRecord) -> ControlResult<SnapshotRecord> {
        let snapshot_id = crate::ids::snapshot_id();
        let layer = self.node.layer_dir(&snapshot_id).to_string_lossy().into_owned();
        let _pending = SetGuard::insert(&self.pending_layers, layer.clone());
        // Recorded first: the parent stacks the layer from the moment its upper dir moves there.
        let mut layers = vec![layer.clone()];
        layers.extend(parent.layers.iter().cloned());
        self.store.set_sandbox_layers(&parent.id, &layers).await?;
        // Host connections into the guest (preview tunnels) cannot be checkpointed.
        self.preview.close_sandbox(&parent.id);
        let size = match self.node.fork_memory(&self.launch_spec(parent, None).await?, &snapshot_id).await {
            Ok(size) => size,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), sandbox = %parent.id, "fork with memory failed");
                if !std::path::Path::new(&layer).exists() {
                    self.store.set_sandbox_layers(&parent.id, &parent.layers).await?;
                }
                let alive =
                    tokio::time::timeout(std::time::Duration::from_secs(2), self.node.guest(&parent.id).health())
                        .await
                        .is_ok_and(|health| health.is_ok());
                if !alive {
                    self.store.transition(&parent.id, &[SandboxState::Running], SandboxState::Destroying, None).await?;
                    self.release(&parent.id).await?;
                }
                self.node.remove_memory_image(&snapshot_id);
                return Err(error.into());
            }
        };
        let mut resumed_parent = parent.clone();
        resumed_parent.layers = layers;
        // The snapshot's layers are the fork layer over the parent's earlier ones, as for a capture.
        let snapshot = self.snapshot_record(parent, &snapshot_id, "fork", size);
        debug_assert_eq!(snapshot.layers, resumed_parent.layers);
        self.store.insert_snapshot(&snapshot).await?;
        Ok(snapshot)
    }

    /// Live snapshot `id` of `tenant`.
    pub async fn get_snapshot(&self, tenant: &Tenant, id: &str) -> ControlResult<SnapshotRecord> {
        self.store
            .get_snapshot(&tenant.id, id)
            .await?
            .filter(|snapshot| snapshot.kind != "fork")
            .ok_or_else(|| ControlError::SnapshotNotFound { snapshot_id: id.to_owned() })
    }

    /// Snapshots of `tenant`, optionally of one sandbox and with metadata containing `metadata`.
    pub async fn list_snapshots(
        &self,
        tenant: &Tenant,
        sandbox_id: Option<&str>,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> ControlResult<Vec<SnapshotRecord>> {
        let snapshots = self.store.list_snapshots(&tenant.id, sandbox_id).await?;
        Ok(snapshots.into_iter().filter(|s| metadata.iter().all(|(k, v)| s.metadata.get(k) == Some(v))).collect())
    }

    /// Deletes snapshot `id`; a paused sandbox that lives in it is destroyed with it.
    pub async fn delete_snapshot(&self, tenant: &Tenant, id: &str) -> ControlResult<()> {
        let snapshot = self.get_snapshot(tenant, id).await?;
        if let Some(alias) = self.store.paused_sandbox_of_snapshot(&tenant.id, &snapshot.id).await? {
            self.destroy_record(&alias, "manual", "user").await?;
        }
        self.store.delete_snapshot(&tenant.id, id).await?;
        self.collect_layers().await
    }

    /// Removes layer directories that no live snapshot and no sandbox references.
    pub(super) async fn collect_layers(&self) -> ControlResult<()> {
        let mut referenced = self.store.referenced_layers().await?;
        referenced.extend(self.pending_layers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned());
        let removed = self.node.collect_layers(&referenced);
        if removed > 0 {
            tracing::debug!(removed, "removed unreferenced snapshot layers");
        }
        self.collect_template_layers().await
    }

    /// Removes built-template layers no template, sandbox or snapshot uses. Skipped while a build runs:
    /// its finished steps' layers belong to no template yet.
    async fn collect_template_layers(&self) -> ControlResult<()> {
        if self.templates.any_live() {
            return Ok(());
        }
        let keep = self
            .store
            .layers_in_use()
            .await?
            .iter()
            .filter_map(|id| nullspace_node::images::LayerId::parse(id).ok())
            .collect();
        let removed = self.node.collect_template_layers(&keep);
        if !removed.is_empty() {
            tracing::debug!(removed = removed.len(), "removed unreferenced template layers");
        }
        Ok(())
    }
}
