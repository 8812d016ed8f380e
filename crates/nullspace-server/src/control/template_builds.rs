//! Template builds as records: (to be written by the templates API work) their status, their log
//! entries with offsets, subscriptions to new entries, cancellation and the reconcile at start.
//! For now only the log line types the engine writes.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// `kind` of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// First entry.
    Start,
    /// Progress.
    Message,
    /// A cache decision.
    Cache,
    /// A retried operation.
    Retry,
    /// Something the user should know.
    Warning,
    /// Terminal failure.
    Error,
    /// Terminal cancellation.
    Cancelled,
    /// Terminal success.
    End,
}

/// `level` of a log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Progress.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// A cache decision of one step (`cache_kind`, `cache_status`, `cache_reason`, `cache_subject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheNote {
    /// `file_blob`, `layer` or `final_artifact`.
    pub kind: &'static str,
    /// `hit`, `miss`, `stored` or `bypass`.
    pub status: &'static str,
    /// `whole_build_skip_cache`, `builder_cache_boundary`, `force_upload`, `missing_or_incompatible`.
    pub reason: Option<&'static str>,
    /// What was looked up (a layer id, a step).
    pub subject: Option<String>,
}

/// One line the engine writes; the build log adds ids, offset and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Kind.
    pub kind: LogKind,
    /// Level.
    pub level: LogLevel,
    /// Text (secrets are redacted by the log).
    pub message: String,
    /// Phase, e.g. `base`, `step`.
    pub phase: Option<String>,
    /// 0-based step index.
    pub step_index: Option<usize>,
    /// Number of steps.
    pub total_steps: Option<usize>,
    /// Cache decision, on `cache` entries.
    pub cache: Option<CacheNote>,
}

impl LogLine {
    /// An info message.
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: LogKind::Message,
            level: LogLevel::Info,
            message: message.into(),
            phase: None,
            step_index: None,
            total_steps: None,
            cache: None,
        }
    }
}

/// The log of one build.
#[derive(Clone, Default)]
pub struct BuildLog {
    lines: Arc<Mutex<Vec<LogLine>>>,
}

impl BuildLog {
    /// Appends a line.
    pub fn line(&self, line: LogLine) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}
