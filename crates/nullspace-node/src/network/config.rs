//! The node-wide network settings ([`NetworkConfig`]): bridge, sandbox subnet, state dir and the
//! upstream resolvers sandboxes use, with their defaults and validation, and how the subnet is carved
//! into segments of one bridge each.
//!
//! A Linux bridge holds at most 1,023 ports (`BR_MAX_PORTS` is 1,024 and port 0 is reserved), so one
//! bridge cannot hold more sandboxes than that. The subnet is carved into segments of
//! [`SEGMENT_PREFIX_LEN`] (a /22: 1,024 addresses, 1,021 sandboxes once the segment's network,
//! gateway and broadcast addresses are left out), segment `k` on a bridge of its own: `<bridge>` for
//! the first, `<bridge>-<k>` for the others (a `-` no configured bridge name may contain, so the names
//! never meet another server's). The first bridge carries the gateway with the whole subnet's prefix
//! (the subnet's route, as before segments), each other bridge its segment's first address with the
//! segment's prefix, a more specific route. Sandboxes keep the subnet's prefix on `eth0` with their
//! segment's gateway as default route. A /16 gives 64 segments (65,344 sandboxes).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::error::NetworkError;

/// Default host bridge.
pub const DEFAULT_BRIDGE: &str = "nsbr0";
/// Default sandbox subnet; the gateway is its first host address.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";
/// Prefix length of a segment (one bridge): 1,021 sandboxes, below a bridge's 1,023 ports.
pub const SEGMENT_PREFIX_LEN: u8 = 22;
/// Longest interface name the kernel takes (`IFNAMSIZ` − 1).
const IFNAME_MAX: usize = 15;
/// Resolver used when the host has no usable (non-loopback IPv4) one.
const FALLBACK_DNS: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);

/// Node-wide network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Host bridge the sandboxes' veths join (≤ 15 characters: letters, digits, `_`).
    pub bridge: String,
    /// Sandbox subnet; the first host address is the gateway (on the bridge).
    pub subnet: Ipv4Net,
    /// Where address leases live (`<data>/network`).
    pub state_dir: PathBuf,
    /// Upstream resolvers written into each sandbox's resolv.conf (reached through NAT).
    pub dns: Vec<Ipv4Addr>,
    /// Prefix length of the segments the subnet is carved into, one bridge each (default
    /// [`SEGMENT_PREFIX_LEN`]; 22 to 29; a subnet smaller than a segment is one segment).
    pub segment_prefix_len: u8,
}

