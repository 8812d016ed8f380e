"""The `nullspace` CLI against the real server: sandbox create/exec/list/kill, exit-code passthrough,
`doctor`, and the error report for a bad key."""

from __future__ import annotations

import json

import pytest

from conftest import RUN_ID, unique
from nullspace import NotFoundError, Sandbox


def _items(body):
    if isinstance(body, dict):
        for key in ("items", "sandboxes"):
            if isinstance(body.get(key), list):
                return body[key]
    assert isinstance(body, list), body
    return body


@pytest.fixture
def cli_sandbox(server, cli):
    tag = unique("cli")
    created = cli.json("sandbox", "create", "--template", "base", "--metadata", f"cli_tag={tag}", "--timeout", "600")
    sandbox_id = created["id"]
    assert sandbox_id.startswith("sb_")
    assert created["status"] == "running"
    yield sandbox_id, tag
    with server.http() as http:
        http.delete(f"/v1/sandboxes/{sandbox_id}")


def test_sandbox_lifecycle(server, cli, cli_sandbox):
    sandbox_id, tag = cli_sandbox

    got = cli.json("sandbox", "get", sandbox_id)
    assert got["id"] == sandbox_id and got["metadata"] == {"cli_tag": tag}

    hi = cli("sandbox", "exec", sandbox_id, "--", "echo", "hi", json_flag=False)
    assert hi.returncode == 0, hi.stderr
    assert hi.stdout == "hi\n"

    three = cli("sandbox", "exec", sandbox_id, "--", "sh", "-c", "echo out; echo err >&2; exit 3", json_flag=False)
    assert three.returncode == 3, three.stderr
    assert three.stdout == "out\n"
    assert "err" in three.stderr

    shell = cli("sandbox", "exec", sandbox_id, "--shell", "echo $((40+2))", json_flag=False)
    assert shell.returncode == 0 and shell.stdout == "42\n"

    result = cli.run("sandbox", "exec", sandbox_id, "--", "sh", "-c", "printf x; exit 4")
    assert result.returncode == 4
    assert json.loads(result.stdout)["exit_code"] == 4 and json.loads(result.stdout)["stdout"] == "x"

    listed = _items(cli.json("sandbox", "list"))
    assert sandbox_id in {s["id"] for s in listed}
    filtered = _items(cli.json("sandbox", "list", "--metadata", f"cli_tag={tag}"))
    assert [s["id"] for s in filtered] == [sandbox_id]

    killed = cli("sandbox", "kill", sandbox_id, json_flag=False)
    assert killed.returncode == 0, killed.stderr
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url)
    assert sandbox_id not in {s["id"] for s in _items(cli.json("sandbox", "list"))}

    # an unknown id is a user error (exit 1) that says what is missing
    missing = cli("sandbox", "get", sandbox_id, json_flag=False)
    assert missing.returncode == 1
    assert "not found" in missing.stderr.lower() or "sandbox_not_found" in missing.stderr


def test_cli_files_round_trip(cli, cli_sandbox):
    sandbox_id, _ = cli_sandbox
    write = cli("sandbox", "file", "write", sandbox_id, "/workspace/cli.txt", f"from cli {RUN_ID}", json_flag=False)
    assert write.returncode == 0, write.stderr
    read = cli("sandbox", "file", "read", sandbox_id, "/workspace/cli.txt", json_flag=False)
    assert read.returncode == 0 and read.stdout == f"from cli {RUN_ID}"


def test_doctor_reports_runc(cli):
    proc = cli.run("doctor")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, f"doctor failed: {json.dumps(report.get('checks'), indent=1)}"
    runc = [r for r in report["runtimes"] if str(r.get("kind")) == "runc"]
    assert runc and runc[0]["works"] is True, report["runtimes"]
    assert report["selected_runtime"]


def test_bad_key_exit_code_and_hint(cli):
    proc = cli("sandbox", "list", key=f"bad_key_{RUN_ID}", json_flag=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error:"), proc.stderr
    assert any(line.startswith("hint:") for line in proc.stderr.splitlines()), proc.stderr
    assert proc.stdout == ""

    as_json = cli.run("sandbox", "list", key=f"bad_key_{RUN_ID}")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "unauthorized"
