//! Recursive searches below a directory: by file name glob (`*.py`; a pattern with `/` matches the
//! path relative to the root) and by literal content (line matches in text files). Both walk with a
//! [`Budget`] (see [`crate::files::walk`]); content is read line by line through a bounded buffer, so
//! memory stays small whatever the files (endless or lying about their size, as in procfs) hold.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use nullspace_types::files_ops_api::SearchMatch;

use crate::error::{GuestError, GuestResult};
use crate::files::walk::{relative_to, Budget, Walk};

/// Files larger than this are not grepped, and no file is read further than this.
const MAX_GREP_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Bytes of one line kept for matching and reporting; the rest of a longer line is skipped.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Bytes looked at for a NUL to tell binary files.
const BINARY_PROBE_BYTES: usize = 8192;

/// What a search found, and whether a limit cut it short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<T> {
    /// The results, in walk order.
    pub items: Vec<T>,
    /// Whether a limit stopped the search early.
    pub truncated: bool,
}

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
pub fn search_names(root: &str, pattern: &str, mut budget: Budget) -> GuestResult<Found<String>> {
    let matcher = glob(pattern)?;
    let by_path = pattern.contains('/');
    ensure_exists(root)?;
    let mut found = Vec::new();
    let mut walk = Walk::new(Path::new(root), 1, usize::MAX);
    while let Some(entry) = walk.next_entry(&mut budget) {
        let candidate = if by_path { relative_to(Path::new(root), entry.path()) } else { entry.file_name().into() };
        if matcher.is_match(&candidate) {
            let path = entry.path().to_string_lossy().into_owned();
            if !budget.keep(path.len()) {
                break;
            }
            found.push(path);
        }
    }
    Ok(Found { items: found, truncated: budget.truncated() })
}

/// Lines containing `needle` in the text files below `root` (or in `root` itself if it is a file).
pub fn find_content(root: &str, needle: &str, mut budget: Budget) -> GuestResult<Found<SearchMatch>> {
    if needle.is_empty() {
        return Err(GuestError::invalid("pattern is empty; send the text to search for"));
    }
    ensure_exists(root)?;
    let mut matches = Vec::new();
    let mut walk = Walk::new(Path::new(root), 0, usize::MAX);
    while let Some(entry) = walk.next_entry(&mut budget) {
        if !entry.file_type().is_file() || entry.metadata().map(|m| m.len() > MAX_GREP_FILE_BYTES).unwrap_or(true) {
            continue;
        }
        let file = entry.path().to_string_lossy().into_owned();
        let Ok(handle) = File::open(entry.path()) else {
            continue;
        };
        // Errors mid-file (procfs files that refuse some reads) end that file only.
        let _ = grep(handle, &file, needle, &mut budget, &mut matches);
        if budget.truncated() {
            break;
        }
    }
    Ok(Found { items: matches, truncated: budget.truncated() })
}

/// Appends the lines of `reader` (the file `file`) containing `needle` to `matches`, unless the file
/// looks binary; reads at most [`MAX_GREP_FILE_BYTES`] and what the budget still allows.
fn grep(
    reader: impl Read,
    file: &str,
    needle: &str,
    budget: &mut Budget,
    matches: &mut Vec<SearchMatch>,
) -> io::Result<()> {
    let allowed = MAX_GREP_FILE_BYTES.min(budget.readable());
    let mut reader = reader.take(allowed);
    let mut probe = Vec::with_capacity(BINARY_PROBE_BYTES);
    (&mut reader).take(BINARY_PROBE_BYTES as u64).read_to_end(&mut probe)?;
    if looks_binary(&probe) {
        budget.read(probe.len() as u64);
        return Ok(());
    }
    let mut lines = BufReader::new(io::Cursor::new(probe).chain(reader));
    let mut line = Vec::new();
    let mut found = Vec::new();
    let (mut number, mut read) = (0u64, 0u64);
    let scanned = loop {
        let consumed = match read_capped_line(&mut lines, &mut line, MAX_LINE_BYTES) {
            Ok(0) => break Ok(()),
            Ok(consumed) => consumed,
            Err(error) => break Err(error),
        };
        number += 1;
        read += consumed as u64;
        let text = String::from_utf8_lossy(strip_line_end(&line));
        if text.contains(needle) {
            found.push(SearchMatch { file: file.to_owned(), line: number, content: text.into_owned() });
        }
    };
    budget.read(read);
    for item in found {
        if !budget.keep(item.file.len() + item.content.len()) {
            break;
        }
        matches.push(item);
    }
    scanned
}

/// Reads one line (through its `\n`) from `reader`, keeping at most `max` bytes of it in `line`;
/// returns the bytes consumed (0 at the end).
pub fn read_capped_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    line.clear();
    let mut consumed = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if done {
            return Ok(consumed);
        }
    }
}

