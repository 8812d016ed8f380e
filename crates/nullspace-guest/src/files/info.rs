//! `FileInfo` of a path (lstat: symlinks are reported, not followed): kind, size, four-digit octal mode,
//! `ls`-style permissions, owner and group names, RFC 3339 modification time, symlink target.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use chrono::{DateTime, SecondsFormat, Utc};
use nullspace_types::files_api::{FileInfo, FileType};

use crate::error::{GuestError, GuestResult};
use crate::files::paths::file_name;
use crate::users::UserDb;

/// `FileInfo` of `path` (normalized, absolute).
pub fn file_info(path: &str, users: &UserDb) -> GuestResult<FileInfo> {
    let metadata = std::fs::symlink_metadata(path).map_err(|error| GuestError::file_op("stat", path, error))?;
    Ok(from_metadata(path, &metadata, users))
}

/// `FileInfo` of `path` from metadata already read.
pub fn from_metadata(path: &str, metadata: &Metadata, users: &UserDb) -> FileInfo {
    let file_type = if metadata.is_dir() {
        FileType::Dir
    } else if metadata.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::File
    };
    let symlink_target = (file_type == FileType::Symlink)
        .then(|| std::fs::read_link(path).ok().map(|target| target.to_string_lossy().into_owned()))
        .flatten();
    let modified =
        metadata.modified().ok().map(|time| DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Micros, true));
    FileInfo {
        name: file_name(path),
        path: path.to_owned(),
        is_dir: file_type == FileType::Dir,
        size: metadata.len(),
        file_type: Some(file_type),
        mode: Some(mode_string(metadata.mode())),
        permissions: Some(permissions_string(metadata.mode())),
        owner: Some(users.user_name(metadata.uid())),
        group: Some(users.group_name(metadata.gid())),
        modified_time: modified,
        symlink_target,
    }
}

/// Four-digit octal permission bits, e.g. `0640` (special bits included: `4755`).
pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// `ls`-style permission string of the nine permission bits, with setuid/setgid/sticky shown as
/// `s`/`S` and `t`/`T`, e.g. `rw-r-----`.
pub fn permissions_string(mode: u32) -> String {
    let bit = |mask: u32, ch: char| if mode & mask != 0 { ch } else { '-' };
    let special = |exec: bool, set: bool, on: char, off: char| match (exec, set) {
        (true, true) => on,
        (false, true) => off,
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'),
    ]
    .iter()
    .collect()
}

/// Parses a permission argument: octal (`0640`, `640`, `0o755`) or nine `rwx` characters.
pub fn parse_permissions(text: &str) -> GuestResult<u32> {
    let text = text.trim();
    let invalid =
        || GuestError::invalid(format!("invalid permissions {text:?}; send octal like \"0640\" or \"rw-r-----\""));
    if text.len() == 9 && text.chars().all(|ch| "rwx-".contains(ch)) {
        let mut mode = 0;
        for (index, ch) in text.chars().enumerate() {
            if ch != '-' {
                let expected = ['r', 'w', 'x'][index % 3];
                if ch != expected {
                    return Err(invalid());
                }
                mode |= 1 << (8 - index);
            }
        }
        return Ok(mode);
    }
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 {
        return Err(invalid());
    }
    u32::from_str_radix(digits, 8).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_and_permission_strings() {
        assert_eq!(mode_string(0o100640), "0640");
        assert_eq!(permissions_string(0o640), "rw-r-----");
        assert_eq!(mode_string(0o40755), "0755");
        assert_eq!(permissions_string(0o755), "rwxr-xr-x");
        assert_eq!(permissions_string(0o4755), "rwsr-xr-x");
        assert_eq!(permissions_string(0o1777), "rwxrwxrwt");
        assert_eq!(permissions_string(0o2640), "rw-r-S---");
    }

    #[test]
    fn parses_octal_and_symbolic_permissions() {
        assert_eq!(parse_permissions("0640").unwrap(), 0o640);
        assert_eq!(parse_permissions("755").unwrap(), 0o755);
        assert_eq!(parse_permissions("0o600").unwrap(), 0o600);
        assert_eq!(parse_permissions("rw-r-----").unwrap(), 0o640);
        assert!(parse_permissions("0948").is_err());
        assert!(parse_permissions("wr-r-----").is_err());
        assert!(parse_permissions("").is_err());
    }

    #[test]
    fn info_of_file_dir_and_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "abc").unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let users = UserDb::default();
        let info = file_info(file.to_str().unwrap(), &users).unwrap();
        assert_eq!((info.name.as_str(), info.size, info.is_dir), ("a.txt", 3, false));
        assert_eq!(info.file_type, Some(FileType::File));
        assert!(info.modified_time.unwrap().ends_with('Z'));
        let link = file_info(dir.path().join("link").to_str().unwrap(), &users).unwrap();
        assert_eq!(link.file_type, Some(FileType::Symlink));
        assert_eq!(link.symlink_target.as_deref(), Some("a.txt"));
        let dir_info = file_info(dir.path().to_str().unwrap(), &users).unwrap();
        assert!(dir_info.is_dir);
        assert!(matches!(file_info("/no/such/path", &users), Err(GuestError::FileNotFound { .. })));
    }
}
