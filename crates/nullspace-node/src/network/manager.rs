//! [`Network`]: sets up and tears down one sandbox's network in two halves — prepared (lease → namespace →
//! resolv.conf/hosts) before the runtime starts, connected (firewall → veth → address and route) while it
//! starts — undoing what was built when a step fails, and reconciles leftovers at start.
//!
//! The firewall's egress chains key on a packet's source address; the port guard makes that address
//! (and the MAC) trustworthy, so both are added together, before the veth exists.
//!
//! A sandbox's veth joins the bridge of its address's segment (see `config`): the first segment's
//! bridge exists from [`Network::new`] on, another segment's is made (idempotently) by the first
//! connect of one of its addresses, and removed by the reconcile at start once it holds no port.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use tracing::{info_span, warn, Instrument};

use super::addresses::AddressPool;
use super::config::NetworkConfig;
use super::error::NetworkError;
use super::names::{validate_hostname, validate_sandbox_id, SandboxNames, VETH_PREFIX};
use super::policy::{self, NetworkPolicy};
use super::port_guard::{self, Mac, PortBinding};
use super::{files, firewall, link, namespace};

/// Sysctls set inside every sandbox namespace: no IPv6 at all (nothing to leak through; the port guard
/// drops it too), and ICMP echo sockets for every group, so `ping` works without `CAP_NET_RAW`.
const SANDBOX_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv6/conf/all/disable_ipv6", "1"),
    ("net/ipv6/conf/default/disable_ipv6", "1"),
    ("net/ipv4/ping_group_range", "0 2147483647"),
];

/// What the node needs to start a sandbox inside its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNetwork {
    /// The namespace to join (`SandboxSpec::netns`).
    pub netns_path: PathBuf,
    /// The sandbox's address (on `eth0`).
    pub address: Ipv4Addr,
    /// Its default gateway (the bridge).
    pub gateway: Ipv4Addr,
    /// Per-sandbox file to bind-mount at `/etc/resolv.conf` (in `files_dir`).
    pub resolv_conf: PathBuf,
    /// Per-sandbox file to bind-mount at `/etc/hosts` (in `files_dir`).
    pub hosts: PathBuf,
}

/// A sandbox network whose namespace exists but is not wired yet ([`Network::prepare`]); the runtime may
/// already start inside [`PreparedNetwork::network`]'s namespace while [`Network::connect`] completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedNetwork {
    /// What the runtime needs: the namespace path and the files to bind-mount.
    pub network: SandboxNetwork,
    names: SandboxNames,
    plan: policy::EgressPlan,
}

/// Per-sandbox networking of one node.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    gateway: Ipv4Addr,
    table: String,
    netns_prefix: String,
    pool: AddressPool,
    mtu: u32,
    /// Held while rules are listed and a script made from that listing is applied, so two teardowns of
    /// one sandbox (a destroy racing a failed launch's cleanup) never both delete what one listing showed.
    rules: tokio::sync::Mutex<()>,
    /// Segments whose bridge this process has made or checked (segment 0 by [`Network::new`]).
    bridges_ready: std::sync::Mutex<BTreeSet<u32>>,
}

impl Network {
    /// Prepares the host: state dir, `net.ipv4.ip_forward=1`, the bridge and the base nftables tables (the
    /// firewall's and the port guard's).
    /// Idempotent; existing sandbox networks are kept.
    pub fn new(config: NetworkConfig) -> Result<Self, NetworkError> {
        config.validate()?;
        let gateway = config.gateway();
        let pool = AddressPool::open(config.state_dir.join("leases"), &config)?;
        namespace::set_host_sysctl("net/ipv4/ip_forward", "1")?;
        let mtu = link::uplink_mtu();
        link::ensure_bridge(&config.bridge, gateway, config.bridge_prefix_len(0), mtu)?;
        let table = config.table();
        let base =
            firewall::base_script(&table, &config.bridge_names(), config.subnet) + &port_guard::base_script(&table);
        firewall::apply_blocking(&base)?;
        let netns_prefix = config.netns_prefix();
        let bridges_ready = std::sync::Mutex::new(BTreeSet::from([0]));
        let rules = tokio::sync::Mutex::new(());
        Ok(Self { config, gateway, table, netns_prefix, pool, mtu, rules, bridges_ready })
    }

