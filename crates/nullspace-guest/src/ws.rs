//! `GET /ws`: one WebSocket carrying exec streams (`exec_start`, `exec_connect`), PTY sessions
//! (`pty_*`, see `pty::channel`) and file watches (`file_watch`), routed on each message's `type`.
//! Replies go through one writer task; closing the socket stops the streams and watches it opened but
//! never the processes or PTY sessions (they stay in the registry and the PTY table).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use nullspace_types::exec_api::ExecServerMessage;
use nullspace_types::watch_api::FileWatchRequest;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::exec::logs::{Stream, Utf8Carry};
use crate::exec::registry::{Process, ProcessEvent};
use crate::exec::service::{start, timeout_of};
use crate::exec::spawn::ExecSpec;
use crate::state::Sandbox;
use crate::watch;

/// Outgoing messages, already serialized.
pub type Outbox = mpsc::Sender<String>;

/// `exec_start` as guestd reads it (the public fields plus `user`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ExecStart {
    pub(crate) id: String,
    pub(crate) command: String,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) timeout_secs: Option<u64>,
    pub(crate) cwd: Option<String>,
    pub(crate) envs: Option<BTreeMap<String, String>>,
    pub(crate) shell: Option<bool>,
    pub(crate) user: Option<String>,
}

/// `exec_connect`.
#[derive(Debug, Deserialize)]
pub(crate) struct ExecConnect {
    id: String,
    pid: u32,
}

/// `GET /ws`.
pub async fn upgrade(State(sandbox): State<Sandbox>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(sandbox, socket))
}

async fn session(sandbox: Sandbox, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let (outbox, mut outgoing) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut tasks = JoinSet::new();
    while let Some(Ok(message)) = incoming.next().await {
        let text = match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        handle(&sandbox, &text, &outbox, &mut tasks).await;
    }
    tasks.abort_all();
    drop(outbox);
    let _ = writer.await;
}

/// One message of the socket, parsed (a PTY message is parsed further by [`crate::pty::channel`]).
#[derive(Debug)]
pub(crate) enum Request {
    ExecStart(ExecStart),
    ExecConnect(ExecConnect),
    FileWatch(FileWatchRequest),
    Pty(String, Value),
}

/// Parses one message; a malformed or unknown one is the error message to answer with.
pub(crate) fn parse(text: &str) -> Result<Request, ExecServerMessage> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => return Err(error_message(None, format!("invalid message: {error}"))),
    };
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let kind = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let invalid = |error: serde_json::Error| error_message(id.clone(), format!("invalid message: {error}"));
    match kind.as_str() {
        "exec_start" => serde_json::from_value(value).map(Request::ExecStart).map_err(invalid),
        "exec_connect" => serde_json::from_value(value).map(Request::ExecConnect).map_err(invalid),
        "file_watch" => serde_json::from_value(value).map(Request::FileWatch).map_err(invalid),
        pty if crate::pty::channel::handles(pty) => Ok(Request::Pty(kind, value)),
        other => {
            let message = format!("invalid message: unknown type {other:?}; send exec_start, exec_connect, pty_start, pty_connect, pty_input, pty_resize, pty_kill or file_watch");
            Err(error_message(id, message))
        }
    }
}

async fn handle(sandbox: &Sandbox, text: &str, outbox: &Outbox, tasks: &mut JoinSet<()>) {
    match parse(text) {
        Ok(Request::ExecStart(request)) => exec_start(sandbox, request, outbox, tasks).await,
        Ok(Request::ExecConnect(request)) => exec_connect(sandbox, request, outbox, tasks).await,
        Ok(Request::FileWatch(request)) => watch::start(sandbox, request, outbox.clone(), tasks).await,
        Ok(Request::Pty(kind, value)) => crate::pty::channel::handle(sandbox, &kind, value, outbox, tasks).await,
        Err(message) => send(outbox, &message).await,
    }
}

async fn exec_start(sandbox: &Sandbox, request: ExecStart, outbox: &Outbox, tasks: &mut JoinSet<()>) {
    let spec = ExecSpec {
        command: request.command,
        args: request.args.unwrap_or_default(),
        shell: request.shell.unwrap_or(false),
        cwd: request.cwd,
        envs: request.envs.unwrap_or_default(),
        user: request.user,
        stdin: true,
    };
    match start(sandbox, &spec, timeout_of(request.timeout_secs)) {
        Ok((process, events)) => {
            let outbox = outbox.clone();
            tasks.spawn(forward(request.id, process, events, outbox));
        }
        Err(error) => send(outbox, &error_message(Some(request.id), error.message())).await,
    }
}

async fn exec_connect(sandbox: &Sandbox, request: ExecConnect, outbox: &Outbox, tasks: &mut JoinSet<()>) {
    let Some(process) = sandbox.registry().get(request.pid) else {
        let message = format!("process {} not found; only processes started through exec can be attached", request.pid);
        return send(outbox, &error_message(Some(request.id), message)).await;
    };
    let events = process.subscribe();
    tasks.spawn(forward(request.id, process, events, outbox.clone()));
}

/// Streams one process to the socket: `exec_started`, its output, then `exec_exit`.
async fn forward(id: String, process: Arc<Process>, mut events: broadcast::Receiver<ProcessEvent>, outbox: Outbox) {
    send(&outbox, &ExecServerMessage::ExecStarted { id: id.clone(), pid: process.pid }).await;
    let mut carries = [Utf8Carry::default(), Utf8Carry::default()];
    let message = |stream: Stream, data: String| match stream {
        Stream::Stdout => ExecServerMessage::ExecStdout { id: id.clone(), data },
        Stream::Stderr => ExecServerMessage::ExecStderr { id: id.clone(), data },
    };
    let exit_code = loop {
        if events.is_empty() {
            if let Some(code) = process.exit_code() {
                break code;
            }
        }
        match events.recv().await {
            Ok(ProcessEvent::Output(stream, bytes)) => {
                let text = carries[stream as usize].decode(&bytes);
                if !text.is_empty() {
                    send(&outbox, &message(stream, text)).await;
                }
            }
            Ok(ProcessEvent::Exit(code)) => break code,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(pid = process.pid, missed, "a websocket reader fell behind; output chunks were dropped");
            }
            Err(broadcast::error::RecvError::Closed) => break process.exit_code().unwrap_or(-1),
        }
    };
    for (stream, carry) in [Stream::Stdout, Stream::Stderr].into_iter().zip(carries.iter_mut()) {
        let rest = carry.finish();
        if !rest.is_empty() {
            send(&outbox, &message(stream, rest)).await;
        }
    }
    send(&outbox, &ExecServerMessage::ExecExit { id, exit_code }).await;
}

fn error_message(id: Option<String>, message: String) -> ExecServerMessage {
    ExecServerMessage::Error { id, message }
}

/// Queues `message` for the socket (dropped if the socket is gone).
pub async fn send(outbox: &Outbox, message: &impl serde::Serialize) {
    if let Ok(text) = serde_json::to_string(message) {
        let _ = outbox.send(text).await;
    }
}
