//! The reaper: acts on sandboxes whose deadline passed (destroy or hibernate), retries interrupted
//! destroys, and every few seconds fails running sandboxes whose guest daemon died (`guest_watch`).

use std::time::Duration;

use super::Control;
use crate::clock;

/// How often deadlines are checked.
const TICK: Duration = Duration::from_millis(500);

/// Ticks between two checks for dead guest daemons (one runtime listing each).
const GUEST_CHECK_TICKS: u32 = 4;

/// Spawns the reaper loop on the current runtime.
pub fn spawn_reaper(control: Control) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut suspects = super::guest_watch::Suspects::default();
        let mut ticks = 0u32;
        loop {
            interval.tick().await;
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(GUEST_CHECK_TICKS) {
                if let Err(error) = control.check_guests(&mut suspects).await {
                    tracing::warn!(error = %crate::error_chain(&error), "checking for dead guest daemons failed");
                }
            }
            match control.store().expired_sandboxes(clock::now_ms()).await {
                Ok(expired) => {
                    for (id, tenant_id) in expired {
                        if let Err(error) = control.expire(&tenant_id, &id).await {
                            tracing::warn!(sandbox = %id, error = %crate::error_chain(&error), "destroy at deadline failed");
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "reading deadlines failed")
                }
            }
            if let Err(error) = control.finish_pending_destroys().await {
                tracing::warn!(error = %crate::error_chain(&error), "retrying interrupted destroys failed");
            }
        }
    })
}
