//! Anti-spoofing on the bridge: one nftables table `bridge nullspace_<bridge>` binds each sandbox's bridge
//! port (its host veth) to the sandbox's MAC and IPv4 address, so a sandbox (even one with raw sockets)
//! can neither claim another sandbox's address in ARP nor send IPv4 from an address it was not given.
//!
//! ```text
//! port_guard (hook prerouting, prio filter): iifname not in @guarded: accept (not this node's port)
//!                                            IPv4: iifname . ether saddr . ip saddr in @ports: accept
//!                                            ARP (Ethernet/IPv4): iifname . ether saddr . arp saddr ip and
//!                                              iifname . arp saddr ether . arp saddr ip in @ports: accept
//!                                            drop (IPv6, other ether types, other sources)
//! guarded: set of ifname, the host veth of each sandbox of this bridge
//! ports:   set of iifname . ether_addr . ipv4_addr, one element per sandbox
//! ```
//!
//! A bridge-family hook sees the frames of every bridge on the host, and this kernel may lack the
//! bridge `meta ibrname` match, so the chain only polices the ports named in `guarded` (other servers'
//! bridges and ports are left alone). A port is guarded and bound in the same script, before its veth
//! exists, and both go after the veth is deleted. Every change is one `nft -f -` script (see
//! [`super::firewall::apply`]).

use std::collections::BTreeSet;
use std::fmt::{self, Write};
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::command::{self, Tool};
use super::error::NetworkError;
/// The set of port bindings.
const SET: &str = "ports";
/// The set of ports the chain polices.
const GUARDED: &str = "guarded";
/// The base chain.
const CHAIN: &str = "port_guard";

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC a sandbox's `eth0` gets: locally administered unicast (`06:6e`, never the bridge's `02:`
    /// prefix) followed by its IPv4 address, so it is known before the veth exists, unique on the
    /// bridge, and the same for whichever sandbox holds the address (no stale neighbour entries).
    pub(crate) fn for_sandbox(addr: Ipv4Addr) -> Self {
        let [a, b, c, d] = addr.octets();
        Self([0x06, 0x6e, a, b, c, d])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().filter(|p| p.len() == 2).ok_or(())?;
            *byte = u8::from_str_radix(part, 16).map_err(drop)?;
        }
        parts.next().is_none().then_some(Self(bytes)).ok_or(())
    }
}

/// One bridge port bound to the only addresses it may send from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PortBinding {
    /// The host end of the sandbox's veth (the bridge port).
    pub iface: String,
    /// The sandbox's MAC (ether source, ARP sender hardware address).
    pub mac: Mac,
    /// The sandbox's address (IPv4 source, ARP sender protocol address).
    pub addr: Ipv4Addr,
}

impl PortBinding {
    fn element(&self) -> String {
        format!("\"{}\" . {} . {}", self.iface, self.mac, self.addr)
    }
}

/// The table, set and base chain; idempotent (re-flushes and refills the chain, keeps the bindings).
pub(crate) fn base_script(table: &str) -> String {
    let t = format!("bridge {table}");
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    let _ = writeln!(s, "add set {t} {GUARDED} {{ type ifname; }}");
    let _ = writeln!(s, "add set {t} {SET} {{ type ifname . ether_addr . ipv4_addr; }}");
    let _ = writeln!(s, "add chain {t} {CHAIN} {{ type filter hook prerouting priority filter; policy accept; }}");
    let _ = writeln!(s, "flush chain {t} {CHAIN}");
    let _ = writeln!(s, "add rule {t} {CHAIN} iifname != @{GUARDED} accept");
    let _ = writeln!(s, "add rule {t} {CHAIN} ether type ip iifname . ether saddr . ip saddr @{SET} accept");
    let _ = writeln!(
        s,
        "add rule {t} {CHAIN} ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 \
         iifname . ether saddr . arp saddr ip @{SET} iifname . arp saddr ether . arp saddr ip @{SET} accept"
    );
    let _ = writeln!(s, "add rule {t} {CHAIN} drop");
    s
}

