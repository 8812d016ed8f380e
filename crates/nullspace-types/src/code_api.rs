//! Code-interpreter shapes of the public API (`/v1/sandboxes/{id}/code/…`, rest.md §8): execute requests
//! and their SSE events (websocket.md §6a), contexts, runs and artifacts. The gateway inside a
//! code-interpreter sandbox serves them; the server relays them untouched.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Body of `POST …/code/execute`. Unknown fields are ignored; `null` means absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecuteRequest {
    /// The code to run.
    pub code: String,
    /// Language of the default context to run in (python when neither this nor `context_id` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The context to run in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// Environment variables visible to this execution only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub envs: BTreeMap<String, String>,
    /// Seconds before the execution is interrupted and ends with a `TimeoutError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// Body of `POST …/code/contexts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateContextRequest {
    /// Working directory of the context's kernel (`/workspace` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Language of the context's kernel (python when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A code context: one kernel whose state persists between executions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeContext {
    /// `ctx_…`.
    pub id: String,
    /// Canonical language name (`python`, `javascript`, `typescript`, `r`, `java`, `bash`).
    pub language: String,
    /// Working directory of the kernel.
    pub cwd: String,
}

/// One event of the execute stream (each is one `data: {json}` line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecutionEvent {
    /// Text the code wrote to stdout.
    Stdout(OutputText),
    /// Text the code wrote to stderr.
    Stderr(OutputText),
    /// A rich result (display or the cell's value).
    Result(Box<ExecutionResult>),
    /// An image the code displayed, stored as an artifact.
    Artifact {
        /// The stored artifact.
        artifact: Artifact,
    },
    /// The execution failed.
    Error(ExecutionError),
    /// The kernel's execution counter for this execution.
    NumberOfExecutions {
        /// The counter.
        execution_count: i64,
    },
}

/// A chunk of stdout or stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputText {
    /// The text, as the kernel sent it.
    pub text: String,
    /// Milliseconds since the Unix epoch when the gateway received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A rich result: one MIME bundle of the kernel, by representation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `text/html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// `text/markdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    /// `image/svg+xml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    /// `image/png`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub png: Option<String>,
    /// `image/jpeg`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg: Option<String>,
    /// `application/pdf`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<String>,
    /// `text/latex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latex: Option<String>,
    /// `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// `application/javascript`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub javascript: Option<String>,
    /// Every other MIME type of the bundle, by MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, Value>>,
    /// A chart extracted from a matplotlib figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    /// Whether this is the value of the cell (`execute_result`) rather than a display.
    #[serde(default)]
    pub is_main_result: bool,
}

/// A chart: `type` is `bar`, `line`, `pie`, `scatter` or `box_and_whisker`; `elements` follow the type
/// (bar/pie `{label, value, group}`, line `{x, y, group}`, scatter `{x, y, label, group}`, box
/// `{label, min, q1, median, q3, max, group}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// The chart type.
    #[serde(rename = "type")]
    pub chart_type: String,
    /// Title of the axes (or figure).
    #[serde(default)]
    pub title: String,
    /// Label of the x axis.
    #[serde(default)]
    pub x_label: String,
    /// Label of the y axis.
    #[serde(default)]
    pub y_label: String,
    /// Unit of the x axis, from its label (`Time (s)` → `s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_unit: Option<String>,
    /// Unit of the y axis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_unit: Option<String>,
    /// The data points.
    #[serde(default)]
    pub elements: Vec<Value>,
}

/// An execution's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionError {
    /// Exception class (`ValueError`, `TimeoutError`, …).
    pub name: String,
    /// Its message.
    pub value: String,
    /// The traceback, lines joined with newlines.
    #[serde(default)]
    pub traceback: String,
}

/// A stored output of an execution (every displayed image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `art_…`.
    pub id: String,
    /// The context that produced it.
    pub context_id: String,
    /// `image`.
    pub kind: String,
    /// `image/png`, `image/jpeg` or `image/svg+xml`.
    pub mime_type: String,
    /// File name (`figure-3-1.png`).
    pub name: String,
    /// Size of the bytes.
    pub size_bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// RFC 3339.
    pub created_at: String,
    /// The kernel's execution counter when it was displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_count: Option<i64>,
}

