//! The code-interpreter API of a sandbox (`/v1/sandboxes/{id}/code/…`, rest.md §8): execute as a
//! stream of [`ExecutionEvent`]s, contexts, queued runs and stored artifacts (listed, fetched,
//! downloaded to a file, previewed, deleted). The server relays these to the sandbox's gateway.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use nullspace_types::code_api::{
    Artifact, CodeContext, CodeRun, CreateContextRequest, CreateRunRequest, ExecuteRequest, ExecutionEvent,
    ListArtifactsQuery, ListRunsQuery, Page,
};
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::client::{segment, Client};
use crate::error::ClientError;
use crate::sse::SseStream;

/// The events of one execution, as they arrive.
pub type CodeEventStream = SseStream<ExecutionEvent>;

/// How long an execution without its own timeout may stream (the gateway sends `: ping` keepalives).
const STREAM_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// Extra time an execution's request gets on top of its own timeout (kernel start, the error event).
const EXECUTE_GRACE: Duration = Duration::from_secs(60);
/// How long an artifact download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

impl Client {
    /// `POST …/code/execute`: the execution's events, yielded as the gateway sends them; the stream ends
    /// when the execution does.
    pub async fn code_execute(&self, id: &str, request: &ExecuteRequest) -> Result<CodeEventStream, ClientError> {
        let timeout = request.timeout.map_or(STREAM_TIMEOUT, |secs| Duration::from_secs(secs) + EXECUTE_GRACE);
        let builder = self
            .request(Method::POST, &code_path(id, "/execute"))?
            .header("Accept", "text/event-stream")
            .timeout(timeout)
            .json(request);
        Ok(SseStream::new(self.send(builder).await?))
    }

    /// `POST …/code/contexts`.
    pub async fn create_code_context(
        &self,
        id: &str,
        request: &CreateContextRequest,
    ) -> Result<CodeContext, ClientError> {
        self.send_json(self.request(Method::POST, &code_path(id, "/contexts"))?.json(request)).await
    }

    /// `GET …/code/contexts`.
    pub async fn list_code_contexts(&self, id: &str) -> Result<Vec<CodeContext>, ClientError> {
        self.send_json(self.request(Method::GET, &code_path(id, "/contexts"))?).await
    }

    /// `DELETE …/code/contexts/{ctx}`.
    pub async fn remove_code_context(&self, id: &str, context: &str) -> Result<(), ClientError> {
        let path = code_path(id, &format!("/contexts/{}", segment(context)));
        self.send_empty(self.request(Method::DELETE, &path)?).await
    }

    /// `POST …/code/contexts/{ctx}/restart`: a fresh kernel, its state cleared.
    pub async fn restart_code_context(&self, id: &str, context: &str) -> Result<(), ClientError> {
        let path = code_path(id, &format!("/contexts/{}/restart", segment(context)));
        self.send_empty(self.request(Method::POST, &path)?).await
    }

    /// `POST …/code/contexts/{ctx}/interrupt`: ends the running execution; the context stays usable.
    pub async fn interrupt_code_context(&self, id: &str, context: &str) -> Result<(), ClientError> {
        let path = code_path(id, &format!("/contexts/{}/interrupt", segment(context)));
        self.send_empty(self.request(Method::POST, &path)?).await
    }

    /// `POST …/code/runs`: queues a run.
    pub async fn create_code_run(&self, id: &str, request: &CreateRunRequest) -> Result<CodeRun, ClientError> {
        self.send_json(self.request(Method::POST, &code_path(id, "/runs"))?.json(request)).await
    }

    /// `GET …/code/runs?status=&context_id=&limit=&cursor=`: one page, newest first.
    pub async fn list_code_runs(&self, id: &str, query: &ListRunsQuery) -> Result<Page<CodeRun>, ClientError> {
        let mut pairs = Vec::new();
        push(&mut pairs, "status", query.status.as_deref());
        push(&mut pairs, "context_id", query.context_id.as_deref());
        push(&mut pairs, "limit", query.limit.map(|n| n.to_string()).as_deref());
        push(&mut pairs, "cursor", query.cursor.as_deref());
        self.send_json(self.request(Method::GET, &code_path(id, "/runs"))?.query(&pairs)).await
    }

    /// `GET …/code/runs/{run}`.
    pub async fn get_code_run(&self, id: &str, run: &str) -> Result<CodeRun, ClientError> {
        let path = code_path(id, &format!("/runs/{}", segment(run)));
        self.send_json(self.request(Method::GET, &path)?).await
    }

