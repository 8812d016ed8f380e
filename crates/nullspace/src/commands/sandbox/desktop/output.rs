//! Where screenshots and recordings go: stdout for `-` (refused on a terminal), else a temporary file
//! beside the target that replaces it only once the whole answer arrived, so a failed download leaves
//! neither a truncated file nor a clobbered old one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::io::AsyncWrite;

use crate::exit::UserError;

/// An open destination.
pub struct Sink {
    /// What the bytes are written to.
    pub writer: Box<dyn AsyncWrite + Unpin + Send>,
    /// The name of the destination in messages (`stdout` or the path).
    pub label: String,
    /// The temporary file and the path it becomes (none for stdout).
    file: Option<(tempfile::TempPath, PathBuf)>,
}

impl Sink {
    /// Opens `output` (`-` is stdout).
    pub fn open(output: &Path) -> anyhow::Result<Sink> {
        if output == Path::new("-") {
            if std::io::stdout().is_terminal() {
                return Err(UserError::new(
                    "refusing to write binary data to a terminal",
                    Some("save it to a file with --output FILE, or pipe stdout"),
                )
                .into());
            }
            return Ok(Sink { writer: Box::new(tokio::io::stdout()), label: "stdout".into(), file: None });
        }
        let parent = match output.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).with_context(|| format!("could not create {}", parent.display()))?;
        let temp = tempfile::Builder::new()
            .prefix(".nullspace-download-")
            .tempfile_in(&parent)
            .with_context(|| format!("could not create a file in {}", parent.display()))?;
        let (file, path) = temp.into_parts();
        Ok(Sink {
            writer: Box::new(tokio::fs::File::from_std(file)),
            label: output.display().to_string(),
            file: Some((path, output.to_path_buf())),
        })
    }

    /// Puts the finished file in place (readable like any new file); nothing to do for stdout.
    pub fn finish(self) -> anyhow::Result<Option<PathBuf>> {
        drop(self.writer);
        let Some((temp, target)) = self.file else { return Ok(None) };
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        std::fs::set_permissions(&temp, mode).with_context(|| format!("could not finish {}", target.display()))?;
        temp.persist(&target)
            .map_err(|error| error.error)
            .with_context(|| format!("could not write {}", target.display()))?;
        Ok(Some(target))
    }
}
