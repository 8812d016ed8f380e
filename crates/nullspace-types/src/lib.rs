//! Wire types and error codes of the Nullspace protocol, shared by the server, the Rust client, the CLI
//! and the guest daemon. Shapes follow the official Python client `nullspace-sdk` 0.1.9 exactly.
#![warn(missing_docs)]

pub mod code_api;
pub mod desktop_api;
pub mod error;
pub mod exec_api;
pub mod files_api;
pub mod files_ops_api;
pub mod guest;
pub mod lifecycle;
pub mod pty_api;
pub mod rel_path;
pub mod sandbox;
pub mod template_api;
pub mod template_wire;
pub mod upload_api;
pub mod volume;
pub mod watch_api;

pub use error::{ErrorBody, ErrorCode};
