//! Links: the host bridge (gateway address, no IPv6, MTU of the default route) and each sandbox's veth
//! pair (host end an isolated bridge port, sandbox end `eth0` with a fixed MAC, the address and default
//! route).

use std::net::Ipv4Addr;
use std::path::Path;

use super::command::{self, Tool};
use super::error::NetworkError;
use super::iface::Iface;
use super::names::SANDBOX_IFACE;
use super::namespace;
use super::port_guard::Mac;

/// Whether a link of that name exists in the node's namespace.
pub(crate) fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// MTU of the interface carrying the default route (1500 when unknown), capped at 1500.
pub(crate) fn uplink_mtu() -> u32 {
    let dev = command::run_blocking(Tool::Ip, &["-4", "route", "show", "default"], None)
        .ok()
        .and_then(|out| out.split_whitespace().skip_while(|w| *w != "dev").nth(1).map(str::to_owned));
    dev.and_then(|d| std::fs::read_to_string(Path::new("/sys/class/net").join(d).join("mtu")).ok())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .map_or(1500, |m| m.min(1500))
}

/// Creates the bridge when missing and (re)applies its address, MTU and state. Blocking.
pub(crate) fn ensure_bridge(bridge: &str, gateway: Ipv4Addr, prefix_len: u8, mtu: u32) -> Result<(), NetworkError> {
    if !exists(bridge) {
        let added = command::run_blocking(Tool::Ip, &["link", "add", "name", bridge, "type", "bridge"], None);
        // Another setup may have made it meanwhile (two first sandboxes of one segment).
        if added.is_err() && !exists(bridge) {
            added?;
        }
    }
    // No IPv6 on the bridge: sandboxes have none, and the host must not offer a link-local address.
    let _ = namespace::set_host_sysctl(&format!("net/ipv6/conf/{bridge}/disable_ipv6"), "1");
    let cidr = format!("{gateway}/{prefix_len}");
    // A fixed MAC: a bridge otherwise takes the lowest port MAC, which changes as sandboxes come and
    // go and leaves the others with a stale ARP entry for their gateway.
    let mac = bridge_mac(bridge);
    let batch = format!("address replace {cidr} dev {bridge}\nlink set dev {bridge} address {mac} mtu {mtu} up\n");
    command::run_blocking(Tool::Ip, &["-batch", "-"], Some(&batch)).map(drop)
}

/// A stable, locally administered unicast MAC derived from the bridge name.
pub(crate) fn bridge_mac(bridge: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("nullspace-bridge\0{bridge}"));
    let mut bytes = [0x02u8, 0, 0, 0, 0, 0];
    bytes[1..].copy_from_slice(&digest[..5]);
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Creates the veth pair: `host` in the node's namespace, `eth0` with the MAC `sandbox_mac` in the existing
/// named namespace `netns`, and makes the host end an isolated (no port-to-port traffic), IPv6-less, up
/// port of `bridge`. One `ip -batch` (it stops at the first error); the host end is set up with an ioctl
/// after its IPv6 is disabled, so it never gets a link-local address.
pub(crate) async fn create_veth(
    netns: &str,
    host: &str,
    sandbox_mac: Mac,
    bridge: &str,
    mtu: u32,
) -> Result<(), NetworkError> {
    let batch = format!(
        "link add {host} mtu {mtu} type veth peer name {SANDBOX_IFACE} address {sandbox_mac} mtu {mtu} netns {netns}\n\
         link set dev {host} master {bridge}\n\
         link set dev {host} type bridge_slave isolated on learning on\n"
    );
    command::run(Tool::Ip, &["-batch", "-"], Some(&batch)).await?;
    let _ = namespace::set_host_sysctl(&format!("net/ipv6/conf/{host}/disable_ipv6"), "1");
    let host = host.to_owned();
    tokio::task::spawn_blocking(move || Iface::open()?.set_up(&host))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Inside the namespace at `netns`: loopback up, `eth0` with `addr/prefix_len` and up, default route via
/// `gateway`. On one short-lived thread, without spawning a process.
pub(crate) async fn configure_sandbox_side(
    netns: &Path,
    addr: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetworkError> {
    let netns = netns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        namespace::run_in(&netns, move || {
            let iface = Iface::open()?;
            iface.set_up("lo")?;
            iface.set_ipv4(SANDBOX_IFACE, addr, prefix_len)?;
            iface.set_up(SANDBOX_IFACE)?;
            iface.add_default_route(SANDBOX_IFACE, gateway)
        })?
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The MAC of `eth0` inside the namespace at `netns` (`None` when it has none).
pub(crate) async fn sandbox_mac(netns: &Path) -> Option<Mac> {
    let netns = netns.to_path_buf();
    tokio::task::spawn_blocking(move || namespace::run_in(&netns, || Iface::open()?.hw_addr(SANDBOX_IFACE)))
        .await
        .ok()
        .and_then(|r| r.ok())
        .and_then(|r| r.ok())
        .map(Mac)
}

/// Deletes a link of the node's namespace if it exists (deleting one veth end removes both).
pub(crate) async fn delete(name: &str) -> Result<(), NetworkError> {
    if !exists(name) {
        return Ok(());
    }
    match command::run(Tool::Ip, &["link", "delete", "dev", name], None).await {
        Err(_) if !exists(name) => Ok(()),
        other => other.map(drop),
    }
}

/// The ports of `bridge`.
pub(crate) fn bridge_ports(bridge: &str) -> Vec<String> {
    let dir = Path::new("/sys/class/net").join(bridge).join("brif");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut ports: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    ports.sort();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_mac_is_stable_local_and_unicast() {
        let mac = bridge_mac("nsbr0");
        assert_eq!(mac, bridge_mac("nsbr0"));
        assert_ne!(mac, bridge_mac("nsbr1"));
        assert!(mac.starts_with("02:") && mac.len() == 17, "{mac}");
    }
}
