//! Persistent volumes on this host: each volume's data directory (`<data>/volumes/<vol_id>/data`), its
//! usage, the validation of mount paths, and the safe resolution of a mount's `subpath` under the volume
//! root (no `..`, no symlink may lead out of it) into a bind mount of the sandbox. A volume with a size
//! limit keeps its data in a loop-mounted filesystem image ([`crate::volume_image`]).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::volume_image;

/// Paths inside a sandbox that the runtime owns; a volume cannot be mounted on or below them.
pub const RESERVED_MOUNT_PATHS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run/nullspace",
    "/workspace/.nullspace",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
];

/// One volume mounted into a sandbox, as recorded with the sandbox (and in its snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// `att_…` id of this attachment.
    pub attachment_id: String,
    /// `vol_…` id of the volume.
    pub volume_id: String,
    /// Absolute path inside the sandbox.
    pub mount_path: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Subtree of the volume mounted instead of its root (relative, normalized).
    #[serde(default)]
    pub subpath: Option<String>,
    /// RFC 3339 time the attachment was made.
    #[serde(default)]
    pub created_at: String,
}

/// A volume operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The mount path cannot be used.
    #[error("mount_path {path:?} is invalid: {reason}")]
    InvalidMountPath {
        /// Requested path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The subpath cannot be used.
    #[error("subpath {subpath:?} is invalid: {reason}")]
    InvalidSubpath {
        /// Requested subpath.
        subpath: String,
        /// Why.
        reason: String,
    },
    /// The volume's data directory is missing on this host.
    #[error("volume {volume_id} has no data directory on this host")]
    Missing {
        /// Volume id.
        volume_id: String,
    },
    /// The requested size limit cannot be used.
    #[error("max_size_bytes {size} is invalid: {reason}")]
    InvalidSize {
        /// Requested limit.
        size: u64,
        /// Why.
        reason: String,
    },
    /// Preparing or mounting a size-limited volume's filesystem failed.
    #[error("the filesystem of volume {volume_id} could not be prepared")]
    Image {
        /// Volume id.
        volume_id: String,
        /// Cause.
        #[source]
        source: crate::volume_image::ImageError,
    },
    /// A filesystem operation on a volume failed.
    #[error("{operation} of volume {volume_id} at {path} failed")]
    Filesystem {
        /// What was done.
        operation: &'static str,
        /// Volume id.
        volume_id: String,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Usage of one volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeUsage {
    /// Bytes of regular files.
    pub used_bytes: u64,
    /// Files, directories and links below the root.
    pub inode_count: u64,
}

/// The volumes of one host, below `<data>/volumes`.
#[derive(Debug, Clone)]
pub struct Volumes {
    root: PathBuf,
}

impl Volumes {
    /// Volumes under `data_dir/volumes`.
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.join("volumes") }
    }

    /// Directory owned by volume `volume_id` (data plus the node's bookkeeping).
    pub fn volume_dir(&self, volume_id: &str) -> PathBuf {
        self.root.join(volume_id)
    }

    /// The data directory of volume `volume_id` (what sandboxes see).
    pub fn data_dir(&self, volume_id: &str) -> PathBuf {
        self.volume_dir(volume_id).join("data")
    }

    /// The image file of volume `volume_id` (present only when it has a size limit).
    pub fn image_path(&self, volume_id: &str) -> PathBuf {
        self.volume_dir(volume_id).join(volume_image::IMAGE_NAME)
    }

    /// Checks a size limit: at least [`volume_image::MIN_SIZE_BYTES`], at most the size of the host
    /// filesystem holding the volumes.
    pub fn check_size(&self, size: u64) -> Result<(), VolumeError> {
        let invalid = |reason: String| VolumeError::InvalidSize { size, reason };
        if size < volume_image::MIN_SIZE_BYTES {
            return Err(invalid(format!("the smallest size limit is {} bytes (16 MiB)", volume_image::MIN_SIZE_BYTES)));
        }
        let existing = self.root.ancestors().find(|dir| dir.exists()).unwrap_or(Path::new("/"));
        if let Ok(stat) = nix::sys::statvfs::statvfs(existing) {
            let total = stat.blocks().saturating_mul(stat.fragment_size());
            if size > total {
                return Err(invalid(format!("it is larger than the host filesystem holding volumes ({total} bytes)")));
            }
        }
        Ok(())
    }

    /// Creates the data directory of a new volume; with `max_size` its data lives in a filesystem image of
    /// that size, mounted on the data directory. On failure nothing of the volume is left.
    pub fn create(&self, volume_id: &str, max_size: Option<u64>) -> Result<PathBuf, VolumeError> {
        let data = self.data_dir(volume_id);
        std::fs::create_dir_all(&data).map_err(|source| VolumeError::Filesystem {
            operation: "creating the data directory",
            volume_id: volume_id.to_owned(),
            path: data.clone(),
            source,
        })?;
        if let Some(size) = max_size {
            let image = self.image_path(volume_id);
            let prepared = self.check_size(size).and_then(|()| {
                volume_image::format(&image, size)
                    .and_then(|()| volume_image::mount(&image, &data))
                    .map_err(|source| VolumeError::Image { volume_id: volume_id.to_owned(), source })
            });
            if let Err(error) = prepared {
                let _ = self.remove(volume_id);
                return Err(error);
            }
        }
        Ok(data)
    }

    /// Mounts the filesystem of a size-limited volume when it is not mounted (after a host restart);
    /// nothing to do for a plain volume.
    pub fn ensure_mounted(&self, volume_id: &str) -> Result<(), VolumeError> {
        let image = self.image_path(volume_id);
        if !image.is_file() {
            return Ok(());
        }
        volume_image::mount(&image, &self.data_dir(volume_id))
            .map_err(|source| VolumeError::Image { volume_id: volume_id.to_owned(), source })
    }

    /// Ids of the volumes that have a directory on this host.
    pub fn host_volume_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect()
    }

    /// Removes volume `volume_id` and its data, unmounting its filesystem first (idempotent).
    pub fn remove(&self, volume_id: &str) -> Result<(), VolumeError> {
        let dir = self.volume_dir(volume_id);
        let data = self.data_dir(volume_id);
        if volume_image::is_mount_point(&data).unwrap_or(false) {
            volume_image::unmount(&data)
                .map_err(|source| VolumeError::Image { volume_id: volume_id.to_owned(), source })?;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(VolumeError::Filesystem {
                operation: "removing",
                volume_id: volume_id.to_owned(),
                path: dir,
                source,
            }),
        }
    }

    /// Sums the usage of the data directory, walked by descriptor without following symlinks or leaving
    /// its filesystem, within [`crate::tree_usage::Budget::DEFAULT`]. Blocking.
    pub fn usage(&self, volume_id: &str) -> VolumeUsage {
        let usage = crate::tree_usage::tree_usage(&self.data_dir(volume_id));
        VolumeUsage { used_bytes: usage.bytes, inode_count: usage.entries }
    }

    /// Opens the directory a mount of `volume_id` binds: the data root, or `subpath` below it, created when
    /// missing. Every component is opened with `O_NOFOLLOW` relative to its parent, so neither `..` nor a
    /// symlink planted in the volume can lead outside it.
    pub fn open_mount_source(&self, volume_id: &str, subpath: Option<&str>) -> Result<OwnedFd, VolumeError> {
        let opened = self.walk_mount_source(volume_id, subpath, true)?;
        Ok(opened.expect("a walk that creates missing directories finds them"))
    }

    /// [`Volumes::open_mount_source`] without creating anything: `None` when a directory of `subpath` is
    /// missing (someone removed it). What a probe of an existing mount uses.
    pub fn find_mount_source(&self, volume_id: &str, subpath: Option<&str>) -> Result<Option<OwnedFd>, VolumeError> {
        self.walk_mount_source(volume_id, subpath, false)
    }

    fn walk_mount_source(
        &self,
        volume_id: &str,
        subpath: Option<&str>,
        create_missing: bool,
    ) -> Result<Option<OwnedFd>, VolumeError> {
        let data = self.data_dir(volume_id);
        if !data.is_dir() {
            return Err(VolumeError::Missing { volume_id: volume_id.to_owned() });
        }
        let fs_error = |operation, path: &Path| {
            let path = path.to_path_buf();
            move |source| VolumeError::Filesystem { operation, volume_id: volume_id.to_owned(), path, source }
        };
        let mut current = open_dir(libc::AT_FDCWD, data.as_os_str().as_bytes()).map_err(fs_error("opening", &data))?;
        let components = match subpath {
            Some(subpath) => normalize_subpath(subpath)?,
            None => Vec::new(),
        };
        let mut walked = data.clone();
        for component in components {
            walked.push(&component);
            let name = component.as_bytes();
            let next = match open_dir(current.as_raw_fd(), name) {
                Ok(fd) => fd,
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) && !create_missing => return Ok(None),
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                    mkdir_at(current.as_raw_fd(), name).map_err(fs_error("creating the subpath", &walked))?;
                    open_dir(current.as_raw_fd(), name).map_err(fs_error("opening the subpath", &walked))?
                }
                Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(VolumeError::InvalidSubpath {
                        subpath: subpath.unwrap_or_default().to_owned(),
                        reason: format!("{component} is not a directory of the volume (symlinks are not followed)"),
                    });
                }
                Err(error) => return Err(fs_error("opening the subpath", &walked)(error)),
            };
            current = next;
        }
        Ok(Some(current))
    }
}

