//! The managed viewer's bridge: a client WebSocket (noVNC) joined to a byte stream to the sandbox's VNC
//! server. Server bytes go to the client as binary frames of at most [`MAX_FRAME`]; client binary frames go
//! to the server, through the [`ViewOnlyFilter`] in view-only sessions. The bridge ends when either side
//! closes, when the filter refuses the client's stream, or when `revoked` resolves (the key was rotated
//! or stopped), then the client gets a close frame saying why.

use std::future::Future;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::rfb_filter::ViewOnlyFilter;

/// Largest binary frame sent to the client (well below the protocol's 1 MiB).
pub const MAX_FRAME: usize = 64 * 1024;

/// Close code of a bridge ended by the server's policy (key rotated or stopped, or input refused).
const POLICY_CLOSE: u16 = 1008;
/// Close code of a bridge whose VNC server went away.
const GOING_AWAY_CLOSE: u16 = 1001;

/// Why the bridge ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The client closed or went away.
    Client,
    /// The VNC server closed or failed.
    Server,
    /// The client's stream was refused by the view-only filter.
    Refused(String),
    /// The key was revoked: the reason given to the client.
    Revoked(&'static str),
}

/// Joins `client` and `upstream` until one ends (see the module doc). `revoked` resolves to the reason
/// the key stopped working.
pub async fn bridge<S, R>(client: WebSocket, upstream: S, view_only: bool, revoked: R) -> Ended
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
    R: Future<Output = &'static str>,
{
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    let mut filter = view_only.then(ViewOnlyFilter::new);

    let to_server = async {
        let mut filtered = Vec::new();
        while let Some(Ok(message)) = client_rx.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                // noVNC speaks binary only; pings are answered by axum itself.
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
            };
            let result = match filter.as_mut() {
                None => upstream_tx.write_all(&bytes).await,
                Some(filter) => {
                    filtered.clear();
                    if let Err(error) = filter.feed(&bytes, &mut filtered) {
                        return Ended::Refused(error.to_string());
                    }
                    upstream_tx.write_all(&filtered).await
                }
            };
            if result.is_err() {
                return Ended::Server;
            }
        }
        Ended::Client
    };
    let to_client = async {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let n = match upstream_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return Ended::Server,
                Ok(n) => n,
            };
            if client_tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                return Ended::Client;
            }
        }
    };
    let ended = tokio::select! {
        ended = to_server => ended,
        ended = to_client => ended,
        reason = revoked => Ended::Revoked(reason),
    };
    let close = match &ended {
        Ended::Revoked(reason) => Some((POLICY_CLOSE, (*reason).to_owned())),
        Ended::Refused(why) => Some((POLICY_CLOSE, format!("refused: {why}"))),
        Ended::Server => Some((GOING_AWAY_CLOSE, "the desktop's VNC server closed the connection".to_owned())),
        Ended::Client => None,
    };
    if let Some((code, mut reason)) = close {
        let mut cut = reason.len().min(120); // close reasons are at most 123 bytes
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        let _ = client_tx.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
    let _ = upstream_tx.shutdown().await;
    ended
}

#[cfg(test)]
#[path = "desktop_bridge_tests.rs"]
mod tests;
