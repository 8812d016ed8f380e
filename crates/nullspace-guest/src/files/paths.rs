//! Path resolution of the files API: absolute paths as given, relative ones against the sandbox cwd
//! (or the user's home when a user is named and the sandbox has no explicit cwd), `~` as the home,
//! always normalized lexically (`.`/`..`/`//` removed, never above `/`).

use nullspace_types::rel_path::resolve_under;

use crate::error::{GuestError, GuestResult};

/// Lexically normalizes an absolute path: no `.`, `..`, empty segments or trailing slash (the shared
/// implementation of `nullspace_types::rel_path`).
pub use nullspace_types::rel_path::normalize_absolute as normalize;

/// Resolves `path` against `base` (absolute) with `home` for `~`.
pub fn resolve_against(path: &str, base: &str, home: &str) -> GuestResult<String> {
    if path.is_empty() {
        return Err(GuestError::invalid("path is empty; send an absolute path or one relative to the sandbox cwd"));
    }
    if path.contains('\0') {
        return Err(GuestError::invalid("path must not contain NUL bytes"));
    }
    Ok(if path == "~" {
        normalize(home)
    } else if let Some(rest) = path.strip_prefix("~/") {
        resolve_under(home, rest)
    } else {
        resolve_under(base, path)
    })
}

/// Base directory of relative paths: the sandbox cwd, unless a user is named and the cwd is only the
/// template default, then that user's home.
pub fn base_dir<'a>(cwd: &'a str, cwd_is_default: bool, user_home: Option<&'a str>) -> &'a str {
    match user_home {
        Some(home) if cwd_is_default => home,
        _ => cwd,
    }
}

/// Final component of a normalized path (`/` for the root).
pub fn file_name(path: &str) -> String {
    match path.rsplit('/').next() {
        Some("") | None => "/".to_owned(),
        Some(name) => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dots_slashes_and_never_climbs_above_root() {
        assert_eq!(normalize("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalize("/a/b/../c"), "/a/c");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn resolves_relative_home_and_absolute_paths() {
        assert_eq!(resolve_against("x.txt", "/workspace", "/root").unwrap(), "/workspace/x.txt");
        assert_eq!(resolve_against("../etc/passwd", "/workspace", "/root").unwrap(), "/etc/passwd");
        assert_eq!(resolve_against("/tmp/a", "/workspace", "/root").unwrap(), "/tmp/a");
        assert_eq!(resolve_against("~/a", "/workspace", "/home/user").unwrap(), "/home/user/a");
        assert_eq!(resolve_against(".", "/workspace", "/root").unwrap(), "/workspace");
        assert!(resolve_against("", "/workspace", "/root").is_err());
        assert!(resolve_against("a\0b", "/workspace", "/root").is_err());
    }

    #[test]
    fn user_home_is_the_base_only_without_an_explicit_cwd() {
        assert_eq!(base_dir("/workspace", true, Some("/home/user")), "/home/user");
        assert_eq!(base_dir("/home/user/proj", false, Some("/home/user")), "/home/user/proj");
        assert_eq!(base_dir("/workspace", true, None), "/workspace");
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name("/a/b.txt"), "b.txt");
        assert_eq!(file_name("/"), "/");
    }
}
