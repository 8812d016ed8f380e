//! Host tests with real namespaces, veths, a bridge and nftables (root). Each test has its own bridge
//! (`nst<pid>x<n>`), subnet (`10.250.<n>.0/24`) and table, plus an "outside" namespace attached to
//! the host by another veth (`10.251.<n>.0/30`) that stands in for the internet, so nothing touches
//! the real network. A guard removes everything on drop, also when a test fails. Tests hold one lock:
//! the before/after comparisons read host-wide listings. Spoofing is tested by sending hand-made frames
//! from a sandbox namespace with a packet socket, as a sandbox with `CAP_NET_RAW` could.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::command::{run_blocking, Tool};
use super::names::{SandboxNames, VETH_PREFIX};
use super::port_guard::{self, Mac, PortBinding};
use super::*;

static HOST: Mutex<()> = Mutex::new(());

struct Env {
    net: Network,
    bridge: String,
    table: String,
    prefix: String,
    outside_ns: String,
    /// The outside namespace's address.
    outside: Ipv4Addr,
    /// The host's address on the outside link.
    host_outside: Ipv4Addr,
    tmp: tempfile::TempDir,
    /// Dropped before the lock: removes everything the test created.
    _cleanup: Cleanup,
    _lock: std::sync::MutexGuard<'static, ()>,
}

fn ip(args: &[&str]) -> String {
    run_blocking(Tool::Ip, args, None).unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

fn nft(args: &[&str]) -> String {
    run_blocking(Tool::Nft, args, None).unwrap_or_else(|e| panic!("nft {args:?}: {e}"))
}

/// A test environment, or `None` (with a message) when this host cannot run the tests.
fn env(n: u8) -> Option<Env> {
    env_with(n, SEGMENT_PREFIX_LEN)
}

/// [`env`] whose subnet is carved into segments of `segment_prefix_len` (one bridge each).
fn env_with(n: u8, segment_prefix_len: u8) -> Option<Env> {
    let lock = HOST.lock().unwrap_or_else(|e| e.into_inner());
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping network host test: not root");
        return None;
    }
    if let Err(e) = Tool::Ip.path().and(Tool::Nft.path()) {
        eprintln!("skipping network host test: {e}");
        return None;
    }
    let pid = std::process::id();
    let bridge = format!("nst{pid}x{n}");
    let tmp = tempfile::tempdir().unwrap();
    let outside = Ipv4Addr::new(10, 251, n, 2);
    let config = NetworkConfig {
        bridge: bridge.clone(),
        subnet: format!("10.250.{n}.0/24").parse().unwrap(),
        state_dir: tmp.path().join("network"),
        dns: vec![outside],
        segment_prefix_len,
    };
    let (table, prefix) = (config.table(), config.netns_prefix());
    let outside_ns = format!("nstout{pid}x{n}");
    // The guard exists before anything is created, so a failing step below still cleans up.
    let cleanup = Cleanup {
        bridge: bridge.clone(),
        table: table.clone(),
        prefix: prefix.clone(),
        outside_ns: outside_ns.clone(),
        outside_veth: format!("nso{pid}x{n}"),
    };
    let veth = cleanup.outside_veth.as_str();
    ip(&["netns", "add", &outside_ns]);
    ip(&["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", &outside_ns]);
    ip(&["address", "add", &format!("10.251.{n}.1/30"), "dev", veth]);
    ip(&["link", "set", veth, "up"]);
    ip(&["-n", &outside_ns, "address", "add", &format!("{outside}/30"), "dev", "eth0"]);
    ip(&["-n", &outside_ns, "link", "set", "eth0", "up"]);
    ip(&["-n", &outside_ns, "link", "set", "lo", "up"]);
    let net = Network::new(config).unwrap();
    Some(Env {
        net,
        bridge,
        table,
        prefix,
        outside_ns,
        outside,
        host_outside: Ipv4Addr::new(10, 251, n, 1),
        tmp,
        _cleanup: cleanup,
        _lock: lock,
    })
}

