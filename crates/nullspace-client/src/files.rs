//! The files API of a sandbox or of a volume through one handle, [`Files`]: both serve the same routes
//! under their own prefix (`/v1/sandboxes/{id}/files…`, `/v1/volumes/{vid}/files…`). Read, write, list,
//! info, exists, mkdir, remove, rename, chmod, content and name search, replace, and signed URLs.
//! Streamed transfers live in `transfer`, file watches in `watch`.

use base64::Engine;
use nullspace_types::files_api::{ExistsResponse, FileContent, FileEncoding, FileInfo};
use nullspace_types::files_ops_api::{ReplaceResult, SearchMatch};
use reqwest::{Method, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{segment, Client};
use crate::error::ClientError;

/// Whose files a [`Files`] handle reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesOwner {
    /// A running sandbox: JSON bodies carry `user` (null), raw bytes go through `GET`/`PUT …/file`.
    Sandbox,
    /// A volume: no `user` key at all, raw bytes go through signed URLs (there is no `…/file` route).
    Volume,
}

/// Files of one sandbox or volume. Cheap to create: `client.sandbox_files(id)`, `client.volume_files(vid)`.
#[derive(Debug, Clone)]
pub struct Files<'a> {
    pub(crate) client: &'a Client,
    /// `/v1/sandboxes/{id}` or `/v1/volumes/{vid}` (segment encoded).
    pub(crate) prefix: String,
    pub(crate) owner: FilesOwner,
}

/// Answer of `POST files/upload-url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUrl {
    /// Where to `PUT` the raw bytes (or `POST` a multipart `file` field), without the API key.
    pub url: String,
    /// The signed token inside the URL.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Deserialize)]
struct UrlAnswer {
    url: String,
}

impl Client {
    /// The files of sandbox `id`.
    pub fn sandbox_files(&self, id: &str) -> Files<'_> {
        Files { client: self, prefix: format!("/v1/sandboxes/{}", segment(id)), owner: FilesOwner::Sandbox }
    }

    /// The files of volume `volume_id` (a `vol_…` id; resolve names with [`Client::resolve_volume`]).
    pub fn volume_files(&self, volume_id: &str) -> Files<'_> {
        Files { client: self, prefix: format!("/v1/volumes/{}", segment(volume_id)), owner: FilesOwner::Volume }
    }
}

