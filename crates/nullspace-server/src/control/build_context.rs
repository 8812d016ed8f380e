//! A build's context on the host: which uploaded files a copy needs, laid out as a directory the build
//! sandbox mounts read-only, and the digest of exactly those files (part of the copy's cache key).

use std::path::{Path, PathBuf};

use base64::Engine;
use nullspace_types::template_api::{BuildContext, ContextFile};
use sha2::{Digest, Sha256};

/// Why a copy's files cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A source matches nothing in the context.
    #[error("copy source {source_path:?} is not in the build context; was it uploaded (check .dockerignore)?")]
    NoMatch {
        /// The source as written.
        source_path: String,
    },
    /// A context file has no content: its blob was never uploaded.
    #[error("build context file {path:?} has no content (blob {blob:?} was not uploaded); build again to upload it")]
    Missing {
        /// Context path.
        path: String,
        /// Its blob id.
        blob: Option<String>,
    },
    /// A path or pattern is malformed.
    #[error("build context path {path:?} {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("build context: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContextError {
    let path = path.to_path_buf();
    move |source| ContextError::Io { action, path, source }
}

/// A context path cleaned (no `.`, no leading `./`), or why it cannot name anything in the context.
pub fn clean_context_path(path: &str) -> Result<String, String> {
    let cleaned = nullspace_types::rel_path::clean(Path::new(path), true).map_err(|e| e.as_str().to_owned())?;
    Ok(cleaned.to_string_lossy().into_owned())
}

/// One source of a copy, matched in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Context path of the match (a file or a directory).
    pub path: String,
    /// Whether it is a directory (its contents are copied).
    pub is_dir: bool,
}

/// The entries of `context` that `source` names: the entry itself, every entry below it when it is a
/// directory, or the entries a glob (`*`, `?`, `[…]`) matches. `.` names the whole context.
pub fn matches(context: &BuildContext, source: &str) -> Result<Vec<Matched>, ContextError> {
    let bad = |reason: String| ContextError::BadPath { path: source.to_owned(), reason };
    let cleaned = clean_context_path(source).map_err(bad)?;
    let is_dir_entry = |path: &str| {
        context.files.iter().any(|f| {
            (f.path == path && f.entry_type.as_deref() == Some("dir"))
                || f.path.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
        })
    };
    let found: Vec<Matched> = if cleaned.is_empty() {
        vec![Matched { path: String::new(), is_dir: true }]
    } else if cleaned.contains(['*', '?', '[']) {
        let glob = globset::GlobBuilder::new(&cleaned)
            .literal_separator(true)
            .build()
            .map_err(|e| bad(format!("is not a valid pattern: {e}")))?
            .compile_matcher();
        let mut names: Vec<String> =
            context.files.iter().flat_map(|f| ancestors(&f.path)).filter(|path| glob.is_match(path)).collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|path| Matched { is_dir: is_dir_entry(&path), path }).collect()
    } else if is_dir_entry(&cleaned) {
        vec![Matched { path: cleaned, is_dir: true }]
    } else if context.files.iter().any(|f| clean_context_path(&f.path).ok().as_deref() == Some(cleaned.as_str())) {
        vec![Matched { path: cleaned, is_dir: false }]
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return Err(ContextError::NoMatch { source_path: source.to_owned() });
    }
    Ok(found)
}

/// `a/b/c` → `a`, `a/b`, `a/b/c`.
fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// Lays out every context entry under the `matched` paths into `into` (same relative paths), with their
/// modes, and returns the sha256 over their paths, modes and contents. `blob` gives the host file of an
/// uploaded blob.
pub fn lay_out(
    context: &BuildContext,
    matched: &[Matched],
    blob: &dyn Fn(&str) -> Option<PathBuf>,
    into: &Path,
) -> Result<String, ContextError> {
    let mut entries: Vec<&ContextFile> = context
        .files
        .iter()
        .filter(|f| {
            let path = clean_context_path(&f.path).unwrap_or_default();
            matched.iter().any(|m| {
                m.path.is_empty() || path == m.path || path.strip_prefix(&m.path).is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut digest = Sha256::new();
    std::fs::create_dir_all(into).map_err(io("create", into))?;
    for entry in entries {
        let relative = clean_context_path(&entry.path)
            .map_err(|reason| ContextError::BadPath { path: entry.path.clone(), reason })?;
        if relative.is_empty() {
            continue;
        }
        let target = into.join(&relative);
        let mode = entry.mode.as_deref().and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok());
        digest.update(relative.as_bytes());
        digest.update([0]);
        if entry.entry_type.as_deref() == Some("dir") {
            std::fs::create_dir_all(&target).map_err(io("create", &target))?;
            digest.update(format!("dir {:o}\n", mode.unwrap_or(0o755)).as_bytes());
        } else {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            }
            let content = content_of(entry, blob, &target)?;
            digest.update(format!("file {:o} ", mode.unwrap_or(0o644)).as_bytes());
            digest.update(content);
        }
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io("set the mode of", &target))?;
        }
    }
    Ok(hex::encode(digest.finalize()))
}

