//! The registry of processes guestd started: spawns them under the one lock the reaper also takes (so
//! `waitpid(-1)` never steals a status before its owner is known), routes each reaped status to its
//! process, and keeps exited processes (with bounded logs) so clients can read their exit and output.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, oneshot, watch};

use super::logs::{ProcessLogs, Stream};
use crate::error::{GuestError, GuestResult};

/// Exit code reported for a command killed because its `timeout_secs` elapsed (as coreutils `timeout`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// Exited processes whose logs are kept; older ones are forgotten.
const MAX_EXITED: usize = 64;

/// Log bytes kept for exited processes altogether; the oldest are forgotten past it.
const EXITED_LOG_BUDGET: usize = 64 * 1024 * 1024;

/// How long output may still drain after the process itself exited (grandchildren can hold the pipes).
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// Chunks buffered per live subscriber before it lags.
const EVENT_BUFFER: usize = 1024;

/// Read size of the output pipes (WebSocket chunks stay well under 64 KiB).
const READ_CHUNK: usize = 32 * 1024;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What subscribers of a process see.
#[derive(Debug, Clone)]
pub enum ProcessEvent {
    /// A chunk of output.
    Output(Stream, Bytes),
    /// The process finished (exited and its output drained); always the last event.
    Exit(i32),
}

/// One process guestd started.
#[derive(Debug)]
pub struct Process {
    /// Its pid (and process-group id: each command leads its own session).
    pub pid: u32,
    /// Its command line, arguments joined with spaces.
    pub command: String,
    logs: Mutex<ProcessLogs>,
    timed_out: Mutex<bool>,
    finished: watch::Sender<Option<i32>>,
    events: broadcast::Sender<ProcessEvent>,
    stdin: tokio::sync::Mutex<Option<pipe::Sender>>,
    reaped: Mutex<Option<oneshot::Sender<WaitStatus>>>,
}

impl Process {
    /// The exit code once finished, `None` while running.
    pub fn exit_code(&self) -> Option<i32> {
        *self.finished.borrow()
    }

    /// Waits until the process finished and returns its exit code.
    pub async fn wait(&self) -> i32 {
        let mut finished = self.finished.subscribe();
        let code = match finished.wait_for(Option::is_some).await {
            Ok(code) => code.unwrap_or(-1),
            Err(_) => self.exit_code().unwrap_or(-1),
        };
        code
    }

    /// (stdout, stderr, interleaved) kept so far.
    pub fn logs(&self) -> (String, String, String) {
        lock(&self.logs).texts()
    }

    /// A live feed of output and the exit (only what happens after this call).
    pub fn subscribe(&self) -> broadcast::Receiver<ProcessEvent> {
        self.events.subscribe()
    }

    /// Kills the process and its whole process group with SIGKILL; a no-op once it finished.
    pub fn kill(&self) {
        if self.exit_code().is_some() {
            return;
        }
        let pid = Pid::from_raw(self.pid as i32);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }

    /// Kills the process group because its timeout elapsed (reported as [`TIMEOUT_EXIT_CODE`]).
    pub fn kill_for_timeout(&self) {
        if self.exit_code().is_none() {
            *lock(&self.timed_out) = true;
            self.kill();
        }
    }

    /// Writes `data` to the process's stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> GuestResult<()> {
        use tokio::io::AsyncWriteExt;
        let mut stdin = self.stdin.lock().await;
        let Some(pipe) = stdin.as_mut() else {
            return Err(GuestError::StdinClosed { pid: self.pid });
        };
        if let Err(error) = pipe.write_all(data).await {
            *stdin = None;
            tracing::debug!(pid = self.pid, %error, "stdin write failed");
            return Err(GuestError::StdinClosed { pid: self.pid });
        }
        Ok(())
    }

    fn exit_code_of(&self, status: WaitStatus) -> i32 {
        if *lock(&self.timed_out) {
            return TIMEOUT_EXIT_CODE;
        }
        match status {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
            _ => -1,
        }
    }
}

/// Pipes of a freshly spawned child.
pub struct ChildPipes {
    /// Write end of its stdin, if piped.
    pub stdin: Option<OwnedFd>,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
}

#[derive(Default)]
struct Inner {
    processes: HashMap<u32, Arc<Process>>,
    exited: VecDeque<u32>,
    /// Children whose owner waits for their status itself (PTY shells).
    watched: HashMap<u32, oneshot::Sender<WaitStatus>>,
}

