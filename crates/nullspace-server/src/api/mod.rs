//! The HTTP/WebSocket API: authentication, translation of requests into control calls, and the relay of
//! sandbox-scoped routes to the guest. Handlers only parse and translate; decisions live in `control`.

mod auth;
mod error;
mod health;
mod lifecycle;
mod ports;
mod relay;
mod router;
mod sandboxes;
mod signed_files;
mod snapshots;
mod templates;
mod websocket;

pub use error::ApiError;
pub use router::{router, AppState};
