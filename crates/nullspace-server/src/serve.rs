//! Serving the API listener: HTTP/1.1 with a timeout on request headers (which also bounds an idle
//! keep-alive connection waiting for its next request), a timeout on each wait for request body data,
//! and a cap on open connections. A connection over the cap is closed at once. Upgraded connections
//! (WebSockets, preview proxy upgrades) keep their slot until they close but are not timed, and neither
//! are response bodies: long-lived streams stay open, idle or slow requests do not.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Default time a client has to send a request's headers, and an idle connection to start its next request.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a request body may go without sending data while the server waits for it.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on open connections of the API listener (and, separately, of all preview ports).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Limits of the HTTP listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to receive a request's headers (and the first byte of the next request on an idle connection).
    pub header_timeout: Duration,
    /// Time each wait for request body data may take.
    pub body_timeout: Duration,
    /// Connections open at once on the API listener; the preview ports share another cap of this size.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then waits (bounded) for
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // HTTP/1 only (the official client speaks HTTP/1.1): hyper's HTTP/1 server times the wait for
    // request headers from the moment it waits for a request, so it also ends idle keep-alive connections
    // (the version-sniffing auto builder would wait for a first byte without any timeout).
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    // Told to stop at shutdown; each connection holds a receiver, so `closed()` says all are done.
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or an aborted handshake: back off briefly, keep serving.
                    tracing::debug!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(stream) = Limited::admit(stream, &slots) else {
            tracing::debug!(%peer, max = limits.max_connections, "connection cap reached; closing a new connection");
            continue;
        };
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(stop);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, stop_tx.closed()).await.is_err() {
        tracing::info!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    Ok(())
}

/// A connection counted against a cap: its slot is freed when the connection (or what it was upgraded
/// to) is dropped.
#[derive(Debug)]
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Limited {
    /// `stream` with a slot of `slots`; `None` (and the stream closed) when all are taken.
    pub fn admit(stream: TcpStream, slots: &Arc<Semaphore>) -> Option<Self> {
        let slot = slots.clone().try_acquire_owned().ok()?;
        // Small requests and interactive streams: do not wait to fill packets.
        let _ = stream.set_nodelay(true);
        Some(Self { stream, _slot: slot })
    }
}

impl AsyncRead for Limited {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: HttpLimits) -> SocketAddr {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/echo", post(|body: axum::body::Bytes| async move { body.len().to_string() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { serve(listener, app, &limits, std::future::pending()).await });
        address
    }

    /// Reads until the peer closes; returns what was read, or `None` when it is still open at `bound`.
    async fn read_to_close(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let read = tokio::time::timeout(bound, async {
            let mut buffer = [0_u8; 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => out.extend_from_slice(&buffer[..n]),
                }
            }
        });
        read.await.ok().map(|()| out)
    }

    fn quick() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            max_connections: 2,
        }
    }

    #[tokio::test]
    async fn slow_headers_idle_connections_and_slow_bodies_are_closed() {
        let address = start(quick()).await;
        let started = Instant::now();
        let mut idle = TcpStream::connect(address).await.unwrap();
        assert!(read_to_close(&mut idle, Duration::from_secs(10)).await.is_some(), "idle connection kept open");
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        assert!(read_to_close(&mut slow, Duration::from_secs(10)).await.is_some(), "slow headers kept open");
        let mut body = TcpStream::connect(address).await.unwrap();
        body.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc").await.unwrap();
        let answer = read_to_close(&mut body, Duration::from_secs(10)).await.expect("slow body kept open");
        assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "{}", String::from_utf8_lossy(&answer));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_until_one_frees() {
        let limits = HttpLimits { header_timeout: Duration::from_secs(60), ..quick() };
        let address = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            let mut buffer = [0_u8; 256];
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
            held.push(stream);
        }
        let mut over = TcpStream::connect(address).await.unwrap();
        let _ = over.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let answer = read_to_close(&mut over, Duration::from_secs(10)).await.expect("over-cap connection kept open");
        assert!(answer.is_empty(), "over-cap connection was served");
        drop(held.pop());
        let mut served = false;
        for _ in 0..100 {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
            let answer = read_to_close(&mut stream, Duration::from_secs(10)).await.unwrap_or_default();
            if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "a freed slot was not reused");
    }
}
