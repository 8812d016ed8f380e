//! User namespaces of runc/crun sandboxes: a sandbox's root is an unprivileged host uid/gid range of its
//! own ([`RANGE_SIZE`] ids from a base the store hands out, [`RangePolicy`]), and every host tree it sees
//! through a mount is an idmapped mount, so trees stay 0-based on disk (template layers, upper dirs,
//! volumes, snapshots) and are shared without a chown'ed copy.
//!
//! For one launch ([`UsernsLaunch`]): a short-lived child makes the sandbox's user namespace (its
//! `uid_map`/`gid_map` written by the node) and a network namespace owned by it (so the runtime may mount
//! `sysfs`); the child is killed at once and descriptors keep both alive. Each overlay layer and the
//! upper dir's parent get an idmapped clone (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)`)
//! attached below `<sandbox>/idmap`; the overlay is mounted over them by a thread whose filesystem ids
//! are the range's root (overlayfs does its own work in the upper dir with the mounter's credentials, which
//! must map through the idmapped upper). Bind mount sources get idmapped clones the same way. Once the
//! runtime has started, the container holds its own copies and the attach points are detached.
//! The runtime's root path must be reachable by the range's root: it is a bind of the overlay at
//! `/run/nullspace-roots/<data dir key>/<id>/rootfs`, below a directory owned by the range's root, mode
//! 0700 (the data dir itself stays 0700).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;

use nullspace_runtime::{BindMount, UserNamespace};

/// Ids per sandbox: container ids 0..65535 map to `base..base+65535` on the host.
pub const RANGE_SIZE: u32 = 65_536;

/// The first base handed out: far above any host user, system or `/etc/subuid` range in common use.
pub const FIRST_BASE: u32 = 0x1000_0000;

/// One past the last id a range may use. Below 2^31 so that every sandbox group falls in the
/// `ping_group_range` (`0 2147483647`) the node sets in sandbox network namespaces.
pub const END: u32 = 0x8000_0000;

/// Where the runtime roots of userns sandboxes are bound (see the module doc).
const ROOTS_DIR: &str = "/run/nullspace-roots";

/// Which host id ranges sandboxes may get: aligned [`RANGE_SIZE`] slots in `[FIRST_BASE, END)` that
/// overlap no range delegated in `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangePolicy {
    /// `(start, count)` ranges a slot may not overlap.
    excluded: Vec<(u64, u64)>,
}

impl RangePolicy {
    /// The policy of this host (reads `/etc/subuid` and `/etc/subgid`; missing files exclude nothing).
    pub fn host() -> Self {
        let texts: Vec<String> =
            ["/etc/subuid", "/etc/subgid"].iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
        Self::from_subid_files(&texts.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The policy excluding every `name:start:count` line of the given subid files.
    pub fn from_subid_files(texts: &[&str]) -> Self {
        let excluded = texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| {
                let mut fields = line.trim().split(':');
                let (_, start, count) = (fields.next()?, fields.next()?, fields.next()?);
                Some((start.trim().parse::<u64>().ok()?, count.trim().parse::<u64>().ok()?))
            })
            .collect();
        Self { excluded }
    }

    /// How many slots this policy hands out.
    pub fn slots(&self) -> u64 {
        (FIRST_BASE..END).step_by(RANGE_SIZE as usize).filter(|base| self.allows(*base)).count() as u64
    }

    /// Whether `base` is a slot this policy hands out.
    pub fn allows(&self, base: u32) -> bool {
        let (start, end) = (u64::from(base), u64::from(base) + u64::from(RANGE_SIZE));
        base >= FIRST_BASE
            && (base - FIRST_BASE).is_multiple_of(RANGE_SIZE)
            && end <= u64::from(END)
            && !self.excluded.iter().any(|&(s, n)| start < s.saturating_add(n) && s < end)
    }

    /// The lowest allowed slot not in `taken`; `None` when every slot is taken.
    pub fn pick(&self, taken: &BTreeSet<u32>) -> Option<u32> {
        (FIRST_BASE..END).step_by(RANGE_SIZE as usize).find(|base| !taken.contains(base) && self.allows(*base))
    }
}

/// Error type of an [`IdRangeBook`].
pub type BookError = Box<dyn std::error::Error + Send + Sync>;

/// A future an [`IdRangeBook`] returns.
pub type BookFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BookError>> + Send + 'a>>;

/// The durable record of which sandbox holds which id range (the server's store): a range is recorded
/// before the sandbox's first process starts and released after the sandbox's last resource is gone, so
/// a restart neither leaks nor reuses a live range.
pub trait IdRangeBook: Send + Sync {
    /// The base of `sandbox_id`'s range: the one it holds (if `policy` still allows it), else a new one.
    fn allocate<'a>(&'a self, sandbox_id: &'a str, policy: &'a RangePolicy) -> BookFuture<'a, u32>;
    /// Forgets `sandbox_id`'s range (nothing when it holds none).
    fn release<'a>(&'a self, sandbox_id: &'a str) -> BookFuture<'a, ()>;
    /// Forgets every range whose sandbox is not in `alive` (the reconcile at start).
    fn retain<'a>(&'a self, alive: &'a BTreeSet<String>) -> BookFuture<'a, ()>;
}

