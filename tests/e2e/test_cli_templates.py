"""The `nullspace template …` CLI against the real server: list/get/exists (with --fields and the
not-found hint), a streamed build from `nullspace/base` with a `--run` step and a `--copy` of a local
file whose result a sandbox created with `sandbox create --template NAME:TAG` shows, a failing build's
exit status, tags, delete, local rendering that never prints a build secret, warm pools
(create/get/list/delete), `sandbox create`'s warm-pool flags, and the commands that build nothing or
act on past builds: validate (valid, and an invalid Dockerfile's exit 1), plan (steps in command-line
order), `build --dry-run` (registry password redacted, with and without a server), builds, retry of
a failed build (`--run 'exit 3'`), promote and `build --visibility`."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import RUN_ID, unique

BUILD_TIMEOUT = 900


def ok(proc: subprocess.CompletedProcess[str]):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout) if proc.stdout.strip().startswith(("{", "[")) else proc.stdout


def test_list_get_exists(cli):
    templates = ok(cli("template", "list"))
    assert "base" in {t["id"] for t in templates}, templates

    compact = ok(cli("template", "list", "--fields", "id,canonical_ref"))
    assert compact and all(set(t) <= {"id", "canonical_ref"} and "id" in t for t in compact), compact

    base = ok(cli("template", "get", "base"))
    assert base["id"] == "base"
    assert ok(cli("template", "get", "base", "--fields", "id"))["id"] == "base"

    assert ok(cli("template", "exists", "base")) == {"template_ref": "base", "exists": True}
    missing_ref = unique("no-such-template")
    gone = cli("template", "exists", missing_ref)
    assert gone.returncode == 1, gone.stderr
    assert json.loads(gone.stdout) == {"template_ref": missing_ref, "exists": False}

    not_found = cli("template", "get", missing_ref, json_flag=False)
    assert not_found.returncode == 1, not_found.stderr
    assert "nullspace template list" in not_found.stderr, not_found.stderr


@pytest.fixture
def built_template(cli, tmp_path):
    """A template built by the CLI from nullspace/base with a --run step and a --copy of a local file."""
    name = unique("cli-tpl")
    payload = tmp_path / "hello.txt"
    payload.write_text(f"copied by the cli {RUN_ID}\n")
    proc = cli(
        "template", "build", "--from-template", "nullspace/base",
        "--run", f"echo built {RUN_ID} > /built.txt",
        "--copy", f"{payload}:/opt/cli/hello.txt",
        "--name", name, "--tag", "stable",
        timeout=BUILD_TIMEOUT,
    )
    result = ok(proc)
    yield name, result
    cli("template", "delete", f"{name}:stable")


def test_build_then_create_a_sandbox_from_it(server, cli, built_template):
    name, result = built_template
    assert result["build_id"].startswith("tb_"), result
    assert result["status"] == "ready"
    assert result["template"]["name"] == name
    assert "stable" in result["template"]["tags"]

    info = ok(cli("template", "get", f"{name}:stable"))
    assert info["id"] == result["template_id"]
    assert ok(cli("template", "exists", f"{name}:stable"))["exists"] is True

    status = ok(cli("template", "build-status", result["build_id"]))
    assert status["build"]["status"] == "ready"
    assert [e["kind"] for e in status["entries"]][-1] == "end"

    sandbox = ok(cli("sandbox", "create", "--template", f"{name}:stable", "--timeout", "300"))
    try:
        shown = cli("sandbox", "exec", sandbox["id"], "--", "cat", "/opt/cli/hello.txt", "/built.txt", json_flag=False)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == f"copied by the cli {RUN_ID}\nbuilt {RUN_ID}\n"
    finally:
        with server.http() as http:
            http.delete(f"/v1/sandboxes/{sandbox['id']}")


def test_tags_and_delete(cli, built_template):
    name, _ = built_template
    assigned = ok(cli("template", "tag", "assign", f"{name}:stable", "candidate"))
    assert {"stable", "candidate"} <= set(assigned["tags"])
    tags = {t["tag"] for t in ok(cli("template", "tag", "list", f"{name}:stable"))}
    assert {"stable", "candidate"} <= tags

    ok(cli("template", "tag", "remove", f"{name}:stable", "candidate"))
    assert "candidate" not in {t["tag"] for t in ok(cli("template", "tag", "list", f"{name}:stable"))}

    ok(cli("template", "delete", f"{name}:stable"))
    assert ok_or_missing(cli("template", "exists", f"{name}:stable")) is False


def ok_or_missing(proc: subprocess.CompletedProcess[str]) -> bool:
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["exists"]


def test_a_failing_step_fails_the_command(cli):
    proc = cli(
        "template", "build", "--from-template", "nullspace/base", "--run", "echo about to fail; exit 3",
        "--name", unique("cli-fail"), timeout=BUILD_TIMEOUT, json_flag=False,
    )
    assert proc.returncode == 1, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "template logs tb_" in proc.stderr, proc.stderr


def test_render_never_prints_a_build_secret(cli):
    secret = f"sekrit-{RUN_ID}"
    env = {**cli.env(), "E2E_TEMPLATE_SECRET": secret}
    for kind in ("json", "dockerfile"):
        proc = subprocess.run(
            [cli.srv.binary, "template", "render", kind, "--from-template", "nullspace/base",
             "--build-secret-env", "tok=E2E_TEMPLATE_SECRET", "--run", f"echo {secret} > /dev/null"],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert secret not in proc.stdout and secret not in proc.stderr
        assert "[REDACTED]" in proc.stdout
    body = json.loads(subprocess.run(
        [cli.srv.binary, "template", "render", "json", "--from-template", "nullspace/base",
         "--build-secret-env", "tok=E2E_TEMPLATE_SECRET"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout)
    assert body["build_secrets"] == [{"id": "tok", "value": "[REDACTED]", "source": "env"}]


def test_warm_pool_create_get_delete(cli):
    name = unique("cli-pool")
    pool = ok(cli("template", "warm-pool", "create", "base", "--name", name, "--min-ready", "0", "--max-ready", "1"))
    pool_id = pool["id"]
    try:
        assert pool["name"] == name
        got = ok(cli("template", "warm-pool", "get", pool_id))
        assert got["id"] == pool_id and got["template_ref"] == "base" and got["min_ready"] == 0
        listed = ok(cli("template", "warm-pool", "list"))
        assert pool_id in {p["id"] for p in listed["items"]}
        scaled = ok(cli("template", "warm-pool", "scale", pool_id, "--max-ready", "2"))
        assert scaled["max_ready"] == 2
    finally:
        deleted = ok(cli("template", "warm-pool", "delete", pool_id))
    assert deleted["deleted"] is True
    gone = cli("template", "warm-pool", "get", pool_id, json_flag=False)
    assert gone.returncode == 1, gone.stderr
    assert "warm-pool list" in gone.stderr


def test_sandbox_create_warm_pool_flags(server, cli):
    cold = ok(cli("sandbox", "create", "--template", "base", "--warm-pool-mode", "bypass", "--timeout", "120"))
    try:
        assert cold["status"] == "running"
    finally:
        with server.http() as http:
            http.delete(f"/v1/sandboxes/{cold['id']}")
    refused = cli("sandbox", "create", "--template", "base", "--warm-pool-mode", "require", json_flag=False)
    assert refused.returncode == 1 and "--warm-pool" in refused.stderr, refused.stderr


# --------------------------------------------------------------------------------------------------
# checks that build nothing (validate, plan, --dry-run), a template's builds, retry and promote


def test_validate_answers_valid_and_invalid(cli, tmp_path):
    valid = ok(cli("template", "validate", "--from-template", "nullspace/base", "--run", "echo hi",
                   "--make-dir", "/opt/v", "--make-dir-mode", "0750"))
    assert valid["valid"] is True and valid["errors"] == [], valid

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM nullspace/base\nONBUILD RUN echo never\n")
    invalid = cli("template", "validate", "--from-dockerfile", str(dockerfile))
    assert invalid.returncode == 1, f"stdout: {invalid.stdout}\nstderr: {invalid.stderr}"
    body = json.loads(invalid.stdout)
    assert body["valid"] is False and any("ONBUILD" in e["message"] for e in body["errors"]), body

    text = cli("template", "validate", "--from-dockerfile", str(dockerfile), json_flag=False)
    assert text.returncode == 1
    assert text.stdout.startswith("invalid\nerror: ") and "ONBUILD" in text.stdout, text.stdout
    assert "hint:" in text.stderr, text.stderr

    # A plan of the same Dockerfile is refused with the way forward.
    refused = cli("template", "plan", "--from-dockerfile", str(dockerfile), json_flag=False)
    assert refused.returncode == 1, refused.stderr
    assert "hint: run `nullspace template validate`" in refused.stderr, refused.stderr


def test_plan_lists_the_steps_in_command_line_order(cli, tmp_path):
    payload = tmp_path / "p.txt"
    payload.write_text("planned\n")
    plan = ok(cli(
        "template", "plan", "--from-template", "nullspace/base",
        "--run", "echo one", "--copy", f"{payload}:/opt/p.txt", "--symlink", "/opt/p.txt:/opt/link",
        "--remove", "/tmp/gone", "--remove-force", "--rename", "/opt/p.txt:/opt/q.txt",
    ))
    steps = [item["step"] for item in plan["build_plan"]["steps"]]
    assert [s["action"] for s in steps] == ["run", "copy", "make_symlink", "remove", "rename"], steps
    assert steps[3] == {"action": "remove", "path": "/tmp/gone", "recursive": False, "force": True}, steps
    assert plan["context_manifest"]["file_count"] == 1, plan
    assert plan["source_type"] == "template_base", plan

    text = ok(cli("template", "plan", "--from-template", "nullspace/base", "--run", "echo one", json_flag=False))
    assert "step 1/1: run" in text, text


def test_dry_run_redacts_the_registry_password(cli):
    password = f"hunter2-{RUN_ID}"
    env = {**cli.env(), "E2E_REGISTRY_PASSWORD": password}
    argv = [cli.srv.binary, "template", "build", "--from-image", "127.0.0.1:5999/private/app:1",
            "--registry-username", "e2e-user", "--registry-password-env", "E2E_REGISTRY_PASSWORD",
            "--run", f"echo {password} > /dev/null", "--name", unique("cli-dry"), "--dry-run"]
    proc = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stdout and password not in proc.stderr
    body = json.loads(proc.stdout)
    assert body["dry_run"] is True
    assert body["request"]["base_image_auth"] == {"kind": "basic", "username": "e2e-user", "password": "[REDACTED]"}
    assert body["request"]["steps"] == [{"action": "run", "command": "echo [REDACTED] > /dev/null"}]
    assert body["plan"]["build_plan"]["base_image"] == "127.0.0.1:5999/private/app:1", body
    assert password not in json.dumps(body["plan"])

    # render json redacts the same way (it never asks the server).
    rendered = subprocess.run([cli.srv.binary, "template", "render", "json", *argv[3:-3]],
                              capture_output=True, text=True, env=env, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert password not in rendered.stdout
    assert json.loads(rendered.stdout)["base_image_auth"]["password"] == "[REDACTED]"

    # Without a server the request is still shown, and the missing plan says why.
    offline = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             env={**env, "NULLSPACE_API_URL": "http://127.0.0.1:9"})
    assert offline.returncode == 0, offline.stderr
    assert "[REDACTED]" in offline.stdout and password not in offline.stdout + offline.stderr
    assert "no plan from the server" in offline.stderr and "hint:" in offline.stderr, offline.stderr


def test_builds_retry_of_a_failed_build(cli):
    name = unique("cli-retry")
    queued = ok(cli("template", "build", "--from-template", "nullspace/base", "--run", "echo failing; exit 3",
                    "--name", name, "--background"))
    first = queued["build_id"]
    waited = cli("template", "wait", first, timeout=BUILD_TIMEOUT)
    assert waited.returncode == 1 and json.loads(waited.stdout)["build"]["status"] == "error", waited.stdout

    retried = ok(cli("template", "retry", first))
    second = retried["build_id"]
    assert second.startswith("tb_") and second != first, retried
    assert retried.get("retry_of_build_id") == first, retried
    again = cli("template", "retry", second, "--wait", "--log-format", "quiet", timeout=BUILD_TIMEOUT)
    assert again.returncode == 1, again.stdout
    third = json.loads(again.stdout)["build"]
    assert third["status"] == "error" and third["build_id"] not in (first, second), third

    # A failed build is listed under its template id (the name never had a ready template).
    listed = ok(cli("template", "builds", queued["template_id"], "--status", "error"))
    assert [b["build_id"] for b in listed["builds"]] == [first], listed

    missing = cli("template", "retry", "tb_does_not_exist", json_flag=False)
    assert missing.returncode == 1 and "hint: list a template's builds" in missing.stderr, missing.stderr


def test_builds_and_promote(cli):
    name = unique("cli-promote")
    built = ok(cli("template", "build", "--from-template", "nullspace/base", "--run", "echo promoted > /p.txt",
                   "--name", name, "--tag", "v1", "--visibility", "public", "--log-format", "quiet",
                   timeout=BUILD_TIMEOUT))
    try:
        assert built["template"]["visibility"] == "public", built
        build_id = built["build_id"]

        listed = ok(cli("template", "builds", f"{name}:v1"))
        assert build_id in {b["build_id"] for b in listed["builds"]}, listed
        ready = ok(cli("template", "builds", f"{name}:v1", "--status", "ready", "--limit", "1"))
        assert [b["build_id"] for b in ready["builds"]] == [build_id], ready
        assert ok(cli("template", "builds", f"{name}:v1", "--status", "error"))["builds"] == []

        promoted = ok(cli("template", "promote", build_id, "stable"))
        assert "stable" in promoted["tags"] and promoted["id"] == built["template_id"], promoted
        assert ok(cli("template", "get", f"{name}:stable"))["id"] == built["template_id"]

        text = cli("template", "promote", build_id, "prod", json_flag=False)
        assert text.returncode == 0 and f"{name}:prod" in text.stdout, text.stdout + text.stderr
    finally:
        cli("template", "delete", f"{name}:v1")
