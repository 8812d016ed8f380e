"""API keys and tenant isolation: a bad key is 401 `unauthorized`; another tenant's sandbox is a 404
`sandbox_not_found` on every route, invisible in lists, and untouched by that tenant's requests."""

from __future__ import annotations

import httpx
import pytest

from conftest import RUN_ID
from nullspace import AuthError, NotFoundError, Sandbox
from nullspace.types import SandboxQuery


def _code(resp: httpx.Response) -> str:
    body = resp.json()
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("code", "")
    return body.get("code", "")


@pytest.mark.parametrize("bad_key", ["bad_key_xyz", "ns_e2e_bootstrap_key_0123456789abcdef_WRONG"])
def test_bad_key_is_unauthorized(server, bad_key):
    with pytest.raises(AuthError) as err:
        Sandbox.create(api_key=bad_key, base_url=server.url)
    assert err.value.code == "unauthorized"
    with pytest.raises(AuthError):
        list(Sandbox.list(api_key=bad_key, base_url=server.url))

    resp = httpx.get(f"{server.url}/v1/sandboxes", headers={"Authorization": f"Bearer {bad_key}"})
    assert resp.status_code == 401
    assert _code(resp) == "unauthorized"


def test_missing_key_is_unauthorized(server):
    resp = httpx.get(f"{server.url}/v1/sandboxes")
    assert resp.status_code == 401
    assert _code(resp) == "unauthorized"
    resp = httpx.post(f"{server.url}/v1/sandboxes", json={"template": "base"})
    assert resp.status_code == 401


def test_other_tenant_cannot_touch_sandbox(server, second_key, sandboxes):
    mine = sandboxes.create(metadata={"tenant_test": RUN_ID})
    mine.files.write("/workspace/secret.txt", "tenant-one-secret")
    theirs = sandboxes.create(key=second_key, metadata={"tenant_test": RUN_ID})
    other = {"api_key": second_key, "base_url": server.url}

    # the official client: get / kill → NotFoundError(sandbox_not_found)
    with pytest.raises(NotFoundError) as err:
        Sandbox.get_info_by_id(mine.id, **other)
    assert err.value.code == "sandbox_not_found"
    with pytest.raises(NotFoundError):
        Sandbox.connect(mine.id, **other)
    with pytest.raises(NotFoundError) as err:
        Sandbox.kill_by_id(mine.id, **other)
    assert err.value.code == "sandbox_not_found"

    # raw routes: every one is a 404 sandbox_not_found, never a 403 that confirms existence
    with server.http(second_key) as http:
        calls = [
            ("GET", f"/v1/sandboxes/{mine.id}", None),
            ("DELETE", f"/v1/sandboxes/{mine.id}", None),
            ("POST", f"/v1/sandboxes/{mine.id}/exec", {"command": "cat", "args": ["/workspace/secret.txt"]}),
            ("POST", f"/v1/sandboxes/{mine.id}/files/read", {"path": "/workspace/secret.txt", "encoding": "utf8", "user": None}),
            ("POST", f"/v1/sandboxes/{mine.id}/files/write", {"path": "/workspace/x.txt", "content": "x", "encoding": "utf8", "user": None}),
            ("GET", f"/v1/sandboxes/{mine.id}/file?path=/workspace/secret.txt", None),
            ("GET", f"/v1/sandboxes/{mine.id}/files?path=/workspace", None),
            ("GET", f"/v1/sandboxes/{mine.id}/processes", None),
            ("POST", f"/v1/sandboxes/{mine.id}/timeout", {"timeout_ms": 1000}),
            ("GET", f"/v1/sandboxes/{mine.id}/metrics", None),
        ]
        for method, path, body in calls:
            resp = http.request(method, path, json=body)
            assert resp.status_code == 404, f"{method} {path} → {resp.status_code} {resp.text}"
            assert _code(resp) == "sandbox_not_found", f"{method} {path} → {resp.text}"
            assert "tenant-one-secret" not in resp.text

        # WebSocket exec upgrade is refused as well
        ws = http.get(
            f"/v1/sandboxes/{mine.id}/ws?channel=exec",
            headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
        )
        assert ws.status_code == 404, ws.text

        # not listed for the other tenant, which does see its own sandbox
        listed = {s.id for s in Sandbox.list(query=SandboxQuery(metadata={"tenant_test": RUN_ID}), **other)}
        assert listed == {theirs.id}

    # the first tenant sees only its own, and its sandbox was not touched (timeout, files, still running)
    mine_listed = {s.id for s in Sandbox.list(query=SandboxQuery(metadata={"tenant_test": RUN_ID}),
                                              api_key=server.key, base_url=server.url)}
    assert mine_listed == {mine.id}
    assert mine.is_running()
    assert mine.get_info().timeout_ms != 1000
    assert mine.files.read("/workspace/secret.txt") == "tenant-one-secret"
    assert not mine.files.exists("/workspace/x.txt")
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(theirs.id, api_key=server.key, base_url=server.url)