/// The user namespace of one sandbox, and the network namespace it owns, kept alive by descriptors.
struct Namespaces {
    user: File,
    net: File,
}

/// Makes a user namespace mapping 0..[`RANGE_SIZE`] to `base..` (uids and gids) and a network namespace
/// owned by it: a child cloned into both waits while the node writes its maps and opens its namespaces,
/// then is killed and reaped.
fn make_namespaces(base: u32) -> io::Result<Namespaces> {
    use nix::sched::CloneFlags;
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the child runs only `pause` (async-signal-safe) on its own stack and never returns.
    let child = unsafe {
        nix::sched::clone(
            Box::new(|| loop {
                nix::unistd::pause();
            }),
            &mut stack,
            CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET,
            Some(Signal::SIGCHLD as i32),
        )
    }
    .map_err(io::Error::from)?;
    let proc = PathBuf::from(format!("/proc/{child}"));
    let made = (|| {
        let map = format!("0 {base} {RANGE_SIZE}\n");
        std::fs::write(proc.join("uid_map"), &map)?;
        std::fs::write(proc.join("gid_map"), &map)?;
        Ok(Namespaces { user: File::open(proc.join("ns/user"))?, net: File::open(proc.join("ns/net"))? })
    })();
    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    made
}

/// A detached clone of the mount tree at `source`, idmapped through `userns` (recursively with
/// `recursive`: every mount below gets the same mapping).
fn idmapped_clone(source: &Path, userns: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let path = CString::new(source.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let recursive_flag = if recursive { libc::AT_RECURSIVE as libc::c_uint } else { 0 };
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | recursive_flag;
    // SAFETY: a path string and flags; the kernel returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a descriptor nobody else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let at_flags = libc::AT_EMPTY_PATH as libc::c_uint | recursive_flag;
    // SAFETY: the detached tree's descriptor, an empty path, and a mount_attr of the size passed.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at_flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Attaches the detached mount `tree` at `target` (an existing file or directory).
fn attach(tree: OwnedFd, target: &Path) -> io::Result<()> {
    let path = CString::new(target.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: the tree's descriptor with an empty path, and a target path string.
    let moved = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts everything attached at `target` (lazily: an attach point may be busy while a runtime
/// copies it); succeeds when nothing is mounted there or it does not exist.
fn detach(target: &Path) -> io::Result<()> {
    loop {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
}

/// Runs `f` on a thread whose filesystem uid and gid are `base` (the range's root), keeping the node's
/// capabilities (`SECBIT_NO_SETUID_FIXUP`); the thread ends afterwards, and its credentials with it.
fn as_range_root<T: Send + 'static>(base: u32, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    std::thread::spawn(move || {
        let unsigned = |value: libc::c_int| value as libc::c_ulong;
        // SAFETY: prctl on the calling thread's own credentials (glibc does not broadcast it).
        let set =
            unsafe { libc::prctl(libc::PR_SET_SECUREBITS, unsigned(libc::SECBIT_NO_SETUID_FIXUP), 0u64, 0u64, 0u64) };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        // setfsuid/setfsgid change only the calling thread.
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(base));
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(base));
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Mounts the overlay as the range's root ([`as_range_root`]): overlayfs keeps the mounter's credentials
/// for its own work in the upper dir (work dir, copy-up, whiteouts), and through an idmapped upper they
/// must map to 0.
fn mount_overlay_as(base: u32, lower: Vec<PathBuf>, upper: PathBuf, work: PathBuf, target: PathBuf) -> io::Result<()> {
    as_range_root(base, move || {
        let lower: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
        crate::overlay::mount_overlay(&lower, &upper, &work, &target).map_err(io::Error::from)
    })
}

/// The per-data-dir directory below [`ROOTS_DIR`] (several servers may share a host).
fn roots_dir(data_dir: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir)?;
    Ok(Path::new(ROOTS_DIR).join(format!("{:x}-{:x}", meta.dev(), meta.ino())))
}

/// Creates `dir` as root with `mode` (and re-applies the mode when it existed).
fn host_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Everything one launch under a user namespace holds until its runtime has started.
pub(crate) struct UsernsLaunch {
    base: u32,
    namespaces: Namespaces,
    /// `<sandbox>/idmap`: attach points of the idmapped clones.
    attach_dir: PathBuf,
    /// `/run/nullspace-roots/<key>/<id>`: owned by the range's root, 0700.
    gate: PathBuf,
    attached: usize,
}

impl UsernsLaunch {
    /// Makes the namespaces of range `base` for sandbox `id` whose directory is `sandbox_dir`.
    pub(crate) fn new(base: u32, data_dir: &Path, sandbox_dir: &Path, id: &str) -> io::Result<Self> {
        let attach_dir = sandbox_dir.join("idmap");
        detach_all(&attach_dir)?;
        host_dir(&attach_dir, 0o700)?;
        let roots = roots_dir(data_dir)?;
        host_dir(Path::new(ROOTS_DIR), 0o711)?;
        host_dir(&roots, 0o711)?;
        let gate = roots.join(id);
        detach(&gate.join("rootfs"))?;
        host_dir(&gate.join("rootfs"), 0o755)?;
        host_dir(&gate, 0o700)?;
        std::os::unix::fs::chown(&gate, Some(base), Some(base))?;
        let namespaces = make_namespaces(base)?;
        Ok(Self { base, namespaces, attach_dir, gate, attached: 0 })
    }

    /// A new attach point below `<sandbox>/idmap`: a file when `source` is one, else a directory.
    fn attach_point(&mut self, source: &Path) -> io::Result<PathBuf> {
        let target = self.attach_dir.join(self.attached.to_string());
        self.attached += 1;
        if std::fs::metadata(source)?.is_dir() {
            std::fs::create_dir(&target)?;
        } else {
            std::fs::File::create(&target)?;
        }
        Ok(target)
    }

    /// Attaches an idmapped clone of `source` and returns where.
    fn map(&mut self, source: &Path, recursive: bool) -> io::Result<PathBuf> {
        let target = self.attach_point(source)?;
        let tree = idmapped_clone(source, self.namespaces.user.as_fd(), recursive)?;
        attach(tree, &target)?;
        Ok(target)
    }

    /// Mounts the sandbox's overlay at `rootfs` over idmapped clones of the `lower` layers and of the
    /// directory holding `upper` and `work` (all stay 0-based on disk), binds it below the gate, and
    /// returns the path the runtime gets as its root.
    pub(crate) fn mount_root(
        &mut self,
        lower: &[&Path],
        upper: &Path,
        work: &Path,
        rootfs: &Path,
    ) -> io::Result<PathBuf> {
        let parent = upper.parent().filter(|p| Some(*p) == work.parent()).ok_or_else(|| {
            io::Error::other("the overlay's upper and work dirs must share a parent to be idmapped together")
        })?;
        let (upper_name, work_name) = (upper.file_name().unwrap_or_default(), work.file_name().unwrap_or_default());
        // Recursive: the upper dir may be a mount of its own (a size-limited disk).
        let mapped_parent = self.map(parent, true)?;
        let mut mapped_lower = Vec::with_capacity(lower.len());
        for layer in lower {
            mapped_lower.push(self.map(layer, false)?);
        }
        mount_overlay_as(
            self.base,
            mapped_lower,
            mapped_parent.join(upper_name),
            mapped_parent.join(work_name),
            rootfs.to_path_buf(),
        )?;
        let root = self.gate.join("rootfs");
        mount(Some(rootfs), &root, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(None::<&str>, &root, None::<&str>, flags, None::<&str>)?;
        Ok(root)
    }

    /// Replaces the source of every mount in `mounts` except those `keep_plain` accepts (read-only host
    /// files every user may read, such as the guest binary) by an idmapped clone of it.
    pub(crate) fn map_mounts(
        &mut self,
        mounts: &mut [BindMount],
        keep_plain: impl Fn(&BindMount) -> bool,
    ) -> io::Result<()> {
        let table = nullspace_runtime::mountinfo::read_own()?;
        for bind in mounts.iter_mut().filter(|m| !keep_plain(m)) {
            // overlayfs cannot be idmapped itself: a read-only view of layers (a build stage a `COPY
            // --from` reads) is mounted again over idmapped clones of its layers.
            // The innermost mount holding the source decides (the last listed of the longest mount point).
            let holder = table
                .iter()
                .filter(|e| bind.source.starts_with(&e.mount_point))
                .max_by_key(|e| e.mount_point.as_os_str().len());
            bind.source = match holder.filter(|e| e.fs_type == "overlay") {
                Some(view) => {
                    let layers = lower_dirs(&view.super_options).ok_or_else(|| {
                        io::Error::other(format!("{} is an overlay with no lowerdir", view.mount_point.display()))
                    })?;
                    let inside = bind.source.strip_prefix(&view.mount_point).map_err(io::Error::other)?.to_path_buf();
                    self.map_view(&layers)?.join(inside)
                }
                None => self.map(&bind.source, true)?,
            };
        }
        Ok(())
    }

    /// A read-only overlay of idmapped clones of `layers` (top first), attached below `<sandbox>/idmap`.
    fn map_view(&mut self, layers: &[PathBuf]) -> io::Result<PathBuf> {
        let mut mapped = Vec::with_capacity(layers.len());
        for layer in layers {
            mapped.push(self.map(layer, false)?);
        }
        let target = self.attach_point(Path::new("/"))?;
        let base = self.base;
        let view = target.clone();
        as_range_root(base, move || {
            let lower: Vec<String> = mapped.iter().map(|p| p.display().to_string()).collect();
            let options = format!("lowerdir={}", lower.join(":"));
            let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            mount(Some("overlay"), &view, Some("overlay"), flags, Some(options.as_str())).map_err(io::Error::from)
        })?;
        Ok(target)
    }

    /// A copy of the network namespace's descriptor (owned by the sandbox's user namespace).
    pub(crate) fn netns(&self) -> io::Result<File> {
        self.namespaces.net.try_clone()
    }

    /// What the runtime's spec says about the user namespace: joined through this process's descriptor,
    /// valid while `self` lives.
    pub(crate) fn runtime_userns(&self) -> UserNamespace {
        UserNamespace {
            path: PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.namespaces.user.as_raw_fd())),
            host_id: self.base,
            size: RANGE_SIZE,
        }
    }

    /// After the runtime has started (it holds its own copies): detaches the attach points.
    pub(crate) fn finish(self) -> io::Result<()> {
        detach_all(&self.attach_dir)
    }
}

/// The `lowerdir=` layers of an overlay's superblock options (`a:b:c`, top first; a backslash escapes a colon).
fn lower_dirs(super_options: &str) -> Option<Vec<PathBuf>> {
    let value = super_options.split(',').find_map(|option| option.strip_prefix("lowerdir="))?;
    let mut layers = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => layers.last_mut()?.extend(chars.next()),
            ':' => layers.push(String::new()),
            other => layers.last_mut()?.push(other),
        }
    }
    Some(layers.into_iter().map(PathBuf::from).collect())
}