    /// The bridge of `address`'s segment, made (address, MTU, up) when this process has not made or
    /// checked it yet.
    async fn segment_bridge(&self, address: Ipv4Addr) -> Result<String, NetworkError> {
        let k = self.config.segment_of(address).ok_or_else(|| NetworkError::InvalidConfig {
            reason: format!("{address} is not an address of {}", self.config.subnet),
        })?;
        let bridge = self.config.bridge_name(k);
        if self.bridges_ready.lock().unwrap_or_else(|e| e.into_inner()).contains(&k) {
            return Ok(bridge);
        }
        let (name, gateway, prefix_len, mtu) =
            (bridge.clone(), self.config.segment_gateway(k), self.config.bridge_prefix_len(k), self.mtu);
        // Concurrent first connects of one segment may both get here: `ensure_bridge` takes a bridge
        // another made meanwhile.
        tokio::task::spawn_blocking(move || link::ensure_bridge(&name, gateway, prefix_len, mtu))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        self.bridges_ready.lock().unwrap_or_else(|e| e.into_inner()).insert(k);
        Ok(bridge)
    }

    /// Forgets the segments whose bridge is gone, so the next connect makes it again.
    fn forget_missing_bridges(&self) {
        let mut ready = self.bridges_ready.lock().unwrap_or_else(|e| e.into_inner());
        ready.retain(|k| link::exists(&self.config.bridge_name(*k)));
    }

    /// The bridges of the subnet's segments that exist now.
    fn existing_bridges(&self) -> Vec<String> {
        self.config.bridge_names().into_iter().filter(|b| link::exists(b)).collect()
    }

    /// The configuration this network was created with.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Checks a policy without touching the host (for a 400 at the API).
    pub fn validate_policy(policy: &NetworkPolicy) -> Result<(), NetworkError> {
        policy::validate(policy)
    }

    fn names(&self, sandbox_id: &str) -> SandboxNames {
        SandboxNames::new(&self.netns_prefix, &self.config.bridge, sandbox_id)
    }

    /// Builds the sandbox's network and writes its resolv.conf and hosts into `files_dir`: [`Network::prepare`]
    /// then [`Network::connect`]. A previous network of the same id is torn down first; on failure
    /// everything built is removed again.
    pub async fn setup(
        &self,
        sandbox_id: &str,
        hostname: &str,
        policy: &NetworkPolicy,
        files_dir: &Path,
    ) -> Result<SandboxNetwork, NetworkError> {
        let prepared = self.prepare(sandbox_id, hostname, policy, files_dir).await?;
        if let Err(e) = self.connect(&prepared).await {
            if let Err(undo) = self.teardown(sandbox_id).await {
                warn!(error = %undo, "undoing a failed network setup failed");
            }
            return Err(e);
        }
        Ok(prepared.network)
    }

    /// The part of a sandbox's network a runtime needs before it starts: the address leased, the namespace
    /// created (IPv6 off inside it), resolv.conf and hosts written into `files_dir`. Nothing can reach
    /// the namespace until [`Network::connect`] wires it, so the two may run alongside the runtime's start.
    /// A previous network of the same id is torn down first; on failure everything built is removed again.
    pub async fn prepare(
        &self,
        sandbox_id: &str,
        hostname: &str,
        policy: &NetworkPolicy,
        files_dir: &Path,
    ) -> Result<PreparedNetwork, NetworkError> {
        self.prepare_in(sandbox_id, hostname, policy, files_dir, None).await
    }

