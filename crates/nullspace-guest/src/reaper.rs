//! PID 1 duty: reap every exited child on SIGCHLD (and on a slow tick, in case a signal was coalesced),
//! handing statuses of guestd's own commands to their owners through the registry.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::exec::registry::Registry;

/// Reaps children until the task is dropped.
pub async fn run(registry: Arc<Registry>) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGCHLD; reaping on a timer only");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        match sigchld.as_mut() {
            Some(stream) => {
                tokio::select! {
                    _ = stream.recv() => {}
                    _ = tick.tick() => {}
                }
            }
            None => {
                tick.tick().await;
            }
        }
        registry.reap();
    }
}
