//! Literal search-and-replace across a list of files, rewriting each changed file in place (owner and
//! mode kept).

use nullspace_types::files_ops_api::ReplaceResult;

use crate::error::{GuestError, GuestResult};
use crate::files::ops;
use crate::files::search::looks_binary;

/// Replaces every occurrence of `pattern` with `replacement` in `files` (absolute paths).
pub fn replace_in_files(
    files: &[String],
    pattern: &str,
    replacement: &str,
    dry_run: bool,
) -> GuestResult<ReplaceResult> {
    if pattern.is_empty() {
        return Err(GuestError::invalid("pattern is empty; send the text to replace"));
    }
    let mut result =
        ReplaceResult { dry_run, replacements: 0, files_modified: 0, files_skipped: 0, binary_files_skipped: 0 };
    for path in files {
        let content = ops::read(path)?;
        if looks_binary(&content) {
            result.binary_files_skipped += 1;
            continue;
        }
        let text = String::from_utf8_lossy(&content);
        let (replaced, count) = replace_literal(&text, pattern, replacement);
        if count == 0 {
            result.files_skipped += 1;
            continue;
        }
        result.replacements += count;
        result.files_modified += 1;
        if !dry_run {
            ops::write(path, replaced.as_bytes())?;
        }
    }
    Ok(result)
}

/// `text` with every occurrence of `pattern` replaced, and how many there were.
pub fn replace_literal(text: &str, pattern: &str, replacement: &str) -> (String, u64) {
    let count = text.matches(pattern).count() as u64;
    (text.replace(pattern, replacement), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_replaces_literally() {
        assert_eq!(replace_literal("a.b a.b", "a.b", "x"), ("x x".to_owned(), 2));
        assert_eq!(replace_literal("aaa", "aa", "b"), ("ba".to_owned(), 1));
        assert_eq!(replace_literal("none", "zz", "b"), ("none".to_owned(), 0));
    }

    #[test]
    fn rewrites_files_and_honours_dry_run() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt").display().to_string();
        let b = dir.path().join("b.txt").display().to_string();
        std::fs::write(&a, "hello hello").unwrap();
        std::fs::write(&b, "nothing").unwrap();
        let files = [a.clone(), b.clone()];
        let dry = replace_in_files(&files, "hello", "bye", true).unwrap();
        assert_eq!((dry.replacements, dry.files_modified, dry.files_skipped), (2, 1, 1));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "hello hello");
        let real = replace_in_files(&files, "hello", "bye", false).unwrap();
        assert_eq!(real.replacements, 2);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "bye bye");
        assert!(replace_in_files(&[format!("{a}.missing")], "x", "y", false).is_err());
    }
}