/// All processes guestd started, by pid.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    /// Spawns `command` (its stdio already configured: stdout/stderr piped) under the reaper lock,
    /// registers it and starts collecting its output. Returns the process and a subscription made
    /// before any output was read.
    pub fn spawn(
        self: &Arc<Self>,
        mut command: Command,
        command_line: String,
    ) -> GuestResult<(Arc<Process>, broadcast::Receiver<ProcessEvent>)> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut inner = lock(&self.inner);
        let mut child = command.spawn().map_err(|source| GuestError::Spawn { command: program, source })?;
        let pid = child.id();
        let pipes = (child.stdin.take().map(OwnedFd::from), child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = (pipes.1, pipes.2) else {
            return Err(GuestError::Internal { context: "spawned command has no output pipes".into() });
        };
        let pipes = ChildPipes { stdin: pipes.0, stdout: stdout.into(), stderr: stderr.into() };
        drop(child); // the reaper owns waiting; dropping a std Child neither waits nor kills
        let (reaped_tx, reaped_rx) = oneshot::channel();
        let stdin = pipes.stdin.and_then(|fd| pipe::Sender::from_owned_fd(fd).ok());
        let (events, receiver) = broadcast::channel(EVENT_BUFFER);
        let process = Arc::new(Process {
            pid,
            command: command_line,
            logs: Mutex::new(ProcessLogs::default()),
            timed_out: Mutex::new(false),
            finished: watch::Sender::new(None),
            events,
            stdin: tokio::sync::Mutex::new(stdin),
            reaped: Mutex::new(Some(reaped_tx)),
        });
        inner.processes.insert(pid, process.clone());
        drop(inner);
        self.collect(process.clone(), pipes.stdout, pipes.stderr, reaped_rx);
        Ok((process, receiver))
    }

    /// Spawns `command` under the reaper lock for an owner that handles the child itself (a PTY
    /// session): returns its pid and the channel its wait status arrives on once reaped.
    pub fn spawn_watched(&self, command: &mut Command) -> GuestResult<(u32, oneshot::Receiver<WaitStatus>)> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut inner = lock(&self.inner);
        let child = command.spawn().map_err(|source| GuestError::Spawn { command: program, source })?;
        let pid = child.id();
        drop(child); // the reaper owns waiting
        let (reaped_tx, reaped_rx) = oneshot::channel();
        inner.watched.insert(pid, reaped_tx);
        Ok((pid, reaped_rx))
    }

    fn collect(
        self: &Arc<Self>,
        process: Arc<Process>,
        stdout: OwnedFd,
        stderr: OwnedFd,
        reaped: oneshot::Receiver<WaitStatus>,
    ) {
        let readers = [(Stream::Stdout, stdout), (Stream::Stderr, stderr)].map(|(stream, fd)| {
            let process = process.clone();
            tokio::spawn(async move { read_output(&process, stream, fd).await })
        });
        let registry = self.clone();
        tokio::spawn(async move {
            let status = reaped.await.unwrap_or(WaitStatus::StillAlive);
            let code = process.exit_code_of(status);
            let drained = futures::future::join_all(readers);
            if tokio::time::timeout(DRAIN_GRACE, drained).await.is_err() {
                tracing::debug!(pid = process.pid, "output still open after exit; reporting the exit now");
            }
            process.finished.send_replace(Some(code));
            let _ = process.events.send(ProcessEvent::Exit(code));
            *process.stdin.lock().await = None;
            registry.forget_old(process.pid);
        });
    }

    fn forget_old(&self, pid: u32) {
        let mut inner = lock(&self.inner);
        inner.exited.push_back(pid);
        let retained = |inner: &Inner| -> usize {
            let exited = inner.exited.iter().filter_map(|pid| inner.processes.get(pid));
            exited.map(|process| lock(&process.logs).retained()).sum()
        };
        while inner.exited.len() > MAX_EXITED || (inner.exited.len() > 1 && retained(&inner) > EXITED_LOG_BUDGET) {
            let Some(old) = inner.exited.pop_front() else {
                break;
            };
            if inner.processes.get(&old).is_some_and(|process| process.exit_code().is_some()) {
                inner.processes.remove(&old);
            }
        }
    }

    /// The process with `pid`, running or kept after its exit.
    pub fn get(&self, pid: u32) -> Option<Arc<Process>> {
        lock(&self.inner).processes.get(&pid).cloned()
    }

    /// Every known process.
    pub fn all(&self) -> Vec<Arc<Process>> {
        lock(&self.inner).processes.values().cloned().collect()
    }

    /// Reaps every exited child (`waitpid(-1)` until none is left) and hands each status to the
    /// process it belongs to; orphans adopted by PID 1 are reaped and forgotten.
    pub fn reap(&self) {
        let mut inner = lock(&self.inner);
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    let Some(pid) = status.pid() else { continue };
                    if let Some(watcher) = inner.watched.remove(&(pid.as_raw() as u32)) {
                        let _ = watcher.send(status);
                        continue;
                    }
                    let owner = inner.processes.get(&(pid.as_raw() as u32));
                    match owner.and_then(|process| lock(&process.reaped).take()) {
                        Some(reaped) => {
                            let _ = reaped.send(status);
                        }
                        None => tracing::debug!(pid = pid.as_raw(), ?status, "reaped an orphan"),
                    }
                }
            }
        }
    }

    /// Sends SIGTERM to every running process group (at shutdown).
    pub fn terminate_all(&self) {
        for process in self.all() {
            if process.exit_code().is_none() {
                let _ = killpg(Pid::from_raw(process.pid as i32), Signal::SIGTERM);
            }
        }
    }
}

async fn read_output(process: &Process, stream: Stream, fd: OwnedFd) {
    let Ok(mut pipe) = pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                lock(&process.logs).push(stream, &buffer[..n]);
                let _ = process.events.send(ProcessEvent::Output(stream, Bytes::copy_from_slice(&buffer[..n])));
            }
        }
    }
}
