//! Volume guests: one `nullspace-guestd` per volume, started on demand, that serves the volume's files
//! API (the same implementation as inside sandboxes) without a sandbox. It runs as a host process in its
//! own mount, network, IPC, UTS and PID namespaces (it serves from a forked child, PID 1 there, so it
//! sees and signals no host process) whose root is the volume's data directory (bind-mounted,
//! `pivot_root`ed, the old root detached), so no path it is given can reach anything outside the volume.
//! Its control dir (boot config, socket, upload staging) stays reachable only as its working directory,
//! the root of a detached bind mount. It keeps only the file capabilities (chown, DAC override, fowner,
//! fsetid) under `no_new_privs`, so even a compromised guest cannot mount, create devices or trace. It
//! dies with the server (`PR_SET_PDEATHSIG`), is stopped when idle and when the volume is deleted; its
//! mounts exist only in its own namespace, so nothing is left on the host.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nullspace_types::guest::{GuestConfig, GUEST_CONFIG_NAME, GUEST_SOCKET_NAME};
use tokio::process::Child;
use tokio::sync::Mutex;

use crate::{GuestLink, GuestPeer, NodeError, NodeResult, Volumes};

/// How long a new volume guest gets to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Upload staging, relative to the guest's working directory (its control dir, outside the volume): parts
/// never show in the volume, and publishing copies them beside the target, so another mount is fine.
const STAGING_DIR: &str = "uploads";
/// File holding a running guest's pid, for the clean-up after a crash of the server.
const PID_FILE: &str = "guest.pid";

struct Running {
    child: Child,
    last_used: Instant,
}

/// The volume guests of this node.
pub struct VolumeGuests {
    volumes: Volumes,
    guestd: PathBuf,
    running: Mutex<HashMap<String, Running>>,
}

impl VolumeGuests {
    /// Guests of `volumes`, running the static `guestd` binary.
    pub fn new(volumes: Volumes, guestd: PathBuf) -> Self {
        Self { volumes, guestd, running: Mutex::default() }
    }

    fn guest_dir(&self, volume_id: &str) -> PathBuf {
        self.volumes.volume_dir(volume_id).join("guest")
    }

    /// The link to the guest of `volume_id`, starting it when it is not running.
    pub async fn link(&self, volume_id: &str) -> NodeResult<GuestLink> {
        let socket = self.guest_dir(volume_id).join("control").join(GUEST_SOCKET_NAME);
        // Only this guest (the spawned process, or the child it serves from) may answer on the socket.
        let link_to = |child: &Child| {
            GuestLink::new(volume_id, socket.clone(), GuestPeer::ProcessTree(child.id().unwrap_or_default()))
        };
        let mut running = self.running.lock().await;
        if let Some(guest) = running.get_mut(volume_id) {
            if matches!(guest.child.try_wait(), Ok(None)) {
                guest.last_used = Instant::now();
                return Ok(link_to(&guest.child));
            }
            tracing::warn!(volume = %volume_id, "volume guest exited; starting it again");
            running.remove(volume_id);
        }
        let child = self.spawn(volume_id).await?;
        let link = link_to(&child);
        running.insert(volume_id.to_owned(), Running { child, last_used: Instant::now() });
        let log = self.guest_dir(volume_id).join("guest.log");
        if let Err(error) = link.wait_ready(READY_TIMEOUT, log).await {
            if let Some(mut guest) = running.remove(volume_id) {
                stop_child(volume_id, &mut guest.child).await;
            }
            return Err(error);
        }
        Ok(link)
    }

