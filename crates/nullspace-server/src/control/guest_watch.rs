//! Sandboxes whose guest daemon died (the memory cgroup killed it, or anything else ended the
//! sandbox's init): the reaper asks the node every few seconds which running sandboxes lost their
//! container. One seen stopped on two checks in a row, and not held by a state capture or volume
//! change meanwhile (a fork with memory stops and restores the container), goes to `error` with the
//! reason recorded, a `reconcile` `failed` lifecycle event says so, and its node resources are released
//! (its processes are gone with their init). Before, such a sandbox stayed `running` while every
//! request answered 500.

use std::collections::BTreeSet;

use super::events::NewEvent;
use super::service::ControlResult;
use super::{Control, SandboxState};
use crate::store::SandboxRecord;

/// What the sandbox records as its error, and the lifecycle event as its message.
pub const GUEST_EXITED: &str =
    "the sandbox's guest daemon (its init) exited and its processes are gone; destroy the sandbox and create another";

/// Stopped sandboxes seen by the previous check, to be confirmed by the next one.
#[derive(Debug, Default)]
pub struct Suspects(BTreeSet<String>);

impl Suspects {
    /// Records the `stopped` sandboxes of this check (less the `held` ones) and returns those already
    /// seen stopped by the previous check: the ones to fail now.
    pub fn confirm(&mut self, stopped: BTreeSet<String>, held: &BTreeSet<String>) -> BTreeSet<String> {
        let stopped: BTreeSet<String> = stopped.difference(held).cloned().collect();
        let confirmed = stopped.intersection(&self.0).cloned().collect();
        self.0 = stopped;
        confirmed
    }
}

impl Control {
    /// One check: fails the running sandboxes whose container stopped (see the module documentation).
    pub(super) async fn check_guests(&self, suspects: &mut Suspects) -> ControlResult<()> {
        let running = self.store.sandboxes_in_states(&[SandboxState::Running]).await?;
        let ids: BTreeSet<String> = running.iter().map(|record| record.id.clone()).collect();
        if ids.is_empty() {
            suspects.confirm(BTreeSet::new(), &BTreeSet::new());
            return Ok(());
        }
        let stopped = match self.node.stopped_sandboxes(&ids).await {
            Ok(stopped) => stopped,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "checking sandbox containers failed");
                return Ok(());
            }
        };
        let held = self.volume_changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let held: BTreeSet<String> = held.into_iter().collect();
        for id in suspects.confirm(stopped, &held) {
            if let Some(record) = running.iter().find(|record| record.id == id) {
                self.guest_died(record).await?;
            }
        }
        Ok(())
    }

    /// Moves running sandbox `record`, whose init exited, to `error` and releases what it held on the node.
    async fn guest_died(&self, record: &SandboxRecord) -> ControlResult<()> {
        if !self.store.transition(&record.id, &[SandboxState::Running], SandboxState::Error, Some(GUEST_EXITED)).await?
        {
            return Ok(()); // it changed state meanwhile (destroyed, hibernated): nothing to report
        }
        tracing::warn!(sandbox = %record.id, "the guest daemon exited; the sandbox is now in error");
        let mut event = NewEvent::sandbox("reconcile", "failed", "system", &record.id).reason("guest_exited");
        event.error_message = Some(GUEST_EXITED.to_owned());
        if !record.is_idle_pool_member() {
            // an idle warm-pool sandbox is the pool's: its refill replaces it
            self.events.emit(&record.tenant_id, event).await;
        }
        self.preview.close_sandbox(&record.id);
        if let Err(error) = self.node.destroy(&record.id).await {
            // Destroying the sandbox later retries the release.
            tracing::warn!(sandbox = %record.id, error = %crate::error_chain(&error), "releasing a dead sandbox failed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn a_sandbox_fails_only_when_seen_stopped_twice_and_not_held() {
        let mut suspects = Suspects::default();
        assert!(suspects.confirm(set(&["a", "b"]), &set(&[])).is_empty(), "first sighting");
        assert_eq!(suspects.confirm(set(&["a", "b", "c"]), &set(&["b"])), set(&["a"]), "b is being forked");
        assert!(suspects.confirm(set(&["b", "c"]), &set(&[])).contains("c"));
        assert!(suspects.confirm(set(&["b"]), &set(&[])).contains("b"), "held no more, seen twice");
        assert!(suspects.confirm(set(&[]), &set(&[])).is_empty());
        assert!(suspects.confirm(set(&["b"]), &set(&[])).is_empty(), "a gap resets");
    }
}