/// Removes everything a test environment may have created; every step ignores "not found".
struct Cleanup {
    bridge: String,
    table: String,
    prefix: String,
    outside_ns: String,
    outside_veth: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in namespace::list(&self.prefix) {
            let _ = run_blocking(Tool::Ip, &["netns", "delete", &ns], None);
        }
        // The bridge and those of its other segments (`<bridge>-<k>`).
        let segment = format!("{}-", self.bridge);
        let bridges: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        for bridge in bridges.iter().filter(|b| **b == self.bridge || b.starts_with(&segment)) {
            for port in link::bridge_ports(bridge) {
                let _ = run_blocking(Tool::Ip, &["link", "delete", "dev", &port], None);
            }
            let _ = run_blocking(Tool::Ip, &["link", "delete", "dev", bridge], None);
        }
        let _ = run_blocking(Tool::Nft, &["delete", "table", "inet", &self.table], None);
        let _ = run_blocking(Tool::Nft, &["delete", "table", "bridge", &self.table], None);
        let _ = run_blocking(Tool::Ip, &["link", "delete", "dev", &self.outside_veth], None);
        let _ = run_blocking(Tool::Ip, &["netns", "delete", &self.outside_ns], None);
    }
}

impl Env {
    fn files(&self, id: &str) -> PathBuf {
        self.tmp.path().join("files").join(id)
    }

    async fn setup(&self, id: &str, policy: &NetworkPolicy) -> SandboxNetwork {
        self.net.setup(id, &id.replace('_', "-"), policy, &self.files(id)).await.unwrap()
    }

    fn names(&self, id: &str) -> SandboxNames {
        SandboxNames::new(&self.prefix, &self.bridge, id)
    }

    fn outside_ns_path(&self) -> PathBuf {
        namespace::path(&self.outside_ns)
    }

    /// Everything this module could leave behind, as text: our namespaces, our bridge and any
    /// `nsv*` link, our tables, our leases.
    fn footprint(&self) -> String {
        let links: Vec<String> = ip(&["-o", "link", "show"])
            .lines()
            .filter(|l| l.contains(&self.bridge) || l.contains(&format!(": {VETH_PREFIX}")))
            .map(link_config)
            .collect();
        let netns: Vec<String> = namespace::list(&self.prefix);
        let pins = format!(" {}/{}", namespace::NETNS_DIR, self.prefix);
        let mounts =
            std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&pins)).count();
        let leases = std::fs::read_dir(self.tmp.path().join("network/leases")).map_or(0, |d| d.count());
        format!(
            "links:\n{}\nnetns:{netns:?}\nnetns mounts:{mounts}\nleases:{leases}\ntable:\n{}\nports:\n{}",
            links.join("\n"),
            nft(&["list", "table", "inet", &self.table]),
            nft(&["list", "table", "bridge", &self.table])
        )
    }
}

/// A line of `ip -o link` reduced to configuration (name, mtu, master, MAC), without the index and the
/// operational state the kernel derives from carrier changes.
fn link_config(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
    let name = words.get(1).copied().unwrap_or_default();
    format!("{name} mtu={:?} master={:?} mac={:?}", after("mtu"), after("master"), after("link/ether"))
}

fn policy(internet: bool, allow: &[&str], deny: &[&str]) -> NetworkPolicy {
    let parse = |l: &[&str]| l.iter().map(|e| parse_destination(e).unwrap()).collect();
    NetworkPolicy { internet_access: internet, allow_out: parse(allow), deny_out: parse(deny) }
}

/// A TCP listener on 0.0.0.0 (port `port`, 0 = any) inside `netns` (`None`: the host).
fn listen(netns: Option<&Path>, port: u16) -> TcpListener {
    let bind = move || TcpListener::bind(("0.0.0.0", port)).unwrap();
    match netns {
        Some(ns) => namespace::run_in(ns, bind).unwrap(),
        None => bind(),
    }
}

fn port(listener: &TcpListener) -> u16 {
    listener.local_addr().unwrap().port()
}

