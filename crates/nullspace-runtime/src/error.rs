//! The one error type of this crate: each variant names the operation that failed, carries the sandbox
//! id it was for and either the io/serde source or the runtime's own (trimmed) stderr.

use std::path::PathBuf;

use crate::spec::RuntimeKind;

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Freezing or thawing the sandbox failed.
    #[error("{operation} of sandbox {id} failed: {stderr}")]
    Control {
        /// Sandbox id.
        id: String,
        /// Runtime verb.
        operation: &'static str,
        /// The runtime's error output.
        stderr: String,
    },
    /// The [`crate::SandboxSpec`] cannot be turned into a container (bad id, relative path, ...).
    #[error("invalid spec for sandbox {id}: {reason}")]
    InvalidSpec {
        /// Sandbox id.
        id: String,
        /// What is wrong, in words.
        reason: String,
    },
    /// Building the OCI runtime spec failed.
    #[error("building the oci spec of sandbox {id}")]
    BuildSpec {
        /// Sandbox id.
        id: String,
        /// The builder's error.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Writing a file of the bundle (config.json, log files) or the state root failed.
    #[error("writing bundle file {path} of sandbox {id}")]
    WriteBundle {
        /// Sandbox id.
        id: String,
        /// The file or directory.
        path: PathBuf,
        /// The io error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime binary could not be executed at all (missing, not executable).
    #[error("running {binary} for sandbox {id}")]
    Spawn {
        /// Sandbox id (empty for `list`).
        id: String,
        /// The binary we tried.
        binary: PathBuf,
        /// The io error.
        #[source]
        source: std::io::Error,
    },
    /// `<runtime> run` failed; `stderr` is the runtime's own message.
    #[error("starting sandbox {id}: {stderr}")]
    Start {
        /// Sandbox id.
        id: String,
        /// The runtime's error output, trimmed.
        stderr: String,
    },
    /// `runsc checkpoint` failed (the sandbox may have stopped); `stderr` is the runtime's own message.
    #[error("checkpointing sandbox {id}: {stderr}")]
    Checkpoint {
        /// Sandbox id.
        id: String,
        /// The runtime's error output, trimmed.
        stderr: String,
    },
    /// `runsc restore` failed; `stderr` is the runtime's own message.
    #[error("restoring sandbox {id}: {stderr}")]
    Restore {
        /// Sandbox id.
        id: String,
        /// The runtime's error output, trimmed.
        stderr: String,
    },
    /// `<runtime> delete --force` failed.
    #[error("deleting sandbox {id}: {stderr}")]
    Delete {
        /// Sandbox id.
        id: String,
        /// The runtime's error output, trimmed.
        stderr: String,
    },
    /// A runtime command did not finish in time (it was killed).
    #[error("{operation} of sandbox {id} timed out")]
    Timeout {
        /// Sandbox id (empty for `list`).
        id: String,
        /// The runtime command: start, kill, state, delete or list.
        operation: &'static str,
    },
    /// Removing a cgroup directory of the sandbox failed.
    #[error("removing cgroup {path} of sandbox {id}")]
    RemoveCgroup {
        /// Sandbox id.
        id: String,
        /// The cgroup directory.
        path: PathBuf,
        /// The io error.
        #[source]
        source: std::io::Error,
    },
    /// `<runtime> list` failed.
    #[error("listing containers under {root}: {stderr}")]
    List {
        /// The runtime's state root.
        root: PathBuf,
        /// The runtime's error output, trimmed.
        stderr: String,
    },
    /// `<runtime> list --format json` printed something we cannot read.
    #[error("parsing the container list under {root}")]
    ParseList {
        /// The runtime's state root.
        root: PathBuf,
        /// The json error.
        #[source]
        source: serde_json::Error,
    },
    /// The sandbox is not running, so nothing can be mounted into it or probed.
    #[error("sandbox {id} is not running")]
    NotRunning {
        /// Sandbox id.
        id: String,
    },
    /// This runtime cannot change the mounts of a running sandbox.
    #[error("{kind} cannot change the mounts of running sandbox {id}; mount it when the sandbox is created")]
    LiveMountsUnsupported {
        /// Sandbox id.
        id: String,
        /// The runtime.
        kind: RuntimeKind,
    },
    /// The mount point inside the sandbox cannot be used: a symlink or a file on the way, a read-only or
    /// full filesystem, ...
    #[error("{target} in sandbox {id} cannot be a mount point ({step})")]
    MountPoint {
        /// Sandbox id.
        id: String,
        /// Path inside the sandbox.
        target: String,
        /// What was being done.
        step: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// Mounting into, unmounting from or probing a running sandbox failed at `step`.
    #[error("{operation} at {target} in sandbox {id} failed while {step}")]
    LiveMount {
        /// Sandbox id.
        id: String,
        /// `mount`, `unmount` or `probe`.
        operation: &'static str,
        /// Path inside the sandbox.
        target: String,
        /// What was being done.
        step: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// `select` was asked for a runtime name it does not know.
    #[error("unknown runtime {requested:?} (expected auto, runc, crun or runsc)")]
    UnknownRuntime {
        /// What was asked for.
        requested: String,
    },
    /// `select` was asked for a runtime that does not work on this host.
    #[error("runtime {kind} does not work on this host: {reason}")]
    Unavailable {
        /// The runtime asked for.
        kind: RuntimeKind,
        /// Why its probe failed.
        reason: String,
    },
    /// `select("auto")` found no runtime that works.
    #[error("no isolation runtime works on this host ({reasons})")]
    NoneAvailable {
        /// Each probe's reason, joined.
        reasons: String,
    },
}
