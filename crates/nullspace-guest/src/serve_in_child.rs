//! `--serve-in-child` (volume guests): the launcher prepared a new PID namespace for our children
//! (`unshare(CLONE_NEWPID)` before exec, while it still had the capability), so the daemon forks before
//! any thread exists and serves from the child, PID 1 of that namespace, which sees and can signal no
//! process outside it. The original process only supervises: it passes on the signals it gets, dies
//! with nothing left behind (the child has `PR_SET_PDEATHSIG`), and exits with the child's status.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::os::fd::AsRawFd;

use nix::unistd::{fork, ForkResult, Pid};

/// Signals passed on to the serving child.
const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Forks; returns in the child (which then serves), never in the parent (which supervises and exits).
/// Must run before any other thread exists.
pub fn fork_and_supervise() -> Result<(), String> {
    let mut forwarded = SigSet::empty();
    for signal in FORWARDED {
        forwarded.add(signal);
    }
    // Blocked before the fork, so a signal that arrives in between waits for the supervisor's loop.
    forwarded.thread_block().map_err(|error| format!("blocking signals: {error}"))?;
    // The supervisor holds the write end for its whole life: the child sees it gone as a hang-up (its
    // parent is outside its PID namespace, so `getppid` cannot tell).
    let (alive_read, alive_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|error| format!("creating a pipe: {error}"))?;
    // SAFETY: no other thread exists yet (main calls this before starting the async runtime).
    match unsafe { fork() }.map_err(|error| format!("forking the serving process: {error}"))? {
        ForkResult::Child => {
            drop(alive_write);
            // SAFETY: prctl(2) with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let mut poll = libc::pollfd { fd: alive_read.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll(2) on one valid pollfd with a zero timeout.
            unsafe { libc::poll(&mut poll, 1, 0) };
            if poll.revents & libc::POLLHUP != 0 {
                std::process::exit(1); // the supervisor died before PR_SET_PDEATHSIG was set
            }
            drop(alive_read);
            forwarded.thread_unblock().map_err(|error| format!("unblocking signals: {error}"))?;
            Ok(())
        }
        ForkResult::Parent { child } => {
            drop(alive_read);
            std::mem::forget(alive_write);
            supervise(child, &forwarded)
        }
    }
}

fn supervise(child: Pid, forwarded: &SigSet) -> ! {
    let timeout = libc::timespec { tv_sec: 0, tv_nsec: 200_000_000 };
    loop {
        // SAFETY: sigtimedwait(2) on a valid set, no siginfo wanted, a valid timeout.
        let signal = unsafe { libc::sigtimedwait(forwarded.as_ref(), std::ptr::null_mut(), &timeout) };
        if let Ok(signal) = Signal::try_from(signal) {
            let _ = kill(child, signal);
        }
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => std::process::exit(128 + signal as i32),
            Err(_) => std::process::exit(1),
            Ok(_) => {}
        }
    }
}
