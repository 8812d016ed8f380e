//! Exec and process shapes of the public API: `POST …/exec`, `GET …/processes`, `GET …/processes/{pid}/logs`
//! and the messages of the exec WebSocket channel (`/v1/sandboxes/{id}/ws?channel=exec`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/sandboxes/{id}/exec`. `null` means absent; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecRequest {
    /// Program (argv\[0\]) or, with `shell`, a shell command line.
    pub command: String,
    /// Arguments after `command` (ignored with `shell`).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    /// Seconds before the command is killed (server default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Return `{pid}` at once instead of waiting for the exit.
    pub background: bool,
    /// Working directory (sandbox cwd when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub envs: BTreeMap<String, String>,
    /// Run `command` through `sh -c`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<bool>,
}

/// Answer of a foreground exec: the finished command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecResult {
    /// Exit code (non-zero is still HTTP 200).
    pub exit_code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Process id in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Answer of a background exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackgroundProcess {
    /// Process id in the sandbox.
    pub pid: u32,
}

/// One item of `GET /v1/sandboxes/{id}/processes` (strict: exactly these keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Full command line.
    pub command: String,
    /// Whether it still runs.
    pub running: bool,
}

/// Answer of `GET /v1/sandboxes/{id}/processes/{pid}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLogs {
    /// Everything written to stdout so far.
    pub stdout: String,
    /// Everything written to stderr so far.
    pub stderr: String,
    /// stdout and stderr interleaved in arrival order.
    pub output: String,
    /// Exit code, `null` while running.
    pub exit_code: Option<i32>,
}

/// Client → server messages of the exec WebSocket channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecClientMessage {
    /// Start a command and stream its output.
    ExecStart {
        /// Request id, echoed on every reply.
        id: String,
        /// Program or shell command line.
        command: String,
        /// Arguments (always present, may be empty).
        #[serde(default)]
        args: Vec<String>,
        /// Seconds before the command is killed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<u64>,
        /// Working directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        /// Extra environment variables.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        envs: Option<BTreeMap<String, String>>,
        /// Run `command` through `sh -c`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shell: Option<bool>,
    },
    /// Attach to a running process.
    ExecConnect {
        /// Request id.
        id: String,
        /// Process to attach to.
        pid: u32,
    },
}

/// Server → client messages of the exec WebSocket channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecServerMessage {
    /// The process runs; always the first reply.
    ExecStarted {
        /// Request id.
        id: String,
        /// Process id.
        pid: u32,
    },
    /// A chunk of stdout.
    ExecStdout {
        /// Request id.
        id: String,
        /// Output (UTF-8, lossy).
        data: String,
    },
    /// A chunk of stderr.
    ExecStderr {
        /// Request id.
        id: String,
        /// Output (UTF-8, lossy).
        data: String,
    },
    /// The process exited; terminal.
    ExecExit {
        /// Request id.
        id: String,
        /// Exit code.
        exit_code: i32,
    },
    /// The request failed; terminal.
    Error {
        /// Request id, when the error belongs to one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// Any other message type (ignored by clients).
    #[serde(other)]
    Unknown,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_request_accepts_explicit_nulls() {
        let body = r#"{"command":"ls","args":null,"cwd":null,"envs":null,"shell":null,"timeout_secs":30,"extra":1}"#;
        let request: ExecRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.command, "ls");
        assert!(request.args.is_empty() && request.envs.is_empty());
        assert_eq!(request.timeout_secs, Some(30));
    }

    #[test]
    fn exec_request_omits_unset_fields() {
        let request = ExecRequest { command: "true".into(), ..Default::default() };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"command": "true", "background": false})
        );
    }

    #[test]
    fn ws_messages_are_tagged_by_type() {
        let start = ExecClientMessage::ExecStart {
            id: "exec_1".into(),
            command: "sh".into(),
            args: vec!["-c".into(), "exit 3".into()],
            timeout_secs: None,
            cwd: None,
            envs: None,
            shell: None,
        };
        assert_eq!(
            serde_json::to_value(&start).unwrap(),
            serde_json::json!({"type": "exec_start", "id": "exec_1", "command": "sh", "args": ["-c", "exit 3"]})
        );
        let exit: ExecServerMessage =
            serde_json::from_str(r#"{"type":"exec_exit","id":"exec_1","exit_code":3}"#).unwrap();
        assert_eq!(exit, ExecServerMessage::ExecExit { id: "exec_1".into(), exit_code: 3 });
        let other: ExecServerMessage = serde_json::from_str(r#"{"type":"pong","id":"x"}"#).unwrap();
        assert_eq!(other, ExecServerMessage::Unknown);
    }
}
