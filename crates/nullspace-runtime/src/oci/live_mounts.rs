//! Mounts added to and removed from a running container: a directory the node opened on the host is
//! bind-mounted at a path inside the container's mount namespace, later unmounted again, and probed.
//!
//! Attach clones the source as a detached mount (`open_tree(libc::OPEN_TREE_CLONE)`), sets its attributes
//! (`nosuid`, `nodev`, read-only when asked) with `mount_setattr`, then a forked child joins the
//! container's mount namespace (`setns`), creates the target's directories and attaches the clone there
//! (`move_mount`). After `setns` the child's root is the container's root, so the target and any
//! symlink on the way resolve inside the container and never reach the host. The mount lives only in
//! the container's namespace: it goes with the container, and nothing is left on the host.
//!
//! A child process does the namespace work because `setns(CLONE_NEWNS)` refuses a multithreaded caller.
//! Everything it needs is prepared before `fork`; it makes raw system calls only (no allocation, no lock)
//! and reports `(step, errno)` through a pipe.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// `struct open_how` of `openat2(2)` (libc's is non-exhaustive: built from zeroes). Async-signal-safe.
fn open_how(flags: libc::c_int, resolve: u64) -> libc::open_how {
    // SAFETY: `open_how` is plain integers; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
    how
}

/// The step of a namespace operation that failed, with its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepError {
    /// What was being done.
    pub step: &'static str,
    /// The errno it failed with.
    pub errno: i32,
}

impl StepError {
    /// Whether the step failed on the mount point inside the sandbox (its path), not on our side.
    pub fn at_mount_point(&self) -> bool {
        self.step == STEPS[STEP_MKDIR as usize] || self.step == STEPS[STEP_MOVE as usize]
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, std::io::Error::from_raw_os_error(self.errno))
    }
}

impl StepError {
    fn last(step: &'static str) -> Self {
        Self { step, errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) }
    }
}

/// Steps of the child, by the code it reports.
const STEPS: [&str; 7] = [
    "joining the sandbox's mount namespace",
    "creating the mount point (a symlink on the way is refused)",
    "attaching the mount",
    "unmounting",
    "the helper process",
    "walking to the mount point (a symlink on the way is refused)",
    "checking what is mounted there",
];
const STEP_SETNS: i32 = 0;
const STEP_MKDIR: i32 = 1;
const STEP_MOVE: i32 = 2;
const STEP_UMOUNT: i32 = 3;
const STEP_CHILD: i32 = 4;
const STEP_WALK: i32 = 5;
const STEP_IDENTITY: i32 = 6;

/// The components of the absolute `target` (no `..`, at least one).
fn target_components(target: &str) -> Result<Vec<CString>, StepError> {
    let invalid = StepError { step: "checking the mount point", errno: libc::EINVAL };
    if !target.starts_with('/') || target.contains('\0') {
        return Err(invalid);
    }
    let mut components = Vec::new();
    for component in Path::new(target).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => components.push(CString::new(name.as_bytes()).map_err(|_| invalid)?),
            Component::ParentDir | Component::Prefix(_) => return Err(invalid),
        }
    }
    if components.is_empty() {
        return Err(invalid);
    }
    Ok(components)
}

/// A detached clone of the directory open as `source`, `nosuid,nodev` and read-only when asked, idmapped
/// through `userns` when given (a sandbox's own user namespace: its ids see the 0-based tree as theirs).
pub(crate) fn clone_tree(source: &OwnedFd, read_only: bool, userns: Option<&OwnedFd>) -> Result<OwnedFd, StepError> {
    let flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: open_tree(2) with a valid descriptor and an empty NUL-terminated path.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, source.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(StepError::last("cloning the volume directory as a mount"));
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let mut attr_set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if read_only {
        attr_set |= libc::MOUNT_ATTR_RDONLY;
    }
    let mut userns_fd = 0;
    if let Some(userns) = userns {
        attr_set |= libc::MOUNT_ATTR_IDMAP;
        userns_fd = userns.as_raw_fd() as u64;
    }
    let attr = libc::mount_attr { attr_set, attr_clr: 0, propagation: 0, userns_fd };
    // SAFETY: mount_setattr(2) on the descriptor above with a properly sized `struct mount_attr`.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if result < 0 {
        return Err(StepError::last("setting the mount's attributes"));
    }
    Ok(tree)
}

