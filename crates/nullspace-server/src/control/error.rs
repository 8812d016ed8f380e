//! Errors of the control plane.

use nullspace_node::NodeError;

use crate::store::StoreError;

/// A control-plane operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The sandbox does not exist for this tenant (or is gone).
    #[error("sandbox {sandbox_id} not found")]
    SandboxNotFound {
        /// Requested id.
        sandbox_id: String,
    },
    /// The snapshot does not exist for this tenant (or was deleted).
    #[error("snapshot {snapshot_id} not found")]
    SnapshotNotFound {
        /// Requested id.
        snapshot_id: String,
    },
    /// The template does not exist.
    #[error("template {template} not found; list templates with `GET /v1/templates`")]
    TemplateNotFound {
        /// Requested reference.
        template: String,
    },
    /// A built template's start command or readiness check failed; the new sandbox is gone.
    #[error("{message}; the sandbox was removed (check the template's start_cmd and readiness)")]
    TemplateStart {
        /// What failed.
        message: String,
    },
    /// The request is invalid.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No template name claim of that token for the tenant (expired, released, or another tenant's).
    #[error("no name claim {token:?}; claim a name with POST /v1/templates/claims")]
    ClaimNotFound {
        /// Requested token.
        token: String,
    },
    /// No warm pool of that id for the tenant.
    #[error("warm pool {pool_id} not found; list yours with `GET /v1/template-warm-pools`")]
    WarmPoolNotFound {
        /// Requested id.
        pool_id: String,
    },
    /// A create with `warm_pool.mode` `require` found no ready sandbox in time.
    #[error("warm pool {pool_id} has no ready sandbox: {reason}")]
    WarmPoolUnavailable {
        /// The pool.
        pool_id: String,
        /// Why (empty, disabled, template or settings do not match).
        reason: String,
    },
    /// The sandbox is not in a state that serves the request.
    #[error("sandbox {sandbox_id} is {state}, not running")]
    NotRunning {
        /// Sandbox id.
        sandbox_id: String,
        /// Its state.
        state: &'static str,
    },
    /// A paused sandbox with auto-resume was used and could not be resumed (it stays paused).
    #[error("sandbox {sandbox_id} is paused and resuming it for this request failed ({reason}); it stays paused: retry, or resume it explicitly")]
    ResumeFailed {
        /// Sandbox id.
        sandbox_id: String,
        /// Why.
        reason: String,
    },
    /// The request would take the tenant past one of its limits.
    #[error(transparent)]
    Quota(super::quotas::QuotaRefusal),
    /// The host has no room for the sandbox.
    #[error("the host has no capacity for another sandbox ({reason}); kill unused sandboxes or retry later")]
    Capacity {
        /// What ran out.
        reason: String,
    },
    /// Opening a preview forward failed.
    #[error("opening a preview port for port {port} of sandbox {sandbox_id} failed")]
    Preview {
        /// Sandbox id.
        sandbox_id: String,
        /// Port in the sandbox.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The volume does not exist for this tenant.
    #[error("volume {volume} not found; list volumes with `GET /v1/volumes`")]
    VolumeNotFound {
        /// Requested id or name.
        volume: String,
    },
    /// A volume with this name exists.
    #[error("a volume named {name:?} already exists; pick another name or use it")]
    VolumeConflict {
        /// Requested name.
        name: String,
    },
    /// The volume is mounted by live sandboxes.
    #[error("volume {volume_id} is mounted by {sandboxes}; detach it (DELETE /v1/sandboxes/{{id}}/volumes/{{attachment_id}}) or kill those sandboxes first")]
    VolumeBusy {
        /// Volume id.
        volume_id: String,
        /// Sandboxes mounting it.
        sandboxes: String,
    },
    /// A volume operation on the node failed (or a mount request is invalid).
    /// The sandbox has no such volume attachment.
    #[error("sandbox {sandbox_id} has no volume attachment {attachment_id}; list them with `GET /v1/sandboxes/{sandbox_id}/volumes`")]
    AttachmentNotFound {
        /// Sandbox id.
        sandbox_id: String,
        /// Attachment id as requested.
        attachment_id: String,
    },
    /// Another operation holds what this one needs.
    #[error("{what} is in progress; retry when it has finished")]
    Busy {
        /// What is in progress.
        what: String,
    },
    /// The template build does not exist for this tenant.
    #[error("template build {build_id} not found")]
    BuildNotFound {
        /// Requested id.
        build_id: String,
    },
    /// A template change conflicts with the current state (name taken, build not ready).
    #[error("{message}")]
    TemplateConflict {
        /// What conflicts and what to do.
        message: String,
    },
    #[error(transparent)]
    Volume(nullspace_node::VolumeError),
    /// The node failed.
    #[error("node operation failed")]
    Node(#[from] NodeError),
    /// The store failed.
    #[error("store operation failed")]
    Store(#[from] StoreError),
}
