//! Host capacity: the per-sandbox caps on vCPUs and memory, and the overcommit budget that the live
//! sandboxes' reservations count against (host cores × CPU ratio, host memory × memory ratio).

/// Most vCPUs any request may name, whatever the host.
pub const ABSOLUTE_MAX_VCPUS: u32 = 64;
/// Least memory a sandbox may have (MiB).
pub const MIN_MEMORY_MB: u32 = 64;
/// Most memory any request may name (MiB), whatever the host.
pub const ABSOLUTE_MAX_MEMORY_MB: u32 = 262_144;
/// Default CPU overcommit ratio (CPU time is shared; each sandbox is still limited to its own vCPUs).
pub const DEFAULT_CPU_OVERCOMMIT: f64 = 16.0;
/// Default memory overcommit ratio (memory limits are ceilings, most sandboxes use far less).
pub const DEFAULT_MEMORY_OVERCOMMIT: f64 = 1.5;

/// Limits a server applies to sandbox resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// CPUs of the host.
    pub host_cpus: u32,
    /// Memory of the host (MiB).
    pub host_memory_mb: u64,
    /// Most vCPUs one sandbox may have (`--max-vcpus`).
    pub max_vcpus: u32,
    /// Most memory one sandbox may have, MiB (`--max-memory-mb`).
    pub max_memory_mb: u32,
    /// Reserved vCPUs of live sandboxes may reach `host_cpus` × this (`--cpu-overcommit`).
    pub cpu_overcommit: f64,
    /// Reserved memory of live sandboxes may reach `host_memory_mb` × this (`--memory-overcommit`).
    pub memory_overcommit: f64,
}

/// What the operator set; `None` takes the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacitySettings {
    /// `--max-vcpus` (default: the host's CPUs, at least 2, the client's default).
    pub max_vcpus: Option<u32>,
    /// `--max-memory-mb` (default: the host's memory).
    pub max_memory_mb: Option<u32>,
    /// `--cpu-overcommit` (default [`DEFAULT_CPU_OVERCOMMIT`]).
    pub cpu_overcommit: Option<f64>,
    /// `--memory-overcommit` (default [`DEFAULT_MEMORY_OVERCOMMIT`]).
    pub memory_overcommit: Option<f64>,
}

/// A request over a per-sandbox cap (400) or over the host's budget (503 `capacity_exceeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The sandbox alone is larger than this server allows.
    TooLarge(String),
    /// The sandbox would not fit beside the live ones.
    NoRoom(String),
}

impl Capacity {
    /// The limits for a host with `host_cpus` CPUs and `host_memory_mb` MiB under `settings`; an invalid
    /// setting is an error naming its flag.
    pub fn new(host_cpus: u32, host_memory_mb: u64, settings: &CapacitySettings) -> Result<Self, String> {
        let host_cpus = host_cpus.max(1);
        let host_memory_mb = host_memory_mb.max(u64::from(MIN_MEMORY_MB));
        let ratio = |value: Option<f64>, default: f64, flag: &str| match value {
            None => Ok(default),
            Some(ratio) if ratio.is_finite() && ratio > 0.0 => Ok(ratio),
            Some(ratio) => Err(format!("--{flag} must be a number above 0, got {ratio}")),
        };
        let max_vcpus = settings.max_vcpus.unwrap_or(host_cpus.clamp(2, ABSOLUTE_MAX_VCPUS));
        if !(1..=ABSOLUTE_MAX_VCPUS).contains(&max_vcpus) {
            return Err(format!("--max-vcpus must be between 1 and {ABSOLUTE_MAX_VCPUS}, got {max_vcpus}"));
        }
        let host_memory_cap =
            u32::try_from(host_memory_mb).unwrap_or(u32::MAX).clamp(MIN_MEMORY_MB, ABSOLUTE_MAX_MEMORY_MB);
        let max_memory_mb = settings.max_memory_mb.unwrap_or(host_memory_cap);
        if !(MIN_MEMORY_MB..=ABSOLUTE_MAX_MEMORY_MB).contains(&max_memory_mb) {
            return Err(format!(
                "--max-memory-mb must be between {MIN_MEMORY_MB} and {ABSOLUTE_MAX_MEMORY_MB}, got {max_memory_mb}"
            ));
        }
        Ok(Self {
            host_cpus,
            host_memory_mb,
            max_vcpus,
            max_memory_mb,
            cpu_overcommit: ratio(settings.cpu_overcommit, DEFAULT_CPU_OVERCOMMIT, "cpu-overcommit")?,
            memory_overcommit: ratio(settings.memory_overcommit, DEFAULT_MEMORY_OVERCOMMIT, "memory-overcommit")?,
        })
    }

