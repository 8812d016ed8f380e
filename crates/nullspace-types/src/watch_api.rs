//! Messages of the file-watch WebSocket channel (`/v1/sandboxes/{id}/ws`, type `file_watch`).

use serde::{Deserialize, Serialize};

/// Client → server: start watching a directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileWatchRequest {
    /// Watch id (`watch_<n>`), echoed on every reply.
    pub id: String,
    /// Directory to watch (relative paths resolve like the files API).
    pub path: String,
    /// User (`null` on volumes).
    pub user: Option<String>,
    /// Whether nested directories are watched too.
    pub recursive: bool,
    /// Client-side timeout; the server never closes because of it.
    pub timeout_secs: Option<f64>,
}

/// Server → client messages of the watch channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchServerMessage {
    /// The watch is armed (handshake).
    FileWatchStarted {
        /// Watch id.
        id: String,
    },
    /// Something changed below the watched directory.
    FileEvent {
        /// Watch id.
        id: String,
        /// `create`, `write`, `remove`, `rename` or `chmod`.
        event: String,
        /// Path relative to the watched directory.
        name: String,
        /// Absolute path.
        path: String,
    },
    /// The watch failed; terminal.
    Error {
        /// Watch id.
        id: String,
        /// What went wrong.
        message: String,
    },
}
