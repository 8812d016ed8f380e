//! Unpacking one layer's tar stream into an empty directory, turning OCI whiteouts into overlayfs ones so
//! the directory can be stacked directly as an overlay lowerdir: `.wh.<name>` becomes a character device
//! 0:0 named `<name>`, `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Ownership, modes,
//! mtimes (PAX sub-second ones too), symlinks, hard links and PAX `SCHILY.xattr.*` extended attributes
//! are kept (overlay metadata xattrs other than `opaque` are dropped: a layer does not get to forge them);
//! device nodes and fifos are refused (see [`SpecialFile`]).
//!
//! Nothing in the archive can write outside the directory: absolute paths and `..` components are
//! refused, every parent directory is opened by descriptor relative to its own parent with
//! `O_NOFOLLOW | O_DIRECTORY` (so a symlink planted by an earlier entry is never traversed: an entry
//! below one is refused), files are created with `O_EXCL | O_NOFOLLOW`, and hard links may only point at
//! entries of the same layer. Directory metadata is applied after all entries (creating entries inside a
//! directory would change its mtime). It blocks: async callers run it on a blocking thread.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags, CWD};
use rustix::time::Timespec;
use tar::EntryType;

use super::tree::{self, DIR_FLAGS};

/// Longest entry path accepted (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// Why an archive could not be unpacked.
#[derive(Debug)]
pub(crate) enum UnpackError {
    /// The stream is corrupt, an entry would escape the layer, or the file system refused an operation
    /// (a human-readable description naming the entry).
    Malformed(String),
    /// An entry is a device node or fifo, which an image layer may not carry (see [`SpecialFile`]).
    SpecialFile {
        /// The entry's path inside the layer, e.g. `run/fifo`.
        path: String,
        /// What it is.
        kind: SpecialFile,
    },
}

impl From<String> for UnpackError {
    fn from(description: String) -> Self {
        UnpackError::Malformed(description)
    }
}

/// The special files an image layer is refused for. A sandbox's `/dev` comes from its runtime, never
/// from an image; a device node in a layer would be a host device file in the layer store (openable by
/// anything on the host that reaches the store, and by a sandbox whose device policy is ever widened), and
/// a fifo in a lower layer blocks whatever opens it, including the engine's own copies. Images built by
/// Docker never contain them; an image that does is refused before any of its layers is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialFile {
    /// A named pipe.
    Fifo,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl SpecialFile {
    /// The name the API reports (`entry_type` of the failure's details).
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialFile::Fifo => "fifo",
            SpecialFile::CharDevice => "char_device",
            SpecialFile::BlockDevice => "block_device",
        }
    }
}

/// Context for a failed operation on an entry: the module's one error helper.
fn err(entry: &str, what: &str) -> impl FnOnce(io::Error) -> UnpackError {
    let (entry, what) = (entry.to_owned(), what.to_owned());
    move |error| UnpackError::Malformed(format!("entry {entry:?}: {what}: {error}"))
}

/// Unpacks every entry of `archive` into the directory `dest` (normally empty).
pub(crate) fn unpack<R: Read>(archive: &mut tar::Archive<R>, dest: &Path) -> Result<(), UnpackError> {
    let root = rustix::fs::openat(CWD, dest, DIR_FLAGS, Mode::empty())
        .map_err(|error| format!("cannot open {}: {error}", dest.display()))?;
    let mut unpacker = Unpacker { root, dirs: Vec::new(), ignored_xattrs: 0 };
    let entries = archive.entries().map_err(|error| format!("not a tar stream: {error}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| format!("corrupt tar stream: {error}"))?;
        unpacker.entry(&mut entry)?;
    }
    for dir in std::mem::take(&mut unpacker.dirs) {
        let display = display(&dir.path);
        let fd = unpacker.open_dir(&dir.path, false, &display)?;
        unpacker.apply_fd(fd.as_fd(), &dir.meta, &display)?;
    }
    if unpacker.ignored_xattrs > 0 {
        tracing::warn!(count = unpacker.ignored_xattrs, "extended attributes this file system refuses were not kept");
    }
    Ok(())
}

/// Ownership, mode, mtime and xattrs of an entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct DirMeta {
    path: Vec<CString>,
    meta: Meta,
}

