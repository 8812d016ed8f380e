//! File shapes of the public API beyond single-path requests: listing, name and content search,
//! replace, batch write and the raw `/file` query. Shapes follow the official client exactly.

use serde::{Deserialize, Serialize};

use crate::files_api::FileInfo;

/// Query of `GET /v1/sandboxes/{id}/files` (listing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Directory to list (`/` when absent).
    pub path: Option<String>,
    /// 1 = direct children only, 2 = also grandchildren, … (1 when absent).
    pub depth: Option<u32>,
    /// User (relative paths resolve against its home when the sandbox has no explicit cwd).
    pub user: Option<String>,
}

/// Query of `GET`/`PUT /v1/sandboxes/{id}/file` (raw bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RawFileQuery {
    /// Path of the file.
    pub path: String,
    /// User.
    pub user: Option<String>,
}

/// Body of `POST files/find` (content grep) and `POST files/search` (name glob).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PatternRequest {
    /// Directory to search recursively (or a single file for `find`).
    pub path: String,
    /// Literal text (`find`) or glob such as `*.py` (`search`).
    pub pattern: String,
    /// User.
    pub user: Option<String>,
}

/// One match of `POST files/find` (strict: exactly these keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Absolute path of the file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The matching line without its line break.
    pub content: String,
}

/// Body of `POST files/replace`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplaceRequest {
    /// Files to edit.
    pub files: Vec<String>,
    /// Literal text to replace (every occurrence).
    pub pattern: String,
    /// Replacement text.
    pub replacement: String,
    /// Count only, change nothing.
    pub dry_run: Option<bool>,
    /// User.
    pub user: Option<String>,
}

/// Answer of `POST files/replace` (same shape as the volume variant; the client reads `replacements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceResult {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Occurrences replaced (or that would be).
    pub replacements: u64,
    /// Files whose content changed (or would).
    pub files_modified: u64,
    /// Files without any occurrence.
    pub files_skipped: u64,
    /// Files left alone because they look binary.
    pub binary_files_skipped: u64,
}

/// Part `manifest` of `POST files/batch-write` (multipart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchManifest {
    /// Target paths and the multipart field holding each one's bytes, in order.
    pub files: Vec<BatchManifestEntry>,
    /// User.
    pub user: Option<String>,
}

/// One entry of a [`BatchManifest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchManifestEntry {
    /// Target path.
    pub path: String,
    /// Multipart field name (`file0`, `file1`, …).
    pub field: String,
}

/// Answer of `POST files/batch-write`: one result per manifest entry, in order (HTTP 200 even on
/// partial failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWriteResponse {
    /// Results in manifest order.
    pub results: Vec<BatchWriteResult>,
}

/// Outcome of one file of a batch write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWriteResult {
    /// `success` or `error`.
    pub status: String,
    /// The path as given in the manifest.
    pub path: String,
    /// Metadata of the written file (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<FileInfo>,
    /// What failed (failure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_and_requests_accept_nulls() {
        let query: ListQuery = serde_json::from_str(r#"{"path":"/w","depth":null}"#).unwrap();
        assert_eq!(query.depth, None);
        let replace: ReplaceRequest =
            serde_json::from_str(r#"{"files":["/a"],"pattern":"x","replacement":"y","user":null}"#).unwrap();
        assert_eq!(replace.dry_run, None);
    }

    #[test]
    fn batch_failure_omits_info() {
        let result =
            BatchWriteResult { status: "error".into(), path: "/proc/x".into(), info: None, error: Some("no".into()) };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({"status": "error", "path": "/proc/x", "error": "no"})
        );
    }
}
