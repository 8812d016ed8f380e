"""Security regressions (issue 11, findings 1, 7 and 8): the host never follows a name a sandbox can write.

- Finding 1: `/run/nullspace` inside a sandbox is its control dir on the host. A sandbox that replaces its
  `guest.sock` with a symlink to another tenant's guest socket (or to any unix socket on the host) must not
  get its API traffic relayed there.
- Finding 7: a volume subpath is opened without following symlinks; the runtime must mount exactly that
  directory, even while another sandbox of the tenant swaps the subpath with a symlink to `/` in a loop.
- Finding 8: a relaunch under the same id (fork with memory, runsc) must not write its boot configuration
  through a symlink the sandbox planted at `/run/nullspace/config.json`.
"""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import runsc_installed, unique, wait_until
from nullspace import Volume


def _exec(server, sandbox_id: str, key: str, command: str) -> httpx.Response:
    with server.http(key) as http:
        return http.post(
            f"/v1/sandboxes/{sandbox_id}/exec",
            json={"command": "sh", "args": ["-c", command]},
            timeout=60,
        )


# The node keeps up to 4 idle connections per guest (nullspace-node::guest_pool), each checked against the
# sandbox when it was opened; requests on them still reach the sandbox's own guest. This many requests at
# once (each holding its connection for a while) make the node open new connections through the planted link.
CONCURRENT = 10


