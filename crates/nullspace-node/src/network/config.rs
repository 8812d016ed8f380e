//! The node-wide network settings ([`NetworkConfig`]): bridge, sandbox subnet, state dir and the
//! upstream resolvers sandboxes use, with their defaults and validation.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::error::NetworkError;

/// Default host bridge.
pub const DEFAULT_BRIDGE: &str = "nsbr0";
/// Default sandbox subnet; the gateway is its first host address.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";
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
}

impl NetworkConfig {
    /// The defaults for a node whose data dir is `data_dir`; resolvers come from [`host_dns`].
    pub fn new(data_dir: &Path) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnet: DEFAULT_SUBNET.parse().expect("default subnet is valid"),
            state_dir: data_dir.join("network"),
            dns: host_dns(),
        }
    }

    /// The gateway: the subnet's first host address, assigned to the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()) + 1)
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
    fn rejects_bad_configs() {
        let bad: Vec<fn(&mut NetworkConfig)> = vec![
            |c| c.bridge = "a-very-long-bridge-name".into(),
            |c| c.bridge = "br;drop".into(),
            |c| c.bridge = String::new(),
            |c| c.subnet = "10.0.0.0/30".parse().unwrap(),
            |c| c.subnet = "10.0.0.5/24".parse().unwrap(),
            |c| c.dns.clear(),
            |c| c.state_dir = "rel".into(),
        ];
        for f in bad {
            let mut config = NetworkConfig::new(Path::new("/data"));
            f(&mut config);
            assert!(matches!(config.validate(), Err(NetworkError::InvalidConfig { .. })), "{config:?}");
        }
    }
}
