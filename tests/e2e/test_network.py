"""Sandbox networking with the official client: each sandbox has its own address behind the server's
bridge, cannot reach the server's API, the host's services or another sandbox (also when forked or
resumed), bad egress policies are refused, and destroy releases every network resource (port bindings
included)."""

from __future__ import annotations

import glob
import http.server
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import RUN_ID, wait_until
from nullspace import Sandbox, SandboxError


def _host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return sorted({line.split()[3].split("/")[0] for line in out.splitlines()})


def _can_connect(sb, host: str, port: int) -> bool:
    probe = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(2)\n"
        f"sys.exit(0 if s.connect_ex(({host!r}, {port}))==0 else 1)\n"
    )
    return sb.commands.run("python3", ["-c", probe], timeout=20).exit_code == 0


@pytest.fixture(scope="module")
def host_listener():
    """A TCP service on every host address, standing in for the host's other services."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _address(sb) -> str:
    return sb.commands.run("sh", ["-c", "ip -4 -o addr show dev eth0 | awk '{print $4}'"]).stdout.strip()


def _assert_isolated(server, sb, other_ip: str, other_port: int, host_port: int) -> None:
    api_port = int(server.url.rsplit(":", 1)[1])
    for address in _host_addresses():
        assert not _can_connect(sb, address, api_port), f"sandbox reached the API at {address}:{api_port}"
        assert not _can_connect(sb, address, host_port), f"sandbox reached a host service at {address}"
    assert not _can_connect(sb, other_ip, other_port), "sandbox reached another sandbox"


def test_sandboxes_have_addresses_and_cannot_reach_host_or_each_other(server, sandboxes, host_listener):
    a = sandboxes.create(metadata={"run": RUN_ID})
    b = sandboxes.create(metadata={"run": RUN_ID})
    a_cidr, b_cidr = _address(a), _address(b)
    assert a_cidr.endswith("/16") and a_cidr != b_cidr
    assert a_cidr.split("/")[0].startswith(server.subnet.split(".")[0] + "." + server.subnet.split(".")[1] + ".")
    assert "default via" in a.commands.run("ip", ["route"]).stdout
    assert "nameserver" in a.files.read("/etc/resolv.conf")
    b.commands.run("python3", ["-m", "http.server", "8000", "--bind", "0.0.0.0"], background=True)
    b_ip = b_cidr.split("/")[0]
    wait_until(lambda: _can_connect(b, "127.0.0.1", 8000), timeout=10, what="b's server")
    _assert_isolated(server, a, b_ip, 8000, host_listener)

    child = a.fork()
    sandboxes.created.append((child.id, server.key))
    assert _address(child) != a_cidr, "a fork gets its own address"
    _assert_isolated(server, child, b_ip, 8000, host_listener)

    snap = a.hibernate()
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    _assert_isolated(server, resumed, b_ip, 8000, host_listener)


def test_bad_egress_policies_are_refused(server):
    for network in ({"allow_out": ["not-a-network"]}, {"deny_out": ["example.com"]}, {"allow_out": ["::/0"]}):
        with pytest.raises(SandboxError) as error:
            Sandbox.create(network=network, api_key=server.key, base_url=server.url)
        assert error.value.code == "invalid_request", network


def _network_resources(server) -> dict[str, set[str]]:
    netns = {os.path.basename(p) for p in glob.glob(f"/run/netns/{server.bridge}-*")}
    links = subprocess.run(["ip", "-o", "link", "show", "master", server.bridge], capture_output=True, text=True).stdout
    veths = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if line.strip()}
    leases = set(os.listdir(server.data_dir / "network" / "leases"))
    table = subprocess.run(["nft", "list", "table", "inet", f"nullspace_{server.bridge}"], capture_output=True, text=True).stdout
    chains = {line.split()[1] for line in table.splitlines() if line.strip().startswith("chain sb_")}
    guard = subprocess.run(
        ["nft", "-j", "list", "table", "bridge", f"nullspace_{server.bridge}"], capture_output=True, text=True
    ).stdout
    sets = {
        item["set"]["name"]: item["set"].get("elem", [])
        for item in (json.loads(guard)["nftables"] if guard else [])
        if "set" in item
    }
    guarded = set(sets.get("guarded", []))
    bindings = {" ".join(elem["concat"]) for elem in sets.get("ports", [])}
    return {
        "netns": netns, "veths": veths, "leases": leases, "chains": chains, "guarded": guarded, "bindings": bindings
    }


def test_destroy_releases_every_network_resource_and_addresses_are_reused(server):
    before = _network_resources(server)
    created = [Sandbox.create(api_key=server.key, base_url=server.url, internet_access=(i % 2 == 0)) for i in range(3)]
    during = _network_resources(server)
    for kind in during:
        assert len(during[kind] - before[kind]) == 3, (kind, during[kind] - before[kind])
    addresses = {_address(sb) for sb in created}
    for sb in created:
        sb.kill()
    assert _network_resources(server) == before
    again = Sandbox.create(api_key=server.key, base_url=server.url)
    try:
        assert _address(again) in addresses, "a released address is handed out again"
    finally:
        again.kill()
    assert _network_resources(server) == before