/// Query of `GET …/code/artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListArtifactsQuery {
    /// Only artifacts of this context.
    pub context_id: Option<String>,
    /// Only artifacts of this execution count.
    pub execution_count: Option<i64>,
    /// Only artifacts of this kind.
    pub kind: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a list answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Cursor of the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `POST …/code/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateRunRequest {
    /// The code to run.
    pub code: String,
    /// The context to run it in.
    pub context_id: String,
    /// Environment variables visible to this run only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "null_as_default")]
    pub envs: BTreeMap<String, String>,
    /// Seconds before the run is interrupted (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// Query of `GET …/code/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListRunsQuery {
    /// Only runs in this status.
    pub status: Option<String>,
    /// Only runs of this context.
    pub context_id: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A queued code run and, once finished, its execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeRun {
    /// `run_…`.
    pub id: String,
    /// The sandbox the gateway runs in (empty when it was not told).
    pub sandbox_id: String,
    /// The context it runs in.
    pub context_id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Seconds before the run is interrupted.
    pub timeout_secs: u64,
    /// RFC 3339.
    pub created_at: String,
    /// When the gateway forgets the run (RFC 3339).
    pub expires_at: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<String>,
    /// What the run produced (once it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<RunExecution>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// Everything one execution produced, collected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunExecution {
    /// Rich results in order.
    pub results: Vec<ExecutionResult>,
    /// Stored artifacts in order.
    pub artifacts: Vec<Artifact>,
    /// Text output.
    pub logs: Logs,
    /// The failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    /// The kernel's execution counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_count: Option<i64>,
}

/// Text output of an execution, in chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// Chunks written to stdout.
    pub stdout: Vec<String>,
    /// Chunks written to stderr.
    pub stderr: Vec<String>,
}

impl RunExecution {
    /// Adds one event of the execute stream to the collected execution.
    pub fn absorb(&mut self, event: &ExecutionEvent) {
        match event {
            ExecutionEvent::Stdout(out) => self.logs.stdout.push(out.text.clone()),
            ExecutionEvent::Stderr(out) => self.logs.stderr.push(out.text.clone()),
            ExecutionEvent::Result(result) => self.results.push((**result).clone()),
            ExecutionEvent::Artifact { artifact } => self.artifacts.push(artifact.clone()),
            ExecutionEvent::Error(error) => self.error = Some(error.clone()),
            ExecutionEvent::NumberOfExecutions { execution_count } => self.execution_count = Some(*execution_count),
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_type_like_the_client_reads_them() {
        let event = ExecutionEvent::Stdout(OutputText { text: "hi\n".into(), timestamp: Some(1) });
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "stdout", "text": "hi\n", "timestamp": 1})
        );
        let count = ExecutionEvent::NumberOfExecutions { execution_count: 3 };
        assert_eq!(
            serde_json::to_value(&count).unwrap(),
            serde_json::json!({"type": "number_of_executions", "execution_count": 3})
        );
        let result = ExecutionEvent::Result(Box::new(ExecutionResult {
            text: Some("2".into()),
            is_main_result: true,
            ..Default::default()
        }));
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({"type": "result", "text": "2", "is_main_result": true})
        );
    }

    #[test]
    fn requests_take_null_envs_as_empty() {
        let request: ExecuteRequest = serde_json::from_str(r#"{"code": "1", "envs": null, "timeout": null}"#).unwrap();
        assert!(request.envs.is_empty() && request.timeout.is_none());
    }

    #[test]
    fn collected_executions_keep_the_last_error_and_every_chunk() {
        let mut execution = RunExecution::default();
        execution.absorb(&ExecutionEvent::Stdout(OutputText { text: "a".into(), timestamp: None }));
        execution.absorb(&ExecutionEvent::Error(ExecutionError {
            name: "E".into(),
            value: "v".into(),
            traceback: String::new(),
        }));
        execution.absorb(&ExecutionEvent::NumberOfExecutions { execution_count: 2 });
        assert_eq!(execution.logs.stdout, ["a"]);
        assert_eq!(execution.error.unwrap().name, "E");
        assert_eq!(execution.execution_count, Some(2));
    }
}
