//! The build context, read from disk as the official client lays it out: a `--copy` source becomes
//! entries under `builder-context/step-<i>/src-0/<name>`, a Dockerfile's directory becomes entries at
//! the context root minus what `.dockerignore` (or `<Dockerfile>.dockerignore`) excludes, with
//! gitignore semantics as the official client's `pathspec` matcher has them (the `ignore` crate).
//! Each file carries its mode, size and sha256 for the blob preflight; symlinks and special files are
//! refused, as the official client refuses them.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use nullspace_client::types::template_api::{BuildContext, ContextFile};
use nullspace_client::LocalContextEntry;
use sha2::{Digest, Sha256};

use crate::exit::UserError;

/// Entries of one `--copy` source for step `step_index`; returns the source's ref and its entries.
pub fn copy_source(source: &Path, step_index: usize) -> anyhow::Result<(String, Vec<LocalContextEntry>)> {
    let alias = format!("builder-context/step-{step_index}/src-0");
    let meta = fs::symlink_metadata(source)
        .map_err(|e| UserError::new(format!("cannot read --copy source {}: {e}", source.display()), None))?;
    let name = safe_segment(&source_name(source));
    let source_ref = format!("{alias}/{name}");
    if meta.is_file() {
        return Ok((source_ref.clone(), vec![file_entry(source_ref, source)?]));
    }
    if !meta.is_dir() {
        return Err(unsupported(source).into());
    }
    let mut entries = vec![dir_entry(source_ref.clone(), source)?];
    walk(source, &source_ref, source, None, &[], &mut entries)?;
    Ok((source_ref, sorted(entries, false)))
}

/// The Dockerfile's text and the entries of its directory, minus ignored paths, the Dockerfile and the
/// ignore files themselves.
pub fn dockerfile_context(dockerfile: &Path) -> anyhow::Result<(String, Vec<LocalContextEntry>)> {
    let text = fs::read_to_string(dockerfile)
        .map_err(|e| UserError::new(format!("cannot read Dockerfile {}: {e}", dockerfile.display()), None))?;
    let dockerfile = std::path::absolute(dockerfile)?;
    let root = dockerfile.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let specific = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    let ignore_file = if specific.is_file() { specific.clone() } else { root.join(".dockerignore") };
    let matcher = ignore_matcher(&root, &ignore_file)?;
    let excluded = [dockerfile.clone(), root.join(".dockerignore"), specific];
    let mut entries = Vec::new();
    walk(&root, "", &root, matcher.as_ref(), &excluded, &mut entries)?;
    Ok((text, sorted(entries, true)))
}

/// Largest context sent inline (validate, plan, dry run): base64 of it stays well under the server's
/// 64 MiB request limit.
pub const INLINE_MAX_BYTES: u64 = 32 << 20;

/// The context as a request carries it inline (`content_base64`), for checks that must leave nothing
/// behind on the server (validate, plan, `build --dry-run`).
pub fn inline_context(entries: &[LocalContextEntry]) -> anyhow::Result<BuildContext> {
    use base64::Engine as _;
    let total: u64 = entries.iter().filter_map(|e| e.size_bytes).sum();
    if total > INLINE_MAX_BYTES {
        return Err(UserError::new(
            format!("the build context holds {total} bytes; checks send it inline, up to {INLINE_MAX_BYTES}"),
            Some("run `nullspace template build` (it uploads the context as blobs), or shrink it with .dockerignore"),
        )
        .into());
    }
    let mut files = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut file = entry.entry.clone();
        if let Some(local) = &entry.local {
            let bytes =
                fs::read(local).map_err(|e| UserError::new(format!("cannot read {}: {e}", local.display()), None))?;
            file.content_base64 = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        files.push(file);
    }
    Ok(BuildContext { files })
}

/// The matcher of an ignore file with gitignore semantics, rooted at the context.
fn ignore_matcher(root: &Path, file: &Path) -> anyhow::Result<Option<Gitignore>> {
    if !file.is_file() {
        return Ok(None);
    }
    let mut builder = GitignoreBuilder::new(root);
    for line in fs::read_to_string(file)?.lines() {
        builder.add_line(None, line).map_err(|e| UserError::new(format!("{}: {e}", file.display()), None))?;
    }
    Ok(Some(builder.build()?))
}