/// Detaches and removes every attach point below `dir` (nothing when it does not exist).
fn detach_all(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let path = entry?.path();
        detach(&path)?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir(&path)?,
            Ok(_) => std::fs::remove_file(&path)?,
            Err(_) => {}
        }
    }
    Ok(())
}

/// Releases what a userns launch of sandbox `id` may have left on the host: its attach points and its
/// gate below `/run/nullspace-roots`. Idempotent.
pub(crate) fn release(data_dir: &Path, sandbox_dir: &Path, id: &str) -> io::Result<()> {
    detach_all(&sandbox_dir.join("idmap"))?;
    let Ok(roots) = roots_dir(data_dir) else { return Ok(()) };
    let gate = roots.join(id);
    detach(&gate.join("rootfs"))?;
    for dir in [gate.join("rootfs"), gate] {
        match std::fs::remove_dir(&dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// Unmounts the runtime's root of sandbox `id` below its gate (nothing when there is none).
pub(crate) fn unmount_gate(data_dir: &Path, id: &str) -> io::Result<()> {
    match roots_dir(data_dir) {
        Ok(roots) => detach(&roots.join(id).join("rootfs")),
        Err(_) => Ok(()),
    }
}

/// Sandbox ids that have a gate on this host (for the reconcile at start).
pub(crate) fn gated_ids(data_dir: &Path) -> Vec<String> {
    let Ok(roots) = roots_dir(data_dir) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(roots) else { return Vec::new() };
    entries.flatten().filter_map(|entry| entry.file_name().into_string().ok()).collect()
}

/// What `nullspace doctor` and the server's start check: whether this host can run sandboxes under user
/// namespaces with idmapped mounts of `data_dir`'s filesystem below an overlay. `Err` says what failed.
pub fn probe(data_dir: &Path) -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim().parse::<u64>().unwrap_or(0) == 0 {
        return Err("user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)".into());
    }
    let dir =
        tempfile_dir(data_dir).map_err(|e| format!("cannot create a probe dir in {}: {e}", data_dir.display()))?;
    let result = probe_in(&dir);
    let _ = detach(&dir.join("merged"));
    let _ = detach(&dir.join("mapped-lower"));
    let _ = detach(&dir.join("mapped-upper"));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir(data_dir: &Path) -> io::Result<PathBuf> {
    let dir = data_dir.join(format!(".userns-probe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["lower", "upper/upper", "upper/work", "mapped-lower", "mapped-upper", "merged"] {
        host_dir(&dir.join(sub), 0o755)?;
    }
    std::fs::write(dir.join("lower/file"), b"probe")?;
    Ok(dir)
}

fn probe_in(dir: &Path) -> Result<(), String> {
    let base = FIRST_BASE;
    let ns = make_namespaces(base).map_err(|e| format!("cannot create a user namespace: {e}"))?;
    for (source, target) in [("lower", "mapped-lower"), ("upper", "mapped-upper")] {
        let tree = idmapped_clone(&dir.join(source), ns.user.as_fd(), false)
            .map_err(|e| format!("the data dir's filesystem does not support idmapped mounts: {e}"))?;
        attach(tree, &dir.join(target)).map_err(|e| format!("cannot attach an idmapped mount: {e}"))?;
    }
    mount_overlay_as(
        base,
        vec![dir.join("mapped-lower")],
        dir.join("mapped-upper/upper"),
        dir.join("mapped-upper/work"),
        dir.join("merged"),
    )
    .map_err(|e| format!("overlayfs does not accept idmapped layers: {e}"))?;
    use std::os::unix::fs::MetadataExt;
    let seen = std::fs::metadata(dir.join("merged/file")).map_err(|e| e.to_string())?;
    if seen.uid() != base {
        return Err(format!("an idmapped layer shows uid {} instead of {base}", seen.uid()));
    }
    let written = dir.join("merged/written");
    as_range_root(base, move || std::fs::write(written, b"x"))
        .map_err(|e| format!("cannot write through the overlay as the range's root: {e}"))?;
    let on_disk = std::fs::metadata(dir.join("upper/upper/written")).map_err(|e| e.to_string())?;
    if on_disk.uid() != 0 {
        return Err(format!("a file written as the range's root is uid {} on disk instead of 0", on_disk.uid()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_start_at_the_first_base() {
        let policy = RangePolicy::default();
        assert_eq!(policy.pick(&BTreeSet::new()), Some(FIRST_BASE));
        let taken: BTreeSet<u32> = [FIRST_BASE, FIRST_BASE + 2 * RANGE_SIZE].into();
        assert_eq!(policy.pick(&taken), Some(FIRST_BASE + RANGE_SIZE));
        assert!(!policy.allows(FIRST_BASE + 1));
        assert!(!policy.allows(FIRST_BASE - RANGE_SIZE));
        assert!(!policy.allows(END));
    }

    #[test]
    fn every_range_ends_below_the_ping_group_range_limit() {
        let policy = RangePolicy::default();
        let last = (FIRST_BASE..END).step_by(RANGE_SIZE as usize).next_back().unwrap();
        assert!(policy.allows(last));
        assert!(u64::from(last) + u64::from(RANGE_SIZE) - 1 <= 2_147_483_647);
    }

    #[test]
    fn subid_ranges_are_never_handed_out() {
        let subuid = format!("alice:{}:65536\nbob:100000:65536\n# comment\n", FIRST_BASE + 10);
        let subgid = format!("carol:{}:1\n", FIRST_BASE + 3 * RANGE_SIZE);
        let policy = RangePolicy::from_subid_files(&[&subuid, &subgid]);
        // alice's range overlaps slots 0 and 1; carol's one id lies in slot 3.
        assert!(!policy.allows(FIRST_BASE));
        assert!(!policy.allows(FIRST_BASE + RANGE_SIZE));
        assert!(policy.allows(FIRST_BASE + 2 * RANGE_SIZE));
        assert!(!policy.allows(FIRST_BASE + 3 * RANGE_SIZE));
        assert_eq!(policy.pick(&BTreeSet::new()), Some(FIRST_BASE + 2 * RANGE_SIZE));
        let taken: BTreeSet<u32> = [FIRST_BASE + 2 * RANGE_SIZE].into();
        assert_eq!(policy.pick(&taken), Some(FIRST_BASE + 4 * RANGE_SIZE));
    }

    #[test]
    fn lower_dirs_of_an_overlay_are_read_in_order() {
        let options = "rw,lowerdir=/d/l1:/d/l\\:2:/d/empty,redirect_dir=nofollow,uuid=on";
        let layers = lower_dirs(options).unwrap();
        assert_eq!(layers, [PathBuf::from("/d/l1"), PathBuf::from("/d/l:2"), PathBuf::from("/d/empty")]);
        assert_eq!(lower_dirs("rw,upperdir=/u"), None);
    }

    #[test]
    fn a_full_book_picks_nothing() {
        let policy = RangePolicy::default();
        let taken: BTreeSet<u32> = (FIRST_BASE..END).step_by(RANGE_SIZE as usize).collect();
        assert_eq!(policy.pick(&taken), None);
    }
}
