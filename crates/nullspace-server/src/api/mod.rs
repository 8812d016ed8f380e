//! The HTTP/WebSocket API: authentication, translation of requests into control calls, and the relay of
//! sandbox-scoped routes to the guest. Handlers only parse and translate; decisions live in `control`.

mod auth;
mod code;
mod desktop;
mod desktop_bridge;
mod desktop_stream;
mod desktop_viewer;
mod error;
mod extract;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guest_service;
mod health;
mod lifecycle;
pub mod limits;
mod monitor;
mod openapi;
mod ports;
mod preview_urls;
mod proxy;
mod relay;
mod router;
mod routes;
mod sandboxes;
mod signed_files;
mod snapshots;
mod template_blobs;
mod template_builds;
mod templates;
mod upstream;
mod viewer_assets;
mod volume_files;
mod volumes;
mod warm_pools;
mod webhooks;
mod websocket;

pub use desktop_viewer::DesktopViewer;
pub use error::ApiError;
pub use limits::{parse_rate_limit, RateLimit, RequestSettings};
pub use router::{router, AppState};
pub use upstream::UpstreamPool;
pub use viewer_assets::novnc_dir;
