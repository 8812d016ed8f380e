//! A minimal RFB (VNC) client for `nullspace bench`'s viewer frame rate: the 3.8 handshake with security
//! type None, raw encoding only, and counting of framebuffer updates. The byte parsing is sans-IO
//! ([`parse_version`], [`parse_server_init`], [`next_message`]); [`Link`] carries bytes over a TCP
//! stream (raw VNC) or the managed viewer's WebSocket (binary frames).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The protocol version this client speaks.
const VERSION: &[u8; 12] = b"RFB 003.008\n";
/// Security type None.
const SECURITY_NONE: u8 = 1;
/// Raw encoding.
const ENCODING_RAW: i32 = 0;

/// A byte stream to an RFB server.
pub(super) enum Link {
    /// A direct TCP connection (a raw VNC address).
    Tcp(TcpStream),
    /// A WebSocket whose binary frames carry the stream (the managed viewer).
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
}

impl Link {
    /// Some bytes from the server; an error when it closed.
    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        match self {
            Link::Tcp(stream) => {
                let mut buf = vec![0u8; 256 * 1024];
                let n = stream.read(&mut buf).await.context("reading from the VNC server")?;
                if n == 0 {
                    bail!("the VNC server closed the connection");
                }
                buf.truncate(n);
                Ok(buf)
            }
            Link::Ws(socket) => loop {
                match socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
                    Some(Ok(Message::Close(frame))) => bail!("the viewer WebSocket was closed: {frame:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(error).context("reading the viewer WebSocket"),
                    None => bail!("the viewer WebSocket ended"),
                }
            },
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Link::Tcp(stream) => stream.write_all(bytes).await.context("writing to the VNC server"),
            Link::Ws(socket) => {
                socket.send(Message::binary(bytes.to_vec())).await.context("writing to the viewer WebSocket")
            }
        }
    }
}

/// The server's answer to the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServerInit {
    pub(super) width: u16,
    pub(super) height: u16,
    pub(super) bytes_per_pixel: usize,
    pub(super) name: String,
}

/// A server-to-client message, as far as counting updates needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ServerMessage {
    /// A framebuffer update with this many rectangles.
    FramebufferUpdate {
        rects: u16,
    },
    SetColourMapEntries,
    Bell,
    ServerCutText,
}

/// The version of a 12-byte ProtocolVersion message (`RFB 003.008\n` → (3, 8)).
pub(super) fn parse_version(bytes: &[u8]) -> anyhow::Result<(u16, u16)> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.len() == 12 && t.starts_with("RFB ") && t.ends_with('\n'));
    let parsed = text.and_then(|t| Some((t[4..7].parse().ok()?, t[8..11].parse().ok()?)));
    parsed.with_context(|| format!("not an RFB protocol version: {bytes:?}"))
}

/// The ServerInit message when `bytes` holds all of it: the init and its length.
pub(super) fn parse_server_init(bytes: &[u8]) -> anyhow::Result<Option<(ServerInit, usize)>> {
    if bytes.len() < 24 {
        return Ok(None);
    }
    let name_len = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes")) as usize;
    if name_len > 1 << 16 {
        bail!("the server's desktop name is {name_len} bytes long");
    }
    if bytes.len() < 24 + name_len {
        return Ok(None);
    }
    let bits = bytes[4];
    if !matches!(bits, 8 | 16 | 32) {
        bail!("the server's pixel format has {bits} bits per pixel");
    }
    let init = ServerInit {
        width: u16::from_be_bytes([bytes[0], bytes[1]]),
        height: u16::from_be_bytes([bytes[2], bytes[3]]),
        bytes_per_pixel: usize::from(bits / 8),
        name: String::from_utf8_lossy(&bytes[24..24 + name_len]).into_owned(),
    };
    Ok(Some((init, 24 + name_len)))
}

/// The first server message in `bytes` when it is complete: the message and its length. Rectangles
/// must be raw-encoded (the only encoding this client asks for).
pub(super) fn next_message(bytes: &[u8], bytes_per_pixel: usize) -> anyhow::Result<Option<(ServerMessage, usize)>> {
    let Some(&kind) = bytes.first() else { return Ok(None) };
    let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    match kind {
        0 => {
            if bytes.len() < 4 {
                return Ok(None);
            }
            let rects = u16_at(2);
            let mut at = 4;
            for _ in 0..rects {
                if bytes.len() < at + 12 {
                    return Ok(None);
                }
                let (width, height) = (usize::from(u16_at(at + 4)), usize::from(u16_at(at + 6)));
                let encoding = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
                if encoding != ENCODING_RAW {
                    bail!("the server sent a rectangle in encoding {encoding}, not raw");
                }
                at += 12 + width * height * bytes_per_pixel;
            }
            Ok((bytes.len() >= at).then_some((ServerMessage::FramebufferUpdate { rects }, at)))
        }
        1 => {
            if bytes.len() < 6 {
                return Ok(None);
            }
            let end = 6 + 6 * usize::from(u16_at(4));
            Ok((bytes.len() >= end).then_some((ServerMessage::SetColourMapEntries, end)))
        }
        2 => Ok(Some((ServerMessage::Bell, 1))),
        3 => {
            if bytes.len() < 8 {
                return Ok(None);
            }
            let end = 8 + u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
            Ok((bytes.len() >= end).then_some((ServerMessage::ServerCutText, end)))
        }
        other => bail!("unknown RFB server message type {other}"),
    }
}

