//! Bounded output of one process: stdout, stderr and both interleaved, each a byte ring that drops its
//! oldest bytes past a cap; plus the UTF-8 decoder that keeps multi-byte characters whole across chunks.

use std::collections::VecDeque;

/// Bytes of stdout (and of stderr) kept per process; the interleaved output keeps twice as much.
pub const LOG_CAP_BYTES: usize = 4 * 1024 * 1024;

/// A byte ring that keeps the newest `cap` bytes.
#[derive(Debug)]
pub struct Ring {
    bytes: VecDeque<u8>,
    cap: usize,
    dropped: u64,
}

impl Ring {
    /// An empty ring keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self { bytes: VecDeque::new(), cap, dropped: 0 }
    }

    /// Appends `data`, dropping the oldest bytes past the cap (never splitting a UTF-8 character at the
    /// new start).
    pub fn push(&mut self, data: &[u8]) {
        let skipped = data.len().saturating_sub(self.cap);
        self.bytes.extend(&data[skipped..]);
        let mut excess = self.bytes.len().saturating_sub(self.cap);
        if skipped + excess > 0 {
            while self.bytes.get(excess).is_some_and(|byte| byte & 0xC0 == 0x80) {
                excess += 1;
            }
        }
        self.bytes.drain(..excess);
        self.dropped += (skipped + excess) as u64;
    }

    /// The kept bytes as (lossy) UTF-8.
    pub fn text(&self) -> String {
        let (head, tail) = self.bytes.as_slices();
        if tail.is_empty() {
            return String::from_utf8_lossy(head).into_owned();
        }
        let mut all = Vec::with_capacity(self.bytes.len());
        all.extend_from_slice(head);
        all.extend_from_slice(tail);
        String::from_utf8_lossy(&all).into_owned()
    }

    /// Bytes dropped so far.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The kept output of one process.
#[derive(Debug)]
pub struct ProcessLogs {
    stdout: Ring,
    stderr: Ring,
    output: Ring,
}

impl Default for ProcessLogs {
    fn default() -> Self {
        Self::with_cap(LOG_CAP_BYTES)
    }
}

impl ProcessLogs {
    /// Logs keeping `cap` bytes per stream.
    pub fn with_cap(cap: usize) -> Self {
        Self { stdout: Ring::new(cap), stderr: Ring::new(cap), output: Ring::new(cap.saturating_mul(2)) }
    }

    /// Bytes held.
    pub fn retained(&self) -> usize {
        self.stdout.bytes.len() + self.stderr.bytes.len() + self.output.bytes.len()
    }

    /// Records a chunk of `stream`.
    pub fn push(&mut self, stream: Stream, data: &[u8]) {
        match stream {
            Stream::Stdout => self.stdout.push(data),
            Stream::Stderr => self.stderr.push(data),
        }
        self.output.push(data);
    }

    /// (stdout, stderr, interleaved output) as text.
    pub fn texts(&self) -> (String, String, String) {
        (self.stdout.text(), self.stderr.text(), self.output.text())
    }
}

/// Decodes a byte stream chunk by chunk into UTF-8 text, holding back an incomplete trailing character
/// until the next chunk (invalid bytes become U+FFFD).
#[derive(Debug, Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// Text of `chunk` plus what was held back, minus an incomplete character at its end.
    pub fn decode(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let mut out = String::with_capacity(self.pending.len());
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    match error.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &rest[valid + bad..];
                        }
                        None => {
                            rest = &rest[valid..];
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Whatever is still held back, lossy (at end of stream).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_bytes() {
        let mut ring = Ring::new(8);
        ring.push(b"hello ");
        ring.push(b"world!");
        assert_eq!(ring.text(), "o world!");
        assert_eq!(ring.dropped(), 4);
        ring.push(b"0123456789abc");
        assert_eq!(ring.text(), "56789abc");
    }

    #[test]
    fn ring_never_starts_inside_a_character() {
        let mut ring = Ring::new(4);
        ring.push("aé€".as_bytes()); // 1 + 2 + 3 bytes
        assert_eq!(ring.text(), "€");
    }

    #[test]
    fn logs_interleave_in_arrival_order() {
        let mut logs = ProcessLogs::with_cap(1024);
        logs.push(Stream::Stdout, b"out1\n");
        logs.push(Stream::Stderr, b"err\n");
        logs.push(Stream::Stdout, b"out2\n");
        let (stdout, stderr, output) = logs.texts();
        assert_eq!(stdout, "out1\nout2\n");
        assert_eq!(stderr, "err\n");
        assert_eq!(output, "out1\nerr\nout2\n");
    }

    #[test]
    fn logs_are_capped_per_stream() {
        let mut logs = ProcessLogs::with_cap(4);
        logs.push(Stream::Stdout, b"abcdef");
        logs.push(Stream::Stderr, b"xyz");
        let (stdout, stderr, output) = logs.texts();
        assert_eq!((stdout.as_str(), stderr.as_str(), output.as_str()), ("cdef", "xyz", "bcdefxyz"));
        assert_eq!(logs.retained(), 4 + 3 + 8);
    }

    #[test]
    fn utf8_carry_joins_split_characters() {
        let bytes = "é€x".as_bytes();
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(&bytes[..1]), "");
        assert_eq!(carry.decode(&bytes[1..3]), "é");
        assert_eq!(carry.decode(&bytes[3..]), "€x");
        assert_eq!(carry.decode(b"\xffok"), "\u{FFFD}ok");
        assert_eq!(carry.decode(b"\xe2"), "");
        assert_eq!(carry.finish(), "\u{FFFD}");
    }
}
