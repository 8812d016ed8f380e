//! Pins the volume directories a sandbox is launched with. The node opens a volume directory (and its
//! subpath) without following symlinks, but the runtime takes mount sources as paths and opens them again
//! later, at launch; a tenant who can write the volume from another sandbox could swap a subpath component
//! for a symlink to `/` in between. So the opened descriptor itself is bind-mounted (through its
//! `/proc/self/fd` entry, which the kernel resolves to exactly that directory) onto a host-only directory
//! `<sandbox>/mounts/<n>`, `nosuid,nodev` (and read-only when the mount is), and the runtime is given that
//! path, none of whose components a sandbox can reach. The pins live as long as the sandbox's directory:
//! [`unpin_all`] removes them before the directory is deleted, and refuses to let a delete descend into a
//! mounted volume.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Bind-mounts the directory open as `source` onto `<dir>/<index>` (created) and returns that path.
pub fn pin(dir: &Path, index: usize, source: &OwnedFd, read_only: bool) -> io::Result<PathBuf> {
    let target = dir.join(index.to_string());
    std::fs::create_dir_all(&target)?;
    let by_descriptor = format!("/proc/self/fd/{}", source.as_raw_fd());
    mount(Some(by_descriptor.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    if let Err(error) = mount(None::<&str>, &target, None::<&str>, flags, None::<&str>) {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        return Err(error.into());
    }
    Ok(target)
}

/// Unmounts every pin below `dir` and removes `dir`; succeeds when it does not exist. Fails, removing
/// nothing more, when a mount is still found below it (a delete would descend into the volume).
pub fn unpin_all(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries.flatten() {
        // EINVAL: not a mount point (a pin whose mount failed, or one already gone).
        match umount2(&entry.path(), MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(still) = mounted_below(dir)? {
        return Err(io::Error::other(format!("{} is still mounted; not removing {}", still.display(), dir.display())));
    }
    std::fs::remove_dir_all(dir)
}

/// Whether anything is mounted at or below `dir` in the node's mount table.
pub fn mounted_below(dir: &Path) -> io::Result<Option<PathBuf>> {
    // The table holds resolved paths.
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = nullspace_runtime::mountinfo::read_own()?;
    Ok(mounts.into_iter().map(|entry| entry.mount_point).find(|point| point.starts_with(&dir)))
}
