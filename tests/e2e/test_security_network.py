"""Issue 11, finding 2: a sandbox cannot spoof ARP or its source address on the server's bridge, and ping
works in a sandbox without CAP_NET_RAW.

The attacks do not depend on the sandbox having raw sockets: the test (root on the host) enters the
attacker sandbox's network namespace (`/run/netns/<bridge>-<sandbox id>`) and sends hand-made frames with
an AF_PACKET socket on its `eth0`, exactly what a sandbox with CAP_NET_RAW could send. Each attack ends
with a barrier: the attacker's own, legitimate ARP request for the gateway, answered by the host. The
sender is pinned to one CPU, so its frames are handled by the host in the order they were sent; once
the answer is back, the host has handled (or dropped) the spoofed frames before it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import threading
import uuid

import pytest

from conftest import RUN_ID, wait_until

# Sends the frames described by argv[1] (JSON) on eth0 of the namespace it runs in, then the barrier.
SENDER = r"""
import json, os, socket, struct, sys
cfg = json.loads(sys.argv[1])
mac = open("/sys/class/net/eth0/address").read().strip()
hw = lambda m: bytes.fromhex(m.replace(":", ""))
ip4 = socket.inet_aton
BROADCAST, ZERO = "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"

def arp_request(sender_ip, target_ip):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw(mac) + ip4(sender_ip) + hw(ZERO) + ip4(target_ip)
    return hw(BROADCAST) + hw(mac) + b"\x08\x06" + body

def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF

