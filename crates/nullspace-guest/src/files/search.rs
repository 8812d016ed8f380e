//! Recursive searches below a directory: by file name glob (`*.py`; a pattern with `/` matches the
//! path relative to the root) and by literal content (line matches in text files), both bounded.

use globset::{GlobBuilder, GlobMatcher};
use nullspace_types::files_ops_api::SearchMatch;
use walkdir::WalkDir;

use crate::error::{GuestError, GuestResult};

/// Most results of one search.
pub const MAX_RESULTS: usize = 10_000;

/// Files larger than this are not grepped.
const MAX_GREP_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Compiles a name glob.
pub fn glob(pattern: &str) -> GuestResult<GlobMatcher> {
    if pattern.is_empty() {
        return Err(GuestError::invalid("pattern is empty; send a glob such as \"*.py\""));
    }
    GlobBuilder::new(pattern)
        .literal_separator(pattern.contains('/'))
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|error| GuestError::invalid(format!("invalid glob {pattern:?}: {error}")))
}

/// Absolute paths below `root` whose name (or relative path, for patterns with `/`) matches `pattern`.
pub fn search_names(root: &str, pattern: &str) -> GuestResult<Vec<String>> {
    let matcher = glob(pattern)?;
    let by_path = pattern.contains('/');
    ensure_exists(root)?;
    let mut found = Vec::new();
    for entry in
        WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name().into_iter().filter_map(Result::ok)
    {
        let candidate = if by_path {
            entry.path().strip_prefix(root).unwrap_or(entry.path()).to_path_buf()
        } else {
            entry.file_name().into()
        };
        if matcher.is_match(&candidate) {
            found.push(entry.path().to_string_lossy().into_owned());
            if found.len() >= MAX_RESULTS {
                break;
            }
        }
    }
    Ok(found)
}

/// Lines containing `needle` in the text files below `root` (or in `root` itself if it is a file).
pub fn find_content(root: &str, needle: &str) -> GuestResult<Vec<SearchMatch>> {
    if needle.is_empty() {
        return Err(GuestError::invalid("pattern is empty; send the text to search for"));
    }
    ensure_exists(root)?;
    let mut matches = Vec::new();
    for entry in WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter().filter_map(Result::ok) {
        if !entry.file_type().is_file() || entry.metadata().map(|m| m.len() > MAX_GREP_FILE_BYTES).unwrap_or(true) {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        if looks_binary(&bytes) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let file = entry.path().to_string_lossy().into_owned();
        for (index, line) in text.lines().enumerate() {
            if line.contains(needle) {
                matches.push(SearchMatch { file: file.clone(), line: index as u64 + 1, content: line.to_owned() });
                if matches.len() >= MAX_RESULTS {
                    return Ok(matches);
                }
            }
        }
    }
    Ok(matches)
}

/// Whether content looks binary (a NUL byte in its first 8 KiB).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

fn ensure_exists(root: &str) -> GuestResult<()> {
    std::fs::symlink_metadata(root).map(|_| ()).map_err(|error| GuestError::file_op("search", root, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("app.py"), "print(1)\n# TODO: x\n").unwrap();
        std::fs::write(dir.path().join("nested/test.py"), "ok\n").unwrap();
        std::fs::write(dir.path().join("nested/notes.txt"), "TODO later\n").unwrap();
        std::fs::write(dir.path().join("blob.bin"), b"TODO\0binary").unwrap();
        dir
    }

    #[test]
    fn name_glob_matches_recursively() {
        let dir = tree();
        let root = dir.path().to_str().unwrap();
        let found = search_names(root, "*.py").unwrap();
        assert_eq!(found, [format!("{root}/app.py"), format!("{root}/nested/test.py")]);
        assert_eq!(search_names(root, "nested/*.txt").unwrap(), [format!("{root}/nested/notes.txt")]);
        assert!(search_names(root, "").is_err());
        assert!(matches!(search_names("/no/such", "*"), Err(GuestError::FileNotFound { .. })));
    }

    #[test]
    fn content_search_reports_lines_and_skips_binary() {
        let dir = tree();
        let root = dir.path().to_str().unwrap();
        let matches = find_content(root, "TODO").unwrap();
        assert_eq!(matches.len(), 2);
        assert_eq!(matches[0].file, format!("{root}/app.py"));
        assert_eq!((matches[0].line, matches[0].content.as_str()), (2, "# TODO: x"));
        assert_eq!(matches[1].file, format!("{root}/nested/notes.txt"));
        assert_eq!(find_content(&format!("{root}/app.py"), "print").unwrap().len(), 1);
    }
}
