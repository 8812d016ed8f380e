//! Template endpoints (`/v1/templates…`, rest.md §7): refs (get, exists, delete, tags, aliases,
//! visibility, rename), name claims and namespaces, builds (streamed over SSE, in the background, their
//! status, logs, cancel and a polling wait), and the blob preflight and upload that carry a build's
//! context files. Paths, fields and status codes follow the official client's `template.py`.

use std::path::PathBuf;
use std::time::Duration;

use nullspace_types::sandbox::TemplateInfo;
use nullspace_types::template_api::{BuildContext, BuildRequest, ContextFile};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::client::{segment, Client};
use crate::error::ClientError;
use crate::sse::SseStream;
use crate::template_types::{
    AliasInfo, BuildInfo, BuildLogEntry, BuildPage, BuildStatus, NameClaim, NamespaceInfo, PreflightAnswer,
    PreflightFile, TagInfo, ValidateResult,
};
use crate::transfer::ProgressFn;

/// How long one streamed build (or a followed log) may run.
const STREAM_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How long a background build's submission or a blob upload may take.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The log entries of a build as the server streams them.
pub type BuildLogStream = SseStream<BuildLogEntry>;

/// A build-context file to upload from disk: `entry` is what the build request names (`path`,
/// `entry_type`, `mode`), `local` where its bytes are (`None` for a directory).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalContextEntry {
    /// The entry as the request carries it (without `blob_id` or content).
    pub entry: ContextFile,
    /// The file on disk.
    pub local: Option<PathBuf>,
    /// Hex sha256 of the file.
    pub sha256: Option<String>,
    /// Size of the file.
    pub size_bytes: Option<u64>,
    /// Upload even if the server holds the blob.
    pub force_upload: bool,
}

/// The request as the official client sends it: no `null` fields or empty maps, no empty top-level
/// lists.
pub fn build_request_json(request: &BuildRequest) -> Value {
    fn strip_nulls(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.values_mut().for_each(strip_nulls);
                map.retain(|_, v| !v.is_null() && !matches!(v, Value::Object(o) if o.is_empty()));
            }
            Value::Array(items) => items.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    strip_nulls(&mut value);
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| match v {
            Value::Object(o) => !o.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
    }
    value
}

/// `/v1/templates/refs/{ref}` (refs are quoted as one segment: `/` → `%2F`, `:` → `%3A`).
fn ref_path(template_ref: &str) -> String {
    format!("/v1/templates/refs/{}", segment(template_ref))
}

/// Where a template's builds are listed: by id for `tmpl_…`, else by ref.
fn builds_path(template_ref: &str) -> String {
    if template_ref.starts_with("tmpl_") && !template_ref.contains(['/', ':']) {
        format!("/v1/templates/{}/builds", segment(template_ref))
    } else {
        format!("{}/builds", ref_path(template_ref))
    }
}

impl Client {
    /// `GET /v1/templates?fields=…`: only the named fields of each template.
    pub async fn list_template_fields(&self, fields: &[String]) -> Result<Vec<Value>, ClientError> {
        self.template_get("/v1/templates", fields).await
    }

    /// `GET /v1/templates/refs/{ref}` by id (`tmpl_…`, `base`), ref (`name[:tag]`, `ns/name:tag`) or alias.
    pub async fn get_template(&self, template_ref: &str) -> Result<TemplateInfo, ClientError> {
        self.template_get(&ref_path(template_ref), &[]).await
    }

    /// `GET /v1/templates/refs/{ref}?fields=…`: only the named fields.
    pub async fn template_fields(&self, template_ref: &str, fields: &[String]) -> Result<Value, ClientError> {
        self.template_get(&ref_path(template_ref), fields).await
    }

