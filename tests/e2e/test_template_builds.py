"""Template builds on the real engine, driven by the official client: builder steps on the built-in base, a
copy from the build context, runtime envs, build envs and secrets that must not leak, a start command run
once, readiness, cache hits on a second identical build, Dockerfiles (single and multi-stage, COPY from the
context and from a stage), cancel of a running step, a server restart mid-build, and a template whose
sandboxes outlive its deletion. Every build here starts from `nullspace/base`, so no registry is needed
(registry images are in test_template_images.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import httpx
import pytest

from conftest import sibling_server, unique, wait_until
from nullspace import Sandbox, Template
from nullspace.errors import SandboxError


def _build(server, builder, name, key=None, logs=None, **kwargs):
    return Template.build(
        builder,
        name=name,
        on_log_entry=(lambda entry: logs.append(entry)) if logs is not None else None,
        api_key=key or server.key,
        base_url=server.url,
        **kwargs,
    )


def _messages(entries) -> str:
    return "\n".join(entry.message for entry in entries)


def _build_sandboxes(server) -> set[str]:
    """Sandbox directories on the host that are no sandbox of the store: the build sandboxes. (Read from
    the server's SQLite store, read-only: the built-in warm pool's sandboxes belong to the system tenant,
    which no API key lists.)"""
    with server.http() as http:
        listed = _listed(http)
    db = sqlite3.connect(f"file:{server.data_dir / 'nullspace.db'}?mode=ro", uri=True)
    try:
        recorded = {row[0] for row in db.execute("SELECT id FROM sandboxes WHERE state != 'destroyed'")}
    finally:
        db.close()
    return {name for name in os.listdir(server.data_dir / "sandboxes") if name not in listed | recorded}


def _listed(http) -> set[str]:
    body = http.get("/v1/sandboxes", params={"limit": 100}).json()
    items = body if isinstance(body, list) else body.get("items", [])
    return {item["id"] for item in items}


def test_builder_steps_copy_envs_start_command_and_cache(server, sandboxes, tmp_path):
    payload = tmp_path / "payload"
    (payload / "sub").mkdir(parents=True)
    (payload / "hello.txt").write_text("hello from the context\n")
    (payload / "sub" / "deep.txt").write_text("deep\n")
    single = tmp_path / "single.txt"
    single.write_text("single file\n")
    secret = "s3cr3t-" + unique("v")
    name = unique("tpl-steps")

    def builder():
        return (
            Template()
            .from_template("base")
            .run_cmd("mkdir -p /opt/app && echo built-by-step > /opt/app/step.txt")
            .copy(str(payload), "/opt/app/payload/")
            .copy(str(single), "/opt/app/single.txt", user="user", mode="0640")
            .set_workdir("/opt/app")
            .run_cmd("pwd > where.txt && test \"$BUILD_ONLY\" = build-value && printenv API_TOKEN > /dev/null")
            .set_build_envs({"BUILD_ONLY": "build-value"})
            .set_runtime_envs({"RUNTIME_ENV": "runtime-value"})
            .set_start_cmd("sh -c 'echo \"$BUILD_ONLY:$RUNTIME_ENV:${CREATE_ENV:-none}\" >> /tmp/started.txt'")
        )

    logs: list = []
    secrets = [{"id": "API_TOKEN", "value": secret, "source": "value"}]
    first = _build(server, builder(), name, logs=logs, build_secrets=secrets)
    assert first.status.value == "ready"
    assert first.name == name and first.tags == ["default"]
    assert any(entry.kind.value == "cache" for entry in logs), _messages(logs)
    assert secret not in _messages(logs)

    sb = sandboxes.create(template=name, envs={"CREATE_ENV": "create-value"})
    assert sb.files.read("/opt/app/step.txt").strip() == "built-by-step"
    assert sb.files.read("/opt/app/payload/hello.txt").strip() == "hello from the context"
    assert sb.files.read("/opt/app/payload/sub/deep.txt").strip() == "deep"
    stat = sb.commands.run("stat -c '%U %a' /opt/app/single.txt", shell=True)
    assert stat.stdout.strip() == "user 640"
    assert sb.files.read("/opt/app/where.txt").strip() == "/opt/app"
    # The template's working directory and runtime envs; build envs and secrets never reach a sandbox.
    assert sb.commands.run("pwd", shell=True).stdout.strip() == "/opt/app"
    env = sb.commands.run("env", shell=True).stdout
    assert "RUNTIME_ENV=runtime-value" in env
    assert "BUILD_ONLY" not in env and secret not in env
    # Where a step could have left it: the layers' writable parts and the files the build touched.
    dirs = "/opt /etc /root /home /tmp /var /usr/local /workspace"
    leaked = sb.commands.run(f"grep -rl {secret} {dirs} 2>/dev/null | head -1", shell=True)
    assert leaked.stdout.strip() == ""
    # The start command ran once, with runtime and build envs and without the create's envs.
    wait_until(lambda: sb.commands.run("test -s /tmp/started.txt", shell=True).exit_code == 0, 30, what="start command")
    assert sb.files.read("/tmp/started.txt").splitlines() == ["build-value:runtime-value:none"]

    # The same build again is all cache hits and makes the same layers.
    again_logs: list = []
    second = _build(server, builder(), name, logs=again_logs, build_secrets=secrets)
    assert second.status.value == "ready"
    cache = [e for e in again_logs if e.kind.value == "cache"]
    assert cache and all(e.cache_status.value == "hit" for e in cache), _messages(again_logs)
    assert not _build_sandboxes(server)


def test_a_failing_step_fails_the_build_with_its_output_and_lists_nothing(server):
    name = unique("tpl-fail")
    builder = Template().from_template("base").run_cmd("echo about-to-fail; exit 7")
    with pytest.raises(SandboxError) as failure:
        _build(server, builder, name)
    assert "exited with code 7" in str(failure.value)
    assert "about-to-fail" in str(failure.value)
    assert Template.exists(name, api_key=server.key, base_url=server.url) is False
    assert not _build_sandboxes(server)


def test_dockerfile_multi_stage_with_context_copy_and_healthcheck_readiness(server, sandboxes, tmp_path):
    (tmp_path / "app.txt").write_text("from the context\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM nullspace/base AS builder\n"
        "WORKDIR /src\n"
        "RUN echo compiled > artifact.bin\n"
        "FROM nullspace/base\n"
        "ARG GREETING=hi\n"
        "ENV APP_HOME=/srv/app\n"
        "COPY --from=builder /src/artifact.bin $APP_HOME/\n"
        "COPY app.txt $APP_HOME/app.txt\n"
        "RUN echo \"$GREETING\" > $APP_HOME/greeting.txt\n"
        "EXPOSE 8080\n"
        "HEALTHCHECK --interval=1s CMD test -f /tmp/ready\n"
        "CMD [\"sh\", \"-c\", \"touch /tmp/ready; exec sleep infinity\"]\n"
    )
    name = unique("tpl-docker")
    result = _build(server, Template.from_dockerfile(str(tmp_path / "Dockerfile")), name)
    assert result.status.value == "ready"
    sb = sandboxes.create(template=name)
    # create returned only once the HEALTHCHECK (mapped to readiness) held, i.e. after CMD ran
    assert sb.commands.run("test -f /tmp/ready", shell=True).exit_code == 0
    assert sb.files.read("/srv/app/artifact.bin").strip() == "compiled"
    assert sb.files.read("/srv/app/app.txt").strip() == "from the context"
    assert sb.files.read("/srv/app/greeting.txt").strip() == "hi"
    assert "APP_HOME=/srv/app" in sb.commands.run("env", shell=True).stdout
    info = Template.get(name, api_key=server.key, base_url=server.url)
    assert info.id == result.template_id


def test_dockerfile_instructions_the_engine_cannot_run_are_refused_with_their_line(server):
    with server.http() as http:
        resp = http.post(
            "/v1/templates/validate",
            json={"dockerfile": "FROM nullspace/base\nRUN true\nADD https://example.com/x.tgz /x\n"},
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["valid"] is False
    assert any("line 3" in error["message"] for error in body["errors"]), body


def test_readiness_that_never_holds_fails_the_create_and_removes_the_sandbox(server):
    name = unique("tpl-notready")
    with server.http() as http:
        resp = http.post(
            "/v1/templates/build",
            json={
                "base_image": "nullspace/base",
                "name": name,
                "steps": [{"action": "run", "command": "true"}],
                "runtime_config": {"readiness": {"kind": "tcp", "port": 9, "timeout_secs": 2, "interval_ms": 100}},
            },
            timeout=600,
        )
        assert resp.status_code == 200, resp.text
        assert '"kind":"end"' in resp.text.replace(" ", ""), resp.text[-2000:]
        before = _listed(http)
        create = http.post("/v1/sandboxes", json={"template": name}, timeout=120)
    assert create.status_code >= 400, create.text
    assert "readiness" in create.text and "tcp port 9" in create.text
    with server.http() as http:
        after = _listed(http)
    assert after == before


def test_cancel_stops_the_running_step_and_frees_its_sandbox(server):
    name = unique("tpl-cancel")
    # Unique per run: a step that once ran to the end would be a cache hit.
    build = Template.build_in_background(
        Template().from_template("base").run_cmd(f"echo started-long-step; sleep 600; echo {name}"),
        name=name,
        api_key=server.key,
        base_url=server.url,
    )
    # The step's own output line (the step's header line also names the command).
    seen: list = []

    def step_runs() -> bool:
        seen[:] = build.get_status().entries
        return any(e.message == "started-long-step" for e in seen)

    try:
        wait_until(step_runs, 120, what="the step runs")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; log: {[(e.kind.value, e.message) for e in seen]}") from None
    assert _build_sandboxes(server), f"the step runs in a build sandbox: {_messages(seen)}"
    build.cancel(reason="test")
    status = wait_until(
        lambda: (s := build.get_status()).build.status.value in ("cancelled", "error") and s, 60, what="cancelled"
    )
    assert status.build.status.value == "cancelled"
    wait_until(lambda: not _build_sandboxes(server), 30, what="the build sandbox is gone")
    assert Template.exists(name, api_key=server.key, base_url=server.url) is False


def test_a_restart_mid_build_fails_the_build_and_leaves_nothing(server):
    srv = sibling_server(server, "builds", [])
    try:
        name = unique("tpl-restart")
        with srv.http() as http:
            resp = http.post(
                "/v1/templates/builds",
                json={"base_image": "nullspace/base", "name": name, "steps": [{"action": "run", "command": "sleep 600"}]},
            )
            assert resp.status_code == 202, resp.text
            build_id = resp.json()["build_id"]

            def running():
                entries = http.get(f"/v1/templates/builds/{build_id}", params={"offset": 0}).json()["entries"]
                return any(e.get("kind") == "cache" for e in entries)

            wait_until(running, 120, what="the step started")
        srv.restart(kill9=True)
        with srv.http() as http:
            status = http.get(f"/v1/templates/builds/{build_id}", params={"offset": 0}).json()
            assert status["build"]["status"] == "error"
            assert "restarted" in json.dumps(status["build"])
            assert http.get(f"/v1/templates/refs/{name}").status_code == 404
            listed = _listed(http)
        leftovers = {n for n in os.listdir(srv.data_dir / "sandboxes") if n not in listed}
        assert not leftovers
    finally:
        srv.stop()
        srv.remove_network()


def test_a_deleted_template_keeps_its_layers_while_a_sandbox_uses_it(server, sandboxes):
    name = unique("tpl-delete")
    result = _build(server, Template().from_template("base").run_cmd("echo kept > /kept.txt"), name)
    sb = sandboxes.create(template=name)
    Template.delete(name, api_key=server.key, base_url=server.url)
    assert Template.exists(name, api_key=server.key, base_url=server.url) is False
    # The sandbox still runs on the layers, and hibernate + resume still find them.
    assert sb.files.read("/kept.txt").strip() == "kept"
    sb.hibernate()
    resumed = Sandbox.connect(sb.id, api_key=server.key, base_url=server.url)
    assert resumed.files.read("/kept.txt").strip() == "kept"
    assert result.template_id
