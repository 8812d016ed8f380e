//! The bridge against a real VNC server: `Xtigervnc :81 -rfbport 5981 -SecurityTypes None` on the host
//! (Debian `tigervnc-standalone-server`; the pointer is read back with `xdotool`). A test axum server
//! bridges `/ws` to it, and a tungstenite client speaks RFB through the bridge as noVNC would.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::Query;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::*;

const DISPLAY: &str = ":81";
const RFB_PORT: u16 = 5981;

/// The X/VNC server of these tests, killed (by its pid) when dropped.
struct Xvnc(Child);

impl Drop for Xvnc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_xvnc() -> Xvnc {
    let child = Command::new("Xtigervnc")
        .args([DISPLAY, "-rfbport", &RFB_PORT.to_string(), "-SecurityTypes", "None", "-AlwaysShared"])
        .args(["-geometry", "640x480", "-depth", "24", "-localhost", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xtigervnc must be installed (Debian tigervnc-standalone-server) for the viewer bridge tests");
    let server = Xvnc(child);
    // Ready once the RFB port accepts (bounded: 200 tries).
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", RFB_PORT)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Xtigervnc {DISPLAY} did not listen on {RFB_PORT}");
}

fn pointer_location() -> (i32, i32) {
    let output = Command::new("xdotool")
        .args(["getmouselocation", "--shell"])
        .env("DISPLAY", DISPLAY)
        .output()
        .expect("xdotool must be installed for the viewer bridge tests");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> i32 {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')?.parse().ok()).unwrap_or(-1)
    };
    (field("X"), field("Y"))
}

#[derive(serde::Deserialize)]
struct BridgeQuery {
    view_only: bool,
}

/// A server bridging `/ws` to the test VNC server; `revoke` ends its bridges with the sent reason.
async fn serve_bridge() -> (std::net::SocketAddr, watch::Sender<Option<&'static str>>) {
    let (revoke, revoked) = watch::channel(None::<&'static str>);
    let app = axum::Router::new().route(
        "/ws",
        get(move |Query(query): Query<BridgeQuery>, upgrade: WebSocketUpgrade| {
            let mut revoked = revoked.clone();
            async move {
                let upstream = TcpStream::connect(("127.0.0.1", RFB_PORT)).await.unwrap();
                let reason = async move {
                    let value = revoked.wait_for(Option::is_some).await.map(|v| *v);
                    value.ok().flatten().unwrap_or("gone")
                };
                upgrade.on_upgrade(move |socket| async move {
                    bridge(socket, upstream, query.view_only, reason).await;
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, revoke)
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// An RFB client over the bridge: bytes read from binary frames, which may split messages anywhere.
struct Rfb {
    ws: Client,
    buffer: Vec<u8>,
    frames: Vec<usize>,
}

impl Rfb {
    async fn connect(address: std::net::SocketAddr, view_only: bool) -> Self {
        let url = format!("ws://{address}/ws?view_only={view_only}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws, buffer: Vec::new(), frames: Vec::new() }
    }

    async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buffer.len() < n {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("the bridge answered within 10 s")
                .expect("the bridge is open")
                .unwrap();
            match message {
                Message::Binary(bytes) => {
                    self.frames.push(bytes.len());
                    self.buffer.extend_from_slice(&bytes);
                }
                other => panic!("expected a binary frame, got {other:?}"),
            }
        }
        self.buffer.drain(..n).collect()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    /// The RFB 3.8 handshake with security None; returns bytes per pixel.
    async fn handshake(&mut self) -> usize {
        assert_eq!(self.read(12).await, b"RFB 003.008\n", "the server's greeting comes first");
        // Split the version across two frames, as a WebSocket client may.
        self.send(b"RFB 003").await;
        self.send(b".008\n").await;
        let count = self.read(1).await[0] as usize;
        assert!(self.read(count).await.contains(&1), "the server offers security None");
        self.send(&[1]).await;
        assert_eq!(self.read(4).await, [0, 0, 0, 0], "security result ok");
        self.send(&[1]).await; // ClientInit, shared
        let init = self.read(24).await;
        assert_eq!(&init[..4], &[2, 128, 1, 224], "640x480");
        let name_length = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
        self.read(name_length).await;
        usize::from(init[4] / 8)
    }

    /// Requests one pixel and reads the FramebufferUpdate: every message sent before was processed.
    async fn round_trip(&mut self, bytes_per_pixel: usize) {
        self.send(&[3, 0, 0, 0, 0, 0, 0, 1, 0, 1]).await;
        loop {
            let kind = self.read(1).await[0];
            match kind {
                0 => break,
                2 => continue, // Bell
                other => panic!("unexpected server message {other}"),
            }
        }
        let header = self.read(3).await;
        for _ in 0..u16::from_be_bytes([header[1], header[2]]) {
            let rect = self.read(12).await;
            let (w, h) = (u16::from_be_bytes([rect[4], rect[5]]), u16::from_be_bytes([rect[6], rect[7]]));
            assert_eq!(&rect[8..12], &[0, 0, 0, 0], "raw encoding");
            self.read(usize::from(w) * usize::from(h) * bytes_per_pixel).await;
        }
    }
}

fn pointer_event(x: u16, y: u16) -> Vec<u8> {
    [&[5u8, 0][..], &x.to_be_bytes(), &y.to_be_bytes()].concat()
}

/// One test (one X server on a fixed display): interactive input reaches the server, view-only input
/// does not, and a revoked key closes the bridge with its reason.
#[tokio::test]
async fn the_bridge_carries_rfb_to_a_real_vnc_server_and_view_only_drops_input() {
    let _xvnc = start_xvnc().await;
    let (address, revoke) = serve_bridge().await;

    let mut interactive = Rfb::connect(address, false).await;
    let bpp = interactive.handshake().await;
    interactive.send(&pointer_event(123, 45)).await;
    interactive.round_trip(bpp).await;
    assert_eq!(pointer_location(), (123, 45), "interactive pointer events reach the desktop");

    let mut viewer = Rfb::connect(address, true).await;
    let bpp = viewer.handshake().await;
    // Split a key event and a pointer event across frames: both are dropped, the update request passes.
    let mut input = vec![4, 1, 0, 0, 0, 0, 0, 0x61];
    input.extend_from_slice(&pointer_event(300, 200));
    let (a, b) = input.split_at(5);
    viewer.send(a).await;
    viewer.send(b).await;
    viewer.round_trip(bpp).await;
    assert_eq!(pointer_location(), (123, 45), "view-only pointer events do not reach the desktop");
    assert!(viewer.frames.iter().chain(&interactive.frames).all(|&n| n <= MAX_FRAME));

    revoke.send_replace(Some("viewer session replaced"));
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), viewer.ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "viewer session replaced");
}