    async fn spawn(&self, volume_id: &str) -> NodeResult<Child> {
        let data = self.volumes.data_dir(volume_id);
        if !data.is_dir() {
            return Err(volume_error(volume_id, crate::VolumeError::Missing { volume_id: volume_id.to_owned() }));
        }
        let dir = self.guest_dir(volume_id);
        let (root, control) = (dir.join("root"), dir.join("control"));
        let fs = |path: &Path| {
            let path = path.to_path_buf();
            move |source| {
                volume_error(
                    volume_id,
                    crate::VolumeError::Filesystem {
                        operation: "preparing the volume guest",
                        volume_id: volume_id.to_owned(),
                        path,
                        source,
                    },
                )
            }
        };
        for path in [&root, &control] {
            std::fs::create_dir_all(path).map_err(fs(path))?;
        }
        kill_stale(&dir.join(PID_FILE));
        let config = GuestConfig {
            sandbox_id: volume_id.to_owned(),
            envs: Default::default(),
            cwd: "/".into(),
            default_user: "root".into(),
        };
        // The control dir is the guest's working directory: never write through what a guest left there.
        let config_path = control.join(GUEST_CONFIG_NAME);
        crate::host_files::replace_file(&config_path, &serde_json::to_vec(&config).unwrap_or_default())
            .map_err(fs(&config_path))?;
        let log_path = dir.join("guest.log");
        let log = std::fs::File::create(&log_path).map_err(fs(&log_path))?;
        let log_err = log.try_clone().map_err(fs(&log_path))?;

        let cstr = |path: &Path| CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
        let paths = ConfinePaths { data: cstr(&data), root: cstr(&root), control: cstr(&control) };
        // The binary is not inside the new root: it is opened now and executed from its descriptor.
        let binary = std::fs::File::open(&self.guestd).map_err(fs(&self.guestd))?;
        let exec = Exec::new(
            binary,
            &["nullspace-guestd", "--control-dir", ".", "--no-write-profile", "--serve-in-child", "--volume"],
            &["PATH=/usr/bin:/bin", &format!("NULLSPACE_GUEST_STAGING_DIR={STAGING_DIR}"), "RUST_LOG=info"],
        );
        let mut command = tokio::process::Command::new(&self.guestd);
        command.stdin(std::process::Stdio::null()).stdout(log).stderr(log_err).kill_on_drop(true);
        // SAFETY: the closure only makes system calls on data prepared before the fork (no allocation).
        unsafe {
            command.pre_exec(move || {
                confine(&paths)?;
                exec.run()
            });
        }
        let child = command.spawn().map_err(fs(&self.guestd))?;
        if let Some(pid) = child.id() {
            record_process(&dir.join(PID_FILE), pid as i32);
        }
        tracing::info!(volume = %volume_id, pid = child.id(), "volume guest started");
        Ok(child)
    }

    /// Stops the guest of `volume_id` if it runs.
    pub async fn stop(&self, volume_id: &str) {
        let guest = self.running.lock().await.remove(volume_id);
        if let Some(mut guest) = guest {
            stop_child(volume_id, &mut guest.child).await;
            let _ = std::fs::remove_file(self.guest_dir(volume_id).join(PID_FILE));
        }
    }

    /// Stops the guests unused for `idle` or longer; returns how many.
    pub async fn stop_idle(&self, idle: Duration) -> usize {
        let ids: Vec<String> = {
            let running = self.running.lock().await;
            running.iter().filter(|(_, g)| g.last_used.elapsed() >= idle).map(|(id, _)| id.clone()).collect()
        };
        for id in &ids {
            tracing::info!(volume = %id, "stopping idle volume guest");
            self.stop(id).await;
        }
        ids.len()
    }

    /// Stops every guest (server shutdown).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.running.lock().await.keys().cloned().collect();
        for id in ids {
            self.stop(&id).await;
        }
    }

    /// Whether the guest of `volume_id` runs (tests).
    pub async fn is_running(&self, volume_id: &str) -> bool {
        self.running.lock().await.contains_key(volume_id)
    }
}

fn volume_error(volume_id: &str, source: crate::VolumeError) -> NodeError {
    NodeError::Volume { sandbox_id: volume_id.to_owned(), source }
}

async fn stop_child(volume_id: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM first so guestd removes its socket; SIGKILL if it does not exit soon.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(3), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    tracing::info!(volume = %volume_id, "volume guest stopped");
}

/// What identifies one process exactly: its pid, its start time (clock ticks after boot) and the boot.
/// A pid alone may have been reused by any other process since it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcessIdentity {
    pid: i32,
    start_time: u64,
    boot_id: String,
}

