//! Disk limits of sandboxes: the server's default (`--sandbox-disk`), the largest limit a sandbox may ask
//! for (the size of the data dir's filesystem), and the limit a create, resume, fork or create from a
//! snapshot gets. The node enforces the limit (`nullspace-node::sandbox_disk`); this module only decides it.

/// Smallest disk a sandbox may ask for, MiB: below it ext4 leaves too little room beside its journal.
pub const MIN_DISK_MB: u32 = 16;

/// How this server limits sandbox disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLimits {
    /// Every sandbox's writes go to a filesystem of its own size.
    Limited {
        /// Size of a sandbox whose create names none, MiB.
        default_mb: u32,
        /// Largest size a create may ask for, MiB.
        max_mb: u32,
    },
    /// `--sandbox-disk unlimited`: writes go to plain host directories; `disk_mb` is refused.
    Unlimited,
}

impl DiskLimits {
    /// The limits for default `default_bytes` (`None`: unlimited) on a data dir whose filesystem holds
    /// `filesystem_bytes`. A default that is not a whole number of MiB is rounded up; one below the
    /// minimum or above the filesystem is an error naming the flag.
    pub fn new(default_bytes: Option<u64>, filesystem_bytes: u64) -> Result<Self, String> {
        let Some(bytes) = default_bytes else { return Ok(Self::Unlimited) };
        let max_mb = u32::try_from(filesystem_bytes >> 20).unwrap_or(u32::MAX);
        let default_mb = u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX);
        if default_mb < MIN_DISK_MB {
            return Err(format!("--sandbox-disk must be at least {MIN_DISK_MB}MiB, got {bytes} bytes"));
        }
        if default_mb > max_mb {
            return Err(format!(
                "--sandbox-disk {default_mb}MiB is larger than the data dir's filesystem ({max_mb}MiB); \
                 give a smaller size"
            ));
        }
        Ok(Self::Limited { default_mb, max_mb })
    }

    /// The limit of a new sandbox whose request asks for `requested` MiB (`None`: the default).
    pub fn for_create(&self, requested: Option<u32>) -> Result<Option<u32>, String> {
        match (*self, requested) {
            (Self::Unlimited, None) => Ok(None),
            (Self::Unlimited, Some(_)) => Err(
                "disk_mb is not available: this server runs with --sandbox-disk unlimited (its host cannot \
                 limit sandbox disks); leave out disk_mb"
                    .to_owned(),
            ),
            (Self::Limited { default_mb, .. }, None) => Ok(Some(default_mb)),
            (Self::Limited { max_mb, .. }, Some(mb)) if !(MIN_DISK_MB..=max_mb).contains(&mb) => Err(format!(
                "disk_mb must be between {MIN_DISK_MB} and {max_mb} on this server (the data dir's filesystem), got {mb}"
            )),
            (Self::Limited { .. }, Some(mb)) => Ok(Some(mb)),
        }
    }

    /// The limit of a sandbox continuing one whose limit was `source` (resume, fork, create from a
    /// snapshot): the same, or the default for a source that had none. Unlimited servers enforce none.
    pub fn inherit(&self, source: Option<u32>) -> Option<u32> {
        match *self {
            Self::Unlimited => None,
            Self::Limited { default_mb, .. } => Some(source.unwrap_or(default_mb)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_default_is_rounded_up_to_whole_mib_and_bounded_by_the_filesystem() {
        let limits = DiskLimits::new(Some(10 * GIB), 100 * GIB).unwrap();
        assert_eq!(limits, DiskLimits::Limited { default_mb: 10240, max_mb: 102_400 });
        let odd = DiskLimits::new(Some((64 << 20) + 1), GIB).unwrap();
        assert_eq!(odd, DiskLimits::Limited { default_mb: 65, max_mb: 1024 });
        let too_big = DiskLimits::new(Some(10 * GIB), 4 * GIB).unwrap_err();
        assert!(too_big.contains("--sandbox-disk 10240MiB is larger"), "{too_big}");
        let too_small = DiskLimits::new(Some(1 << 20), GIB).unwrap_err();
        assert!(too_small.contains("at least 16MiB"), "{too_small}");
        assert_eq!(DiskLimits::new(None, GIB).unwrap(), DiskLimits::Unlimited);
    }

    #[test]
    fn a_create_gets_its_own_size_within_bounds_or_the_default() {
        let limits = DiskLimits::Limited { default_mb: 10240, max_mb: 20000 };
        assert_eq!(limits.for_create(None), Ok(Some(10240)));
        assert_eq!(limits.for_create(Some(64)), Ok(Some(64)));
        assert_eq!(limits.for_create(Some(20000)), Ok(Some(20000)));
        for bad in [0, 15, 20001, u32::MAX] {
            let error = limits.for_create(Some(bad)).unwrap_err();
            assert!(error.starts_with("disk_mb must be between 16 and 20000"), "{error}");
        }
    }

    #[test]
    fn an_unlimited_server_refuses_disk_mb_and_enforces_nothing() {
        assert_eq!(DiskLimits::Unlimited.for_create(None), Ok(None));
        assert!(DiskLimits::Unlimited.for_create(Some(64)).unwrap_err().contains("--sandbox-disk unlimited"));
        assert_eq!(DiskLimits::Unlimited.inherit(Some(64)), None);
    }

    #[test]
    fn continuations_keep_the_source_limit_or_get_the_default() {
        let limits = DiskLimits::Limited { default_mb: 1024, max_mb: 4096 };
        assert_eq!(limits.inherit(Some(64)), Some(64));
        assert_eq!(limits.inherit(None), Some(1024));
    }
}
