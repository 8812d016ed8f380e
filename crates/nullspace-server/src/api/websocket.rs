//! Relay of the sandbox WebSocket (`/v1/sandboxes/{id}/ws`: exec streams, PTYs, file watches) to the
//! guest's `/ws`, message for message.

use super::extract::Path;
use axum::extract::ws::{Message as ClientMessage, WebSocket};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use nullspace_types::ErrorCode;
use tokio_tungstenite::tungstenite::Message as GuestMessage;

use super::auth::Authenticated;
use super::{ApiError, AppState};

/// `GET /v1/sandboxes/{id}/ws` (upgrade).
pub async fn sandbox_ws(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Result<Response, ApiError> {
    let (_record, guest) = state.control.guest(&tenant, &id).await?;
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
    Ok(upgrade.max_message_size(16 << 20).on_upgrade(move |client| pump(client, guest_socket, |_| true)))
}

/// Relays messages both ways until either side closes; client text messages that `allow` refuses are dropped.
pub(super) async fn pump<S>(client: WebSocket, guest: tokio_tungstenite::WebSocketStream<S>, allow: fn(&str) -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut guest_tx, mut guest_rx) = guest.split();
    let upstream = async {
        while let Some(Ok(message)) = client_rx.next().await {
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
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
