//! Template build logs: the log line types the engine writes, and [`BuildLog`], which numbers each entry
//! (offsets from 0 per build), stamps it, redacts build secrets and build-env values from its message,
//! persists it in order and wakes the streams following the build.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use crate::clock;
use crate::store::Store;

/// `kind` of a log entry.
#[allow(dead_code)] // some kinds only the build engine writes
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
#[allow(dead_code)] // some levels only the build engine writes
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

#[allow(dead_code)] // constructors for the build engine
impl LogLine {
    /// A line of `kind` at `level`.
    pub fn new(kind: LogKind, level: LogLevel, message: impl Into<String>) -> Self {
        Self { kind, level, message: message.into(), phase: None, step_index: None, total_steps: None, cache: None }
    }

    /// A warning.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(LogKind::Warning, LogLevel::Warn, message)
    }

    /// A debug message.
    pub fn debug(message: impl Into<String>) -> Self {
        Self::new(LogKind::Message, LogLevel::Debug, message)
    }

    /// A cache decision.
    pub fn cache(message: impl Into<String>, note: CacheNote) -> Self {
        Self { cache: Some(note), ..Self::new(LogKind::Cache, LogLevel::Info, message) }
    }

    /// The same line in phase `phase`.
    pub fn in_phase(mut self, phase: impl Into<String>) -> Self {
        self.phase = Some(phase.into());
        self
    }

    /// The same line about step `index` of `total`.
    pub fn at_step(mut self, index: usize, total: usize) -> Self {
        self.step_index = Some(index);
        self.total_steps = Some(total);
        self
    }

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

/// The log of one build. Cheap to clone; every clone appends to the same log.
#[derive(Clone)]
pub struct BuildLog {
    inner: Arc<LogInner>,
}

struct LogInner {
    build_id: String,
    template_id: String,
    /// Values replaced by `***` in messages, longest first.
    redact: Vec<String>,
    /// Offset the next entry gets.
    next: Mutex<u64>,
    /// To the writer task (`None`: a detached log that keeps nothing).
    sink: Option<mpsc::UnboundedSender<(u64, String)>>,
    /// How many entries are persisted (the next offset readers can expect). Shared with the writer task
    /// only: the task ends (and followers see the log close) once every clone of the log is gone.
    written: Arc<watch::Sender<u64>>,
    /// Cache decisions so far, as `cache_summary` counters (`layer_hits`, …).
    cache: Mutex<BTreeMap<String, u64>>,
}

impl Default for BuildLog {
    /// A detached log (tests of the engine): lines are numbered and dropped.
    fn default() -> Self {
        Self::detached("tb_detached", "tmpl_detached")
    }
}

impl BuildLog {
    /// The log of build `build_id` (producing `template_id`) whose next entry is `next_offset`; entries are
    /// written to `store` in order by a task of its own. `secrets` are redacted from every message.
    pub fn open(store: Store, build_id: &str, template_id: &str, next_offset: u64, secrets: Vec<String>) -> Self {
        let (sink, mut entries) = mpsc::unbounded_channel::<(u64, String)>();
        let log = Self::build(build_id, template_id, next_offset, secrets, Some(sink));
        let written = log.inner.written.clone();
        let build = build_id.to_owned();
        tokio::spawn(async move {
            while let Some((offset, entry)) = entries.recv().await {
                if let Err(error) = store.insert_build_log(&build, offset, &entry).await {
                    tracing::error!(build_id = %build, offset, error = %crate::error_chain(&error), "storing a build log entry failed");
                }
                written.send_replace(offset + 1);
            }
        });
        log
    }

    /// A log that stores nothing.
    pub fn detached(build_id: &str, template_id: &str) -> Self {
        Self::build(build_id, template_id, 0, Vec::new(), None)
    }

    fn build(
        build_id: &str,
        template_id: &str,
        next_offset: u64,
        mut secrets: Vec<String>,
        sink: Option<mpsc::UnboundedSender<(u64, String)>>,
    ) -> Self {
        secrets.retain(|secret| !secret.is_empty());
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Self {
            inner: Arc::new(LogInner {
                build_id: build_id.to_owned(),
                template_id: template_id.to_owned(),
                redact: secrets,
                next: Mutex::new(next_offset),
                sink,
                written: Arc::new(watch::channel(next_offset).0),
                cache: Mutex::default(),
            }),
        }
    }

    /// Appends a line.
    pub fn line(&self, line: LogLine) {
        self.entry(line, Map::new());
    }

