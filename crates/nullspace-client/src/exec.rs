//! Commands over REST: foreground and background exec, the process list, kill and logs.

use std::time::Duration;

use nullspace_types::exec_api::{BackgroundProcess, ExecRequest, ExecResult, ProcessInfo, ProcessLogs};
use reqwest::Method;

use crate::client::{segment, Client};
use crate::error::ClientError;

/// Extra time the HTTP request gets on top of the command's own timeout.
const EXEC_GRACE: Duration = Duration::from_secs(15);

impl Client {
    /// `POST …/exec` in the foreground: waits for the exit and returns the captured output.
    pub async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecResult, ClientError> {
        let body = ExecRequest { background: false, ..request.clone() };
        let timeout = Duration::from_secs(body.timeout_secs.unwrap_or(30)) + EXEC_GRACE;
        let builder = self.request(Method::POST, &exec_path(id))?.timeout(timeout).json(&body);
        self.send_json(builder).await
    }

    /// `POST …/exec` with `background: true`: returns the pid at once.
    pub async fn exec_background(&self, id: &str, request: &ExecRequest) -> Result<BackgroundProcess, ClientError> {
        let body = ExecRequest { background: true, ..request.clone() };
        let builder = self.request(Method::POST, &exec_path(id))?.json(&body);
        self.send_json(builder).await
    }

    /// `GET …/processes`.
    pub async fn list_processes(&self, id: &str) -> Result<Vec<ProcessInfo>, ClientError> {
        let builder = self.request(Method::GET, &format!("/v1/sandboxes/{}/processes", segment(id)))?;
        self.send_json(builder).await
    }

    /// `POST …/processes/{pid}/kill`.
    pub async fn kill_process(&self, id: &str, pid: u32) -> Result<(), ClientError> {
        let builder = self.request(Method::POST, &format!("/v1/sandboxes/{}/processes/{pid}/kill", segment(id)))?;
        self.send_empty(builder).await
    }

    /// `GET …/processes/{pid}/logs`.
    pub async fn process_logs(&self, id: &str, pid: u32) -> Result<ProcessLogs, ClientError> {
        let builder = self.request(Method::GET, &format!("/v1/sandboxes/{}/processes/{pid}/logs", segment(id)))?;
        self.send_json(builder).await
    }
}

fn exec_path(id: &str) -> String {
    format!("/v1/sandboxes/{}/exec", segment(id))
}