/// Whether a TCP connection from inside `netns` (`None`: the host) to `addr:port` succeeds.
fn connects(netns: Option<&Path>, addr: Ipv4Addr, port: u16) -> bool {
    let target = SocketAddr::from((addr, port));
    let connect = move || TcpStream::connect_timeout(&target, Duration::from_millis(1500)).is_ok();
    match netns {
        Some(ns) => namespace::run_in(ns, connect).unwrap(),
        None => connect(),
    }
}

#[tokio::test]
async fn network_policies_and_isolation() {
    let Some(env) = env(1) else { return };
    let outside_listener = listen(Some(&env.outside_ns_path()), 0);
    let out_port = port(&outside_listener);
    let _dns_listener = listen(Some(&env.outside_ns_path()), 53);
    let host_listener = listen(None, 0);
    let host_port = port(&host_listener);
    let outside_net = format!("{}/30", Ipv4Addr::from(u32::from(env.outside) & !3));

    let a = env.setup("sb_a", &NetworkPolicy::default()).await;
    let b = env.setup("sb_b", &NetworkPolicy::default()).await;
    let off = env.setup("sb_off", &policy(false, &[], &[])).await;
    let denied = env.setup("sb_deny", &policy(true, &[], &[&env.outside.to_string()])).await;
    let allow_other = env.setup("sb_allowother", &policy(true, &["192.0.2.0/24"], &[])).await;
    let allow_it = env.setup("sb_allowit", &policy(true, &[&outside_net], &[])).await;
    let narrow = env.setup("sb_narrow", &policy(true, &[&env.outside.to_string()], &["0.0.0.0/0"])).await;
    let addrs: BTreeSet<Ipv4Addr> =
        [&a, &b, &off, &denied, &allow_other, &allow_it, &narrow].iter().map(|n| n.address).collect();
    assert_eq!(addrs.len(), 7, "distinct addresses");
    assert!(a.address != a.gateway && env.net.config().subnet.contains(&a.address));

    // Egress to the stand-in internet, through NAT, per policy.
    let reach = |n: &SandboxNetwork| connects(Some(&n.netns_path), env.outside, out_port);
    assert!(reach(&a), "default policy reaches the outside");
    assert!(reach(&b));
    assert!(!reach(&off), "internet_access=false");
    assert!(!reach(&denied), "deny_out entry");
    assert!(!reach(&allow_other), "allow_out without the destination");
    assert!(reach(&allow_it), "allow_out with the destination");
    assert!(reach(&narrow), "more specific allow beats deny 0.0.0.0/0");
    // DNS to the configured resolver stays open for allowlists, not with internet off.
    assert!(connects(Some(&allow_other.netns_path), env.outside, 53));
    assert!(!connects(Some(&off.netns_path), env.outside, 53));

    // Isolation: not another sandbox, not the host on any of its addresses.
    let b_listener = listen(Some(&b.netns_path), 0);
    assert!(!connects(Some(&a.netns_path), b.address, port(&b_listener)), "sandbox to sandbox");
    assert!(!connects(Some(&a.netns_path), a.gateway, host_port), "host via the gateway");
    assert!(!connects(Some(&a.netns_path), env.host_outside, host_port), "host via another address");
    assert!(connects(None, b.address, port(&b_listener)), "the host reaches a sandbox (preview proxy)");
    assert!(connects(Some(&b.netns_path), Ipv4Addr::LOCALHOST, port(&b_listener)), "loopback is up");

    // No IPv6 inside, and the files for /etc.
    let v6 = namespace::run_in(&a.netns_path, || std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6"))
        .unwrap();
    assert_eq!(v6.unwrap().trim(), "1");
    assert!(ip(&["-n", &env.names("sb_a").netns, "-6", "address", "show"]).trim().is_empty());
    // Ping sockets for every group (ping without CAP_NET_RAW), and the MAC the port is bound to.
    let ping = namespace::run_in(&a.netns_path, || std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range"));
    assert_eq!(ping.unwrap().unwrap().split_whitespace().collect::<Vec<_>>(), ["0", "2147483647"]);
    assert_eq!(link::sandbox_mac(&a.netns_path).await, Some(Mac::for_sandbox(a.address)));
    let resolv = std::fs::read_to_string(&a.resolv_conf).unwrap();
    assert!(resolv.contains(&format!("nameserver {}", env.outside)), "{resolv}");
    let hosts = std::fs::read_to_string(&a.hosts).unwrap();
    assert!(hosts.contains(&format!("{}\tsb-a", a.address)), "{hosts}");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim(), "1");
}

/// Sends raw Ethernet frames on `eth0` inside `netns` through a packet socket, from one thread pinned to
/// one CPU, so the host handles them in the order they were sent.
fn send_frames(netns: &Path, frames: Vec<Vec<u8>>) {
    namespace::run_in(netns, move || {
        let mut cpus = nix::sched::CpuSet::new();
        let cpu = (0..nix::sched::CpuSet::count())
            .find(|&c| nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap().is_set(c).unwrap())
            .unwrap();
        cpus.set(cpu).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
        // SAFETY: socket(2) with constant arguments; the descriptor is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // SAFETY: a new descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new("eth0").unwrap();
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0);
        // SAFETY: an all-zero sockaddr_ll is valid; the fields used are set below.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = index as i32;
        to.sll_halen = 6;
        for frame in frames {
            // SAFETY: `frame` and `to` are valid for the call.
            let sent = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    std::ptr::from_ref(&to).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(sent, frame.len() as isize, "{}", std::io::Error::last_os_error());
        }
    })
    .unwrap();
}