/// A line without its `\n` or `\r\n` (as `str::lines` splits).
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether content looks binary (a NUL byte in its first 8 KiB).
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_PROBE_BYTES)].contains(&0)
}

fn ensure_exists(root: &str) -> GuestResult<()> {
    std::fs::symlink_metadata(root).map(|_| ()).map_err(|error| GuestError::file_op("search", root, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::walk::{Limits, SEARCH_LIMITS};

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nested")).unwrap();
        std::fs::write(dir.path().join("app.py"), "print(1)\n# TODO: x\n").unwrap();
        std::fs::write(dir.path().join("nested/test.py"), "ok\n").unwrap();
        std::fs::write(dir.path().join("nested/notes.txt"), "TODO later\n").unwrap();
        std::fs::write(dir.path().join("blob.bin"), b"TODO\0binary").unwrap();
        dir
    }

    fn budget() -> Budget {
        Budget::new(SEARCH_LIMITS)
    }

    #[test]
    fn name_glob_matches_recursively() {
        let dir = tree();
        let root = dir.path().to_str().unwrap();
        let found = search_names(root, "*.py", budget()).unwrap();
        assert_eq!(found.items, [format!("{root}/app.py"), format!("{root}/nested/test.py")]);
        assert!(!found.truncated);
        let found = search_names(root, "nested/*.txt", budget()).unwrap();
        assert_eq!(found.items, [format!("{root}/nested/notes.txt")]);
        assert!(search_names(root, "", budget()).is_err());
        assert!(matches!(search_names("/no/such", "*", budget()), Err(GuestError::FileNotFound { .. })));
    }

    #[test]
    fn content_search_reports_lines_and_skips_binary() {
        let dir = tree();
        let root = dir.path().to_str().unwrap();
        let matches = find_content(root, "TODO", budget()).unwrap().items;
        assert_eq!(matches.len(), 2);
        assert_eq!(matches[0].file, format!("{root}/app.py"));
        assert_eq!((matches[0].line, matches[0].content.as_str()), (2, "# TODO: x"));
        assert_eq!(matches[1].file, format!("{root}/nested/notes.txt"));
        assert_eq!(find_content(&format!("{root}/app.py"), "print", budget()).unwrap().items.len(), 1);
    }

    #[test]
    fn results_beyond_the_budget_are_cut_and_flagged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("many.txt"), "hit\n".repeat(50)).unwrap();
        let root = dir.path().to_str().unwrap();
        let small = Limits { results: 10, ..SEARCH_LIMITS };
        let found = find_content(root, "hit", Budget::new(small)).unwrap();
        assert_eq!(found.items.len(), 10);
        assert!(found.truncated);
        let found = find_content(root, "hit", budget()).unwrap();
        assert_eq!((found.items.len(), found.truncated), (50, false));
        let unread = Limits { bytes: 40, ..SEARCH_LIMITS };
        let found = find_content(root, "hit", Budget::new(unread)).unwrap();
        assert_eq!((found.items.len(), found.truncated), (10, true), "only 40 bytes read");
    }

    #[test]
    fn endless_files_are_read_only_up_to_the_cap() {
        // An endless text source (as procfs files that report size 0 can be) ends at the cap.
        let endless = io::repeat(b'a').take(u64::MAX);
        let mut budget = Budget::new(Limits { bytes: 3 * 1024 * 1024, ..SEARCH_LIMITS });
        let mut matches = Vec::new();
        grep(endless, "/proc/x", "a", &mut budget, &mut matches).unwrap();
        assert_eq!(matches.len(), 1, "one endless line");
        assert_eq!(matches[0].content.len(), MAX_LINE_BYTES, "kept up to the line cap");
        assert!(budget.truncated(), "the read budget is spent");
    }

    #[test]
    fn pseudo_filesystems_are_searched_only_when_asked_for() {
        // Searching /proc/self itself is allowed (and bounded); found files are below it.
        let found = search_names("/proc/self", "status", budget()).unwrap();
        assert!(found.items.contains(&"/proc/self/status".to_owned()), "{:?}", found.items);
        let found =
            find_content("/proc/self", "Name:", Budget::new(Limits { entries: 2_000, ..SEARCH_LIMITS })).unwrap();
        assert!(found.items.iter().all(|m| m.file.starts_with("/proc/self")));
    }

    #[test]
    fn long_lines_are_capped_but_consumed() {
        let mut reader = BufReader::with_capacity(4, io::Cursor::new(b"abcdefghij\nxy\nlast".to_vec()));
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut reader, &mut line, 5).unwrap(), 11);
        assert_eq!(line, b"abcde");
        assert_eq!(read_capped_line(&mut reader, &mut line, 5).unwrap(), 3);
        assert_eq!(line, b"xy\n");
        assert_eq!(read_capped_line(&mut reader, &mut line, 5).unwrap(), 4);
        assert_eq!(line, b"last");
        assert_eq!(read_capped_line(&mut reader, &mut line, 5).unwrap(), 0);
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
    }
}
