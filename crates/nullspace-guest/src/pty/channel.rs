//! The PTY messages of `GET /ws` (`?channel=pty`): `pty_start` and `pty_connect` attach the socket to a
//! session (`pty_started` first, then `pty_output`, then `pty_exited`); `pty_input`, `pty_resize` and
//! `pty_kill` act on any session by id and answer only on failure. Closing the socket detaches it; the
//! session keeps running.

use std::sync::Arc;

use base64::Engine;
use nullspace_types::pty_api::{PtyConnect, PtyInput, PtyKill, PtyResize, PtyServerMessage, PtyStart};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use super::session::{PtyEvent, PtySession};
use super::spawn::ShellSpec;
use super::table::check_size;
use crate::error::{GuestError, GuestResult};
use crate::exec::logs::Utf8Carry;
use crate::state::Sandbox;
use crate::ws::{send, Outbox};

/// Default terminal width.
pub const DEFAULT_COLS: u16 = 120;
/// Default terminal height.
pub const DEFAULT_ROWS: u16 = 30;

/// Whether `kind` is a PTY message type.
pub fn handles(kind: &str) -> bool {
    matches!(kind, "pty_start" | "pty_connect" | "pty_input" | "pty_resize" | "pty_kill")
}

/// One PTY message, parsed and checked (terminal sizes, `pty_input`'s bytes decoded).
#[derive(Debug)]
pub(crate) enum PtyRequest {
    Start(PtyStart),
    Connect(PtyConnect),
    /// Session id and the bytes to write.
    Input(String, Vec<u8>),
    Resize(PtyResize),
    Kill(PtyKill),
}

/// Parses a message of type `kind` (one [`handles`] accepts).
pub(crate) fn parse_request(kind: &str, value: Value) -> GuestResult<PtyRequest> {
    match kind {
        "pty_start" => {
            let request: PtyStart = parse(value)?;
            check_size(request.cols.unwrap_or(DEFAULT_COLS), request.rows.unwrap_or(DEFAULT_ROWS))?;
            Ok(PtyRequest::Start(request))
        }
        "pty_connect" => parse(value).map(PtyRequest::Connect),
        "pty_input" => {
            let request: PtyInput = parse(value)?;
            let bytes = match (request.data, request.data_base64) {
                (_, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|error| GuestError::invalid(format!("invalid data_base64: {error}")))?,
                (Some(text), None) => text.into_bytes(),
                (None, None) => return Err(GuestError::invalid("pty_input needs data or data_base64")),
            };
            Ok(PtyRequest::Input(request.session_id, bytes))
        }
        "pty_resize" => {
            let request: PtyResize = parse(value)?;
            check_size(request.cols, request.rows)?;
            Ok(PtyRequest::Resize(request))
        }
        _ => parse(value).map(PtyRequest::Kill),
    }
}

/// Handles one PTY message (already known to be one by [`handles`]).
pub async fn handle(sandbox: &Sandbox, kind: &str, value: Value, outbox: &Outbox, tasks: &mut JoinSet<()>) {
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let result = match parse_request(kind, value) {
        Ok(PtyRequest::Start(request)) => start(sandbox, request, outbox, tasks),
        Ok(PtyRequest::Connect(request)) => connect(sandbox, request, outbox, tasks),
        Ok(PtyRequest::Input(session_id, bytes)) => input(sandbox, &session_id, &bytes).await,
        Ok(PtyRequest::Resize(request)) => sandbox
            .ptys()
            .get(&request.session_id)
            .and_then(|session| resized(session.resize(request.cols, request.rows))),
        Ok(PtyRequest::Kill(request)) => sandbox.ptys().get(&request.session_id).map(|session| session.kill()),
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        let (_, body) = error.envelope();
        let message = PtyServerMessage::Error { id, message: body.error, code: Some(body.code) };
        send(outbox, &message).await;
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> GuestResult<T> {
    serde_json::from_value(value).map_err(|error| GuestError::invalid(format!("invalid message: {error}")))
}

fn resized(result: std::io::Result<()>) -> GuestResult<()> {
    result.map_err(|error| GuestError::Internal { context: format!("cannot resize the terminal: {error}") })
}

fn start(sandbox: &Sandbox, request: PtyStart, outbox: &Outbox, tasks: &mut JoinSet<()>) -> GuestResult<()> {
    let spec = ShellSpec {
        cols: request.cols.unwrap_or(DEFAULT_COLS),
        rows: request.rows.unwrap_or(DEFAULT_ROWS),
        cwd: request.cwd,
        envs: request.envs.unwrap_or_default(),
    };
    let session = sandbox.ptys().start(sandbox, &spec)?;
    attach(request.id, session, outbox, tasks);
    Ok(())
}

fn connect(sandbox: &Sandbox, request: PtyConnect, outbox: &Outbox, tasks: &mut JoinSet<()>) -> GuestResult<()> {
    let session = match (&request.session_id, request.pid) {
        (Some(session_id), None) => sandbox.ptys().get(session_id)?,
        (None, Some(pid)) => sandbox.ptys().by_pid(pid)?,
        _ => return Err(GuestError::invalid("pty_connect needs exactly one of session_id or pid")),
    };
    attach(request.id, session, outbox, tasks);
    Ok(())
}

async fn input(sandbox: &Sandbox, session_id: &str, bytes: &[u8]) -> GuestResult<()> {
    let session = sandbox.ptys().get(session_id)?;
    session
        .write(bytes)
        .await
        .map_err(|error| GuestError::Internal { context: format!("cannot write to session {}: {error}", session.id) })
}

/// Subscribes (before `pty_started` goes out, so nothing after it is missed) and streams the session.
fn attach(id: String, session: Arc<PtySession>, outbox: &Outbox, tasks: &mut JoinSet<()>) {
    let events = session.subscribe();
    tasks.spawn(forward(id, session, events, outbox.clone()));
}

async fn forward(id: String, session: Arc<PtySession>, mut events: broadcast::Receiver<PtyEvent>, outbox: Outbox) {
    let info = session.info();
    let started = PtyServerMessage::PtyStarted {
        id: id.clone(),
        session_id: info.session_id,
        pid: info.pid,
        cols: info.cols,
        rows: info.rows,
    };
    send(&outbox, &started).await;
    let mut carry = Utf8Carry::default();
    let exit_code = loop {
        if events.is_empty() {
            if let Some(code) = session.exit_code() {
                break code;
            }
        }
        match events.recv().await {
            Ok(PtyEvent::Output(bytes)) => {
                let message = PtyServerMessage::PtyOutput {
                    id: id.clone(),
                    data: carry.decode(&bytes),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
                };
                send(&outbox, &message).await;
            }
            Ok(PtyEvent::Exit(code)) => break code,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(session = %session.id, missed, "a pty reader fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => break session.exit_code().unwrap_or(-1),
        }
    };
    send(&outbox, &PtyServerMessage::PtyExited { id, exit_code }).await;
}
