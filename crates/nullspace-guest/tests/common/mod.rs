//! Test harness: runs the real `nullspace-guestd` binary as an ordinary process on a temporary control
//! directory and talks to it over its unix socket (HTTP via hyper, WebSocket via tokio-tungstenite).
#![allow(dead_code, unused_imports)]

pub use std::path::PathBuf;
pub use std::process::{Child, Command, Stdio};
pub use std::time::{Duration, Instant};

pub use bytes::Bytes;
pub use futures::{SinkExt, StreamExt};
pub use http_body_util::{BodyExt, Full};
pub use hyper::{Request, StatusCode};
pub use hyper_util::rt::TokioIo;
pub use serde_json::{json, Value};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::UnixStream;
pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::WebSocketStream;

pub struct Guest {
    child: Child,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guest {
    pub async fn start() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control");
        std::fs::create_dir_all(&control).unwrap();
        let cwd = dir.path().join("work");
        let config = json!({
            "sandbox_id": "sb_test",
            "envs": {"SANDBOX_VAR": "from-config"},
            "cwd": cwd.display().to_string(),
            "default_user": "root",
        });
        std::fs::write(control.join("config.json"), config.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nullspace-guestd"))
            .arg("--control-dir")
            .arg(&control)
            .arg("--no-write-profile")
            .env("RUST_LOG", "warn")
            .env("NULLSPACE_GUEST_STAGING_DIR", dir.path().join("staging"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let guest = Guest { child, socket: control.join("guest.sock"), dir };
        let started = Instant::now();
        loop {
            if guest.socket.exists() {
                if let Ok((status, _)) = guest.try_call("GET", "/health", None).await {
                    if status == StatusCode::OK {
                        break;
                    }
                }
            }
            assert!(started.elapsed() < Duration::from_secs(10), "guestd did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(cwd.is_dir(), "boot creates the default cwd");
        guest
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn staging(&self) -> PathBuf {
        self.dir.path().join("staging")
    }

    /// A request with extra headers and a raw body.
    pub async fn with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path).header("host", "guest");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let (status, bytes) = self.send(request).await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, value)
    }

    pub fn cwd(&self) -> String {
        self.dir.path().join("work").display().to_string()
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Box<dyn std::error::Error>> {
        let stream = UnixStream::connect(&self.socket).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "guest")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = self.send(request).await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, value))
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.try_call(method, path, body).await.unwrap()
    }

    pub async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        value
    }

    pub async fn raw(&self, method: &str, path: &str, body: Vec<u8>, content_type: &str) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "guest")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.send(request).await.unwrap()
    }

    pub async fn websocket(&self) -> WebSocketStream<UnixStream> {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        tokio_tungstenite::client_async("ws://guest/ws?channel=exec", stream).await.unwrap().0
    }

    pub async fn logs_until_exit(&self, pid: u64) -> Value {
        let started = Instant::now();
        loop {
            let (status, logs) = self.call("GET", &format!("/processes/{pid}/logs"), None).await;
            assert_eq!(status, StatusCode::OK, "{logs}");
            if !logs["exit_code"].is_null() {
                return logs;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "process {pid} did not exit: {logs}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn is_root() -> bool {
    nix_like_geteuid() == 0
}

fn nix_like_geteuid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|line| line.starts_with("Uid:")).map(str::to_owned))
        .and_then(|line| line.split_whitespace().nth(2).and_then(|uid| uid.parse().ok()))
        .unwrap_or(u32::MAX)
}

pub async fn next_json(ws: &mut WebSocketStream<UnixStream>) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("websocket reply in time");
        match message.expect("socket open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            _ => continue,
        }
    }
}
