//! Walking a directory tree of the layer store by descriptor: removing it and measuring it. Every
//! directory is opened relative to its parent with `O_NOFOLLOW | O_DIRECTORY` and must be the inode that
//! was stat'ed, symlinks are never followed, and the walk never descends into a mount point or another
//! file system (removal refuses one, measuring skips it). It holds one directory descriptor at a time
//! (it climbs back through `..`, checking the inode), so a tree of any depth works within any descriptor
//! limit. It blocks: async callers run it on a blocking thread.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Statx, StatxAttributes, StatxFlags, CWD};

/// Directory open flags used for every step of a walk.
pub(crate) const DIR_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// `statx` of `name` in `dir` without following a symlink or triggering an automount.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Statx> {
    Ok(rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT, StatxFlags::BASIC_STATS)?)
}

fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Statx> {
    Ok(rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?)
}

pub(crate) fn file_type(st: &Statx) -> FileType {
    FileType::from_raw_mode(st.stx_mode.into())
}

type Ident = (u32, u32, u64);

fn ident(st: &Statx) -> Ident {
    (st.stx_dev_major, st.stx_dev_minor, st.stx_ino)
}

/// Whether `st` (a directory inside a tree on device `dev`) is a mount point or on another file system.
fn is_mount(st: &Statx, dev: (u32, u32)) -> bool {
    let root = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
        && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    root || (st.stx_dev_major, st.stx_dev_minor) != dev
}

/// What a walk does with the entries it meets.
trait Visitor {
    /// A non-directory entry `name` of `dir`.
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, st: &Statx) -> io::Result<()>;
    /// A directory below the top whose contents were all visited; `parent` is its parent.
    fn dir_done(&mut self, parent: BorrowedFd<'_>, name: &CStr, st: &Statx) -> io::Result<()>;
    /// A mount point (or other file system) found at `name` in `dir`: an error stops the walk.
    fn mount(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()>;
}

struct Frame {
    name: CString,
    st: Statx,
    subdirs: Vec<(CString, Statx)>,
}

/// Visits the entries of the directory `cur` (non-directories right away) and returns its subdirectories.
fn scan(cur: BorrowedFd<'_>, visitor: &mut dyn Visitor) -> io::Result<Vec<(CString, Statx)>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(cur)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    let mut subdirs = Vec::new();
    for name in names {
        let st = match stat_at(cur, &name) {
            Ok(st) => st,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if file_type(&st) == FileType::Directory {
            subdirs.push((name, st));
        } else {
            visitor.entry(cur, &name, &st)?;
        }
    }
    Ok(subdirs)
}

/// Depth-first walk below the directory `top` (post-order for directories; `top` itself is not reported).
fn walk(top: OwnedFd, visitor: &mut dyn Visitor) -> io::Result<()> {
    let top_st = stat_fd(top.as_fd())?;
    let dev = (top_st.stx_dev_major, top_st.stx_dev_minor);
    let mut cur = top;
    let subdirs = scan(cur.as_fd(), visitor)?;
    let mut stack = vec![Frame { name: CString::default(), st: top_st, subdirs }];
    loop {
        let frame = stack.last_mut().expect("the walk's stack holds the top until the end");
        if let Some((name, st)) = frame.subdirs.pop() {
            if is_mount(&st, dev) {
                visitor.mount(cur.as_fd(), &name)?;
                continue;
            }
            let child = rustix::fs::openat(cur.as_fd(), name.as_c_str(), DIR_FLAGS, Mode::empty())?;
            if ident(&stat_fd(child.as_fd())?) != ident(&st) {
                return Err(io::Error::other("a directory was replaced during the walk"));
            }
            cur = child;
            let subdirs = scan(cur.as_fd(), visitor)?;
            stack.push(Frame { name, st, subdirs });
        } else {
            let done = stack.pop().expect("a frame was just inspected");
            let Some(parent_frame) = stack.last() else { return Ok(()) };
            let parent = rustix::fs::openat(cur.as_fd(), c"..", DIR_FLAGS, Mode::empty())?;
            if ident(&stat_fd(parent.as_fd())?) != ident(&parent_frame.st) {
                return Err(io::Error::other("a directory was moved during the walk"));
            }
            cur = parent;
            visitor.dir_done(cur.as_fd(), &done.name, &done.st)?;
        }
    }
}

struct Remover;

impl Visitor for Remover {
    fn entry(&mut self, dir: BorrowedFd<'_>, name: &CStr, _: &Statx) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
    }
    fn dir_done(&mut self, parent: BorrowedFd<'_>, name: &CStr, _: &Statx) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
    }
    fn mount(&mut self, _: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        Err(io::Error::other(format!("{} is a mount point; not removing below it", name.to_string_lossy())))
    }
}

/// Removes `name` in `dir` (a file, a symlink or a whole directory tree) without following symlinks or
/// descending into a mount point. A missing `name` is not an error.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let st = match stat_at(dir, name) {
        Ok(st) => st,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if file_type(&st) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let parent_st = stat_fd(dir)?;
    if is_mount(&st, (parent_st.stx_dev_major, parent_st.stx_dev_minor)) {
        return Remover.mount(dir, name);
    }
    let top = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    if ident(&stat_fd(top.as_fd())?) != ident(&st) {
        return Err(io::Error::other("a directory was replaced during removal"));
    }
    walk(top, &mut Remover)?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Removes `path` (a file, a symlink or a directory tree) like [`remove_at`]; a missing path is not an error.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other(format!("refusing to remove {}", path.display())));
    };
    let parent_path = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let parent = match rustix::fs::openat(CWD, parent_path, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(error) if error == rustix::io::Errno::NOENT => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let name = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    remove_at(parent.as_fd(), &name)
}

