//! File shapes of the public API under `/v1/sandboxes/{id}/files` and `/v1/sandboxes/{id}/file`.
//!
//! Every JSON request carries `user` (explicit `null` when unset); `null` means absent on the server side.

use serde::{Deserialize, Serialize};

/// Kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// Regular file (or anything that is neither a directory nor a symlink).
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
}

/// `FileInfo` (strict on the client side: only these keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Base name.
    pub name: String,
    /// Absolute, resolved path.
    pub path: String,
    /// Whether it is a directory (equals `type == "dir"`).
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Entry kind.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Four-digit octal mode, e.g. `0640`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `ls`-style permissions, e.g. `rw-r-----`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// Owner user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owner group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Last modification (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_time: Option<String>,
    /// Target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// Encoding of file content in JSON bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    /// UTF-8 text (lossy on read).
    #[default]
    Utf8,
    /// Base64 of the raw bytes.
    Base64,
}

/// Body of `files/info`, `files/exists`, `files/remove` and `files/mkdir`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathRequest {
    /// Absolute or cwd-relative path.
    pub path: String,
    /// User the operation runs as (`null`: default user).
    pub user: Option<String>,
}

/// Body of `POST files/read`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadFileRequest {
    /// Path to read.
    pub path: String,
    /// Encoding of the answer (`utf8` when absent).
    pub encoding: Option<FileEncoding>,
    /// User.
    pub user: Option<String>,
}

/// Answer of `POST files/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    /// The content in the requested encoding.
    pub content: String,
}

/// Body of `POST files/write`; answered with [`FileInfo`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteFileRequest {
    /// Path to write (parents are created).
    pub path: String,
    /// Content in `encoding`.
    pub content: String,
    /// Encoding of `content` (`utf8` when absent).
    pub encoding: Option<FileEncoding>,
    /// User.
    pub user: Option<String>,
}

/// Answer of `POST files/exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistsResponse {
    /// Whether the path exists.
    pub exists: bool,
}

/// Body of `POST files/rename`; answered with the [`FileInfo`] of the new path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenameRequest {
    /// Current path.
    pub old_path: String,
    /// New path.
    pub new_path: String,
    /// User.
    pub user: Option<String>,
}

/// Body of `POST files/permissions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionsRequest {
    /// Path to change.
    pub path: String,
    /// Octal mode, e.g. `0640`.
    pub permissions: String,
    /// User.
    pub user: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_info_omits_unset_optionals_and_renames_type() {
        let info = FileInfo {
            name: "a.txt".into(),
            path: "/workspace/a.txt".into(),
            is_dir: false,
            size: 3,
            file_type: Some(FileType::File),
            mode: Some("0644".into()),
            permissions: None,
            owner: None,
            group: None,
            modified_time: None,
            symlink_target: None,
        };
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            serde_json::json!({"name":"a.txt","path":"/workspace/a.txt","is_dir":false,"size":3,"type":"file","mode":"0644"})
        );
    }

    #[test]
    fn requests_send_explicit_null_user() {
        let body = serde_json::to_value(PathRequest { path: "/x".into(), user: None }).unwrap();
        assert_eq!(body, serde_json::json!({"path": "/x", "user": null}));
        let read: ReadFileRequest = serde_json::from_str(r#"{"path":"/x","encoding":null,"user":null}"#).unwrap();
        assert_eq!(read.encoding, None);
    }
}
