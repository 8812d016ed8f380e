"""Issue 11, findings 3 and 6, against real servers: creates that overcommit the host are refused (per-sandbox
caps → 400, host budget → the client's QuotaExceededError); the listener closes slow or idle connections
and holds a bounded number of them; webhooks to loopback and private addresses are refused unless the
operator allows them; loose create input is a 400; another tenant's lifecycle stream is a 404 before
the upgrade.

Dedicated servers (own data dir, bridge and subnet, the session server's templates) run with short
timeouts, a small connection cap, a small memory budget and without `--webhook-allow-private`, which the
session server has so the webhook tests can deliver to a loopback receiver."""

from __future__ import annotations

import contextlib
import os
import socket
import time

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from conftest import Server, sibling_server, wait_until
from nullspace import Lifecycle, QuotaExceededError, SandboxError

CLOSE_BOUND_SECS = 30  # generous: the dedicated server's timeouts are 2 s


def _error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) of the protocol's flat error envelope."""
    body = resp.json()
    assert isinstance(body, dict), body
    return body.get("code", ""), body.get("error", "")


def _host_memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def _dedicated(server: Server, name: str, extra_args: list[str]) -> Server:
    return sibling_server(server, name, extra_args)


def _stop(srv: Server) -> None:
    if srv.running:
        srv.kill_all(srv.key)
    srv.stop()
    srv.remove_network()


# Memory budget of the strict server: room for one 512 MiB sandbox, not two.
BUDGET_MB = 800


@pytest.fixture(scope="module")
def strict_server(server):
    """No --webhook-allow-private; live sandboxes may reserve only BUDGET_MB of memory."""
    ratio = BUDGET_MB / _host_memory_mb()
    srv = _dedicated(server, "strict", ["--memory-overcommit", f"{ratio:.9f}"])
    yield srv
    _stop(srv)


@pytest.fixture(scope="module")
def limited_server(server):
    """2 s header and body timeouts, at most 3 connections."""
    srv = _dedicated(
        server, "limits", ["--header-timeout-secs", "2", "--body-timeout-secs", "2", "--max-connections", "3"]
    )
    yield srv
    _stop(srv)


# ---------------------------------------------------------------------------------------------------
# finding 3: resources


def test_oversized_create_is_a_400_naming_the_cap(server):
    """The reported create: 256 GiB and 64 vCPUs on a small host. Capped by --max-vcpus/--max-memory-mb,
    whose defaults are the host's CPUs (at least 2) and memory."""
    cpus = max(os.cpu_count() or 1, 2)
    with server.http() as http:
        resp = http.post("/v1/sandboxes", json={"memory_mb": 262144, "vcpus": 64})
        assert resp.status_code == 400, resp.text
        if cpus < 64:
            code, message = _error(resp)
            assert code == "invalid_request" and "--max-vcpus" in message, message
        resp = http.post("/v1/sandboxes", json={"vcpus": 1, "memory_mb": _host_memory_mb() + 1024})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request" and "--max-memory-mb" in message, message
    with pytest.raises(SandboxError) as raised:
        server.create(vcpus=min(cpus + 1, 65))
    assert raised.value.code == "invalid_request"


def test_reservations_beyond_the_host_budget_are_capacity_exceeded(strict_server):
    """The first 512 MiB sandbox fits the 800 MiB budget; a second is refused with the client's quota
    error (and for resume and fork too); after the first is killed, the second fits."""
    srv = strict_server
    first = srv.create(memory_mb=512)
    try:
        with pytest.raises(QuotaExceededError) as raised:
            srv.create(memory_mb=512)
        assert raised.value.code == "capacity_exceeded"
        assert "memory" in str(raised.value)
        with srv.http() as http:
            fork = http.post(f"/v1/sandboxes/{first.id}/fork")
            assert fork.status_code == 503, fork.text
            assert _error(fork)[0] == "capacity_exceeded"
        # A small one still fits beside it.
        small = srv.create(memory_mb=128)
        small.kill()
    finally:
        first.kill()
    second = srv.create(memory_mb=512)
    second.kill()


