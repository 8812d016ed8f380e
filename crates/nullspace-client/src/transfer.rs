//! Moving whole files between this machine and a sandbox or volume ([`Files`]): streamed direct
//! uploads, resumable upload sessions (parts in parallel, each with its sha256, then the whole sha256 at
//! completion), directory uploads as a tar session, and downloads of files or of a directory's tar,
//! kept or extracted safely. Same choices as the official client (8 MiB direct limit in `auto` mode).

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use nullspace_types::files_api::FileInfo;
use nullspace_types::upload_api::link_stays_inside;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::segment;
use crate::error::ClientError;
use crate::files::{Files, FilesOwner};
use crate::sandboxes::new_idempotency_key;

/// Files above this size go through a resumable session in [`UploadMode::Auto`].
pub const DIRECT_UPLOAD_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Size of one chunk of a streamed body.
const CHUNK: usize = 64 * 1024;
/// How long one transfer request may take (a whole direct upload or download, or one part).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Called as a transfer advances with the bytes done so far and the total when known.
pub type ProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Whether an upload uses a resumable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// Resumable above [`DIRECT_UPLOAD_MAX_BYTES`], direct otherwise.
    #[default]
    Auto,
    /// Always a resumable session.
    Always,
    /// Always one streamed request.
    Never,
}

/// How an upload's bytes travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadTransport {
    /// One streamed request.
    Direct,
    /// A resumable session of parts.
    Resumable,
}

impl UploadTransport {
    /// `direct` or `resumable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Resumable => "resumable",
        }
    }
}

/// Options of [`Files::upload_file`] and [`Files::upload_dir`].
#[derive(Clone, Default)]
pub struct UploadOptions {
    /// Direct or resumable (directories are always resumable).
    pub mode: UploadMode,
    /// Parts in flight at once (capped by the session's `max_concurrency`).
    pub concurrency: Option<u32>,
    /// Progress callback.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions").field("mode", &self.mode).field("concurrency", &self.concurrency).finish()
    }
}

/// What an upload did (the official client's `UploadResult`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadOutcome {
    /// Session id of a resumable upload.
    pub upload_id: Option<String>,
    /// `file` or `directory_tar`.
    pub kind: String,
    /// Resolved destination.
    pub target_path: String,
    /// Bytes sent (the tar's size for directories).
    pub bytes_uploaded: u64,
    /// Files published.
    pub file_count: u64,
    /// Direct or resumable.
    pub transport: UploadTransport,
    /// Whether an earlier session was resumed (never, here).
    pub resumed: bool,
    /// RFC 3339 start.
    pub started_at: String,
    /// RFC 3339 end.
    pub completed_at: String,
    /// The completed session, as the server sent it.
    pub session: Option<Value>,
}

/// What a download did (the official client's `DownloadResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadOutcome {
    /// Local file or directory written.
    pub path: String,
    /// `file` or `directory_archive`.
    pub kind: String,
    /// Bytes received.
    pub bytes_downloaded: u64,
    /// `tar` for directories.
    pub archive_format: Option<String>,
    /// Whether the archive was extracted into `path`.
    pub extracted: bool,
}

/// The fields of an upload session this client needs (volume and sandbox sessions differ elsewhere).
#[derive(Debug, Clone, Deserialize)]
struct Session {
    upload_id: String,
    target_path: String,
    part_size: u64,
    part_count: u64,
    max_concurrency: u32,
}

#[derive(Debug, Deserialize)]
struct Created {
    session: Value,
}

#[derive(Debug, Deserialize)]
struct Completed {
    session: Value,
    published_bytes: u64,
    published_file_count: u64,
}

/// What a resumable session publishes.
struct SessionPlan<'p> {
    kind: &'static str,
    source_kind: &'static str,
    archive_format: Option<&'static str>,
    local: &'p Path,
    target_path: &'p str,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::ReadLocal { path: path.display().to_string(), source }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::WriteLocal { path: path.display().to_string(), source }
}

fn blocking_failed(error: tokio::task::JoinError) -> ClientError {
    ClientError::Stream { message: format!("a local file task failed: {error}") }
}

