//! The reconcile at start: brings store and host in line after a restart or a crash.

use std::collections::BTreeSet;

use super::events::NewEvent;
use super::service::ControlResult;
use super::{Control, SandboxState};
use crate::store::SandboxRecord;

impl Control {
    /// Running sandboxes that still answer stay running; interrupted hibernates end as paused (when their
    /// layer is complete) or running (when it never started); everything else that is gone ends destroyed,
    /// and nothing the store does not own is left on the host.
    pub async fn reconcile(&self) -> ControlResult<()> {
        self.reconcile_volumes().await?;
        self.reconcile_builds().await?;
        // An auto-resume cut short: the sandbox is paused again (its snapshot is intact); the node's
        // reconcile below removes whatever the resume had started, as it is not expected to run.
        for record in self.store.sandboxes_in_states(&[SandboxState::Resuming]).await? {
            let why = "server restarted while the sandbox was resuming";
            self.store.transition(&record.id, &[SandboxState::Resuming], SandboxState::Paused, Some(why)).await?;
        }
        let records = self
            .store
            .sandboxes_in_states(&[
                SandboxState::Creating,
                SandboxState::Running,
                SandboxState::Error,
                SandboxState::Hibernating,
            ])
            .await?;
        let mut hibernated = BTreeSet::new();
        for record in records.iter().filter(|r| r.state == SandboxState::Hibernating) {
            if self.finish_hibernate(record).await? {
                hibernated.insert(record.id.clone());
            }
        }
        let expected: BTreeSet<String> = records
            .iter()
            .filter(|r| matches!(r.state, SandboxState::Running | SandboxState::Hibernating))
            .filter(|r| !hibernated.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        let report = self.node.reconcile(&expected).await?;
        for record in records.iter().filter(|r| !hibernated.contains(&r.id)) {
            if report.alive.contains(&record.id) {
                if record.state == SandboxState::Hibernating {
                    // The hibernate never reached the filesystem: the sandbox simply keeps running.
                    self.store
                        .transition(&record.id, &[SandboxState::Hibernating], SandboxState::Running, None)
                        .await?;
                    self.store.set_sandbox_snapshot(&record.id, None).await?;
                }
                continue;
            }
            let why = match record.state {
                SandboxState::Running | SandboxState::Hibernating => "sandbox was gone when the server restarted",
                _ => "server restarted before the sandbox finished creating",
            };
            let sources = SandboxState::sources_of(SandboxState::Destroying);
            self.store.transition(&record.id, &sources, SandboxState::Destroying, Some(why)).await?;
            self.store.transition(&record.id, &[SandboxState::Destroying], SandboxState::Destroyed, None).await?;
            let event = NewEvent::sandbox("destroy", "succeeded", "reconcile", &record.id).reason("reconcile");
            self.events.emit(&record.tenant_id, event).await;
        }
        for record in records.iter().filter(|r| report.network_lost.contains(&r.id)) {
            if record.is_idle_pool_member() {
                // It holds nothing of anyone's: a fresh one from the refill beats a repaired one.
                self.destroy_record(record, "network_lost", "reconcile").await?;
            } else {
                tracing::error!(sandbox = %record.id, "the sandbox's network was removed while the server was down (bridge or firewall table deleted): it runs but reaches nothing; hibernate and resume it to rebuild its network");
            }
        }
        self.finish_pending_destroys().await?;
        self.collect_layers().await?;
        tracing::info!(
            alive = report.alive.len(),
            gone = report.gone.len(),
            orphans = report.orphans_destroyed.len(),
            hibernated = hibernated.len(),
            "reconciled sandboxes with the host"
        );
        Ok(())
    }

    /// Completes an interrupted hibernate whose layer reached the disk; returns whether it did.
    async fn finish_hibernate(&self, record: &SandboxRecord) -> ControlResult<bool> {
        let Some(snapshot_id) = record.snapshot_id.clone() else { return Ok(false) };
        let layer = self.node.layer_dir(&snapshot_id);
        let recorded = self.store.snapshot_exists(&snapshot_id).await?;
        if !recorded && !layer.is_dir() {
            return Ok(false);
        }
        // The layer is complete (it appears by rename); make sure nothing of the sandbox still runs.
        self.node.destroy(&record.id).await?;
        if !recorded {
            let size = nullspace_node::layer_size(&layer);
            let snapshot = self.snapshot_record(record, &snapshot_id, "hibernate", size);
            self.store.insert_snapshot(&snapshot).await?;
        }
        self.store.transition(&record.id, &[SandboxState::Hibernating], SandboxState::Paused, None).await?;
        Ok(true)
    }
}
