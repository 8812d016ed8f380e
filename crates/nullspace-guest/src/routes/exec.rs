//! `POST /exec`: translate the request into an [`ExecSpec`] and run it in the foreground (answer when it
//! exits; `timeout_secs` enforced) or in the background (answer `{pid}` at once; no timeout, stdin piped).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nullspace_types::exec_api::{BackgroundProcess, ExecRequest};
use serde::Deserialize;

use super::extract::JsonBody;
use crate::error::GuestResult;
use crate::exec::service::{run_foreground, start, timeout_of};
use crate::exec::spawn::ExecSpec;
use crate::state::Sandbox;

/// The public exec body plus guest-side extras.
#[derive(Debug, Deserialize)]
pub struct GuestExecRequest {
    #[serde(flatten)]
    pub(crate) request: ExecRequest,
    /// Run as this sandbox user (default user when absent).
    #[serde(default)]
    user: Option<String>,
}

/// `POST /exec`.
pub async fn exec(State(sandbox): State<Sandbox>, JsonBody(body): JsonBody<GuestExecRequest>) -> GuestResult<Response> {
    let request = body.request;
    let spec = ExecSpec {
        command: request.command,
        args: request.args,
        shell: request.shell.unwrap_or(false),
        cwd: request.cwd,
        envs: request.envs,
        user: body.user,
        stdin: request.background,
    };
    if request.background {
        let (process, _events) = start(&sandbox, &spec, None)?;
        return Ok(Json(BackgroundProcess { pid: process.pid }).into_response());
    }
    let result = run_foreground(&sandbox, &spec, timeout_of(request.timeout_secs)).await?;
    Ok(Json(result).into_response())
}