impl NetworkConfig {
    /// The defaults for a node whose data dir is `data_dir`; resolvers come from [`host_dns`].
    pub fn new(data_dir: &Path) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnet: DEFAULT_SUBNET.parse().expect("default subnet is valid"),
            state_dir: data_dir.join("network"),
            dns: host_dns(),
            segment_prefix_len: SEGMENT_PREFIX_LEN,
        }
    }

    /// The gateway: the subnet's first host address, assigned to the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()) + 1)
    }

    /// Prefix length of one segment: the configured one, or the subnet's when the subnet is smaller.
    pub fn segment_len(&self) -> u8 {
        self.segment_prefix_len.max(self.subnet.prefix_len())
    }

    /// How many segments (bridges) the subnet gives: one per segment of the subnet whose bridge name
    /// fits in an interface name.
    pub fn segments(&self) -> u32 {
        let carved = 1_u64 << (self.segment_len() - self.subnet.prefix_len());
        let fitting = (0..carved).take_while(|k| self.bridge_name(*k as u32).len() <= IFNAME_MAX).count();
        u32::try_from(fitting).unwrap_or(u32::MAX).max(1)
    }

    /// Sandbox addresses one segment holds: all but its network, gateway and broadcast addresses.
    pub fn addresses_per_segment(&self) -> u64 {
        (1_u64 << (32 - u32::from(self.segment_len()))) - 3
    }

    /// Sandboxes the subnet can address: [`Self::segments`] × [`Self::addresses_per_segment`].
    pub fn sandbox_capacity(&self) -> u64 {
        u64::from(self.segments()) * self.addresses_per_segment()
    }

    /// Segment `k` of the subnet.
    pub(crate) fn segment(&self, k: u32) -> Ipv4Net {
        let size = 1_u32 << (32 - u32::from(self.segment_len()));
        let network = Ipv4Addr::from(u32::from(self.subnet.network()) + k * size);
        Ipv4Net::new(network, self.segment_len()).expect("a segment prefix is at most 29")
    }

    /// The segment `addr` lies in, if it is an address of the subnet in a usable segment.
    pub(crate) fn segment_of(&self, addr: Ipv4Addr) -> Option<u32> {
        if !self.subnet.contains(&addr) {
            return None;
        }
        let offset = u32::from(addr) - u32::from(self.subnet.network());
        let k = offset >> (32 - u32::from(self.segment_len()));
        (k < self.segments()).then_some(k)
    }

    /// The bridge of segment `k`: the configured bridge for the first, `<bridge>-<k>` for the others.
    pub fn bridge_name(&self, k: u32) -> String {
        if k == 0 {
            self.bridge.clone()
        } else {
            format!("{}-{k}", self.bridge)
        }
    }

    /// Every bridge the subnet's segments may use, first one first (those not needed yet do not exist).
    pub fn bridge_names(&self) -> Vec<String> {
        (0..self.segments()).map(|k| self.bridge_name(k)).collect()
    }

    /// The gateway of segment `k` (its first host address, on its bridge); segment 0's is [`Self::gateway`].
    pub(crate) fn segment_gateway(&self, k: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.segment(k).network()) + 1)
    }

    /// The prefix length of the address on segment `k`'s bridge: the subnet's on the first (its route
    /// covers the subnet), the segment's on the others (more specific routes to their bridges).
    pub(crate) fn bridge_prefix_len(&self, k: u32) -> u8 {
        if k == 0 {
            self.subnet.prefix_len()
        } else {
            self.segment_len()
        }
    }

    /// Whether `addr` may be leased to a sandbox: in a usable segment and none of its network, gateway
    /// or broadcast addresses.
    pub(crate) fn is_sandbox_address(&self, addr: Ipv4Addr) -> bool {
        let Some(k) = self.segment_of(addr) else { return false };
        let segment = self.segment(k);
        addr != segment.network() && addr != segment.broadcast() && addr != self.segment_gateway(k)
    }

    /// The nftables table (family `inet`) holding every rule of this bridge.
    pub(crate) fn table(&self) -> String {
        format!("nullspace_{}", self.bridge)
    }

    /// Prefix of the named network namespaces of this bridge's sandboxes (`<bridge>-<sandbox id>`).
    pub(crate) fn netns_prefix(&self) -> String {
        format!("{}-", self.bridge)
    }

    pub(crate) fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |reason: String| Err(NetworkError::InvalidConfig { reason });
        let b = &self.bridge;
        let name_ok = b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
            && b.bytes().next().is_some_and(|c| c.is_ascii_alphabetic());
        if !name_ok || b.len() > 15 {
            return invalid(format!(
                "bridge name {b:?} must be 1 to 15 letters, digits or '_', starting with a letter"
            ));
        }
        if !(8..=29).contains(&self.subnet.prefix_len()) {
            return invalid(format!("subnet {} must have a prefix length between 8 and 29", self.subnet));
        }
        if !(SEGMENT_PREFIX_LEN..=29).contains(&self.segment_prefix_len) {
            return invalid(format!(
                "segment prefix length {} must be between {SEGMENT_PREFIX_LEN} and 29 (a bridge holds at most 1,023 ports)",
                self.segment_prefix_len
            ));
        }
        if self.subnet != self.subnet.trunc() {
            return invalid(format!("subnet {} has host bits set", self.subnet));
        }
        if self.dns.is_empty() {
            return invalid("at least one dns resolver is needed".into());
        }
        if !self.state_dir.is_absolute() {
            return invalid(format!("state dir {} is not absolute", self.state_dir.display()));
        }
        Ok(())
    }
}

/// The host's IPv4 resolvers usable from a sandbox: `/etc/resolv.conf` without loopback addresses,
/// else systemd-resolved's upstream list, else `1.1.1.1`.
pub fn host_dns() -> Vec<Ipv4Addr> {
    ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| parse_resolv_conf(&text))
        .find(|found| !found.is_empty())
        .unwrap_or_else(|| vec![FALLBACK_DNS])
}