/// Adds the entries below `dir` (context path prefix `prefix`), skipping ignored and excluded paths.
/// Ignored directories are still walked so `!pattern` can bring files back.
fn walk(
    dir: &Path,
    prefix: &str,
    root: &Path,
    matcher: Option<&Gitignore>,
    excluded: &[PathBuf],
    entries: &mut Vec<LocalContextEntry>,
) -> anyhow::Result<()> {
    let mut children: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    children.sort_by_key(|child| child.file_name());
    for child in children {
        let path = child.path();
        if excluded.contains(&path) {
            continue;
        }
        let name = child.file_name().to_string_lossy().into_owned();
        let context_path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let meta = fs::symlink_metadata(&path)?;
        let ignored = matcher.is_some_and(|m| {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            m.matched_path_or_any_parents(relative, meta.is_dir()).is_ignore()
        });
        if meta.is_dir() {
            if !ignored {
                entries.push(dir_entry(context_path.clone(), &path)?);
            }
            walk(&path, &context_path, root, matcher, excluded, entries)?;
        } else if ignored {
            continue;
        } else if meta.is_file() {
            entries.push(file_entry(context_path, &path)?);
        } else {
            return Err(unsupported(&path).into());
        }
    }
    Ok(())
}

/// Directories first (shallow to deep), then files, as the official client orders them; with
/// `fill_parents` a file's directories are kept even when a pattern ignored the directory itself.
fn sorted(entries: Vec<LocalContextEntry>, fill_parents: bool) -> Vec<LocalContextEntry> {
    let (mut dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.local.is_none());
    for file in files.iter().filter(|_| fill_parents) {
        let mut parent = Path::new(&file.entry.path).parent();
        while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let dir_text = dir.to_string_lossy().into_owned();
            if !dirs.iter().any(|d| d.entry.path == dir_text) {
                dirs.push(LocalContextEntry {
                    entry: ContextFile {
                        path: dir_text,
                        entry_type: Some("dir".into()),
                        mode: Some("0755".into()),
                        ..Default::default()
                    },
                    local: None,
                    sha256: None,
                    size_bytes: None,
                    force_upload: false,
                });
            }
            parent = dir.parent();
        }
    }
    dirs.sort_by(|a, b| {
        let depth = |e: &LocalContextEntry| e.entry.path.matches('/').count();
        depth(a).cmp(&depth(b)).then_with(|| a.entry.path.cmp(&b.entry.path))
    });
    dirs.into_iter().chain(files).collect()
}

fn dir_entry(context_path: String, path: &Path) -> anyhow::Result<LocalContextEntry> {
    Ok(LocalContextEntry {
        entry: ContextFile {
            path: context_path,
            entry_type: Some("dir".into()),
            mode: Some(mode(path)?),
            ..Default::default()
        },
        local: None,
        sha256: None,
        size_bytes: None,
        force_upload: false,
    })
}

fn file_entry(context_path: String, path: &Path) -> anyhow::Result<LocalContextEntry> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(LocalContextEntry {
        entry: ContextFile {
            path: context_path,
            entry_type: Some("file".into()),
            mode: Some(mode(path)?),
            ..Default::default()
        },
        local: Some(path.to_path_buf()),
        sha256: Some(hex::encode(hasher.finalize())),
        size_bytes: Some(size),
        force_upload: false,
    })
}

/// `0644`-style permission bits.
fn mode(path: &Path) -> anyhow::Result<String> {
    Ok(format!("{:04o}", fs::metadata(path)?.permissions().mode() & 0o777))
}

/// The last component of a source path (`.` and `./` name the current directory).
fn source_name(source: &Path) -> String {
    let absolute = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
    let normal: PathBuf = absolute.components().collect();
    normal.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "context".into())
}

/// Letters, digits, `-`, `_` and `.` stay; everything else becomes `_` (as the official client does).
fn safe_segment(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if safe.is_empty() {
        "context".into()
    } else {
        safe
    }
}

