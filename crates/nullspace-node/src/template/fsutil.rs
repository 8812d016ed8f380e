//! Filesystem helpers of the template store: sizes, and removal that never descends into a mount
//! (an interrupted mmdebstrap can leave /proc, /sys or /dev mounted inside a build) nor pulls a layer
//! out from under a running overlay.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nullspace_runtime::mountinfo::{self, MountEntry};

/// Sum of the sizes of the files, symlinks and directories under `root`, counting hard links once and
/// not following symlinks.
pub(super) fn tree_size(root: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.len();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(total)
}

fn mounts() -> io::Result<Vec<MountEntry>> {
    mountinfo::read_own()
}

/// Whether any overlay mount uses a directory under `dir` as one of its layers.
pub(super) fn overlay_uses(entries: &[MountEntry], dir: &Path) -> bool {
    entries.iter().filter(|m| m.fs_type == "overlay").any(|m| {
        m.super_options.split(',').any(|opt| {
            let Some((key, value)) = opt.split_once('=') else {
                return false;
            };
            matches!(key, "lowerdir" | "upperdir" | "workdir" | "lowerdir+" | "datadir+")
                && value.split(':').any(|layer| Path::new(&mountinfo::unescape(layer)).starts_with(dir))
        })
    })
}

/// Whether a directory is in use by a mounted overlay (best effort: false if mounts cannot be read).
pub(crate) fn in_use_by_overlay(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    mounts().map(|m| overlay_uses(&m, &dir)).unwrap_or(false)
}

/// Removes `dir` and everything in it, first detaching any mount found inside it. Fails instead of
/// removing if a mount inside cannot be detached.
pub(super) fn remove_tree(dir: &Path) -> io::Result<()> {
    let dir = match dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let inside = |entries: Vec<MountEntry>| -> Vec<PathBuf> {
        let mut points: Vec<PathBuf> =
            entries.into_iter().map(|m| m.mount_point).filter(|p| p.starts_with(&dir)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        points
    };
    for point in inside(mounts()?) {
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %point.display(), error = %e, "cannot detach mount inside template build");
        }
    }
    let left = inside(mounts()?);
    if let Some(point) = left.first() {
        return Err(io::Error::other(format!("{} is still mounted", point.display())));
    }
    std::fs::remove_dir_all(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:30 / /data/templates/.build-base-1/rootfs/proc rw shared:9 - proc proc rw
41 22 0:5 / /data/my\\040dir rw - tmpfs tmpfs rw
50 22 0:40 / /run/sb/sb_1/rootfs rw - overlay overlay rw,lowerdir=/data/templates/base-abc/rootfs,upperdir=/run/sb/sb_1/upper,workdir=/run/sb/sb_1/work
";

    #[test]
    fn overlay_layers_are_detected() {
        let entries = mountinfo::parse(MOUNTINFO);
        assert!(overlay_uses(&entries, Path::new("/data/templates/base-abc")));
        assert!(!overlay_uses(&entries, Path::new("/data/templates/base-abd")));
        assert!(!overlay_uses(&entries, Path::new("/data/templates/.build-base-1")));
    }

    #[test]
    fn size_counts_hard_links_once() {
        let dir = std::env::temp_dir().join(format!("nullspace-size-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/a"), vec![0u8; 1000]).expect("write");
        std::fs::hard_link(dir.join("sub/a"), dir.join("b")).expect("link");
        std::os::unix::fs::symlink("/nonexistent/very/long/target", dir.join("c")).expect("symlink");
        let size = tree_size(&dir).expect("size");
        let dirs =
            std::fs::metadata(&dir).expect("stat").len() + std::fs::metadata(dir.join("sub")).expect("stat").len();
        assert_eq!(size, dirs + 1000 + "/nonexistent/very/long/target".len() as u64);
        remove_tree(&dir).expect("remove");
        assert!(!dir.exists());
        remove_tree(&dir).expect("removing a missing tree is fine");
    }
}
