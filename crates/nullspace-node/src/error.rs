//! Errors of the node: each variant names the operation that failed and the sandbox it concerns.

use std::path::PathBuf;

use nullspace_runtime::RuntimeError;

use crate::template::TemplateError;

/// A node operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The requested template is not built on this node.
    #[error("template {template} is not available on this node")]
    UnknownTemplate {
        /// Template name as requested.
        template: String,
    },
    /// A layer of the sandbox's root is gone from the host (its template was deleted and collected, or
    /// the data dir was tampered with).
    #[error("sandbox {sandbox_id}: layer {} of its root filesystem is missing; rebuild its template", layer.display())]
    LayerMissing {
        /// Sandbox id.
        sandbox_id: String,
        /// The missing directory.
        layer: PathBuf,
    },
    /// The layer store failed.
    #[error("layer store")]
    Layers(#[source] nullspace_image::ImageError),
    /// Preparing the template layer failed.
    #[error("preparing template failed")]
    Template(#[from] TemplateError),
    /// A volume could not be mounted into the sandbox.
    #[error("mounting a volume into sandbox {sandbox_id} failed")]
    Volume {
        /// Sandbox id.
        sandbox_id: String,
        /// Cause.
        #[source]
        source: crate::VolumeError,
    },
    /// The sandbox's disk (the filesystem holding its writes) could not be made, mounted or unmounted.
    #[error("the disk of sandbox {sandbox_id} failed")]
    Disk {
        /// Sandbox id.
        sandbox_id: String,
        /// Cause.
        #[source]
        source: crate::volume_image::ImageError,
    },
    /// A directory or file of the sandbox could not be prepared or removed.
    #[error("filesystem operation on {path} for sandbox {sandbox_id} failed")]
    Filesystem {
        /// Sandbox id.
        sandbox_id: String,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The host cannot run sandboxes with their own user namespace (`nullspace doctor` says why).
    #[error(
        "this host cannot give sandboxes their own user namespace ({reason}); sandboxes would run as the \
         host's root. Fix the host (see `nullspace doctor`) or start the server with --allow-host-root"
    )]
    UsernsUnavailable {
        /// What the probe found.
        reason: String,
    },
    /// Preparing a sandbox's user namespace or its idmapped mounts failed.
    #[error("preparing the user namespace of sandbox {sandbox_id} failed: {operation}")]
    Userns {
        /// Sandbox id.
        sandbox_id: String,
        /// What was being done.
        operation: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store of id ranges failed or has no free range.
    #[error("sandbox {sandbox_id}: {message}")]
    IdRange {
        /// Sandbox id.
        sandbox_id: String,
        /// What went wrong.
        message: String,
    },
    /// Mounting or unmounting the overlay root failed.
    #[error("overlay {operation} for sandbox {sandbox_id} failed")]
    Overlay {
        /// `mount` or `unmount`.
        operation: &'static str,
        /// Sandbox id.
        sandbox_id: String,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// No isolation runtime works on this host.
    #[error("no usable isolation runtime; run `nullspace doctor` to see why")]
    SelectRuntime(#[source] RuntimeError),
    /// Setting up or tearing down a sandbox network failed.
    #[error("sandbox networking failed")]
    Network(#[source] crate::network::NetworkError),
    /// The isolation runtime failed.
    #[error("runtime operation for sandbox {sandbox_id} failed")]
    Runtime {
        /// Sandbox id.
        sandbox_id: String,
        /// Cause.
        #[source]
        source: RuntimeError,
    },
    /// The runtime cannot change the mounts of a running sandbox.
    #[error("the {runtime} runtime cannot mount volumes into running sandbox {sandbox_id}; pass them in `volumes` when creating the sandbox")]
    LiveMountsUnsupported {
        /// Sandbox id.
        sandbox_id: String,
        /// Runtime name.
        runtime: String,
    },
    /// The sandbox's processes are gone (it stopped or is being torn down).
    #[error("sandbox {sandbox_id} is not running")]
    NotRunning {
        /// Sandbox id.
        sandbox_id: String,
    },
    /// The mount point inside the sandbox cannot be used (a symlink or a file on the way, ...).
    #[error("the mount point in sandbox {sandbox_id} cannot be used")]
    MountPoint {
        /// Sandbox id.
        sandbox_id: String,
        /// What the runtime reported.
        #[source]
        source: RuntimeError,
    },
    /// The guest daemon did not become ready in time.
    #[error("guest of sandbox {sandbox_id} did not become ready within {waited_ms} ms (see {log})")]
    GuestNotReady {
        /// Sandbox id.
        sandbox_id: String,
        /// How long the node waited.
        waited_ms: u64,
        /// Init log of the sandbox.
        log: PathBuf,
    },
    /// The guest did not close its socket for a memory checkpoint in time (it was asked to listen again).
    #[error("guest of sandbox {sandbox_id} did not quiesce for a checkpoint within {waited_ms} ms")]
    GuestQuiesce {
        /// Sandbox id.
        sandbox_id: String,
        /// How long the node waited.
        waited_ms: u64,
    },
    /// The guest answered with another protocol version.
    #[error("guest of sandbox {sandbox_id} speaks protocol {found}, node expects {expected}")]
    GuestProtocol {
        /// Sandbox id.
        sandbox_id: String,
        /// Version the guest reported.
        found: u32,
        /// Version this node speaks.
        expected: u32,
    },
    /// Talking to the guest daemon failed.
    #[error("request to the guest of sandbox {sandbox_id} failed")]
    GuestRequest {
        /// Sandbox id.
        sandbox_id: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The guest daemon binary is dynamically linked, so it cannot run in every root filesystem.
    #[error("guest daemon binary {path} is dynamically linked; build the static one with `scripts/build.sh`")]
    GuestBinaryDynamic {
        /// The binary.
        path: PathBuf,
    },
    /// The guest daemon binary was not found.
    #[error("guest daemon binary not found at {path}; build it with `cargo build --release -p nullspace-guest` or set NULLSPACE_GUESTD")]
    GuestBinaryMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
}
