//! The gateway's client of one kernel: connects the shell, iopub and control channels (through
//! `jupyter-zmq-client`, pure-Rust ZeroMQ), waits until the kernel answers and publishes, runs the
//! language's startup code silently, and offers the primitives executions are built from.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jupyter_protocol::{ExecuteRequest, InterruptRequest, JupyterMessage, KernelInfoRequest};
use jupyter_zmq_client::{
    ClientControlConnection, ClientIoPubConnection, ClientShellConnection, KernelspecDir, RawMessage, RuntimeError,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

use super::process::KernelProcess;
use super::KernelError;

/// How long a kernel may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How often connecting to a starting kernel is tried.
const CONNECT_ATTEMPTS: u32 = 10;
/// How long one readiness probe waits for the kernel's iopub status.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// A started kernel.
pub struct Kernel {
    /// The process.
    pub process: KernelProcess,
    interrupt_by_message: bool,
    channels: Mutex<Channels>,
    control: Mutex<ClientControlConnection>,
    stop_reason: std::sync::Mutex<Option<String>>,
    /// The environment the kernel holds: what it started with, then what was set in it since.
    seen_envs: std::sync::Mutex<BTreeMap<String, String>>,
}

/// The shell and iopub channels: whoever holds them runs one execution at a time.
pub struct Channels {
    shell: ClientShellConnection,
    iopub: ClientIoPubConnection,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("process", &self.process).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channels")
    }
}

impl Kernel {
    /// Starts `spec` in `cwd` and returns it once it runs code, after running `startup` (silently).
    pub async fn start(
        spec: &KernelspecDir,
        runtime_dir: &Path,
        tag: &str,
        cwd: &Path,
        envs: &[(String, String)],
        startup: Option<&str>,
    ) -> Result<Arc<Self>, KernelError> {
        let process = KernelProcess::spawn(spec, runtime_dir, tag, cwd, envs).await?;
        let connecting = async {
            // A kernel still binding its ports can reset a first connection; each attempt uses fresh
            // sockets and a fresh identity (the kernel's ROUTER ignores a duplicate one).
            let mut attempt = 1;
            loop {
                match connect(&process.connection, startup).await {
                    Ok(connected) => return Ok(connected),
                    Err(error) if attempt < CONNECT_ATTEMPTS => {
                        tracing::debug!(attempt, "connecting to the kernel failed, retrying: {}", error.message());
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(START_TIMEOUT, connecting) => outcome,
            how = process.wait_exit() => {
                return Err(KernelError::start(with_stderr(format!("the kernel {how}"), &process)));
            }
        };
        let (channels, control) = match outcome {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => return Err(KernelError::start(with_stderr(error.message(), &process))),
            Err(_) => {
                let message = format!("no answer within {} s", START_TIMEOUT.as_secs());
                return Err(KernelError::start(with_stderr(message, &process)));
            }
        };
        let interrupt_by_message = spec.kernelspec.interrupt_mode.as_deref() == Some("message");
        Ok(Arc::new(Self {
            process,
            interrupt_by_message,
            channels: Mutex::new(channels),
            control: Mutex::new(control),
            stop_reason: std::sync::Mutex::new(None),
            seen_envs: std::sync::Mutex::new(std::env::vars().chain(envs.iter().cloned()).collect()),
        }))
    }

    /// The entries of `now` the kernel's environment lacks or holds with another value.
    pub fn unseen_envs(&self, now: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let seen = self.seen_envs.lock().unwrap_or_else(|p| p.into_inner());
        crate::exec::sandbox_envs::changed(now, &seen)
    }

    /// Records that `envs` were set in the kernel.
    pub fn saw_envs(&self, envs: BTreeMap<String, String>) {
        self.seen_envs.lock().unwrap_or_else(|p| p.into_inner()).extend(envs);
    }

    /// The shell and iopub channels, for one execution.
    pub async fn channels(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().await
    }

    /// Kills the kernel's process group on purpose; `reason` is what a running execution reports.
    pub fn stop(&self, reason: &str) {
        if let Ok(mut slot) = self.stop_reason.lock() {
            slot.get_or_insert_with(|| reason.to_owned());
        }
        self.process.signal(Signal::SIGKILL);
    }

    /// Why the kernel was stopped on purpose, if it was.
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason.lock().ok().and_then(|slot| slot.clone())
    }

    /// Interrupts what the kernel runs: SIGINT to its process group, or an `interrupt_request` on the
    /// control channel for kernels whose spec asks for messages.
    pub async fn interrupt(&self) {
        if !self.interrupt_by_message {
            self.process.signal(Signal::SIGINT);
            return;
        }
        let mut control = self.control.lock().await;
        let request: JupyterMessage = InterruptRequest {}.into();
        let sent = tokio::time::timeout(Duration::from_secs(2), control.send(request)).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!("interrupt_request not delivered; signalling instead");
            self.process.signal(Signal::SIGINT);
        }
    }
}

/// Connects the shell, iopub and control channels of the kernel at `info`, waits until it is ready and
/// runs `startup`.
async fn connect(
    info: &jupyter_protocol::ConnectionInfo,
    startup: Option<&str>,
) -> Result<(Channels, ClientControlConnection), KernelError> {
    let session = uuid_like();
    let identity = jupyter_zmq_client::peer_identity_for_session(&session)?;
    let (shell, iopub, control) = tokio::try_join!(
        jupyter_zmq_client::create_client_shell_connection_with_identity(info, &session, identity),
        jupyter_zmq_client::create_client_iopub_connection(info, "", &session),
        jupyter_zmq_client::create_client_control_connection(info, &session),
    )?;
    let mut channels = Channels { shell, iopub };
    channels.wait_ready().await?;
    if let Some(code) = startup {
        channels.run_silently(code).await?;
    }
    Ok((channels, control))
}

impl Channels {
    /// Sends an `execute_request` on the shell channel and returns its message id.
    pub async fn send_execute(&mut self, code: &str, silent: bool) -> Result<String, KernelError> {
        let request = ExecuteRequest {
            code: code.to_owned(),
            silent,
            store_history: !silent,
            user_expressions: None,
            allow_stdin: false,
            // One request at a time: an error must not abort the gateway's own follow-up requests.
            stop_on_error: false,
        };
        let message: JupyterMessage = request.into();
        let id = message.header.msg_id.clone();
        self.shell.send(message).await?;
        Ok(id)
    }

