//! The live PTY sessions of the sandbox, by id; a session leaves the table as soon as its shell exited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use nullspace_types::pty_api::PtySessionInfo;

use super::session::PtySession;
use super::spawn::{spawn_shell, ShellSpec};
use crate::error::{GuestError, GuestResult};
use crate::ids::new_id;
use crate::state::Sandbox;

/// Largest terminal side accepted.
const MAX_SIDE: u16 = 1000;

/// Every live PTY session.
#[derive(Default)]
pub struct PtyTable {
    sessions: Mutex<HashMap<String, Arc<PtySession>>>,
}

/// Checks terminal dimensions.
pub fn check_size(cols: u16, rows: u16) -> GuestResult<()> {
    if cols == 0 || rows == 0 || cols > MAX_SIDE || rows > MAX_SIDE {
        return Err(GuestError::invalid(format!(
            "invalid terminal size {cols}x{rows}; cols and rows must be between 1 and {MAX_SIDE}"
        )));
    }
    Ok(())
}

impl PtyTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PtySession>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for `spec`.
    pub fn start(self: &Arc<Self>, sandbox: &Sandbox, spec: &ShellSpec) -> GuestResult<Arc<PtySession>> {
        check_size(spec.cols, spec.rows)?;
        let shell = spawn_shell(sandbox, spec)?;
        let pid = shell.pid;
        let table: Weak<Self> = Arc::downgrade(self);
        let forget = move |id: &str| {
            if let Some(table) = table.upgrade() {
                table.lock().remove(id);
            }
        };
        let session = PtySession::start(new_id("ses_"), shell, spec.cols, spec.rows, forget).map_err(|error| {
            GuestError::Internal { context: format!("cannot watch the pty of shell {pid}: {error}") }
        })?;
        // The shell may already be gone; only keep sessions that still run.
        let mut sessions = self.lock();
        if session.exit_code().is_none() {
            sessions.insert(session.id.clone(), session.clone());
        }
        tracing::debug!(session = %session.id, pid, "pty session started");
        Ok(session)
    }

    /// The session `id`.
    pub fn get(&self, id: &str) -> GuestResult<Arc<PtySession>> {
        self.lock().get(id).cloned().ok_or_else(|| GuestError::PtySessionNotFound { session: id.to_owned() })
    }

    /// The session whose shell has `pid`.
    pub fn by_pid(&self, pid: u32) -> GuestResult<Arc<PtySession>> {
        self.lock()
            .values()
            .find(|session| session.pid == pid)
            .cloned()
            .ok_or_else(|| GuestError::PtySessionNotFound { session: format!("with pid {pid}") })
    }

    /// Every live session, oldest pid first.
    pub fn list(&self) -> Vec<PtySessionInfo> {
        let mut infos: Vec<_> = self.lock().values().map(|session| session.info()).collect();
        infos.sort_by_key(|info| info.pid);
        infos
    }

    /// Kills every session (at shutdown).
    pub fn kill_all(&self) {
        for session in self.lock().values() {
            session.kill();
        }
    }
}