/// `nameserver` lines of a resolv.conf, IPv4 only, without loopback or unspecified addresses.
pub(crate) fn parse_resolv_conf(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(|w| w.parse::<Ipv4Addr>().ok()) else { continue };
        if !addr.is_loopback() && !addr.is_unspecified() && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_skips_loopback_ipv6_and_comments() {
        let text = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\n\
                    search example\nnameserver 10.0.0.2\n nameserver 9.9.9.9 # trailing\n;nameserver 8.8.8.8\n";
        assert_eq!(parse_resolv_conf(text), vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(9, 9, 9, 9)]);
        assert!(parse_resolv_conf("nameserver 127.0.0.1\n").is_empty());
    }

    #[test]
    fn defaults_are_valid_and_derive_names() {
        let config = NetworkConfig::new(Path::new("/var/lib/nullspace"));
        config.validate().unwrap();
        assert_eq!(config.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(config.table(), "nullspace_nsbr0");
        assert_eq!(config.netns_prefix(), "nsbr0-");
        assert_eq!(config.state_dir, Path::new("/var/lib/nullspace/network"));
        assert!(!config.dns.is_empty());
    }

    #[test]
    fn a_subnet_is_carved_into_segments_of_one_bridge_each() {
        let mut config = NetworkConfig::new(Path::new("/data"));
        config.bridge = "nsh5".into();
        config.subnet = "10.245.0.0/16".parse().unwrap();
        assert_eq!(config.segments(), 64);
        assert_eq!(config.addresses_per_segment(), 1021);
        assert_eq!(config.sandbox_capacity(), 64 * 1021);
        assert!(config.addresses_per_segment() <= 1023, "a bridge holds at most 1,023 ports");
        assert_eq!(config.bridge_name(0), "nsh5");
        assert_eq!(config.bridge_name(63), "nsh5-63");
        assert_eq!(config.bridge_names().len(), 64);
        assert_eq!(config.segment(1).to_string(), "10.245.4.0/22");
        assert_eq!(config.segment_gateway(0), config.gateway());
        assert_eq!(config.segment_gateway(1), Ipv4Addr::new(10, 245, 4, 1));
        assert_eq!((config.bridge_prefix_len(0), config.bridge_prefix_len(1)), (16, 22));
        assert_eq!(config.segment_of(Ipv4Addr::new(10, 245, 7, 9)), Some(1));
        assert_eq!(config.segment_of(Ipv4Addr::new(10, 246, 0, 9)), None);
        for (addr, usable) in [
            ("10.245.0.1", false),
            ("10.245.0.2", true),
            ("10.245.3.255", false),
            ("10.245.4.0", false),
            ("10.245.4.1", false),
            ("10.245.4.2", true),
            ("10.245.255.254", true),
        ] {
            assert_eq!(config.is_sandbox_address(addr.parse().unwrap()), usable, "{addr}");
        }
        // A subnet smaller than a segment is one segment on the one bridge.
        config.subnet = "10.245.0.0/24".parse().unwrap();
        assert_eq!((config.segments(), config.addresses_per_segment()), (1, 253));
        // Only the bridges whose names fit an interface name (15 characters) are used.
        config.subnet = "10.245.0.0/16".parse().unwrap();
        config.bridge = "abcdefghijklm".into(); // 13: `-1` … `-9` fit, `-10` does not
        assert_eq!(config.segments(), 10);
        config.bridge = "abcdefghijklmno".into();
        assert_eq!(config.segments(), 1);
    }

    #[test]
    fn rejects_bad_configs() {
        let bad: Vec<fn(&mut NetworkConfig)> = vec![
            |c| c.bridge = "a-very-long-bridge-name".into(),
            |c| c.bridge = "br;drop".into(),
            |c| c.bridge = String::new(),
            |c| c.subnet = "10.0.0.0/30".parse().unwrap(),
            |c| c.subnet = "10.0.0.5/24".parse().unwrap(),
            |c| c.dns.clear(),
            |c| c.state_dir = "rel".into(),
            |c| c.segment_prefix_len = 21,
            |c| c.segment_prefix_len = 30,
        ];
        for f in bad {
            let mut config = NetworkConfig::new(Path::new("/data"));
            f(&mut config);
            assert!(matches!(config.validate(), Err(NetworkError::InvalidConfig { .. })), "{config:?}");
        }
    }
}