struct Unpacker {
    root: OwnedFd,
    /// Directories whose metadata is applied once all entries are in.
    dirs: Vec<DirMeta>,
    ignored_xattrs: usize,
}

fn display(path: &[CString]) -> String {
    let parts: Vec<_> = path.iter().map(|part| part.to_string_lossy()).collect();
    if parts.is_empty() {
        "/".to_owned()
    } else {
        parts.join("/")
    }
}

/// The normal components of an entry path: `.` and empty ones dropped; absolute paths, `..` and NUL
/// bytes refused.
fn components(path: &[u8]) -> Result<Vec<CString>, String> {
    if path.starts_with(b"/") {
        return Err("absolute paths are not allowed in a layer".to_owned());
    }
    if path.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    let mut out = Vec::new();
    for part in path.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("`..` components are not allowed in a layer".to_owned()),
            part => out.push(CString::new(part).map_err(|_| "a NUL byte in the path".to_owned())?),
        }
    }
    Ok(out)
}

fn timespec_of(secs: u64, nanos: u32) -> Timespec {
    Timespec { tv_sec: secs.min(i64::MAX as u64) as i64, tv_nsec: nanos.into() }
}

/// A PAX time: decimal seconds with an optional fraction.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let value = std::str::from_utf8(value).ok()?;
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: u64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if digits.is_empty() { 0 } else { digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32) };
    Some(timespec_of(secs, nanos))
}

/// Whether an xattr from the archive is kept: overlay's own metadata is not, except the opaque flag.
fn keep_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") || name == b"trusted.overlay.opaque"
}

