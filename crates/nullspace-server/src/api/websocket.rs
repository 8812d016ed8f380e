//! Relay of the sandbox WebSocket (`/v1/sandboxes/{id}/ws`: exec streams, PTYs, file watches) to the
//! guest's `/ws`, message for message. Client messages are bounded ([`limits::WS_MESSAGE_LIMIT`]: a
//! larger one closes the socket with 1009), and an exec or PTY socket holds one of its sandbox's exec
//! slots while it is open.

use super::extract::Path;
use axum::extract::ws::{close_code, CloseFrame, Message as ClientMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use nullspace_types::ErrorCode;
use tokio_tungstenite::tungstenite::Message as GuestMessage;

use super::auth::Authenticated;
use super::limits::{self, ExecSlot};
use super::{ApiError, AppState};

/// How long a refused socket waits for the client's request before it closes.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /v1/sandboxes/{id}/ws` (upgrade).
pub async fn sandbox_ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Result<Response, ApiError> {
    let (_record, guest) = state.control.guest(&tenant, &id).await?;
    let upgrade = bounded(upgrade, limits::WS_MESSAGE_LIMIT);
    let mut slot = None;
    if query.as_deref().is_some_and(runs_processes) {
        match state.limits.execs.acquire(&id) {
            Ok(held) => slot = Some(held),
            // Refused in the channel's own words: the client reads an `error` message, then a close.
            Err(refusal) => return Ok(upgrade.on_upgrade(move |client| refuse(client, refusal))),
        }
    }
    let path = match query {
        Some(query) => format!("/ws?{query}"),
        None => "/ws".to_owned(),
    };
    let guest_socket = guest.websocket(&path).await.map_err(|error| {
        tracing::warn!(sandbox = %id, error = %crate::error_chain(&error), "guest websocket failed");
        ApiError::new(
            ErrorCode::Internal,
            format!("sandbox {id} did not accept the stream; check `GET /v1/sandboxes/{id}`"),
        )
    })?;
    Ok(upgrade.on_upgrade(move |client| async move {
        let _slot: Option<ExecSlot> = slot;
        pump(client, guest_socket, |_| true).await;
    }))
}

/// `upgrade` refusing client messages over `max` bytes. A frame may be twice that: a message over the
/// limit in one frame is then read whole and answered with a close (1009) the client receives, while a
/// frame over twice the limit is cut at its header.
pub(super) fn bounded(upgrade: WebSocketUpgrade, max: usize) -> WebSocketUpgrade {
    upgrade.max_message_size(max).max_frame_size(max.saturating_mul(2))
}

/// Whether the socket's `?channel=` runs processes (exec streams and PTYs, not file watches).
fn runs_processes(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, value)| key == "channel" && matches!(&*value, "exec" | "pty"))
}

/// Answers the client's first request (its `exec_start`, `pty_start`…) with an `error` saying why its
/// socket cannot run a process, then closes it (1013: try again later).
async fn refuse(mut client: WebSocket, refusal: ApiError) {
    let first = tokio::time::timeout(REFUSAL_WAIT, client.recv()).await.ok().flatten().and_then(Result::ok);
    let id = match first {
        Some(ClientMessage::Text(text)) => {
            serde_json::from_str::<serde_json::Value>(text.as_str()).ok().and_then(|request| request.get("id").cloned())
        }
        _ => None,
    };
    let (code, message) = refusal.parts();
    let body = serde_json::json!({"type": "error", "id": id, "code": code.as_str(), "message": message});
    let _ = client.send(ClientMessage::text(body.to_string())).await;
    let frame = CloseFrame { code: close_code::AGAIN, reason: "exec limit of the sandbox reached".into() };
    let _ = client.send(ClientMessage::Close(Some(frame))).await;
}

/// The close frame for a client read that failed: 1009 when the message was over the size limit.
pub(super) fn close_for(error: axum::Error) -> Option<CloseFrame> {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(capacity)) => {
            Some(CloseFrame { code: close_code::SIZE, reason: format!("message too big: {capacity}").into() })
        }
        _ => None,
    }
}

/// Relays messages both ways until either side closes; client text messages that `allow` refuses are dropped.
pub(super) async fn pump<S>(client: WebSocket, guest: tokio_tungstenite::WebSocketStream<S>, allow: fn(&str) -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut guest_tx, mut guest_rx) = guest.split();
    let upstream = async {
        let mut close = None;
        while let Some(read) = client_rx.next().await {
            let message = match read {
                Ok(message) => message,
                Err(error) => {
                    close = close_for(error);
                    break;
                }
            };
            let forwarded = match message {
                ClientMessage::Text(text) if allow(text.as_str()) => GuestMessage::text(text.as_str()),
                ClientMessage::Text(_) => continue,
                ClientMessage::Binary(bytes) => GuestMessage::binary(bytes),
                ClientMessage::Close(_) => break,
                // Pings are answered by axum itself.
                ClientMessage::Ping(_) | ClientMessage::Pong(_) => continue,
            };
            if guest_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = guest_tx.close().await;
        close
    };
    let downstream = async {
        while let Some(Ok(message)) = guest_rx.next().await {
            let forwarded = match message {
                GuestMessage::Text(text) => ClientMessage::text(text.as_str()),
                GuestMessage::Binary(bytes) => ClientMessage::Binary(bytes),
                GuestMessage::Close(_) => break,
                GuestMessage::Ping(_) | GuestMessage::Pong(_) | GuestMessage::Frame(_) => continue,
            };
            if client_tx.send(forwarded).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    let close = tokio::select! {
        close = upstream => close,
        () = downstream => None,
    };
    if let Some(frame) = close {
        let _ = client_tx.send(ClientMessage::Close(Some(frame))).await;
    }
}
