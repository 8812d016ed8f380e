//! Where a sandbox's host-side resources live. Every path is derived from the data dir and the sandbox id,
//! so destroy and the reconcile at start find everything a sandbox owns without any other record.

use std::path::{Path, PathBuf};

/// The host directories of one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxPaths {
    /// `<data>/sandboxes/<id>`: everything below is owned by the sandbox.
    pub root: PathBuf,
    /// Everything the sandbox can write: its disk (see `sandbox_disk`), a mounted filesystem of its size
    /// when it has a limit.
    pub disk: PathBuf,
    /// The image file of a limited disk.
    pub disk_image: PathBuf,
    /// Overlay upper dir (the sandbox's writes).
    pub upper: PathBuf,
    /// Overlay work dir.
    pub work: PathBuf,
    /// Mount point of the merged overlay (the container's root).
    pub rootfs: PathBuf,
    /// Guest control dir, bind-mounted at `/run/nullspace` (socket + boot config).
    pub control: PathBuf,
    /// The sandbox's `/etc/resolv.conf` and `/etc/hosts` (bind-mounted writable).
    pub net: PathBuf,
    /// OCI bundle dir (config.json, init log).
    pub bundle: PathBuf,
    /// Host-only mount points of the volume directories the sandbox mounts (see `pinned_mounts`).
    pub pins: PathBuf,
}

impl SandboxPaths {
    /// Paths of sandbox `id` under `sandboxes_dir`.
    pub fn new(sandboxes_dir: &Path, id: &str) -> Self {
        let root = sandboxes_dir.join(id);
        let disk = root.join("disk");
        Self {
            upper: disk.join("upper"),
            work: disk.join("work"),
            control: disk.join("control"),
            net: disk.join("net"),
            disk_image: root.join(crate::sandbox_disk::IMAGE_NAME),
            disk,
            rootfs: root.join("rootfs"),
            bundle: root.join("bundle"),
            pins: root.join("mounts"),
            root,
        }
    }

    /// The same sandbox as laid out before sandbox disks existed (writes, control dir and network files
    /// directly in its root): how a sandbox launched by an older server and still running is found.
    pub fn before_disks(mut self) -> Self {
        self.upper = self.root.join("upper");
        self.work = self.root.join("work");
        self.control = self.root.join("control");
        self.net = self.root.join("net");
        self
    }

    /// The guest's unix socket on the host side.
    pub fn guest_socket(&self) -> PathBuf {
        self.control.join(nullspace_types::guest::GUEST_SOCKET_NAME)
    }

    /// The guest's boot configuration on the host side.
    pub fn guest_config(&self) -> PathBuf {
        self.control.join(nullspace_types::guest::GUEST_CONFIG_NAME)
    }

    /// The log of the sandbox's init process (guestd's stderr).
    pub fn init_log(&self) -> PathBuf {
        self.bundle.join("init.log")
    }
}

/// Creates `dir` (and missing parents) and makes it `0700`, also when it already existed: the data dir
/// and its trees of sandbox data (`sandboxes/`, `snapshots/`, `volumes/`, `templates/`) hold files a
/// sandbox wrote as root (setuid binaries, world-writable files), which no other host user may reach.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Whether `name` looks like a sandbox id this node created (`sb_` + lowercase alphanumerics).
pub fn is_sandbox_id(name: &str) -> bool {
    name.strip_prefix("sb_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_all_under_the_sandbox_root() {
        let paths = SandboxPaths::new(Path::new("/data/sandboxes"), "sb_abc");
        for path in [&paths.upper, &paths.work, &paths.rootfs, &paths.control, &paths.bundle, &paths.pins] {
            assert!(path.starts_with("/data/sandboxes/sb_abc"));
        }
        // Everything the sandbox writes is on its disk.
        for path in [&paths.upper, &paths.work, &paths.control, &paths.net] {
            assert!(path.starts_with(&paths.disk), "{}", path.display());
        }
        assert!(!paths.disk_image.starts_with(&paths.disk));
        assert_eq!(paths.guest_socket(), Path::new("/data/sandboxes/sb_abc/disk/control/guest.sock"));
    }

    #[test]
    fn sandbox_ids_are_recognised_strictly() {
        assert!(is_sandbox_id("sb_0a9z"));
        assert!(!is_sandbox_id("sb_"));
        assert!(!is_sandbox_id("sb_../x"));
        assert!(!is_sandbox_id("tmp"));
    }
}
