//! Isolation backends behind one trait. Today: `oci` (runc, crun, runsc) driven from an OCI bundle this
//! crate writes; later `microvm`. The node owns the rootfs and the directories; a runtime only turns a
//! [`SandboxSpec`] into an isolated, running init process and tears it down again.
#![warn(missing_docs)]

mod cgroup;
mod error;
mod features;
pub mod mountinfo;
mod oci;
mod probe;
mod spec;

pub use error::RuntimeError;
pub use features::Feature;
pub use oci::{ContainerInfo, OciRuntime, CGROUP_PARENT};
pub use probe::{choose_auto, probe, probe_all, select, Probe, RuntimeChoice};
pub use spec::{BindMount, Limits, RuntimeKind, SandboxSpec, UserNamespace};

/// Result alias of this crate.
pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// An isolation backend. Every method is idempotent where it can be, so a destroy or reconcile that is
/// interrupted and run again finishes the job.
#[allow(async_fn_in_trait)]
pub trait IsolationRuntime: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> RuntimeKind;
    /// Creates and starts the sandbox's init process; returns once it runs.
    fn start(&self, spec: &SandboxSpec) -> impl std::future::Future<Output = RuntimeResult<()>> + Send;
    /// Kills every process of the sandbox and deletes its container state and cgroup. Succeeds when the
    /// sandbox does not exist.
    fn destroy(&self, id: &str) -> impl std::future::Future<Output = RuntimeResult<()>> + Send;
    /// Ids of every sandbox this runtime currently knows (running or stopped), for the reconcile at start.
    fn list(&self) -> impl std::future::Future<Output = RuntimeResult<Vec<String>>> + Send;
}