impl ProcessIdentity {
    /// The identity of the live process `pid`.
    fn of(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces and parentheses): state is field 3,
        // starttime field 22.
        let start_time = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_owned();
        Some(Self { pid, start_time, boot_id })
    }

    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        let identity = Self {
            pid: fields.next()?.parse().ok().filter(|pid| *pid > 0)?,
            start_time: fields.next()?.parse().ok()?,
            boot_id: fields.next()?.to_owned(),
        };
        fields.next().is_none().then_some(identity)
    }

    fn line(&self) -> String {
        format!("{} {} {}\n", self.pid, self.start_time, self.boot_id)
    }
}

/// Records the identity of the guest `pid` (just spawned) in `pid_file`.
fn record_process(pid_file: &Path, pid: i32) {
    if let Some(identity) = ProcessIdentity::of(pid) {
        let _ = std::fs::write(pid_file, identity.line());
    }
}

/// Kills a guest left running by a server that died without stopping it: only the very process recorded
/// by [`record_process`] (same pid, start time and boot), signalled through a pidfd opened before the
/// check, so a process that reused the pid is never touched. Returns whether it was signalled.
fn kill_stale(pid_file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(pid_file) else { return false };
    let _ = std::fs::remove_file(pid_file);
    let Some(recorded) = ProcessIdentity::parse(&text) else {
        tracing::warn!(path = %pid_file.display(), "unrecognised volume guest pid file; nothing killed");
        return false;
    };
    // SAFETY: pidfd_open(2) with a pid and no flags; the descriptor is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, recorded.pid, 0) };
    if pidfd < 0 {
        return false; // gone
    }
    // SAFETY: `pidfd` was just opened and is owned by nobody else.
    let pidfd = unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    // The pidfd pins the process: if `recorded.pid` is the recorded process now, the signal reaches it
    // and nothing else (were it to exit meanwhile, the signal fails with ESRCH).
    if ProcessIdentity::of(recorded.pid).as_ref() != Some(&recorded) {
        return false;
    }
    // SAFETY: pidfd_send_signal(2) on a pidfd we own, no siginfo, no flags.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    sent == 0
}

/// The capabilities a volume guest keeps: file work as root on files of any owner (no mounts, devices,
/// signals to other users' processes, ptrace, raw I/O, ...).
const GUEST_CAPABILITIES: [u32; 5] = [
    0, // CAP_CHOWN
    1, // CAP_DAC_OVERRIDE
    2, // CAP_DAC_READ_SEARCH
    3, // CAP_FOWNER
    4, // CAP_FSETID
];

/// Limits the bounding, permitted, effective and inheritable sets to [`GUEST_CAPABILITIES`] (what the
/// exec'd guest keeps as root). Async-signal-safe: raw system calls only.
fn drop_capabilities() -> std::io::Result<()> {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let keep = GUEST_CAPABILITIES.iter().fold(0u64, |mask, cap| mask | (1 << cap));
    for cap in 0..64u64 {
        // SAFETY: prctl(2) with integer arguments; EINVAL past the kernel's last capability ends the loop.
        if keep & (1 << cap) == 0 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(std::io::Error::last_os_error());
        }
    }
    let header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let low = keep as u32;
    let data =
        [Data { effective: low, permitted: low, inheritable: 0 }, Data { effective: 0, permitted: 0, inheritable: 0 }];
    // SAFETY: capset(2) with a version-3 header and its two data elements.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What [`confine`] mounts.
struct ConfinePaths {
    data: CString,
    root: CString,
    control: CString,
}

/// An `execveat` of an open binary with argv and environment built before the fork.
struct Exec {
    binary: std::fs::File,
    _strings: Vec<CString>,
    /// NULL-terminated pointer arrays (as integers, so the closure is `Send`).
    argv: Vec<usize>,
    envp: Vec<usize>,
}

impl Exec {
    fn new(binary: std::fs::File, argv: &[&str], envp: &[&str]) -> Self {
        let to_c = |items: &[&str]| items.iter().map(|s| CString::new(*s).unwrap_or_default()).collect::<Vec<_>>();
        let (argv_c, envp_c) = (to_c(argv), to_c(envp));
        let pointers = |items: &[CString]| {
            let mut out: Vec<usize> = items.iter().map(|c| c.as_ptr() as usize).collect();
            out.push(0);
            out
        };
        let (argv, envp) = (pointers(&argv_c), pointers(&envp_c));
        let mut strings = argv_c;
        strings.extend(envp_c);
        Self { binary, _strings: strings, argv, envp }
    }