fn open_dir(dirfd: libc::c_int, name: &[u8]) -> std::io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a valid NUL-terminated string; the returned descriptor is owned by the caller.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdir_at(dirfd: libc::c_int, name: &[u8]) -> std::io::Result<()> {
    let name = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let result = unsafe { libc::mkdirat(dirfd, name.as_ptr(), 0o755) };
    if result < 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EEXIST) {
            return Err(error);
        }
    }
    Ok(())
}

/// The components of a subpath (relative or absolute within the volume); `..` is refused.
pub fn normalize_subpath(subpath: &str) -> Result<Vec<String>, VolumeError> {
    let invalid = |reason: &str| VolumeError::InvalidSubpath { subpath: subpath.to_owned(), reason: reason.to_owned() };
    use nullspace_types::rel_path::{clean, RelPathError};
    let cleaned = clean(Path::new(subpath), true).map_err(|error| match error {
        RelPathError::ParentDir => invalid("`..` is not allowed; name a directory inside the volume"),
        RelPathError::Nul => invalid("it contains a NUL byte"),
        RelPathError::Absolute => invalid("unsupported path prefix"),
    })?;
    // `subpath` is a `str`, so every component is valid UTF-8.
    Ok(cleaned.iter().map(|name| name.to_string_lossy().into_owned()).collect())
}