/// Writes the content of `entry` to `target` and returns its sha256.
fn content_of(
    entry: &ContextFile,
    blob: &dyn Fn(&str) -> Option<PathBuf>,
    target: &Path,
) -> Result<[u8; 32], ContextError> {
    if let Some(inline) = &entry.content_base64 {
        let bytes = base64::engine::general_purpose::STANDARD.decode(inline).map_err(|e| ContextError::BadPath {
            path: entry.path.clone(),
            reason: format!("has invalid content_base64: {e}"),
        })?;
        std::fs::write(target, &bytes).map_err(io("write", target))?;
        return Ok(Sha256::digest(&bytes).into());
    }
    let missing = || ContextError::Missing { path: entry.path.clone(), blob: entry.blob_id.clone() };
    let source = entry.blob_id.as_deref().and_then(blob).ok_or_else(missing)?;
    // A copy, not a link: the mode set on the laid-out file must not change the stored blob.
    std::fs::copy(&source, target).map_err(io("copy", &source))?;
    let mut file = std::fs::File::open(target).map_err(io("read", target))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io("read", target))?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> BuildContext {
        let file = |path: &str, content: &str| ContextFile {
            path: path.into(),
            entry_type: Some("file".into()),
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode(content)),
            mode: Some("0640".into()),
            ..ContextFile::default()
        };
        BuildContext {
            files: vec![
                ContextFile {
                    path: "builder-context/step-0/src-0/payload".into(),
                    entry_type: Some("dir".into()),
                    ..Default::default()
                },
                file("builder-context/step-0/src-0/payload/hello.txt", "hello"),
                file("builder-context/step-0/src-0/payload/sub/deep.txt", "deep"),
                file("app.py", "print(1)"),
                file("lib.py", "x = 1"),
                file("README.md", "#"),
            ],
        }
    }

    #[test]
    fn sources_match_files_directories_globs_and_the_whole_context() {
        let ctx = context();
        assert_eq!(matches(&ctx, "app.py").unwrap(), vec![Matched { path: "app.py".into(), is_dir: false }]);
        assert_eq!(matches(&ctx, "./app.py").unwrap()[0].path, "app.py");
        let dir = matches(&ctx, "builder-context/step-0/src-0/payload").unwrap();
        assert_eq!(dir, vec![Matched { path: "builder-context/step-0/src-0/payload".into(), is_dir: true }]);
        let py: Vec<String> = matches(&ctx, "*.py").unwrap().into_iter().map(|m| m.path).collect();
        assert_eq!(py, vec!["app.py", "lib.py"]);
        assert!(matches(&ctx, ".").unwrap()[0].is_dir);
        assert!(matches(&ctx, "missing.txt").unwrap_err().to_string().contains("not in the build context"));
        assert!(matches(&ctx, "../etc/passwd").is_err());
    }

    #[test]
    fn lay_out_copies_exactly_the_matched_entries_with_modes_and_a_stable_digest() {
        use std::os::unix::fs::PermissionsExt;
        let ctx = context();
        let dir = tempfile::tempdir().unwrap();
        let matched = matches(&ctx, "builder-context/step-0/src-0/payload").unwrap();
        let digest = lay_out(&ctx, &matched, &|_| None, dir.path()).unwrap();
        let root = dir.path().join("builder-context/step-0/src-0/payload");
        assert_eq!(std::fs::read_to_string(root.join("sub/deep.txt")).unwrap(), "deep");
        assert_eq!(std::fs::metadata(root.join("hello.txt")).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!dir.path().join("app.py").exists());
        let again = tempfile::tempdir().unwrap();
        assert_eq!(lay_out(&ctx, &matched, &|_| None, again.path()).unwrap(), digest);
        let mut changed = ctx.clone();
        changed.files[1].content_base64 = Some(base64::engine::general_purpose::STANDARD.encode("changed"));
        let third = tempfile::tempdir().unwrap();
        assert_ne!(lay_out(&changed, &matched, &|_| None, third.path()).unwrap(), digest);
    }

    #[test]
    fn a_file_without_content_or_blob_is_missing() {
        let ctx = BuildContext {
            files: vec![ContextFile { path: "a".into(), blob_id: Some("sha256:00".into()), ..Default::default() }],
        };
        let dir = tempfile::tempdir().unwrap();
        let matched = matches(&ctx, "a").unwrap();
        let error = lay_out(&ctx, &matched, &|_| None, dir.path()).unwrap_err();
        assert!(matches!(error, ContextError::Missing { .. }), "{error}");
    }
}
