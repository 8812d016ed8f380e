"""Timeout actions and auto-resume with the official client and our CLI: `on_timeout="pause"` hibernates at
the deadline with the files kept (and `"destroy"` destroys); a paused sandbox created with
`auto_resume=True` runs again under its own id when a command, a file call, a PTY, a preview port or the
preview proxy reaches it; without auto-resume the same calls are refused as before; concurrent callers
share one resume; and create fields the server would not honour are refused naming the field."""

from __future__ import annotations

import threading

import httpx
import pytest

from conftest import RUN_ID, unique, wait_until
from nullspace import NotFoundError, Sandbox, SandboxError, SandboxStatus, Template
from nullspace.lifecycle import Lifecycle
from nullspace.template import wait_for_port
from test_preview import fetch

PAGE = "served again after a resume"


def _value(item) -> str:
    return getattr(item, "value", item)


def _info(server, sandbox_id: str):
    try:
        return Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url)
    except NotFoundError:
        return None


def _status(server, sandbox_id: str):
    info = _info(server, sandbox_id)
    return info.status if info else None


def _events(server, sandbox_id: str) -> list[tuple[str, str]]:
    events = Lifecycle(api_key=server.key, base_url=server.url).list_sandbox_events(sandbox_id, order_asc=True, limit=100)
    return [(_value(e.operation), _value(e.status)) for e in events.events]


def _resumes(server, sandbox_id: str) -> int:
    return _events(server, sandbox_id).count(("resume_from_snapshot", "succeeded"))


