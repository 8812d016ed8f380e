//! One kernel process: writes the connection file the gateway owns, starts the kernelspec's argv in its
//! own process group (so interrupts and kills reach everything the kernel started), watches its exit and
//! keeps the tail of its stderr for error messages. Dropping it kills the group; the kernel also dies
//! with the gateway (parent-death signal).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use jupyter_protocol::connection_info::Transport;
use jupyter_protocol::ConnectionInfo;
use jupyter_zmq_client::KernelspecDir;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::KernelError;

/// How much of a kernel's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;

/// A running (or exited) kernel process.
#[derive(Debug)]
pub struct KernelProcess {
    pgid: Pid,
    exit: watch::Receiver<Option<String>>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    connection_file: PathBuf,
    /// Where the kernel listens.
    pub connection: ConnectionInfo,
}

impl KernelProcess {
    /// Starts `spec` in `cwd` with a fresh connection file `<runtime_dir>/kernel-<tag>.json` (mode 0600)
    /// and extra environment `envs`.
    pub async fn spawn(
        spec: &KernelspecDir,
        runtime_dir: &Path,
        tag: &str,
        cwd: &Path,
        envs: &[(String, String)],
    ) -> Result<Self, KernelError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source: std::io::Error| KernelError::Io { what, source }
        };
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (ports, listeners) = jupyter_zmq_client::peek_ports_with_listeners(ip, 5)
            .await
            .map_err(|error| KernelError::start(format!("cannot reserve ports: {error}")))?;
        let connection = ConnectionInfo {
            ip: ip.to_string(),
            transport: Transport::TCP,
            shell_port: ports[0],
            iopub_port: ports[1],
            stdin_port: ports[2],
            control_port: ports[3],
            hb_port: ports[4],
            key: random_key(),
            signature_scheme: "hmac-sha256".into(),
            kernel_name: Some(spec.kernel_name.clone()),
        };
        std::fs::create_dir_all(runtime_dir).map_err(io("create the kernel runtime directory"))?;
        let connection_file = runtime_dir.join(format!("kernel-{tag}.json"));
        let json = serde_json::to_vec(&connection).map_err(|error| KernelError::start(error.to_string()))?;
        write_private(&connection_file, &json).map_err(io("write the connection file"))?;

        let mut command = spec.clone().command(&connection_file, Some(Stdio::piped()), Some(Stdio::null()))?;
        command.current_dir(cwd).envs(envs.iter().map(|(k, v)| (k, v))).process_group(0).kill_on_drop(true);
        // SAFETY: prctl(2) between fork and exec, async-signal-safe. The kernel dies with the gateway
        // even when the gateway is killed outright (its own process group gets no signal otherwise).
        unsafe {
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let spawned = command.spawn();
        drop(listeners);
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let _ = std::fs::remove_file(&connection_file);
                return Err(KernelError::Io { what: format!("start kernel {:?}", spec.kernelspec.argv[0]), source });
            }
        };
        let pid = child.id().ok_or_else(|| KernelError::start("the kernel exited at once".into()))?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stderr.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    let Ok(mut tail) = tail.lock() else { break };
                    tail.extend(&buffer[..read]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                    tail.drain(..excess);
                }
            });
        }
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let description = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => format!("could not be waited for: {error}"),
            };
            let _ = exit_tx.send(Some(description));
        });
        Ok(Self { pgid: Pid::from_raw(pid as i32), exit, stderr_tail, connection_file, connection })
    }

    /// How the kernel exited, if it did.
    pub fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Waits until the kernel exits and says how.
    pub async fn wait_exit(&self) -> String {
        let mut exit = self.exit.clone();
        let how = match exit.wait_for(Option::is_some).await {
            Ok(value) => value.clone().unwrap_or_default(),
            Err(_) => "exited".into(),
        };
        how
    }

    /// The last lines the kernel wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().map(|tail| tail.iter().copied().collect::<Vec<u8>>()).unwrap_or_default();
        String::from_utf8_lossy(&tail).trim().to_owned()
    }

    /// Sends `signal` to the kernel's process group (nothing once it exited).
    pub fn signal(&self, signal: Signal) {
        if self.exited().is_none() {
            if let Err(error) = killpg(self.pgid, signal) {
                tracing::debug!(pgid = %self.pgid, "cannot signal the kernel: {error}");
            }
        }
    }
}

impl Drop for KernelProcess {
    fn drop(&mut self) {
        // The whole group: children the code started die with the kernel.
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = std::fs::remove_file(&self.connection_file);
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

fn random_key() -> String {
    crate::ids::random_hex(16)
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map(|s| s.as_str().to_owned()).unwrap_or_else(|_| signal.to_string());
            format!("was killed by {name}")
        }
        _ => "exited".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_code_or_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe_exit(std::process::ExitStatus::from_raw(1 << 8)), "exited with code 1");
        assert_eq!(describe_exit(std::process::ExitStatus::from_raw(9)), "was killed by SIGKILL");
    }
}