/// What the child does inside the namespace.
enum NsWork<'a> {
    /// Walks `components` from `/` (creating missing directories, following no symlink) and attaches
    /// `tree` to the last one. With `fs_id`, directories are created with that host uid and gid as the
    /// filesystem ids (a sandbox's root in its own user namespace: through its idmapped layers the host's
    /// root maps to nothing, and what it creates is 0-based on disk).
    Attach { tree: &'a OwnedFd, components: &'a [CString], fs_id: Option<u32> },
    /// Walks to the parent of the last of `components` from `/` (following no symlink), checks that the
    /// mount there has the root `expect` (device, inode) when given, and lazily unmounts it by its name in
    /// that parent (not following a symlink there either).
    Detach { components: &'a [CString], expect: Option<(libc::dev_t, libc::ino_t)> },
}

/// Attaches `tree` (from [`clone_tree`]) at `target` inside the mount namespace open as `mnt_ns`, creating
/// missing directories as host uid/gid `fs_id` when given (see [`NsWork::Attach`]).
pub(crate) fn attach(mnt_ns: &OwnedFd, tree: &OwnedFd, target: &str, fs_id: Option<u32>) -> Result<(), StepError> {
    let components = target_components(target)?;
    in_namespace(mnt_ns, &NsWork::Attach { tree, components: &components, fs_id })
}

/// Unmounts `target` inside the mount namespace open as `mnt_ns`; `Ok(false)` when nothing was mounted
/// there, or (with `source`) when what is mounted there is not the directory open as `source`. No symlink
/// is followed on the way: a sandbox cannot point the unmount at a mount the runtime owns.
pub(crate) fn detach(mnt_ns: &OwnedFd, target: &str, source: Option<&OwnedFd>) -> Result<bool, StepError> {
    let components = target_components(target)?;
    let expect = match source {
        Some(source) => fstat(source).map(|stat| Some((stat.st_dev, stat.st_ino)))?,
        None => None,
    };
    match in_namespace(mnt_ns, &NsWork::Detach { components: &components, expect }) {
        Ok(()) => Ok(true),
        Err(StepError { step, errno })
            if (step == STEPS[STEP_WALK as usize] && matches!(errno, libc::ENOENT | libc::ENOTDIR | libc::ELOOP))
                || step == STEPS[STEP_IDENTITY as usize]
                || (step == STEPS[STEP_UMOUNT as usize] && matches!(errno, libc::EINVAL | libc::ENOENT)) =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

/// Whether `target`, resolved inside the root directory open as `root` (symlinks stay inside it: a mount
/// made at create time may sit below one, such as `/var/run`), is the directory open as `source` (same
/// device and inode): the mount is in place. Only reads; an unmount never follows a symlink.
pub(crate) fn is_mounted(root: &OwnedFd, target: &str, source: &OwnedFd) -> Result<bool, StepError> {
    let path =
        CString::new(target.trim_start_matches('/')).map_err(|_| StepError { step: "probing", errno: libc::EINVAL })?;
    let how = open_how(libc::O_PATH | libc::O_CLOEXEC, libc::RESOLVE_IN_ROOT);
    // SAFETY: openat2(2) with a valid directory descriptor, NUL-terminated path and sized `open_how`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let error = StepError::last("resolving the mount point");
        return if matches!(error.errno, libc::ENOENT | libc::ENOTDIR) { Ok(false) } else { Err(error) };
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let target = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let (a, b) = (fstat(&target)?, fstat(source)?);
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// The mount points listed in a `/proc/<pid>/mountinfo` text, as the process whose table it is sees them.
pub(crate) fn mount_points(mountinfo: &str) -> Vec<String> {
    crate::mountinfo::parse(mountinfo).into_iter().map(|e| e.mount_point.to_string_lossy().into_owned()).collect()
}

fn fstat(fd: &OwnedFd) -> Result<libc::stat, StepError> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten by fstat(2).
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat(2) on a valid descriptor into a properly sized buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
        return Err(StepError::last("reading the mount's inode"));
    }
    Ok(stat)
}

/// Runs `work` in a forked child that has joined the mount namespace open as `mnt_ns`, and waits for it.
fn in_namespace(mnt_ns: &OwnedFd, work: &NsWork<'_>) -> Result<(), StepError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) into a two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(StepError::last("creating the helper's pipe"));
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only makes async-signal-safe system calls on data prepared before the fork and
    // leaves with `_exit`, so the state of other threads' locks and allocator does not matter.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(StepError::last("forking the helper"));
    }
    if pid == 0 {
        // SAFETY: see above; this branch never returns.
        unsafe { child(mnt_ns.as_raw_fd(), work, write_end.as_raw_fd()) }
    }
    drop(write_end);
    let mut status = 0;
    loop {
        // SAFETY: waitpid(2) on our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(StepError::last("waiting for the helper"));
        }
    }
    let mut report = [0u8; 8];
    let mut file = std::fs::File::from(read_end);
    let read = std::io::Read::read(&mut file, &mut report).unwrap_or(0);
    if read == report.len() {
        let step = i32::from_ne_bytes(report[..4].try_into().expect("4 bytes"));
        let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
        let step = STEPS.get(step as usize).copied().unwrap_or(STEPS[STEP_CHILD as usize]);
        return Err(StepError { step, errno });
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(StepError { step: STEPS[STEP_CHILD as usize], errno: libc::ECHILD })
    }
}

