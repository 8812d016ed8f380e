//! The exec WebSocket channel: `exec_start` → `exec_started` → `exec_stdout`/`exec_stderr`… → `exec_exit`.

use futures::{SinkExt, StreamExt};
use nullspace_types::exec_api::{ExecClientMessage, ExecRequest, ExecServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{segment, Client};
use crate::error::ClientError;

/// One event of a streamed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// The process runs with this pid.
    Started {
        /// Process id in the sandbox.
        pid: u32,
    },
    /// A chunk of stdout.
    Stdout(String),
    /// A chunk of stderr.
    Stderr(String),
    /// The process exited; the stream ends after this.
    Exit {
        /// Exit code.
        exit_code: i32,
    },
}

/// A command whose output arrives while it runs. Read it with [`ExecStream::next_event`].
pub struct ExecStream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
    request_id: String,
    done: bool,
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream").field("url", &self.url).field("request_id", &self.request_id).finish()
    }
}

impl Client {
    /// Starts `request` over the exec WebSocket channel and returns the stream of its events.
    pub async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecStream, ClientError> {
        let path = format!("/v1/sandboxes/{}/ws?channel=exec", segment(id));
        let mut socket = self.connect_ws(&path).await?;
        let url = ws_url(&self.url(&path));
        let request_id = format!("exec_{:08x}", rand::random::<u32>());
        let start = ExecClientMessage::ExecStart {
            id: request_id.clone(),
            command: request.command.clone(),
            args: request.args.clone(),
            timeout_secs: request.timeout_secs,
            cwd: request.cwd.clone(),
            envs: (!request.envs.is_empty()).then(|| request.envs.clone()),
            shell: request.shell,
        };
        let text = serde_json::to_string(&start).map_err(|e| ClientError::Stream { message: e.to_string() })?;
        socket.send(Message::text(text)).await.map_err(|e| ws_error(&url, e))?;
        Ok(ExecStream { socket, url, request_id, done: false })
    }

    /// Opens an authenticated WebSocket at `path` (with query), mapping a refused upgrade to an API error.
    pub(crate) async fn connect_ws(
        &self,
        path: &str,
    ) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, ClientError> {
        let url = ws_url(&self.url(path));
        let mut request = url.as_str().into_client_request().map_err(|e| ws_error(&url, e))?;
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.api_key()?))
            .map_err(|_| ClientError::Stream { message: "API key is not a valid header value".into() })?;
        request.headers_mut().insert("authorization", auth);
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                Err(ClientError::from_response(status, &body))
            }
            Err(error) => Err(ws_error(&url, error)),
        }
    }
}

impl ExecStream {
    /// The next event; `None` after [`ExecEvent::Exit`] or when the server closed the stream.
    pub async fn next_event(&mut self) -> Option<Result<ExecEvent, ClientError>> {
        if self.done {
            return None;
        }
        loop {
            let message = match self.socket.next().await {
                None => return self.finish(Some(self.closed_early())),
                Some(Err(error)) => return self.finish(Some(Err(ws_error(&self.url, error)))),
                Some(Ok(message)) => message,
            };
            let text = match &message {
                Message::Text(text) => text.as_str().to_owned(),
                Message::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Message::Close(_) => return self.finish(Some(self.closed_early())),
                _ => continue,
            };
            let Ok(parsed) = serde_json::from_str::<ExecServerMessage>(&text) else {
                continue;
            };
            let event = match parsed {
                ExecServerMessage::ExecStarted { pid, .. } => ExecEvent::Started { pid },
                ExecServerMessage::ExecStdout { data, .. } => ExecEvent::Stdout(data),
                ExecServerMessage::ExecStderr { data, .. } => ExecEvent::Stderr(data),
                ExecServerMessage::ExecExit { exit_code, .. } => {
                    let _ = self.socket.close(None).await;
                    self.done = true;
                    return Some(Ok(ExecEvent::Exit { exit_code }));
                }
                ExecServerMessage::Error { message, .. } => {
                    return self.finish(Some(Err(ClientError::Stream { message })));
                }
                ExecServerMessage::Unknown => continue,
            };
            return Some(Ok(event));
        }
    }

    /// Request id sent in `exec_start`.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    fn closed_early(&self) -> Result<ExecEvent, ClientError> {
        Err(ClientError::Stream { message: "the server closed the stream before the command exited".into() })
    }

    fn finish(&mut self, item: Option<Result<ExecEvent, ClientError>>) -> Option<Result<ExecEvent, ClientError>> {
        self.done = true;
        item
    }
}

/// `http(s)://…` → `ws(s)://…`.
pub(crate) fn ws_url(http_url: &str) -> String {
    if let Some(rest) = http_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http_url.to_owned()
    }
}

pub(crate) fn ws_error(url: &str, source: tungstenite::Error) -> ClientError {
    ClientError::WebSocket { url: url.to_owned(), source: Box::new(source) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_base_scheme() {
        assert_eq!(ws_url("http://h:1/v1/sandboxes/x/ws?channel=exec"), "ws://h:1/v1/sandboxes/x/ws?channel=exec");
        assert_eq!(ws_url("https://h/p"), "wss://h/p");
    }
}
