//! Single-path file operations (blocking; run them off the async threads, with the credentials of the
//! request's user: see [`crate::files::as_user`]): read, write, exists, remove, rename, mkdir, chmod.
//! Parents are created on every write; what is created belongs to whoever the kernel says (the user
//! acting); overwriting in place keeps owner and mode.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::Path;

use crate::error::{GuestError, GuestResult};

/// Largest file returned inside a JSON body; bigger ones go through `GET /file`.
pub const MAX_JSON_READ_BYTES: u64 = 64 * 1024 * 1024;

/// Creates the missing ancestors of `path` (not `path` itself).
pub fn ensure_parents(path: &str) -> GuestResult<()> {
    let Some(parent) = Path::new(path).parent() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut current = Some(parent);
    while let Some(dir) = current {
        if fs::symlink_metadata(dir).is_ok() {
            break;
        }
        missing.push(dir);
        current = dir.parent();
    }
    for dir in missing.into_iter().rev() {
        let shown = dir.display().to_string();
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(GuestError::file_op("create directory", &shown, error)),
        }
    }
    Ok(())
}

/// The whole content of the regular file at `path` (at most [`MAX_JSON_READ_BYTES`]).
pub fn read(path: &str) -> GuestResult<Vec<u8>> {
    let metadata = fs::metadata(path).map_err(|error| GuestError::file_op("read", path, error))?;
    if metadata.is_dir() {
        return Err(GuestError::invalid(format!("{path} is a directory; list it with GET /files?path=…")));
    }
    if metadata.len() > MAX_JSON_READ_BYTES {
        return Err(GuestError::invalid(format!(
            "{path} is {} bytes, too large for a JSON read; download it with GET /file?path=…",
            metadata.len()
        )));
    }
    let mut content = Vec::with_capacity(metadata.len() as usize);
    fs::File::open(path)
        .and_then(|file| file.take(MAX_JSON_READ_BYTES + 1).read_to_end(&mut content))
        .map_err(|error| GuestError::file_op("read", path, error))?;
    Ok(content)
}

/// Writes `content` to `path` in place (following a symlink, keeping owner and mode of an existing
/// file), creating parents.
pub fn write(path: &str, content: &[u8]) -> GuestResult<()> {
    ensure_parents(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|error| GuestError::file_op("write", path, error))?;
    file.write_all(content).map_err(|error| GuestError::file_op("write", path, error))
}

/// Whether anything (even a dangling symlink) exists at `path`.
pub fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Removes `path`; directories recursively, symlinks themselves (not their targets).
pub fn remove(path: &str) -> GuestResult<()> {
    if path == "/" {
        return Err(GuestError::invalid("refusing to remove /; name a path below it"));
    }
    let metadata = fs::symlink_metadata(path).map_err(|error| GuestError::file_op("remove", path, error))?;
    let result = if metadata.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    result.map_err(|error| GuestError::file_op("remove", path, error))
}

/// Moves `old` to `new` (creating `new`'s parents; across filesystems files are copied then removed).
pub fn rename(old: &str, new: &str) -> GuestResult<()> {
    let metadata = fs::symlink_metadata(old).map_err(|error| GuestError::file_op("rename", old, error))?;
    ensure_parents(new)?;
    match fs::rename(old, new) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EXDEV) && metadata.is_file() => {
            fs::copy(old, new).map_err(|error| GuestError::file_op("copy", new, error))?;
            let _ = lchown(new, Some(metadata_uid(&metadata)), Some(metadata_gid(&metadata)));
            fs::remove_file(old).map_err(|error| GuestError::file_op("remove", old, error))?;
        }
        Err(error) => return Err(GuestError::file_op("rename", old, error)),
    }
    Ok(())
}

fn metadata_uid(metadata: &fs::Metadata) -> u32 {
    std::os::unix::fs::MetadataExt::uid(metadata)
}

fn metadata_gid(metadata: &fs::Metadata) -> u32 {
    std::os::unix::fs::MetadataExt::gid(metadata)
}

/// `mkdir -p path`, idempotent on an existing directory.
pub fn make_dir(path: &str) -> GuestResult<()> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => return Ok(()),
        Ok(_) => return Err(GuestError::invalid(format!("{path} exists and is not a directory"))),
        Err(_) => {}
    }
    ensure_parents(path)?;
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(GuestError::file_op("create directory", path, error)),
    }
}

/// Sets the permission bits of `path` (following symlinks).
pub fn set_mode(path: &str, mode: u32) -> GuestResult<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|error| GuestError::file_op("chmod", path, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn path(dir: &tempfile::TempDir, rel: &str) -> String {
        dir.path().join(rel).display().to_string()
    }

    #[test]
    fn write_creates_parents_and_keeps_mode_on_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir, "a/b/c.txt");
        write(&file, b"one").unwrap();
        set_mode(&file, 0o640).unwrap();
        write(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn rename_remove_mkdir_and_exists() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (path(&dir, "x.txt"), path(&dir, "sub/y.txt"));
        write(&old, b"x").unwrap();
        rename(&old, &new).unwrap();
        assert!(!exists(&old) && exists(&new));
        make_dir(&path(&dir, "d/e")).unwrap();
        make_dir(&path(&dir, "d/e")).unwrap();
        assert!(make_dir(&new).is_err());
        remove(&path(&dir, "d")).unwrap();
        assert!(!exists(&path(&dir, "d")));
        assert!(matches!(remove(&path(&dir, "d")), Err(GuestError::FileNotFound { .. })));
        assert!(matches!(rename(&old, &new), Err(GuestError::FileNotFound { .. })));
    }

    #[test]
    fn read_rejects_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(&path(&dir, "")), Err(GuestError::InvalidRequest { .. })));
        assert!(matches!(read(&path(&dir, "none")), Err(GuestError::FileNotFound { .. })));
    }
}
