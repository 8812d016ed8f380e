//! Tenant quotas: whether a new sandbox, an adopted warm-pool sandbox or a new volume fits the limits
//! the operator set for its tenant, checked under the admission lock right before the row is written,
//! so two concurrent requests cannot both take the last slot.

use super::service::ControlResult;
use super::{Control, ControlError, SandboxState};
use crate::store::{SandboxRecord, TenantLimits, TenantUsage, VolumeRecord};

/// One limit of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Sandboxes held.
    Sandboxes,
    /// vCPUs reserved.
    Vcpus,
    /// Memory reserved, MiB.
    MemoryMb,
    /// Disk reserved, MiB.
    DiskMb,
    /// Volumes held.
    Volumes,
}

impl Limit {
    /// Its name in errors' `details` and in `nullspace tenant get --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandboxes => "max_sandboxes",
            Self::Vcpus => "max_vcpus",
            Self::MemoryMb => "max_memory_mb",
            Self::DiskMb => "max_disk_mb",
            Self::Volumes => "max_volumes",
        }
    }

    /// What it counts, for messages.
    fn what(self) -> &'static str {
        match self {
            Self::Sandboxes => "sandboxes",
            Self::Vcpus => "vCPUs",
            Self::MemoryMb => "MiB of memory",
            Self::DiskMb => "MiB of disk",
            Self::Volumes => "volumes",
        }
    }
}

/// What a request adds to its tenant's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ask {
    /// Sandboxes.
    pub sandboxes: u64,
    /// vCPUs.
    pub vcpus: u64,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Disk, MiB.
    pub disk_mb: u64,
    /// Volumes.
    pub volumes: u64,
}

impl Ask {
    /// What sandbox `record` holds (a paused one reserves no CPU or memory; one without a disk size no
    /// disk).
    pub fn sandbox(record: &SandboxRecord) -> Self {
        let paused = record.state == SandboxState::Paused;
        Self {
            sandboxes: 1,
            vcpus: if paused { 0 } else { u64::from(record.vcpus) },
            memory_mb: if paused { 0 } else { u64::from(record.memory_mb) },
            disk_mb: record.disk_mb.map_or(0, u64::from),
            volumes: 0,
        }
    }

    /// One more volume.
    pub fn volume() -> Self {
        Self { volumes: 1, ..Self::default() }
    }
}

/// A request past one of its tenant's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant quota {} exceeded: {used} of {max} {} in use, {requested} more requested; free some (kill sandboxes, delete volumes) or ask the operator to raise it",
    .limit.as_str(),
    .limit.what()
)]
pub struct QuotaRefusal {
    /// The limit.
    pub limit: Limit,
    /// Its value.
    pub max: u64,
    /// What the tenant holds now.
    pub used: u64,
    /// What the request would add.
    pub requested: u64,
}

impl QuotaRefusal {
    /// The `details` of the error envelope.
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit.as_str(),
            "max": self.max,
            "used": self.used,
            "requested": self.requested,
        })
    }
}

/// Checks that `usage` plus `ask` stays within `limits`; the first limit passed is the refusal. Only
/// what the request adds is checked: a tenant already above a lowered limit can still free room.
pub fn check(limits: &TenantLimits, usage: &TenantUsage, ask: &Ask) -> Result<(), QuotaRefusal> {
    let figures = [
        (Limit::Sandboxes, limits.max_sandboxes, usage.sandboxes, ask.sandboxes),
        (Limit::Vcpus, limits.max_vcpus, usage.vcpus, ask.vcpus),
        (Limit::MemoryMb, limits.max_memory_mb, usage.memory_mb, ask.memory_mb),
        (Limit::DiskMb, limits.max_disk_mb, usage.disk_mb, ask.disk_mb),
        (Limit::Volumes, limits.max_volumes, usage.volumes, ask.volumes),
    ];
    for (limit, max, used, requested) in figures {
        let Some(max) = max else { continue };
        if requested > 0 && used.saturating_add(requested) > max {
            return Err(QuotaRefusal { limit, max, used, requested });
        }
    }
    Ok(())
}

impl Control {
    /// Fails with [`ControlError::Quota`] when `record` does not fit its tenant's limits beside what the
    /// tenant holds, not counting sandbox `replaces` (the paused sandbox a resume takes the place of).
    /// Callers hold the admission lock from this check until the row is written.
    pub(super) async fn check_sandbox_quota(
        &self,
        record: &SandboxRecord,
        replaces: Option<&str>,
    ) -> ControlResult<()> {
        let limits = self.store.tenant_limits(&record.tenant_id).await?;
        if limits == TenantLimits::default() {
            return Ok(());
        }
        let usage = self.store.tenant_usage(&record.tenant_id, replaces).await?;
        check(&limits, &usage, &Ask::sandbox(record)).map_err(ControlError::Quota)
    }

