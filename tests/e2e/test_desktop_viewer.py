"""The managed desktop viewer with the official client. The server answers the streaming routes itself, so
most of them are checked on a plain sandbox whose port 5900 is a recording RFB stand-in (stdlib python3):
raw VNC off by default, stream start/rotation/stop and the viewer pages, the noVNC assets, tenancy, and the
WebSocket bridge (greeting first, view-only input dropped before it reaches the sandbox, rotation closes
it). The last tests need the `desktop` template: a real VNC server's pointer moved only by interactive
viewers."""

from __future__ import annotations

import socket
import sqlite3
import struct

import httpx
import pytest
from nullspace import Sandbox
from nullspace.errors import SandboxError
from websockets.sync.client import connect

from conftest import sibling_server, unique, wait_for_builtin_template, wait_until

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def desktop(server, module_sandboxes):
    wait_for_builtin_template(server, "desktop")
    sb = Sandbox.create(template="desktop", api_key=server.key, base_url=server.url, metadata={"e2e": unique()})
    module_sandboxes.created.append((sb.id, server.key))
    return sb


# Port 5900 of a plain sandbox: greets like a VNC server and appends what it receives to RECORD.
RECORD = "/tmp/rfb-received.bin"
FAKE_RFB = f"""
import socket, threading
def serve(conn):
    conn.sendall(b"RFB 003.008\\n")
    with open("{RECORD}", "ab") as out:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            out.write(data)
            out.flush()
    conn.close()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 5900))
server.listen(16)
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""

HANDSHAKE = b"RFB 003.008\n\x01\x01"
KEY_A = struct.pack(">BBxxI", 4, 1, 0x61)
POINTER = struct.pack(">BBHH", 5, 1, 10, 20)
UPDATE = bytes([3, 0, 0, 0, 0, 0, 0, 1, 0, 1])


@pytest.fixture(scope="module")
def plain(module_sandboxes):
    return with_fake_rfb(module_sandboxes.create(metadata={"e2e": unique()}))


def with_fake_rfb(sb):
    sb.files.write("/tmp/fake_rfb.py", FAKE_RFB)
    sb.commands.run("exec python3 /tmp/fake_rfb.py", shell=True, background=True)
    wait_until(lambda: sb.commands.run("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 5900))'",
                                       shell=True).exit_code == 0, timeout=30, what="the RFB stand-in to listen")
    return sb


def received(sb) -> bytes:
    sb.commands.run(f"touch {RECORD}", shell=True)
    return sb.files.read(RECORD, format="bytes")


def ws_url(viewer_url: str) -> str:
    return viewer_url.replace("http://", "ws://").replace("https://", "wss://").replace("/viewer?", "/viewer/ws?")


class Rfb:
    """An RFB client over the viewer WebSocket (frames may split messages anywhere)."""

    def __init__(self, url: str):
        self.ws = connect(url, max_size=4 << 20).__enter__()  # closed by the server or at teardown
        self.buffer = b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            frame = self.ws.recv(timeout=10)
            assert isinstance(frame, bytes), f"binary frames only, got {frame!r}"
            assert len(frame) < 1 << 20
            self.buffer += frame
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def handshake(self) -> int:
        assert self.read(12) == b"RFB 003.008\n"
        self.ws.send(b"RFB 003.008\n")
        count = self.read(1)[0]
        assert 1 in self.read(count)
        self.ws.send(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        self.ws.send(b"\x01")
        init = self.read(24)
        self.read(struct.unpack(">I", init[20:24])[0])
        return init[4] // 8

    def round_trip(self, bpp: int) -> None:
        """A 1-pixel update request and its answer: everything sent before was processed by the server."""
        self.ws.send(bytes([3, 0, 0, 0, 0, 0, 0, 1, 0, 1]))
        while (kind := self.read(1)[0]) != 0:
            assert kind == 2, f"unexpected server message {kind}"
        (count,) = struct.unpack(">xH", self.read(3))
        for _ in range(count):
            rect = self.read(12)
            w, h, encoding = struct.unpack(">HHi", rect[4:12])
            assert encoding == 0
            self.read(w * h * bpp)

    def pointer(self, x: int, y: int) -> None:
        self.ws.send(struct.pack(">BBHH", 5, 0, x, y))


def test_raw_vnc_is_off_by_default(plain):
    with pytest.raises(SandboxError) as exc:
        plain.desktop.stream.info()
    assert exc.value.code == "desktop_raw_vnc_disabled"


def test_start_serves_the_viewer_page_and_its_assets(server, plain):
    desktop = plain
    managed = desktop.desktop.stream.start(view_only=True)
    assert managed.protocol == "vnc" and managed.view_only is True and len(managed.auth_key) >= 22
    assert managed.viewer_url == f"{server.url}/v1/sandboxes/{desktop.id}/desktop/viewer?auth={managed.auth_key}"
    assert desktop.desktop.stream.get_auth_key() == managed.auth_key
    assert desktop.desktop.stream.get_viewer_url() == managed.viewer_url
    page = httpx.get(managed.viewer_url, timeout=10)
    assert page.status_code == 200 and "Desktop Viewer" in page.text
    assert "/v1/desktop/viewer-assets/core/rfb.js" in page.text and "cdn.jsdelivr.net" not in page.text
    assert "const viewOnly = true;" in page.text
    for path in ("core/rfb.js", "core/websock.js", "vendor/pako/lib/zlib/inflate.js"):
        asset = httpx.get(f"{server.url}/v1/desktop/viewer-assets/{path}", timeout=10)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript"), path
    for escape in ("../nullspace.db", "core/../../nullspace.db", "%2e%2e/nullspace.db"):
        assert httpx.get(f"{server.url}/v1/desktop/viewer-assets/{escape}", timeout=10).status_code == 404
    unknown = httpx.get(f"{server.url}/v1/sandboxes/{desktop.id}/desktop/viewer?auth=not-a-key", timeout=10)
    assert unknown.status_code == 404 and "Viewer session not found" in unknown.text
    desktop.desktop.stream.stop()


def test_rotation_and_stop_invalidate_keys_and_close_bridges(plain):
    desktop = plain
    first = desktop.desktop.stream.start(view_only=True)
    bridge = Rfb(ws_url(first.viewer_url))
    assert bridge.read(12) == b"RFB 003.008\n"
    second = desktop.desktop.stream.start(view_only=False)
    assert second.auth_key != first.auth_key and second.view_only is False
    # The first key's bridge is closed by the rotation, and its page says so.
    with pytest.raises(Exception):
        while True:
            bridge.ws.recv(timeout=10)
    assert bridge.ws.close_code == 1008 and bridge.ws.close_reason == "viewer session replaced"
    assert "Viewer session replaced" in httpx.get(first.viewer_url, timeout=10).text
    with pytest.raises(Exception):
        Rfb(ws_url(first.viewer_url))
    assert "/v1/desktop/viewer-assets/core/rfb.js" in httpx.get(second.viewer_url, timeout=10).text
    desktop.desktop.stream.stop()
    ended = httpx.get(second.viewer_url, timeout=10)
    assert ended.status_code == 200 and "Viewer session ended" in ended.text
    assert "Viewer session replaced" in httpx.get(first.viewer_url, timeout=10).text
    with pytest.raises(SandboxError):
        desktop.desktop.stream.get_auth_key()


def test_view_only_input_never_reaches_the_sandbox(plain):
    view_only = plain.desktop.stream.start(view_only=True)
    before = len(received(plain))
    with connect(ws_url(view_only.viewer_url)) as ws:
        assert ws.recv(timeout=5) == b"RFB 003.008\n", "the VNC greeting is the first frame"
        # Split anywhere, as WebSocket clients may: the key and pointer events are dropped, the rest passes.
        stream = HANDSHAKE + KEY_A + POINTER + UPDATE
        for chunk in (stream[:5], stream[5:17], stream[17:]):
            ws.send(chunk)
        got = wait_until(lambda: (data := received(plain)[before:]).endswith(UPDATE) and data, timeout=30,
                         what="the update request to reach the sandbox")
    assert got == HANDSHAKE + UPDATE, "view-only input never reaches the sandbox"

    interactive = plain.desktop.stream.start(view_only=False)
    before = len(received(plain))
    with connect(ws_url(interactive.viewer_url)) as ws:
        assert ws.recv(timeout=5) == b"RFB 003.008\n"
        ws.send(HANDSHAKE + KEY_A + POINTER + UPDATE)
        got = wait_until(lambda: (data := received(plain)[before:]).endswith(UPDATE) and data, timeout=30,
                         what="the interactive input to reach the sandbox")
    assert got == HANDSHAKE + KEY_A + POINTER + UPDATE
    plain.desktop.stream.stop()


def test_a_sandbox_without_a_vnc_server_is_a_clear_error(sandboxes):
    sb = sandboxes.create(metadata={"e2e": unique()})
    managed = sb.desktop.stream.start()
    with pytest.raises(Exception) as exc:
        connect(ws_url(managed.viewer_url))
    assert "501" in str(exc.value)


def test_raw_vnc_flag_and_keys_that_survive_a_restart(server):
    srv = sibling_server(server, "viewer", ["--desktop-raw-vnc"])
    try:
        sb = with_fake_rfb(srv.create(metadata={"e2e": unique()}))
        info = sb.desktop.stream.info()
        assert (info.protocol, info.url) == ("vnc", f"vnc://{info.host}:{info.port}")
        with socket.create_connection((info.host, info.port), timeout=5) as raw:
            assert raw.recv(12) == b"RFB 003.008\n", "the raw address reaches the sandbox's VNC port"
        managed = sb.desktop.stream.start(view_only=True)
        assert managed.vnc_url == info.url and managed.port == info.port

        srv.restart()
        assert sb.desktop.stream.get_auth_key() == managed.auth_key, "the key is derived again after a restart"
        page = httpx.get(managed.viewer_url, timeout=10)
        assert page.status_code == 200 and "/v1/desktop/viewer-assets/core/rfb.js" in page.text
        with connect(ws_url(managed.viewer_url)) as ws:
            assert ws.recv(timeout=5) == b"RFB 003.008\n"
        with sqlite3.connect(srv.data_dir / "nullspace.db") as db:
            stored = " ".join(str(v) for row in db.execute("SELECT * FROM desktop_streams") for v in row)
        assert managed.auth_key not in stored, "the key itself is never stored"
        sb.kill()
        assert httpx.get(managed.viewer_url, timeout=10).status_code == 404, "keys die with their sandbox"
    finally:
        srv.kill_all(srv.key)
        srv.stop()
        srv.remove_network()


def test_view_only_drops_input_and_interactive_delivers_it(desktop):
    interactive = desktop.desktop.stream.start(view_only=False)
    rfb = Rfb(ws_url(interactive.viewer_url))
    bpp = rfb.handshake()
    rfb.pointer(211, 157)
    rfb.round_trip(bpp)
    assert desktop.desktop.cursor_position() == (211, 157), "interactive pointer events reach the desktop"

    view_only = desktop.desktop.stream.start(view_only=True)
    rfb = Rfb(ws_url(view_only.viewer_url))
    bpp = rfb.handshake()
    rfb.pointer(400, 300)
    rfb.ws.send(struct.pack(">BBxxI", 4, 1, 0x61) + struct.pack(">BBxxI", 4, 0, 0x61))
    rfb.round_trip(bpp)
    assert desktop.desktop.cursor_position() == (211, 157), "view-only pointer events never reach the desktop"
    desktop.desktop.stream.stop()


def test_another_tenant_cannot_reach_the_stream(server, second_key, plain):
    desktop = plain
    other = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {second_key}"}, timeout=30)
    base = f"/v1/sandboxes/{desktop.id}/desktop/stream"
    for method, path in (("POST", "/start"), ("POST", "/stop"), ("GET", "/auth-key")):
        response = other.request(method, base + path, json={} if method == "POST" else None)
        assert response.status_code == 404 and response.json()["code"] == "sandbox_not_found", path
    assert httpx.post(f"{server.url}{base}/start", timeout=10).status_code == 401
