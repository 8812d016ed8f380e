//! Cleaning paths that name something inside a tree (a volume, an archive, a build context) so that they
//! can never leave it: one implementation for every crate that takes such paths from the outside.

use std::path::{Component, Path, PathBuf};

/// Why a path cannot name something inside a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelPathError {
    /// It contains `..`.
    ParentDir,
    /// It is absolute where only relative paths are allowed.
    Absolute,
    /// It contains a NUL byte.
    Nul,
}

impl RelPathError {
    /// What is wrong, as a phrase after the path ("… contains \"..\"").
    pub fn as_str(self) -> &'static str {
        match self {
            RelPathError::ParentDir => "contains \"..\"",
            RelPathError::Absolute => "is absolute",
            RelPathError::Nul => "contains a NUL byte",
        }
    }
}

impl std::fmt::Display for RelPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for RelPathError {}

/// `path` without `.` components and redundant slashes (empty for the tree's root). With
/// `allow_absolute`, a leading `/` means the tree's root (`/a/b` = `a/b`); otherwise it is refused.
/// `..` is always refused, never resolved: a path that climbs is a mistake or an attack.
pub fn clean(path: &Path, allow_absolute: bool) -> Result<PathBuf, RelPathError> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(RelPathError::Nul);
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir if allow_absolute => {}
            Component::RootDir | Component::Prefix(_) => return Err(RelPathError::Absolute),
            Component::ParentDir => return Err(RelPathError::ParentDir),
        }
    }
    Ok(out)
}

/// [`clean`] for relative paths only.
pub fn clean_relative(path: &Path) -> Result<PathBuf, RelPathError> {
    clean(path, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_never_climb() {
        assert_eq!(clean_relative(Path::new("a/./b//c")).unwrap(), Path::new("a/b/c"));
        assert_eq!(clean_relative(Path::new(".")).unwrap(), Path::new(""));
        assert_eq!(clean_relative(Path::new("a/../b")), Err(RelPathError::ParentDir));
        assert_eq!(clean_relative(Path::new("/etc")), Err(RelPathError::Absolute));
        assert_eq!(clean(Path::new("/data/x"), true).unwrap(), Path::new("data/x"));
        assert_eq!(clean(Path::new("/../x"), true), Err(RelPathError::ParentDir));
        assert_eq!(clean_relative(Path::new("a\0b")), Err(RelPathError::Nul));
    }
}
