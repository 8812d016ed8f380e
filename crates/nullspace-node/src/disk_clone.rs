//! Copies of a sandbox's disk image for a fork: the parent's filesystem is frozen (`FIFREEZE`: its journal
//! flushed, every write held) and its image file copied while it stays so. The copy is a reflink
//! (`FICLONE`, O(1): the two images share blocks until either writes) where the data dir's filesystem can
//! (XFS made with `reflink=1`, btrfs); elsewhere (ext4) it copies only the image's data extents
//! (`SEEK_DATA`/`SEEK_HOLE` and in-kernel `copy_file_range`), O(bytes the parent's disk holds).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Whence;

use crate::node::Node;
use crate::sandbox_disk;
use crate::volume_image::{self, ImageError};
use crate::{NodeError, NodeResult};

// `linux/fs.h`: FICLONE is `_IOW(0x94, 9, int)` (the argument is the source descriptor), FIFREEZE and
// FITHAW are `_IOWR('X', 119 | 120, int)` (the argument is ignored).
mod ioctl {
    nix::ioctl_write_int!(ficlone, 0x94, 9);
    nix::ioctl_readwrite!(fifreeze, b'X', 119, libc::c_int);
    nix::ioctl_readwrite!(fithaw, b'X', 120, libc::c_int);
}
use ioctl::{ficlone, fifreeze, fithaw};

/// How an image was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMethod {
    /// Shared blocks (`FICLONE`): nothing was copied.
    Reflink,
    /// The data extents were copied: `bytes` of them.
    SparseCopy {
        /// Bytes copied.
        bytes: u64,
    },
}

impl CloneMethod {
    /// A short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Reflink => "reflink",
            Self::SparseCopy { .. } => "sparse_copy",
        }
    }
}

/// A filesystem frozen with `FIFREEZE`: consistent on its device and taking no writes until dropped
/// (`FITHAW`).
pub struct Frozen {
    root: File,
}

impl Frozen {
    /// Freezes the filesystem mounted at `mount_point` (the caller must hold `CAP_SYS_ADMIN`).
    pub fn freeze(mount_point: &Path) -> io::Result<Self> {
        let root = File::open(mount_point)?;
        let mut ignored: libc::c_int = 0;
        // SAFETY: FIFREEZE on an open descriptor; the argument is a valid int the kernel ignores.
        unsafe { fifreeze(root.as_raw_fd(), &mut ignored) }.map_err(io::Error::from)?;
        Ok(Self { root })
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let mut ignored: libc::c_int = 0;
        // SAFETY: as in `freeze`.
        if let Err(error) = unsafe { fithaw(self.root.as_raw_fd(), &mut ignored) } {
            tracing::error!(%error, "cannot thaw a sandbox disk");
        }
    }
}

/// Thaws the filesystem mounted at `mount_point` if it is frozen (a server that died between freeze and
/// thaw); one that is not frozen is left as it is.
pub fn thaw(mount_point: &Path) -> io::Result<()> {
    let root = File::open(mount_point)?;
    let mut ignored: libc::c_int = 0;
    // SAFETY: as in `Frozen::freeze`.
    match unsafe { fithaw(root.as_raw_fd(), &mut ignored) } {
        Ok(_) | Err(Errno::EINVAL) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Whether files in `dir` can be reflinked (`FICLONE` between two files there succeeds): XFS made with
/// reflink, btrfs. On ext4 it cannot, and a fork copies the parent's change set instead of its image: a
/// sparse copy of the image there measured slower than copying the upper dir (the freeze alone costs as
/// much as a small change set's copy).
pub fn reflink_works(dir: &Path) -> bool {
    let (source, target) = (dir.join(".reflink-probe"), dir.join(".reflink-probe.copy"));
    let _ = std::fs::remove_file(&target);
    let works = std::fs::write(&source, [0_u8; 4096])
        .and_then(|()| Ok((File::open(&source)?, File::create(&target)?)))
        // SAFETY: FICLONE between two open descriptors; the argument is the source descriptor.
        .map(|(input, output)| unsafe { ficlone(output.as_raw_fd(), input.as_raw_fd() as libc::c_ulong) }.is_ok())
        .unwrap_or(false);
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&target);
    works
}

/// Copies the image file `source` to `target` (created; it must not exist): a reflink when the
/// filesystem shares blocks, otherwise a copy of its data extents with the holes kept.
pub fn clone_image(source: &Path, target: &Path) -> io::Result<CloneMethod> {
    use std::os::unix::fs::OpenOptionsExt;
    let input = File::open(source)?;
    let output = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(target)?;
    let result = clone_open(&input, &output);
    if result.is_err() {
        let _ = std::fs::remove_file(target);
    }
    result
}

fn clone_open(input: &File, output: &File) -> io::Result<CloneMethod> {
    // SAFETY: FICLONE between two open descriptors; the argument is the source descriptor.
    match unsafe { ficlone(output.as_raw_fd(), input.as_raw_fd() as libc::c_ulong) } {
        Ok(_) => return Ok(CloneMethod::Reflink),
        // No shared blocks on this filesystem (or across these two): copy.
        Err(Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS) => {}
        Err(error) => return Err(error.into()),
    }
    let length = input.metadata()?.len();
    output.set_len(length)?;
    let mut copied = 0_u64;
    let mut position = 0_i64;
    let length = i64::try_from(length).map_err(|_| io::Error::other("image too large"))?;
    while position < length {
        let start = match nix::unistd::lseek(input.as_raw_fd(), position, Whence::SeekData) {
            Ok(start) => start,
            Err(Errno::ENXIO) => break, // only a hole is left
            Err(error) => return Err(error.into()),
        };
        let end = nix::unistd::lseek(input.as_raw_fd(), start, Whence::SeekHole).map_err(io::Error::from)?;
        let (mut from, mut to) = (start, start);
        while from < end {
            let chunk = usize::try_from(end - from).unwrap_or(usize::MAX).min(1 << 30);
            // SAFETY: both descriptors are open for the call, and the offsets are valid `loff_t`s it updates.
            let done =
                unsafe { libc::copy_file_range(input.as_raw_fd(), &mut from, output.as_raw_fd(), &mut to, chunk, 0) };
            if done < 0 {
                return Err(io::Error::last_os_error());
            }
            if done == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the image shrank while it was copied"));
            }
            copied += done as u64;
        }
        position = end;
    }
    Ok(CloneMethod::SparseCopy { bytes: copied })
}