    /// `POST …/code/runs/{run}/cancel`.
    pub async fn cancel_code_run(&self, id: &str, run: &str) -> Result<CodeRun, ClientError> {
        let path = code_path(id, &format!("/runs/{}/cancel", segment(run)));
        self.send_json(self.request(Method::POST, &path)?).await
    }

    /// `GET …/code/artifacts?context_id=&execution_count=&kind=&limit=&cursor=`: one page, newest first.
    pub async fn list_code_artifacts(
        &self,
        id: &str,
        query: &ListArtifactsQuery,
    ) -> Result<Page<Artifact>, ClientError> {
        let mut pairs = Vec::new();
        push(&mut pairs, "context_id", query.context_id.as_deref());
        push(&mut pairs, "execution_count", query.execution_count.map(|n| n.to_string()).as_deref());
        push(&mut pairs, "kind", query.kind.as_deref());
        push(&mut pairs, "limit", query.limit.map(|n| n.to_string()).as_deref());
        push(&mut pairs, "cursor", query.cursor.as_deref());
        self.send_json(self.request(Method::GET, &code_path(id, "/artifacts"))?.query(&pairs)).await
    }

    /// `GET …/code/artifacts/{art}`.
    pub async fn get_code_artifact(&self, id: &str, artifact: &str) -> Result<Artifact, ClientError> {
        self.send_json(self.request(Method::GET, &artifact_path(id, artifact, ""))?).await
    }

    /// `GET …/code/artifacts/{art}/download`: the artifact's bytes.
    pub async fn code_artifact_bytes(&self, id: &str, artifact: &str) -> Result<Vec<u8>, ClientError> {
        let builder = self.request(Method::GET, &artifact_path(id, artifact, "/download"))?.timeout(DOWNLOAD_TIMEOUT);
        Ok(self.send_bytes(builder).await?.1)
    }

    /// `GET …/code/artifacts/{art}/preview`: the artifact's preview bytes.
    pub async fn code_artifact_preview(&self, id: &str, artifact: &str) -> Result<Vec<u8>, ClientError> {
        let builder = self.request(Method::GET, &artifact_path(id, artifact, "/preview"))?.timeout(DOWNLOAD_TIMEOUT);
        Ok(self.send_bytes(builder).await?.1)
    }

    /// `GET …/code/artifacts/{art}/download` streamed into the file `target` (a new file unless
    /// `overwrite`); returns the bytes written. A failed download removes what it wrote.
    pub async fn download_code_artifact(
        &self,
        id: &str,
        artifact: &str,
        target: &Path,
        overwrite: bool,
    ) -> Result<u64, ClientError> {
        let builder = self.request(Method::GET, &artifact_path(id, artifact, "/download"))?.timeout(DOWNLOAD_TIMEOUT);
        let response = self.send(builder).await?;
        let url = response.url().to_string();
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true);
        if overwrite {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(target).await.map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => ClientError::LocalExists { path: target.display().to_string() },
            _ => write_error(target, source),
        })?;
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        let copied: Result<(), ClientError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|source| ClientError::Transport {
                    method: "GET".into(),
                    url: url.clone(),
                    source,
                })?;
                file.write_all(&chunk).await.map_err(|source| write_error(target, source))?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(|source| write_error(target, source))
        }
        .await;
        if let Err(error) = copied {
            drop(file);
            let _ = tokio::fs::remove_file(target).await;
            return Err(error);
        }
        Ok(written)
    }

    /// `DELETE …/code/artifacts/{art}`.
    pub async fn delete_code_artifact(&self, id: &str, artifact: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &artifact_path(id, artifact, ""))?).await
    }
}

/// `/v1/sandboxes/{id}/code{rest}`.
fn code_path(id: &str, rest: &str) -> String {
    format!("/v1/sandboxes/{}/code{rest}", segment(id))
}

fn artifact_path(id: &str, artifact: &str, rest: &str) -> String {
    code_path(id, &format!("/artifacts/{}{rest}", segment(artifact)))
}

/// Adds `name=value` to a query when the value is set.
fn push(pairs: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        pairs.push((name, value.to_owned()));
    }
}

fn write_error(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::WriteLocal { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_user_segment() {
        assert_eq!(code_path("sb_1", "/execute"), "/v1/sandboxes/sb_1/code/execute");
        assert_eq!(artifact_path("sb 1", "art/x", "/download"), "/v1/sandboxes/sb%201/code/artifacts/art%2Fx/download");
    }

    #[test]
    fn queries_carry_only_the_filters_given() {
        let mut pairs = Vec::new();
        push(&mut pairs, "status", Some("queued"));
        push(&mut pairs, "cursor", None);
        assert_eq!(pairs, [("status", "queued".to_owned())]);
    }
}
