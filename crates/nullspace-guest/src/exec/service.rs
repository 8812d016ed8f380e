//! Running commands: start one (registering it, arming its timeout) and run one in the foreground to
//! its exit. A program that does not exist runs as a shell would report it (exit 127) in the
//! foreground; elsewhere it is an `exec_failed` error since no process exists to attach to.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use nullspace_types::exec_api::ExecResult;
use tokio::sync::broadcast;

use super::registry::{Process, ProcessEvent};
use super::spawn::{build, ExecSpec};
use crate::error::{GuestError, GuestResult};
use crate::state::Sandbox;

/// Timeout of a command whose request names none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Exit code of a command whose program does not exist (as `sh` reports it).
pub const NOT_FOUND_EXIT_CODE: i32 = 127;

/// Exit code of a command whose program cannot be executed (as `sh` reports it).
pub const NOT_EXECUTABLE_EXIT_CODE: i32 = 126;

/// The timeout of a request: `None` → the default, `0` → none.
pub fn timeout_of(timeout_secs: Option<u64>) -> Option<Duration> {
    match timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS) {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    }
}

/// Starts `spec`, killing its process group after `timeout`; returns the process and a subscription
/// taken before any output was read.
pub fn start(
    sandbox: &Sandbox,
    spec: &ExecSpec,
    timeout: Option<Duration>,
) -> GuestResult<(Arc<Process>, broadcast::Receiver<ProcessEvent>)> {
    let (command, command_line) = build(spec, sandbox)?;
    let (process, events) = sandbox.registry().spawn(command, command_line)?;
    tracing::debug!(pid = process.pid, command = %process.command, "started");
    if let Some(timeout) = timeout {
        let process = process.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(timeout, process.wait()).await.is_err() {
                tracing::info!(pid = process.pid, ?timeout, "timeout elapsed; killing the process group");
                process.kill_for_timeout();
            }
        });
    }
    Ok((process, events))
}

/// Runs `spec` to its exit and returns its output.
pub async fn run_foreground(sandbox: &Sandbox, spec: &ExecSpec, timeout: Option<Duration>) -> GuestResult<ExecResult> {
    let process = match start(sandbox, spec, timeout) {
        Ok((process, _events)) => process,
        Err(error) => return shell_like_failure(error),
    };
    let exit_code = process.wait().await;
    let (stdout, stderr, _) = process.logs();
    Ok(ExecResult { exit_code, stdout, stderr, pid: Some(process.pid) })
}

/// A spawn failure a shell would report as an exit code (missing or non-executable program) becomes
/// that result; anything else stays an error.
pub fn shell_like_failure(error: GuestError) -> GuestResult<ExecResult> {
    let GuestError::Spawn { command, source } = &error else {
        return Err(error);
    };
    let (exit_code, reason) = match source.kind() {
        io::ErrorKind::NotFound => (NOT_FOUND_EXIT_CODE, "command not found"),
        io::ErrorKind::PermissionDenied => (NOT_EXECUTABLE_EXIT_CODE, "permission denied"),
        _ => return Err(error),
    };
    Ok(ExecResult { exit_code, stdout: String::new(), stderr: format!("{command}: {reason}\n"), pid: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_default_and_zero_means_none() {
        assert_eq!(timeout_of(None), Some(Duration::from_secs(30)));
        assert_eq!(timeout_of(Some(0)), None);
        assert_eq!(timeout_of(Some(5)), Some(Duration::from_secs(5)));
    }

    #[test]
    fn missing_programs_become_exit_127() {
        let error = GuestError::Spawn { command: "nope".into(), source: io::Error::from(io::ErrorKind::NotFound) };
        let result = shell_like_failure(error).unwrap();
        assert_eq!(result.exit_code, 127);
        assert_eq!(result.stderr, "nope: command not found\n");
        let error = GuestError::Spawn { command: "x".into(), source: io::Error::from_raw_os_error(libc::EAGAIN) };
        assert!(shell_like_failure(error).is_err());
    }
}
