//! Sandbox files: read, write (text, bytes, streamed from a local file), list, info, exists, mkdir,
//! remove, rename and chmod.

use std::path::Path;

use base64::Engine;
use nullspace_types::files_api::{
    ExistsResponse, FileContent, FileEncoding, FileInfo, PathRequest, PermissionsRequest, ReadFileRequest,
    RenameRequest, WriteFileRequest,
};
use reqwest::Method;
use tokio::io::AsyncReadExt;

use crate::client::{segment, Client};
use crate::error::ClientError;

/// Size of one chunk of a streamed upload.
const UPLOAD_CHUNK: usize = 64 * 1024;

impl Client {
    /// `POST files/read` as UTF-8 text (lossy).
    pub async fn read_file(&self, id: &str, path: &str) -> Result<String, ClientError> {
        let body = ReadFileRequest { path: path.to_owned(), encoding: Some(FileEncoding::Utf8), user: None };
        let builder = self.request(Method::POST, &files_path(id, "/read"))?.json(&body);
        Ok(self.send_json::<FileContent>(builder).await?.content)
    }

    /// `GET /file`: the exact bytes.
    pub async fn read_file_bytes(&self, id: &str, path: &str) -> Result<Vec<u8>, ClientError> {
        let builder = self.request(Method::GET, &file_path(id))?.query(&[("path", path)]);
        Ok(self.send_bytes(builder).await?.1)
    }

    /// `POST files/write` with UTF-8 text.
    pub async fn write_file(&self, id: &str, path: &str, content: &str) -> Result<FileInfo, ClientError> {
        self.write_encoded(id, path, content.to_owned(), FileEncoding::Utf8).await
    }

    /// `POST files/write` with arbitrary bytes (sent as base64).
    pub async fn write_file_bytes(&self, id: &str, path: &str, content: &[u8]) -> Result<FileInfo, ClientError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
        self.write_encoded(id, path, encoded, FileEncoding::Base64).await
    }

    /// `PUT /file` streaming `local` in chunks (no size limit of a JSON body), then `POST files/info`.
    pub async fn write_file_stream(&self, id: &str, path: &str, local: &Path) -> Result<FileInfo, ClientError> {
        let read_error = |source| ClientError::ReadLocal { path: local.display().to_string(), source };
        let file = tokio::fs::File::open(local).await.map_err(read_error)?;
        let stream = futures::stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; UPLOAD_CHUNK];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buffer.truncate(read);
            Ok(Some((buffer, file)))
        });
        let builder = self
            .request(Method::PUT, &file_path(id))?
            .query(&[("path", path)])
            .header("content-type", "application/octet-stream")
            .timeout(std::time::Duration::from_secs(300))
            .body(reqwest::Body::wrap_stream(stream));
        self.send_empty(builder).await?;
        self.file_info(id, path).await
    }

    /// `GET files?path=&depth=`: the entries below `path`.
    pub async fn list_files(&self, id: &str, path: &str, depth: Option<u32>) -> Result<Vec<FileInfo>, ClientError> {
        let mut query = vec![("path", path.to_owned())];
        if let Some(depth) = depth {
            query.push(("depth", depth.to_string()));
        }
        let builder = self.request(Method::GET, &files_path(id, ""))?.query(&query);
        self.send_json(builder).await
    }

    /// `POST files/info`.
    pub async fn file_info(&self, id: &str, path: &str) -> Result<FileInfo, ClientError> {
        let builder = self.request(Method::POST, &files_path(id, "/info"))?.json(&path_body(path));
        self.send_json(builder).await
    }

    /// `POST files/exists`.
    pub async fn file_exists(&self, id: &str, path: &str) -> Result<bool, ClientError> {
        let builder = self.request(Method::POST, &files_path(id, "/exists"))?.json(&path_body(path));
        Ok(self.send_json::<ExistsResponse>(builder).await?.exists)
    }

    /// `POST files/mkdir` (with parents; fine if it exists).
    pub async fn make_dir(&self, id: &str, path: &str) -> Result<(), ClientError> {
        let builder = self.request(Method::POST, &files_path(id, "/mkdir"))?.json(&path_body(path));
        self.send_empty(builder).await
    }

    /// `POST files/remove` (recursive for directories).
    pub async fn remove_file(&self, id: &str, path: &str) -> Result<(), ClientError> {
        let builder = self.request(Method::POST, &files_path(id, "/remove"))?.json(&path_body(path));
        self.send_empty(builder).await
    }

    /// `POST files/rename`; returns the info of the new path.
    pub async fn rename_file(&self, id: &str, old_path: &str, new_path: &str) -> Result<FileInfo, ClientError> {
        let body = RenameRequest { old_path: old_path.to_owned(), new_path: new_path.to_owned(), user: None };
        let builder = self.request(Method::POST, &files_path(id, "/rename"))?.json(&body);
        self.send_json(builder).await
    }

    /// `POST files/permissions` with an octal mode such as `0644`.
    pub async fn chmod(&self, id: &str, path: &str, mode: &str) -> Result<(), ClientError> {
        let body = PermissionsRequest { path: path.to_owned(), permissions: mode.to_owned(), user: None };
        let builder = self.request(Method::POST, &files_path(id, "/permissions"))?.json(&body);
        self.send_empty(builder).await
    }

    async fn write_encoded(
        &self,
        id: &str,
        path: &str,
        content: String,
        encoding: FileEncoding,
    ) -> Result<FileInfo, ClientError> {
        let body = WriteFileRequest { path: path.to_owned(), content, encoding: Some(encoding), user: None };
        let builder = self.request(Method::POST, &files_path(id, "/write"))?.json(&body);
        self.send_json(builder).await
    }
}

fn path_body(path: &str) -> PathRequest {
    PathRequest { path: path.to_owned(), user: None }
}

fn files_path(id: &str, suffix: &str) -> String {
    format!("/v1/sandboxes/{}/files{suffix}", segment(id))
}

fn file_path(id: &str) -> String {
    format!("/v1/sandboxes/{}/file", segment(id))
}
