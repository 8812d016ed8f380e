//! One execution on a kernel: sends the code (between the silent env snippets), turns the kernel's iopub
//! messages for it into events (stdout, stderr, results, artifacts, error, count) until the kernel is
//! idle, bounds the output, and handles timeouts, interrupts that do not take, and a kernel that dies.

use std::sync::Arc;
use std::time::Duration;

use jupyter_protocol::{JupyterMessage, JupyterMessageContent, Stdio};
use nullspace_types::code_api::{ExecutionError, ExecutionEvent, OutputText};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::envs::EnvSnippets;
use super::outputs::{displayed_image, error_event, result_from_bundle};
use crate::artifacts::ArtifactStore;
use crate::kernel::client::parent_id;
use crate::kernel::{Channels, Kernel};

/// How long a kernel gets to stop after an interrupt before it is declared stuck (and restarted).
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long the shell reply may trail the kernel's idle status.
const REPLY_GRACE: Duration = Duration::from_secs(2);

/// What one execution runs.
#[derive(Debug, Clone)]
pub struct Job {
    /// The user's code.
    pub code: String,
    /// Silent code around it setting the execution's envs.
    pub envs: Option<EnvSnippets>,
    /// When to interrupt it with a `TimeoutError`.
    pub timeout: Option<Duration>,
}

/// Where an execution's outputs go.
pub struct Sinks<'a> {
    /// The event stream (a closed receiver is fine: the execution still runs to its end).
    pub events: &'a mpsc::Sender<ExecutionEvent>,
    /// Where displayed images are stored.
    pub artifacts: &'a ArtifactStore,
    /// The context the execution runs in.
    pub context_id: &'a str,
    /// Bytes of output (text and result bundles) passed on before the rest is dropped.
    pub max_output_bytes: usize,
    /// Bumped by the context's interrupt route.
    pub interrupts: watch::Receiver<u64>,
}

/// How an execution ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel finished it (successfully or with an error event) and is usable.
    Finished,
    /// The kernel died or would not stop: the context needs a new one.
    KernelLost,
}

