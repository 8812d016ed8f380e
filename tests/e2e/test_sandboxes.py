"""Sandbox lifecycle through the official client and the raw HTTP API: create/get/list/kill, timeouts,
idempotency, validation errors, templates, CORS, unknown routes."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from conftest import RUN_ID, host_snapshot, snapshot_mentions, unique, wait_until
from nullspace import NotFoundError, Sandbox, SandboxStatus
from nullspace.types import SandboxQuery


def _gone(server, sandbox_id: str) -> bool:
    try:
        Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url)
    except NotFoundError:
        return True
    return False


def _error(resp: httpx.Response) -> tuple[str, str]:
    body = resp.json()
    assert isinstance(body, dict), body
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("code", ""), err.get("message", "")
    return body.get("code", ""), err or ""


def test_create_get_with_metadata_envs_cwd(server, sandboxes):
    cwd = f"/srv/{unique('cwd')}"
    metadata = {"team": "e2e", "count": 3, "ratio": 0.5, "flag": True, "nested": {"a": [1, "two"]}, "run": RUN_ID}
    sb = sandboxes.create(envs={"E2E_GREETING": "hi there", "E2E_N": "7"}, metadata=metadata, cwd=cwd)

    assert sb.id.startswith("sb_")
    info = sb.get_info()
    assert info.id == sb.id
    assert info.status == SandboxStatus.RUNNING
    assert info.template == "base"
    assert info.config.vcpus == 2 and info.config.memory_mb == 512
    assert info.metadata == metadata
    assert isinstance(info.metadata["count"], int) and info.metadata["flag"] is True
    assert info.cwd == cwd
    assert info.created_at is not None
    assert info.timeout_at is not None and info.timeout_at == info.expires_at

    by_id = Sandbox.get_info_by_id(sb.id, api_key=server.key, base_url=server.url)
    assert by_id.id == sb.id and by_id.metadata == metadata

    # envs are visible to every command, login shells included
    login = sb.commands.run("bash", ["-lc", "echo \"$E2E_GREETING/$E2E_N\""])
    assert login.exit_code == 0, login.stderr
    assert login.stdout == "hi there/7\n"
    plain = sb.commands.run("echo $E2E_GREETING", shell=True)
    assert plain.stdout == "hi there\n"

    # the custom cwd exists and is the default working directory
    pwd = sb.commands.run("pwd")
    assert pwd.stdout.strip() == cwd
    assert sb.commands.run("test", ["-d", cwd]).exit_code == 0
    sb.files.write("relative.txt", "in cwd")
    assert sb.commands.run("cat", [f"{cwd}/relative.txt"]).stdout == "in cwd"


def test_list_filters_and_pagination(server, sandboxes):
    tag = unique("list")
    a = sandboxes.create(metadata={"list_tag": tag, "which": "a"})
    b = sandboxes.create(metadata={"list_tag": tag, "which": "b"})
    other = sandboxes.create(metadata={"list_tag": tag + "-other"})
    kw = {"api_key": server.key, "base_url": server.url}

    # metadata filter (subset match)
    page = Sandbox.list(query=SandboxQuery(metadata={"list_tag": tag}), **kw)
    ids = [s.id for s in page]
    assert sorted(ids) == sorted([a.id, b.id])
    page = Sandbox.list(query=SandboxQuery(metadata={"list_tag": tag, "which": "b"}), **kw)
    assert [s.id for s in page] == [b.id]

    # state filter
    running = [s.id for s in Sandbox.list(state="running", query=SandboxQuery(metadata={"list_tag": tag}), **kw)]
    assert sorted(running) == sorted([a.id, b.id])
    paused = list(Sandbox.list(query=SandboxQuery(state=[SandboxStatus.PAUSED], metadata={"list_tag": tag}), **kw))
    assert paused == []

    # pagination: limit=1 gives one item per page and the paginator walks all pages without duplicates
    page = Sandbox.list(query=SandboxQuery(metadata={"list_tag": tag}), limit=1, **kw)
    assert len(page.items) == 1
    assert page.has_next and page.next_token
    walked = [s.id for s in page]
    assert len(walked) == len(set(walked))
    assert sorted(walked) == sorted([a.id, b.id])

    # unfiltered listing shows all three; a killed sandbox disappears
    all_ids = {s.id for s in Sandbox.list(**kw)}
    assert {a.id, b.id, other.id} <= all_ids
    a.kill()
    after = [s.id for s in Sandbox.list(query=SandboxQuery(metadata={"list_tag": tag}), **kw)]
    assert after == [b.id]


def test_kill_and_kill_by_id(server, sandboxes):
    sb = sandboxes.create()
    sandbox_id = sb.id
    # what the sandbox owns on the host while it runs (so the "nothing left" checks below mean something)
    owned = snapshot_mentions(host_snapshot(server.data_dir), sandbox_id)
    assert set(owned) == {"mounts", "runc", "cgroups", "dirs", "processes"}, owned
    layout = server.data_dir / "sandboxes" / sandbox_id
    assert {"disk", "disk.img", "rootfs", "bundle"} <= {p.name for p in layout.iterdir()}
    assert {"upper", "work", "control", "net"} <= {p.name for p in (layout / "disk").iterdir()}
    assert any(m.endswith(f"/sandboxes/{sandbox_id}/rootfs") for m in owned["mounts"]), owned["mounts"]
    assert sb.commands.run("true").exit_code == 0
    sb.kill()
    with pytest.raises(NotFoundError) as err:
        Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url)
    assert err.value.code == "sandbox_not_found"
    assert snapshot_mentions(host_snapshot(server.data_dir), sandbox_id) == {}

    sb2 = sandboxes.create()
    Sandbox.kill_by_id(sb2.id, api_key=server.key, base_url=server.url)
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(sb2.id, api_key=server.key, base_url=server.url)
    with server.http() as http:
        resp = http.get(f"/v1/sandboxes/{sb2.id}")
        assert resp.status_code == 404
        assert _error(resp)[0] == "sandbox_not_found"
        # exec on a killed sandbox is a 404 too
        resp = http.post(f"/v1/sandboxes/{sb2.id}/exec", json={"command": "true"})
        assert resp.status_code == 404 and _error(resp)[0] == "sandbox_not_found"
    assert snapshot_mentions(host_snapshot(server.data_dir), sb2.id) == {}


def test_timeout_is_enforced(server, sandboxes):
    sb = sandboxes.create(timeout=2)
    assert sb.commands.run("echo", ["alive"]).stdout == "alive\n"
    start = time.monotonic()
    wait_until(lambda: _gone(server, sb.id), timeout=12, interval=0.5, what=f"{sb.id} to expire")
    assert time.monotonic() - start < 12
    with server.http() as http:
        assert sb.id not in {s["id"] for s in _list_items(http)}
    # the reaper releases everything the sandbox owned
    wait_until(
        lambda: snapshot_mentions(host_snapshot(server.data_dir), sb.id) == {},
        timeout=10,
        what=f"host resources of expired {sb.id} to be released",
    )


def test_set_timeout_extends(server, sandboxes):
    sb = sandboxes.create(timeout=3)
    sb.set_timeout(60)
    info = sb.get_info()
    assert info.timeout_ms == 60_000
    time.sleep(6)
    assert not _gone(server, sb.id), "set_timeout(60) did not extend a 3 s sandbox"
    assert sb.commands.run("echo", ["still here"]).stdout == "still here\n"
    # and shortening works too
    sb.set_timeout(1)
    wait_until(lambda: _gone(server, sb.id), timeout=12, interval=0.5, what="shortened sandbox to expire")


def _list_items(http: httpx.Client) -> list[dict]:
    resp = http.get("/v1/sandboxes", params={"limit": 1000})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body if isinstance(body, list) else body["items"]


def test_idempotency_key_returns_same_sandbox(server, sandboxes):
    key = str(uuid.uuid4())
    body = {"template": "base", "timeout_ms": 600_000, "metadata": {"idem": key}}
    with server.http() as http:
        first = http.post("/v1/sandboxes", json=body, headers={"Idempotency-Key": key})
        assert first.status_code in (200, 201), first.text
        sandboxes.created.append((first.json()["id"], server.key))
        second = http.post("/v1/sandboxes", json=body, headers={"Idempotency-Key": key})
        assert second.status_code in (200, 201), second.text
        assert second.json()["id"] == first.json()["id"]
        listed = [s for s in _list_items(http) if s.get("metadata", {}).get("idem") == key]
        assert len(listed) == 1


def test_validation_errors(server):
    with server.http() as http:
        resp = http.post("/v1/sandboxes", content=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request"
        assert message.strip()

        resp = http.post("/v1/sandboxes", json={"template": "base", "vcpus": 0})
        assert resp.status_code == 400, resp.text
        code, message = _error(resp)
        assert code == "invalid_request"
        assert "vcpu" in message.lower(), message

        resp = http.post("/v1/sandboxes", json={"template": f"no-such-template-{RUN_ID}"})
        assert resp.status_code == 404, resp.text
        assert _error(resp)[0] == "template_not_found"

        # none of the rejected requests left a sandbox behind
        assert all(s.get("template") != f"no-such-template-{RUN_ID}" for s in _list_items(http))


def test_templates_list_base(server):
    with server.http() as http:
        resp = http.get("/v1/templates")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items = body if isinstance(body, list) else body.get("items", body.get("templates", []))
        assert "base" in {t.get("id") for t in items}, body


def test_cors_preflight(server):
    resp = httpx.options(
        f"{server.url}/v1/sandboxes",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("access-control-allow-origin")
    assert resp.headers.get("access-control-allow-methods")

    health = httpx.get(f"{server.url}/healthz", headers={"Origin": "https://app.example.com"})
    assert health.status_code == 200
    assert health.headers.get("access-control-allow-origin")


def test_unknown_route_is_json_404(server):
    with server.http() as http:
        resp = http.get(f"/v1/definitely-not-a-route-{RUN_ID}")
        assert resp.status_code == 404
        code, message = _error(resp)
        assert code and "not_found" in code, resp.text