    /// Whether the ref resolves (a 404 `template_not_found` is `false`; other errors are errors).
    pub async fn template_exists(&self, template_ref: &str) -> Result<bool, ClientError> {
        match self.template_get::<Value>(&ref_path(template_ref), &[]).await {
            Ok(_) => Ok(true),
            Err(error) if matches!(error.code(), "template_not_found" | "sandbox_not_found") => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `DELETE /v1/templates/refs/{ref}`.
    pub async fn delete_template(&self, template_ref: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &ref_path(template_ref))?).await
    }

    /// `POST /v1/templates/refs/{ref}/tags`: the tags move to this template.
    pub async fn assign_template_tags(&self, template_ref: &str, tags: &[String]) -> Result<TemplateInfo, ClientError> {
        let path = format!("{}/tags", ref_path(template_ref));
        self.send_json(self.request(Method::POST, &path)?.json(&json!({ "tags": tags }))).await
    }

    /// `GET /v1/templates/refs/{ref}/tags`.
    pub async fn template_tags(&self, template_ref: &str) -> Result<Vec<TagInfo>, ClientError> {
        self.template_get(&format!("{}/tags", ref_path(template_ref)), &[]).await
    }

    /// `DELETE /v1/templates/refs/{ref}/tags/{tag}`.
    pub async fn remove_template_tag(&self, template_ref: &str, tag: &str) -> Result<(), ClientError> {
        let path = format!("{}/tags/{}", ref_path(template_ref), segment(tag));
        self.send_empty(self.request(Method::DELETE, &path)?).await
    }

    /// `GET /v1/templates/refs/{ref}/aliases`.
    pub async fn template_aliases(&self, template_ref: &str) -> Result<Vec<AliasInfo>, ClientError> {
        self.template_get(&format!("{}/aliases", ref_path(template_ref)), &[]).await
    }

    /// `DELETE /v1/templates/refs/{ref}/aliases/{alias}`.
    pub async fn remove_template_alias(&self, template_ref: &str, alias: &str) -> Result<(), ClientError> {
        let path = format!("{}/aliases/{}", ref_path(template_ref), segment(alias));
        self.send_empty(self.request(Method::DELETE, &path)?).await
    }

    /// `PATCH /v1/templates/refs/{ref}/visibility` with `private` or `public`.
    pub async fn set_template_visibility(
        &self,
        template_ref: &str,
        visibility: &str,
    ) -> Result<TemplateInfo, ClientError> {
        let path = format!("{}/visibility", ref_path(template_ref));
        self.send_json(self.request(Method::PATCH, &path)?.json(&json!({ "visibility": visibility }))).await
    }

    /// `POST /v1/templates/refs/{ref}/rename`: the old name stays as an alias.
    pub async fn rename_template(&self, template_ref: &str, new_name: &str) -> Result<TemplateInfo, ClientError> {
        let path = format!("{}/rename", ref_path(template_ref));
        self.send_json(self.request(Method::POST, &path)?.json(&json!({ "new_name": new_name }))).await
    }

    /// `POST /v1/templates/claims`: reserves a name before its first build.
    pub async fn reserve_template_name(&self, template_ref: &str) -> Result<NameClaim, ClientError> {
        let body = json!({ "template_ref": template_ref });
        self.send_json(self.request(Method::POST, "/v1/templates/claims")?.json(&body)).await
    }

    /// `DELETE /v1/templates/claims/{token}`.
    pub async fn release_template_claim(&self, claim_token: &str) -> Result<(), ClientError> {
        let path = format!("/v1/templates/claims/{}", segment(claim_token));
        self.send_empty(self.request(Method::DELETE, &path)?).await
    }

    /// `GET /v1/templates/namespaces/{slug}`.
    pub async fn template_namespace(&self, slug: &str) -> Result<NamespaceInfo, ClientError> {
        self.template_get(&format!("/v1/templates/namespaces/{}", segment(slug)), &[]).await
    }

