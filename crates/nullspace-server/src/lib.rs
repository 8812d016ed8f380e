//! Control plane: API routes, auth, store, sandbox state machine, reaper.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `nullspace server`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (store, templates, sandboxes).
    pub data_dir: PathBuf,
    /// `auto`, `runc`, `crun` or `runsc`.
    pub runtime: String,
}

/// Errors of the server's entry points.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Placeholder until the server lands.
    #[error("not yet implemented")]
    Unimplemented,
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(_options: ServerOptions) -> Result<(), ServerError> {
    Err(ServerError::Unimplemented)
}

/// Creates a new API key for `tenant` (created if missing) in the store under `data_dir`; returns the key.
pub async fn create_api_key(_data_dir: &std::path::Path, _tenant: &str) -> Result<String, ServerError> {
    Err(ServerError::Unimplemented)
}