/// The forked child: joins the namespace, does `work`, reports a failure as `(step, errno)` on `report`.
///
/// # Safety
/// Only to be called in the child of `fork`; makes raw system calls only and never returns.
unsafe fn child(mnt_ns: libc::c_int, work: &NsWork<'_>, report: libc::c_int) -> ! {
    let fail = |step: i32| -> ! {
        let errno = *libc::__errno_location();
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&step.to_ne_bytes());
        message[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(report, message.as_ptr().cast(), message.len());
        libc::_exit(1)
    };
    if libc::setns(mnt_ns, libc::CLONE_NEWNS) < 0 {
        fail(STEP_SETNS);
    }
    match work {
        NsWork::Attach { tree, components, fs_id } => {
            if let Some(id) = *fs_id {
                // Keep the capabilities when the filesystem uid leaves 0; this process only.
                let keep = libc::SECBIT_NO_SETUID_FIXUP as libc::c_ulong;
                if libc::prctl(
                    libc::PR_SET_SECUREBITS,
                    keep,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ) < 0
                {
                    fail(STEP_MKDIR);
                }
                libc::setfsuid(id);
                libc::setfsgid(id);
            }
            let how = open_how(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, libc::RESOLVE_NO_SYMLINKS);
            let mut dir = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
            if dir < 0 {
                fail(STEP_MKDIR);
            }
            for name in components.iter() {
                if libc::mkdirat(dir, name.as_ptr(), 0o755) < 0 && *libc::__errno_location() != libc::EEXIST {
                    fail(STEP_MKDIR);
                }
                let next = libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    name.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                );
                if next < 0 {
                    fail(STEP_MKDIR);
                }
                libc::close(dir);
                dir = next as libc::c_int;
            }
            let moved = libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                dir,
                c"".as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            );
            if moved < 0 {
                fail(STEP_MOVE);
            }
        }
        NsWork::Detach { components, expect } => {
            let how = open_how(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, libc::RESOLVE_NO_SYMLINKS);
            let mut dir = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
            if dir < 0 {
                fail(STEP_WALK);
            }
            let Some((last, parents)) = components.split_last() else { fail(STEP_WALK) };
            for name in parents.iter() {
                let next = libc::syscall(
                    libc::SYS_openat2,
                    dir,
                    name.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                );
                if next < 0 {
                    fail(STEP_WALK);
                }
                libc::close(dir);
                dir = next as libc::c_int;
            }
            if let Some((dev, ino)) = expect {
                let mounted = libc::openat(dir, last.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC);
                if mounted < 0 {
                    fail(STEP_WALK);
                }
                let mut stat: libc::stat = std::mem::zeroed();
                if libc::fstat(mounted, &mut stat) < 0 {
                    fail(STEP_IDENTITY);
                }
                if stat.st_dev != *dev || stat.st_ino != *ino {
                    *libc::__errno_location() = libc::ESTALE;
                    fail(STEP_IDENTITY);
                }
                libc::close(mounted);
            }
            // By its name in the parent reached above: a rename elsewhere cannot redirect it, and the
            // mount point itself cannot be renamed while mounted.
            if libc::fchdir(dir) < 0 {
                fail(STEP_WALK);
            }
            if libc::umount2(last.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) < 0 {
                fail(STEP_UMOUNT);
            }
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_from_mountinfo_with_escapes_decoded() {
        let table = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                     40 22 8:1 /vol/data /work\\040space/a\\134b rw,nosuid - ext4 /dev/sda1 rw\n\
                     41 22 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(mount_points(table), ["/", "/work space/a\\b", "/proc"]);
    }

    #[test]
    fn target_components_are_normal_names_and_escapes_are_refused() {
        let components = target_components("/workspace//data/./x/").unwrap();
        let components: Vec<&str> = components.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(components, ["workspace", "data", "x"]);
        for bad in ["", "/", "relative", "/a/../b", "/a\0b"] {
            assert!(target_components(bad).is_err(), "{bad:?} accepted");
        }
    }
}