def udp(src, dst, port, payload):
    datagram = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(datagram), 0, 0x4000, 64, 17, 0, ip4(src), ip4(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return hw(cfg["gateway_mac"]) + hw(mac) + b"\x08\x00" + header + datagram

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind(("eth0", 0))
for frame in cfg["frames"]:
    if frame["kind"] == "garp":  # "<claim> is at <my MAC>", gratuitous (sender = target address)
        sock.send(arp_request(frame["claim"], frame["claim"]))
    else:
        sock.send(udp(frame["src"], frame["dst"], frame["port"], frame["payload"].encode()))
sock.send(arp_request(cfg["ip"], cfg["gateway"]))
sock.settimeout(20)
while True:
    got = sock.recv(2048)
    if got[12:14] == b"\x08\x06" and got[20:22] == b"\x00\x02" and got[28:32] == ip4(cfg["gateway"]):
        break
print(mac)
"""

# A UDP listener (run inside the stand-in "internet" namespace) printing "<source> <payload>" per datagram.
LISTENER = r"""
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = sock.recvfrom(2048)
    print(peer[0], data.decode(errors="replace"), flush=True)
"""

# An ICMP echo through a ping socket (no raw socket): prints the effective capabilities, the reply type
# and who answered.
PING = r"""
import socket, sys
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff:")][0]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
sock.settimeout(10)
sock.sendto(b"\x08\x00\x00\x00\x00\x00\x00\x01nullspace", (sys.argv[1], 0))
data, peer = sock.recvfrom(1024)
print(caps, data[0], peer[0])
"""

UDP_PORT = 9999


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=60)


def _netns(server, sb) -> str:
    return f"{server.bridge}-{sb.id}"


def _eth0(server, sb) -> tuple[str, str]:
    """The sandbox's (IPv4 address, MAC), read on the host from its namespace."""
    ns = _netns(server, sb)
    addr = json.loads(_run("ip", "-n", ns, "-j", "-4", "addr", "show", "dev", "eth0").stdout)[0]["addr_info"][0]["local"]
    mac = json.loads(_run("ip", "-n", ns, "-j", "link", "show", "dev", "eth0").stdout)[0]["address"]
    return addr, mac


def _gateway(server) -> str:
    return str(next(ipaddress.ip_network(server.subnet).hosts()))


def _send_from(server, attacker, frames: list[dict]) -> None:
    """Sends `frames` through the attacker's own eth0, then waits for the barrier."""
    ip, _ = _eth0(server, attacker)
    cfg = {
        "ip": ip,
        "gateway": _gateway(server),
        "gateway_mac": open(f"/sys/class/net/{server.bridge}/address").read().strip(),
        "frames": frames,
    }
    proc = _run("ip", "netns", "exec", _netns(server, attacker), "python3", "-c", SENDER, json.dumps(cfg), check=False)
    assert proc.returncode == 0, f"sender failed (no answer to the barrier?): {proc.stderr}"


def _neighbour(server, ip: str) -> dict:
    out = _run("ip", "-j", "neigh", "show", ip, "dev", server.bridge).stdout
    entries = json.loads(out) if out.strip() else []
    return entries[0] if entries else {}


def _exec_as_user(server, sb, command: str, args: list[str]) -> dict:
    # The client's commands.run has no `user` argument; the exec route takes one.
    with server.http() as http:
        resp = http.post(
            f"/v1/sandboxes/{sb.id}/exec", json={"command": command, "args": args, "user": "user", "timeout_secs": 30}
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def outside():
    """A namespace standing in for the internet: a veth to the host with a /30 of 198.18.0.0/15, and a
    UDP listener whose lines (`<source> <payload>`) the test reads."""
    tag = uuid.uuid4().hex[:8]
    ns, veth = f"nsx{tag}", f"nsx{tag}"
    net = ipaddress.ip_network(f"198.18.{int(tag[:2], 16)}.{int(tag[2:4], 16) & 0xFC}/30")
    host_ip, ns_ip = (str(a) for a in net.hosts())
    lines: list[str] = []
    listener = None
    try:
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "address", "add", f"{host_ip}/30", "dev", veth)
        _run("ip", "link", "set", veth, "up")
        _run("ip", "-n", ns, "address", "add", f"{ns_ip}/30", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, "python3", "-u", "-c", LISTENER, str(UDP_PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        reader = threading.Thread(target=lambda: lines.extend(iter(listener.stdout.readline, "")), daemon=True)
        reader.start()
        yield {"ip": ns_ip, "host_ip": host_ip, "lines": lines}
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(timeout=10)
        _run("ip", "link", "delete", veth, check=False)
        _run("ip", "netns", "delete", ns, check=False)


def _received(outside: dict, payload: str) -> bool:
    return any(line.split(" ", 1)[-1].strip() == payload for line in outside["lines"])


def _drain(outside: dict) -> None:
    """Waits until the listener has printed everything queued before now: a datagram the host sends
    after the barrier arrives after anything the barrier covered."""
    marker = f"drain-{uuid.uuid4().hex[:8]}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(marker.encode(), (outside["ip"], UDP_PORT))
    wait_until(lambda: _received(outside, marker), timeout=20, what="the listener's drain marker")


def test_sandbox_cannot_claim_another_sandboxs_address_in_arp(server, sandboxes):
    victim = sandboxes.create(metadata={"run": RUN_ID})
    attacker = sandboxes.create(metadata={"run": RUN_ID}, internet_access=False)
    victim_ip, victim_mac = _eth0(server, victim)
    _, attacker_mac = _eth0(server, attacker)
    assert victim_mac != attacker_mac

    # The host talks to the victim (as the preview proxy and port forwards may), so it has a neighbour
    # entry for it: the thing the attacker wants to move to itself.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"hello", (victim_ip, 9))
    wait_until(
        lambda: _neighbour(server, victim_ip).get("lladdr") == victim_mac,
        timeout=20,
        what="the host's neighbour entry for the victim",
    )

    _send_from(server, attacker, [{"kind": "garp", "claim": victim_ip}])
    entry = _neighbour(server, victim_ip)
    assert entry.get("lladdr") == victim_mac, f"the attacker ({attacker_mac}) took over {victim_ip}: {entry}"


def test_sandbox_cannot_send_with_another_sandboxs_source_address(server, sandboxes, outside):
    victim = sandboxes.create(metadata={"run": RUN_ID})  # default policy: may reach the stand-in internet
    attacker = sandboxes.create(metadata={"run": RUN_ID}, network={"deny_out": ["0.0.0.0/0"]})
    victim_ip, _ = _eth0(server, victim)

    # The path works for the victim itself (its egress policy allows the destination).
    legit = f"legit-{victim.id}"
    send = (
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        f".sendto({legit!r}.encode(), ({outside['ip']!r}, {UDP_PORT}))"
    )
    assert victim.commands.run("python3", ["-c", send]).exit_code == 0
    wait_until(lambda: _received(outside, legit), timeout=20, what="the victim's own datagram")

    # The attacker, denied everything, sends as the victim.
    spoofed = f"spoofed-{attacker.id}"
    _send_from(
        server,
        attacker,
        [{"kind": "udp", "src": victim_ip, "dst": outside["ip"], "port": UDP_PORT, "payload": spoofed}],
    )
    _drain(outside)
    assert not _received(outside, spoofed), f"a datagram spoofed as {victim_ip} left the host: {outside['lines']}"


def test_ping_works_without_cap_net_raw(server, sandboxes, outside):
    sb = sandboxes.create(metadata={"run": RUN_ID})
    # As `user` (no capabilities at all): loopback, and a destination the sandbox's policy allows.
    for target in ("127.0.0.1", outside["ip"]):
        result = _exec_as_user(server, sb, "python3", ["-c", PING, target])
        assert result["exit_code"] == 0, result
        caps, reply_type, peer = result["stdout"].split()
        assert int(caps, 16) == 0, f"the probe ran with capabilities {caps}"
        assert (reply_type, peer) == ("0", target), result["stdout"]
    # The range as the host set it in the sandbox's namespace (read inside, a user namespace shows host ids
    # it does not map as the overflow id 65534).
    host_view = subprocess.run(
        ["ip", "netns", "exec", f"{server.bridge}-{sb.id}", "cat", "/proc/sys/net/ipv4/ping_group_range"],
        capture_output=True, text=True, timeout=30,
    )
    assert host_view.stdout.split() == ["0", "2147483647"], host_view


def _guard(server) -> tuple[set[str], set[str]]:
    """The port guard's (guarded ports, bindings `port mac address`) of this server's bridge."""
    out = _run("nft", "-j", "list", "table", "bridge", f"nullspace_{server.bridge}").stdout
    sets = {item["set"]["name"]: item["set"].get("elem", []) for item in json.loads(out)["nftables"] if "set" in item}
    return set(sets.get("guarded", [])), {" ".join(e["concat"]) for e in sets.get("ports", [])}


def test_restart_keeps_live_bindings_and_removes_stale_ones(server, sandboxes, outside):
    table = f"nullspace_{server.bridge}"
    stale_port, stale_binding = "nsvdeadbeef000", "nsvdeadbeef000 06:6e:0a:00:00:fe 10.0.0.254"
    _run("nft", "add", "element", "bridge", table, "guarded", f'{{ "{stale_port}" }}')
    _run("nft", "add", "element", "bridge", table, "ports", f'{{ "{stale_port}" . 06:6e:0a:00:00:fe . 10.0.0.254 }}')
    sb = sandboxes.create(metadata={"run": RUN_ID})
    ip, mac = _eth0(server, sb)
    guarded, bindings = _guard(server)
    mine = {b for b in bindings if b.endswith(f" {mac} {ip}")}
    assert len(mine) == 1 and stale_port in guarded and stale_binding in bindings, (guarded, bindings)
    port = next(iter(mine)).split()[0]
    assert port in guarded

    server.restart()
    guarded_after, bindings_after = _guard(server)
    assert (guarded_after, bindings_after) == (guarded - {stale_port}, bindings - {stale_binding})
    # The kept sandbox's port still passes its own traffic.
    payload = f"after-restart-{sb.id}"
    send = (
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        f".sendto({payload!r}.encode(), ({outside['ip']!r}, {UDP_PORT}))"
    )
    assert server.connect(sb.id).commands.run("python3", ["-c", send]).exit_code == 0
    wait_until(lambda: _received(outside, payload), timeout=20, what="the kept sandbox's datagram")

    server.connect(sb.id).kill()
    guarded_end, bindings_end = _guard(server)
    assert port not in guarded_end and not mine & bindings_end, "kill leaves the port's guard behind"
