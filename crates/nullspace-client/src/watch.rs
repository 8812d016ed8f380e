//! File watches over the WebSocket of a sandbox or volume (`{prefix}/ws`): send `file_watch`, wait for
//! `file_watch_started`, then read `file_event`s until the caller stops or the server reports an error.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nullspace_types::watch_api::WatchServerMessage;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::files::Files;
use crate::ws::{ws_error, ws_url};

/// How long the server may take to arm a watch.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// One change below a watched directory (the official client's `FileEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEvent {
    /// `create`, `write`, `remove`, `rename` or `chmod`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Path relative to the watched directory.
    pub name: String,
    /// Absolute path.
    pub path: String,
    /// Same as `type`.
    pub event_type: String,
}

/// An armed watch. Read it with [`FileWatch::next_event`]; dropping it stops the watch.
pub struct FileWatch {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    url: String,
    id: String,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").field("url", &self.url).field("id", &self.id).finish()
    }
}

impl Files<'_> {
    /// Starts watching the directory `path` (and below it when `recursive`).
    pub async fn watch(&self, path: &str, recursive: bool) -> Result<FileWatch, ClientError> {
        let route = self.route("/ws");
        let socket = self.client.connect_ws(&route).await?;
        let url = ws_url(&self.client.url(&route));
        let id = format!("watch_{}", rand::random::<u32>());
        // `user` is always present (null: the default user; volumes have none); the timeout is ours.
        let start = json!({
            "type": "file_watch", "id": id, "path": path, "user": null, "recursive": recursive, "timeout_secs": null,
        });
        let mut watch = FileWatch { socket, url, id };
        watch.socket.send(Message::text(start.to_string())).await.map_err(|e| ws_error(&watch.url, e))?;
        match tokio::time::timeout(HANDSHAKE, watch.handshake()).await {
            Ok(result) => result.map(|()| watch),
            Err(_) => Err(ClientError::Stream { message: format!("the watch of {path} was not armed within 5 s") }),
        }
    }
}

impl FileWatch {
    async fn handshake(&mut self) -> Result<(), ClientError> {
        loop {
            match self.next_message().await? {
                Some(WatchServerMessage::FileWatchStarted { .. }) => return Ok(()),
                Some(WatchServerMessage::Error { message, .. }) => return Err(ClientError::Stream { message }),
                Some(WatchServerMessage::FileEvent { .. }) => continue,
                None => return Err(closed()),
            }
        }
    }

    /// The next change; `None` when the server closed the stream. A server-side watch error ends it.
    pub async fn next_event(&mut self) -> Option<Result<FileEvent, ClientError>> {
        loop {
            match self.next_message().await {
                Err(error) => return Some(Err(error)),
                Ok(None) => return None,
                Ok(Some(WatchServerMessage::FileEvent { event, name, path, .. })) => {
                    return Some(Ok(FileEvent { kind: event.clone(), name, path, event_type: event }));
                }
                Ok(Some(WatchServerMessage::Error { message, .. })) => {
                    return Some(Err(ClientError::Stream { message }))
                }
                Ok(Some(WatchServerMessage::FileWatchStarted { .. })) => continue,
            }
        }
    }

    /// Stops the watch (closes the socket).
    pub async fn stop(mut self) {
        let _ = self.socket.close(None).await;
    }

    /// The next message of this watch (other ids and unknown types are skipped); `None` once closed.
    async fn next_message(&mut self) -> Result<Option<WatchServerMessage>, ClientError> {
        loop {
            let text = match self.socket.next().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(ws_error(&self.url, error)),
                Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
                Some(Ok(Message::Binary(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(_)) => continue,
            };
            let Ok(message) = serde_json::from_str::<WatchServerMessage>(&text) else { continue };
            let id = match &message {
                WatchServerMessage::FileWatchStarted { id }
                | WatchServerMessage::FileEvent { id, .. }
                | WatchServerMessage::Error { id, .. } => id,
            };
            if *id == self.id {
                return Ok(Some(message));
            }
        }
    }
}

fn closed() -> ClientError {
    ClientError::Stream { message: "the server closed the watch before it was armed".into() }
}