/// The normalized subpath (`a/b`), `None` for the volume root.
pub fn subpath_string(subpath: &str) -> Result<Option<String>, VolumeError> {
    let components = normalize_subpath(subpath)?;
    Ok((!components.is_empty()).then(|| components.join("/")))
}

/// Checks a mount path: absolute, no `..`, not `/`, not on or below a path the runtime owns. Returns it
/// normalized (no trailing or doubled slashes).
pub fn validate_mount_path(path: &str) -> Result<String, VolumeError> {
    let invalid = |reason: String| VolumeError::InvalidMountPath { path: path.to_owned(), reason };
    if !path.starts_with('/') {
        return Err(invalid("it must be absolute, e.g. /data".into()));
    }
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte".into()));
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return Err(invalid("`..` is not allowed".into())),
        }
    }
    if parts.is_empty() {
        return Err(invalid("the root directory cannot be replaced by a volume; use e.g. /data".into()));
    }
    let normalized = format!("/{}", parts.join("/"));
    for reserved in RESERVED_MOUNT_PATHS {
        if normalized == *reserved || normalized.starts_with(&format!("{reserved}/")) {
            return Err(invalid(format!("{reserved} is reserved by the sandbox runtime; choose another path")));
        }
    }
    Ok(normalized)
}

/// The mount path among `others` that `path` equals, lies inside or contains, if any. Volume mounts are
/// never nested: the runtime would create the inner mount point inside the outer volume while another
/// sandbox of the tenant may be writing there (the race of CVE-2024-45310 and CVE-2025-52881, which
/// Debian's runc 1.1.5 does not patch), and a live detach of the outer one would strand the inner one.
pub fn nested_mount<'a>(others: impl IntoIterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    let inside = |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    others.into_iter().find(|other| inside(path, other) || inside(other, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path the kernel resolved for `fd` (tests only: the node never reopens a checked directory by path).
    fn fd_path(fd: &OwnedFd) -> std::io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    #[test]
    fn nested_mount_paths_are_found_both_ways() {
        let taken = ["/data", "/work/shared"];
        assert_eq!(nested_mount(taken, "/data"), Some("/data"));
        assert_eq!(nested_mount(taken, "/data/sub"), Some("/data"));
        assert_eq!(nested_mount(taken, "/work"), Some("/work/shared"));
        assert_eq!(nested_mount(taken, "/database"), None);
        assert_eq!(nested_mount(taken, "/work/sharedx"), None);
    }

    #[test]
    fn reserved_and_relative_mount_paths_are_refused() {
        for bad in [
            "/",
            "data",
            "",
            "/proc",
            "/proc/x",
            "/sys",
            "/dev/shm",
            "/run/nullspace",
            "/run/nullspace/a",
            "/workspace/.nullspace",
            "/etc/resolv.conf",
            "/etc/hosts",
            "/data/../proc",
            "//",
        ] {
            assert!(validate_mount_path(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(validate_mount_path("/data/").unwrap(), "/data");
        assert_eq!(validate_mount_path("/workspace/shared").unwrap(), "/workspace/shared");
        assert_eq!(validate_mount_path("/run/other").unwrap(), "/run/other");
        assert_eq!(validate_mount_path("/devices").unwrap(), "/devices");
    }

    #[test]
    fn subpaths_are_normalized_and_parent_components_refused() {
        assert_eq!(subpath_string("projects/demo/").unwrap().as_deref(), Some("projects/demo"));
        assert_eq!(subpath_string("/a/./b").unwrap().as_deref(), Some("a/b"));
        assert_eq!(subpath_string("/").unwrap(), None);
        assert!(subpath_string("../x").is_err());
        assert!(subpath_string("a/../../x").is_err());
    }

    #[test]
    fn subpath_resolution_creates_missing_dirs_and_never_follows_symlinks() {
        let data = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(data.path());
        let root = volumes.create("vol_a", None).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("real/up")).unwrap();

        let opened = volumes.open_mount_source("vol_a", Some("projects/demo")).unwrap();
        assert!(root.join("projects/demo").is_dir());
        assert_eq!(fd_path(&opened).unwrap(), std::fs::canonicalize(root.join("projects/demo")).unwrap());

        for escape in ["escape", "escape/x", "real/up", "real/up/etc", "../vol_b"] {
            let error = volumes.open_mount_source("vol_a", Some(escape)).unwrap_err();
            assert!(matches!(error, VolumeError::InvalidSubpath { .. }), "{escape}: {error}");
        }
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none(), "nothing created outside");
        assert!(matches!(volumes.open_mount_source("vol_missing", None), Err(VolumeError::Missing { .. })));
    }

    #[test]
    fn finding_a_mount_source_creates_nothing() {
        let data = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(data.path());
        let root = volumes.create("vol_f", None).unwrap();
        assert!(volumes.find_mount_source("vol_f", Some("gone/deeper")).unwrap().is_none());
        assert!(!root.join("gone").exists(), "a probe must not recreate a removed subpath");
        std::fs::create_dir_all(root.join("here/sub")).unwrap();
        let found = volumes.find_mount_source("vol_f", Some("here/sub")).unwrap().expect("existing subpath");
        assert_eq!(fd_path(&found).unwrap(), std::fs::canonicalize(root.join("here/sub")).unwrap());
        std::os::unix::fs::symlink("/", root.join("link")).unwrap();
        assert!(matches!(volumes.find_mount_source("vol_f", Some("link")), Err(VolumeError::InvalidSubpath { .. })));
    }

    #[test]
    fn usage_counts_files_dirs_and_bytes() {
        let data = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(data.path());
        let root = volumes.create("vol_u", None).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"12345").unwrap();
        std::fs::write(root.join("g"), b"abc").unwrap();
        assert_eq!(volumes.usage("vol_u"), VolumeUsage { used_bytes: 8, inode_count: 3 });
        volumes.remove("vol_u").unwrap();
        volumes.remove("vol_u").unwrap();
        assert!(!volumes.volume_dir("vol_u").exists());
    }

    /// Root only (loop devices and mounts; CI runs as root): a size-limited volume is its own filesystem
    /// that refuses writes past the limit, survives an unmount (a host restart) through `ensure_mounted`,
    /// and leaves no mount, loop device or file after `remove`.
    #[test]
    fn a_size_limited_volume_is_a_filesystem_of_that_size_and_goes_without_a_trace() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping size-limited volume test: not root");
            return;
        }
        let data = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(data.path());
        assert!(matches!(volumes.create("vol_t", Some(1 << 20)), Err(VolumeError::InvalidSize { .. })));
        assert!(!volumes.volume_dir("vol_t").exists(), "a refused size leaves nothing");

        let root = volumes.create("vol_s", Some(16 << 20)).unwrap();
        let image = volumes.image_path("vol_s");
        let loops = || {
            let out = std::process::Command::new("losetup").arg("-j").arg(&image).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert!(volume_image::is_mount_point(&root).unwrap());
        assert!(!loops().is_empty());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "starts empty (no lost+found)");
        let big = vec![7u8; 20 << 20];
        let error = std::fs::write(root.join("big"), &big).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
        std::fs::remove_file(root.join("big")).unwrap();
        std::fs::write(root.join("keep"), b"kept").unwrap();

        volume_image::unmount(&root).unwrap();
        assert!(!volume_image::is_mount_point(&root).unwrap());
        volumes.ensure_mounted("vol_s").unwrap();
        volumes.ensure_mounted("vol_s").unwrap();
        assert_eq!(std::fs::read(root.join("keep")).unwrap(), b"kept");
        assert_eq!(volumes.host_volume_ids(), ["vol_s"]);

        volumes.remove("vol_s").unwrap();
        assert!(!volumes.volume_dir("vol_s").exists());
        assert_eq!(loops(), "", "the loop device is released");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(data.path().to_str().unwrap()), "no mount left");
    }
}