/// Guards and binds one port (added before the veth exists, so its first frame is already checked).
pub(crate) fn bind_script(table: &str, binding: &PortBinding) -> String {
    format!(
        "add element bridge {table} {GUARDED} {{ \"{}\" }}\nadd element bridge {table} {SET} {{ {} }}\n",
        binding.iface,
        binding.element()
    )
}

/// The bindings a table currently holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PortState {
    /// Whether the table exists at all.
    pub exists: bool,
    /// Ports the chain polices.
    pub guarded: BTreeSet<String>,
    /// Elements of the set.
    pub bindings: BTreeSet<PortBinding>,
}

impl PortState {
    /// Removes the bindings `remove` selects and the guarded ports `unguard` selects; `None` when they
    /// select nothing.
    pub(crate) fn removal_script(
        &self,
        table: &str,
        remove: impl Fn(&PortBinding) -> bool,
        unguard: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut s = String::new();
        for binding in self.bindings.iter().filter(|b| remove(b)) {
            let _ = writeln!(s, "delete element bridge {table} {SET} {{ {} }}", binding.element());
        }
        for port in self.guarded.iter().filter(|p| unguard(p)) {
            let _ = writeln!(s, "delete element bridge {table} {GUARDED} {{ \"{port}\" }}");
        }
        (!s.is_empty()).then_some(s)
    }
}

/// Parses `nft -j list table bridge <table>` output.
pub(crate) fn parse_table(table: &str, json: &str) -> Result<PortState, NetworkError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|source| NetworkError::ParseRuleset { table: table.to_owned(), source })?;
    let mut state = PortState::default();
    let items = value.get("nftables").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    for item in items {
        if item.get("table").is_some() {
            state.exists = true;
        }
        let Some(set) = item.get("set") else { continue };
        let elems = set.get("elem").and_then(|e| e.as_array()).into_iter().flatten();
        if set.get("name").and_then(|n| n.as_str()) == Some(GUARDED) {
            state.guarded.extend(elems.filter_map(|e| e.as_str()).map(str::to_owned));
            continue;
        }
        if set.get("name").and_then(|n| n.as_str()) != Some(SET) {
            continue;
        }
        for elem in elems {
            let parts = elem.get("concat").and_then(|c| c.as_array());
            let field = |i: usize| parts.and_then(|p| p.get(i)).and_then(|v| v.as_str());
            let (Some(iface), Some(mac), Some(addr)) = (field(0), field(1), field(2)) else { continue };
            if let (Ok(mac), Ok(addr)) = (mac.parse(), addr.parse()) {
                state.bindings.insert(PortBinding { iface: iface.to_owned(), mac, addr });
            }
        }
    }
    Ok(state)
}

