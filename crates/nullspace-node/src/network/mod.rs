//! Per-sandbox networking on one host: a named network namespace per sandbox, a veth pair to an
//! isolated host bridge, an address leased from a private subnet, NAT for egress and nftables rules
//! for the sandbox's internet/allow/deny policy. Sandboxes reach neither the host nor each other.
//!
//! Host-wide effects while a [`Network`] exists: the bridge (default `nsbr0`) with the gateway
//! address, one nftables table (`inet nullspace_<bridge>`), and `net.ipv4.ip_forward=1` (enabled by
//! [`Network::new`] and left on, since other sandboxes or host services may rely on it).

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

#[cfg(test)]
mod host_tests;

pub use config::{host_dns, NetworkConfig, DEFAULT_BRIDGE, DEFAULT_SUBNET};
pub use error::NetworkError;
pub use manager::{Network, PreparedNetwork, SandboxNetwork};
pub use policy::{parse_destination, NetworkPolicy, MAX_POLICY_ENTRIES};