def _raw(server, sandbox_id: str) -> dict:
    with server.http() as http:
        resp = http.get(f"/v1/sandboxes/{sandbox_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()


def _pause(server, sb: Sandbox) -> str:
    snap = sb.hibernate()
    assert _status(server, sb.id) == SandboxStatus.PAUSED
    return snap.id


def _pty_echo(sb: Sandbox, word: str) -> str:
    session = sb.pty.create_session(cols=80, rows=24)
    out: list[bytes] = []
    session.send_input(f"echo {word}-$((20+22)); exit\n")
    result = session.wait(on_data=out.append, timeout=60)
    assert not result.timed_out, result
    return b"".join(out).decode(errors="replace")


def test_on_timeout_pause_hibernates_at_the_deadline_and_keeps_the_files(server, sandboxes):
    sb = sandboxes.create(on_timeout="pause", timeout=600, metadata={"run": RUN_ID})
    info = sb.get_info()
    assert _value(info.timeout_action) == "hibernate"
    assert _raw(server, sb.id)["lifecycle"] == {"on_timeout": "pause", "auto_resume": False}
    marker = unique("paused")
    sb.files.write("/workspace/kept.txt", marker)
    sb.set_timeout(2)  # a short deadline now; the timeout behaviour stays the create's
    assert _value(sb.get_info().timeout_action) == "hibernate"
    wait_until(lambda: _status(server, sb.id) == SandboxStatus.PAUSED, timeout=30, interval=0.5, what="pause at deadline")
    paused = _info(server, sb.id)
    assert paused.snapshot_id, paused
    operations = _events(server, sb.id)
    assert ("timeout_expired", "succeeded") in operations and ("hibernate", "succeeded") in operations
    assert ("destroy", "requested") not in operations
    # Without auto-resume it stays paused until resumed explicitly.
    with pytest.raises(SandboxError) as refused:
        sb.commands.run("true")
    assert refused.value.code == "sandbox_not_ready"
    resumed = Sandbox.resume(paused.snapshot_id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/workspace/kept.txt") == marker
    assert _value(resumed.get_info().timeout_action) == "hibernate", "resume keeps the timeout behaviour"


def test_on_timeout_destroy_destroys_and_set_timeout_reads_lifecycle(server, sandboxes):
    sb = sandboxes.create(on_timeout="destroy", timeout=600)
    assert _raw(server, sb.id)["lifecycle"]["on_timeout"] == "destroy"
    with server.http() as http:
        resp = http.post(f"/v1/sandboxes/{sb.id}/timeout", json={"timeout_ms": 600_000, "lifecycle": {"on_timeout": "pause"}})
        assert resp.status_code == 200, resp.text
        assert resp.json()["timeout_action"] == "hibernate" and resp.json()["lifecycle"]["on_timeout"] == "pause"
        resp = http.post(
            f"/v1/sandboxes/{sb.id}/timeout",
            json={"timeout_ms": 1000, "timeout_action": "hibernate", "lifecycle": {"on_timeout": "destroy"}},
        )
        assert resp.status_code == 400 and resp.json()["code"] == "invalid_request", resp.text
        assert "lifecycle.on_timeout" in resp.json()["error"]
    sb.set_timeout(1, timeout_action="destroy")
    wait_until(lambda: _status(server, sb.id) is None, timeout=20, interval=0.5, what="destroy at deadline")


def test_auto_resume_wakes_a_paused_sandbox_for_commands_files_and_pty(server, sandboxes):
    sb = sandboxes.create(on_timeout="pause", auto_resume=True, timeout=600)
    assert _raw(server, sb.id)["lifecycle"] == {"on_timeout": "pause", "auto_resume": True}
    assert _raw(server, sb.id)["auto_resume"] is True
    sb.files.write("/workspace/kept.txt", "before the pause")

    _pause(server, sb)
    assert sb.commands.run("cat /workspace/kept.txt", shell=True).stdout == "before the pause"
    assert _status(server, sb.id) == SandboxStatus.RUNNING, "same id, running again"
    assert sb.get_info().snapshot_id is None

    _pause(server, sb)
    assert sb.files.read("/workspace/kept.txt") == "before the pause"
    _pause(server, sb)
    sb.files.write("/workspace/after.txt", "written while paused")
    assert sb.files.read("/workspace/after.txt") == "written while paused"

    _pause(server, sb)
    assert "word-42" in _pty_echo(sb, "word")
    assert _status(server, sb.id) == SandboxStatus.RUNNING
    assert _resumes(server, sb.id) == 4, _events(server, sb.id)
    # Reading the sandbox's info or listing does not wake it.
    _pause(server, sb)
    assert _info(server, sb.id).status == SandboxStatus.PAUSED
    with server.http() as http:
        listed = http.get("/v1/sandboxes", params={"state": "paused", "limit": 1000}).json()["items"]
    assert sb.id in {item["id"] for item in listed}
    assert _status(server, sb.id) == SandboxStatus.PAUSED


def test_concurrent_calls_share_one_resume(server, sandboxes):
    sb = sandboxes.create(auto_resume=True, timeout=600)
    sb.files.write("/workspace/n.txt", "7")
    _pause(server, sb)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(sb.commands.run("cat /workspace/n.txt", shell=True).stdout)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            results.append(error)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert results == ["7"] * 4, results
    assert _resumes(server, sb.id) == 1, _events(server, sb.id)
    assert _events(server, sb.id).count(("resume_from_snapshot", "requested")) == 1


def test_without_auto_resume_a_paused_sandbox_refuses_as_before(server, sandboxes):
    sb = sandboxes.create(timeout=600)
    sb.commands.run("true")
    preview = sb.get_preview_url(8000)
    _pause(server, sb)
    for call in (
        lambda: sb.commands.run("true"),
        lambda: sb.files.read("/etc/hostname"),
        lambda: sb.files.write("/workspace/x.txt", "x"),
    ):
        with pytest.raises(SandboxError) as refused:
            call()
        assert refused.value.code == "sandbox_not_ready", refused.value
    with pytest.raises(SandboxError):  # the WebSocket upgrade is refused (the client names no code)
        sb.pty.create_session()
    resp = fetch(preview.url)
    assert resp.status_code == 409 and resp.json()["code"] == "sandbox_not_ready", resp.text
    assert _status(server, sb.id) == SandboxStatus.PAUSED
    assert _resumes(server, sb.id) == 0


@pytest.fixture(scope="module")
def web_template(server):
    """A template whose start command serves /workspace on port 8000: a resume from files starts it again."""
    name = unique("tpl-autoresume")
    builder = Template().from_template("base").set_start_cmd(
        "mkdir -p /workspace && cd /workspace && exec python3 -m http.server 8000", wait_for_port(8000)
    )
    built = Template.build(builder, name=name, api_key=server.key, base_url=server.url)
    assert _value(built.status) == "ready", built
    return name


def test_auto_resume_wakes_on_preview_traffic(server, sandboxes, web_template):
    sb = sandboxes.create(template=web_template, auto_resume=True, on_timeout="pause", timeout=600)
    sb.files.write("/workspace/index.html", f"<p>{PAGE}</p>\n")
    url = sb.get_url(8000)  # a preview port of its own
    preview = sb.get_preview_url(8000)  # the preview proxy
    assert PAGE in httpx.get(url, timeout=30).text

    _pause(server, sb)
    resp = httpx.get(url, timeout=180)
    assert resp.status_code == 200 and PAGE in resp.text, resp.text[:300]
    assert _status(server, sb.id) == SandboxStatus.RUNNING

    _pause(server, sb)
    resp = fetch(preview.url)
    assert resp.status_code == 200 and PAGE in resp.text, resp.text[:300]
    assert _status(server, sb.id) == SandboxStatus.RUNNING
    assert _resumes(server, sb.id) == 2, _events(server, sb.id)


def test_fields_the_server_would_ignore_are_refused_naming_them(server, sandboxes):
    with pytest.raises(SandboxError) as refused:
        Sandbox.create(on_timeout="pause", timeout_action="destroy", api_key=server.key, base_url=server.url)
    assert refused.value.code == "invalid_request"
    assert "timeout_action" in str(refused.value) and "lifecycle.on_timeout" in str(refused.value)

    with server.http() as http:
        def refused_field(body: dict, path: str = "/v1/sandboxes") -> str:
            resp = http.post(path, json=body)
            assert resp.status_code == 400 and resp.json()["code"] == "invalid_request", resp.text
            return resp.json()["error"]

        assert "lifecycle.on_timeout" in refused_field({"lifecycle": {"on_timeout": "hibernate"}})
        assert "auto_resume" in refused_field({"auto_resume": "yes"})
        # What the client always sends is accepted (the defaults), and unknown keys are ignored.
        sb = sandboxes.create(auto_resume=False, envs={}, metadata={})
        snap = sb.create_snapshot()
        for field, value in [
            ("envs", {"A": "1"}),
            ("template", "base"),
            ("vcpus", 7),
            ("cwd", "/tmp"),
            ("volumes", [{"ref": "nope", "mount_path": "/data"}]),
            ("warm_pool", {"mode": "bypass"}),
        ]:
            message = refused_field({"snapshot_id": snap.id, field: value})
            assert message.startswith(f"{field}:"), message
        assert "timeout_ms" in refused_field({"timeout_ms": 5}, f"/v1/sandboxes/{sb.id}/fork")
        assert "metadata" in refused_field({"metadata": {}}, f"/v1/sandboxes/{snap.id}/resume")
        pool = http.post(
            "/v1/template-warm-pools",
            json={"template_ref": "base", "name": unique("pool"), "min_ready": 0, "max_ready": 1, "stale_after_seconds": 60},
        )
        assert pool.status_code == 400 and "stale_after_seconds" in pool.json()["error"], pool.text

    # A create from a snapshot honours the lifecycle fields the client sends on that path.
    child = sandboxes.create(snapshot_id=snap.id, on_timeout="pause", auto_resume=True)
    assert _raw(server, child.id)["lifecycle"] == {"on_timeout": "pause", "auto_resume": True}


def test_cli_create_on_timeout_pause_and_auto_resume(server, sandboxes, cli):
    created = cli.json("sandbox", "create", "--on-timeout", "pause", "--auto-resume", "--timeout", "600")
    sandboxes.created.append((created["id"], server.key))
    assert created["timeout_action"] == "hibernate"
    assert created["lifecycle"] == {"on_timeout": "pause", "auto_resume": True}
    sb = server.connect(created["id"])
    _pause(server, sb)
    assert sb.commands.run("echo awake", shell=True).stdout == "awake\n"
    assert _status(server, sb.id) == SandboxStatus.RUNNING
    clash = cli.run("sandbox", "create", "--on-timeout", "pause", "--timeout-action", "destroy")
    assert clash.returncode != 0 and "lifecycle.on_timeout" in clash.stdout + clash.stderr
