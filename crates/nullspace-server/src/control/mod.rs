//! The control plane's core: the sandbox state machine and the service that drives sandboxes through it
//! (create, destroy, timeouts, the reaper and the reconcile at start).

mod auto_resume;
mod build_context;
mod build_dockerfile;
mod build_plan;
pub mod build_runner;
mod build_step;
pub mod builtin_pools;
pub mod builtin_recipes;
pub mod capacity;
pub mod create_fields;
pub mod desktop;
pub mod desktop_streams;
pub mod disk_limits;
mod error;
mod events;
mod guest_watch;
pub mod preview_grants;
pub mod quotas;
mod reaper;
mod reconcile;
mod sandbox_create;
mod service;
mod snapshots;
mod state;
mod template_base;
pub mod template_blobs;
pub mod template_builds;
pub mod template_jobs;
pub mod template_manage;
pub mod template_refs;
mod template_start;
pub mod template_validate;
pub mod validate;
mod volume_attachments;
pub mod volumes;
pub mod warm_pool_claims;
pub mod warm_pools;
pub mod webhook_targets;
pub mod webhooks;

pub use error::ControlError;
pub use reaper::spawn_reaper;
#[cfg(feature = "fuzzing")]
pub(crate) use sandbox_create::network_policy;
pub use service::{Control, CreateParams};
pub use state::SandboxState;
#[cfg(feature = "fuzzing")]
pub(crate) use volumes::validate_name as validate_volume_name;
pub use warm_pool_claims::spawn_warm_pool_refiller;
pub use webhooks::spawn_webhook_worker;