impl Node {
    /// Whether a fork of sandbox `sandbox_id` copies its disk image ([`Node::clone_disk`]): it has a
    /// mounted one (a disk limit, in this server's layout) and the data dir's filesystem reflinks, so
    /// the copy is O(1). Otherwise a fork copies the sandbox's upper dir into a layer.
    pub fn forks_by_disk_copy(&self, sandbox_id: &str) -> bool {
        let paths = self.paths(sandbox_id);
        self.disk_reflink() && paths.disk_image.is_file() && volume_image::is_mount_point(&paths.disk).unwrap_or(false)
    }

    /// Makes the disk of new sandbox `child` a copy of running sandbox `parent`'s, mounted where its
    /// launch keeps it: every file, owner, xattr and whiteout of the parent's writes, and its size limit.
    /// The parent's processes (cgroup freezer) and filesystem (`FIFREEZE`) are frozen only while its
    /// image is copied (see [`clone_image`]). On error the caller destroys `child`, which releases
    /// whatever was made.
    #[tracing::instrument(skip_all, fields(parent = %parent, child = %child))]
    pub async fn clone_disk(&self, parent: &str, child: &str) -> NodeResult<CloneMethod> {
        let (from, to) = (self.paths(parent), self.paths(child));
        let started = Instant::now();
        let disk_error = |sandbox_id: &str| {
            let sandbox_id = sandbox_id.to_owned();
            move |source| NodeError::Disk { sandbox_id, source }
        };
        let io = |operation: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Io { operation, path, source }
        };
        sandbox_disk::check_headroom(self.sandboxes_dir(), sandbox_disk::LAUNCH_HEADROOM_BYTES)
            .map_err(io("checking free space of", self.sandboxes_dir()))
            .map_err(disk_error(child))?;
        std::fs::create_dir_all(&to.root).map_err(io("creating", &to.root)).map_err(disk_error(child))?;
        let runtime_error = |source| NodeError::Runtime { sandbox_id: parent.to_owned(), source };
        self.runtime().freeze(parent).await.map_err(runtime_error)?;
        let frozen = started.elapsed();
        let (disk, source, target) = (from.disk.clone(), from.disk_image.clone(), to.disk_image.clone());
        let copied = tokio::task::spawn_blocking(move || {
            let _frozen = Frozen::freeze(&disk).map_err(io("freezing", &disk))?;
            clone_image(&source, &target).map_err(io("copying", &source))
        })
        .await
        .unwrap_or_else(|error| {
            Err(ImageError::Tool { tool: "copying a disk image".into(), stderr: error.to_string() })
        });
        let copy_done = started.elapsed();
        let thawed = self.runtime().thaw(parent).await;
        let method = copied.map_err(disk_error(parent))?;
        thawed.map_err(runtime_error)?;
        let thaw_done = started.elapsed();
        let adopt = to.clone();
        tokio::task::spawn_blocking(move || sandbox_disk::adopt(&adopt))
            .await
            .unwrap_or_else(|error| {
                Err(ImageError::Tool { tool: "mounting a disk copy".into(), stderr: error.to_string() })
            })
            .map_err(disk_error(child))?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            method = method.as_str(),
            freeze_ms = ms(frozen),
            copy_ms = ms(copy_done - frozen),
            thaw_ms = ms(thaw_done - copy_done),
            mount_ms = ms(started.elapsed() - thaw_done),
            "disk copied for a fork"
        );
        Ok(method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn a_sparse_copy_keeps_every_byte_and_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.img");
        let mut file = File::create(&source).unwrap();
        file.set_len(64 << 20).unwrap();
        for (offset, byte) in [(0_u64, 1_u8), (8 << 20, 2), ((64 << 20) - 4096, 3)] {
            file.seek(SeekFrom::Start(offset)).unwrap();
            file.write_all(&vec![byte; 4096]).unwrap();
        }
        file.sync_all().unwrap();
        let target = dir.path().join("target.img");
        let method = clone_image(&source, &target).unwrap();
        let mut copied = Vec::new();
        File::open(&target).unwrap().read_to_end(&mut copied).unwrap();
        let mut original = Vec::new();
        File::open(&source).unwrap().read_to_end(&mut original).unwrap();
        assert!(copied == original, "the copy differs from its source");
        if let CloneMethod::SparseCopy { bytes } = method {
            assert!(bytes < 16 << 20, "the holes were copied: {bytes} bytes");
            use std::os::unix::fs::MetadataExt;
            let blocks = std::fs::metadata(&target).unwrap().blocks() * 512;
            assert!(blocks < 16 << 20, "the copy is not sparse: {blocks} bytes allocated");
        }
        assert!(clone_image(&source, &target).is_err(), "an existing target is never overwritten");
    }

    /// Unmounts what a test mounted, also when it fails.
    struct Mounted(std::path::PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = volume_image::unmount(&self.0);
        }
    }

    fn mounted(image: &Path, target: &Path, options: &str) -> Mounted {
        std::fs::create_dir_all(target).unwrap();
        volume_image::mount_with(image, target, options).unwrap();
        Mounted(target.to_path_buf())
    }

    #[test]
    fn a_disk_copied_while_frozen_mounts_with_every_file_and_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (image, copy) = (dir.path().join("disk.img"), dir.path().join("copy.img"));
        volume_image::format(&image, 64 << 20).unwrap();
        let parent = mounted(&image, &dir.path().join("parent"), "loop,nodev,nosuid,noatime");
        let upper = parent.0.join("upper/workspace");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(upper.join("kept.txt"), "from the parent").unwrap();
        std::fs::write(upper.join("big.bin"), vec![7_u8; 3 << 20]).unwrap();
        std::os::unix::fs::lchown(upper.join("kept.txt"), Some(1000), Some(1001)).unwrap();
        {
            // No sync first: freezing writes back what the page cache holds.
            let _frozen = Frozen::freeze(&parent.0).unwrap();
            assert_eq!(
                Frozen::freeze(&parent.0).err().and_then(|e| e.raw_os_error()),
                Some(libc::EBUSY),
                "the filesystem is frozen"
            );
            clone_image(&image, &copy).unwrap();
        }
        // Thawed: the parent writes on, and the copy does not see it.
        std::fs::write(upper.join("after.txt"), "later").unwrap();
        thaw(&parent.0).unwrap(); // not frozen: nothing to do
        let child = mounted(&copy, &dir.path().join("child"), "loop,nodev,nosuid,noatime");
        let kept = child.0.join("upper/workspace/kept.txt");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "from the parent");
        let meta = std::fs::metadata(&kept).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
        assert_eq!(std::fs::read(child.0.join("upper/workspace/big.bin")).unwrap(), vec![7_u8; 3 << 20]);
        assert!(!child.0.join("upper/workspace/after.txt").exists());
    }

    #[test]
    fn on_xfs_with_reflink_the_copy_shares_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("xfs.img");
        File::create(&image).unwrap().set_len(320 << 20).unwrap();
        let status = std::process::Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image)
            .status()
            .expect("mkfs.xfs (xfsprogs) is installed");
        assert!(status.success());
        let data = std::fs::create_dir_all(dir.path().join("data")).map(|()| dir.path().join("data")).unwrap();
        let status =
            std::process::Command::new("mount").args(["-t", "xfs", "-o", "loop"]).arg(&image).arg(&data).status();
        assert!(status.unwrap().success());
        let _data = Mounted(data.clone());
        let source = data.join("disk.img");
        let mut file = File::create(&source).unwrap();
        file.set_len(1 << 30).unwrap();
        file.write_all(&vec![9_u8; 8 << 20]).unwrap();
        drop(file);
        let target = data.join("copy.img");
        assert!(reflink_works(&data));
        assert!(!reflink_works(dir.path()) || !is_ext4(dir.path()), "ext4 shares no blocks");
        assert_eq!(clone_image(&source, &target).unwrap(), CloneMethod::Reflink);
        assert_eq!(std::fs::read(&target).unwrap()[..8 << 20], vec![9_u8; 8 << 20][..]);
        assert_eq!(std::fs::metadata(&target).unwrap().len(), 1 << 30);
    }

    fn is_ext4(dir: &Path) -> bool {
        nix::sys::statfs::statfs(dir).is_ok_and(|stat| stat.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC)
    }
}
