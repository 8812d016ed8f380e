//! Address leases: one file per leased address under `<state>/leases/<ip>`, created with `O_EXCL`
//! (so concurrent setups, even in different processes, never get the same address) and holding the
//! sandbox id. Released at teardown; the lowest free address is handed out next, skipping each
//! segment's network, gateway and broadcast addresses (see [`NetworkConfig`]'s segments), so a
//! segment's sandboxes fill its bridge before the next segment's bridge is needed.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use super::config::NetworkConfig;
use super::error::NetworkError;

/// The lease files of one subnet.
#[derive(Debug, Clone)]
pub(crate) struct AddressPool {
    dir: PathBuf,
    subnet: Ipv4Net,
    /// The subnet's segments: which addresses may be leased.
    layout: NetworkConfig,
}

impl AddressPool {
    /// Leases under `dir` (created when missing) for the subnet of `layout`, handing out only its
    /// sandbox addresses ([`NetworkConfig::is_sandbox_address`]).
    pub(crate) fn open(dir: PathBuf, layout: &NetworkConfig) -> Result<Self, NetworkError> {
        std::fs::create_dir_all(&dir).map_err(NetworkError::io("creating", &dir))?;
        Ok(Self { dir, subnet: layout.subnet, layout: layout.clone() })
    }

    /// The leased addresses, without reading who holds them.
    fn leased(&self) -> Result<std::collections::BTreeSet<Ipv4Addr>, NetworkError> {
        let entries = std::fs::read_dir(&self.dir).map_err(NetworkError::io("listing", &self.dir))?;
        Ok(entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect())
    }

    fn path(&self, addr: Ipv4Addr) -> PathBuf {
        self.dir.join(addr.to_string())
    }

    /// Every current lease: address → sandbox id (empty while a lease is being written).
    pub(crate) fn leases(&self) -> Result<BTreeMap<Ipv4Addr, String>, NetworkError> {
        let entries = std::fs::read_dir(&self.dir).map_err(NetworkError::io("listing", &self.dir))?;
        let mut out = BTreeMap::new();
        for entry in entries.flatten() {
            let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else { continue };
            let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.insert(addr, owner.trim().to_owned());
        }
        Ok(out)
    }

    /// The addresses leased to `sandbox_id`.
    pub(crate) fn leased_to(&self, sandbox_id: &str) -> Result<Vec<Ipv4Addr>, NetworkError> {
        Ok(self.leases()?.into_iter().filter(|(_, owner)| owner == sandbox_id).map(|(a, _)| a).collect())
    }

    /// Leases the lowest free address to `sandbox_id`.
    pub(crate) fn allocate(&self, sandbox_id: &str) -> Result<Ipv4Addr, NetworkError> {
        let taken = self.leased()?;
        for addr in self.subnet.hosts().filter(|a| self.layout.is_sandbox_address(*a) && !taken.contains(a)) {
            let path = self.path(addr);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let written = file.write_all(sandbox_id.as_bytes()).and_then(|()| file.sync_all());
                    if let Err(source) = written {
                        let _ = std::fs::remove_file(&path);
                        return Err(NetworkError::Io { operation: "writing lease", path, source });
                    }
                    return Ok(addr);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(NetworkError::Io { operation: "creating lease", path, source }),
            }
        }
        Err(NetworkError::AddressesExhausted { subnet: self.subnet })
    }

    /// Releases `addr` if (and only if) it is leased to `sandbox_id`; returns whether it was.
    pub(crate) fn release(&self, addr: Ipv4Addr, sandbox_id: &str) -> Result<bool, NetworkError> {
        let path = self.path(addr);
        match std::fs::read_to_string(&path) {
            Ok(owner) if owner.trim() == sandbox_id => {
                std::fs::remove_file(&path).map_err(NetworkError::io("removing lease", &path))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(NetworkError::Io { operation: "reading lease", path, source }),
        }
    }

    /// The lease directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;

    fn pool(dir: &Path, subnet: &str) -> AddressPool {
        let mut layout = NetworkConfig::new(dir);
        layout.subnet = subnet.parse().unwrap();
        AddressPool::open(dir.join("leases"), &layout).unwrap()
    }

    #[test]
    fn hands_out_lowest_free_address_skipping_gateway() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = pool(tmp.path(), "10.9.0.0/24");
        assert_eq!(pool.allocate("a").unwrap(), Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(pool.allocate("b").unwrap(), Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(pool.leased_to("b").unwrap(), vec![Ipv4Addr::new(10, 9, 0, 3)]);
    }

    #[test]
    fn released_addresses_are_reused_and_only_by_their_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = pool(tmp.path(), "10.9.0.0/24");
        let a = pool.allocate("a").unwrap();
        let _b = pool.allocate("b").unwrap();
        assert!(!pool.release(a, "b").unwrap(), "someone else's lease stays");
        assert!(pool.release(a, "a").unwrap());
        assert!(!pool.release(a, "a").unwrap(), "release is idempotent");
        assert_eq!(pool.allocate("c").unwrap(), a);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = pool(tmp.path(), "10.9.0.0/29"); // hosts .1-.6, .1 is the gateway
        for i in 0..5 {
            pool.allocate(&format!("s{i}")).unwrap();
        }
        assert!(matches!(pool.allocate("s5"), Err(NetworkError::AddressesExhausted { .. })));
        assert_eq!(std::fs::read_dir(pool.dir()).unwrap().count(), 5);
    }

    #[test]
    fn segments_skip_their_network_gateway_and_broadcast_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let mut layout = NetworkConfig::new(tmp.path());
        layout.subnet = "10.9.0.0/27".parse().unwrap();
        layout.segment_prefix_len = 29; // four segments of 8 addresses, 5 sandboxes each
        let pool = AddressPool::open(tmp.path().join("leases"), &layout).unwrap();
        let got: Vec<u8> = (0..20).map(|i| pool.allocate(&format!("s{i}")).unwrap().octets()[3]).collect();
        assert_eq!(got, [2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 18, 19, 20, 21, 22, 26, 27, 28, 29, 30]);
        assert!(matches!(pool.allocate("s20"), Err(NetworkError::AddressesExhausted { .. })));
        assert_eq!(layout.sandbox_capacity(), 20);
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Arc::new(pool(tmp.path(), "10.9.0.0/24"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    (0..20).map(|i| pool.allocate(&format!("t{t}-{i}")).unwrap()).collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let unique: BTreeSet<_> = all.iter().collect();
        assert_eq!(all.len(), 160);
        assert_eq!(unique.len(), 160);
    }
}
