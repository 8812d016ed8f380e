//! Pooled HTTP/1.1 connections to a port inside a sandbox, opened through its guest's TCP tunnel: the
//! preview proxy and the code-interpreter relay send their requests here. Idle connections are kept per
//! (sandbox, port) for a while and reused; a response that switches protocols keeps its connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nullspace_node::GuestLink;

use super::proxy::PreviewTarget;

/// Idle upstream connections kept per (sandbox, port).
const MAX_IDLE_PER_TARGET: usize = 8;
/// Idle upstream connections older than this are dropped instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection to the port could be opened.
    #[error("nothing listens on port {port} in sandbox {sandbox_id}")]
    Unreachable { sandbox_id: String, port: u16, source: Box<dyn std::error::Error + Send + Sync> },
    /// The upstream failed mid-request.
    #[error("the service on port {port} in sandbox {sandbox_id} closed the connection without an answer")]
    Upstream { sandbox_id: String, port: u16, source: hyper::Error },
}

/// Idle connections by (sandbox, port), each with the time it became idle.
type IdleMap = HashMap<(String, u16), Vec<(Instant, SendRequest<Body>)>>;

/// Idle upstream HTTP/1.1 connections per (sandbox, port).
#[derive(Default)]
pub struct UpstreamPool {
    idle: Mutex<IdleMap>,
}

impl UpstreamPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleMap> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, key: &(String, u16)) -> Option<SendRequest<Body>> {
        let mut idle = self.lock();
        let senders = idle.get_mut(key)?;
        while let Some((since, sender)) = senders.pop() {
            if since.elapsed() < IDLE_TIMEOUT && !sender.is_closed() && sender.is_ready() {
                return Some(sender);
            }
        }
        idle.remove(key);
        None
    }

    fn put(&self, key: (String, u16), sender: SendRequest<Body>) {
        let mut idle = self.lock();
        if idle.len() > 256 {
            idle.retain(|_, senders| {
                senders.retain(|(since, sender)| since.elapsed() < IDLE_TIMEOUT && !sender.is_closed());
                !senders.is_empty()
            });
        }
        let senders = idle.entry(key).or_default();
        if senders.len() < MAX_IDLE_PER_TARGET {
            senders.push((Instant::now(), sender));
        }
    }

    /// Sends `request` on an idle connection to the target, or a new one through `guest`'s tunnel.
    pub async fn send(
        self: &Arc<Self>,
        guest: &GuestLink,
        target: &PreviewTarget,
        mut request: hyper::Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ForwardError> {
        let key = (target.sandbox_id.clone(), target.port);
        let upstream = |source| ForwardError::Upstream { sandbox_id: key.0.clone(), port: key.1, source };
        while let Some(mut sender) = self.take(&key) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.recycle(key.clone(), sender, &response);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent, // the idle connection was closed: try the next one
                    None => return Err(upstream(error.into_error())),
                },
            }
        }
        let unreachable = |source: Box<dyn std::error::Error + Send + Sync>| ForwardError::Unreachable {
            sandbox_id: target.sandbox_id.clone(),
            port: target.port,
            source,
        };
        let tunnel = guest.tcp_tunnel(target.port).await.map_err(|error| unreachable(Box::new(error)))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tunnel)).await.map_err(|e| unreachable(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "preview upstream connection ended");
            }
        });
        let response = sender.send_request(request).await.map_err(upstream)?;
        self.recycle(key, sender, &response);
        Ok(response)
    }

    /// Returns `sender` to the pool once its connection can take another request (after the response body
    /// is done), unless the response switches protocols.
    fn recycle(
        self: &Arc<Self>,
        key: (String, u16),
        mut sender: SendRequest<Body>,
        response: &hyper::Response<hyper::body::Incoming>,
    ) {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(key, sender);
            }
        });
    }
}
