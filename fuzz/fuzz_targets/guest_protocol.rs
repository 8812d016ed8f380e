//! The node↔guest protocol: messages of guestd's exec/PTY/watch WebSocket as guestd parses them, the
//! messages and answers the server reads back from guestd (which a sandbox controls), and guestd's
//! decoding of process output into text frames.
//!
//! The first byte picks the case. Invariants: no panic; a refused WebSocket message is answered with a
//! protocol `error` message; accepted terminal sizes are 1..=1000 (`MAX_SIDE`); a guest message that
//! parses serializes to JSON that parses back to the same message; process output split anywhere
//! decodes to exactly the lossy UTF-8 of the whole stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nullspace_guest::fuzzing::{decode_output, ws_message, WsMessage};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(message) = serde_json::from_slice::<T>(bytes) {
        let text = serde_json::to_string(&message).expect("a parsed message serializes");
        let again: T =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{text} does not parse back: {error}"));
        assert_eq!(again, message, "{text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, rest)) = data.split_first() else { return };
    match case % 4 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            match ws_message(text) {
                Ok(WsMessage::PtyResize(cols, rows)) => {
                    assert!((1..=1000).contains(&cols) && (1..=1000).contains(&rows), "{cols}x{rows}");
                }
                Ok(_) => {}
                Err(answer) => {
                    if answer.starts_with('{') {
                        let value: serde_json::Value = serde_json::from_str(&answer).expect("an error message is JSON");
                        assert_eq!(value["type"], "error", "{answer}");
                    }
                }
            }
        }
        1 => {
            use nullspace_types::exec_api::{ExecResult, ExecServerMessage, ProcessInfo};
            use nullspace_types::guest::{GuestConfig, GuestHealth};
            use nullspace_types::pty_api::{PtyServerMessage, PtySessionInfo};
            use nullspace_types::watch_api::WatchServerMessage;
            let Some((&which, json)) = rest.split_first() else { return };
            match which % 8 {
                0 => round_trip::<ExecServerMessage>(json),
                1 => round_trip::<PtyServerMessage>(json),
                2 => round_trip::<WatchServerMessage>(json),
                3 => round_trip::<GuestHealth>(json),
                4 => round_trip::<GuestConfig>(json),
                5 => round_trip::<ExecResult>(json),
                6 => round_trip::<ProcessInfo>(json),
                _ => round_trip::<PtySessionInfo>(json),
            }
        }
        2 => {
            use nullspace_types::files_api::FileInfo;
            use nullspace_types::upload_api::UploadSessionInfo;
            use nullspace_types::ErrorBody;
            let Some((&which, json)) = rest.split_first() else { return };
            match which % 3 {
                0 => round_trip::<FileInfo>(json),
                1 => round_trip::<UploadSessionInfo>(json),
                _ => {
                    if let Ok(body) = serde_json::from_slice::<ErrorBody>(json) {
                        let text = serde_json::to_string(&body).unwrap();
                        let again: ErrorBody = serde_json::from_str(&text).unwrap();
                        assert_eq!((again.error, again.code), (body.error, body.code));
                    }
                }
            }
        }
        _ => {
            // Output split at the positions the first bytes give.
            let Some((&cuts, bytes)) = rest.split_first() else { return };
            let mut chunks = Vec::new();
            let mut remaining = bytes;
            let mut step = usize::from(cuts % 7) + 1;
            while !remaining.is_empty() {
                let at = step.min(remaining.len());
                let (head, tail) = remaining.split_at(at);
                chunks.push(head);
                remaining = tail;
                step = step % 5 + 1;
            }
            let decoded: String = decode_output(&chunks).concat();
            assert_eq!(decoded, String::from_utf8_lossy(bytes), "chunks {chunks:?}");
        }
    }
});