/// `FramebufferUpdateRequest` of the whole screen.
pub(super) fn update_request(incremental: bool, init: &ServerInit) -> [u8; 10] {
    let [w0, w1] = init.width.to_be_bytes();
    let [h0, h1] = init.height.to_be_bytes();
    [3, u8::from(incremental), 0, 0, 0, 0, w0, w1, h0, h1]
}

/// `SetEncodings` asking for raw rectangles only.
pub(super) fn set_encodings_raw() -> [u8; 8] {
    let [e0, e1, e2, e3] = ENCODING_RAW.to_be_bytes();
    [2, 0, 0, 1, e0, e1, e2, e3]
}

/// A connected RFB session past the handshake.
pub(super) struct Session {
    link: Link,
    buf: Vec<u8>,
    pub(super) init: ServerInit,
}

impl Session {
    /// Runs the 3.8 handshake (security None, shared session) over `link`.
    pub(super) async fn handshake(mut link: Link) -> anyhow::Result<Session> {
        let mut buf = Vec::new();
        let version = take(&mut link, &mut buf, 12).await?;
        let (major, minor) = parse_version(&version)?;
        if (major, minor) < (3, 8) {
            bail!("the server speaks RFB {major}.{minor}; this client needs 3.8");
        }
        link.send(VERSION).await?;
        let count = take(&mut link, &mut buf, 1).await?[0];
        if count == 0 {
            let len = u32::from_be_bytes(take(&mut link, &mut buf, 4).await?.try_into().expect("4 bytes"));
            let reason = take(&mut link, &mut buf, len.min(4096) as usize).await?;
            bail!("the VNC server refused the connection: {}", String::from_utf8_lossy(&reason));
        }
        let types = take(&mut link, &mut buf, usize::from(count)).await?;
        if !types.contains(&SECURITY_NONE) {
            bail!("the VNC server offers security types {types:?}, not None (1)");
        }
        link.send(&[SECURITY_NONE]).await?;
        let result = u32::from_be_bytes(take(&mut link, &mut buf, 4).await?.try_into().expect("4 bytes"));
        if result != 0 {
            bail!("the VNC server failed security type None ({result})");
        }
        link.send(&[1]).await?; // ClientInit: shared
        let init = loop {
            if let Some((init, used)) = parse_server_init(&buf)? {
                buf.drain(..used);
                break init;
            }
            buf.extend(link.recv().await?);
        };
        link.send(&set_encodings_raw()).await?;
        Ok(Session { link, buf, init })
    }

    /// Asks for the whole screen once, then incrementally after each update, for `window` after the
    /// first update: the updates that came in that window, their bytes, and how long it really was.
    pub(super) async fn count_updates(&mut self, window: Duration) -> anyhow::Result<Counted> {
        self.link.send(&update_request(false, &self.init)).await?;
        let mut started: Option<Instant> = None;
        let (mut updates, mut bytes) = (0, 0);
        loop {
            while let Some((message, used)) = next_message(&self.buf, self.init.bytes_per_pixel)? {
                self.buf.drain(..used);
                if let ServerMessage::FramebufferUpdate { .. } = message {
                    match started {
                        None => started = Some(Instant::now()),
                        Some(at) if at.elapsed() >= window => {
                            return Ok(Counted { updates, bytes, took: at.elapsed() })
                        }
                        Some(_) => (updates, bytes) = (updates + 1, bytes + used),
                    }
                    self.link.send(&update_request(true, &self.init)).await?;
                }
            }
            self.buf.extend(self.link.recv().await?);
        }
    }
}

/// What [`Session::count_updates`] counted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counted {
    pub(super) updates: usize,
    pub(super) bytes: usize,
    pub(super) took: Duration,
}

