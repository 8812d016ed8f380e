//! CPU percentage from successive cumulative CPU-time readings of each sandbox.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Remembers the last CPU reading of each sandbox to turn cumulative time into a percentage.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl CpuSampler {
    /// CPU use of `sandbox_id` since its previous reading, as a percentage of its `vcpus` cores
    /// (0 on the first reading).
    pub fn percent(&self, sandbox_id: &str, cpu_usage_ns: u64, vcpus: u32) -> f64 {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = last.insert(sandbox_id.to_owned(), (now, cpu_usage_ns));
        let Some((then, used_before)) = previous else {
            return 0.0;
        };
        let elapsed_ns = now.duration_since(then).as_nanos() as f64;
        if elapsed_ns <= 0.0 {
            return 0.0;
        }
        let used = cpu_usage_ns.saturating_sub(used_before) as f64;
        (used / elapsed_ns * 100.0 / f64::from(vcpus.max(1))).clamp(0.0, 100.0)
    }

    /// Forgets a sandbox.
    pub fn forget(&self, sandbox_id: &str) {
        self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(sandbox_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reading_is_zero_and_later_ones_are_bounded() {
        let sampler = CpuSampler::default();
        assert_eq!(sampler.percent("sb_a", 1_000, 1), 0.0);
        std::thread::sleep(std::time::Duration::from_millis(10));
        let percent = sampler.percent("sb_a", 1_000 + 5_000_000, 1);
        assert!(percent > 0.0 && percent <= 100.0, "{percent}");
    }
}
