//! PTY wire types: the REST session objects (`GET /pty`, `POST /pty/{id}/resize`) and the messages of
//! the WebSocket PTY channel (`pty_start`, `pty_connect`, `pty_input`, `pty_resize`, `pty_kill` in;
//! `pty_started`, `pty_output`, `pty_exited`, `error` out).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One PTY session as `GET /pty` and `GET /pty/{session_id}` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtySessionInfo {
    /// Session id (`ses_…`).
    pub session_id: String,
    /// Pid of the session's shell.
    pub pid: u32,
    /// Terminal width.
    pub cols: u16,
    /// Terminal height.
    pub rows: u16,
}

/// Body of `POST /pty/{session_id}/resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyResizeRequest {
    /// New width (≥ 1).
    pub cols: u16,
    /// New height (≥ 1).
    pub rows: u16,
}

/// `pty_start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PtyStart {
    /// Request id, echoed on replies.
    pub id: String,
    /// Width (default 120).
    pub cols: Option<u16>,
    /// Height (default 30).
    pub rows: Option<u16>,
    /// Working directory (the sandbox cwd when absent).
    pub cwd: Option<String>,
    /// Extra environment.
    pub envs: Option<BTreeMap<String, String>>,
}

/// `pty_connect`: exactly one of `session_id` and `pid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PtyConnect {
    /// Request id.
    pub id: String,
    /// Session to attach to.
    pub session_id: Option<String>,
    /// Or the pid of its shell.
    pub pid: Option<u32>,
}

/// `pty_input`: `data` (text) or `data_base64` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PtyInput {
    /// Request id.
    pub id: String,
    /// Target session.
    pub session_id: String,
    /// Text typed verbatim.
    pub data: Option<String>,
    /// Bytes typed verbatim, base64-encoded.
    pub data_base64: Option<String>,
}

/// `pty_resize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PtyResize {
    /// Request id.
    pub id: String,
    /// Target session.
    pub session_id: String,
    /// New width.
    pub cols: u16,
    /// New height.
    pub rows: u16,
}

/// `pty_kill`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PtyKill {
    /// Request id.
    pub id: String,
    /// Target session.
    pub session_id: String,
}

/// Messages the PTY channel sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PtyServerMessage {
    /// The session runs (always the first reply to `pty_start` / `pty_connect`).
    PtyStarted {
        /// Request id.
        id: String,
        /// Session id.
        session_id: String,
        /// Shell pid.
        pid: u32,
        /// Width.
        cols: u16,
        /// Height.
        rows: u16,
    },
    /// Terminal output.
    PtyOutput {
        /// Request id.
        id: String,
        /// The bytes as lossy UTF-8.
        data: String,
        /// The exact bytes, base64-encoded.
        data_base64: String,
    },
    /// The shell exited (after its trailing output).
    PtyExited {
        /// Request id.
        id: String,
        /// Exit code (128 + signal when killed).
        exit_code: i32,
    },
    /// A request failed.
    Error {
        /// Request id, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// What failed and what to do.
        message: String,
        /// Stable error code.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_is_tagged_and_flat() {
        let message =
            PtyServerMessage::PtyStarted { id: "p".into(), session_id: "ses_1".into(), pid: 7, cols: 80, rows: 24 };
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            serde_json::json!({"type": "pty_started", "id": "p", "session_id": "ses_1", "pid": 7, "cols": 80, "rows": 24})
        );
    }
}
