//! Sandbox disks: everything a sandbox with a disk limit can write on the host — its overlay upper and
//! work dirs, its control dir (`/run/nullspace`) and its network files (`/etc/resolv.conf`,
//! `/etc/hosts`) — lives in one ext4 filesystem of that size, held in a sparse image file beside it
//! (`<data>/sandboxes/<id>/disk.img`) and loop-mounted `nodev,nosuid,noatime` on `<id>/disk`. The kernel
//! enforces the limit: a write past it fails with `ENOSPC` inside the sandbox.
//!
//! The image is made on the create path: a sparse file and `mkfs.ext4` with lazy inode-table and journal
//! initialization and no resize inode (a sandbox disk never grows) write about 0.2 MiB of metadata at
//! 10 GiB (4 MiB with the resize inode's reserved blocks, held in the page cache of every sandbox), and the mount
//! (`mount -o loop`, util-linux) picks a free loop device and marks it to go with the last unmount.
//! `noinit_itable` keeps the kernel from zeroing inode tables in the background. Destroy unmounts it and
//! deletes the image; the reconcile at start also detaches loop devices still backed by the image of a
//! sandbox that is gone (a crash between attaching and mounting).
//!
//! Sandboxes without a limit (template builds, `--sandbox-disk unlimited`) use the same paths as plain
//! directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::layout::SandboxPaths;
use crate::volume_image::{self, ImageError};

/// Name of the image file in a sandbox's directory.
pub const IMAGE_NAME: &str = "disk.img";

/// Mount options of a sandbox disk: no devices or setuid through it, no atime writes, and no background
/// zeroing of inode tables (the image is sparse; lazily initialized tables are valid as they are).
const MOUNT_OPTIONS: &str = "loop,nodev,nosuid,noatime,noinit_itable";

/// Free space the data dir's filesystem must have for a launch: room for a disk image's metadata, the
/// sandbox's directories and the store's writes. Below it a launch fails at once with `ENOSPC` instead of
/// half-way through (images are sparse: an almost full host disk would fail the sandbox's writes later).
pub const LAUNCH_HEADROOM_BYTES: u64 = 32 << 20;

/// Checks that the filesystem holding `dir` has at least `needed` bytes free for the server (`ENOSPC`
/// otherwise, naming what is free).
pub fn check_headroom(dir: &Path, needed: u64) -> std::io::Result<()> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let free = stat.blocks_free().saturating_mul(stat.fragment_size());
    if free >= needed {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!("the data dir's filesystem has {} MiB free, a launch needs {} MiB", free >> 20, needed >> 20),
    ))
}

/// Size in bytes of the filesystem holding `dir` (the largest disk a sandbox there could ever fill).
pub fn filesystem_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.blocks().saturating_mul(stat.fragment_size()))
}

/// Makes the disk of a sandbox at `paths` ready for a launch: with a limit of `disk_mb` MiB a fresh image
/// is formatted and mounted on `paths.disk` (a disk already mounted there — a relaunch under the same id —
/// is kept); without one `paths.disk` is a plain directory.
pub fn prepare(paths: &SandboxPaths, disk_mb: Option<u32>) -> Result<(), ImageError> {
    let io = |operation: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Io { operation, path, source }
    };
    let sandboxes_dir = paths.root.parent().unwrap_or(&paths.root);
    check_headroom(sandboxes_dir, LAUNCH_HEADROOM_BYTES).map_err(io("checking free space of", sandboxes_dir))?;
    std::fs::create_dir_all(&paths.disk).map_err(io("creating", &paths.disk))?;
    let Some(disk_mb) = disk_mb else { return Ok(()) };
    if volume_image::is_mount_point(&paths.disk).map_err(io("inspecting", &paths.disk))? {
        return Ok(());
    }
    // An image left by an interrupted launch is not trusted to be whole: start again.
    match std::fs::remove_file(&paths.disk_image) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("removing", &paths.disk_image)(error)),
    }
    volume_image::format_fixed_size(&paths.disk_image, u64::from(disk_mb) << 20)?;
    volume_image::mount_with(&paths.disk_image, &paths.disk, MOUNT_OPTIONS)
}

/// Mounts the image at `paths.disk_image` that a fork copied from its parent's (see `disk_clone`) on
/// `paths.disk`, where [`prepare`] keeps it, and empties what the launch makes again: the overlay work dir
/// and the network files (the control dir is made fresh by every launch).
pub fn adopt(paths: &SandboxPaths) -> Result<(), ImageError> {
    let io = |operation: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Io { operation, path, source }
    };
    std::fs::create_dir_all(&paths.disk).map_err(io("creating", &paths.disk))?;
    volume_image::mount_with(&paths.disk_image, &paths.disk, MOUNT_OPTIONS)?;
    for dir in [&paths.work, &paths.net] {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io("emptying", dir)(error)),
        }
    }
    Ok(())
}

/// [`prepare`] on a blocking thread (`mkfs.ext4` and `mount` take tens of milliseconds).
pub async fn prepare_off_thread(paths: &SandboxPaths, disk_mb: Option<u32>) -> Result<(), ImageError> {
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || prepare(&paths, disk_mb)).await.unwrap_or_else(|error| {
        Err(ImageError::Tool { tool: "preparing a sandbox disk".into(), stderr: error.to_string() })
    })
}

