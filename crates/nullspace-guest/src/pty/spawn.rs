//! Starting a PTY session's shell: a fresh pty pair sized as asked, `/bin/bash -l` (or `/bin/sh -l`)
//! as the sandbox's default user with the sandbox environment and `TERM=xterm-256color`, in its own
//! session with the pty's slave as controlling terminal and stdio. The pty crates that exist wait for
//! their children themselves, which would race guestd's PID-1 reaper, so the plumbing is `openpty`
//! plus the registry's reaper-safe spawn.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::pty::{openpty, Winsize};
use nix::sys::wait::WaitStatus;
use tokio::sync::oneshot;

use crate::error::{GuestError, GuestResult};
use crate::exec::spawn::{environment, start_as, working_dir};
use crate::state::Sandbox;

/// What a new shell needs.
#[derive(Debug, Clone)]
pub struct ShellSpec {
    /// Width.
    pub cols: u16,
    /// Height.
    pub rows: u16,
    /// Working directory (sandbox cwd when absent).
    pub cwd: Option<String>,
    /// Extra environment.
    pub envs: BTreeMap<String, String>,
}

/// A running shell: its pid, the pty master and the channel of its wait status.
pub struct Shell {
    /// Pid (and session and process-group id).
    pub pid: u32,
    /// Master side of the pty (non-blocking, close-on-exec).
    pub master: OwnedFd,
    /// Receives the wait status once reaped.
    pub reaped: oneshot::Receiver<WaitStatus>,
}

/// The window size structure for `cols` × `rows`.
pub fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// Starts the shell of `spec`.
pub fn spawn_shell(sandbox: &Sandbox, spec: &ShellSpec) -> GuestResult<Shell> {
    let user = sandbox.user(Some(sandbox.default_user()))?;
    let (sandbox_envs, sandbox_cwd) = sandbox.env_and_cwd();
    let cwd = working_dir(spec.cwd.as_deref(), &sandbox_cwd)?;
    let program = if Path::new("/bin/bash").exists() { "/bin/bash" } else { "/bin/sh" };
    let mut envs = BTreeMap::from([("TERM".to_owned(), "xterm-256color".to_owned())]);
    envs.extend(spec.envs.clone());
    let env = environment(&sandbox_envs, &envs, &user.home, &user.name, &user.shell)?;

    let pty = openpty(Some(&winsize(spec.cols, spec.rows)), None)
        .map_err(|errno| GuestError::Spawn { command: program.into(), source: errno.into() })?;
    let fail = |source: std::io::Error| GuestError::Spawn { command: program.into(), source };
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| fail(e.into()))?;
    }
    let flags = fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| fail(e.into()))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(pty.master.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| fail(e.into()))?;

    let stdio = || pty.slave.try_clone().map(Stdio::from).map_err(fail);
    let mut command = Command::new(program);
    command.arg("-l").current_dir(&cwd).env_clear().envs(&env).stdin(stdio()?).stdout(stdio()?).stderr(stdio()?);
    // stdin is the pty slave, which becomes the shell's controlling terminal.
    start_as(&mut command, &user, true);
    let (pid, reaped) = sandbox.registry().spawn_watched(&mut command)?;
    drop(command); // closes the parent's copies of the slave
    drop(pty.slave);
    Ok(Shell { pid, master: pty.master, reaped })
}

/// Sets the window size of the pty behind `master` (the kernel signals SIGWINCH to the foreground job).
pub fn set_size(master: &impl AsRawFd, cols: u16, rows: u16) -> std::io::Result<()> {
    let size = winsize(cols, rows);
    // SAFETY: TIOCSWINSZ reads one `winsize` from the valid pointer; the fd is owned by the caller.
    let result = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
