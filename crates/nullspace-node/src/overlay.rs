//! Mounting and unmounting a sandbox's overlay root: the template's read-only layer below, the sandbox's
//! own upper dir above.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts an overlay of the read-only `lower` layers (top first) below `upper`/`work` at `target`, `nosuid`
/// and `nodev`: the merged tree is a host mount, and a setuid binary or device node a sandbox wrote must
/// grant nothing through it. The container's root is this same mount, which changes nothing inside the
/// sandbox: its processes run under `no_new_privileges`, so setuid bits and file capabilities were
/// already inert there, and its devices live on its own `/dev` tmpfs.
pub fn mount_overlay(lower: &[&Path], upper: &Path, work: &Path, target: &Path) -> nix::Result<()> {
    let lower: Vec<String> = lower.iter().map(|path| path.display().to_string()).collect();
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
    mount(Some("overlay"), target, Some("overlay"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options.as_str()))
}

/// Unmounts `target`; succeeds when nothing is mounted there. Falls back to a lazy unmount when busy.
pub fn unmount(target: &Path) -> nix::Result<()> {
    loop {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue, // stacked mounts: unmount until nothing is left
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(nix::Error::EBUSY) => {
                return match umount2(target, MntFlags::MNT_DETACH) {
                    Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => Ok(()),
                    Err(error) => Err(error),
                };
            }
            Err(error) => return Err(error),
        }
    }
}