/// [`release`] on a blocking thread (unmounting flushes the filesystem's journal).
pub async fn release_off_thread(paths: &SandboxPaths) -> Result<(), ImageError> {
    let paths = paths.clone();
    tokio::task::spawn_blocking(move || release(&paths)).await.unwrap_or_else(|error| {
        Err(ImageError::Tool { tool: "releasing a sandbox disk".into(), stderr: error.to_string() })
    })
}

/// Unmounts the disk of a sandbox at `paths` (nothing mounted is success); the loop device goes with
/// the unmount. The image itself goes with the sandbox's directory.
pub fn release(paths: &SandboxPaths) -> Result<(), ImageError> {
    volume_image::unmount(&paths.disk)
}

/// Checks that this host can make and mount sandbox disks, with a throwaway image in `dir` (on the data
/// dir's filesystem, where the real ones go). The error says what is missing.
pub fn probe(dir: &Path) -> Result<(), ImageError> {
    let image = dir.join(".disk-probe.img");
    let mount_point = dir.join(".disk-probe");
    let _ = volume_image::unmount(&mount_point);
    let _ = std::fs::remove_file(&image);
    std::fs::create_dir_all(&mount_point).map_err(|source| ImageError::Io {
        operation: "creating",
        path: mount_point.clone(),
        source,
    })?;
    let result = volume_image::format_fixed_size(&image, volume_image::MIN_SIZE_BYTES)
        .and_then(|()| volume_image::mount_with(&image, &mount_point, MOUNT_OPTIONS))
        .and_then(|()| volume_image::unmount(&mount_point));
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_dir(&mount_point);
    result
}

/// The loop devices of this host and their backing files (`/sys/block/loopN/loop/backing_file`, which
/// ends in ` (deleted)` once the file is unlinked).
fn loop_devices() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut devices = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) {
            devices.push((Path::new("/dev").join(&name), PathBuf::from(backing.trim_end_matches('\n'))));
        }
    }
    devices
}

/// The sandbox whose disk image `backing` is, when it is one in `sandboxes_dir` (a resolved path).
fn sandbox_of_backing_file(sandboxes_dir: &Path, backing: &Path) -> Option<String> {
    let text = backing.to_str()?;
    let path = Path::new(text.strip_suffix(" (deleted)").unwrap_or(text));
    let parts: Vec<&str> =
        path.strip_prefix(sandboxes_dir).ok()?.iter().map(|part| part.to_str()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [id, file] if *file == IMAGE_NAME && crate::layout::is_sandbox_id(id) => Some((*id).to_owned()),
        _ => None,
    }
}

/// Detaches loop devices backed by the disk image of a sandbox in `sandboxes_dir` that is not in
/// `alive` (left by a crash between attaching and mounting, or by a server killed mid-destroy). A
/// device whose filesystem is still mounted is only marked to go with its last unmount (the kernel's
/// `LOOP_CLR_FD` semantics). Returns the devices released.
pub fn release_stale_loops(sandboxes_dir: &Path, alive: &BTreeSet<String>) -> Vec<PathBuf> {
    // The kernel records resolved paths.
    let sandboxes_dir = std::fs::canonicalize(sandboxes_dir).unwrap_or_else(|_| sandboxes_dir.to_path_buf());
    let mut released = Vec::new();
    for (device, backing) in loop_devices() {
        let Some(id) = sandbox_of_backing_file(&sandboxes_dir, &backing) else { continue };
        if alive.contains(&id) {
            continue;
        }
        match volume_image::detach_loop(&device) {
            Ok(()) => released.push(device),
            Err(error) => tracing::warn!(device = %device.display(), %error, "cannot detach a stale sandbox disk"),
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sandbox_disk_images_in_the_data_dir_are_recognised() {
        let dir = Path::new("/data/sandboxes");
        let of = |text: &str| sandbox_of_backing_file(dir, Path::new(text));
        assert_eq!(of("/data/sandboxes/sb_abc1/disk.img"), Some("sb_abc1".into()));
        assert_eq!(of("/data/sandboxes/sb_abc1/disk.img (deleted)"), Some("sb_abc1".into()));
        assert_eq!(of("/data/sandboxes/sb_abc1/other.img"), None);
        assert_eq!(of("/data/sandboxes/sb_abc1/disk/disk.img"), None);
        assert_eq!(of("/data/volumes/vol_1/data.img"), None);
        assert_eq!(of("/elsewhere/sandboxes/sb_abc1/disk.img"), None);
        assert_eq!(of("/data/sandboxes/tmp/disk.img"), None);
    }

    #[test]
    fn headroom_is_checked_against_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        check_headroom(dir.path(), 1).unwrap();
        let error = check_headroom(dir.path(), u64::MAX).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
        assert!(error.to_string().contains("MiB free"), "{error}");
    }

    #[test]
    fn the_filesystem_size_is_that_of_the_directory_s_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let stat = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        assert_eq!(filesystem_bytes(dir.path()).unwrap(), stat.blocks() * stat.fragment_size());
        assert!(filesystem_bytes(&dir.path().join("missing")).is_err());
    }
}
