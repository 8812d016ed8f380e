//! Wire types and error codes of the Nullspace protocol, shared by the server, the Rust client, the CLI
//! and the guest daemon. Shapes follow the official Python client `nullspace-sdk` 0.1.9 exactly.
#![warn(missing_docs)]

pub mod error;
pub mod guest;
pub mod sandbox;

pub use error::{ErrorBody, ErrorCode};