def test_resume_counts_against_the_budget(strict_server):
    """A paused sandbox reserves nothing; resuming it (or creating from its snapshot) is refused while
    another 512 MiB sandbox takes the room, and works once that one is gone."""
    srv = strict_server
    paused = srv.create(memory_mb=512)
    with srv.http() as http:
        resp = http.post(f"/v1/sandboxes/{paused.id}/hibernate")
        assert resp.status_code == 200, resp.text
        snapshot_id = resp.json()["id"]
        blocker = srv.create(memory_mb=512)
        try:
            resp = http.post(f"/v1/sandboxes/{snapshot_id}/resume")
            assert resp.status_code == 503, resp.text
            assert _error(resp)[0] == "capacity_exceeded"
            resp = http.post("/v1/sandboxes", json={"snapshot_id": snapshot_id})
            assert resp.status_code == 503, resp.text
            assert _error(resp)[0] == "capacity_exceeded"
        finally:
            blocker.kill()
        resumed = http.post(f"/v1/sandboxes/{snapshot_id}/resume")
        assert resumed.status_code in (200, 201), resumed.text
        http.delete(f"/v1/sandboxes/{resumed.json()['id']}")
        http.delete(f"/v1/snapshots/{snapshot_id}")


# ---------------------------------------------------------------------------------------------------
# finding 6: listener timeouts and connection cap


def _closed_within(sock: socket.socket, bound: float) -> bytes:
    """Reads until the server closes `sock`; fails if it is still open after `bound` seconds."""
    sock.settimeout(bound)
    received = b""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"connection still open after {bound}s (received {received[:200]!r})")


def _connect(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=10)


