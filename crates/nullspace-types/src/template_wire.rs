//! Template wire types the server answers with: `TemplateInfo`, builds (`BuildData`, `BuildSummary`,
//! the status snapshot), log entries, failure details, tags, aliases, claims, namespaces, blob preflight,
//! validate and plan answers. Shapes follow the official client's `template.py` (optional fields are
//! left out rather than sent as null; integers are integers, timestamps RFC 3339).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One template (`GET /v1/templates`, `GET /v1/templates/refs/{ref}`, a build's `result`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// Template id (`base` for the builtin, `tmpl_…` for built ones).
    pub id: String,
    /// Name.
    pub name: String,
    /// What it contains.
    pub description: String,
    /// Tags pointing at this template, sorted.
    pub tags: Vec<String>,
    /// `default` when the template holds the default tag.
    pub default_tag: Option<String>,
    /// Whether it ships with the server.
    pub builtin: bool,
    /// `<namespace>/<name>` (`nullspace/<name>` for builtins).
    pub canonical_ref: Option<String>,
    /// Namespace slug.
    pub namespace_slug: Option<String>,
    /// `private` or `public` (`public` for builtins).
    pub visibility: Option<String>,
    /// Defaults of the template's sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_defaults: Option<RuntimeDefaults>,
}

/// Defaults of a template's sandboxes as the protocol shows them (env values stay hidden).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeDefaults {
    /// Names of the default environment variables.
    pub default_env_keys: Vec<String>,
    /// Command run at sandbox start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_cmd: Option<String>,
    /// User processes run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_user: Option<String>,
    /// Working directory of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_workdir: Option<String>,
    /// Readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<serde_json::Value>,
}

/// Status of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Queued.
    Waiting,
    /// Running.
    Building,
    /// Produced its template.
    Ready,
    /// Failed.
    Error,
    /// Cancelled.
    Cancelled,
}

impl BuildStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [Self::Waiting, Self::Building, Self::Ready, Self::Error, Self::Cancelled];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire string.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the build is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ready | Self::Error | Self::Cancelled)
    }
}

/// Why a build failed (`TemplateFailureDetail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureDetail {
    /// Stable code (`build_error`, `file_upload_error`, …).
    pub code: String,
    /// What happened.
    pub message: String,
    /// `auth`, `preflight`, `blob_upload`, `prepare`, `build_step`, `readiness`, `snapshot`, `finalize`,
    /// `interrupted`.
    pub phase: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// What to do.
    pub suggested_action: String,
    /// Failing step (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<u64>,
    /// Build id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Structured details (`{"reason": "unknown_blob", …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// A build (`BuildData`; `BuildSummary` is the same object in lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildData {
    /// `tb_…`.
    pub build_id: String,
    /// `tmpl_…` the build produces.
    pub template_id: String,
    /// Template name.
    pub name: String,
    /// Tags the build assigns.
    pub tags: Vec<String>,
    /// Status.
    pub status: BuildStatus,
    /// `native`.
    pub build_backend: String,
    /// `declarative`, `dockerfile`, `oci_import` or `template_base`.
    pub source_type: String,
    /// Digest of the request's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// Digest of the build context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_digest: Option<String>,
    /// Digest of the Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_digest: Option<String>,
    /// When it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// `finished_at - started_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Phase that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_phase: Option<String>,
    /// Resources of the build sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_config: Option<serde_json::Value>,
    /// Cache counters.
    pub cache_summary: BTreeMap<String, u64>,
    /// Layer ids of the result.
    pub artifact_ids: Vec<String>,
    /// Defaults of the result's sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_defaults: Option<RuntimeDefaults>,
    /// Image metadata of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_metadata: Option<serde_json::Value>,
    /// Failure message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failure detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<FailureDetail>,
    /// The build this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of_build_id: Option<String>,
    /// When a cancel was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<String>,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_by: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// `<namespace>/<name>`.
    pub canonical_ref: String,
    /// Namespace slug.
    pub namespace_slug: String,
    /// `private` or `public`.
    pub visibility: String,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// `GET /v1/templates/builds/{id}?offset=N`, and the answer of cancel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildStatusSnapshot {
    /// The build.
    pub build: BuildData,
    /// Entries at or after the requested offset.
    pub entries: Vec<serde_json::Value>,
    /// Offset to poll next.
    pub next_offset: u64,
}

/// `GET /v1/templates/{id}/builds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildList {
    /// Builds, newest first.
    pub builds: Vec<BuildData>,
    /// Cursor of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One tag of a template name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagInfo {
    /// Tag.
    pub tag: String,
    /// Build that produced the tagged template.
    pub build_id: String,
    /// When the tag moved here.
    pub created_at: String,
}

/// One alias of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasInfo {
    /// The alias.
    pub alias_ref: String,
    /// Created.
    pub created_at: String,
}

/// A reserved name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameClaim {
    /// Token releasing the claim.
    pub claim_token: String,
    /// `<namespace>/<name>`.
    pub canonical_ref: String,
    /// When the claim lapses.
    pub expires_at: String,
}

/// A template namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// Slug.
    pub slug: String,
    /// `system` or `user`.
    pub kind: String,
    /// Whether it is the caller's own.
    pub is_default: bool,
}

/// One file of `POST /v1/templates/blobs/preflight`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreflightFile {
    /// Context path.
    pub path: String,
    /// `file` or `dir`.
    pub entry_type: String,
    /// Octal mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Hex sha256 of the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Upload even if the server holds the blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_upload: Option<bool>,
}

/// Body of the preflight.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreflightRequest {
    /// Files and directories.
    pub files: Vec<PreflightFile>,
}

/// One answer of the preflight (same order as asked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightAnswer {
    /// Context path.
    pub path: String,
    /// `file` or `dir`.
    pub entry_type: String,
    /// Blob to reference (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_id: Option<String>,
    /// Whether the client must upload it.
    pub missing: bool,
    /// Octal mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Answer of the preflight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightResponse {
    /// Same length and order as asked.
    pub files: Vec<PreflightAnswer>,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// Stable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// `POST /v1/templates/validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateResponse {
    /// No errors.
    pub valid: bool,
    /// Errors.
    pub errors: Vec<ValidationIssue>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// `context_manifest` of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextManifest {
    /// Id of the manifest (its digest).
    pub context_manifest_id: String,
    /// Digest of the context.
    pub context_digest: String,
    /// Files in the context.
    pub file_count: u64,
}

/// `POST /v1/templates/plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanResponse {
    /// `native`.
    pub build_backend: String,
    /// Source type.
    pub source_type: String,
    /// Digest of the source.
    pub source_digest: String,
    /// The context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_manifest: Option<ContextManifest>,
    /// Digest of the Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_digest: Option<String>,
    /// The steps as the engine will run them.
    pub build_plan: serde_json::Value,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Whether the base image needs credentials.
    pub requires_base_image_auth: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_optional_fields_are_left_out() {
        for status in BuildStatus::ALL {
            assert_eq!(BuildStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(BuildStatus::parse("done"), None);
        let detail = FailureDetail {
            code: "build_error".into(),
            message: "m".into(),
            phase: "prepare".into(),
            retryable: false,
            suggested_action: "s".into(),
            step_index: None,
            build_id: None,
            details: None,
        };
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 5, "{json}");
    }
}
