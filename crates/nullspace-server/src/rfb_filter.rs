//! The view-only filter of the managed desktop viewer: reads the client→server half of an RFB (VNC)
//! stream (RFC 6143 plus the extensions noVNC speaks) and passes everything except input: KeyEvent,
//! PointerEvent, ClientCutText, QEMU key events, SetDesktopSize and XVP operations are dropped. Input may
//! arrive split across WebSocket frames at any byte, so the filter keeps the unfinished message.
//!
//! Pure logic: bytes in, bytes out. The handshake it accepts is the one the desktop's VNC server offers
//! (security type None); anything it cannot frame is an error and the bridge closes, never passed on.
//! SetEncodings is rewritten to drop the pseudo-encodings that would change the client's message framing
//! (ExtendedMouseButtons' 7-byte pointer events, QEMU extended key events), so the server never enables them.

/// RFB client message types.
mod msg {
    pub const SET_PIXEL_FORMAT: u8 = 0;
    pub const SET_ENCODINGS: u8 = 2;
    pub const FRAMEBUFFER_UPDATE_REQUEST: u8 = 3;
    pub const KEY_EVENT: u8 = 4;
    pub const POINTER_EVENT: u8 = 5;
    pub const CLIENT_CUT_TEXT: u8 = 6;
    pub const ENABLE_CONTINUOUS_UPDATES: u8 = 150;
    pub const CLIENT_FENCE: u8 = 248;
    pub const XVP: u8 = 250;
    pub const SET_DESKTOP_SIZE: u8 = 251;
    pub const QEMU: u8 = 255;
}

/// Pseudo-encodings removed from SetEncodings in view-only sessions.
const FRAMING_PSEUDO_ENCODINGS: &[i32] = &[
    -316, // ExtendedMouseButtons: pointer events grow to 7 bytes
    -258, // QEMU extended key event
];

/// Security type None.
const SECURITY_NONE: u8 = 1;

/// Why the client's stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The first 12 bytes are not `RFB xxx.yyy\n`.
    #[error("the client did not open with an RFB protocol version")]
    Version,
    /// The client chose a security type other than None.
    #[error("the client chose security type {0}; the desktop viewer offers only None (1)")]
    Security(u8),
    /// A message type the filter cannot frame.
    #[error("the client sent RFB message type {0}, which the view-only viewer does not accept")]
    UnknownMessage(u8),
    /// A QEMU message other than the extended key event.
    #[error("the client sent QEMU message subtype {0}, which the view-only viewer does not accept")]
    UnknownQemuMessage(u8),
}

/// Where in the stream the filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the 12-byte ProtocolVersion.
    Version,
    /// Waiting for the 1-byte security type (protocol 3.7 and later).
    Security,
    /// Waiting for the 1-byte ClientInit.
    ClientInit,
    /// Normal messages.
    Messages,
    /// Skipping the rest of a dropped message (a long ClientCutText).
    Skip(u64),
}

/// The view-only filter of one connection.
#[derive(Debug)]
pub struct ViewOnlyFilter {
    phase: Phase,
    /// Bytes of the message not yet complete.
    pending: Vec<u8>,
}

impl Default for ViewOnlyFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do with a message whose size is known.
enum Framed {
    /// Needs more bytes before its size is known.
    Incomplete,
    /// Pass `n` bytes (possibly rewritten by `rewrite`).
    Pass(usize),
    /// A SetEncodings of `n` bytes, to be rewritten.
    Encodings(usize),
    /// Drop `n` bytes (may exceed what is buffered: the rest is skipped as it arrives).
    Drop(u64),
}

impl ViewOnlyFilter {
    /// A filter at the start of a connection.
    pub fn new() -> Self {
        Self { phase: Phase::Version, pending: Vec::new() }
    }