    /// `POST /v1/templates/build`: starts a build and streams its log until the `end` (or `error`)
    /// entry. Upload the context first ([`Client::upload_build_context`]).
    pub async fn build_template(&self, request: &BuildRequest) -> Result<BuildLogStream, ClientError> {
        let builder = self
            .request(Method::POST, "/v1/templates/build")?
            .header("Accept", "text/event-stream")
            .timeout(STREAM_TIMEOUT)
            .json(&build_request_json(request));
        Ok(SseStream::new(self.send(builder).await?))
    }

    /// `POST /v1/templates/builds`: queues a build and returns it at once (`202`).
    pub async fn build_template_in_background(&self, request: &BuildRequest) -> Result<BuildInfo, ClientError> {
        let builder = self
            .request(Method::POST, "/v1/templates/builds")?
            .timeout(SUBMIT_TIMEOUT)
            .json(&build_request_json(request));
        self.send_json(builder).await
    }

    /// `GET /v1/templates/builds/{id}?offset=N`: the build and its log entries from `offset` on.
    pub async fn template_build_status(&self, build_id: &str, offset: u64) -> Result<BuildStatus, ClientError> {
        let path = format!("/v1/templates/builds/{}", segment(build_id));
        self.send_json(self.request(Method::GET, &path)?.query(&[("offset", offset)])).await
    }

    /// `GET /v1/templates/builds/{id}/logs?offset=N&follow=…`: the log as SSE; with `follow` the stream
    /// stays open until the build ends.
    pub async fn template_build_logs(
        &self,
        build_id: &str,
        offset: u64,
        follow: bool,
    ) -> Result<BuildLogStream, ClientError> {
        let path = format!("/v1/templates/builds/{}/logs", segment(build_id));
        let builder = self
            .request(Method::GET, &path)?
            .header("Accept", "text/event-stream")
            .timeout(STREAM_TIMEOUT)
            .query(&[("follow", follow.to_string()), ("offset", offset.to_string())]);
        Ok(SseStream::new(self.send(builder).await?))
    }

