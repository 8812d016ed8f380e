//! Request limits of the API: the size of JSON bodies and WebSocket messages, the per-API-key rate
//! limit (`--rate-limit`), and the cap on execs and PTYs running at once in one sandbox
//! (`--max-execs-per-sandbox`). Uploads stream and are bounded by the sandbox's disk, not here.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use nullspace_types::ErrorCode;

use super::ApiError;

/// Largest JSON body a route reads whole (template build requests, which may carry their context
/// inline, have their own larger limit).
pub const JSON_BODY_LIMIT: usize = 4 << 20;
/// Largest message a client may send on a sandbox or volume WebSocket (exec, PTY, file watch); the
/// official client's own messages are far smaller (it refuses to receive more than 1 MiB itself).
pub const WS_MESSAGE_LIMIT: usize = 2 << 20;
/// Largest message a client may send on the lifecycle and monitor WebSockets (subscriptions only).
pub const WS_CONTROL_MESSAGE_LIMIT: usize = 64 << 10;
/// Default of `--max-execs-per-sandbox`.
pub const DEFAULT_MAX_EXECS_PER_SANDBOX: usize = 64;

/// A rate: `count` requests per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per period.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Requests that may come at once after a quiet time.
    pub burst: NonZeroU32,
}

/// The default `--rate-limit`: far above what one client doing real work sends, low enough to stop a
/// loop hammering the API.
pub const DEFAULT_RATE_LIMIT: &str = "1000/s";

/// Parses `N/s`, `N/m` (or `N/min`, `N/h`) into a rate whose burst is `N`; `0` or `off` is no limit.
pub fn parse_rate_limit(text: &str) -> Result<Option<RateLimit>, String> {
    let text = text.trim().to_ascii_lowercase();
    if matches!(text.as_str(), "0" | "off" | "none") {
        return Ok(None);
    }
    let bad = || format!("expected a rate such as 100/s or 600/m, or `off`; got {text:?}");
    let (count, unit) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    let Some(count) = NonZeroU32::new(count) else { return Ok(None) };
    Ok(Some(RateLimit { count, period, burst: count }))
}

/// What the operator set (`--rate-limit`, `--rate-limit-burst`, `--max-execs-per-sandbox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSettings {
    /// Requests per API key (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Execs and PTYs running at once per sandbox.
    pub max_execs_per_sandbox: usize,
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            rate_limit: parse_rate_limit(DEFAULT_RATE_LIMIT).ok().flatten(),
            max_execs_per_sandbox: DEFAULT_MAX_EXECS_PER_SANDBOX,
        }
    }
}

/// What the API bounds per request, shared by all handlers.
pub struct RequestLimits {
    /// Requests per API key (`None`: unlimited).
    rate: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    /// Execs and PTYs per sandbox.
    pub execs: Arc<ExecSlots>,
}

impl RequestLimits {
    /// Limits with `rate` per API key and at most `max_execs_per_sandbox` execs and PTYs per sandbox.
    pub fn new(rate: Option<RateLimit>, max_execs_per_sandbox: usize) -> Self {
        let rate = rate.and_then(|rate| {
            let quota = Quota::with_period(rate.period / rate.count.get())?.allow_burst(rate.burst);
            Some(governor::RateLimiter::keyed(quota))
        });
        Self { rate, clock: DefaultClock::default(), execs: Arc::new(ExecSlots::new(max_execs_per_sandbox)) }
    }

    /// Counts one request of the API key hashed to `key_hash`; past the rate, a 429
    /// `rate_limit_exceeded` with `Retry-After`.
    pub fn check_rate(&self, key_hash: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.rate else { return Ok(()) };
        limiter.check_key(&key_hash.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = retry_after_secs(wait);
            ApiError::new(
                ErrorCode::RateLimitExceeded,
                format!("this API key sent more requests than the server allows (--rate-limit); retry in {secs} s"),
            )
            .with_retry_after(secs)
        })
    }
}