fn unsupported(path: &Path) -> UserError {
    UserError::new(
        format!("{} is a symlink or special file; build contexts hold only files and directories", path.display()),
        Some("list it in .dockerignore, or copy the file it points to"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(entries: &[LocalContextEntry]) -> Vec<(String, String)> {
        entries.iter().map(|e| (e.entry.path.clone(), e.entry.entry_type.clone().unwrap())).collect()
    }

    #[test]
    fn dockerignore_excludes_with_gitignore_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM nullspace/base\nCOPY . /app\n").unwrap();
        fs::write(root.join(".dockerignore"), "*.log\nnode_modules/\ndocs/\n!docs/keep.md\n").unwrap();
        fs::write(root.join("app.py"), "print(1)\n").unwrap();
        fs::write(root.join("debug.log"), "x").unwrap();
        fs::create_dir_all(root.join("node_modules/x")).unwrap();
        fs::write(root.join("node_modules/x/i.js"), "x").unwrap();
        fs::create_dir_all(root.join("src/deep")).unwrap();
        fs::write(root.join("src/deep/m.py"), "y").unwrap();
        fs::write(root.join("src/deep/trace.log"), "z").unwrap();
        fs::create_dir(root.join("docs")).unwrap();
        fs::write(root.join("docs/drop.md"), "d").unwrap();
        fs::write(root.join("docs/keep.md"), "k").unwrap();
        let (text, entries) = dockerfile_context(&root.join("Dockerfile")).unwrap();
        assert!(text.starts_with("FROM nullspace/base"));
        assert_eq!(
            paths(&entries),
            [
                ("docs", "dir"),
                ("src", "dir"),
                ("src/deep", "dir"),
                ("app.py", "file"),
                ("docs/keep.md", "file"),
                ("src/deep/m.py", "file"),
            ]
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
        let app = entries.iter().find(|e| e.entry.path == "app.py").unwrap();
        assert_eq!(app.size_bytes, Some(9));
        assert_eq!(app.sha256.as_deref(), Some(hex::encode(Sha256::digest(b"print(1)\n")).as_str()));
    }

    #[test]
    fn a_dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("build.Dockerfile"), "FROM x\n").unwrap();
        fs::write(root.join("build.Dockerfile.dockerignore"), "secret.txt\n").unwrap();
        fs::write(root.join(".dockerignore"), "app.txt\n").unwrap();
        fs::write(root.join("app.txt"), "a").unwrap();
        fs::write(root.join("secret.txt"), "s").unwrap();
        let (_, entries) = dockerfile_context(&root.join("build.Dockerfile")).unwrap();
        assert_eq!(paths(&entries), [("app.txt".to_owned(), "file".to_owned())]);
    }

    #[test]
    fn symlinks_are_refused_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM x\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        assert!(dockerfile_context(&root.join("Dockerfile")).unwrap_err().downcast_ref::<UserError>().is_some());
        fs::write(root.join(".dockerignore"), "link\n").unwrap();
        assert!(dockerfile_context(&root.join("Dockerfile")).unwrap().1.is_empty());
    }

    #[test]
    fn copy_sources_live_under_their_step() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("my app/lib")).unwrap();
        fs::write(dir.path().join("my app/lib/a.txt"), "a").unwrap();
        fs::set_permissions(dir.path().join("my app/lib/a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        let (source_ref, entries) = copy_source(&dir.path().join("my app"), 3).unwrap();
        assert_eq!(source_ref, "builder-context/step-3/src-0/my_app");
        assert_eq!(
            paths(&entries),
            [
                ("builder-context/step-3/src-0/my_app", "dir"),
                ("builder-context/step-3/src-0/my_app/lib", "dir"),
                ("builder-context/step-3/src-0/my_app/lib/a.txt", "file"),
            ]
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
        assert_eq!(entries[2].entry.mode.as_deref(), Some("0640"));
        let (file_ref, files) = copy_source(&dir.path().join("my app/lib/a.txt"), 0).unwrap();
        assert_eq!(file_ref, "builder-context/step-0/src-0/a.txt");
        assert_eq!(files.len(), 1);
        assert!(copy_source(&dir.path().join("missing"), 0).is_err());
    }

    #[test]
    fn checks_carry_the_context_inline() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("app")).unwrap();
        fs::write(dir.path().join("app/a.txt"), "hello").unwrap();
        let (_, entries) = copy_source(&dir.path().join("app"), 1).unwrap();
        let context = inline_context(&entries).unwrap();
        let inline: Vec<(&str, Option<&str>)> =
            context.files.iter().map(|f| (f.path.as_str(), f.content_base64.as_deref())).collect();
        assert_eq!(
            inline,
            [("builder-context/step-1/src-0/app", None), ("builder-context/step-1/src-0/app/a.txt", Some("aGVsbG8="))]
        );
        assert!(context.files.iter().all(|f| f.blob_id.is_none()));
    }
}