    /// Limits for this host: its usable CPUs and `MemTotal`.
    pub fn detect(settings: &CapacitySettings) -> Result<Self, String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_total_kib(&text))
            .map_or(u64::from(ABSOLUTE_MAX_MEMORY_MB), |kib| kib / 1024);
        Self::new(cpus, memory_mb, settings)
    }

    /// vCPUs all live sandboxes together may reserve.
    pub fn vcpu_budget(&self) -> u64 {
        budget(u64::from(self.host_cpus), self.cpu_overcommit)
    }

    /// Memory (MiB) all live sandboxes together may reserve.
    pub fn memory_budget_mb(&self) -> u64 {
        budget(self.host_memory_mb, self.memory_overcommit)
    }

    /// Checks one sandbox of `vcpus` and `memory_mb` against the per-sandbox caps.
    pub fn check_size(&self, vcpus: u32, memory_mb: u32) -> Result<(), Refusal> {
        if !(1..=self.max_vcpus).contains(&vcpus) {
            return Err(Refusal::TooLarge(format!(
                "vcpus must be between 1 and {} on this server (--max-vcpus), got {vcpus}",
                self.max_vcpus
            )));
        }
        if !(MIN_MEMORY_MB..=self.max_memory_mb).contains(&memory_mb) {
            return Err(Refusal::TooLarge(format!(
                "memory_mb must be between {MIN_MEMORY_MB} and {} on this server (--max-memory-mb), got {memory_mb}",
                self.max_memory_mb
            )));
        }
        Ok(())
    }

    /// Checks a new sandbox of `vcpus` and `memory_mb` beside live ones that reserve `reserved`
    /// (vCPUs, MiB) in total.
    pub fn admit(&self, reserved: (u64, u64), vcpus: u32, memory_mb: u32) -> Result<(), Refusal> {
        self.check_size(vcpus, memory_mb)?;
        let (used_vcpus, used_memory) = reserved;
        let (vcpu_budget, memory_budget) = (self.vcpu_budget(), self.memory_budget_mb());
        if used_vcpus.saturating_add(u64::from(vcpus)) > vcpu_budget {
            return Err(Refusal::NoRoom(format!(
                "{used_vcpus} of {vcpu_budget} vCPUs are reserved ({} host CPUs × {} overcommit), {vcpus} more requested",
                self.host_cpus, self.cpu_overcommit
            )));
        }
        if used_memory.saturating_add(u64::from(memory_mb)) > memory_budget {
            return Err(Refusal::NoRoom(format!(
                "{used_memory} of {memory_budget} MiB of memory are reserved ({} MiB host memory × {} overcommit), {memory_mb} MiB more requested",
                self.host_memory_mb, self.memory_overcommit
            )));
        }
        Ok(())
    }
}

fn budget(host: u64, ratio: f64) -> u64 {
    // Budgets are far below 2^52, where f64 is exact; the cast saturates beyond u64.
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "see above"
    )]
    let value = (host as f64 * ratio).floor() as u64;
    value
}

/// `MemTotal` of `/proc/meminfo` text, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_host() -> Capacity {
        // The host of the report: 2 CPUs, 24 GiB.
        Capacity::new(2, 24 * 1024, &CapacitySettings::default()).unwrap()
    }

    #[test]
    fn defaults_follow_the_host() {
        let capacity = small_host();
        assert_eq!((capacity.max_vcpus, capacity.max_memory_mb), (2, 24 * 1024));
        assert_eq!(capacity.vcpu_budget(), 32);
        assert_eq!(capacity.memory_budget_mb(), 36 * 1024);
        // A one-CPU host still takes the client's default of 2 vCPUs.
        assert_eq!(Capacity::new(1, 4096, &CapacitySettings::default()).unwrap().max_vcpus, 2);
    }

    #[test]
    fn the_reported_oversized_create_is_too_large() {
        let capacity = small_host();
        assert!(matches!(capacity.check_size(64, 262_144), Err(Refusal::TooLarge(m)) if m.contains("--max-vcpus")));
        assert!(matches!(capacity.check_size(2, 262_144), Err(Refusal::TooLarge(m)) if m.contains("--max-memory-mb")));
        assert!(matches!(capacity.check_size(0, 512), Err(Refusal::TooLarge(_))));
        assert!(matches!(capacity.check_size(1, 32), Err(Refusal::TooLarge(_))));
        assert_eq!(capacity.check_size(2, 512), Ok(()));
    }

    #[test]
    fn live_reservations_count_against_the_overcommitted_host() {
        let capacity = small_host();
        assert_eq!(capacity.admit((30, 1024), 2, 512), Ok(()));
        assert!(matches!(capacity.admit((31, 1024), 2, 512), Err(Refusal::NoRoom(m)) if m.contains("vCPUs")));
        assert!(matches!(capacity.admit((0, 36 * 1024 - 100), 1, 512), Err(Refusal::NoRoom(m)) if m.contains("MiB")));
        assert_eq!(capacity.admit((0, 36 * 1024 - 512), 1, 512), Ok(()));
    }

    #[test]
    fn settings_override_and_are_checked() {
        let settings = CapacitySettings {
            max_vcpus: Some(1),
            max_memory_mb: Some(1024),
            cpu_overcommit: Some(1.0),
            memory_overcommit: Some(0.5),
        };
        let capacity = Capacity::new(4, 8192, &settings).unwrap();
        assert_eq!((capacity.vcpu_budget(), capacity.memory_budget_mb()), (4, 4096));
        assert!(capacity.check_size(2, 512).is_err());
        for bad in [
            CapacitySettings { max_vcpus: Some(0), ..CapacitySettings::default() },
            CapacitySettings { max_memory_mb: Some(10), ..CapacitySettings::default() },
            CapacitySettings { cpu_overcommit: Some(0.0), ..CapacitySettings::default() },
            CapacitySettings { memory_overcommit: Some(f64::NAN), ..CapacitySettings::default() },
        ] {
            assert!(Capacity::new(4, 8192, &bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mem_total_is_read_from_meminfo() {
        assert_eq!(mem_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24_576_000));
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
    }
}
