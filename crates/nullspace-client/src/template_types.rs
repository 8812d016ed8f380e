//! What the template and warm-pool routes answer with, as the client reads it: lenient structs with the
//! fields the CLI uses, every other field kept in `extra` so `--json` prints the server's object whole.
//! Shapes follow the official client's `template.py` and `template_warm_pool.py`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a build log (`LogEntry`): the SSE events of a build and the `entries` of a status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildLogEntry {
    /// `tb_…`.
    pub build_id: String,
    /// `tmpl_…` the build produces.
    pub template_id: String,
    /// Position in the build's log (unique, increasing).
    pub offset: u64,
    /// RFC 3339.
    pub timestamp: String,
    /// `start`, `message`, `cache`, `retry`, `warning`, `error`, `cancelled` or `end`.
    pub kind: String,
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The line.
    pub message: String,
    /// Build phase (`prepare`, `build_step`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Step the entry belongs to (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_index: Option<u64>,
    /// Steps of the build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// Why the build failed (`kind: error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<FailureDetail>,
    /// The template built (`kind: end`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildLogEntry {
    /// Whether this entry ends the build (`end`, `error` or `cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind.as_str(), "end" | "error" | "cancelled")
    }
}

/// Why a build failed (`TemplateFailureDetail`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureDetail {
    /// Stable code (`build_error`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// Phase that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Step that failed (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_index: Option<u64>,
    /// Build id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A build (`BuildData`): the answer of a background build and the `build` of a status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildInfo {
    /// `tb_…`.
    pub build_id: String,
    /// `tmpl_…`.
    pub template_id: String,
    /// Template name.
    pub name: String,
    /// Tags the build assigns.
    pub tags: Vec<String>,
    /// `waiting`, `building`, `ready`, `error` or `cancelled`.
    pub status: String,
    /// `<namespace>/<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_ref: Option<String>,
    /// Failure message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failure detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<FailureDetail>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BuildInfo {
    /// Whether the build is over (`ready`, `error`, `cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "ready" | "error" | "cancelled")
    }
}

/// `GET /v1/templates/builds/{id}?offset=N` and the answer of a cancel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildStatus {
    /// The build.
    pub build: BuildInfo,
    /// Log entries at or after the requested offset.
    pub entries: Vec<BuildLogEntry>,
    /// Offset to ask for next.
    pub next_offset: u64,
}

/// One tag of a template (`GET …/tags`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagInfo {
    /// The tag.
    pub tag: String,
    /// Build the tag points at.
    pub build_id: String,
    /// When the tag moved there.
    pub created_at: String,
}

/// One alias of a template (`GET …/aliases`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AliasInfo {
    /// The alias.
    pub alias_ref: String,
    /// When it was made.
    pub created_at: String,
}

/// A reserved template name (`POST /v1/templates/claims`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NameClaim {
    /// Token that releases the claim.
    pub claim_token: String,
    /// `<namespace>/<name>`.
    pub canonical_ref: String,
    /// When the claim lapses.
    pub expires_at: String,
}

/// A template namespace (`GET /v1/templates/namespaces/{slug}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceInfo {
    /// Slug.
    pub slug: String,
    /// `system`, `user` or `deployment`.
    pub kind: String,
    /// Whether it is the caller's own.
    pub is_default: bool,
}

/// A page of a template's builds (`GET /v1/templates/refs/{ref}/builds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildPage {
    /// Builds, newest first.
    pub builds: Vec<BuildInfo>,
    /// Cursor of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What `POST /v1/templates/validate` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidateResult {
    /// No errors.
    pub valid: bool,
    /// What is wrong.
    pub errors: Vec<ValidateIssue>,
    /// What may be wrong.
    pub warnings: Vec<String>,
}

/// One error of a validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValidateIssue {
    /// Stable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// Where (`preflight`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// One entry of a blob preflight (`POST /v1/templates/blobs/preflight`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreflightFile {
    /// Path in the build context.
    pub path: String,
    /// `file` or `dir`.
    pub entry_type: String,
    /// Octal mode, e.g. `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Hex sha256 of a file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Upload even if the server holds the blob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_upload: Option<bool>,
}

/// One answer of the preflight, in the order asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreflightAnswer {
    /// Path in the build context.
    pub path: String,
    /// `file` or `dir`.
    pub entry_type: String,
    /// Blob the build request names (files only).
    pub blob_id: Option<String>,
    /// Whether the client must upload the content.
    pub missing: bool,
}

/// Ready/warming counts of a warm pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmPoolCounts {
    /// Ready instances wanted.
    pub target: u64,
    /// Ready now.
    pub ready: u64,
    /// Starting.
    pub warming: u64,
    /// Handed out.
    pub claimed: u64,
    /// Every other count, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A template warm pool (`/v1/template-warm-pools…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmPoolInfo {
    /// `twp_…` (older servers call it `warm_pool_id`, see [`WarmPoolInfo::with_legacy_names`]).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Template the pool keeps ready (older servers: `template`).
    pub template_ref: String,
    /// `enabled`, `disabled`, `draining` or `deleted`.
    pub state: String,
    /// Ready instances to keep.
    pub min_ready: u64,
    /// Most ready or warming instances.
    pub max_ready: u64,
    /// Counts.
    pub status: WarmPoolCounts,
    /// Why the pool cannot fill, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WarmPoolInfo {
    /// Fills `id` and `template_ref` from the older names `warm_pool_id` and `template` when absent.
    pub fn with_legacy_names(mut self) -> Self {
        let text = |extra: &Map<String, Value>, key: &str| extra.get(key).and_then(Value::as_str).map(str::to_owned);
        if self.id.is_empty() {
            self.id = text(&self.extra, "warm_pool_id").unwrap_or_default();
        }
        if self.template_ref.is_empty() {
            self.template_ref = text(&self.extra, "template").unwrap_or_default();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_keep_unknown_fields_for_json_output() {
        let text = r#"{"build_id":"tb_1","template_id":"tmpl_1","offset":3,"timestamp":"t","kind":"message",
            "level":"info","message":"step 2/4: RUN x","step_index":1,"total_steps":4,"cache_status":"miss"}"#;
        let entry: BuildLogEntry = serde_json::from_str(text).unwrap();
        assert_eq!((entry.offset, entry.step_index, entry.total_steps), (3, Some(1), Some(4)));
        assert!(!entry.is_terminal());
        let back = serde_json::to_value(&entry).unwrap();
        assert_eq!(back["cache_status"], "miss");
        assert!(back.get("error_detail").is_none());
    }

    #[test]
    fn warm_pools_accept_the_legacy_names() {
        let pool: WarmPoolInfo =
            serde_json::from_str(r#"{"warm_pool_id":"twp_1","template":"base","status":{"ready":1,"target":2}}"#)
                .unwrap();
        let pool = pool.with_legacy_names();
        assert_eq!((pool.id.as_str(), pool.template_ref.as_str()), ("twp_1", "base"));
        assert_eq!((pool.status.ready, pool.status.target), (1, 2));
        let both: WarmPoolInfo = serde_json::from_str(r#"{"id":"twp_2","warm_pool_id":"twp_2"}"#).unwrap();
        assert_eq!(both.with_legacy_names().id, "twp_2");
    }
}
