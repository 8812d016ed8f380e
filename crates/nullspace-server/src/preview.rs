//! Preview ports: a dedicated TCP listener per (sandbox, port) whose connections are tunnelled to that
//! port inside the sandbox through its guest. Raw TCP, so HTTP, streaming bodies and WebSocket upgrades
//! pass through untouched. Listeners close when their sandbox is destroyed (and when it is paused, unless
//! it has auto-resume: then each new connection first wakes it through its [`Wake`]). All preview ports together
//! hold at most as many connections as the API listener may (`--max-connections`); a connection over
//! that cap is closed at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use nullspace_node::GuestLink;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Makes the forward's sandbox run before a connection is tunnelled (auto-resume); the error says why it
/// could not, and the connection is closed.
pub type Wake = Arc<dyn Fn() -> WakeFuture + Send + Sync>;

/// What a [`Wake`] returns.
pub type WakeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One open forward.
struct Forward {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The open preview forwards of this server.
pub struct PreviewPorts {
    bind_ip: IpAddr,
    forwards: Mutex<HashMap<(String, u16), Forward>>,
    /// Connection slots shared by every preview port.
    slots: Arc<Semaphore>,
}

impl PreviewPorts {
    /// Forwards bound on `bind_ip` (the API's listen address), holding at most `max_connections`
    /// connections together.
    pub fn new(bind_ip: IpAddr, max_connections: usize) -> Self {
        Self { bind_ip, forwards: Mutex::default(), slots: Arc::new(Semaphore::new(max_connections.max(1))) }
    }

    /// The local address forwarding to `port` in `sandbox_id`, opening it on first use; `wake`, when
    /// given, runs before each connection is tunnelled.
    pub async fn ensure(
        &self,
        sandbox_id: &str,
        port: u16,
        guest: GuestLink,
        wake: Option<Wake>,
    ) -> std::io::Result<SocketAddr> {
        let key = (sandbox_id.to_owned(), port);
        if let Some(forward) = self.lock().get(&key) {
            return Ok(forward.address);
        }
        let listener = TcpListener::bind(SocketAddr::new(self.bind_ip, 0)).await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, guest, port, self.slots.clone(), wake));
        let mut forwards = self.lock();
        // A concurrent caller may have opened one meanwhile: keep the first, drop ours.
        Ok(forwards.entry(key).or_insert(Forward { address, task }).address)
    }

    /// Closes every forward of `sandbox_id`.
    pub fn close_sandbox(&self, sandbox_id: &str) {
        self.lock().retain(|(id, _), _| id != sandbox_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u16), Forward>> {
        self.forwards.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn accept_loop(listener: TcpListener, guest: GuestLink, port: u16, slots: Arc<Semaphore>, wake: Option<Wake>) {
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Some(stream) = crate::serve::Limited::admit(stream, &slots) else {
            tracing::debug!(port, "preview connection cap reached; closing a new connection");
            continue;
        };
        let guest = guest.clone();
        let wake = wake.clone();
        tokio::spawn(async move {
            if let Some(wake) = wake {
                if let Err(reason) = wake().await {
                    tracing::info!(port, reason, "closing a preview connection: its sandbox cannot run");
                    return;
                }
            }
            if let Err(error) = forward(stream, &guest, port).await {
                tracing::debug!(error = %crate::error_chain(error.as_ref()), port, "preview connection ended");
            }
        });
    }
}

async fn forward(
    mut stream: crate::serve::Limited,
    guest: &GuestLink,
    port: u16,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut tunnel = guest.tcp_tunnel(port).await?;
    tokio::io::copy_bidirectional(&mut stream, &mut tunnel).await?;
    Ok(())
}

/// Checks once whether `port` in the sandbox accepts connections (`http_path: None`) or answers an HTTP
/// `GET http_path` with a status below 500.
pub async fn probe(guest: &GuestLink, port: u16, http_path: Option<&str>) -> Result<(), String> {
    let tunnel = guest.tcp_tunnel(port).await.map_err(|error| crate::error_chain(&error))?;
    let Some(path) = http_path else { return Ok(()) };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tunnel))
        .await
        .map_err(|error| format!("http handshake failed: {error}"))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|error| error.to_string())?;
    let result = sender.send_request(request).await;
    driver.abort();
    match result {
        Ok(response) if response.status().as_u16() < 500 => Ok(()),
        Ok(response) => Err(format!("service answered {}", response.status())),
        Err(error) => Err(format!("http request failed: {error}")),
    }
}