    /// Moves claimed built-in pool member `id` from the system's tenant `from` to `to` if it fits `to`'s
    /// limits; otherwise puts it back into its pool and fails with [`ControlError::Quota`]. `false` when
    /// it is not a claimed member of `from` any more.
    pub(super) async fn adopt_within_quota(&self, id: &str, from: &str, to: &str) -> ControlResult<bool> {
        let _admission = self.admission.lock().await;
        let Some(mut record) = self.store.get_sandbox(from, id).await? else { return Ok(false) };
        record.tenant_id = to.to_owned();
        if let Err(error) = self.check_sandbox_quota(&record, None).await {
            self.store.unclaim_pool_sandbox(id).await?;
            self.warm.ready.notify_waiters();
            return Err(error);
        }
        Ok(self.store.adopt_pool_sandbox(id, from, to).await?)
    }

    /// Fails with [`ControlError::Quota`] when the tenant of `volume` holds its maximum of volumes.
    pub(super) async fn check_volume_quota(&self, tenant_id: &str) -> ControlResult<()> {
        let limits = self.store.tenant_limits(tenant_id).await?;
        if limits.max_volumes.is_none() {
            return Ok(());
        }
        let usage = self.store.tenant_usage(tenant_id, None).await?;
        check(&limits, &usage, &Ask::volume()).map_err(ControlError::Quota)
    }

    /// Records `volume` if its tenant may hold one more (checked and written under the admission
    /// lock); `false` when the tenant already has a volume of that name.
    pub(super) async fn insert_volume_within_quota(&self, volume: &VolumeRecord) -> ControlResult<bool> {
        let _admission = self.admission.lock().await;
        self.check_volume_quota(&volume.tenant_id).await?;
        Ok(self.store.insert_volume(volume).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TenantLimits {
        TenantLimits {
            max_sandboxes: Some(3),
            max_vcpus: Some(4),
            max_memory_mb: Some(2048),
            max_disk_mb: Some(10_240),
            max_volumes: Some(1),
        }
    }

    fn sandbox(vcpus: u64, memory_mb: u64) -> Ask {
        Ask { sandboxes: 1, vcpus, memory_mb, ..Ask::default() }
    }

    #[test]
    fn no_limits_admit_anything() {
        let usage = TenantUsage { sandboxes: 1000, vcpus: 1000, memory_mb: 1 << 30, disk_mb: 1 << 30, volumes: 50 };
        assert_eq!(check(&TenantLimits::default(), &usage, &sandbox(64, 1 << 20)), Ok(()));
    }

    #[test]
    fn the_last_slot_is_taken_and_the_next_refused_naming_the_limit() {
        let usage = TenantUsage { sandboxes: 2, vcpus: 2, memory_mb: 1024, ..TenantUsage::default() };
        assert_eq!(check(&limits(), &usage, &sandbox(2, 1024)), Ok(()));
        let full = TenantUsage { sandboxes: 3, ..usage };
        let refusal = check(&limits(), &full, &sandbox(1, 256)).unwrap_err();
        assert_eq!(refusal, QuotaRefusal { limit: Limit::Sandboxes, max: 3, used: 3, requested: 1 });
        assert!(refusal.to_string().contains("max_sandboxes") && refusal.to_string().contains("3 of 3"), "{refusal}");
        assert_eq!(refusal.details()["limit"], "max_sandboxes");
    }

    #[test]
    fn each_resource_is_checked_against_its_own_limit() {
        let usage = TenantUsage { sandboxes: 1, vcpus: 3, memory_mb: 1024, disk_mb: 10_000, volumes: 1 };
        assert_eq!(check(&limits(), &usage, &sandbox(2, 256)).unwrap_err().limit, Limit::Vcpus);
        assert_eq!(check(&limits(), &usage, &sandbox(1, 1025)).unwrap_err().limit, Limit::MemoryMb);
        let disk = Ask { disk_mb: 241, ..sandbox(1, 256) };
        assert_eq!(check(&limits(), &usage, &disk).unwrap_err().limit, Limit::DiskMb);
        let refusal = check(&limits(), &usage, &Ask::volume()).unwrap_err();
        assert_eq!((refusal.limit, refusal.max, refusal.used), (Limit::Volumes, 1, 1));
    }

    #[test]
    fn what_a_request_does_not_add_is_not_checked() {
        // Above a lowered vCPU limit, a volume (which takes no vCPUs) is still admitted.
        let usage = TenantUsage { vcpus: 10, ..TenantUsage::default() };
        let limits = TenantLimits { max_vcpus: Some(4), max_volumes: Some(2), ..TenantLimits::default() };
        assert_eq!(check(&limits, &usage, &Ask::volume()), Ok(()));
        // Sums that would overflow are refused, not wrapped.
        let huge = TenantUsage { vcpus: u64::MAX, ..TenantUsage::default() };
        assert!(check(&limits, &huge, &sandbox(1, 0)).is_err());
    }
}
