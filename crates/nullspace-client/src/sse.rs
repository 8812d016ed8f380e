//! Server-sent events as the template routes send them: `data: {json}` lines, `: ping` comments to
//! keep the connection alive, blank lines between events. [`SseLines`] splits a byte stream into the
//! JSON payloads of its `data:` lines (as the official client reads them, one event per line).

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;

/// Splits bytes into lines and yields the payload of each `data:` line.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    pending: Vec<u8>,
}

impl SseDecoder {
    /// Adds bytes; returns the payloads of the `data:` lines they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut payloads = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(payload) = data_payload(&line) {
                payloads.push(payload);
            }
        }
        payloads
    }

    /// The payload of a last line the stream did not end with a newline.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.pending);
        data_payload(&line)
    }
}

/// `data: x` → `x`; comments (`: ping`), `event:`/`id:` fields and blank lines → nothing.
fn data_payload(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    let payload = text.strip_prefix("data:")?;
    let payload = payload.strip_prefix(' ').unwrap_or(payload);
    (!payload.trim().is_empty()).then(|| payload.to_owned())
}

/// A stream of JSON events from one SSE response.
pub struct SseStream<T> {
    url: String,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    decoder: SseDecoder,
    ready: std::collections::VecDeque<String>,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SseStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").field("url", &self.url).field("done", &self.done).finish()
    }
}

impl<T: DeserializeOwned> SseStream<T> {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            url: response.url().to_string(),
            body: response.bytes_stream().boxed(),
            decoder: SseDecoder::default(),
            ready: Default::default(),
            done: false,
            _item: std::marker::PhantomData,
        }
    }

    /// The next event; `None` once the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(payload) = self.ready.pop_front() {
                let url = self.url.clone();
                return Some(serde_json::from_str(&payload).map_err(|source| ClientError::Decode { url, source }));
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.ready.extend(self.decoder.push(&bytes)),
                Some(Err(source)) => {
                    self.done = true;
                    return Some(Err(ClientError::Transport { method: "READ".into(), url: self.url.clone(), source }));
                }
                None => {
                    self.done = true;
                    self.ready.extend(self.decoder.finish());
                }
            }
        }
    }
}

impl Client {
    /// `POST path` (from `/v1/…`, its segments already percent-encoded) with a JSON body, answered as
    /// server-sent events of `T` (a code execute stream, for one).
    pub async fn post_events<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<SseStream<T>, ClientError> {
        let builder = self.request(reqwest::Method::POST, path)?.header("Accept", "text/event-stream").json(body);
        Ok(SseStream::new(self.send(builder).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_events_and_comments_are_not() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b": ping\n\n").is_empty());
        assert_eq!(decoder.push(b"data: {\"a\":1}\n\ndata: {\"b\""), vec!["{\"a\":1}"]);
        assert_eq!(decoder.push(b":2}\r\n\r\nevent: x\nid: 4\n"), vec!["{\"b\":2}"]);
        assert!(decoder.push(b"data:\n").is_empty());
        assert!(decoder.push(b"data:{\"c\":3}").is_empty());
        assert_eq!(decoder.finish().as_deref(), Some("{\"c\":3}"));
        assert_eq!(decoder.finish(), None);
    }
}