/// The current bindings of `table` (empty when it does not exist).
pub(crate) async fn state(table: &str) -> Result<PortState, NetworkError> {
    match command::run(Tool::Nft, &["-j", "list", "table", "bridge", table], None).await {
        Ok(json) => parse_table(table, &json),
        Err(NetworkError::Command { stderr, .. }) if stderr.contains("No such file") => Ok(PortState::default()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> PortBinding {
        PortBinding {
            iface: "nsv0123456789ab".into(),
            mac: Mac::for_sandbox(Ipv4Addr::new(10, 213, 0, 2)),
            addr: Ipv4Addr::new(10, 213, 0, 2),
        }
    }

    #[test]
    fn sandbox_macs_are_local_unicast_and_carry_the_address() {
        let mac = Mac::for_sandbox(Ipv4Addr::new(10, 213, 1, 254));
        assert_eq!(mac.to_string(), "06:6e:0a:d5:01:fe");
        assert_eq!(mac.0[0] & 0x01, 0, "unicast");
        assert_eq!(mac.0[0] & 0x02, 0x02, "locally administered");
        assert_ne!(mac.0[0], 0x02, "never the bridge's prefix");
        assert_ne!(mac, Mac::for_sandbox(Ipv4Addr::new(10, 213, 1, 253)));
        assert_eq!("06:6e:0a:d5:01:fe".parse(), Ok(mac));
        for bad in ["", "06:6e:0a:d5:01", "06:6e:0a:d5:01:fe:00", "06:6e:0a:d5:01:zz", "6:6e:0a:d5:01:fe0"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn base_script_binds_sandbox_ports_and_drops_everything_else() {
        let s = base_script("nullspace_nsbr0");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines,
            [
                "add table bridge nullspace_nsbr0",
                "add set bridge nullspace_nsbr0 guarded { type ifname; }",
                "add set bridge nullspace_nsbr0 ports { type ifname . ether_addr . ipv4_addr; }",
                "add chain bridge nullspace_nsbr0 port_guard { type filter hook prerouting priority filter; policy accept; }",
                "flush chain bridge nullspace_nsbr0 port_guard",
                // The hook sees every bridge of the host: other ports (other servers') are not ours.
                "add rule bridge nullspace_nsbr0 port_guard iifname != @guarded accept",
                // IPv4 only from the bound MAC and address of that very port.
                "add rule bridge nullspace_nsbr0 port_guard ether type ip iifname . ether saddr . ip saddr @ports accept",
                // ARP only for Ethernet/IPv4, with both the frame's source and the sender fields bound.
                "add rule bridge nullspace_nsbr0 port_guard ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 \
                 iifname . ether saddr . arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports accept",
                // IPv6, VLAN tags, other ether types, other sources.
                "add rule bridge nullspace_nsbr0 port_guard drop",
            ]
        );
        assert!(!s.contains("element") && !s.contains("delete"), "the base script never touches bindings");
    }

    #[test]
    fn bind_and_remove_one_port() {
        let b = binding();
        assert_eq!(
            bind_script("t", &b).lines().collect::<Vec<_>>(),
            [
                "add element bridge t guarded { \"nsv0123456789ab\" }",
                "add element bridge t ports { \"nsv0123456789ab\" . 06:6e:0a:d5:00:02 . 10.213.0.2 }",
            ]
        );
        let state = PortState {
            exists: true,
            guarded: BTreeSet::from([b.iface.clone(), "nsvstale".into()]),
            bindings: BTreeSet::from([b.clone()]),
        };
        assert_eq!(
            state.removal_script("t", |x| x.iface == b.iface, |p| p == b.iface).unwrap().lines().collect::<Vec<_>>(),
            [
                "delete element bridge t ports { \"nsv0123456789ab\" . 06:6e:0a:d5:00:02 . 10.213.0.2 }",
                "delete element bridge t guarded { \"nsv0123456789ab\" }",
            ]
        );
        assert_eq!(
            state.removal_script("t", |_| false, |p| p == "nsvstale").unwrap(),
            "delete element bridge t guarded { \"nsvstale\" }\n"
        );
        assert!(state.removal_script("t", |x| x.iface == "nsvother", |p| p == "nsvother").is_none());
    }

    #[test]
    fn parses_a_table_listing() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "bridge", "name": "t", "handle": 1}},
            {"set": {"family": "bridge", "name": "guarded", "table": "t", "type": "ifname",
                     "elem": ["nsv0123456789ab", "nsvstale"]}},
            {"set": {"family": "bridge", "name": "ports", "table": "t", "type": ["ifname", "ether_addr", "ipv4_addr"],
                     "elem": [{"concat": ["nsv0123456789ab", "06:6e:0a:d5:00:02", "10.213.0.2"]},
                              {"concat": ["nsvbad", "not-a-mac", "10.213.0.3"]}]}},
            {"chain": {"family": "bridge", "table": "t", "name": "port_guard", "type": "filter", "hook": "prerouting"}}]}"#;
        let state = parse_table("t", listing).unwrap();
        assert!(state.exists);
        assert_eq!(state.bindings, BTreeSet::from([binding()]));
        assert_eq!(state.guarded, BTreeSet::from(["nsv0123456789ab".to_owned(), "nsvstale".to_owned()]));
        let empty = parse_table("t", r#"{"nftables": [{"metainfo": {}}]}"#).unwrap();
        assert_eq!(empty, PortState::default());
        assert!(parse_table("t", "not json").is_err());
    }
}