impl Files<'_> {
    /// Uploads the local file `local` to `remote`, direct or resumable per `options.mode`.
    pub async fn upload_file(
        &self,
        local: &Path,
        remote: &str,
        options: &UploadOptions,
    ) -> Result<UploadOutcome, ClientError> {
        let started_at = now();
        let size = tokio::fs::metadata(local).await.map_err(read_error(local))?.len();
        let resumable = match options.mode {
            UploadMode::Always => true,
            UploadMode::Never => false,
            UploadMode::Auto => size > DIRECT_UPLOAD_MAX_BYTES,
        };
        if !resumable {
            let info = self.write_stream(local, remote, options.progress.clone()).await?;
            return Ok(UploadOutcome {
                upload_id: None,
                kind: "file".into(),
                target_path: info.path,
                bytes_uploaded: size,
                file_count: 1,
                transport: UploadTransport::Direct,
                resumed: false,
                started_at,
                completed_at: now(),
                session: None,
            });
        }
        let plan = SessionPlan {
            kind: "file",
            source_kind: "restartable_file",
            archive_format: None,
            local,
            target_path: remote,
        };
        let (session, completed) = self.run_session(&plan, options).await?;
        // The info names the resolved path; the session's target is the fallback.
        let target_path = match self.info(remote).await {
            Ok(info) => info.path,
            Err(_) => session.target_path,
        };
        Ok(UploadOutcome {
            upload_id: Some(session.upload_id),
            kind: "file".into(),
            target_path,
            bytes_uploaded: completed.published_bytes,
            file_count: 1,
            transport: UploadTransport::Resumable,
            resumed: false,
            started_at,
            completed_at: now(),
            session: Some(completed.session),
        })
    }

    /// Uploads the local directory `local` (files, directories, relative symlinks) under `remote` as one
    /// tar session, merged into what is there.
    pub async fn upload_dir(
        &self,
        local: &Path,
        remote: &str,
        options: &UploadOptions,
    ) -> Result<UploadOutcome, ClientError> {
        let started_at = now();
        let source = local.to_owned();
        let archive = tokio::task::spawn_blocking(move || build_tar(&source)).await.map_err(blocking_failed)??;
        let plan = SessionPlan {
            kind: "directory_tar",
            source_kind: "directory_archive",
            archive_format: Some("tar"),
            local: archive.path(),
            target_path: remote,
        };
        let (session, completed) = self.run_session(&plan, options).await?;
        Ok(UploadOutcome {
            upload_id: Some(session.upload_id),
            kind: "directory_tar".into(),
            target_path: session.target_path,
            bytes_uploaded: completed.published_bytes,
            file_count: completed.published_file_count,
            transport: UploadTransport::Resumable,
            resumed: false,
            started_at,
            completed_at: now(),
            session: Some(completed.session),
        })
    }

    /// Streams `local` into `remote` in one request (`PUT …/file` on a sandbox, the signed upload URL on a
    /// volume), then returns the new file's info.
    pub async fn write_stream(
        &self,
        local: &Path,
        remote: &str,
        progress: Option<ProgressFn>,
    ) -> Result<FileInfo, ClientError> {
        let file = tokio::fs::File::open(local).await.map_err(read_error(local))?;
        let total = file.metadata().await.map_err(read_error(local))?.len();
        let sent = Arc::new(AtomicU64::new(0));
        let stream = futures::stream::try_unfold(file, move |mut file| {
            let (sent, progress) = (sent.clone(), progress.clone());
            async move {
                let mut buffer = vec![0u8; CHUNK];
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buffer.truncate(read);
                let done = sent.fetch_add(read as u64, Ordering::Relaxed) + read as u64;
                if let Some(progress) = &progress {
                    progress(done, Some(total));
                }
                Ok(Some((buffer, file)))
            }
        });
        let builder = match self.owner {
            FilesOwner::Sandbox => self.client.request(Method::PUT, &self.route("/file"))?.query(&[("path", remote)]),
            FilesOwner::Volume => {
                let url = self.upload_url(remote).await?.url;
                self.client.request_url(Method::PUT, &url)
            }
        };
        let builder = builder
            .header("content-type", "application/octet-stream")
            .header("content-length", total)
            .timeout(TRANSFER_TIMEOUT)
            .body(reqwest::Body::wrap_stream(stream));
        self.client.send_empty(builder).await?;
        self.info(remote).await
    }

    /// Downloads `remote` to `local`: a file as is; a directory as its tar, kept at `local` with
    /// `archive`, extracted into `local` otherwise. `local` defaults to the remote name (`NAME.tar` for a
    /// kept archive); an existing directory receives the file or archive inside it. An existing
    /// destination is replaced only with `overwrite`.
    pub async fn download(
        &self,
        remote: &str,
        local: Option<&Path>,
        archive: bool,
        overwrite: bool,
        progress: Option<ProgressFn>,
    ) -> Result<DownloadOutcome, ClientError> {
        let info = self.info(remote).await?;
        let name = remote_name(remote).or_else(|| remote_name(&info.path));
        let no_name = || ClientError::NoLocalName { remote: remote.to_owned() };
        if !info.is_dir {
            let target = destination(local, name.as_deref(), true).ok_or_else(no_name)?;
            prepare(&target, overwrite).await?;
            let url = self.download_url(remote, false).await?;
            let bytes = self.fetch_to(&url, &target, progress).await?;
            return Ok(DownloadOutcome {
                path: target.display().to_string(),
                kind: "file".into(),
                bytes_downloaded: bytes,
                archive_format: None,
                extracted: false,
            });
        }
        let url = self.download_url(remote, true).await?;
        let dir_name = name.unwrap_or_else(|| "download".to_owned());
        if archive {
            let target = destination(local, Some(&format!("{dir_name}.tar")), true).ok_or_else(no_name)?;
            prepare(&target, overwrite).await?;
            let bytes = self.fetch_to(&url, &target, progress).await?;
            return Ok(DownloadOutcome {
                path: target.display().to_string(),
                kind: "directory_archive".into(),
                bytes_downloaded: bytes,
                archive_format: Some("tar".into()),
                extracted: false,
            });
        }
        let target = destination(local, Some(&dir_name), false).ok_or_else(no_name)?;
        prepare(&target, overwrite).await?;
        let staging = tempfile::NamedTempFile::new().map_err(write_error(Path::new("a temporary file")))?;
        let bytes = self.fetch_to(&url, staging.path(), progress).await?;
        let into = target.clone();
        tokio::task::spawn_blocking(move || extract_tar(staging.path(), &into)).await.map_err(blocking_failed)??;
        Ok(DownloadOutcome {
            path: target.display().to_string(),
            kind: "directory_archive".into(),
            bytes_downloaded: bytes,
            archive_format: Some("tar".into()),
            extracted: true,
        })
    }

    /// `GET url` (a signed URL, no key) streamed into the new file `target`; returns the bytes written.
    async fn fetch_to(&self, url: &str, target: &Path, progress: Option<ProgressFn>) -> Result<u64, ClientError> {
        let builder = self.client.request_url(Method::GET, url).timeout(TRANSFER_TIMEOUT);
        let response = self.client.send(builder).await?;
        let total = response.content_length();
        let mut file = tokio::fs::File::create(target).await.map_err(write_error(target))?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            // The URL carries a grant: errors name it without the token.
            let chunk = chunk.map_err(|source| ClientError::Transport {
                method: "GET".into(),
                url: "the signed download URL".into(),
                source,
            })?;
            file.write_all(&chunk).await.map_err(write_error(target))?;
            written += chunk.len() as u64;
            if let Some(progress) = &progress {
                progress(written, total);
            }
        }
        file.flush().await.map_err(write_error(target))?;
        Ok(written)
    }

    /// Creates a session for `plan`, sends every part (in parallel), completes it with the whole sha256.
    /// A failed upload aborts its session, so no staging space stays reserved.
    async fn run_session(
        &self,
        plan: &SessionPlan<'_>,
        options: &UploadOptions,
    ) -> Result<(Session, Completed), ClientError> {
        let local = plan.local.to_owned();
        let (size, whole) = tokio::task::spawn_blocking(move || hash_file(&local)).await.map_err(blocking_failed)??;
        let body = json!({
            "kind": plan.kind,
            "source_kind": plan.source_kind,
            "target_path": plan.target_path,
            "content_length": size,
            "conflict": "merge",
            "archive_format": plan.archive_format,
            "checksum_algorithm": "sha256",
            "whole_checksum_sha256": Value::Null,
            "metadata": {},
        });
        let builder = self
            .client
            .request(Method::POST, &self.route("/uploads"))?
            .header("Idempotency-Key", new_idempotency_key())
            .json(&body);
        let created: Created = self.client.send_json(builder).await?;
        let session: Session = serde_json::from_value(created.session)
            .map_err(|source| ClientError::Decode { url: self.client.url(&self.route("/uploads")), source })?;
        let result = self.send_parts(&session, plan.local, size, &whole, options).await;
        if result.is_err() {
            let abort = self.client.request(Method::DELETE, &self.session_route(&session, ""));
            if let Ok(abort) = abort {
                let _ = self.client.send_empty(abort).await;
            }
        }
        result.map(|completed| (session, completed))
    }

    async fn send_parts(
        &self,
        session: &Session,
        local: &Path,
        size: u64,
        whole: &str,
        options: &UploadOptions,
    ) -> Result<Completed, ClientError> {
        let file = Arc::new(std::fs::File::open(local).map_err(read_error(local))?);
        let limit = session.max_concurrency.max(1);
        let concurrency = options.concurrency.unwrap_or(limit).clamp(1, limit) as usize;
        let done = Arc::new(AtomicU64::new(0));
        if let Some(progress) = &options.progress {
            progress(0, Some(size));
        }
        futures::stream::iter(0..session.part_count)
            .map(|number| {
                let (file, done, progress) = (file.clone(), done.clone(), options.progress.clone());
                async move {
                    let offset = number * session.part_size;
                    let length = session.part_size.min(size.saturating_sub(offset));
                    let chunk = tokio::task::spawn_blocking(move || {
                        let mut chunk = vec![0u8; length as usize];
                        file.read_exact_at(&mut chunk, offset).map(|()| chunk)
                    })
                    .await
                    .map_err(blocking_failed)?
                    .map_err(read_error(local))?;
                    let digest = hex::encode(Sha256::digest(&chunk));
                    let builder = self
                        .client
                        .request(Method::PUT, &self.session_route(session, &format!("/parts/{number}")))?
                        .header("content-type", "application/octet-stream")
                        .header("x-nullspace-part-sha256", digest)
                        .timeout(TRANSFER_TIMEOUT)
                        .body(chunk);
                    self.client.send_empty(builder).await?;
                    let total = done.fetch_add(length, Ordering::Relaxed) + length;
                    if let Some(progress) = &progress {
                        progress(total, Some(size));
                    }
                    Ok::<_, ClientError>(())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        let builder = self
            .client
            .request(Method::POST, &self.session_route(session, "/complete"))?
            .header("Idempotency-Key", new_idempotency_key())
            .timeout(TRANSFER_TIMEOUT)
            .json(&json!({"whole_checksum_sha256": whole}));
        self.client.send_json(builder).await
    }

    fn session_route(&self, session: &Session, suffix: &str) -> String {
        self.route(&format!("/uploads/{}{suffix}", segment(&session.upload_id)))
    }
}

/// Size and hex sha256 of a local file.
fn hash_file(path: &Path) -> Result<(u64, String), ClientError> {
    let mut file = std::fs::File::open(path).map_err(read_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(read_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The last component of a remote path (`None` for `/`).
fn remote_name(remote: &str) -> Option<String> {
    remote.trim_end_matches('/').rsplit('/').next().filter(|name| !name.is_empty() && *name != "..").map(str::to_owned)
}

/// Where a download goes: `local` (inside it when it is an existing directory and `into_dir`), or
/// `name` in the working directory.
fn destination(local: Option<&Path>, name: Option<&str>, into_dir: bool) -> Option<PathBuf> {
    match local {
        None => name.map(PathBuf::from),
        Some(local) if into_dir && local.is_dir() => name.map(|name| local.join(name)),
        Some(local) => Some(local.to_owned()),
    }
}

/// Refuses an existing `target` unless `overwrite` (then removes it); creates its parent.
async fn prepare(target: &Path, overwrite: bool) -> Result<(), ClientError> {
    if let Ok(metadata) = tokio::fs::symlink_metadata(target).await {
        if !overwrite {
            return Err(ClientError::LocalExists { path: target.display().to_string() });
        }
        let removed = if metadata.is_dir() {
            tokio::fs::remove_dir_all(target).await
        } else {
            tokio::fs::remove_file(target).await
        };
        removed.map_err(write_error(target))?;
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await.map_err(write_error(parent))?;
    }
    Ok(())
}

/// A tar of `root`'s contents (entry names relative to it): files, directories, and symlinks as links.
fn build_tar(root: &Path) -> Result<tempfile::NamedTempFile, ClientError> {
    let staging = tempfile::NamedTempFile::new().map_err(write_error(Path::new("a temporary file")))?;
    let mut builder = tar::Builder::new(staging.as_file());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let mut entries = std::fs::read_dir(&dir)
            .map_err(read_error(&dir))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_error(&dir))?;
        entries.sort();
        for name in entries {
            let relative = relative.join(name);
            let path = root.join(&relative);
            let metadata = std::fs::symlink_metadata(&path).map_err(read_error(&path))?;
            if metadata.is_dir() {
                builder.append_dir(&relative, &path).map_err(read_error(&path))?;
                pending.push(relative);
            } else if metadata.is_file() || metadata.file_type().is_symlink() {
                builder.append_path_with_name(&path, &relative).map_err(read_error(&path))?;
            }
        }
    }
    builder.into_inner().map_err(write_error(staging.path()))?;
    Ok(staging)
}

/// Extracts the tar at `archive` into `into`: only files, directories and symlinks that stay inside it,
/// never through a symlink the archive made.
fn extract_tar(archive: &Path, into: &Path) -> Result<(), ClientError> {
    std::fs::create_dir_all(into).map_err(write_error(into))?;
    let file = std::fs::File::open(archive).map_err(read_error(archive))?;
    let mut tar = tar::Archive::new(file);
    let invalid = |message: String| ClientError::Archive { message };
    for entry in tar.entries().map_err(read_error(archive))? {
        let mut entry = entry.map_err(read_error(archive))?;
        let name = entry.path().map_err(read_error(archive))?.into_owned();
        let relative = safe_relative(&name).ok_or_else(|| invalid(format!("unsafe entry path {}", name.display())))?;
        if relative.as_os_str().is_empty() {
            continue; // the archive's root directory itself
        }
        // Every existing ancestor must be a real directory, so nothing is written through a symlink.
        let mut ancestor = into.to_owned();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            ancestor.push(component);
            if std::fs::symlink_metadata(&ancestor).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(invalid(format!("entry {} lies below a symlink", relative.display())));
            }
        }
        let target = into.join(&relative);
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let link = entry.link_name().map_err(read_error(archive))?.unwrap_or_default().into_owned();
            if !link_stays_inside(&relative, &link) {
                return Err(invalid(format!("symlink {} points outside the directory", relative.display())));
            }
        } else if !kind.is_file() && !kind.is_dir() {
            return Err(invalid(format!("unsupported entry {} ({kind:?})", relative.display())));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&target).map_err(write_error(&target))?;
        }
        entry.unpack(&target).map_err(write_error(&target))?;
    }
    Ok(())
}