/// The next `n` bytes of the stream.
async fn take(link: &mut Link, buf: &mut Vec<u8>, n: usize) -> anyhow::Result<Vec<u8>> {
    while buf.len() < n {
        buf.extend(link.recv().await?);
    }
    Ok(buf.drain(..n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_init(name: &str) -> Vec<u8> {
        let mut bytes = vec![0x07, 0x80, 0x04, 0x38, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0];
        bytes.extend((name.len() as u32).to_be_bytes());
        bytes.extend(name.as_bytes());
        bytes
    }

    #[test]
    fn versions_parse_and_junk_does_not() {
        assert_eq!(parse_version(b"RFB 003.008\n").unwrap(), (3, 8));
        assert_eq!(parse_version(b"RFB 003.889\n").unwrap(), (3, 889));
        assert!(parse_version(b"HTTP/1.1 400").is_err());
        assert!(parse_version(b"RFB 003.008").is_err());
    }

    #[test]
    fn server_init_waits_for_its_name_then_reads_the_pixel_size() {
        let bytes = server_init("x:1");
        assert_eq!(parse_server_init(&bytes[..23]).unwrap(), None);
        assert_eq!(parse_server_init(&bytes[..26]).unwrap(), None);
        let (init, used) = parse_server_init(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(init, ServerInit { width: 1920, height: 1080, bytes_per_pixel: 4, name: "x:1".into() });
        let mut odd = bytes.clone();
        odd[4] = 12;
        assert!(parse_server_init(&odd).unwrap_err().to_string().contains("12 bits per pixel"));
    }

    #[test]
    fn a_raw_update_is_complete_only_with_all_its_pixels() {
        // Two rectangles: 2×3 and 1×1 at 4 bytes per pixel.
        let mut bytes = vec![0, 0, 0, 2];
        bytes.extend([0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0]);
        bytes.extend([9u8; 24]);
        bytes.extend([0, 5, 0, 5, 0, 1, 0, 1, 0, 0, 0, 0]);
        bytes.extend([9u8; 4]);
        let total = bytes.len();
        bytes.push(2); // a Bell behind it
        for cut in [0, 3, 10, 16, 39, total - 1] {
            assert_eq!(next_message(&bytes[..cut], 4).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(next_message(&bytes, 4).unwrap(), Some((ServerMessage::FramebufferUpdate { rects: 2 }, total)));
        assert_eq!(next_message(&bytes[total..], 4).unwrap(), Some((ServerMessage::Bell, 1)));
    }

    #[test]
    fn other_messages_are_skipped_by_their_length_and_unknown_ones_refused() {
        let colours = [1, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6];
        assert_eq!(next_message(&colours[..17], 1).unwrap(), None);
        assert_eq!(next_message(&colours, 1).unwrap(), Some((ServerMessage::SetColourMapEntries, 18)));
        let cut = [3, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'];
        assert_eq!(next_message(&cut, 4).unwrap(), Some((ServerMessage::ServerCutText, 10)));
        assert!(next_message(&[7], 4).unwrap_err().to_string().contains("type 7"));
        let tight = [0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 7];
        assert!(next_message(&tight, 4).unwrap_err().to_string().contains("encoding 7"));
    }

    #[test]
    fn client_messages_have_the_protocols_layout() {
        let init = ServerInit { width: 1920, height: 1080, bytes_per_pixel: 4, name: String::new() };
        assert_eq!(update_request(true, &init), [3, 1, 0, 0, 0, 0, 0x07, 0x80, 0x04, 0x38]);
        assert_eq!(update_request(false, &init)[1], 0);
        assert_eq!(set_encodings_raw(), [2, 0, 0, 1, 0, 0, 0, 0]);
    }

    /// The handshake against a scripted server on a local socket.
    #[tokio::test]
    async fn the_handshake_reaches_server_init_and_counts_updates() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(VERSION).await.unwrap();
            let mut reply = [0u8; 12];
            socket.read_exact(&mut reply).await.unwrap();
            assert_eq!(&reply, VERSION);
            socket.write_all(&[2, 2, 1]).await.unwrap();
            let mut choice = [0u8; 1];
            socket.read_exact(&mut choice).await.unwrap();
            assert_eq!(choice, [SECURITY_NONE]);
            socket.write_all(&[0, 0, 0, 0]).await.unwrap();
            socket.read_exact(&mut choice).await.unwrap();
            assert_eq!(choice, [1], "ClientInit asks for a shared session");
            socket.write_all(&server_init("bench")).await.unwrap();
            let mut encodings = [0u8; 8];
            socket.read_exact(&mut encodings).await.unwrap();
            assert_eq!(encodings, set_encodings_raw());
            // Answer every update request with an empty update until the client goes away.
            let mut request = [0u8; 10];
            while socket.read_exact(&mut request).await.is_ok() {
                assert_eq!(request[0], 3);
                if socket.write_all(&[0, 0, 0, 0]).await.is_err() {
                    break;
                }
            }
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let mut session = Session::handshake(Link::Tcp(stream)).await.unwrap();
        assert_eq!(session.init.name, "bench");
        assert_eq!((session.init.width, session.init.height), (1920, 1080));
        let counted = session.count_updates(Duration::from_millis(50)).await.unwrap();
        assert!(counted.updates > 0 && counted.took >= Duration::from_millis(50), "{counted:?}");
        assert_eq!(counted.bytes, 4 * counted.updates, "empty updates are 4 bytes each");
        drop(session);
        server.await.unwrap();
    }
}