    /// The next iopub message; messages that cannot be decoded are skipped.
    pub async fn next_iopub(&mut self) -> Result<JupyterMessage, KernelError> {
        loop {
            match self.iopub.read().await {
                Ok(message) => return Ok(message),
                Err(error) if is_fatal(&error) => return Err(error.into()),
                Err(error) => tracing::debug!("skipping an undecodable iopub message: {error}"),
            }
        }
    }

    /// The shell reply to request `id` (earlier replies nobody waited for are dropped). Replies are
    /// decoded loosely: kernels send replies the typed messages reject (bash_kernel's kernel_info has
    /// no language version), and only the status and count matter here.
    pub async fn reply_to(&mut self, id: &str) -> Result<ShellReply, KernelError> {
        use zeromq::SocketRecv;
        loop {
            let frames = self.shell.socket.recv().await.map_err(RuntimeError::from)?;
            let raw = match RawMessage::from_multipart(frames, &self.shell.mac) {
                Ok(raw) => raw,
                Err(error) if is_fatal(&error) => return Err(error.into()),
                Err(error) => {
                    tracing::debug!("skipping an undecodable shell message: {error}");
                    continue;
                }
            };
            let part = |index: usize| -> Value {
                raw.jparts.get(index).and_then(|p| serde_json::from_slice(p).ok()).unwrap_or_default()
            };
            if part(1)["msg_id"].as_str() != Some(id) {
                continue;
            }
            let content = part(3);
            return Ok(ShellReply {
                ok: content["status"] == "ok",
                execution_count: content["execution_count"].as_i64(),
                error: content["ename"]
                    .as_str()
                    .map(|name| format!("{name}: {}", content["evalue"].as_str().unwrap_or_default())),
            });
        }
    }

    /// Runs `code` silently and waits for its reply; a failing reply is an error.
    pub async fn run_silently(&mut self, code: &str) -> Result<(), KernelError> {
        let id = self.send_execute(code, true).await?;
        let reply = self.reply_to(&id).await?;
        if !reply.ok {
            let detail = reply.error.unwrap_or_else(|| "no detail".into());
            return Err(KernelError::start(format!("the startup code failed: {detail}")));
        }
        Ok(())
    }

    /// Sends `kernel_info_request`s until the kernel answers one and its iopub status for it arrives on
    /// our subscription (so no output of the first execution is published before we listen).
    async fn wait_ready(&mut self) -> Result<(), KernelError> {
        loop {
            let request: JupyterMessage = KernelInfoRequest {}.into();
            let id = request.header.msg_id.clone();
            self.shell.send(request).await?;
            let seen = tokio::time::timeout(PROBE_INTERVAL, async {
                loop {
                    let message = self.next_iopub().await?;
                    if parent_id(&message) == Some(id.as_str()) {
                        return Ok::<_, KernelError>(());
                    }
                }
            })
            .await;
            match seen {
                Ok(result) => {
                    result?;
                    self.reply_to(&id).await?;
                    return Ok(());
                }
                Err(_) => continue,
            }
        }
    }
}

/// What the gateway reads of a shell reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellReply {
    /// `status` was `ok`.
    pub ok: bool,
    /// The execution count, when the reply has one.
    pub execution_count: Option<i64>,
    /// `ename: evalue` of a failed request.
    pub error: Option<String>,
}

/// The id of the request `message` answers.
pub fn parent_id(message: &JupyterMessage) -> Option<&str> {
    message.parent_header.as_ref().map(|header| header.msg_id.as_str())
}

/// Whether `error` means the channel is gone (as opposed to one bad message).
fn is_fatal(error: &RuntimeError) -> bool {
    matches!(error, RuntimeError::ZmqError(_) | RuntimeError::IoError(_))
}

fn with_stderr(message: String, process: &KernelProcess) -> String {
    match process.stderr_tail() {
        tail if tail.is_empty() => message,
        tail => format!("{message}; its stderr ends with: {tail}"),
    }
}

fn uuid_like() -> String {
    let hex = crate::ids::random_hex(16);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}
