//! One build step in its own build sandbox: launched on the layers so far, the step's command run
//! through the guest with its output streamed into the build log, and, when it exits 0, the sandbox's
//! writes moved out as the step's layer. The sandbox is released whatever happens, cancellation included.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nullspace_node::network::NetworkPolicy;
use nullspace_node::{BindMount, LaunchSpec, RootImage};
use nullspace_types::exec_api::ExecServerMessage;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::build_runner::BuildFailure;
use super::template_builds::{BuildLog, LogLine};
use super::Control;

/// Directory every build sandbox has (made by the guest at boot when the image lacks it).
const BUILD_WORKSPACE: &str = "/workspace";
/// Longest a single step may run.
const STEP_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Output lines kept for the failure message.
const TAIL_LINES: usize = 15;

/// What one step runs and where.
pub(super) struct StepSpec {
    /// The layers so far and the stage's environment.
    pub root: RootImage,
    /// The command's argument vector.
    pub argv: Vec<String>,
    /// User it runs as.
    pub user: String,
    /// Working directory.
    pub cwd: String,
    /// Build-only environment (build envs, secrets): given to this command, never written anywhere.
    pub envs: BTreeMap<String, String>,
    /// Read-only host directories the command reads (context, other stages).
    pub inputs: Vec<BindMount>,
    /// Network of the build sandbox.
    pub network: NetworkPolicy,
    /// CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
}

/// Where the step stands in the build, for log lines.
#[derive(Clone, Copy)]
pub(super) struct StepPosition {
    /// 0-based index.
    pub index: usize,
    /// Number of layer steps.
    pub total: usize,
}

impl StepPosition {
    /// An info line of this step.
    pub fn line(self, message: impl Into<String>) -> LogLine {
        LogLine {
            phase: Some("step".into()),
            step_index: Some(self.index),
            total_steps: Some(self.total),
            ..LogLine::info(message)
        }
    }

    /// A failure of this step.
    pub fn failure(self, code: &str, message: impl Into<String>) -> BuildFailure {
        BuildFailure { step_index: Some(self.index), ..BuildFailure::new(code, "step", message) }
    }
}

/// Runs `spec` in a fresh build sandbox and, when its command exits 0, moves the sandbox's writes to
/// `commit_to` (a fresh path on the data dir's filesystem).
pub(super) async fn run(
    control: &Control,
    spec: StepSpec,
    position: StepPosition,
    log: &BuildLog,
    cancel: &CancellationToken,
    commit_to: &Path,
) -> Result<(), BuildFailure> {
    let sandbox_id = crate::ids::sandbox_id();
    let launch = LaunchSpec {
        sandbox_id: sandbox_id.clone(),
        root: spec.root.clone(),
        envs: BTreeMap::new(),
        // The guest creates its working directory at boot: every template has `/workspace`, as the
        // built-in one does (steps still run in the stage's WORKDIR, `/` by default).
        cwd: Some(BUILD_WORKSPACE.to_owned()),
        layers: Vec::new(),
        network: spec.network.clone(),
        vcpus: spec.vcpus,
        memory_mb: spec.memory_mb,
        disk_mb: None,
        restore_from: None,
        volumes: Vec::new(),
        build: true,
        inputs: spec.inputs.clone(),
    };
    let node = control.node();
    let outcome = tokio::select! {
        outcome = async {
            node.launch(&launch).await.map_err(|e| position.failure("build_error", format!("cannot start the build sandbox: {}", crate::error_chain(&e))))?;
            execute(control, &sandbox_id, &spec, position, log).await?;
            node.commit_upper(&sandbox_id, commit_to)
                .await
                .map_err(|e| position.failure("build_error", format!("cannot save the step's layer: {}", crate::error_chain(&e))))
        } => outcome,
        () = cancel.cancelled() => Err(position.failure("cancelled", "the build was cancelled")),
    };
    if outcome.is_err() {
        if let Err(error) = node.destroy(&sandbox_id).await {
            tracing::warn!(sandbox = %sandbox_id, error = %crate::error_chain(&error), "cannot release a build sandbox");
        }
    }
    outcome
}

/// Runs the step's command through the guest's exec channel; output lines go to the log.
async fn execute(
    control: &Control,
    sandbox_id: &str,
    spec: &StepSpec,
    position: StepPosition,
    log: &BuildLog,
) -> Result<(), BuildFailure> {
    let guest_error = |e: &dyn std::error::Error| position.failure("build_error", format!("build sandbox: {e}"));
    let mut socket = control.node().guest(sandbox_id).websocket("/ws").await.map_err(|e| guest_error(&e))?;
    let (program, args) = spec.argv.split_first().ok_or_else(|| position.failure("build_error", "empty command"))?;
    let start = serde_json::json!({
        "type": "exec_start",
        "id": "step",
        "command": program,
        "args": args,
        "cwd": spec.cwd,
        "envs": spec.envs,
        "user": spec.user,
        "shell": false,
        "timeout_secs": STEP_TIMEOUT.as_secs(),
    });
    socket.send(Message::Text(start.to_string().into())).await.map_err(|e| guest_error(&e))?;
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut partial = String::new();
    let mut emit = |text: &str, partial: &mut String, flush: bool| {
        partial.push_str(text);
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            let line = line.trim_end().to_owned();
            log.line(position.line(line.clone()));
            tail.push_back(line);
            if tail.len() > TAIL_LINES {
                tail.pop_front();
            }
        }
        if flush && !partial.is_empty() {
            let line = std::mem::take(partial);
            log.line(position.line(line.clone()));
            tail.push_back(line);
        }
    };
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => return Err(guest_error(&e)),
        };
        match serde_json::from_str::<ExecServerMessage>(&text) {
            Ok(ExecServerMessage::ExecStdout { data, .. } | ExecServerMessage::ExecStderr { data, .. }) => {
                emit(&data, &mut partial, false)
            }
            Ok(ExecServerMessage::ExecExit { exit_code, .. }) => {
                emit("", &mut partial, true);
                if exit_code == 0 {
                    return Ok(());
                }
                let tail: Vec<String> = tail.into_iter().collect();
                return Err(position.failure(
                    "build_error",
                    format!(
                        "step {} exited with code {exit_code}; last output:\n{}",
                        position.index + 1,
                        tail.join("\n")
                    ),
                ));
            }
            Ok(ExecServerMessage::Error { message, .. }) => {
                return Err(position.failure("build_error", format!("cannot run the step: {message}")))
            }
            _ => {}
        }
    }
    Err(position.failure("build_error", "the build sandbox closed the command stream before the step ended"))
}
