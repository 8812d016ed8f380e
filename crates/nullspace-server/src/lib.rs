//! Control plane of Nullspace: the HTTP/WebSocket API, authentication, the store, the sandbox state
//! machine, the reaper, and startup. Flow: `api` → `control` → `nullspace_node`.
#![warn(missing_docs)]

mod api;
mod app;
mod clock;
mod control;
mod error;
mod ids;
mod metrics;
mod preview;
mod rfb_filter;
mod serve;
mod signing;
mod store;

/// The parsers of untrusted input, for the fuzz targets in `fuzz/` (feature `fuzzing` only).
#[cfg(feature = "fuzzing")]
pub use api::fuzzing;
pub use api::{parse_rate_limit, RateLimit, RequestSettings};
pub use app::{
    create_api_key, run, tenant_limits, ServerOptions, TenantReport, BOOTSTRAP_KEY_ENV, DEFAULT_TENANT, GUESTD_ENV,
};
pub use control::capacity::CapacitySettings;
pub use control::webhook_targets::TargetPolicy;
pub use error::{error_chain, ServerError};
pub use nullspace_node::images::RegistryConfig;
pub use serve::HttpLimits;
pub use store::{LimitsUpdate, TenantLimits, TenantUsage};