impl From<&RequestSettings> for RequestLimits {
    fn from(settings: &RequestSettings) -> Self {
        Self::new(settings.rate_limit, settings.max_execs_per_sandbox)
    }
}

/// Whole seconds to wait for `wait` (at least 1: `Retry-After` has no fractions).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Execs and PTYs in progress per sandbox, at most `max` each.
#[derive(Debug)]
pub struct ExecSlots {
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One exec or PTY of a sandbox; its slot is free again when this is dropped.
#[derive(Debug)]
pub struct ExecSlot {
    slots: Arc<ExecSlots>,
    sandbox_id: String,
}

impl ExecSlots {
    /// Slots for at most `max` execs and PTYs per sandbox (0 is taken as 1).
    pub fn new(max: usize) -> Self {
        Self { max: max.max(1), held: Mutex::default() }
    }

    /// A slot of `sandbox_id`, or a 503 `capacity_exceeded` when all are taken.
    pub fn acquire(self: &Arc<Self>, sandbox_id: &str) -> Result<ExecSlot, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = held.entry(sandbox_id.to_owned()).or_default();
        if *count >= self.max {
            return Err(ApiError::new(
                ErrorCode::CapacityExceeded,
                format!(
                    "sandbox {sandbox_id} runs {} execs and PTYs at once, the most this server allows \
                     (--max-execs-per-sandbox); wait for one to finish or close one",
                    self.max
                ),
            ));
        }
        *count += 1;
        Ok(ExecSlot { slots: self.clone(), sandbox_id: sandbox_id.to_owned() })
    }

    /// Slots of `sandbox_id` in use.
    #[cfg(test)]
    pub fn in_use(&self, sandbox_id: &str) -> usize {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(sandbox_id).copied().unwrap_or(0)
    }
}

impl Drop for ExecSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = held.get_mut(&self.sandbox_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.sandbox_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_period_and_off_disables() {
        let rate = parse_rate_limit("100/s").unwrap().unwrap();
        assert_eq!((rate.count.get(), rate.period, rate.burst.get()), (100, Duration::from_secs(1), 100));
        assert_eq!(parse_rate_limit(" 600/min ").unwrap().unwrap().period, Duration::from_secs(60));
        assert_eq!(parse_rate_limit("off").unwrap(), None);
        assert_eq!(parse_rate_limit("0").unwrap(), None);
        assert_eq!(parse_rate_limit("0/s").unwrap(), None);
        for bad in ["100", "fast", "-1/s", "10/fortnight", "/s"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_rate_limit(DEFAULT_RATE_LIMIT).unwrap().is_some());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }

    #[test]
    fn a_key_past_its_burst_is_refused_and_other_keys_are_not() {
        let rate = RateLimit {
            count: NonZeroU32::new(1).unwrap(),
            period: Duration::from_secs(3600),
            burst: NonZeroU32::new(2).unwrap(),
        };
        let limits = RequestLimits::new(Some(rate), 1);
        assert!(limits.check_rate("a").is_ok());
        assert!(limits.check_rate("a").is_ok());
        let refused = limits.check_rate("a").unwrap_err();
        let text = format!("{refused:?}");
        assert!(text.contains("RateLimitExceeded") && text.contains("retry_after: Some("), "{text}");
        assert!(limits.check_rate("b").is_ok());
        assert!(RequestLimits::new(None, 1).check_rate("a").is_ok());
    }

    #[test]
    fn exec_slots_are_capped_per_sandbox_and_freed_on_drop() {
        let slots = Arc::new(ExecSlots::new(2));
        let first = slots.acquire("sb_a").unwrap();
        let _second = slots.acquire("sb_a").unwrap();
        assert!(slots.acquire("sb_a").is_err());
        let _other = slots.acquire("sb_b").unwrap();
        drop(first);
        assert_eq!(slots.in_use("sb_a"), 1);
        let _third = slots.acquire("sb_a").unwrap();
        assert!(slots.acquire("sb_a").is_err());
    }
}
