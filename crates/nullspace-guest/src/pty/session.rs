//! One PTY session: the shell, the pty master it talks through, its size, and a broadcast of its
//! output and exit. A reader task always drains the master, so the shell never blocks on a full
//! terminal; output produced while no WebSocket is attached is dropped (a reattach sees new output
//! only). The exit is reported after the trailing output has drained.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use nullspace_types::pty_api::PtySessionInfo;
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, watch};

use super::spawn::{set_size, Shell};

/// Bytes read from the master at once (each becomes at most one `pty_output`, well under 64 KiB).
pub const READ_CHUNK: usize = 16 * 1024;

/// Events buffered per attached socket before it lags.
const EVENT_BUFFER: usize = 1024;

/// How long trailing output may still drain after the shell exited.
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// What attached sockets see.
#[derive(Debug, Clone)]
pub enum PtyEvent {
    /// Terminal output.
    Output(Bytes),
    /// The shell exited; always the last event.
    Exit(i32),
}

/// A live PTY session.
pub struct PtySession {
    /// `ses_…`.
    pub id: String,
    /// Shell pid.
    pub pid: u32,
    size: Mutex<(u16, u16)>,
    master: AsyncFd<std::fs::File>,
    events: broadcast::Sender<PtyEvent>,
    exit: watch::Sender<Option<i32>>,
}

impl PtySession {
    /// Wraps a freshly spawned `shell` and starts draining its output; `on_exit` runs once it exited.
    pub fn start(
        id: String,
        shell: Shell,
        cols: u16,
        rows: u16,
        on_exit: impl FnOnce(&str) + Send + 'static,
    ) -> std::io::Result<Arc<Self>> {
        let file = std::fs::File::from(shell.master);
        // SAFETY: the `File` owns the master descriptor and lives inside the `AsyncFd` until it is
        // dropped; nothing else closes or replaces that descriptor.
        let master = unsafe { AsyncFd::register(file) }.map_err(|error| error.into_parts().1)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let session = Arc::new(Self {
            id,
            pid: shell.pid,
            size: Mutex::new((cols, rows)),
            master,
            events,
            exit: watch::Sender::new(None),
        });
        let reader = tokio::spawn(session.clone().drain());
        let watcher = session.clone();
        tokio::spawn(async move {
            let status = shell.reaped.await.unwrap_or(WaitStatus::StillAlive);
            let code = match status {
                WaitStatus::Exited(_, code) => code,
                WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
                _ => -1,
            };
            if tokio::time::timeout(DRAIN_GRACE, reader).await.is_err() {
                tracing::debug!(pid = watcher.pid, "pty still open after the shell exited");
            }
            watcher.exit.send_replace(Some(code));
            let _ = watcher.events.send(PtyEvent::Exit(code));
            on_exit(&watcher.id);
        });
        Ok(session)
    }

    async fn drain(self: Arc<Self>) {
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let Ok(mut guard) = self.master.readable().await else {
                return;
            };
            match guard.try_io(|file| file.get_ref().read(&mut buffer)) {
                Ok(Ok(0)) => return,
                Ok(Ok(n)) => {
                    // Nobody attached → the chunk is dropped (documented behaviour).
                    let _ = self.events.send(PtyEvent::Output(Bytes::copy_from_slice(&buffer[..n])));
                }
                // EIO: every slave descriptor is closed (the shell and its children are gone).
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        }
    }

    /// The REST view of the session.
    pub fn info(&self) -> PtySessionInfo {
        let (cols, rows) = *self.size.lock().unwrap_or_else(PoisonError::into_inner);
        PtySessionInfo { session_id: self.id.clone(), pid: self.pid, cols, rows }
    }

    /// The exit code once the shell exited.
    pub fn exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    /// A feed of what happens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PtyEvent> {
        self.events.subscribe()
    }

    /// Types `data` into the terminal.
    pub async fn write(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|file| file.get_ref().write(data)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Resizes the terminal.
    pub fn resize(&self, cols: u16, rows: u16) -> std::io::Result<()> {
        set_size(self.master.get_ref(), cols, rows)?;
        *self.size.lock().unwrap_or_else(PoisonError::into_inner) = (cols, rows);
        Ok(())
    }

    /// Hangs up and kills the shell's process group (a no-op once it exited).
    pub fn kill(&self) {
        if self.exit_code().is_some() {
            return;
        }
        let pid = Pid::from_raw(self.pid as i32);
        let _ = killpg(pid, Signal::SIGHUP);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }
}