/// `name` without `.` components, if it is relative and never goes up.
fn safe_relative(name: &Path) -> Option<PathBuf> {
    nullspace_types::rel_path::clean_relative(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_names_and_destinations() {
        assert_eq!(remote_name("/models/model.bin").as_deref(), Some("model.bin"));
        assert_eq!(remote_name("/datasets/"), Some("datasets".into()));
        assert_eq!(remote_name("/"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(destination(Some(dir.path()), Some("a.bin"), true), Some(dir.path().join("a.bin")));
        assert_eq!(destination(Some(dir.path()), Some("d"), false), Some(dir.path().to_owned()));
        assert_eq!(destination(None, Some("a.bin"), true), Some(PathBuf::from("a.bin")));
        assert_eq!(destination(None, None, true), None);
    }

    #[test]
    fn archive_paths_must_stay_inside() {
        assert_eq!(safe_relative(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative(Path::new("a/../../x")), None);
        assert_eq!(safe_relative(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn directories_round_trip_through_tar() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("sub/deeper")).unwrap();
        std::fs::write(source.path().join("top.txt"), "top").unwrap();
        std::fs::write(source.path().join("sub/deeper/inner.txt"), "inner").unwrap();
        std::os::unix::fs::symlink("deeper/inner.txt", source.path().join("sub/link")).unwrap();
        let archive = build_tar(source.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        extract_tar(archive.path(), out.path()).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("top.txt")).unwrap(), "top");
        assert_eq!(std::fs::read_to_string(out.path().join("sub/link")).unwrap(), "inner");
        assert_eq!(std::fs::read_link(out.path().join("sub/link")).unwrap(), PathBuf::from("deeper/inner.txt"));
    }

    #[test]
    fn extraction_refuses_escaping_links_and_writes_through_links() {
        let out = tempfile::tempdir().unwrap();
        let escaping = tar_of(|builder| append_link(builder, "evil", "../outside"));
        assert!(matches!(extract_tar(escaping.path(), out.path()), Err(ClientError::Archive { .. })));
        let through = tar_of(|builder| {
            append_link(builder, "here", ".");
            append_link(builder, "here/up", "..");
        });
        let out = tempfile::tempdir().unwrap();
        assert!(matches!(extract_tar(through.path(), out.path()), Err(ClientError::Archive { .. })));
    }

    fn tar_of(fill: impl FnOnce(&mut tar::Builder<&std::fs::File>)) -> tempfile::NamedTempFile {
        let staging = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(staging.as_file());
        fill(&mut builder);
        builder.into_inner().unwrap();
        staging
    }

    fn append_link(builder: &mut tar::Builder<&std::fs::File>, name: &str, target: &str) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder.append_link(&mut header, name, target).unwrap();
    }
}