    /// [`Network::prepare`] with the network namespace `netns` (a descriptor of one made elsewhere, e.g.
    /// owned by the sandbox's user namespace) named and set up instead of a new one.
    pub async fn prepare_in(
        &self,
        sandbox_id: &str,
        hostname: &str,
        policy: &NetworkPolicy,
        files_dir: &Path,
        netns: Option<std::fs::File>,
    ) -> Result<PreparedNetwork, NetworkError> {
        validate_sandbox_id(sandbox_id)?;
        validate_hostname(hostname)?;
        policy::validate(policy)?;
        let span = info_span!("network_prepare", sandbox_id);
        async {
            // Leftovers of an earlier setup of this id (a retried launch) go first. The namespace is
            // created before anything else, so without it there is nothing to tear down.
            if namespace::path(&self.names(sandbox_id).netns).exists() {
                self.teardown_inner(sandbox_id).await?;
            }
            let address = self.pool.allocate(sandbox_id)?;
            match self.build_namespace(sandbox_id, hostname, policy, files_dir, address, netns).await {
                Ok(prepared) => Ok(prepared),
                Err(e) => {
                    if let Err(undo) = self.teardown_inner(sandbox_id).await {
                        warn!(error = %undo, "undoing a failed network setup failed");
                    }
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn build_namespace(
        &self,
        sandbox_id: &str,
        hostname: &str,
        policy: &NetworkPolicy,
        files_dir: &Path,
        address: Ipv4Addr,
        existing: Option<std::fs::File>,
    ) -> Result<PreparedNetwork, NetworkError> {
        let names = self.names(sandbox_id);
        let netns = names.netns.clone();
        let netns_path = tokio::task::spawn_blocking(move || namespace::create(&netns, SANDBOX_SYSCTLS, existing))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        let (resolv_conf, hosts) = files::write_all(files_dir, hostname, address, &self.config.dns)?;
        let gateway = self.config.segment_of(address).map_or(self.gateway, |k| self.config.segment_gateway(k));
        Ok(PreparedNetwork {
            network: SandboxNetwork { netns_path, address, gateway, resolv_conf, hosts },
            names,
            plan: policy::plan(policy, &self.config.dns),
        })
    }

    /// Wires a prepared network: the egress rules and the port binding first (one script), then the veth
    /// pair (the sandbox end with the bound MAC), the address and the default route, so the sandbox never
    /// has a link its rules do not cover yet. On failure the caller tears the network down
    /// ([`Network::teardown`]).
    pub async fn connect(&self, prepared: &PreparedNetwork) -> Result<(), NetworkError> {
        let PreparedNetwork { network, names, plan } = prepared;
        async {
            let mac = Mac::for_sandbox(network.address);
            let binding = PortBinding { iface: names.host_veth.clone(), mac, addr: network.address };
            let script = firewall::sandbox_script(&self.table, &names.chain, network.address, plan)
                + &port_guard::bind_script(&self.table, &binding);
            firewall::apply(&script).await?;
            let bridge = self.segment_bridge(network.address).await?;
            link::create_veth(&names.netns, &names.host_veth, mac, &bridge, self.mtu).await?;
            let prefix_len = self.config.subnet.prefix_len();
            link::configure_sandbox_side(&network.netns_path, network.address, prefix_len, network.gateway).await
        }
        .instrument(info_span!("network_connect", netns = %names.netns))
        .await
    }

    /// Removes the sandbox's rules, veth, namespace and lease. Idempotent. The address is released
    /// last and only when everything else is gone, so it is never reused while stale rules remain.
    pub async fn teardown(&self, sandbox_id: &str) -> Result<(), NetworkError> {
        validate_sandbox_id(sandbox_id)?;
        self.teardown_inner(sandbox_id).instrument(info_span!("network_teardown", sandbox_id)).await
    }

    async fn teardown_inner(&self, sandbox_id: &str) -> Result<(), NetworkError> {
        let names = self.names(sandbox_id);
        let leased = self.pool.leased_to(sandbox_id)?;
        // Deleting either veth end removes both; the port's guard goes only after it. The namespace goes
        // once nothing runs inside it.
        let links = link::delete(&names.host_veth).await;
        let chains = BTreeSet::from([names.chain.clone()]);
        let own_port = |b: &PortBinding| b.iface == names.host_veth || leased.contains(&b.addr);
        let rules = self.update_rules(&chains, &leased, own_port, |p| p == names.host_veth, Vec::new()).await;
        let netns = namespace::delete(&names.netns).await;
        links.and(rules).and(netns)?;
        for addr in leased {
            self.pool.release(addr, sandbox_id)?;
        }
        Ok(())
    }

    /// Removes the given sandbox chains, map elements keyed by `addrs`, port bindings `unbind` selects and
    /// guarded ports `unguard` selects, and adds the bindings `bind`, in one script (nothing is run when
    /// there is nothing to change).
    async fn update_rules(
        &self,
        chains: &BTreeSet<String>,
        addrs: &[Ipv4Addr],
        unbind: impl Fn(&PortBinding) -> bool,
        unguard: impl Fn(&str) -> bool,
        bind: Vec<PortBinding>,
    ) -> Result<(), NetworkError> {
        let _listed = self.rules.lock().await;
        let firewall = firewall::state(&self.table).await?;
        let ports = port_guard::state(&self.table).await?;
        let mut script: String =
            [firewall.removal_script(&self.table, chains, addrs), ports.removal_script(&self.table, unbind, unguard)]
                .into_iter()
                .flatten()
                .collect();
        for binding in &bind {
            script += &port_guard::bind_script(&self.table, binding);
        }
        if script.is_empty() {
            return Ok(());
        }
        firewall::apply(&script).await
    }

    /// Bindings for kept sandboxes whose port exists without one (sandboxes wired before the port guard
    /// existed): their MAC is read from inside their namespace. Until bound, such a port is not policed.
    async fn missing_bindings(
        &self,
        leases: &std::collections::BTreeMap<Ipv4Addr, String>,
        keep: &BTreeSet<String>,
        state: &port_guard::PortState,
    ) -> Vec<PortBinding> {
        let mut missing = Vec::new();
        for (addr, owner) in leases.iter().filter(|(_, owner)| keep.contains(*owner)) {
            let names = self.names(owner);
            let bound = state.guarded.contains(&names.host_veth)
                && state.bindings.iter().any(|b| b.iface == names.host_veth && b.addr == *addr);
            if bound || !link::exists(&names.host_veth) {
                continue;
            }
            match link::sandbox_mac(&namespace::path(&names.netns)).await {
                Some(mac) => missing.push(PortBinding { iface: names.host_veth, mac, addr: *addr }),
                None => warn!(sandbox_id = %owner, "no MAC to bind the sandbox's port to; it stays unguarded"),
            }
        }
        missing
    }

    /// The sandboxes of `ids` that hold an address but whose network is no longer whole: their host
    /// veth is off their segment's bridge (the bridge was deleted and made again) or their firewall
    /// chain is gone (the table was deleted). Such a sandbox answers its guest socket but reaches nothing.
    pub async fn lost(&self, ids: &BTreeSet<String>) -> Result<BTreeSet<String>, NetworkError> {
        let leased: Vec<(Ipv4Addr, String)> =
            self.pool.leases()?.into_iter().filter(|(_, id)| ids.contains(id)).collect();
        if leased.is_empty() {
            return Ok(BTreeSet::new());
        }
        let ports: std::collections::BTreeMap<String, Vec<String>> =
            self.existing_bridges().into_iter().map(|b| (b.clone(), link::bridge_ports(&b))).collect();
        let chains = firewall::state(&self.table).await?.chains;
        Ok(leased
            .into_iter()
            .filter(|(addr, id)| {
                let names = self.names(id);
                let bridge = self.config.segment_of(*addr).map(|k| self.config.bridge_name(k));
                let on_bridge = bridge.and_then(|b| ports.get(&b)).is_some_and(|p| p.contains(&names.host_veth));
                !on_bridge || !chains.contains(&names.chain)
            })
            .map(|(_, id)| id)
            .collect())
    }

    /// Tears down every sandbox network of this bridge whose id is not in `keep` (found through
    /// namespaces and leases), then removes orphaned rules and bridge ports no kept sandbox owns.
    /// Returns the ids torn down, sorted.
    pub async fn reconcile(&self, keep: &BTreeSet<String>) -> Result<Vec<String>, NetworkError> {
        async {
            let mut found: BTreeSet<String> = namespace::list(&self.netns_prefix)
                .into_iter()
                .filter_map(|n| n.strip_prefix(&self.netns_prefix).map(str::to_owned))
                .collect();
            found.extend(self.pool.leases()?.into_values().filter(|id| !id.is_empty()));
            let mut removed = Vec::new();
            for id in found.into_iter().filter(|id| !keep.contains(id) && validate_sandbox_id(id).is_ok()) {
                self.teardown_inner(&id).await?;
                removed.push(id);
            }
            let kept: Vec<SandboxNames> = keep.iter().map(|id| self.names(id)).collect();
            // Orphaned ports go before their guard.
            for port in self.existing_bridges().iter().flat_map(|b| link::bridge_ports(b)) {
                if port.starts_with(VETH_PREFIX) && !kept.iter().any(|k| k.host_veth == port) {
                    warn!(port, "removing orphaned sandbox veth");
                    link::delete(&port).await?;
                }
            }
            // Bridges of other segments that hold no port any more go (the first one stays).
            for bridge in self.existing_bridges().into_iter().filter(|b| *b != self.config.bridge) {
                if link::bridge_ports(&bridge).is_empty() {
                    link::delete(&bridge).await?;
                }
            }
            self.forget_missing_bridges();
            let kept_addrs: BTreeSet<Ipv4Addr> = self
                .pool
                .leases()?
                .into_iter()
                .filter(|(_, owner)| keep.contains(owner))
                .map(|(addr, _)| addr)
                .collect();
            let state = firewall::state(&self.table).await?;
            let stale_chains: BTreeSet<String> =
                state.chains.iter().filter(|c| !kept.iter().any(|k| &k.chain == *c)).cloned().collect();
            let stale_addrs: Vec<Ipv4Addr> = state
                .elements
                .iter()
                .filter(|(addr, chain)| !kept_addrs.contains(addr) || !kept.iter().any(|k| &k.chain == *chain))
                .map(|(addr, _)| *addr)
                .collect();
            // A binding is kept only for a kept sandbox's port and its own address.
            let kept_leases = self.pool.leases()?;
            let owned = |b: &PortBinding| {
                kept_leases
                    .get(&b.addr)
                    .is_some_and(|owner| keep.contains(owner) && self.names(owner).host_veth == b.iface)
            };
            let kept_port = |p: &str| kept.iter().any(|k| k.host_veth == p);
            let bound = port_guard::state(&self.table).await?;
            let missing = self.missing_bindings(&kept_leases, keep, &bound).await;
            let stale_bindings = bound.bindings.iter().filter(|b| !owned(b)).count();
            let stale_guards = bound.guarded.iter().filter(|p| !kept_port(p)).count();
            if !stale_chains.is_empty()
                || !stale_addrs.is_empty()
                || stale_bindings + stale_guards > 0
                || !missing.is_empty()
            {
                warn!(
                    chains = stale_chains.len(),
                    elements = stale_addrs.len(),
                    bindings = stale_bindings,
                    guards = stale_guards,
                    bound = missing.len(),
                    "removing orphaned firewall rules and port bindings, binding unbound sandbox ports"
                );
            }
            self.update_rules(&stale_chains, &stale_addrs, |b| !owned(b), |p| !kept_port(p), missing).await?;
            Ok(removed)
        }
        .instrument(info_span!("network_reconcile", kept = keep.len()))
        .await
    }
}