    /// Appends a line with extra fields (`error_detail`, `result`, `attempt`, …); returns its offset.
    pub fn entry(&self, line: LogLine, extra: Map<String, Value>) -> u64 {
        let mut next = self.inner.next.lock().unwrap_or_else(|p| p.into_inner());
        let offset = *next;
        *next += 1;
        let mut entry = json!({
            "build_id": self.inner.build_id,
            "template_id": self.inner.template_id,
            "offset": offset,
            "timestamp": clock::now_rfc3339(),
            "kind": line.kind,
            "level": line.level,
            "message": self.redact(&line.message),
        });
        let fields = entry.as_object_mut().expect("an object");
        let optional = [
            ("phase", line.phase.map(Value::from)),
            ("step_index", line.step_index.map(Value::from)),
            ("total_steps", line.total_steps.map(Value::from)),
        ];
        for (key, value) in optional.into_iter().filter_map(|(key, value)| Some((key, value?))) {
            fields.insert(key.to_owned(), value);
        }
        if let Some(cache) = line.cache {
            let counter = match cache.status {
                "hit" => "hits",
                "miss" => "misses",
                "bypass" => "bypasses",
                _ => "stores",
            };
            *self
                .inner
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(format!("{}_{counter}", cache.kind))
                .or_default() += 1;
            fields.insert("cache_kind".into(), cache.kind.into());
            fields.insert("cache_status".into(), cache.status.into());
            if let Some(reason) = cache.reason {
                fields.insert("cache_reason".into(), reason.into());
            }
            if let Some(subject) = cache.subject {
                fields.insert("cache_subject".into(), self.redact(&subject).into());
            }
        }
        fields.extend(extra);
        match &self.inner.sink {
            // Sent under the lock, so the writer receives entries in offset order.
            Some(sink) if sink.send((offset, entry.to_string())).is_ok() => {}
            _ => {
                self.inner.written.send_replace(offset + 1);
            }
        }
        offset
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.inner.redact.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
    }

    /// Waits until every entry appended so far is persisted.
    pub async fn flush(&self) {
        let target = *self.inner.next.lock().unwrap_or_else(|p| p.into_inner());
        let mut written = self.inner.written.subscribe();
        let _ = written.wait_for(|count| *count >= target).await;
    }

    /// Changes whenever entries are persisted (its value: how many).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.written.subscribe()
    }

    /// Cache counters of the lines so far (`cache_summary`).
    pub fn cache_summary(&self) -> BTreeMap<String, u64> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Build id.
    pub fn build_id(&self) -> &str {
        &self.inner.build_id
    }
}

/// The values a build must never show: every build secret and every build-env value longer than three
/// characters (shorter ones would blank out ordinary words).
pub fn secret_values(request: &nullspace_types::template_api::BuildRequest) -> Vec<String> {
    request
        .build_secrets
        .iter()
        .map(|secret| secret.value.clone())
        .chain(request.build_envs.values().filter(|value| value.chars().count() > 3).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_numbered_redacted_and_persisted_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let log = BuildLog::open(
            store.clone(),
            "tb_1",
            "tmpl_1",
            0,
            vec!["hunter22".into(), "hunter2".into(), String::new()],
        );
        let mut follower = log.subscribe();
        log.line(LogLine::new(LogKind::Start, LogLevel::Info, "start"));
        log.line(LogLine::info("token hunter22 and hunter2").in_phase("build_step").at_step(0, 2));
        log.line(LogLine::cache(
            "cache hit",
            CacheNote { kind: "layer", status: "hit", reason: None, subject: Some("l".into()) },
        ));
        log.flush().await;
        assert_eq!(*follower.borrow_and_update(), 3);
        let entries = store.build_logs("tb_1", 0).await.unwrap();
        assert_eq!(entries.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(), [0, 1, 2]);
        let second: Value = serde_json::from_str(&entries[1].1).unwrap();
        assert_eq!(second["message"], "token *** and ***");
        assert_eq!(second["step_index"], 0);
        assert_eq!(second["total_steps"], 2);
        assert_eq!(second["phase"], "build_step");
        assert_eq!(second["kind"], "message");
        assert_eq!(second["template_id"], "tmpl_1");
        let third: Value = serde_json::from_str(&entries[2].1).unwrap();
        assert_eq!((third["cache_kind"].as_str(), third["cache_status"].as_str()), (Some("layer"), Some("hit")));
        assert!(third.get("cache_reason").is_none());
        assert_eq!(log.cache_summary(), BTreeMap::from([("layer_hits".to_owned(), 1)]));
        assert_eq!(store.build_logs("tb_1", 2).await.unwrap().len(), 1);
        assert!(store.build_logs("tb_1", 3).await.unwrap().is_empty());

        // Once every clone of the log is gone its writer ends, and followers see the log close.
        drop(log);
        assert!(follower.changed().await.is_err(), "the log closed");

        // A log reopened after a restart continues at the next offset.
        let reopened = BuildLog::open(store.clone(), "tb_1", "tmpl_1", 3, Vec::new());
        reopened.line(LogLine::info("again"));
        reopened.flush().await;
        assert_eq!(store.next_build_log_offset("tb_1").await.unwrap(), 4);
    }

    #[test]
    fn short_build_env_values_stay_and_secrets_go() {
        let request: nullspace_types::template_api::BuildRequest = serde_json::from_value(json!({
            "build_envs": {"A": "abc", "B": "longer-value"},
            "build_secrets": [{"id": "S", "value": "s3"}]
        }))
        .unwrap();
        let mut values = secret_values(&request);
        values.sort();
        assert_eq!(values, ["longer-value", "s3"]);
    }
}
