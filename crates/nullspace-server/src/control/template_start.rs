//! What a built template gives each sandbox: its root (the template's layers and defaults) and, before
//! a create returns, its start command, run once with the template's runtime and build environment (not
//! the create's envs), and its readiness check, polled until it holds or its time is up (then the create
//! fails and the sandbox goes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Request;
use nullspace_types::exec_api::{ExecRequest, ExecResult};
use nullspace_types::template_api::Readiness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use nullspace_node::images::LayerId;
use nullspace_node::RootImage;

use super::build_runner::TemplateRuntime;
use super::{Control, ControlError};

/// Default time a readiness check gets.
const DEFAULT_READINESS_SECS: u64 = 60;
/// Default pause between attempts.
const DEFAULT_INTERVAL_MS: u64 = 200;

impl Control {
    /// The root filesystem of built template `template_id`, also when the template was deleted since
    /// (its sandboxes and snapshots keep it, and its layers, alive).
    pub(super) async fn built_root_image(&self, template_id: &str) -> Result<RootImage, ControlError> {
        let record = self
            .store
            .get_template_any(template_id)
            .await?
            .ok_or_else(|| ControlError::TemplateNotFound { template: template_id.to_owned() })?;
        let image = super::template_refs::image_of(&record);
        let layers = image
            .layers
            .iter()
            .rev()
            .map(|id| LayerId::parse(id).map(|id| self.node().layers().path(&id)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ControlError::InvalidRequest { message: format!("template {template_id} is corrupt: {e}") })?;
        Ok(RootImage {
            layers,
            envs: image.runtime.envs.clone(),
            default_user: image.runtime.default_user.clone().unwrap_or_else(|| "root".into()),
            default_cwd: image.runtime.default_workdir.clone().unwrap_or_else(|| "/workspace".into()),
        })
    }

    /// Runs the template's start command again (and waits for its readiness) in sandbox `record`, which
    /// was booted from a snapshot's files without a memory image: none of the processes the template
    /// started survived. A template without a start command needs nothing. A start that fails is
    /// logged, not fatal: the sandbox and its files are the caller's either way.
    pub(super) async fn restart_template(&self, record: &crate::store::SandboxRecord) {
        let runtime = match self.store.get_template_any(&record.template).await {
            Ok(Some(template)) => super::template_refs::image_of(&template).runtime,
            Ok(None) => return, // a node template (`base`): no start command
            Err(error) => {
                tracing::warn!(sandbox = %record.id, error = %crate::error_chain(&error), "cannot read the template to start it again");
                return;
            }
        };
        if runtime.start_cmd.is_none() && runtime.readiness.is_none() {
            return;
        }
        if let Err(error) = self.start_template(&record.id, &runtime, &record.envs).await {
            tracing::warn!(sandbox = %record.id, error = %crate::error_chain(&error), "the template's start command failed after a boot from files");
        }
    }

    /// Runs `runtime`'s start command in sandbox `sandbox_id` (in the background) and waits for its
    /// readiness. An error means the sandbox is not usable and must be destroyed.
    pub(super) async fn start_template(
        &self,
        sandbox_id: &str,
        runtime: &TemplateRuntime,
        create_envs: &BTreeMap<String, String>,
    ) -> Result<(), ControlError> {
        if let Some(start_cmd) = runtime.start_cmd.as_deref().filter(|c| !c.trim().is_empty()) {
            self.run_start_command(sandbox_id, runtime, start_cmd, create_envs).await?;
        }
        if let Some(readiness) = &runtime.readiness {
            self.wait_ready(sandbox_id, readiness).await?;
        }
        Ok(())
    }

    async fn run_start_command(
        &self,
        sandbox_id: &str,
        runtime: &TemplateRuntime,
        start_cmd: &str,
        create_envs: &BTreeMap<String, String>,
    ) -> Result<(), ControlError> {
        // The sandbox's environment holds the create's envs; the start command must not see them (unless
        // the template sets the same names), and it gets the build envs. Only `/bin/sh` is assumed.
        let mut envs: BTreeMap<String, String> = runtime.envs.clone();
        envs.extend(runtime.start_envs.clone());
        // A desktop sandbox's settings are the exception: its desktop daemon starts the X server from them.
        envs.extend(super::desktop::start_envs(create_envs));
        let hidden: Vec<&str> =
            create_envs.keys().filter(|key| !envs.contains_key(*key) && is_env_name(key)).map(String::as_str).collect();
        let script =
            if hidden.is_empty() { start_cmd.to_owned() } else { format!("unset {}\n{start_cmd}", hidden.join(" ")) };
        let request = ExecRequest {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), script],
            background: true,
            cwd: runtime.default_workdir.clone(),
            envs,
            ..ExecRequest::default()
        };
        let (status, body) = self.guest_exec(sandbox_id, &request).await?;
        if !status.is_success() {
            return Err(start_failed(format!("the template's start command could not start: {body}")));
        }
        Ok(())
    }

    async fn wait_ready(&self, sandbox_id: &str, readiness: &Readiness) -> Result<(), ControlError> {
        let (timeout, interval, grace) = match readiness {
            Readiness::Timeout { timeout_ms } => {
                tokio::time::sleep(Duration::from_millis(*timeout_ms)).await;
                return Ok(());
            }
            Readiness::Tcp { timeout_secs, interval_ms, startup_grace_secs, .. }
            | Readiness::Http { timeout_secs, interval_ms, startup_grace_secs, .. }
            | Readiness::Command { timeout_secs, interval_ms, startup_grace_secs, .. } => (
                Duration::from_secs(timeout_secs.unwrap_or(DEFAULT_READINESS_SECS)),
                Duration::from_millis(interval_ms.unwrap_or(DEFAULT_INTERVAL_MS).max(10)),
                Duration::from_secs(startup_grace_secs.unwrap_or(0)),
            ),
        };
        tokio::time::sleep(grace).await;
        let started = Instant::now();
        loop {
            let last = match self.check_ready(sandbox_id, readiness).await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            // A sandbox destroyed meanwhile (its create was abandoned, its pool deleted) is not waited for.
            if self.node().guest(sandbox_id).health().await.is_err() {
                return Err(start_failed(format!(
                    "the sandbox stopped before the template's readiness check ({}) passed: {last}",
                    describe(readiness)
                )));
            }
            if started.elapsed() >= timeout {
                return Err(start_failed(format!(
                    "the template's readiness check ({}) did not pass within {}s: {last}",
                    describe(readiness),
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One attempt; `Err` says why it did not pass.
    async fn check_ready(&self, sandbox_id: &str, readiness: &Readiness) -> Result<(), String> {
        let guest = self.node().guest(sandbox_id);
        match readiness {
            Readiness::Tcp { port, .. } => guest.tcp_tunnel(*port).await.map(drop).map_err(|e| e.to_string()),
            Readiness::Http { port, path, .. } => {
                let mut tunnel = guest.tcp_tunnel(*port).await.map_err(|e| e.to_string())?;
                let path = path.clone().filter(|p| p.starts_with('/')).unwrap_or_else(|| "/".into());
                let request = format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
                tunnel.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                let mut head = [0_u8; 16];
                let read = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut head))
                    .await
                    .map_err(|_| "no answer within 5s".to_owned())?
                    .map_err(|e| e.to_string())?;
                let status =
                    std::str::from_utf8(&head[..read]).unwrap_or("").split(' ').nth(1).unwrap_or("").to_owned();
                if status.starts_with('2') || status.starts_with('3') {
                    Ok(())
                } else {
                    Err(format!("GET {path} answered {status:?}"))
                }
            }
            Readiness::Command { command, .. } => {
                let request = ExecRequest {
                    command: "/bin/sh".into(),
                    args: vec!["-c".into(), command.clone()],
                    timeout_secs: Some(30),
                    ..ExecRequest::default()
                };
                let (status, body) = self.guest_exec(sandbox_id, &request).await.map_err(|e| e.to_string())?;
                let result: ExecResult =
                    serde_json::from_str(&body).map_err(|_| format!("exec answered {status}: {body}"))?;
                if result.exit_code == 0 {
                    Ok(())
                } else {
                    Err(format!("`{command}` exited with {}", result.exit_code))
                }
            }
            Readiness::Timeout { .. } => Ok(()),
        }
    }

    /// `POST /exec` on the guest of `sandbox_id`: the status and the body.
    async fn guest_exec(
        &self,
        sandbox_id: &str,
        request: &ExecRequest,
    ) -> Result<(http::StatusCode, String), ControlError> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let http = Request::post("/exec")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| start_failed(e.to_string()))?;
        let response = self.node().guest(sandbox_id).send(http).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| start_failed(e.to_string()))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// Whether `key` can be named in `unset` (a shell variable name).
fn is_env_name(key: &str) -> bool {
    key.chars().next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && key.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn describe(readiness: &Readiness) -> String {
    match readiness {
        Readiness::Tcp { port, .. } => format!("tcp port {port}"),
        Readiness::Http { port, path, .. } => format!("http port {port} {}", path.as_deref().unwrap_or("/")),
        Readiness::Command { command, .. } => format!("command `{command}`"),
        Readiness::Timeout { timeout_ms } => format!("wait {timeout_ms} ms"),
    }
}

fn start_failed(message: String) -> ControlError {
    ControlError::TemplateStart { message }
}
