//! Resumable upload sessions (rest.md §4a, sandbox variant): parts staged on disk under a hidden
//! staging directory, verified, then published atomically as one file or extracted from a tar.

pub mod complete;
pub mod error;
pub mod extract;
pub mod parts;
pub mod publish;
pub mod reader;
pub mod record;
pub mod store;