    /// Feeds `input` (the next bytes from the client) and appends what may go to the server to `out`.
    /// After an error the connection must be closed.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FilterError> {
        if let Phase::Skip(left) = self.phase {
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
            input = &input[take..];
            let left = left - take as u64;
            if left > 0 {
                self.phase = Phase::Skip(left);
                return Ok(());
            }
            self.phase = Phase::Messages;
        }
        self.pending.extend_from_slice(input);
        while let Some(consumed) = self.step(out)? {
            self.pending.drain(..consumed);
            if matches!(self.phase, Phase::Skip(_)) {
                break;
            }
        }
        Ok(())
    }

    /// Handles the message at the front of `pending`: how many bytes it consumed, or `None` when more
    /// bytes are needed.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, FilterError> {
        let buf = &self.pending;
        match self.phase {
            Phase::Version => {
                if buf.len() < 12 {
                    return Ok(None);
                }
                let minor = parse_version(&buf[..12])?;
                out.extend_from_slice(&buf[..12]);
                self.phase = if minor >= 7 { Phase::Security } else { Phase::ClientInit };
                Ok(Some(12))
            }
            Phase::Security => {
                let Some(&kind) = buf.first() else { return Ok(None) };
                if kind != SECURITY_NONE {
                    return Err(FilterError::Security(kind));
                }
                out.push(kind);
                self.phase = Phase::ClientInit;
                Ok(Some(1))
            }
            Phase::ClientInit => {
                let Some(&shared) = buf.first() else { return Ok(None) };
                out.push(shared);
                self.phase = Phase::Messages;
                Ok(Some(1))
            }
            Phase::Messages => match frame(buf)? {
                Framed::Incomplete => Ok(None),
                Framed::Pass(n) => {
                    out.extend_from_slice(&buf[..n]);
                    Ok(Some(n))
                }
                Framed::Encodings(n) => {
                    rewrite_encodings(&buf[..n], out);
                    Ok(Some(n))
                }
                Framed::Drop(n) => {
                    let have = buf.len() as u64;
                    if n > have {
                        self.phase = Phase::Skip(n - have);
                        return Ok(Some(buf.len()));
                    }
                    Ok(Some(n as usize))
                }
            },
            Phase::Skip(_) => Ok(None),
        }
    }
}

/// The minor version of a 12-byte `RFB 003.00x\n`.
fn parse_version(bytes: &[u8]) -> Result<u32, FilterError> {
    let text = std::str::from_utf8(bytes).map_err(|_| FilterError::Version)?;
    let rest = text.strip_prefix("RFB ").and_then(|rest| rest.strip_suffix('\n')).ok_or(FilterError::Version)?;
    let (major, minor) = rest.split_once('.').ok_or(FilterError::Version)?;
    let digits = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) || major != "003" {
        return Err(FilterError::Version);
    }
    minor.parse().map_err(|_| FilterError::Version)
}

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?])))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?, *buf.get(at + 2)?, *buf.get(at + 3)?]))
}

/// The size and fate of the message at the front of `buf`.
fn frame(buf: &[u8]) -> Result<Framed, FilterError> {
    let Some(&kind) = buf.first() else { return Ok(Framed::Incomplete) };
    let whole = |n: usize, pass: bool| {
        if !pass {
            Framed::Drop(n as u64)
        } else if buf.len() >= n {
            Framed::Pass(n)
        } else {
            Framed::Incomplete
        }
    };
    Ok(match kind {
        msg::SET_PIXEL_FORMAT => whole(20, true),
        msg::SET_ENCODINGS => match u16_at(buf, 2) {
            Some(count) if buf.len() >= 4 + 4 * count => Framed::Encodings(4 + 4 * count),
            _ => Framed::Incomplete,
        },
        msg::FRAMEBUFFER_UPDATE_REQUEST => whole(10, true),
        msg::KEY_EVENT => whole(8, false),
        msg::POINTER_EVENT => whole(6, false),
        msg::CLIENT_CUT_TEXT => match u32_at(buf, 4) {
            // A negative length is the extended clipboard: its absolute value of bytes follow.
            Some(length) => Framed::Drop(8 + u64::from((length as i32).unsigned_abs())),
            None => Framed::Incomplete,
        },
        msg::ENABLE_CONTINUOUS_UPDATES => whole(10, true),
        msg::CLIENT_FENCE => match buf.get(8) {
            Some(&length) => whole(9 + usize::from(length), true),
            None => Framed::Incomplete,
        },
        msg::XVP => whole(4, false),
        msg::SET_DESKTOP_SIZE => match buf.get(6) {
            Some(&screens) => whole(8 + 16 * usize::from(screens), false),
            None => Framed::Incomplete,
        },
        msg::QEMU => match buf.get(1) {
            Some(0) => whole(12, false),
            Some(&subtype) => return Err(FilterError::UnknownQemuMessage(subtype)),
            None => Framed::Incomplete,
        },
        other => return Err(FilterError::UnknownMessage(other)),
    })
}

/// `message` (a whole SetEncodings) without the pseudo-encodings of [`FRAMING_PSEUDO_ENCODINGS`].
fn rewrite_encodings(message: &[u8], out: &mut Vec<u8>) {
    let kept: Vec<[u8; 4]> = message[4..]
        .chunks_exact(4)
        .map(|chunk| [chunk[0], chunk[1], chunk[2], chunk[3]])
        .filter(|bytes| !FRAMING_PSEUDO_ENCODINGS.contains(&i32::from_be_bytes(*bytes)))
        .collect();
    out.extend_from_slice(&[message[0], message[1]]);
    out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
    for encoding in kept {
        out.extend_from_slice(&encoding);
    }
}

#[cfg(test)]
#[path = "rfb_filter_tests.rs"]
mod tests;