#[derive(Default)]
struct Sizer {
    bytes: u64,
    seen: HashSet<Ident>,
}

impl Visitor for Sizer {
    fn entry(&mut self, _: BorrowedFd<'_>, _: &CStr, st: &Statx) -> io::Result<()> {
        match file_type(st) {
            FileType::RegularFile if st.stx_nlink > 1 && !self.seen.insert(ident(st)) => {}
            FileType::RegularFile | FileType::Symlink => self.bytes = self.bytes.saturating_add(st.stx_size),
            _ => {}
        }
        Ok(())
    }
    fn dir_done(&mut self, _: BorrowedFd<'_>, _: &CStr, _: &Statx) -> io::Result<()> {
        Ok(())
    }
    fn mount(&mut self, _: BorrowedFd<'_>, _: &CStr) -> io::Result<()> {
        Ok(())
    }
}

/// Apparent size of the regular files and symlinks below the directory `path`: each hard-linked file
/// counted once, symlinks not followed, mount points skipped.
pub(crate) fn tree_size(path: &Path) -> io::Result<u64> {
    let top = rustix::fs::openat(CWD, path, DIR_FLAGS, Mode::empty())?;
    let mut sizer = Sizer::default();
    walk(top, &mut sizer)?;
    Ok(sizer.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn size_counts_hard_links_once_and_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 10_000]).unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), b"12345").unwrap();
        std::fs::hard_link(root.join("a/b/f"), root.join("g")).unwrap();
        std::fs::write(root.join("h"), b"123").unwrap();
        symlink(outside.path(), root.join("link")).unwrap();
        let link_len = outside.path().as_os_str().len() as u64;
        assert_eq!(tree_size(&root).unwrap(), 5 + 3 + link_len);
    }

    #[test]
    fn remove_tree_removes_deep_trees_but_not_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        let root = dir.path().join("t");
        let mut deep = root.clone();
        for _ in 0..300 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"x").unwrap();
        symlink(outside.path(), root.join("d/escape")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert!(outside.path().join("keep").exists());
        remove_tree(&root).unwrap();
    }
}
