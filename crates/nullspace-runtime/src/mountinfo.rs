//! The kernel's mount tables (`/proc/<pid>/mountinfo`), parsed once for every reader in the workspace:
//! the runtime (cgroup hierarchies, live volume mounts) and the node (mounts left inside template builds).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of a mount table, with the kernel's octal escapes decoded where they are paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where the mount is, as the process whose table it is sees it.
    pub mount_point: PathBuf,
    /// Filesystem type (`ext4`, `overlay`, `cgroup2`, …).
    pub fs_type: String,
    /// Mount source (`/dev/loop0`, `overlay`, …).
    pub source: String,
    /// Per-superblock options (an overlay's `lowerdir=…,upperdir=…`), still escaped: split them first and
    /// decode the parts with [`unescape`].
    pub super_options: String,
}

/// The entries of a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_owned();
            let source = unescape(right.next().unwrap_or_default());
            let super_options = right.next().unwrap_or_default().to_owned();
            let mount_point = PathBuf::from(OsString::from_vec(unescape_bytes(mount_point)));
            Some(MountEntry { mount_point, fs_type, source, super_options })
        })
        .collect()
}

/// The mount table at `path` (`/proc/self/mountinfo`, `/proc/<pid>/mountinfo`).
pub fn read(path: &Path) -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// This process's mount table.
pub fn read_own() -> std::io::Result<Vec<MountEntry>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// Decodes the `\ooo` escapes the kernel writes for space, tab, newline and backslash (lossy UTF-8).
pub fn unescape(field: &str) -> String {
    String::from_utf8_lossy(&unescape_bytes(field)).into_owned()
}

fn unescape_bytes(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                out.push(digits.iter().fold(0u8, |value, d| value.wrapping_mul(8) + (d - b'0')));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_their_escapes_decoded() {
        let table = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                     40 22 8:1 /vol/data /work\\040space/a\\134b rw,nosuid - ext4 /dev/loop3 rw\n\
                     50 22 0:40 / /run/sb rw - overlay overlay rw,lowerdir=/t/my\\040base,upperdir=/u\n\
                     garbage without a separator\n\
                     41 22 0:5 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let entries = parse(table);
        let points: Vec<&Path> = entries.iter().map(|e| e.mount_point.as_path()).collect();
        assert_eq!(
            points,
            [Path::new("/"), Path::new("/work space/a\\b"), Path::new("/run/sb"), Path::new("/sys/fs/cgroup")]
        );
        assert_eq!((entries[1].fs_type.as_str(), entries[1].source.as_str()), ("ext4", "/dev/loop3"));
        assert_eq!(entries[2].super_options, "rw,lowerdir=/t/my\\040base,upperdir=/u");
        assert_eq!(entries[3].fs_type, "cgroup2");
    }

    #[test]
    fn only_complete_octal_escapes_are_decoded() {
        assert_eq!(unescape("/a\\011b\\012"), "/a\tb\n");
        assert_eq!(unescape("/trailing\\"), "/trailing\\", "a lone backslash stays");
        assert_eq!(unescape("/not\\9octal"), "/not\\9octal");
        assert_eq!(unescape("/short\\04"), "/short\\04");
    }

    #[test]
    fn this_process_has_a_root_mount() {
        assert!(read_own().unwrap().iter().any(|e| e.mount_point == Path::new("/")));
    }
}
