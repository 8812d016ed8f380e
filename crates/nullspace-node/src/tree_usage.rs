//! Disk usage of a host directory tree that a sandbox or a volume's users can write (an overlay upper dir,
//! a volume's data, a snapshot layer): walked by descriptor, never by path. Each directory is opened
//! relative to its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, each entry is `fstatat`ed with
//! `AT_SYMLINK_NOFOLLOW`, and an opened directory must be the inode that was stat'ed, so swapping a
//! directory for a symlink (or another directory) mid-walk can never lead the walk outside the tree.
//! The walk stays on the root's filesystem (like `du -x`): the trees it measures are plain directories
//! of one filesystem (a size-limited volume's root is its own filesystem, and everything below it is on
//! it); something mounted inside one is not the tenant's data. It is bounded: at most
//! [`Budget::entries`] entries and [`Budget::depth`] levels (one open descriptor per level); past a
//! bound it stops descending or reading and reports what it counted so far with `complete: false`.
//! It blocks (one system call per entry): async callers run it on a blocking thread.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// How much of a tree a walk may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Entries (files, directories, links, ...) statted at most; the walk stops at this count.
    pub entries: u64,
    /// Directory levels below the root descended at most; deeper directories are counted, not read.
    pub depth: usize,
}

impl Budget {
    /// What metrics, volume usage and snapshot sizes use: a million entries (a second or two of
    /// `fstatat`s on a warm cache) and 256 levels (256 descriptors at most).
    pub const DEFAULT: Budget = Budget { entries: 1_000_000, depth: 256 };
}

/// Usage of one tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Apparent size of the regular files below the root.
    pub bytes: u64,
    /// Entries below the root (files, directories, links, ...), the root itself not included.
    pub entries: u64,
    /// False when a budget bound stopped the walk early (`bytes` and `entries` are then lower bounds) or
    /// the root could not be opened.
    pub complete: bool,
}

/// Walks `root` (a directory; a symlink there is not followed and counts as nothing) within [`Budget::DEFAULT`].
pub fn tree_usage(root: &Path) -> TreeUsage {
    tree_usage_within(root, Budget::DEFAULT)
}

/// Walks `root` within `budget`.
pub fn tree_usage_within(root: &Path, budget: Budget) -> TreeUsage {
    let mut usage = TreeUsage::default();
    let Ok(mut dir) = open_dir(None, root) else { return usage };
    let Ok(root_stat) = nix::sys::stat::fstat(dir.as_raw_fd()) else { return usage };
    let mut walk = Walk { usage: &mut usage, budget, dev: root_stat.st_dev, complete: true };
    walk.dir(&mut dir, 0);
    let complete = walk.complete;
    usage.complete = complete;
    usage
}

struct Walk<'a> {
    usage: &'a mut TreeUsage,
    budget: Budget,
    /// Device of the root: the walk does not leave it.
    dev: libc::dev_t,
    complete: bool,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &mut Dir, depth: usize) {
        let fd = dir.as_raw_fd();
        for entry in dir.iter() {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            if self.usage.entries >= self.budget.entries {
                self.complete = false;
                return;
            }
            // Gone between readdir and stat (or unreadable): not counted.
            let Ok(stat) = nix::sys::stat::fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW) else { continue };
            if stat.st_dev != self.dev {
                continue; // something mounted here: another filesystem
            }
            self.usage.entries += 1;
            match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
                SFlag::S_IFREG => self.usage.bytes = self.usage.bytes.saturating_add(stat.st_size.max(0) as u64),
                SFlag::S_IFDIR => {
                    if depth + 1 > self.budget.depth {
                        self.complete = false;
                        continue;
                    }
                    if let Some(mut child) = self.open_child(fd, name, &stat) {
                        self.dir(&mut child, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }

    /// Opens directory `name` of `parent` if it still is the inode `stat` describes (no symlink is
    /// followed; a swap since the stat is skipped, its content not counted).
    fn open_child(&self, parent: RawFd, name: &CStr, stat: &FileStat) -> Option<Dir> {
        let child = open_dir(Some(parent), name).ok()?;
        let opened = nix::sys::stat::fstat(child.as_raw_fd()).ok()?;
        (opened.st_dev == stat.st_dev && opened.st_ino == stat.st_ino).then_some(child)
    }
}

fn open_dir<P: ?Sized + nix::NixPath>(parent: Option<RawFd>, name: &P) -> nix::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOATIME;
    match Dir::openat(parent, name, flags, Mode::empty()) {
        // O_NOATIME needs ownership or CAP_FOWNER; retry without it.
        Err(nix::Error::EPERM) => Dir::openat(parent, name, flags - OFlag::O_NOATIME, Mode::empty()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(dir: &Path) {
        std::fs::write(dir.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/b"), vec![0u8; 24]).unwrap();
    }

    #[test]
    fn sums_regular_files_and_counts_entries() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        symlink("a", dir.path().join("link")).unwrap();
        let usage = tree_usage(dir.path());
        assert_eq!(usage, TreeUsage { bytes: 1024, entries: 4, complete: true });
    }

    #[test]
    fn a_symlink_to_a_directory_outside_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 1 << 20]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        symlink(outside.path(), dir.path().join("sub/out")).unwrap();
        symlink("/usr", dir.path().join("usr")).unwrap();
        assert_eq!(tree_usage(dir.path()), TreeUsage { bytes: 1024, entries: 5, complete: true });
    }

    #[test]
    fn a_root_that_is_a_symlink_to_a_big_tree_is_not_walked() {
        let outside = tempfile::tempdir().unwrap();
        tree(outside.path());
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("upper");
        symlink(outside.path(), &root).unwrap();
        assert_eq!(tree_usage(&root), TreeUsage::default());
        assert_eq!(tree_usage(&dir.path().join("missing")), TreeUsage::default());
    }

    #[test]
    fn the_budgets_stop_the_walk_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("1/2/3")).unwrap();
        std::fs::write(dir.path().join("1/2/3/deep"), b"xyz").unwrap();
        let shallow = tree_usage_within(dir.path(), Budget { entries: 100, depth: 2 });
        assert_eq!(shallow, TreeUsage { bytes: 0, entries: 3, complete: false });
        let full = tree_usage_within(dir.path(), Budget { entries: 100, depth: 3 });
        assert_eq!(full, TreeUsage { bytes: 3, entries: 4, complete: true });
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("f{i}")), b"1").unwrap();
        }
        let few = tree_usage_within(dir.path(), Budget { entries: 5, depth: 10 });
        assert_eq!((few.entries, few.complete), (5, false));
    }

    /// The attack: a directory of the tree is exchanged with a symlink to a big tree outside, over and
    /// over, while the tree is walked; the walk must never count anything of the outside tree (a
    /// path-based walk does, about one walk in four).
    #[test]
    fn a_directory_swapped_with_a_symlink_mid_walk_never_leads_outside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), vec![0u8; 1 << 20]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for i in 0..200 {
            std::fs::write(dir.path().join(format!("pad{i}")), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("d")).unwrap();
        symlink(outside.path(), dir.path().join("l")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, root) = (stop.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || {
                let (d, l) = (root.join("d"), root.join("l"));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    nix::fcntl::renameat2(None, &d, None, &l, nix::fcntl::RenameFlags::RENAME_EXCHANGE).unwrap();
                }
            })
        };
        for _ in 0..2000 {
            let usage = tree_usage(dir.path());
            assert!(usage.bytes < 1 << 20, "the walk followed the swapped symlink: {usage:?}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
    }
}
