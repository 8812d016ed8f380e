"""Preview URLs through the server's preview proxy (`http://{port}-{sandbox_id}.localhost:{api port}`):
direct grants (`?edge_token=` then a host-only cookie), proxy grants (header token), revocation, expiry,
dead ports, unknown sandboxes, usage counters, and grants dying with their sandbox.

`*.localhost` does not resolve through Python's resolver on this host (glibc without nss-myhostname), so
requests connect to 127.0.0.1:{api port} and send the preview host in an explicit `Host` header — what a
browser does after resolving `*.localhost` to loopback by itself (see test_browser.py).
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import wait_until

PAGE_TEXT = "hello from the preview proxy"
PROXY_HEADER = "x-nullspace-preview-proxy-token"


def loopback(url: str) -> tuple[str, dict[str, str]]:
    """The loopback URL to connect to and the Host header to send for a preview URL."""
    parts = urlsplit(url)
    target = f"http://127.0.0.1:{parts.port or 80}{parts.path or '/'}"
    if parts.query:
        target += f"?{parts.query}"
    return target, {"Host": parts.netloc}


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> httpx.Response:
    target, host = loopback(url)
    return httpx.request(method, target, headers={**host, **(headers or {})}, timeout=30)


def edge_cookie(resp: httpx.Response) -> str:
    cookie = resp.headers.get("set-cookie", "")
    assert cookie.startswith("nullspace_edge_token="), resp.headers
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "path=/" in attributes, cookie
    assert not any(a.startswith("domain=") for a in attributes), "the cookie must be host-only"
    return cookie.split(";", 1)[0]


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:300]}"
    body = resp.json()
    assert body["code"] == code, body
    assert body["error"], body
    return body


@pytest.fixture(scope="module")
def web(module_sandboxes):
    """A sandbox serving /workspace (with index.html) on port 8000 with `python3 -m http.server`."""
    sb = module_sandboxes.create()
    sb.files.write("/workspace/index.html", f"<html><body><p>{PAGE_TEXT}</p></body></html>\n")
    sb.files.write("/workspace/big.bin", "x" * 300_000)
    sb.commands.run("cd /workspace && exec python3 -m http.server 8000", shell=True, background=True)
    ready = sb.wait_for_preview(8000, kind="http", timeout_secs=30)
    assert ready.ready, ready
    return sb


def test_preview_url_serves_the_page_then_works_with_the_cookie(server, web):
    preview = web.get_preview_url(8000)  # the client builds strict dataclasses: extra keys would fail
    assert preview.access_token_transport == "query"
    assert preview.grant.id.startswith("pvg_") and preview.grant.auth_mode == "direct"
    assert preview.grant.bootstrap_transport == "query" and preview.grant.status == "active"
    host = f"8000-{web.id}.localhost:{server.port}"
    assert preview.url.startswith(f"http://{host}/?edge_token="), preview.url
    assert preview.websocket_url.startswith(f"ws://{host}/?edge_token="), preview.websocket_url

    first = fetch(preview.url)
    assert first.status_code == 200, first.text[:300]
    assert PAGE_TEXT in first.text
    cookie = edge_cookie(first)

    # Subresources: same host, no query, the cookie only.
    second = fetch(f"http://{host}/index.html", headers={"Cookie": cookie})
    assert second.status_code == 200, second.text[:300]
    assert PAGE_TEXT in second.text
    big = fetch(f"http://{host}/big.bin", headers={"Cookie": f"other=1; {cookie}"})
    assert big.status_code == 200 and len(big.content) == 300_000

    # Neither a token nor a cookie: refused before reaching the sandbox.
    assert_error(fetch(f"http://{host}/"), 401, "edge_token_missing")
    assert_error(fetch(f"http://{host}/?edge_token=pvg_nope.secret"), 401, "edge_token_invalid")
    assert_error(fetch(f"http://{host}/", headers={"Cookie": "nullspace_edge_token=garbage"}), 401, "edge_token_invalid")

    # The token is for port 8000 of this sandbox only.
    token = preview.url.split("edge_token=", 1)[1]
    assert_error(
        fetch(f"http://8001-{web.id}.localhost:{server.port}/?edge_token={token}"), 401, "edge_token_scope_mismatch"
    )

    grants = {g.id: g for g in web.list_preview_urls(port=8000)}
    grant = grants[preview.grant.id]
    assert grant.use_count >= 3 and grant.http_request_count >= 3, grant
    assert grant.bytes_out_count >= 300_000 and grant.bytes_in_count >= 0, grant
    assert grant.first_used_at is not None and grant.last_used_at is not None
    assert web.list_preview_urls(port=8999) == []


def test_revoked_grant_is_refused(server, web):
    preview = web.get_preview_url(8000)
    first = fetch(preview.url)
    assert first.status_code == 200
    cookie = edge_cookie(first)
    revoked = web.revoke_preview_url(preview.grant.id)
    assert revoked.success is True
    assert revoked.grant.id == preview.grant.id and revoked.grant.status == "revoked"
    assert revoked.grant.revoked_at is not None
    assert_error(fetch(preview.url), 401, "preview_grant_revoked")
    host = urlsplit(preview.url).netloc
    assert_error(fetch(f"http://{host}/", headers={"Cookie": cookie}), 401, "preview_grant_revoked")
    listed = {g.id: g for g in web.list_preview_urls()}
    assert listed[preview.grant.id].status == "revoked"
    with server.http() as http:
        resp = http.delete(f"/v1/sandboxes/{web.id}/preview-urls/pvg_doesnotexist")
        assert resp.status_code == 404, resp.text


def test_signed_preview_url_expires(server, web):
    preview = web.create_signed_preview_url(8000, expires_in_seconds=1)
    assert preview.grant.expires_at is not None
    time.sleep(2)
    assert_error(fetch(preview.url), 401, "edge_token_expired")
    with server.http() as http:
        for bad in (0, -1, 10**9):
            resp = http.post(f"/v1/sandboxes/{web.id}/ports/8000/signed-preview-url", json={"expires_in_seconds": bad})
            assert_error(resp, 400, "invalid_request")
        resp = http.post(f"/v1/sandboxes/{web.id}/ports/8000/signed-preview-url", json={})
        assert resp.status_code == 200 and set(resp.json()) == {
            "grant", "url", "websocket_url", "access_token_expires_at", "access_token_transport"
        }


def test_preview_proxy_target_uses_the_header_token(server, web):
    target = web.create_preview_proxy_target(8000, transports=["http", "websocket"])
    assert target.token_header_name == PROXY_HEADER and target.token_transport == "header"
    assert target.grant.auth_mode == "proxy" and target.grant.bootstrap_transport == "header"
    assert target.http_url and "edge_token" not in target.http_url and "token" not in target.http_url
    assert target.websocket_url and target.websocket_url.startswith("ws://")
    assert target.http_token and target.websocket_token
    assert "host" in target.required_forwarded_headers and target.warnings == []

    ok = fetch(target.http_url, headers={PROXY_HEADER: target.http_token, "X-Forwarded-Host": "app.example"})
    assert ok.status_code == 200 and PAGE_TEXT in ok.text, ok.text[:300]
    assert "set-cookie" not in ok.headers
    assert_error(fetch(target.http_url, headers={"X-Forwarded-Host": "app.example"}), 401, "preview_proxy_token_missing")
    assert_error(fetch(target.http_url, headers={PROXY_HEADER: "pvg_x.nope"}), 401, "preview_proxy_token_invalid")
    # A proxy token is not a browser link, and a browser link is not a proxy token.
    assert_error(fetch(f"{target.http_url}?edge_token={target.http_token}"), 401, "edge_token_scope_mismatch")
    direct = web.get_preview_url(8000)
    direct_token = direct.url.split("edge_token=", 1)[1]
    assert_error(fetch(target.http_url, headers={PROXY_HEADER: direct_token}), 401, "preview_proxy_token_scope_mismatch")

    only_http = web.create_preview_proxy_target(8000, transports=["http"], include_traffic_token_hint=False)
    assert only_http.http_url and only_http.websocket_url is None and only_http.websocket_token is None
    assert only_http.traffic_access_required is None


def test_dead_port_is_a_502_that_says_so(server, web):
    preview = web.get_preview_url(8999)
    resp = fetch(preview.url)
    body = assert_error(resp, 502, "port_unreachable")
    assert "nothing listens on port 8999" in body["error"], body
    grant = {g.id: g for g in web.list_preview_urls(port=8999)}[preview.grant.id]
    assert grant.last_error_code == "port_unreachable" and grant.last_error_at is not None


def test_unknown_sandbox_and_foreign_hosts(server):
    resp = fetch(f"http://8000-sb_doesnotexist000000000.localhost:{server.port}/")
    assert_error(resp, 404, "sandbox_not_found")
    # A host outside the preview domain is the API's: never a crash.
    resp = httpx.get(f"{server.url}/", headers={"Host": "8080-sb_nonexistent.nullspace.dev"}, timeout=30)
    assert resp.status_code in (200, 404, 502), resp.text
    # Malformed preview-looking hosts go to the API too.
    resp = httpx.get(f"{server.url}/healthz", headers={"Host": f"99999-sb_x.localhost:{server.port}"}, timeout=30)
    assert resp.status_code == 200


def test_grants_die_with_their_sandbox(server, sandboxes):
    sb = sandboxes.create()
    preview = sb.get_preview_url(8000)
    sb.kill()
    assert_error(fetch(preview.url), 404, "sandbox_not_found")


def test_preview_latency_vs_direct_forward(server, module_sandboxes):
    """p50 of small GETs over a keep-alive connection: the preview proxy vs the `POST /host` forward."""
    sb = module_sandboxes.create()
    sb.files.write(
        "/workspace/ka.py",
        "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    protocol_version = 'HTTP/1.1'\n"
        "    disable_nagle_algorithm = True  # else headers and body wait for a delayed ACK (~40 ms)\n"
        "    def do_GET(self):\n"
        "        body = b'ok'\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "    def log_message(self, *args):\n"
        "        pass\n"
        "ThreadingHTTPServer(('0.0.0.0', 8500), H).serve_forever()\n",
    )
    sb.commands.run("exec python3 /workspace/ka.py", shell=True, background=True)
    assert sb.wait_for_preview(8500, kind="http", timeout_secs=30).ready
    direct_url = sb.get_url(8500)
    preview = sb.get_preview_url(8500)
    target, host = loopback(preview.url)
    cookie = edge_cookie(fetch(preview.url))

    def p50(client: httpx.Client, url: str, headers: dict[str, str], n: int = 200) -> float:
        for _ in range(10):
            assert client.get(url, headers=headers).status_code == 200
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            resp = client.get(url, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
            assert resp.status_code == 200 and resp.text == "ok"
        return statistics.median(samples)

    with httpx.Client(timeout=30) as client:
        direct = p50(client, direct_url, {})
    with httpx.Client(timeout=30) as client:
        proxied = p50(client, target.split("?", 1)[0], {**host, "Cookie": cookie})
    print(f"\npreview latency p50: direct POST /host forward {direct:.3f} ms, preview proxy {proxied:.3f} ms")
    wait_until(lambda: sb.list_preview_urls(port=8500)[0].http_request_count >= 211, 5, what="counters")