/// Runs `job` on `kernel` through its `channels`.
pub async fn execute(kernel: &Arc<Kernel>, channels: &mut Channels, job: &Job, mut sinks: Sinks<'_>) -> Outcome {
    let mut state = State::new(sinks.max_output_bytes);
    let sent = async {
        if let Some(envs) = &job.envs {
            channels.send_execute(&envs.before, true).await?;
        }
        channels.send_execute(&job.code, false).await
    };
    let id = match sent.await {
        Ok(id) => id,
        Err(error) => return lost(kernel, &sinks, &error.message()).await,
    };
    sinks.interrupts.borrow_and_update();
    let timeout_at = job.timeout.map(|timeout| Instant::now() + timeout);
    let mut stuck_at: Option<Instant> = None;
    loop {
        tokio::select! {
            message = channels.next_iopub() => match message {
                Ok(message) if parent_id(&message) == Some(id.as_str()) => {
                    if state.handle(message, &sinks).await {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => return lost(kernel, &sinks, &error.message()).await,
            },
            how = kernel.process.wait_exit() => {
                let reason = kernel.stop_reason().unwrap_or_else(|| format!("the kernel {how}"));
                return lost(kernel, &sinks, &reason).await;
            }
            _ = sleep_until(timeout_at), if !state.timed_out => {
                state.timed_out = true;
                kernel.interrupt().await;
                stuck_at.get_or_insert(Instant::now() + INTERRUPT_GRACE);
            }
            changed = sinks.interrupts.changed() => {
                if changed.is_ok() {
                    stuck_at.get_or_insert(Instant::now() + INTERRUPT_GRACE);
                }
            }
            _ = sleep_until(stuck_at) => {
                kernel.stop("the kernel did not stop within 5 s of an interrupt and was restarted");
                let reason = "the kernel did not stop within 5 s of the interrupt; it was restarted".to_owned();
                return lost(kernel, &sinks, &if state.timed_out { state.timeout_message(job) } else { reason }).await;
            }
        }
    }
    if let Ok(Ok(reply)) = tokio::time::timeout(REPLY_GRACE, channels.reply_to(&id)).await {
        if let Some(count) = reply.execution_count.filter(|count| *count > 0) {
            state.execution_count.get_or_insert(count);
        }
    }
    if state.timed_out {
        send(
            &sinks,
            ExecutionEvent::Error(ExecutionError {
                name: "TimeoutError".into(),
                value: state.timeout_message(job),
                traceback: String::new(),
            }),
        )
        .await;
    }
    if let Some(execution_count) = state.execution_count {
        send(&sinks, ExecutionEvent::NumberOfExecutions { execution_count }).await;
    }
    if let Some(envs) = &job.envs {
        if let Err(error) = channels.send_execute(&envs.after, true).await {
            tracing::warn!("cannot restore the environment after an execution: {}", error.message());
        }
    }
    Outcome::Finished
}

/// What one execution has seen so far.
struct State {
    execution_count: Option<i64>,
    timed_out: bool,
    images: usize,
    output_bytes: usize,
    max_output_bytes: usize,
    truncated: bool,
}

impl State {
    fn new(max_output_bytes: usize) -> Self {
        Self { execution_count: None, timed_out: false, images: 0, output_bytes: 0, max_output_bytes, truncated: false }
    }

    /// Handles one iopub message of the execution; true once the kernel is idle again.
    async fn handle(&mut self, message: JupyterMessage, sinks: &Sinks<'_>) -> bool {
        match message.content {
            JupyterMessageContent::Status(status) => {
                return status.execution_state == jupyter_protocol::ExecutionState::Idle;
            }
            JupyterMessageContent::ExecuteInput(input) => {
                self.execution_count = Some(input.execution_count.value() as i64)
            }
            JupyterMessageContent::StreamContent(stream) => self.stream(stream, sinks).await,
            JupyterMessageContent::ExecuteResult(result) => {
                self.execution_count = Some(result.execution_count.value() as i64);
                self.display(bundle_of(&result.data), true, sinks).await;
            }
            JupyterMessageContent::DisplayData(display) => self.display(bundle_of(&display.data), false, sinks).await,
            JupyterMessageContent::UpdateDisplayData(update) => {
                self.display(bundle_of(&update.data), false, sinks).await
            }
            // After a timeout the kernel reports its interrupt; the execution's error is the timeout.
            JupyterMessageContent::ErrorOutput(error) if !self.timed_out => {
                send(sinks, ExecutionEvent::Error(error_event(&error.ename, &error.evalue, &error.traceback))).await
            }
            _ => {}
        }
        false
    }

    /// A chunk of stdout or stderr, within the output bound.
    async fn stream(&mut self, stream: jupyter_protocol::StreamContent, sinks: &Sinks<'_>) {
        if !self.admit(stream.text.len(), sinks).await {
            return;
        }
        let text = OutputText { text: stream.text, timestamp: Some(crate::ids::now_ms()) };
        let event = match stream.name {
            Stdio::Stdout => ExecutionEvent::Stdout(text),
            Stdio::Stderr => ExecutionEvent::Stderr(text),
        };
        send(sinks, event).await;
    }

    /// A result, and the artifact of the image it displays.
    async fn display(&mut self, bundle: Map<String, Value>, is_main_result: bool, sinks: &Sinks<'_>) {
        let size: usize = bundle.values().map(|value| value.as_str().map_or(64, str::len)).sum();
        if !self.admit(size, sinks).await {
            return;
        }
        let image = displayed_image(&bundle);
        send(sinks, ExecutionEvent::Result(Box::new(result_from_bundle(&bundle, is_main_result)))).await;
        if let Some((mime, bytes)) = image {
            self.images += 1;
            match sinks.artifacts.save(sinks.context_id, self.execution_count, self.images, mime, &bytes) {
                Ok(artifact) => send(sinks, ExecutionEvent::Artifact { artifact }).await,
                Err(error) => tracing::warn!("cannot store an artifact: {}", error.message()),
            }
        }
    }

    /// Whether `bytes` more output fit the execution's bound; the first time they do not, says so on stderr.
    async fn admit(&mut self, bytes: usize, sinks: &Sinks<'_>) -> bool {
        if self.truncated {
            return false;
        }
        if self.output_bytes + bytes <= self.max_output_bytes {
            self.output_bytes += bytes;
            return true;
        }
        self.truncated = true;
        let text = format!(
            "\n[nullspace: output truncated: this execution passed the gateway's limit of {} bytes of output; the rest of its output is dropped]\n",
            self.max_output_bytes
        );
        send(sinks, ExecutionEvent::Stderr(OutputText { text, timestamp: Some(crate::ids::now_ms()) })).await;
        false
    }

    fn timeout_message(&self, job: &Job) -> String {
        let seconds = job.timeout.map(|t| t.as_secs()).unwrap_or_default();
        format!("execution timed out after {seconds} s and was interrupted; the context's state is kept")
    }
}

/// Reports a kernel that is gone: the error event for the execution, and the outcome that has the
/// context start a new kernel.
async fn lost(kernel: &Kernel, sinks: &Sinks<'_>, reason: &str) -> Outcome {
    let tail = kernel.process.stderr_tail();
    let mut value = format!("{reason}; the context's kernel is restarted and its state is lost");
    if !tail.is_empty() && kernel.stop_reason().is_none() {
        let last: Vec<&str> = tail.lines().rev().take(5).collect();
        value.push_str(&format!(" (kernel stderr: {})", last.into_iter().rev().collect::<Vec<_>>().join(" | ")));
    }
    let name = if reason.starts_with("execution timed out") { "TimeoutError" } else { "DeadKernelError" };
    send(sinks, ExecutionEvent::Error(ExecutionError { name: name.into(), value, traceback: String::new() })).await;
    Outcome::KernelLost
}

async fn send(sinks: &Sinks<'_>, event: ExecutionEvent) {
    // A client that went away does not stop the execution; its events are dropped.
    let _ = sinks.events.send(event).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn bundle_of(media: &jupyter_protocol::Media) -> Map<String, Value> {
    match serde_json::to_value(media) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}
