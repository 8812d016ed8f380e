//! Starting applications on the desktop: a program with arguments, a desktop entry, or `xdg-open` for a
//! file or URL. Each runs detached (its own process group, `DISPLAY` set, output discarded) and is
//! reaped by the daemon when it ends, so none lingers as a zombie.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nullspace_types::desktop_api::Launched;
use tokio::process::Command;

use crate::desktop_entry::{self, EntryLaunch};
use crate::error::{DesktopError, DesktopResult};

/// What `POST /open` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenTarget {
    /// A URI with a scheme other than `file` (`https://…`, `mailto:…`).
    Uri(String),
    /// A local file or directory (from a path or a `file://` URL).
    Path(PathBuf),
}

/// Starts programs with the desktop's display.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// `DISPLAY` for the programs.
    pub display: String,
    /// Their working directory (and the base of relative paths given to `open`).
    pub workdir: PathBuf,
    /// Where desktop entries are searched.
    pub entry_dirs: Vec<PathBuf>,
}

impl Launcher {
    /// Starts `argv` detached, in `cwd` (else the work directory), and reaps it when it ends.
    pub fn spawn(&self, argv: &[String], cwd: Option<&Path>) -> DesktopResult<Launched> {
        let Some((program, args)) = argv.split_first() else {
            return Err(DesktopError::invalid("command is empty; send the program to run such as \"mousepad\""));
        };
        if program.trim().is_empty() || argv.iter().any(|arg| arg.contains('\0')) {
            return Err(DesktopError::invalid("command and args must be non-empty strings without NUL bytes"));
        }
        let cwd = cwd.filter(|dir| dir.is_dir()).unwrap_or(&self.workdir);
        let mut command = Command::new(program);
        command
            .args(args)
            .env("DISPLAY", &self.display)
            .current_dir(if cwd.is_dir() { cwd } else { Path::new("/") })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = command.spawn().map_err(|error| DesktopError::LaunchFailed {
            command: program.clone(),
            message: match error.kind() {
                std::io::ErrorKind::NotFound => "no such program on PATH".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_owned(),
                _ => error.to_string().to_lowercase(),
            },
        })?;
        let pid = child.id().unwrap_or_default();
        let name = program.clone();
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::debug!(pid, "{name} ended ({status})"),
                Err(error) => tracing::warn!(pid, "{name} could not be waited for: {error}"),
            }
        });
        tracing::info!(pid, "launched {}", argv.join(" "));
        Ok(Launched { pid, argv: argv.to_vec() })
    }

    /// Starts the application of desktop entry `name`, given `uri`.
    pub fn spawn_entry(&self, name: &str, uri: Option<&str>) -> DesktopResult<Launched> {
        let path = desktop_entry::find(name, &self.entry_dirs).map_err(DesktopError::invalid)?.ok_or_else(|| {
            DesktopError::DesktopEntryNotFound {
                name: name.to_owned(),
                searched: self.entry_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
            }
        })?;
        let contents = std::fs::read_to_string(&path)
            .map_err(|source| DesktopError::storage(format!("read {}", path.display()), source))?;
        let uri = uri.map(str::trim).filter(|u| !u.is_empty());
        match desktop_entry::launch_of(&path, &contents, uri)
            .map_err(|message| DesktopError::LaunchFailed { command: name.to_owned(), message })?
        {
            EntryLaunch::Exec { argv, cwd } => self.spawn(&argv, cwd.as_deref()),
            EntryLaunch::Open(url) => self.spawn(&["xdg-open".to_owned(), url], None),
        }
    }

    /// Opens a file or URL with its default application (`xdg-open`).
    pub fn open(&self, target: &str) -> DesktopResult<Launched> {
        let argument = match classify(target, &self.workdir)? {
            OpenTarget::Uri(uri) => uri,
            OpenTarget::Path(path) => {
                if !path.exists() {
                    return Err(DesktopError::FileNotFound { path: path.display().to_string() });
                }
                path.display().to_string()
            }
        };
        self.spawn(&["xdg-open".to_owned(), argument], None)
    }
}

/// Tells a URI from a path; relative paths are under `workdir`.
pub fn classify(target: &str, workdir: &Path) -> DesktopResult<OpenTarget> {
    let target = target.trim();
    if target.is_empty() || target.contains('\0') {
        return Err(DesktopError::invalid("target is empty; send a URL such as \"https://example.com\" or a path"));
    }
    if let Some(path) = target.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(DesktopError::invalid(format!(
                "{target:?} is not a local file URL; use file:///absolute/path"
            )));
        }
        return Ok(OpenTarget::Path(PathBuf::from(path)));
    }
    let scheme = target.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if scheme.is_some() {
        return Ok(OpenTarget::Uri(target.to_owned()));
    }
    Ok(OpenTarget::Path(workdir.join(target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_uris_file_urls_or_paths() {
        let workdir = Path::new("/workspace");
        assert_eq!(
            classify("https://example.com/a?b=c", workdir).unwrap(),
            OpenTarget::Uri("https://example.com/a?b=c".into())
        );
        assert_eq!(classify("mailto:a@b.c", workdir).unwrap(), OpenTarget::Uri("mailto:a@b.c".into()));
        assert_eq!(classify("file:///tmp/x.txt", workdir).unwrap(), OpenTarget::Path("/tmp/x.txt".into()));
        assert_eq!(classify("/etc/hosts", workdir).unwrap(), OpenTarget::Path("/etc/hosts".into()));
        assert_eq!(classify("notes/a.txt", workdir).unwrap(), OpenTarget::Path("/workspace/notes/a.txt".into()));
        assert_eq!(classify("a:b.txt", workdir).unwrap(), OpenTarget::Path("/workspace/a:b.txt".into()));
        assert!(classify(" ", workdir).is_err());
        assert!(classify("file://host/x", workdir).is_err());
    }
}
