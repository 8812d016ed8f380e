//! Cleaning paths that name something inside a tree (a volume, an archive, a build context) so that they
//! can never leave it, and lexical normalization of absolute paths (the guest's files and exec paths, the
//! code gateway's cwd, a Dockerfile's `WORKDIR` and `COPY` destinations): one implementation for every
//! crate that takes such paths from the outside.

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

/// `path` lexically normalized as an absolute path: no `.`, `..` or empty components and no trailing
/// slash (`/` for the root). `..` removes the previous component and never climbs above `/`
/// (`/../etc` is `/etc`); a relative `path` is taken from `/`. Symlinks are not looked at: this names a
/// place, the kernel still decides what is there.
pub fn normalize_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for part in &parts {
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `path` resolved against the absolute directory `base` (an absolute `path` ignores it), then
/// [`normalize_absolute`]d.
pub fn resolve_under(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        normalize_absolute(path)
    } else {
        normalize_absolute(&format!("{base}/{path}"))
    }
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

    #[test]
    fn absolute_paths_are_normalized_and_never_climb_above_the_root() {
        assert_eq!(normalize_absolute("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalize_absolute("/a/b/../c"), "/a/c");
        assert_eq!(normalize_absolute("/../../etc"), "/etc");
        assert_eq!(normalize_absolute("/"), "/");
        assert_eq!(normalize_absolute(""), "/");
        assert_eq!(normalize_absolute("a/.."), "/");
        assert_eq!(resolve_under("/app", "src/../lib/"), "/app/lib");
        assert_eq!(resolve_under("/app", "/../../etc"), "/etc");
        assert_eq!(resolve_under("/workspace", "../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve_under("/", "."), "/");
    }
}