    /// `POST /v1/templates/builds/{id}/cancel`.
    pub async fn cancel_template_build(
        &self,
        build_id: &str,
        reason: Option<&str>,
    ) -> Result<BuildStatus, ClientError> {
        let path = format!("/v1/templates/builds/{}/cancel", segment(build_id));
        let body = match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        };
        self.send_json(self.request(Method::POST, &path)?.json(&body)).await
    }

    /// `POST /v1/templates/validate`: what is wrong with a request, without building (the context
    /// inline or as uploaded blobs).
    pub async fn validate_template(&self, request: &BuildRequest) -> Result<ValidateResult, ClientError> {
        let builder = self
            .request(Method::POST, "/v1/templates/validate")?
            .timeout(SUBMIT_TIMEOUT)
            .json(&build_request_json(request));
        self.send_json(builder).await
    }

    /// `POST /v1/templates/plan`: the steps the engine would run, digests and warnings (the server's
    /// object as sent; an invalid request is an `invalid_request` error).
    pub async fn plan_template(&self, request: &BuildRequest) -> Result<Value, ClientError> {
        let builder = self
            .request(Method::POST, "/v1/templates/plan")?
            .timeout(SUBMIT_TIMEOUT)
            .json(&build_request_json(request));
        self.send_json(builder).await
    }

    /// `GET /v1/templates/refs/{ref}/builds` (or `/v1/templates/{id}/builds` for a `tmpl_` id): a page
    /// of the template's builds, newest first, optionally of one `status`.
    pub async fn list_template_builds(
        &self,
        template_ref: &str,
        status: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<BuildPage, ClientError> {
        let path = builds_path(template_ref);
        let mut query: Vec<(&str, String)> = Vec::new();
        query.extend(status.map(|s| ("status", s.to_owned())));
        query.extend(limit.map(|l| ("limit", l.to_string())));
        query.extend(cursor.map(|c| ("cursor", c.to_owned())));
        self.send_json(self.request(Method::GET, &path)?.query(&query)).await
    }

    /// `POST /v1/templates/builds/{id}/retry`: a new build of the stored request. `body` carries the
    /// retry's `tags`, `base_image_auth` and `build_secrets` (credentials are not stored, so a retry
    /// that needs them brings them again).
    pub async fn retry_template_build(&self, build_id: &str, body: &Value) -> Result<BuildInfo, ClientError> {
        let path = format!("/v1/templates/builds/{}/retry", segment(build_id));
        self.send_json(self.request(Method::POST, &path)?.json(body)).await
    }

    /// `POST /v1/templates/builds/{id}/promote`: moves `tag` of the build's name to its template.
    pub async fn promote_template_build(&self, build_id: &str, tag: &str) -> Result<TemplateInfo, ClientError> {
        let path = format!("/v1/templates/builds/{}/promote", segment(build_id));
        self.send_json(self.request(Method::POST, &path)?.json(&json!({ "tag": tag }))).await
    }

    /// Polls the build's status every `interval` from `offset` until it is over, handing each new log
    /// entry to `on_entry`; returns the last status (its `entries` are the last poll's).
    pub async fn wait_template_build(
        &self,
        build_id: &str,
        mut offset: u64,
        interval: Duration,
        mut on_entry: impl FnMut(&BuildLogEntry),
    ) -> Result<BuildStatus, ClientError> {
        loop {
            let status = self.template_build_status(build_id, offset).await?;
            status.entries.iter().for_each(&mut on_entry);
            offset = status.next_offset.max(offset);
            if status.build.is_terminal() {
                return Ok(status);
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// `POST /v1/templates/blobs/preflight`: which context files the server lacks (same order as asked).
    pub async fn preflight_template_blobs(&self, files: &[PreflightFile]) -> Result<Vec<PreflightAnswer>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            files: Vec<PreflightAnswer>,
        }
        let builder = self.request(Method::POST, "/v1/templates/blobs/preflight")?.json(&json!({ "files": files }));
        let answer: Answer = self.send_json(builder).await?;
        if answer.files.len() != files.len() {
            return Err(ClientError::Stream {
                message: format!("blob preflight answered {} entries for {} asked", answer.files.len(), files.len()),
            });
        }
        Ok(answer.files)
    }

    /// `PUT /v1/templates/blobs/{blob_id}` with the file's bytes, streamed from disk.
    pub async fn upload_template_blob(&self, blob_id: &str, local: &std::path::Path) -> Result<(), ClientError> {
        let read_error = |source| ClientError::ReadLocal { path: local.display().to_string(), source };
        let file = tokio::fs::File::open(local).await.map_err(read_error)?;
        let length = file.metadata().await.map_err(read_error)?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let builder = self
            .request(Method::PUT, &format!("/v1/templates/blobs/{}", segment(blob_id)))?
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", length)
            .timeout(SUBMIT_TIMEOUT)
            .body(body);
        self.send_empty(builder).await
    }

    /// Uploads the files of a build context the server does not hold yet (preflight, then one `PUT` per
    /// missing blob) and returns the context the build request carries: every entry, files by
    /// `blob_id`. `progress` sees `(files uploaded, files to upload)`.
    pub async fn upload_build_context(
        &self,
        entries: &[LocalContextEntry],
        progress: Option<ProgressFn>,
    ) -> Result<BuildContext, ClientError> {
        let asked: Vec<PreflightFile> = entries.iter().map(preflight_entry).collect();
        let answers = if asked.is_empty() { Vec::new() } else { self.preflight_template_blobs(&asked).await? };
        let missing: Vec<(usize, String)> = answers
            .iter()
            .enumerate()
            .filter(|(index, answer)| answer.missing && entries[*index].local.is_some())
            .filter_map(|(index, answer)| answer.blob_id.clone().map(|blob| (index, blob)))
            .collect();
        let mut uploaded: Vec<String> = Vec::new();
        for (done, (index, blob_id)) in missing.iter().enumerate() {
            if let Some(report) = &progress {
                report(done as u64, Some(missing.len() as u64));
            }
            if uploaded.contains(blob_id) {
                continue;
            }
            if let Some(local) = &entries[*index].local {
                self.upload_template_blob(blob_id, local).await?;
            }
            uploaded.push(blob_id.clone());
        }
        if let Some(report) = &progress {
            report(missing.len() as u64, Some(missing.len() as u64));
        }
        let files = entries
            .iter()
            .zip(answers.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(entry, answer)| {
                let mut file = entry.entry.clone();
                file.content_base64 = None;
                if entry.local.is_some() {
                    file.blob_id = answer.and_then(|a| a.blob_id.clone());
                    if file.blob_id.is_none() {
                        return Err(ClientError::Stream {
                            message: format!("blob preflight gave no blob id for {}", file.path),
                        });
                    }
                }
                Ok(file)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BuildContext { files })
    }

    async fn template_get<T: DeserializeOwned>(&self, path: &str, fields: &[String]) -> Result<T, ClientError> {
        let mut builder = self.request(Method::GET, path)?;
        if !fields.is_empty() {
            builder = builder.query(&[("fields", fields.join(","))]);
        }
        self.send_json(builder).await
    }
}

/// The preflight descriptor of one context entry.
fn preflight_entry(entry: &LocalContextEntry) -> PreflightFile {
    PreflightFile {
        path: entry.entry.path.clone(),
        entry_type: entry.entry.entry_type.clone().unwrap_or_else(|| "file".into()),
        mode: entry.entry.mode.clone(),
        sha256: entry.sha256.clone(),
        size_bytes: entry.size_bytes,
        force_upload: entry.force_upload.then_some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_out_without_nulls() {
        let request = BuildRequest {
            base_image: Some("nullspace/base:latest".into()),
            steps: vec![nullspace_types::template_api::Step::PipInstall { packages: vec!["x".into()], g: None }],
            ..Default::default()
        };
        assert_eq!(
            build_request_json(&request),
            json!({"base_image": "nullspace/base:latest", "steps": [{"action": "pip_install", "packages": ["x"]}]})
        );
    }

    #[test]
    fn refs_are_one_quoted_segment() {
        assert_eq!(ref_path("team/app:stable"), "/v1/templates/refs/team%2Fapp%3Astable");
        assert_eq!(ref_path("tmpl_1"), "/v1/templates/refs/tmpl_1");
        assert_eq!(builds_path("tmpl_1"), "/v1/templates/tmpl_1/builds");
        assert_eq!(builds_path("team/app:v1"), "/v1/templates/refs/team%2Fapp%3Av1/builds");
    }

    #[test]
    fn preflight_descriptors_name_files_and_directories() {
        let dir = LocalContextEntry {
            entry: ContextFile {
                path: "ctx".into(),
                entry_type: Some("dir".into()),
                mode: Some("0755".into()),
                ..Default::default()
            },
            local: None,
            sha256: None,
            size_bytes: None,
            force_upload: false,
        };
        let file = LocalContextEntry {
            entry: ContextFile { path: "ctx/a".into(), entry_type: Some("file".into()), ..Default::default() },
            local: Some("/tmp/a".into()),
            sha256: Some("ab".into()),
            size_bytes: Some(2),
            force_upload: true,
        };
        assert_eq!(
            serde_json::to_value(preflight_entry(&dir)).unwrap(),
            json!({"path": "ctx", "entry_type": "dir", "mode": "0755"})
        );
        assert_eq!(
            serde_json::to_value(preflight_entry(&file)).unwrap(),
            json!({"path": "ctx/a", "entry_type": "file", "sha256": "ab", "size_bytes": 2, "force_upload": true})
        );
    }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod wire_tests;
