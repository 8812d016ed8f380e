//! Per-sandbox networking on one host: a named network namespace per sandbox, a veth pair to an
//! isolated host bridge, an address leased from a private subnet, NAT for egress and nftables rules
//! for the sandbox's internet/allow/deny policy. Sandboxes reach neither the host nor each other, and
//! each bridge port may only send from its sandbox's MAC and address (no ARP or IP spoofing).
//!
//! Host-wide effects while a [`Network`] exists: the bridge (default `nsbr0`) with the gateway
//! address (and, past 1,021 sandboxes, one more bridge `<bridge>-<k>` per /22 segment of the subnet:
//! a bridge holds at most 1,023 ports; see `config`), two nftables tables (`inet nullspace_<bridge>`: firewall and NAT; `bridge
//! nullspace_<bridge>`: the port guard), and `net.ipv4.ip_forward=1` (enabled by [`Network::new`] and
//! left on, since other sandboxes or host services may rely on it).

mod addresses;
mod command;
mod config;
mod error;
mod files;
mod firewall;
mod iface;
mod link;
mod manager;
mod names;
mod namespace;
mod policy;
mod port_guard;

#[cfg(test)]
mod host_tests;

pub use config::{host_dns, NetworkConfig, DEFAULT_BRIDGE, DEFAULT_SUBNET, SEGMENT_PREFIX_LEN};
pub use error::NetworkError;
pub use manager::{Network, PreparedNetwork, SandboxNetwork};
pub use policy::{parse_destination, NetworkPolicy, MAX_POLICY_ENTRIES};