impl Files<'_> {
    /// Whose files these are.
    pub fn owner(&self) -> FilesOwner {
        self.owner
    }

    /// `POST files/read` as UTF-8 text (lossy).
    pub async fn read_text(&self, path: &str) -> Result<String, ClientError> {
        let body = self.post("/files/read", json!({"path": path, "encoding": FileEncoding::Utf8}))?;
        Ok(self.client.send_json::<FileContent>(body).await?.content)
    }

    /// The exact bytes: `GET …/file` on a sandbox, the signed download URL on a volume.
    pub async fn read_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let builder = match self.owner {
            FilesOwner::Sandbox => self.client.request(Method::GET, &self.route("/file"))?.query(&[("path", path)]),
            FilesOwner::Volume => {
                let url = self.download_url(path, false).await?;
                self.client.request_url(Method::GET, &url)
            }
        };
        Ok(self.client.send_bytes(builder).await?.1)
    }

    /// `POST files/write` with UTF-8 text.
    pub async fn write_text(&self, path: &str, content: &str) -> Result<FileInfo, ClientError> {
        let body = json!({"path": path, "content": content, "encoding": FileEncoding::Utf8});
        self.client.send_json(self.post("/files/write", body)?).await
    }

    /// `POST files/write` with arbitrary bytes (sent as base64).
    pub async fn write_bytes(&self, path: &str, content: &[u8]) -> Result<FileInfo, ClientError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
        let body = json!({"path": path, "content": encoded, "encoding": FileEncoding::Base64});
        self.client.send_json(self.post("/files/write", body)?).await
    }

    /// `GET files?path=&depth=`: the entries below `path`.
    pub async fn list(&self, path: &str, depth: Option<u32>) -> Result<Vec<FileInfo>, ClientError> {
        let mut query = vec![("path", path.to_owned())];
        if let Some(depth) = depth {
            query.push(("depth", depth.to_string()));
        }
        let builder = self.client.request(Method::GET, &self.route("/files"))?.query(&query);
        self.client.send_json(builder).await
    }

    /// `POST files/info`.
    pub async fn info(&self, path: &str) -> Result<FileInfo, ClientError> {
        self.client.send_json(self.post("/files/info", json!({"path": path}))?).await
    }

    /// `POST files/exists`.
    pub async fn exists(&self, path: &str) -> Result<bool, ClientError> {
        let builder = self.post("/files/exists", json!({"path": path}))?;
        Ok(self.client.send_json::<ExistsResponse>(builder).await?.exists)
    }

    /// `POST files/mkdir` (with parents; fine if it exists).
    pub async fn make_dir(&self, path: &str) -> Result<(), ClientError> {
        self.client.send_empty(self.post("/files/mkdir", json!({"path": path}))?).await
    }

    /// `POST files/remove` (recursive for directories).
    pub async fn remove(&self, path: &str) -> Result<(), ClientError> {
        self.client.send_empty(self.post("/files/remove", json!({"path": path}))?).await
    }

    /// `POST files/rename`; returns the info of the new path.
    pub async fn rename(&self, old_path: &str, new_path: &str) -> Result<FileInfo, ClientError> {
        let body = json!({"old_path": old_path, "new_path": new_path});
        self.client.send_json(self.post("/files/rename", body)?).await
    }

    /// `POST files/permissions` with an octal mode such as `0644`.
    pub async fn chmod(&self, path: &str, mode: &str) -> Result<(), ClientError> {
        let body = json!({"path": path, "permissions": mode});
        self.client.send_empty(self.post("/files/permissions", body)?).await
    }

    /// `POST files/find`: lines containing `pattern` in the files below `path`.
    pub async fn find(&self, path: &str, pattern: &str) -> Result<Vec<SearchMatch>, ClientError> {
        let body = json!({"path": path, "pattern": pattern});
        self.client.send_json(self.post("/files/find", body)?).await
    }

    /// `POST files/search`: absolute paths below `path` whose name matches the glob `pattern`.
    pub async fn search(&self, path: &str, pattern: &str) -> Result<Vec<String>, ClientError> {
        let body = json!({"path": path, "pattern": pattern});
        self.client.send_json(self.post("/files/search", body)?).await
    }

    /// `POST files/replace`: every occurrence of `pattern` in `files` (nothing written when `dry_run`).
    pub async fn replace(
        &self,
        files: &[String],
        pattern: &str,
        replacement: &str,
        dry_run: bool,
    ) -> Result<ReplaceResult, ClientError> {
        let body = json!({"files": files, "pattern": pattern, "replacement": replacement, "dry_run": dry_run});
        self.client.send_json(self.post("/files/replace", body)?).await
    }

    /// `POST files/download-url`: a URL that serves the file (or, with `archive`, a tar of the directory)
    /// without the API key.
    pub async fn download_url(&self, path: &str, archive: bool) -> Result<String, ClientError> {
        let mut body = json!({"path": path});
        if archive {
            body["archive_format"] = json!("tar");
        }
        Ok(self.client.send_json::<UrlAnswer>(self.post("/files/download-url", body)?).await?.url)
    }

    /// `POST files/upload-url`: a URL that accepts the file's bytes without the API key.
    pub async fn upload_url(&self, path: &str) -> Result<UploadUrl, ClientError> {
        self.client.send_json(self.post("/files/upload-url", json!({"path": path}))?).await
    }

    /// The absolute API path of `suffix` (which starts with `/`) under this owner.
    pub(crate) fn route(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// An authenticated `POST` of `body` to `suffix`, shaped for the owner (see [`FilesOwner`]).
    pub(crate) fn post(&self, suffix: &str, body: Value) -> Result<RequestBuilder, ClientError> {
        Ok(self.client.request(Method::POST, &self.route(suffix))?.json(&self.body(body)))
    }

    /// Sandbox bodies carry `"user": null`; volume bodies carry no `user` key.
    fn body(&self, mut body: Value) -> Value {
        if let Some(object) = body.as_object_mut() {
            match self.owner {
                FilesOwner::Sandbox => {
                    object.entry("user").or_insert(Value::Null);
                }
                FilesOwner::Volume => {
                    object.remove("user");
                }
            }
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientConfig;

    fn client() -> Client {
        Client::new(ClientConfig::new("http://127.0.0.1:9/api", Some("k".into()))).unwrap()
    }

    #[test]
    fn one_handle_serves_both_prefixes() {
        let client = client();
        assert_eq!(client.sandbox_files("sb_1").route("/files/read"), "/v1/sandboxes/sb_1/files/read");
        assert_eq!(client.volume_files("vol 1").route("/files"), "/v1/volumes/vol%201/files");
    }

    #[test]
    fn only_sandbox_bodies_carry_a_user() {
        let client = client();
        let sandbox = client.sandbox_files("sb_1").body(json!({"path": "/a"}));
        assert_eq!(sandbox, json!({"path": "/a", "user": null}));
        let volume = client.volume_files("vol_1").body(json!({"path": "/a", "user": null}));
        assert_eq!(volume, json!({"path": "/a"}));
    }
}