    /// Replaces the process image; returns only on failure.
    fn run(&self) -> std::io::Result<()> {
        // SAFETY: argv and envp are NULL-terminated arrays of pointers to live NUL-terminated strings.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.binary.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        Err(std::io::Error::last_os_error())
    }
}

/// Runs in the forked child before exec: new namespaces, the volume as the root, the control dir as the
/// working directory.
fn confine(paths: &ConfinePaths) -> std::io::Result<()> {
    let (data, root, control) = (&paths.data, &paths.root, &paths.control);
    fn check(result: libc::c_int) -> std::io::Result<()> {
        if result < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
    let dot = c".";
    let slash = c"/";
    // SAFETY: plain system calls on valid NUL-terminated strings; this is the single-threaded child.
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
        // CLONE_NEWPID is for the guest's children: it serves from a forked child (`--serve-in-child`),
        // PID 1 of that namespace.
        check(libc::unshare(
            libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWPID,
        ))?;
        check(libc::mount(
            std::ptr::null(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        // The control dir becomes a mount of its own: after the old root is detached, `..` from it stays in it.
        check(libc::mount(control.as_ptr(), control.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()))?;
        let control_fd = libc::open(control.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        check(control_fd)?;
        check(libc::mount(
            data.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ))?;
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV;
        check(libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), flags, std::ptr::null()))?;
        check(libc::chdir(root.as_ptr()))?;
        check(libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int)?;
        check(libc::umount2(dot.as_ptr(), libc::MNT_DETACH))?;
        check(libc::chdir(slash.as_ptr()))?;
        check(libc::fchdir(control_fd))?;
        libc::close(control_fd);
        drop_capabilities()?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    /// A process that looks like a guest (argv0 `nullspace-guestd`) but is not the recorded one.
    fn lookalike() -> std::process::Child {
        std::process::Command::new("sleep").arg0("/usr/bin/nullspace-guestd").arg("60").spawn().unwrap()
    }

    fn still_running(child: &mut std::process::Child) -> bool {
        child.try_wait().unwrap().is_none()
    }

    #[test]
    fn a_stale_pid_file_kills_only_the_process_it_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join(PID_FILE);
        let mut other = lookalike();
        let pid = other.id() as i32;

        // A bare pid (what a reused pid looks like: any process, even one named like a guest).
        std::fs::write(&pid_file, pid.to_string()).unwrap();
        assert!(!kill_stale(&pid_file));
        assert!(!pid_file.exists(), "a stale pid file is consumed");
        // The right pid but another start time or boot: a different process that got the pid.
        let identity = ProcessIdentity::of(pid).unwrap();
        let reused = ProcessIdentity { start_time: identity.start_time + 1, ..identity.clone() };
        std::fs::write(&pid_file, reused.line()).unwrap();
        assert!(!kill_stale(&pid_file));
        let other_boot = ProcessIdentity { boot_id: "00000000-0000-0000-0000-000000000000".into(), ..identity };
        std::fs::write(&pid_file, other_boot.line()).unwrap();
        assert!(!kill_stale(&pid_file));
        assert!(still_running(&mut other), "a process that was not recorded must not be killed");

        // The recorded process itself is killed.
        record_process(&pid_file, pid);
        assert!(kill_stale(&pid_file));
        assert_eq!(other.wait().unwrap().signal(), Some(libc::SIGKILL));
        // It is gone (and reaped): a second attempt finds nothing.
        record_process(&pid_file, pid);
        assert!(!kill_stale(&pid_file));
    }

    #[test]
    fn identities_round_trip_and_garbage_is_refused() {
        let me = ProcessIdentity::of(std::process::id() as i32).unwrap();
        assert_eq!(ProcessIdentity::parse(&me.line()), Some(me));
        for bad in ["", "12", "12 x y", "-1 5 b", "0 5 b", "12 5 b extra"] {
            assert_eq!(ProcessIdentity::parse(bad), None, "{bad:?}");
        }
    }
}
