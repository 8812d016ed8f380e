//! Directory listing to a given depth (1 = direct children), sorted by path, never following symlinks,
//! bounded in size.

use nullspace_types::files_api::FileInfo;
use walkdir::WalkDir;

use crate::error::{GuestError, GuestResult};
use crate::files::info::from_metadata;
use crate::users::UserDb;

/// Most entries one listing returns.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// Entries below directory `dir` down to `depth` levels.
pub fn list(dir: &str, depth: u32, users: &UserDb) -> GuestResult<Vec<FileInfo>> {
    let metadata = std::fs::metadata(dir).map_err(|error| GuestError::file_op("list", dir, error))?;
    if !metadata.is_dir() {
        return Err(GuestError::invalid(format!("{dir} is not a directory; use POST /files/info for a file")));
    }
    let walker =
        WalkDir::new(dir).min_depth(1).max_depth(depth.max(1) as usize).follow_links(false).sort_by_file_name();
    let mut entries = Vec::new();
    for entry in walker.into_iter().filter_map(Result::ok) {
        if entries.len() >= MAX_LIST_ENTRIES {
            break;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let path = entry.path().to_string_lossy().into_owned();
        entries.push(from_metadata(&path, &metadata, users));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limits_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nested/deeper")).unwrap();
        std::fs::write(dir.path().join("root.txt"), "r").unwrap();
        std::fs::write(dir.path().join("nested/inner.txt"), "i").unwrap();
        let root = dir.path().to_str().unwrap();
        let users = UserDb::default();
        let names = |depth| list(root, depth, &users).unwrap().into_iter().map(|info| info.name).collect::<Vec<_>>();
        assert_eq!(names(1), ["nested", "root.txt"]);
        assert_eq!(names(2), ["nested", "deeper", "inner.txt", "root.txt"]);
        assert!(list(&format!("{root}/root.txt"), 1, &users).is_err());
    }
}
