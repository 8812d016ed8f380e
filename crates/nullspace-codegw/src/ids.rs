//! Random identifiers (`ctx_…`, `art_…`, `run_…`, kernel keys) and the clock in the API's formats.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `2 * bytes` random hex digits (from /dev/urandom; time and a counter if unavailable).
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut buffer)).is_ok();
    if !random {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        for (index, byte) in buffer.iter_mut().enumerate() {
            let mixed = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(17 + index as u32);
            *byte = (mixed >> (8 * (index % 8))) as u8;
        }
    }
    hex::encode(buffer)
}

/// `prefix` followed by 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(8))
}

/// Now, RFC 3339 with seconds precision and `Z`.
pub fn now_rfc3339() -> String {
    rfc3339(chrono::Utc::now())
}

/// `time` as RFC 3339 with seconds precision and `Z`.
pub fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let (a, b) = (super::new_id("ctx_"), super::new_id("ctx_"));
        assert!(a.starts_with("ctx_") && a.len() == 20);
        assert_ne!(a, b);
        assert!(super::now_rfc3339().ends_with('Z'));
    }
}