/// An ARP request from `mac` (frame source and sender), "who has `target`, tell `sender`".
fn arp_request(mac: Mac, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(mac.0);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend(mac.0);
    f.extend(sender.octets());
    f.extend([0; 6]);
    f.extend(target.octets());
    f
}

/// A UDP datagram in an Ethernet frame from `mac` to `gateway_mac`.
fn udp_frame(mac: Mac, gateway_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, port: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = gateway_mac.0.to_vec();
    f.extend(mac.0);
    f.extend([0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut header = vec![0x45, 0];
    header.extend(total.to_be_bytes());
    header.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    header.extend(src.octets());
    header.extend(dst.octets());
    let sum = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    f.extend(header);
    f.extend(40000u16.to_be_bytes());
    f.extend(port.to_be_bytes());
    f.extend((8 + payload.len() as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend(payload);
    f
}

/// The host's neighbour entry (MAC) for `addr` on the bridge.
fn neighbour(bridge: &str, addr: Ipv4Addr) -> Option<String> {
    let out = ip(&["-j", "neigh", "show", &addr.to_string(), "dev", bridge]);
    let entries: serde_json::Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out }).unwrap();
    entries.get(0).and_then(|e| e.get("lladdr")).and_then(|m| m.as_str()).map(str::to_owned)
}

#[tokio::test]
async fn network_ports_only_send_from_their_own_mac_and_address() {
    let Some(env) = env(8) else { return };
    let a = env.setup("sb_a", &NetworkPolicy::default()).await;
    let b = env.setup("sb_b", &NetworkPolicy::default()).await;
    let (a_mac, b_mac) = (Mac::for_sandbox(a.address), Mac::for_sandbox(b.address));
    assert_eq!(link::sandbox_mac(&a.netns_path).await, Some(a_mac));
    assert_eq!(link::sandbox_mac(&b.netns_path).await, Some(b_mac));
    let gateway_mac: Mac = link::bridge_mac(&env.bridge).parse().unwrap();
    // The host talks to b, so it has a neighbour entry for it.
    let b_listener = listen(Some(&b.netns_path), 0);
    assert!(connects(None, b.address, port(&b_listener)));
    assert_eq!(neighbour(&env.bridge, b.address), Some(b_mac.to_string()));

    let outside = namespace::run_in(&env.outside_ns_path(), || UdpSocket::bind(("0.0.0.0", 0)).unwrap()).unwrap();
    outside.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let udp_port = outside.local_addr().unwrap().port();
    let udp = |mac, src, payload: &str| udp_frame(mac, gateway_mac, src, env.outside, udp_port, payload.as_bytes());
    send_frames(
        &a.netns_path,
        vec![
            // "b's address is at a's MAC", gratuitous, then as a plain request.
            arp_request(a_mac, b.address, b.address),
            arp_request(a_mac, b.address, a.gateway),
            // IPv4 as b, from a's MAC; from a's address with b's MAC.
            udp(a_mac, b.address, "spoofed address"),
            udp(b_mac, a.address, "spoofed mac"),
            // What a may send: its own MAC and address. Sent last, so it arrives after anything above.
            udp(a_mac, a.address, "legit"),
        ],
    );
    let mut buf = [0u8; 64];
    let (n, _) = outside.recv_from(&mut buf).expect("the legitimate datagram arrives");
    assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "legit", "a spoofed datagram got through first");
    assert_eq!(neighbour(&env.bridge, b.address), Some(b_mac.to_string()), "a took over b's address");
    assert!(connects(None, b.address, port(&b_listener)), "the host still reaches b");

    // The hook sees every bridge of the host: a port of another bridge (another server's sandbox,
    // named like ours) is not this table's to police.
    let pid = std::process::id();
    let other = Cleanup {
        bridge: format!("nsf{pid}"),
        table: format!("nullspace_nsf{pid}"),
        prefix: format!("nsf{pid}-"),
        outside_ns: format!("nsf{pid}-ns"),
        outside_veth: format!("nsvf{pid}"),
    };
    ip(&["link", "add", &other.bridge, "type", "bridge"]);
    ip(&["address", "add", "10.252.8.1/30", "dev", &other.bridge]);
    ip(&["link", "set", &other.bridge, "up"]);
    ip(&["netns", "add", &other.outside_ns]);
    ip(&["link", "add", &other.outside_veth, "type", "veth", "peer", "name", "eth0", "netns", &other.outside_ns]);
    ip(&["link", "set", &other.outside_veth, "master", &other.bridge, "up"]);
    ip(&["-n", &other.outside_ns, "address", "add", "10.252.8.2/30", "dev", "eth0"]);
    ip(&["-n", &other.outside_ns, "link", "set", "eth0", "up"]);
    let host_listener = listen(None, 0);
    let foreign = namespace::path(&other.outside_ns);
    assert!(connects(Some(&foreign), Ipv4Addr::new(10, 252, 8, 1), port(&host_listener)), "a foreign port was policed");
}

#[tokio::test]
async fn network_teardown_removes_everything_and_is_idempotent() {
    let Some(env) = env(2) else { return };
    let before = env.footprint();
    let rules_before: usize = firewall::state(&env.table).await.unwrap().rules.values().sum();
    let net = env.setup("sb_x", &policy(true, &["198.51.100.0/24"], &["198.51.100.7"])).await;
    let names = env.names("sb_x");

    assert!(net.netns_path.exists());
    assert!(
        ip(&["netns", "list"]).lines().any(|l| l.split_whitespace().next() == Some(&names.netns)),
        "iproute2 sees it"
    );
    assert_eq!(link::bridge_ports(&env.bridge), vec![names.host_veth.clone()]);
    let state = firewall::state(&env.table).await.unwrap();
    assert_eq!(state.chains, BTreeSet::from([names.chain.clone()]));
    assert_eq!(state.elements.get(&net.address), Some(&names.chain));
    // established, dns, deny /32, allow /24, default
    assert_eq!(state.rules.values().sum::<usize>(), rules_before + 5);
    assert_eq!(std::fs::read_dir(env.tmp.path().join("network/leases")).unwrap().count(), 1);
    let binding = PortBinding { iface: names.host_veth.clone(), mac: Mac::for_sandbox(net.address), addr: net.address };
    let ports = port_guard::state(&env.table).await.unwrap();
    assert_eq!(ports.bindings, BTreeSet::from([binding]));
    assert_eq!(ports.guarded, BTreeSet::from([names.host_veth.clone()]));

    env.net.teardown("sb_x").await.unwrap();
    assert_eq!(
        port_guard::state(&env.table).await.unwrap(),
        port_guard::PortState { exists: true, ..Default::default() }
    );
    assert!(!net.netns_path.exists());
    assert!(link::bridge_ports(&env.bridge).is_empty());
    assert!(!link::exists(&names.host_veth));
    assert_eq!(firewall::state(&env.table).await.unwrap().rules.values().sum::<usize>(), rules_before);
    assert_eq!(env.footprint(), before);

    env.net.teardown("sb_x").await.unwrap();
    env.net.teardown("sb_never").await.unwrap();
    assert!(env.net.teardown("../x").await.is_err());
    assert_eq!(env.footprint(), before);
}

#[tokio::test]
async fn network_prepared_but_never_connected_is_torn_down_cleanly() {
    let Some(env) = env(7) else { return };
    let before = env.footprint();
    let prepared =
        env.net.prepare("sb_half", "sb-half", &NetworkPolicy::default(), &env.files("sb_half")).await.unwrap();
    let names = env.names("sb_half");
    // The namespace exists with IPv6 off, but nothing is wired: no veth, no rules.
    assert!(prepared.network.netns_path.exists());
    let v6 = namespace::run_in(&prepared.network.netns_path, || {
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/default/disable_ipv6")
    })
    .unwrap();
    assert_eq!(v6.unwrap().trim(), "1");
    assert!(link::bridge_ports(&env.bridge).is_empty());
    assert!(!firewall::state(&env.table).await.unwrap().chains.contains(&names.chain));
    assert!(port_guard::state(&env.table).await.unwrap().guarded.is_empty());

    env.net.teardown("sb_half").await.unwrap();
    assert!(!prepared.network.netns_path.exists());
    assert_eq!(env.footprint(), before);
}

#[tokio::test]
async fn network_reconcile_removes_orphans() {
    let Some(env) = env(3) else { return };
    let outside_listener = listen(Some(&env.outside_ns_path()), 0);
    let keep = env.setup("sb_keep", &NetworkPolicy::default()).await;
    let _orphan = env.setup("sb_orphan", &NetworkPolicy::default()).await;
    // Leftovers without leases: a bare namespace, a chain, a veth on the bridge.
    ip(&["netns", "add", &format!("{}sb_raw", env.prefix)]);
    nft(&["add", "chain", "inet", &env.table, "sb_00deadbeef"]);
    ip(&["link", "add", "nsvorphan0", "type", "veth", "peer", "name", "nsvorphan1"]);
    ip(&["link", "set", "nsvorphan0", "master", &env.bridge]);
    let stray = PortBinding {
        iface: "nsvorphan0".into(),
        mac: Mac::for_sandbox(Ipv4Addr::new(10, 250, 3, 250)),
        addr: Ipv4Addr::new(10, 250, 3, 250),
    };
    run_blocking(Tool::Nft, &["-f", "-"], Some(&port_guard::bind_script(&env.table, &stray))).unwrap();

    // A restart: a second Network over the same config keeps what exists.
    let restarted = Network::new(env.net.config().clone()).unwrap();
    assert!(connects(Some(&keep.netns_path), env.outside, port(&outside_listener)));
    // The kept sandbox as a server without the port guard left it: no binding, a MAC of the kernel's
    // (and the host forgets the old one).
    let kept = env.names("sb_keep");
    let binding =
        PortBinding { iface: kept.host_veth.clone(), mac: Mac::for_sandbox(keep.address), addr: keep.address };
    let unbind = port_guard::PortState {
        exists: true,
        guarded: BTreeSet::from([kept.host_veth.clone()]),
        bindings: BTreeSet::from([binding]),
    };
    run_blocking(Tool::Nft, &["-f", "-"], unbind.removal_script(&env.table, |_| true, |_| true).as_deref()).unwrap();
    ip(&["-n", &kept.netns, "link", "set", "eth0", "address", "06:00:00:00:00:01"]);
    ip(&["neigh", "flush", "to", &keep.address.to_string(), "dev", &env.bridge]);
    let removed = restarted.reconcile(&BTreeSet::from(["sb_keep".to_owned()])).await.unwrap();
    assert_eq!(removed, ["sb_orphan", "sb_raw"]);

    assert_eq!(namespace::list(&env.prefix), vec![kept.netns.clone()]);
    assert_eq!(link::bridge_ports(&env.bridge), vec![kept.host_veth.clone()]);
    assert!(!link::exists("nsvorphan1"));
    let state = firewall::state(&env.table).await.unwrap();
    assert_eq!(state.chains, BTreeSet::from([kept.chain.clone()]));
    assert_eq!(state.elements.keys().copied().collect::<Vec<_>>(), vec![keep.address]);
    // Only the kept port stays bound, to the MAC its sandbox really has.
    let rebound =
        PortBinding { iface: kept.host_veth.clone(), mac: "06:00:00:00:00:01".parse().unwrap(), addr: keep.address };
    let ports = port_guard::state(&env.table).await.unwrap();
    assert_eq!(ports.bindings, BTreeSet::from([rebound]));
    assert_eq!(ports.guarded, BTreeSet::from([kept.host_veth.clone()]));
    assert!(connects(Some(&keep.netns_path), env.outside, port(&outside_listener)), "the kept sandbox still works");
    assert!(restarted.reconcile(&BTreeSet::from(["sb_keep".to_owned()])).await.unwrap().is_empty());
}

#[tokio::test]
async fn network_addresses_are_reused_after_teardown() {
    let Some(env) = env(4) else { return };
    let outside_listener = listen(Some(&env.outside_ns_path()), 0);
    let a = env.setup("sb_a", &policy(false, &[], &[])).await;
    let b = env.setup("sb_b", &NetworkPolicy::default()).await;
    env.net.teardown("sb_a").await.unwrap();
    let c = env.setup("sb_c", &NetworkPolicy::default()).await;
    assert_eq!(c.address, a.address);
    assert_ne!(c.address, b.address);
    // The reused address carries the new policy only (sb_a had no internet).
    assert!(connects(Some(&c.netns_path), env.outside, port(&outside_listener)));
    // Setting up an id again replaces its network instead of leaking a second lease.
    let c2 = env.setup("sb_c", &policy(false, &[], &[])).await;
    assert_eq!(c2.address, c.address);
    assert!(!connects(Some(&c2.netns_path), env.outside, port(&outside_listener)));
    assert_eq!(std::fs::read_dir(env.tmp.path().join("network/leases")).unwrap().count(), 2);
}

#[tokio::test]
async fn network_cycles_leave_no_trace() {
    let Some(env) = env(5) else { return };
    let before = env.footprint();
    let policies = [NetworkPolicy::default(), policy(false, &[], &[]), policy(true, &["192.0.2.0/24"], &["192.0.2.1"])];
    for i in 0..50 {
        let id = format!("sb_cycle{i}");
        env.setup(&id, &policies[i % policies.len()]).await;
        env.net.teardown(&id).await.unwrap();
    }
    assert_eq!(env.footprint(), before);
}

#[tokio::test]
async fn network_concurrent_setups_get_distinct_addresses() {
    let Some(env) = env(6) else { return };
    let ids: Vec<String> = (0..8).map(|i| format!("sb_par{i}")).collect();
    let open = NetworkPolicy::default();
    let nets = futures::future::join_all(ids.iter().map(|id| env.setup(id, &open))).await;
    let addrs: BTreeSet<Ipv4Addr> = nets.iter().map(|n| n.address).collect();
    assert_eq!(addrs.len(), ids.len());
    let removed = env.net.reconcile(&BTreeSet::new()).await.unwrap();
    assert_eq!(removed.len(), ids.len());
    assert!(link::bridge_ports(&env.bridge).is_empty());
}

#[tokio::test]
async fn network_segments_have_bridges_of_their_own_and_stay_isolated() {
    // A /24 in segments of /29: five sandboxes a bridge, so the sixth and seventh get the second one.
    let Some(env) = env_with(9, 29) else { return };
    let before = env.footprint();
    let outside_listener = listen(Some(&env.outside_ns_path()), 0);
    let host_listener = listen(None, 0);
    let ids: Vec<String> = (0..7).map(|i| format!("sb_seg{i}")).collect();
    let mut nets = Vec::new();
    for id in &ids {
        nets.push(env.setup(id, &NetworkPolicy::default()).await);
    }
    let second = format!("{}-1", env.bridge);
    let first_ports: Vec<String> = ids[..5].iter().map(|id| env.names(id).host_veth).collect();
    let second_ports: Vec<String> = ids[5..].iter().map(|id| env.names(id).host_veth).collect();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(link::bridge_ports(&env.bridge), sorted(first_ports));
    assert_eq!(link::bridge_ports(&second), sorted(second_ports));
    let (a, c, d) = (&nets[0], &nets[5], &nets[6]);
    assert_eq!(c.address, Ipv4Addr::new(10, 250, 9, 10), "segment 1 starts after its network and gateway");
    assert_eq!(c.gateway, Ipv4Addr::new(10, 250, 9, 9));
    assert_eq!(a.gateway, Ipv4Addr::new(10, 250, 9, 1));
    // The sandbox keeps the subnet's prefix; the second bridge has its segment's.
    assert!(
        ip(&["-n", &env.names(&ids[5]).netns, "-4", "-o", "address", "show", "dev", "eth0"]).contains("10.250.9.10/24")
    );
    assert!(ip(&["-4", "-o", "address", "show", "dev", &second]).contains("10.250.9.9/29"));

    // Egress through NAT from both segments; the host reaches both (preview proxy).
    for net in [a, c, d] {
        assert!(connects(Some(&net.netns_path), env.outside, port(&outside_listener)), "{}", net.address);
    }
    let c_listener = listen(Some(&c.netns_path), 0);
    let a_listener = listen(Some(&a.netns_path), 0);
    assert!(connects(None, c.address, port(&c_listener)));
    // Isolation on the second bridge, across bridges both ways, and from the host on every gateway.
    assert!(!connects(Some(&d.netns_path), c.address, port(&c_listener)), "same segment");
    assert!(!connects(Some(&a.netns_path), c.address, port(&c_listener)), "first to second segment");
    assert!(!connects(Some(&c.netns_path), a.address, port(&a_listener)), "second to first segment");
    for gateway in [a.gateway, c.gateway] {
        assert!(!connects(Some(&c.netns_path), gateway, port(&host_listener)), "host via {gateway}");
        assert!(!connects(Some(&a.netns_path), gateway, port(&host_listener)), "host via {gateway}");
    }
    // The second bridge's port is guarded like the first's.
    let guarded = port_guard::state(&env.table).await.unwrap().guarded;
    assert!(guarded.contains(&env.names(&ids[6]).host_veth));

    // A restart finds the sandboxes of both bridges whole; once they are gone, the reconcile removes
    // the second bridge and everything is as before.
    let restarted = Network::new(env.net.config().clone()).unwrap();
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    assert!(restarted.lost(&all).await.unwrap().is_empty());
    for id in &ids {
        restarted.teardown(id).await.unwrap();
    }
    assert!(link::exists(&second), "the bridge stays until a reconcile");
    assert!(restarted.reconcile(&BTreeSet::new()).await.unwrap().is_empty());
    assert!(!link::exists(&second));
    assert_eq!(env.footprint(), before);
}

#[test]
fn network_rejects_bad_input_before_touching_the_host() {
    assert!(Network::validate_policy(&policy(true, &["2001:db8::/32"], &[])).unwrap_err().is_client_error());
    Network::validate_policy(&NetworkPolicy::default()).unwrap();
}
