//! `/processes`: the sandbox's process table, and kill / stdin / logs of one process.

use axum::extract::State;
use axum::Json;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use nullspace_types::exec_api::{ProcessInfo, ProcessLogs};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{JsonBody, PathParams};
use crate::error::{GuestError, GuestResult};
use crate::exec::procfs;
use crate::exec::registry::Process;
use crate::files::upload::run_blocking;
use crate::state::Sandbox;

/// Body of `POST /processes/{pid}/stdin`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StdinBody {
    data: Option<String>,
}

fn parse_pid(text: &str) -> GuestResult<u32> {
    match text.parse::<i64>() {
        Ok(pid) if pid > 0 && pid <= i64::from(i32::MAX) => Ok(pid as u32),
        Ok(pid) => Err(GuestError::ProcessNotFound { pid }),
        Err(_) => Err(GuestError::invalid(format!("invalid pid {text:?}; send a positive integer"))),
    }
}

fn own_process(sandbox: &Sandbox, pid: u32) -> GuestResult<std::sync::Arc<Process>> {
    sandbox.registry().get(pid).ok_or(GuestError::ProcessNotFound { pid: i64::from(pid) })
}

/// `GET /processes`.
pub async fn list(State(sandbox): State<Sandbox>) -> GuestResult<Json<Vec<ProcessInfo>>> {
    let registry = sandbox.registry().clone();
    Ok(Json(run_blocking(move || Ok(procfs::list(&registry, "/proc"))).await?))
}

/// `POST /processes/{pid}/kill`: SIGKILL to the process group of a command guestd started, or to
/// the single process otherwise.
pub async fn kill_process(
    State(sandbox): State<Sandbox>,
    PathParams(pid): PathParams<String>,
) -> GuestResult<Json<Value>> {
    let pid = parse_pid(&pid)?;
    if let Some(process) = sandbox.registry().get(pid) {
        process.kill();
        return Ok(Json(json!({})));
    }
    if pid == std::process::id() {
        return Err(GuestError::invalid("refusing to kill the guest daemon; kill the sandbox instead"));
    }
    match kill(Pid::from_raw(pid as i32), Signal::SIGKILL) {
        Ok(()) => Ok(Json(json!({}))),
        Err(_) => Err(GuestError::ProcessNotFound { pid: i64::from(pid) }),
    }
}

/// `POST /processes/{pid}/stdin`.
pub async fn stdin(
    State(sandbox): State<Sandbox>,
    PathParams(pid): PathParams<String>,
    JsonBody(body): JsonBody<StdinBody>,
) -> GuestResult<Json<Value>> {
    let process = own_process(&sandbox, parse_pid(&pid)?)?;
    process.write_stdin(body.data.unwrap_or_default().as_bytes()).await?;
    Ok(Json(json!({})))
}

/// `GET /processes/{pid}/logs`.
pub async fn logs(
    State(sandbox): State<Sandbox>,
    PathParams(pid): PathParams<String>,
) -> GuestResult<Json<ProcessLogs>> {
    let process = own_process(&sandbox, parse_pid(&pid)?)?;
    let (stdout, stderr, output) = process.logs();
    Ok(Json(ProcessLogs { stdout, stderr, output, exit_code: process.exit_code() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_parse_strictly() {
        assert_eq!(parse_pid("42").unwrap(), 42);
        assert!(matches!(parse_pid("0"), Err(GuestError::ProcessNotFound { .. })));
        assert!(matches!(parse_pid("-3"), Err(GuestError::ProcessNotFound { .. })));
        assert!(matches!(parse_pid("abc"), Err(GuestError::InvalidRequest { .. })));
    }
}
