//! The node's link to one sandbox's guest daemon: HTTP/1.1 and WebSocket over the guest's unix socket.
//! Requests and responses stream through untouched; this module knows transport, not routes. A link
//! made by the node reuses idle connections to its guest ([`GuestPool`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nullspace_types::guest::{GuestHealth, GUEST_PROTOCOL_VERSION};
use tokio::net::UnixStream;
use tokio_tungstenite::WebSocketStream;

use crate::guest_pool::{GuestBody, GuestPool};
use crate::{GuestPeer, NodeError, NodeResult};

/// A handle on one guest's socket; cheap to create and clone.
#[derive(Debug, Clone)]
pub struct GuestLink {
    sandbox_id: String,
    socket: PathBuf,
    peer: GuestPeer,
    /// Where idle connections to this guest are kept (none: one connection per request).
    pool: Option<Arc<GuestPool>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl GuestLink {
    /// A link to the guest of `sandbox_id` listening on `socket`, which only `peer` may serve (the socket's
    /// directory is writable by the sandbox: see [`crate::guest_socket`]).
    pub fn new(sandbox_id: impl Into<String>, socket: PathBuf, peer: GuestPeer) -> Self {
        Self { sandbox_id: sandbox_id.into(), socket, peer, pool: None }
    }

    /// The same link, reusing idle connections kept in `pool`.
    pub fn pooled(mut self, pool: Arc<GuestPool>) -> Self {
        self.pool = Some(pool);
        self
    }

    fn request_error(&self, source: impl Into<BoxError>) -> NodeError {
        NodeError::GuestRequest { sandbox_id: self.sandbox_id.clone(), source: source.into() }
    }

    async fn connect(&self) -> NodeResult<UnixStream> {
        crate::guest_socket::connect(&self.socket, &self.peer).await.map_err(|error| self.request_error(error))
    }

    /// Sends `request` (whose URI holds only path and query) to the guest and returns its response with
    /// the body still streaming. Upgrades (WebSocket, TCP tunnels) are kept available on the response.
    /// An idle pooled connection is used when there is one; a request that one could not take (it
    /// closed meanwhile) goes on the next, then on a new connection. A request the guest may have
    /// received is never sent twice.
    pub async fn send<B>(&self, request: Request<B>) -> NodeResult<Response<Incoming>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut request = request.map(|body| body.map_err(Into::into).boxed_unsync());
        request.headers_mut().insert(hyper::header::HOST, hyper::header::HeaderValue::from_static("guest"));
        let key = (self.sandbox_id.clone(), self.socket.clone());
        if let Some(pool) = &self.pool {
            while let Some(mut sender) = pool.take(&key) {
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        pool.recycle(key, sender, response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS);
                        return Ok(response);
                    }
                    Err(mut error) => match error.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(self.request_error(error.into_error())),
                    },
                }
            }
        }
        let stream = self.connect().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, GuestBody>(TokioIo::new(stream))
            .await
            .map_err(|error| self.request_error(error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "guest connection ended with an error");
            }
        });
        let response = sender.send_request(request).await.map_err(|error| self.request_error(error))?;
        if let Some(pool) = &self.pool {
            pool.recycle(key, sender, response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS);
        }
        Ok(response)
    }

    /// Opens a WebSocket to the guest at `path_and_query` (e.g. `/ws?channel=exec`).
    pub async fn websocket(&self, path_and_query: &str) -> NodeResult<WebSocketStream<UnixStream>> {
        let stream = self.connect().await?;
        let url = format!("ws://guest{path_and_query}");
        let (socket, _response) =
            tokio_tungstenite::client_async(url, stream).await.map_err(|error| self.request_error(error))?;
        Ok(socket)
    }

    /// Opens a TCP tunnel to `127.0.0.1:{port}` inside the sandbox (the guest's `/tcp/{port}` upgrade).
    pub async fn tcp_tunnel(&self, port: u16) -> NodeResult<TokioIo<hyper::upgrade::Upgraded>> {
        let request = Request::get(format!("/tcp/{port}"))
            .header(hyper::header::CONNECTION, "upgrade")
            .header(hyper::header::UPGRADE, "tcp")
            .body(Empty::<Bytes>::new())
            .map_err(|error| self.request_error(error))?;
        let response = self.send(request).await?;
        if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let message = String::from_utf8_lossy(&body).into_owned();
            return Err(self.request_error(format!("tunnel to port {port} refused ({status}): {message}")));
        }
        let upgraded = hyper::upgrade::on(response).await.map_err(|error| self.request_error(error))?;
        Ok(TokioIo::new(upgraded))
    }

    /// Asks the guest for its health once.
    pub async fn health(&self) -> NodeResult<GuestHealth> {
        let request = Request::get("/health").body(Empty::<Bytes>::new()).map_err(|error| self.request_error(error))?;
        let response = self.send(request).await?;
        let body = response.into_body().collect().await.map_err(|error| self.request_error(error))?.to_bytes();
        serde_json::from_slice(&body).map_err(|error| self.request_error(error))
    }

    /// Waits until the guest answers `/health` with our protocol version, polling quickly: this wait is
    /// most of a sandbox's create latency.
    pub async fn wait_ready(&self, timeout: Duration, init_log: PathBuf) -> NodeResult<()> {
        let started = Instant::now();
        // The guest usually answers within a few milliseconds of its start: poll every millisecond (a
        // stat of the socket entry, never following it) while it is likely to come up, then back off.
        let mut delay = Duration::from_millis(1);
        loop {
            if crate::guest_socket::is_socket(&self.socket) {
                if let Ok(health) = self.health().await {
                    if health.protocol_version != GUEST_PROTOCOL_VERSION {
                        return Err(NodeError::GuestProtocol {
                            sandbox_id: self.sandbox_id.clone(),
                            found: health.protocol_version,
                            expected: GUEST_PROTOCOL_VERSION,
                        });
                    }
                    return Ok(());
                }
            }
            if started.elapsed() >= timeout {
                return Err(NodeError::GuestNotReady {
                    sandbox_id: self.sandbox_id.clone(),
                    waited_ms: started.elapsed().as_millis() as u64,
                    log: init_log,
                });
            }
            tokio::time::sleep(delay).await;
            if started.elapsed() > Duration::from_millis(200) {
                delay = (delay * 2).min(Duration::from_millis(20));
            }
        }
    }
}
