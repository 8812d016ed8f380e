//! Directory listing to a given depth (1 = direct children), sorted by path, never following symlinks,
//! bounded by a [`Budget`] (pseudo-filesystems below the listed directory are listed, not entered).

use std::path::Path;

use nullspace_types::files_api::FileInfo;

use crate::error::{GuestError, GuestResult};
use crate::files::info::from_metadata;
use crate::files::search::Found;
use crate::files::walk::{Budget, Walk};
use crate::users::UserDb;

/// Entries below directory `dir` down to `depth` levels.
pub fn list(dir: &str, depth: u32, users: &UserDb, mut budget: Budget) -> GuestResult<Found<FileInfo>> {
    let metadata = std::fs::metadata(dir).map_err(|error| GuestError::file_op("list", dir, error))?;
    if !metadata.is_dir() {
        return Err(GuestError::invalid(format!("{dir} is not a directory; use POST /files/info for a file")));
    }
    let mut walk = Walk::new(Path::new(dir), 1, depth.max(1) as usize);
    let mut entries = Vec::new();
    while let Some(entry) = walk.next_entry(&mut budget) {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let path = entry.path().to_string_lossy().into_owned();
        if !budget.keep(path.len()) {
            break;
        }
        entries.push(from_metadata(&path, &metadata, users));
    }
    Ok(Found { items: entries, truncated: budget.truncated() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::walk::{Limits, LIST_LIMITS};

    #[test]
    fn depth_limits_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nested/deeper")).unwrap();
        std::fs::write(dir.path().join("root.txt"), "r").unwrap();
        std::fs::write(dir.path().join("nested/inner.txt"), "i").unwrap();
        let root = dir.path().to_str().unwrap();
        let users = UserDb::default();
        let budget = || Budget::new(LIST_LIMITS);
        let names = |depth| {
            list(root, depth, &users, budget()).unwrap().items.into_iter().map(|info| info.name).collect::<Vec<_>>()
        };
        assert_eq!(names(1), ["nested", "root.txt"]);
        assert_eq!(names(2), ["nested", "deeper", "inner.txt", "root.txt"]);
        assert!(list(&format!("{root}/root.txt"), 1, &users, budget()).is_err());
        let two = Limits { results: 2, ..LIST_LIMITS };
        let cut = list(root, 2, &users, Budget::new(two)).unwrap();
        assert_eq!((cut.items.len(), cut.truncated), (2, true));
    }
}