def test_slowloris_headers_are_cut(limited_server):
    with _connect(limited_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        _closed_within(sock, CLOSE_BOUND_SECS)


def test_idle_connections_are_closed(limited_server):
    with _connect(limited_server) as sock:  # never sends a byte
        _closed_within(sock, CLOSE_BOUND_SECS)
    with _connect(limited_server) as sock:  # one request, then idle keep-alive
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _closed_within(sock, CLOSE_BOUND_SECS)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_slow_bodies_are_cut(limited_server):
    with _connect(limited_server) as sock:
        head = (
            "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {limited_server.key}\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"metadata": {')
        answer = _closed_within(sock, CLOSE_BOUND_SECS)
        # Answered in the protocol's envelope, not axum's plain-text rejection.
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b'"invalid_request"' in answer, answer[:500]


@pytest.mark.parametrize("query", ["limit=many", "limit=-1"])
def test_bad_query_parameters_are_answered_in_the_envelope(server, query):
    with server.http() as http:
        resp = http.get(f"/v1/sandboxes?{query}")
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert _error(resp)[0] == "invalid_request"


def test_connection_cap_refuses_new_connections_and_recovers(limited_server):
    """Three WebSockets (upgraded connections keep their slot and are not timed out) fill the cap of 3: a
    fourth connection is closed unanswered while the streams keep working; closing one frees a slot."""
    srv = limited_server
    url = f"ws://127.0.0.1:{srv.port}/v1/lifecycle/ws"
    headers = {"Authorization": f"Bearer {srv.key}"}
    with contextlib.ExitStack() as stack:
        streams = [
            stack.enter_context(ws_connect(url, additional_headers=headers, open_timeout=10)) for _ in range(3)
        ]
        time.sleep(3)  # longer than the header timeout: the upgraded streams must survive it
        with _connect(srv) as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert _closed_within(sock, CLOSE_BOUND_SECS) == b"", "a connection over the cap was served"
        for stream in streams:
            stream.ping().wait(10)  # existing connections keep working
        streams[0].close()

        def healthy() -> bool:
            try:
                return httpx.get(f"{srv.url}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=30, what="a freed slot to serve a new connection")


def test_preview_ports_share_a_connection_cap(limited_server):
    """The dedicated TCP listeners of POST /v1/sandboxes/{id}/host hold at most --max-connections (3)
    connections together: a fourth is closed unanswered while the held ones are served; one closed frees
    a slot."""
    srv = limited_server
    sb = srv.create(memory_mb=256)
    try:
        sb.commands.run("cd /workspace && exec python3 -m http.server 8000", shell=True, background=True)
        assert sb.wait_for_preview(8000, kind="http", timeout_secs=30).ready
        host, port = sb.get_host(8000).rsplit(":", 1)
        with contextlib.ExitStack() as stack:
            # No preview connection is open yet (readiness probes use the guest directly): these take the
            # three slots, in order.
            held = [stack.enter_context(socket.create_connection((host, int(port)), timeout=10)) for _ in range(3)]

            def over_cap_refused() -> bool:
                with socket.create_connection((host, int(port)), timeout=10) as sock:
                    try:
                        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return _closed_within(sock, CLOSE_BOUND_SECS) == b""

            wait_until(over_cap_refused, timeout=30, what="a fourth preview connection to be refused")
            held[0].sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert _closed_within(held[0], CLOSE_BOUND_SECS).startswith(b"HTTP/1.0 200")
            held[0].close()  # the tunnel (and its slot) ends when both sides have closed

            def served() -> bool:
                with socket.create_connection((host, int(port)), timeout=10) as sock:
                    try:
                        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        return False
                    return _closed_within(sock, CLOSE_BOUND_SECS).startswith(b"HTTP/1.0 200")

            wait_until(served, timeout=30, what="a freed preview slot to serve a new connection")
    finally:
        sb.kill()


# ---------------------------------------------------------------------------------------------------
# finding 6: webhooks


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://0.0.0.0:9/hook",
    ],
)
def test_webhooks_to_private_addresses_are_refused(strict_server, url):
    lifecycle = Lifecycle(api_key=strict_server.key, base_url=strict_server.url)
    with pytest.raises(SandboxError) as raised:
        lifecycle.create_webhook(url, ["create"], signing_secret="s3cret")
    assert raised.value.code == "invalid_request"
    assert "refused" in str(raised.value)
    with strict_server.http() as http:
        resp = http.post("/v1/lifecycle/webhooks", json={"url": url, "operations": ["create"], "signing_secret": "x"})
        assert resp.status_code == 400, resp.text
        hooks = http.get("/v1/lifecycle/webhooks").json()
        items = hooks if isinstance(hooks, list) else hooks.get("items", hooks.get("webhooks", []))
        assert all(hook["url"] != url for hook in items)


def test_webhooks_registered_while_allowed_are_refused_at_delivery(strict_server):
    """A webhook to 127.0.0.1 registered while the operator allowed it gets no delivery once the server
    runs without the allowance: the address is checked again when delivering."""
    srv = strict_server
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    srv.stop()
    srv.extra_args.append("--webhook-allow-private")
    try:
        srv.start(timeout=120)
        hook = Lifecycle(api_key=srv.key, base_url=srv.url).create_webhook(url, ["create"], signing_secret="k")
    finally:
        srv.stop()
        srv.extra_args.remove("--webhook-allow-private")
        srv.start(timeout=120)
    sb = srv.create(memory_mb=128)
    sb.kill()
    with srv.http() as http:

        def refused_attempt():
            deliveries = http.get(f"/v1/lifecycle/webhooks/{hook.id}/deliveries").json()
            items = deliveries if isinstance(deliveries, list) else deliveries.get("items", [])
            for delivery in items:
                detail = http.get(f"/v1/lifecycle/webhooks/{hook.id}/deliveries/{delivery['id']}").json()
                for attempt in detail.get("attempts", []):
                    if attempt.get("error_code") == "destination_refused":
                        return attempt
            return None

        attempt = wait_until(refused_attempt, timeout=60, what="a refused delivery attempt")
        assert "loopback" in (attempt.get("error_message") or "")
        http.delete(f"/v1/lifecycle/webhooks/{hook.id}")
    try:
        conn, _ = listener.accept()
        received.append(conn.recv(100))
    except socket.timeout:
        pass
    listener.close()
    assert not received, "the loopback receiver got a delivery"


# ---------------------------------------------------------------------------------------------------
# finding 6: loose input


@pytest.mark.parametrize("body", [b"[]", b"null", b"3", b'"base"'])
def test_create_body_must_be_an_object(server, body):
    with server.http() as http:
        before = {s["id"] for s in http.get("/v1/sandboxes").json()["items"]}
        resp = http.post("/v1/sandboxes", content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request" and "JSON object" in message, message
        after = {s["id"] for s in http.get("/v1/sandboxes").json()["items"]}
        assert after == before


def test_metadata_is_bounded(server):
    with server.http() as http:
        resp = http.post("/v1/sandboxes", json={"metadata": {f"k{i}": i for i in range(10_000)}})
        assert resp.status_code == 400, resp.text
        assert "at most 64" in _error(resp)[1]
        resp = http.post("/v1/sandboxes", json={"metadata": {"k" * 200: 1}})
        assert resp.status_code == 400, resp.text
        resp = http.post("/v1/sandboxes", json={"metadata": {"big": "v" * 10_000}})
        assert resp.status_code == 400, resp.text
        assert "4096" in _error(resp)[1]
    with pytest.raises(SandboxError) as raised:
        server.create(metadata={f"k{i}": i for i in range(10_000)})
    assert raised.value.code == "invalid_request"


@pytest.mark.parametrize("cwd", ["/proc/self", "/sys/kernel", "/dev", "/workspace/../proc", "/a//b", "rel/dir"])
def test_cwd_must_be_a_clean_path_outside_kernel_trees(server, cwd):
    with server.http() as http:
        resp = http.post("/v1/sandboxes", json={"cwd": cwd})
        assert resp.status_code == 400, resp.text
        assert _error(resp)[0] == "invalid_request"
    with pytest.raises(SandboxError) as raised:
        server.create(cwd=cwd)
    assert raised.value.code == "invalid_request"


def test_desktop_settings_need_a_desktop_template(server):
    with server.http() as http:
        resp = http.post("/v1/sandboxes", json={"template": "base", "desktop": {"resolution": {"width": 800, "height": 600}}})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request" and "desktop" in message, message


def test_negative_warm_pool_wait_is_a_400(server):
    with server.http() as http:
        resp = http.post("/v1/sandboxes", json={"warm_pool": {"id": "pool", "mode": "prefer", "wait_ms": -5}})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request" and "wait_ms" in message, message


def test_foreign_lifecycle_stream_is_404_before_upgrade(server, second_key, sandboxes):
    sb = sandboxes.create()
    url = f"ws://127.0.0.1:{server.port}/v1/sandboxes/{sb.id}/lifecycle/ws"
    with pytest.raises(Exception) as raised:
        with ws_connect(url, additional_headers={"Authorization": f"Bearer {second_key}"}, open_timeout=10):
            pass
    response = getattr(raised.value, "response", None)
    assert response is not None and response.status_code == 404, repr(raised.value)
    assert b"sandbox_not_found" in (response.body or b"")
    # The owner still subscribes.
    with ws_connect(url, additional_headers={"Authorization": f"Bearer {server.key}"}, open_timeout=10) as stream:
        stream.ping().wait(10)
    # Plain GET with upgrade headers, for the status alone.
    headers = {
        "Authorization": f"Bearer {second_key}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    resp = httpx.get(f"{server.url}/v1/sandboxes/{sb.id}/lifecycle/ws", headers=headers, timeout=10)
    assert resp.status_code == 404, resp.text
    assert _error(resp)[0] == "sandbox_not_found"
