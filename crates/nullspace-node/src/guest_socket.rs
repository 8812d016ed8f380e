//! Reaching a guest's unix socket without trusting the directory it lives in. The socket sits in a control
//! dir the sandbox can write (`/run/nullspace` inside it), so the sandbox may replace `guest.sock` with a
//! symlink to another sandbox's socket, or to any socket on the host. The node therefore never resolves
//! that name as a path: it opens the entry itself (`O_PATH|O_NOFOLLOW`, so a symlink is opened as the
//! link and refused), checks that it is a socket, connects through the descriptor's `/proc/self/fd` entry
//! (the kernel resolves it to exactly that inode, no name is walked again), and then checks the peer's
//! credentials: the process that listens must belong to the sandbox (or volume guest) the link is for.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::net::UnixStream;

/// Who must be listening on a guest socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestPeer {
    /// A process of sandbox `id`: its host cgroup path ends in `nullspace/<id>` (runc's init and its
    /// children; under runsc, gVisor's sandbox and gofer processes, which the runtime puts there too).
    Sandbox(String),
    /// A volume guest: process `pid` (the server's child) or a direct child of it (guestd serves from a
    /// forked child, PID 1 of its own PID namespace).
    ProcessTree(u32),
}

/// Why a connection to a guest socket was refused before any byte was sent.
#[derive(Debug, thiserror::Error)]
pub enum SocketRefused {
    /// The entry is something else than a socket (typically a symlink the sandbox planted).
    #[error("{path} is not a unix socket (mode {mode:#o}); the sandbox may have replaced it")]
    NotASocket {
        /// The entry.
        path: String,
        /// Its file type bits.
        mode: u32,
    },
    /// The listener is not the guest this link is for.
    #[error("the listener on {path} is process {pid}, which does not belong to {expected}")]
    ForeignPeer {
        /// The socket.
        path: String,
        /// Host pid of the listener.
        pid: i32,
        /// What it had to belong to.
        expected: String,
    },
}

/// Connects to the unix socket `path` (its last component is never followed) and checks that `peer` is
/// listening on it.
pub async fn connect(path: &Path, peer: &GuestPeer) -> io::Result<UnixStream> {
    let entry = open_entry(path)?;
    let stat = nix::sys::stat::fstat(entry.as_raw_fd()).map_err(io::Error::from)?;
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFSOCK {
        let refused = SocketRefused::NotASocket { path: path.display().to_string(), mode: kind };
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, refused));
    }
    let stream = UnixStream::connect(format!("/proc/self/fd/{}", entry.as_raw_fd())).await?;
    drop(entry);
    let pid = stream.peer_cred()?.pid().unwrap_or(0);
    if !belongs_to(pid, peer) {
        let expected = match peer {
            GuestPeer::Sandbox(id) => format!("sandbox {id}"),
            GuestPeer::ProcessTree(root) => format!("volume guest process {root}"),
        };
        let refused = SocketRefused::ForeignPeer { path: path.display().to_string(), pid, expected };
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, refused));
    }
    Ok(stream)
}

/// Whether `path` names a unix socket itself (not through a symlink): cheap readiness probe.
pub fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

fn open_entry(path: &Path) -> io::Result<OwnedFd> {
    let name = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is NUL-terminated; the descriptor returned is owned by the caller.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn belongs_to(pid: i32, peer: &GuestPeer) -> bool {
    if pid <= 0 {
        return false;
    }
    match peer {
        GuestPeer::Sandbox(id) => {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| in_sandbox_cgroup(&text, id))
        }
        GuestPeer::ProcessTree(root) => {
            u32::try_from(pid).is_ok_and(|pid| pid == *root) || parent_of(pid).is_some_and(|parent| parent == *root)
        }
    }
}

/// Whether a `/proc/<pid>/cgroup` text puts the process in sandbox `id`'s cgroup (any hierarchy: v1
/// lines `N:controller:/path`, v2 `0::/path`); the path must end in `/nullspace/<id>` exactly.
pub fn in_sandbox_cgroup(text: &str, id: &str) -> bool {
    let suffix = format!("/{}/{id}", nullspace_runtime::CGROUP_PARENT);
    text.lines().filter_map(|line| line.splitn(3, ':').nth(2)).any(|path| path.ends_with(&suffix))
}

fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last `)`.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_membership_is_by_exact_sandbox_path() {
        let v1 = "12:pids:/nullspace/sb_abc\n11:memory:/nullspace/sb_abc\n0::/\n";
        assert!(in_sandbox_cgroup(v1, "sb_abc"));
        assert!(!in_sandbox_cgroup(v1, "sb_ab"));
        assert!(!in_sandbox_cgroup("0::/nullspace/sb_abcd\n", "sb_abc"));
        assert!(!in_sandbox_cgroup("0::/user.slice/sb_abc\n", "sb_abc"));
        assert!(in_sandbox_cgroup("0::/nullspace/sb_abc\n", "sb_abc"));
    }

    #[tokio::test]
    async fn a_symlink_to_a_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&real).unwrap();
        let link = dir.path().join("guest.sock");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let me = GuestPeer::ProcessTree(std::process::id());
        let error = connect(&link, &me).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        assert!(!is_socket(&link));
        assert!(is_socket(&real));
    }

    #[tokio::test]
    async fn the_listener_must_be_the_expected_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // This test process listens: it is its own process tree, and in no sandbox's cgroup.
        connect(&path, &GuestPeer::ProcessTree(std::process::id())).await.unwrap();
        let error = connect(&path, &GuestPeer::Sandbox("sb_nobody".into())).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
        let error = connect(&path, &GuestPeer::ProcessTree(1)).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    }

    #[tokio::test]
    async fn a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("guest.sock");
        std::fs::write(&path, b"").unwrap();
        let error = connect(&path, &GuestPeer::ProcessTree(std::process::id())).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied, "{error}");
    }
}