/// A numeric header field; an empty one (all NULs or spaces, as some writers leave unused fields) is 0,
/// as Go's archive/tar reads it.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other,
    }
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>, display: &str) -> Result<Meta, UnpackError> {
        let header = entry.header();
        let bad = |what: &str, error: io::Error| format!("entry {display:?}: bad {what}: {error}");
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode).map_err(|e| bad("mode", e))? as u32 & 0o7777;
        let uid = numeric(header.uid(), &old.uid).map_err(|e| bad("uid", e))?;
        let gid = numeric(header.gid(), &old.gid).map_err(|e| bad("gid", e))?;
        let uid = u32::try_from(uid).map_err(|_| format!("entry {display:?}: uid {uid} out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| format!("entry {display:?}: gid {gid} out of range"))?;
        let mut mtime = timespec_of(numeric(header.mtime(), &old.mtime).map_err(|e| bad("mtime", e))?, 0);
        let mut xattrs = Vec::new();
        if let Some(extensions) = entry.pax_extensions().map_err(|e| bad("PAX header", e))? {
            for extension in extensions {
                let extension = extension.map_err(|e| bad("PAX header", e))?;
                let key = extension.key_bytes();
                if key == b"mtime" {
                    mtime = parse_pax_time(extension.value_bytes())
                        .ok_or_else(|| format!("entry {display:?}: bad PAX mtime"))?;
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if keep_xattr(name) {
                        let name = CString::new(name).map_err(|_| format!("entry {display:?}: bad xattr name"))?;
                        xattrs.push((name, extension.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(Meta { mode, uid, gid, mtime, xattrs })
    }

    fn timestamps(&self) -> Timestamps {
        Timestamps { last_access: self.mtime, last_modification: self.mtime }
    }
}

impl Unpacker {
    /// Opens the directory at `path` below the root, one component at a time, never through a symlink;
    /// missing components are created (0755, root-owned, as Docker does) when `create`.
    fn open_dir(&self, path: &[CString], create: bool, entry: &str) -> Result<OwnedFd, UnpackError> {
        let mut cur = self.root.try_clone().map_err(err(entry, "cannot duplicate a descriptor"))?;
        for (depth, part) in path.iter().enumerate() {
            let mut opened = rustix::fs::openat(cur.as_fd(), part.as_c_str(), DIR_FLAGS, Mode::empty());
            if create && matches!(opened, Err(rustix::io::Errno::NOENT)) {
                rustix::fs::mkdirat(cur.as_fd(), part.as_c_str(), Mode::from_raw_mode(0o755))
                    .map_err(|e| err(entry, "cannot create a parent directory")(e.into()))?;
                opened = rustix::fs::openat(cur.as_fd(), part.as_c_str(), DIR_FLAGS, Mode::empty());
            }
            cur = match opened {
                Ok(fd) => fd,
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    return Err(format!(
                    "entry {entry:?}: {} is a symlink or not a directory in this layer; refusing to write through it",
                    display(&path[..=depth])
                )
                    .into())
                }
                Err(e) => return Err(err(entry, "cannot open a parent directory")(e.into())),
            };
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            return Ok(());
        }
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let path = components(&raw_path).map_err(|reason| format!("entry {shown:?}: {reason}"))?;
        let meta = Meta::of(entry, &shown)?;
        let Some((name, parents)) = path.split_last() else {
            return if kind.is_dir() {
                self.dirs.push(DirMeta { path, meta });
                Ok(())
            } else {
                Err(format!("entry {shown:?}: names the layer's root but is not a directory").into())
            };
        };
        let parent = self.open_dir(parents, true, &shown)?;
        let parent = parent.as_fd();
        if let Some(hidden) = name.to_bytes().strip_prefix(b".wh.") {
            return self.whiteout(parent, hidden, &shown);
        }
        match tree::stat_at(parent, name) {
            Ok(st) if kind.is_dir() && tree::file_type(&st) == FileType::Directory => {}
            // An earlier entry of this layer at the same name is replaced.
            Ok(_) => tree::remove_at(parent, name).map_err(err(&shown, "cannot replace an earlier entry"))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(err(&shown, "cannot inspect the target")(error)),
        }
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(err(&shown, "cannot create the directory")(e.into())),
                }
                self.dirs.push(DirMeta { path, meta });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| err(&shown, "cannot create the file")(e.into()))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(err(&shown, "cannot write the file"))?;
                self.apply_fd(file.as_fd(), &meta, &shown)?;
            }
            EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| format!("entry {shown:?}: symlink without a target"))?;
                let target = CString::new(target.into_owned())
                    .map_err(|_| format!("entry {shown:?}: a NUL byte in the symlink target"))?;
                rustix::fs::symlinkat(target.as_c_str(), parent, name)
                    .map_err(|e| err(&shown, "cannot create the symlink")(e.into()))?;
                self.apply_at(parent, name, &meta, true, &shown)?;
            }
            EntryType::Link => {
                let target =
                    entry.link_name_bytes().ok_or_else(|| format!("entry {shown:?}: hard link without a target"))?;
                let target = components(&target)
                    .map_err(|reason| format!("entry {shown:?}: hard link target outside the layer: {reason}"))?;
                let Some((target_name, target_parents)) = target.split_last() else {
                    return Err(format!("entry {shown:?}: hard link to the layer's root").into());
                };
                let target_parent = self.open_dir(target_parents, false, &shown)?;
                rustix::fs::linkat(target_parent.as_fd(), target_name, parent, name, AtFlags::empty()).map_err(
                    |e| format!("entry {shown:?}: cannot hard link to {:?} of this layer: {e}", display(&target)),
                )?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind = match kind {
                    EntryType::Char => SpecialFile::CharDevice,
                    EntryType::Block => SpecialFile::BlockDevice,
                    _ => SpecialFile::Fifo,
                };
                return Err(UnpackError::SpecialFile { path: display(&path), kind });
            }
            other => {
                return Err(format!("entry {shown:?}: unsupported tar entry type {:?}", other.as_byte() as char).into())
            }
        }
        Ok(())
    }

    /// `.wh.<name>` (already stripped to `<name>`) in `parent`.
    fn whiteout(&mut self, parent: BorrowedFd<'_>, hidden: &[u8], shown: &str) -> Result<(), UnpackError> {
        if hidden == b".wh..opq" {
            return rustix::fs::fsetxattr(parent, c"trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| err(shown, "cannot mark the directory opaque")(e.into()));
        }
        if hidden.starts_with(b".wh.") {
            // Other `.wh..wh.` names are AUFS bookkeeping with no meaning here.
            return Ok(());
        }
        if hidden.is_empty() {
            return Err(format!("entry {shown:?}: a whiteout without a name").into());
        }
        let name = CString::new(hidden).map_err(|_| format!("entry {shown:?}: a NUL byte in the path"))?;
        tree::remove_at(parent, &name).map_err(err(shown, "cannot replace an earlier entry"))?;
        rustix::fs::mknodat(parent, &name, FileType::CharacterDevice, Mode::empty(), rustix::fs::makedev(0, 0))
            .map_err(|e| err(shown, "cannot create the whiteout device")(e.into()))
    }

    fn set_xattr(&mut self, result: rustix::io::Result<()>, shown: &str) -> Result<(), UnpackError> {
        match result {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM) => {
                self.ignored_xattrs += 1;
                Ok(())
            }
            Err(e) => Err(err(shown, "cannot set an extended attribute")(e.into())),
        }
    }

    /// Applies `meta` to an open file or directory (owner before mode: `chown` clears set-id bits).
    fn apply_fd(&mut self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let owner = (Some(rustix::fs::Uid::from_raw(meta.uid)), Some(rustix::fs::Gid::from_raw(meta.gid)));
        rustix::fs::fchown(fd, owner.0, owner.1).map_err(|e| err(shown, "cannot set the owner")(e.into()))?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| err(shown, "cannot set the mode")(e.into()))?;
        for (name, value) in &meta.xattrs {
            let result = rustix::fs::fsetxattr(fd, name.as_c_str(), value, XattrFlags::empty());
            self.set_xattr(result, shown)?;
        }
        rustix::fs::futimens(fd, &meta.timestamps()).map_err(|e| err(shown, "cannot set the mtime")(e.into()))
    }

    /// Applies `meta` to `name` in `parent` (a symlink, device node or fifo: never opened or followed).
    fn apply_at(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        symlink: bool,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let (uid, gid) = (rustix::fs::Uid::from_raw(meta.uid), rustix::fs::Gid::from_raw(meta.gid));
        rustix::fs::chownat(parent, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(shown, "cannot set the owner")(e.into()))?;
        if !symlink {
            // The node was just created by mknodat in this directory: it is not a symlink.
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(|e| err(shown, "cannot set the mode")(e.into()))?;
        }
        if !meta.xattrs.is_empty() {
            // lsetxattr on the parent's /proc/self/fd entry: the last component is never followed.
            let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
            path.extend_from_slice(name.to_bytes());
            let path = CString::new(path).map_err(|_| format!("entry {shown:?}: a NUL byte in the path"))?;
            for (xname, value) in &meta.xattrs {
                let result = rustix::fs::lsetxattr(path.as_c_str(), xname.as_c_str(), value, XattrFlags::empty());
                self.set_xattr(result, shown)?;
            }
        }
        rustix::fs::utimensat(parent, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(shown, "cannot set the mtime")(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_escapes_and_drop_dots() {
        let ok = |p: &str| {
            components(p.as_bytes()).unwrap().iter().map(|c| c.to_str().unwrap().to_owned()).collect::<Vec<_>>()
        };
        assert_eq!(ok("./a//b/./c/"), ["a", "b", "c"]);
        assert!(ok("./").is_empty());
        assert!(components(b"/etc/passwd").unwrap_err().contains("absolute"));
        assert!(components(b"a/../../b").unwrap_err().contains(".."));
        assert!(components(b"..").unwrap_err().contains(".."));
        assert!(components(&vec![b'a'; MAX_PATH + 1]).is_err());
    }

    #[test]
    fn empty_numeric_fields_are_zero_and_garbage_is_refused() {
        let bad = || Err(io::Error::other("not a number"));
        assert_eq!(numeric(bad(), b"\0\0\0 ").unwrap(), 0);
        assert!(numeric(bad(), b"12x\0").is_err());
        assert_eq!(numeric(Ok(7), b"7").unwrap(), 7);
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12.0000000019").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 1));
        assert_eq!(parse_pax_time(b"12").unwrap().tv_nsec, 0);
        assert!(parse_pax_time(b"x.1").is_none());
        assert!(parse_pax_time(b"1.x").is_none());
    }

    #[test]
    fn overlay_metadata_xattrs_other_than_opaque_are_dropped() {
        assert!(keep_xattr(b"security.capability"));
        assert!(keep_xattr(b"user.x"));
        assert!(keep_xattr(b"trusted.overlay.opaque"));
        assert!(!keep_xattr(b"trusted.overlay.redirect"));
        assert!(!keep_xattr(b"trusted.overlay.metacopy"));
    }
}