def _exec_at_once(server, sandbox_id: str, key: str, command: str) -> list[httpx.Response]:
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        resp = _exec(server, sandbox_id, key, "sleep 1; " + command)
        with lock:
            results.append(resp)

    threads = [threading.Thread(target=one) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == CONCURRENT
    return results


def test_a_sandbox_cannot_redirect_its_guest_link_to_another_tenants_sandbox(server, second_key, sandboxes):
    victim = sandboxes.create(key=second_key)
    victim.files.write("/workspace/secret.txt", "victim-secret-" + uuid.uuid4().hex)
    attacker = sandboxes.create()
    own_hostname = attacker.commands.run("hostname").stdout.strip()
    victim_socket = Path(server.data_dir) / "sandboxes" / victim.id / "disk" / "control" / "guest.sock"
    assert victim_socket.exists(), "the victim's guest socket is where the attack aims"

    planted = attacker.commands.run(
        "sh", ["-c", f"rm -f /run/nullspace/guest.sock && ln -s {victim_socket} /run/nullspace/guest.sock && echo planted"]
    )
    assert planted.stdout.strip() == "planted"

    # The attacker's own API route must not reach the victim's guest: a connection opened after the link
    # was planted is refused; one kept from before answers from the attacker's own guest.
    responses = _exec_at_once(server, attacker.id, server.key, "hostname; cat /workspace/secret.txt")
    for resp in responses:
        body = resp.text
        assert "victim-secret" not in body
        assert victim.id.replace("_", "-") not in body
        if resp.status_code < 400:
            assert resp.json()["stdout"].strip() == own_hostname, f"answered by another guest: {body}"
    refused = [resp for resp in responses if resp.status_code >= 400]
    assert refused, "no request opened a new connection through the planted link, so nothing was tested"
    # The victim is untouched and still served through its own link.
    assert victim.commands.run("cat", ["/workspace/secret.txt"]).stdout.startswith("victim-secret-")


def test_a_sandbox_cannot_point_its_guest_link_at_a_host_socket(server, sandboxes, tmp_path):
    host_socket = tmp_path / "host-service.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(host_socket))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    accepted.append(conn.recv(4096))
                except OSError:
                    accepted.append(b"")
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        attacker = sandboxes.create()
        planted = attacker.commands.run(
            "sh", ["-c", f"rm -f /run/nullspace/guest.sock && ln -s {host_socket} /run/nullspace/guest.sock && echo ok"]
        )
        assert planted.stdout.strip() == "ok"
        responses = _exec_at_once(server, attacker.id, server.key, "true")
        assert any(resp.status_code >= 400 for resp in responses), "no new connection went through the link"
        with server.http() as http:
            http.get(f"/v1/sandboxes/{attacker.id}/files?path=/etc/hostname", timeout=30)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert accepted == [], f"the host socket received the sandbox's API traffic: {accepted!r}"


SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_renameat2 = 316  # x86_64
RENAME_EXCHANGE = 2
AT_FDCWD = -100
os.chdir('/vol')
os.makedirs('sub', exist_ok=True)
if not os.path.lexists('link'):
    os.symlink('/', 'link')
open('/tmp/swapper.ready', 'w').close()
while not os.path.exists('/tmp/swapper.stop'):
    for _ in range(2000):
        libc.syscall(SYS_renameat2, AT_FDCWD, b'sub', AT_FDCWD, b'link', RENAME_EXCHANGE)
"""


def test_a_volume_subpath_swapped_for_a_symlink_never_mounts_the_host_root(server, sandboxes):
    volume = Volume.create(unique("swap"), api_key=server.key, base_url=server.url)
    marker = Path("/") / f"nullspace-e2e-host-root-{uuid.uuid4().hex}"
    marker.write_text("the host's root")
    try:
        swapper = sandboxes.create(volumes=[volume.mount("/vol")])
        swapper.files.write("/tmp/swapper.py", SWAPPER)
        swapper.commands.run("python3", ["/tmp/swapper.py"], background=True)
        wait_until(lambda: swapper.files.exists("/tmp/swapper.ready"), timeout=30, what="the swapper to start")
        launched = refused = 0
        for _ in range(16):
            try:
                victim = sandboxes.create(volumes=[volume.mount("/mnt", subpath="sub")])
            except Exception as exc:  # the walk met the symlink: refused, as it must be
                assert "symlink" in str(exc) or "subpath" in str(exc) or "directory" in str(exc), exc
                refused += 1
                continue
            launched += 1
            seen = victim.commands.run("sh", ["-c", f"ls /mnt/{marker.name} 2>/dev/null; ls /mnt | head -50"]).stdout
            assert marker.name not in seen, "a sandbox got the host's / as its volume mount"
            assert "sandboxes" not in seen and "proc" not in seen.split(), seen
            victim.kill()
        swapper.files.write("/tmp/swapper.stop", "")
        assert launched > 0, f"no sandbox could be created while the swapper ran ({refused} refused)"
    finally:
        marker.unlink(missing_ok=True)


def test_destroy_removes_the_pinned_volume_mounts_and_keeps_the_volume(server, sandboxes):
    volume = Volume.create(unique("pin"), api_key=server.key, base_url=server.url)
    sb = sandboxes.create(volumes=[volume.mount("/data", subpath="keep")])
    sb.files.write("/data/kept.txt", "still here")
    pins = Path(server.data_dir) / "sandboxes" / sb.id / "mounts"
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert any(point.startswith(str(pins.resolve())) for point in mounted), "the volume is mounted from a pin"
    sb.kill()
    wait_until(lambda: not (Path(server.data_dir) / "sandboxes" / sb.id).exists(), timeout=60, what="teardown")
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not any(sb.id in point for point in mounted)
    again = sandboxes.create(volumes=[volume.mount("/data", subpath="keep")])
    assert again.files.read("/data/kept.txt") == "still here"


@pytest.mark.skipif(not runsc_installed(), reason="runsc (gVisor) is not installed on this host")
def test_a_fork_with_memory_never_writes_through_a_planted_config_symlink(runsc_server, tmp_path):
    victim = tmp_path / "host-file"
    victim.write_text("host content")
    sb = runsc_server.create()
    try:
        planted = sb.commands.run(
            "sh", ["-c", f"rm -f /run/nullspace/config.json && ln -s {victim} /run/nullspace/config.json && echo ok"]
        )
        assert planted.stdout.strip() == "ok"
        host_entry = Path(runsc_server.data_dir) / "sandboxes" / sb.id / "disk" / "control" / "config.json"
        assert host_entry.is_symlink(), "gVisor creates the sandbox's symlink on the host"
        child = sb.fork()
        assert victim.read_text() == "host content"
        # Parent and child both run on after the relaunch, each from a control dir of its own.
        assert sb.commands.run("echo", ["parent"]).stdout.strip() == "parent"
        assert child.commands.run("echo", ["child"]).stdout.strip() == "child"
        assert not host_entry.is_symlink()
        child.kill()
    finally:
        sb.kill()


def test_volume_mounts_cannot_nest(server, sandboxes):
    """runc would create the inner mount point inside the outer volume, which another sandbox can race."""
    outer = Volume.create(unique("outer"), api_key=server.key, base_url=server.url)
    inner = Volume.create(unique("inner"), api_key=server.key, base_url=server.url)
    with server.http() as http:
        resp = http.post(
            "/v1/sandboxes",
            json={"template": "base", "volumes": [
                {"ref": outer.id, "mount_path": "/data"},
                {"ref": inner.id, "mount_path": "/data/inner"},
            ]},
        )
        assert resp.status_code == 400, resp.text
        assert "/data" in resp.text and "nest" in resp.text
        sb = sandboxes.create(volumes=[outer.mount("/data")])
        resp = http.post(f"/v1/sandboxes/{sb.id}/volumes", json={"ref": inner.id, "mount_path": "/data/inner"})
        assert resp.status_code == 400, resp.text
        assert "nest" in resp.text
