"""Request limits: JSON bodies over the limit are 413 in the protocol's envelope while uploads stream past
it; a key over `--rate-limit` gets 429 `rate_limit_exceeded` with `Retry-After` (which the official
client waits out and retries); an oversized WebSocket message closes that socket with 1009 and the
server keeps serving; `--max-execs-per-sandbox` caps execs and PTYs until one ends."""

from __future__ import annotations

import contextlib
import json
import os

import httpx
import pytest
from nullspace import Sandbox
from nullspace.client import NullspaceClient
from nullspace.errors import QuotaExceededError, RateLimitError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from conftest import sibling_server, wait_until


def ws_url(srv, path: str) -> str:
    return srv.url.replace("http://", "ws://") + path


def auth(srv) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.key}"}


def test_an_oversized_json_body_is_413_and_uploads_are_not_limited(server, sandbox):
    body = json.dumps({"template": "base", "metadata": {"k": "x" * (5 << 20)}})
    with server.http() as http:
        resp = http.post("/v1/sandboxes", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413, resp.text
    envelope = resp.json()
    assert envelope["code"] == "payload_too_large" and "larger than this route accepts" in envelope["error"]
    # A file larger than the JSON limit streams through the relay untouched.
    data = os.urandom(6 << 20)
    sandbox.files.write("/tmp/big.bin", data)
    assert sandbox.files.read("/tmp/big.bin", format="bytes") == data


def test_an_oversized_websocket_message_closes_that_socket_with_1009(server, sandbox):
    url = ws_url(server, f"/v1/sandboxes/{sandbox.id}/ws?channel=exec")
    with ws_connect(url, additional_headers=auth(server), open_timeout=10, max_size=None) as ws:
        # 3 MiB: over the 2 MiB message limit (real exec, PTY and watch messages are far smaller).
        with pytest.raises(ConnectionClosed) as closed:
            ws.send(json.dumps({"type": "exec_start", "id": "big", "command": "echo", "args": ["x" * (3 << 20)]}))
            while True:
                ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    # The server and the sandbox's other sockets keep working.
    assert sandbox.commands.run_streaming("echo", ["still here"]).stdout == "still here\n"
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def limited_server(server):
    srv = sibling_server(server, "ratelimit", ["--rate-limit", "2/s", "--rate-limit-burst", "3"])
    yield srv
    srv.stop()
    srv.remove_network()


def test_a_key_over_the_rate_limit_gets_429_with_retry_after_and_the_client_retries(limited_server):
    srv = limited_server
    statuses = []
    with srv.http() as http:
        for _ in range(10):
            resp = http.get("/v1/sandboxes")
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                break
    assert statuses[-1] == 429, statuses
    assert resp.json()["code"] == "rate_limit_exceeded"
    assert int(resp.headers["Retry-After"]) >= 1
    # Without retries the official client raises RateLimitError carrying the wait…
    client = NullspaceClient(api_key=srv.key, base_url=srv.url)
    with pytest.raises(RateLimitError) as info:
        for _ in range(10):
            client.request("GET", "/v1/sandboxes", _retry_on_rate_limit=0)
    assert info.value.retry_after >= 1
    # …and with its default retries it waits that out and succeeds.
    listed = client.request("GET", "/v1/sandboxes")
    assert isinstance(listed, (list, dict))
    # Another key is counted on its own: unknown keys are 401, not 429.
    with srv.http(key="ns_not_a_key") as http:
        assert http.get("/v1/sandboxes").status_code == 401


@pytest.fixture(scope="module")
def exec_capped_server(server):
    srv = sibling_server(server, "execcap", ["--max-execs-per-sandbox", "2"])
    yield srv
    srv.kill_all(srv.key)
    srv.stop()
    srv.remove_network()


def hold_exec(stack: contextlib.ExitStack, srv, sandbox_id: str, request_id: str):
    """An exec stream running `sleep` (it holds one exec slot until the socket closes)."""
    url = ws_url(srv, f"/v1/sandboxes/{sandbox_id}/ws?channel=exec")
    ws = stack.enter_context(ws_connect(url, additional_headers=auth(srv), open_timeout=10))
    ws.send(json.dumps({"type": "exec_start", "id": request_id, "command": "sleep", "args": ["600"]}))
    started = json.loads(ws.recv(timeout=30))
    assert started["type"] == "exec_started", started
    return ws


def test_execs_and_ptys_past_the_cap_are_refused_until_one_ends(exec_capped_server):
    srv = exec_capped_server
    sb = Sandbox.create(api_key=srv.key, base_url=srv.url, timeout=600)
    try:
        with contextlib.ExitStack() as stack:
            first = hold_exec(stack, srv, sb.id, "hold-1")
            hold_exec(stack, srv, sb.id, "hold-2")
            # A foreground exec over REST: the client's QuotaExceededError, code capacity_exceeded.
            with pytest.raises(QuotaExceededError) as info:
                sb.commands.run("true")
            assert info.value.code == "capacity_exceeded" and "--max-execs-per-sandbox" in str(info.value)
            # A streamed exec: the channel's error message, then the socket closes.
            with pytest.raises(RuntimeError, match="max-execs-per-sandbox"):
                sb.commands.run_streaming("true")
            # A PTY: refused the same way, with the code, answering its request.
            url = ws_url(srv, f"/v1/sandboxes/{sb.id}/ws?channel=pty")
            with ws_connect(url, additional_headers=auth(srv), open_timeout=10) as pty:
                pty.send(json.dumps({"type": "pty_start", "id": "pty-1", "cols": 80, "rows": 24}))
                refusal = json.loads(pty.recv(timeout=30))
            assert refusal["type"] == "error" and refusal["code"] == "capacity_exceeded", refusal
            assert refusal["id"] == "pty-1", refusal
            # File requests are not execs.
            assert sb.files.exists("/etc/hostname")
            # A client that goes away frees its slot.
            first.close()
            result = wait_until(lambda: _try_run(sb), timeout=30, what="a freed exec slot")
            assert result.stdout == "freed\n"
    finally:
        sb.kill()


def _try_run(sb):
    try:
        return sb.commands.run("echo", ["freed"])
    except QuotaExceededError:
        return None
