//! Errors of building, caching and reading template layers.

use std::path::PathBuf;

/// What went wrong while preparing a template layer.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The embedded recipe could not be read; a packaging bug, not a host problem.
    #[error("template recipe `{name}` is invalid: {reason}")]
    Recipe {
        /// Template id.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A filesystem operation in the template store failed.
    #[error("template store: cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `create`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `mmdebstrap` could not be started.
    #[error(
        "cannot run mmdebstrap to build template `{name}`; install it (`apt-get install mmdebstrap`), \
         then restart the server or run `nullspace template rebuild {name}`"
    )]
    BuilderMissing {
        /// Template id.
        name: String,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },

    /// The build ran and failed. `log_tail` holds the last lines of its output; the full log is at `log`.
    #[error(
        "building template `{name}` failed ({status}); check network access to the Debian mirror (see \
         /etc/apt/sources.list*), then restart the server or run `nullspace template rebuild {name}`; \
         full log: {}; last lines:\n{log_tail}",
        log.display()
    )]
    Build {
        /// Template id.
        name: String,
        /// How mmdebstrap exited, e.g. `exit status: 1`.
        status: String,
        /// The last lines of the build output.
        log_tail: String,
        /// The full build log.
        log: PathBuf,
    },
}

impl TemplateError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}
