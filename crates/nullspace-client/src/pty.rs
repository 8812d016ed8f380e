//! The PTY WebSocket channel: an interactive shell on a real terminal in the sandbox.
//! `pty_start` → `pty_started`, then `pty_input`/`pty_resize` up and `pty_output` down until `pty_exited`.

use base64::Engine;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use nullspace_types::pty_api::PtyServerMessage;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::{segment, Client};
use crate::error::ClientError;
use crate::ws::{ws_error, ws_url};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the terminal sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyEvent {
    /// Raw terminal output.
    Output(Vec<u8>),
    /// The shell exited with this code; the session is over.
    Exited(i32),
}

/// The sending half of a PTY session.
pub struct PtyWriter {
    sink: SplitSink<Socket, Message>,
    request_id: String,
    session_id: String,
}

/// The receiving half of a PTY session.
pub struct PtyReader {
    stream: SplitStream<Socket>,
    url: String,
}

/// A started PTY session, split into its halves.
pub struct PtySession {
    /// Session id (`ses_…`), usable to reconnect.
    pub session_id: String,
    /// Pid of the shell in the sandbox.
    pub pid: u32,
    /// Sends input and resizes.
    pub writer: PtyWriter,
    /// Receives output.
    pub reader: PtyReader,
}

impl Client {
    /// Starts a login shell on a `cols`×`rows` terminal in sandbox `id`.
    pub async fn pty_start(&self, id: &str, cols: u16, rows: u16) -> Result<PtySession, ClientError> {
        let path = format!("/v1/sandboxes/{}/ws?channel=pty", segment(id));
        let url = ws_url(&self.url(&path));
        let mut socket = self.connect_ws(&path).await?;
        let request_id = format!("pty_{:08x}", rand::random::<u32>());
        let start = json!({"type": "pty_start", "id": request_id, "cols": cols, "rows": rows});
        socket.send(Message::text(start.to_string())).await.map_err(|e| ws_error(&url, e))?;
        let (sink, mut stream) = socket.split();
        loop {
            let Some(message) = stream.next().await else {
                return Err(ClientError::Stream { message: "the server closed the terminal before it started".into() });
            };
            let message = message.map_err(|e| ws_error(&url, e))?;
            let Message::Text(text) = message else { continue };
            match serde_json::from_str::<PtyServerMessage>(text.as_str()) {
                Ok(PtyServerMessage::PtyStarted { session_id, pid, .. }) => {
                    let writer = PtyWriter { sink, request_id, session_id: session_id.clone() };
                    return Ok(PtySession { session_id, pid, writer, reader: PtyReader { stream, url } });
                }
                Ok(PtyServerMessage::Error { message, .. }) => return Err(ClientError::Stream { message }),
                _ => continue,
            }
        }
    }
}

impl PtyWriter {
    async fn send(&mut self, value: serde_json::Value) -> Result<(), ClientError> {
        self.sink
            .send(Message::text(value.to_string()))
            .await
            .map_err(|e| ClientError::Stream { message: e.to_string() })
    }

    /// Types `bytes` into the terminal.
    pub async fn input(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let message =
            json!({"type": "pty_input", "id": self.request_id, "session_id": self.session_id, "data_base64": data});
        self.send(message).await
    }

    /// Changes the terminal size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ClientError> {
        let message = json!({"type": "pty_resize", "id": self.request_id, "session_id": self.session_id, "cols": cols, "rows": rows});
        self.send(message).await
    }
}

impl PtyReader {
    /// The next output chunk or the exit; `None` when the stream ended without an exit.
    pub async fn next_event(&mut self) -> Option<Result<PtyEvent, ClientError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => return Some(Err(ws_error(&self.url, error))),
            };
            let text = match message {
                Message::Text(text) => text.as_str().to_owned(),
                Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Message::Close(_) => return None,
                _ => continue,
            };
            match serde_json::from_str::<PtyServerMessage>(&text) {
                Ok(PtyServerMessage::PtyOutput { data, data_base64, .. }) => {
                    let bytes =
                        base64::engine::general_purpose::STANDARD.decode(data_base64).unwrap_or(data.into_bytes());
                    return Some(Ok(PtyEvent::Output(bytes)));
                }
                Ok(PtyServerMessage::PtyExited { exit_code, .. }) => return Some(Ok(PtyEvent::Exited(exit_code))),
                Ok(PtyServerMessage::Error { message, .. }) => return Some(Err(ClientError::Stream { message })),
                _ => continue,
            }
        }
    }
}
