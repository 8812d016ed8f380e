//! Random identifiers for objects guestd creates (`ses_…` PTY sessions, `up_…` uploads).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` followed by 16 random hex digits (from /dev/urandom; time and a counter if unavailable).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut file| file.read_exact(&mut bytes)).is_ok();
    if !random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default();
        let mixed = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(48);
        bytes = mixed.to_be_bytes();
    }
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let (a, b) = (super::new_id("ses_"), super::new_id("ses_"));
        assert!(a.starts_with("ses_") && a.len() == 20);
        assert_ne!(a, b);
    }
}
