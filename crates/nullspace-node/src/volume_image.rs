//! Size-limited volumes: the data directory of a volume with a size limit is an ext4 filesystem held in
//! a sparse image file beside it (`<volume>/data.img`), loop-mounted on the data directory with
//! `nodev,nosuid`. The kernel enforces the limit: a write past it fails with `ENOSPC` in every sandbox
//! mounting the volume and through the direct files API alike. The limit is the filesystem's size;
//! ext4's own metadata (journal, inode tables) takes part of it: a quarter at 32 MiB, 7 % at 1 GiB,
//! 3 % at 10 GiB.
//!
//! Formatting and mounting use the host's `mkfs.ext4` (e2fsprogs) and `mount -o loop` (util-linux),
//! which picks a free loop device and marks it to be released when the last mount goes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the image file in a volume's directory.
pub const IMAGE_NAME: &str = "data.img";

/// Smallest size limit: below it ext4 leaves too little room for files beside its journal.
pub const MIN_SIZE_BYTES: u64 = 16 << 20;

/// A step of preparing or mounting an image that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("{operation} {path} failed")]
    Io {
        /// What was done.
        operation: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A host tool failed.
    #[error("`{tool}` failed: {stderr}")]
    Tool {
        /// The command.
        tool: String,
        /// What it printed on stderr (or why it could not run).
        stderr: String,
    },
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { operation, path, source }
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), ImageError> {
    let tool = || {
        let mut line = program.to_owned();
        for arg in args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    };
    let output = Command::new(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|error| ImageError::Tool { tool: tool(), stderr: format!("could not run it: {error}") })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(ImageError::Tool { tool: tool(), stderr: if stderr.is_empty() { output.status.to_string() } else { stderr } })
}

/// Creates a sparse image of `size_bytes` at `image` and formats it as ext4 (no reserved blocks, root
/// directory owned by root, inode tables and journal initialized lazily so it takes milliseconds).
pub fn format(image: &Path, size_bytes: u64) -> Result<(), ImageError> {
    format_with(image, size_bytes, &[])
}

/// [`format`] of a filesystem that is never grown: without the resize inode, whose reserved
/// descriptor blocks `mkfs` writes out (4 MiB of writes and page cache for 10 GiB, against 0.2 MiB
/// without; 32 ms instead of 48 ms here). Sandbox disks are made at their size and die with it.
pub fn format_fixed_size(image: &Path, size_bytes: u64) -> Result<(), ImageError> {
    format_with(image, size_bytes, &["-O".as_ref(), "^resize_inode".as_ref()])
}

fn format_with(image: &Path, size_bytes: u64, extra: &[&std::ffi::OsStr]) -> Result<(), ImageError> {
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(image).map_err(io("creating", image))?;
    file.set_len(size_bytes).map_err(io("sizing", image))?;
    drop(file);
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "-q".as_ref(),
        "-F".as_ref(),
        "-m".as_ref(),
        "0".as_ref(),
        "-E".as_ref(),
        "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0".as_ref(),
    ];
    args.extend_from_slice(extra);
    args.push(image.as_os_str());
    run("mkfs.ext4", &args)
}

/// Whether `path` is the root of a mount (its device differs from its parent's, or it is `/`).
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let Some(parent) = path.parent() else { return Ok(true) };
    let parent_meta = std::fs::metadata(parent)?;
    Ok(meta.dev() != parent_meta.dev() || meta.ino() == parent_meta.ino())
}

/// Loop-mounts `image` on `target` (`nodev,nosuid,noatime`) unless something is mounted there already.
/// A fresh filesystem's `lost+found` is removed so the volume starts empty (e2fsck recreates it when it
/// needs one).
pub fn mount(image: &Path, target: &Path) -> Result<(), ImageError> {
    mount_with(image, target, "loop,nodev,nosuid,noatime")
}

/// [`mount`] with mount options `options` (which must include `loop`).
pub fn mount_with(image: &Path, target: &Path, options: &str) -> Result<(), ImageError> {
    if is_mount_point(target).map_err(io("inspecting", target))? {
        return Ok(());
    }
    let args: [&std::ffi::OsStr; 6] =
        ["-t".as_ref(), "ext4".as_ref(), "-o".as_ref(), options.as_ref(), image.as_os_str(), target.as_os_str()];
    run("mount", &args)?;
    let lost_found = target.join("lost+found");
    if let Err(error) = std::fs::remove_dir(&lost_found) {
        if !matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty) {
            tracing::debug!(path = %lost_found.display(), %error, "lost+found kept");
        }
    }
    Ok(())
}

/// Unmounts whatever is mounted on `target` (lazily when busy); nothing mounted is success. The loop
/// device goes with the last reference to the filesystem.
pub fn unmount(target: &Path) -> Result<(), ImageError> {
    crate::overlay::unmount(target).map_err(|errno| ImageError::Io {
        operation: "unmounting",
        path: target.to_path_buf(),
        source: std::io::Error::from(errno),
    })
}

/// Detaches loop device `device` (`losetup -d`); one still mounted goes with its last unmount.
pub fn detach_loop(device: &Path) -> Result<(), ImageError> {
    run("losetup", &["-d".as_ref(), device.as_os_str()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_not_a_mount_point_but_the_root_is() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(!is_mount_point(&sub).unwrap());
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
    }

    #[test]
    fn a_tool_failure_names_the_command_and_its_complaint() {
        let error = run("mount", &["--no-such-flag".as_ref()]).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("`mount --no-such-flag` failed: "), "{text}");
        let missing = run("nullspace-no-such-tool", &[]).unwrap_err().to_string();
        assert!(missing.contains("could not run it"), "{missing}");
    }
}
