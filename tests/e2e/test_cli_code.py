"""The `nullspace sandbox code …` CLI against a real code-interpreter sandbox (created with the official
client): `code run` printing stdout and a result, a raised ValueError (exit 1, name on stderr), bash, code
from stdin, `--env`, `--timeout`'s TimeoutError, `--json` events, contexts (create, run in one, restart
clears it, list, remove), a matplotlib bar chart noted with its artifact that `artifact
list|get|download|delete` then handle (the download is a PNG), queued runs (`run-job
create|wait|get|list`, a failing one's exit 1), and the hint for a sandbox without a code interpreter."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import RUN_ID, wait_for_builtin_template

TEMPLATE = "code-interpreter"
# The session server builds the code-interpreter template in the background once it started (minutes on
# a fresh data dir, seconds when its layers are cached).
TEMPLATE_WAIT_SECS = 20 * 60
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def code_sandbox(server, module_sandboxes):
    wait_for_builtin_template(server, TEMPLATE, timeout=TEMPLATE_WAIT_SECS)
    return module_sandboxes.create(template=TEMPLATE, metadata={"e2e": RUN_ID}).id


def code(cli, *args: str, json_flag: bool = False, stdin: str | None = None, timeout: float = 300):
    """`nullspace sandbox code ARGS…` (human output unless json_flag)."""
    argv = [cli.srv.binary, "sandbox", "code", *args, *(["--json"] if json_flag else [])]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=cli.env(), timeout=timeout)


def ok(proc: subprocess.CompletedProcess[str]):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def events(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_run_prints_output_and_results(cli, code_sandbox):
    proc = ok(code(cli, "run", code_sandbox, "print('hello-cli')\n6 * 7"))
    assert proc.stdout.splitlines() == ["hello-cli", "42"], proc.stdout

    streamed = events(ok(code(cli, "run", code_sandbox, "print('json-cli')\n40 + 2", json_flag=True)))
    types = [e["type"] for e in streamed]
    assert {"type": "stdout", "text": "json-cli\n"}.items() <= next(e for e in streamed if e["type"] == "stdout").items()
    main = [e for e in streamed if e["type"] == "result" and e.get("is_main_result")]
    assert [r["text"] for r in main] == ["42"], streamed
    assert types[-1] == "number_of_executions", types

    from_stdin = ok(code(cli, "run", code_sandbox, "-", stdin="import sys\nprint('from-stdin', sys.version_info[0])\n"))
    assert from_stdin.stdout == "from-stdin 3\n", from_stdin.stdout

    bash = ok(code(cli, "run", code_sandbox, "echo from-bash-$((6 * 7))", "--language", "bash"))
    assert "from-bash-42" in bash.stdout, bash.stdout

    envs = ok(code(cli, "run", code_sandbox, "import os; print(os.environ.get('CLI_ENV'))", "--env", "CLI_ENV=only-here"))
    assert envs.stdout == "only-here\n", envs.stdout


def test_a_raised_error_exits_1_with_its_name_on_stderr(cli, code_sandbox):
    proc = code(cli, "run", code_sandbox, "print('before')\nraise ValueError('boom-cli')")
    assert proc.returncode == 1, proc
    assert proc.stdout == "before\n", proc.stdout
    assert "ValueError" in proc.stderr and "boom-cli" in proc.stderr, proc.stderr
    assert "\x1b[" not in proc.stderr, "colour codes written to a pipe"

    as_json = code(cli, "run", code_sandbox, "raise ValueError('boom-json')", json_flag=True)
    assert as_json.returncode == 1, as_json
    errors = [e for e in events(as_json) if e["type"] == "error"]
    assert [(e["name"], "boom-json" in e["value"]) for e in errors] == [("ValueError", True)], as_json.stdout

    timed_out = code(cli, "run", code_sandbox, "import time; time.sleep(30)", "--timeout", "1")
    assert timed_out.returncode == 1 and "TimeoutError" in timed_out.stderr, timed_out


def test_contexts_keep_state_until_restarted(cli, code_sandbox):
    context = json.loads(ok(code(cli, "context", "create", code_sandbox, "--language", "python", json_flag=True)).stdout)
    assert context["id"].startswith("ctx_") and context["language"] == "python", context
    ctx = context["id"]
    try:
        ok(code(cli, "run", code_sandbox, "cli_state = 41", "--context", ctx))
        assert ok(code(cli, "run", code_sandbox, "print(cli_state + 1)", "--context", ctx)).stdout == "42\n"
        # Another context never sees it.
        unseen = code(cli, "run", code_sandbox, "print(cli_state)")
        assert unseen.returncode == 1 and "NameError" in unseen.stderr, unseen

        listed = json.loads(ok(code(cli, "context", "list", code_sandbox, json_flag=True)).stdout)
        assert ctx in {c["id"] for c in listed}, listed
        table = ok(code(cli, "context", "list", code_sandbox))
        assert table.stdout.startswith("ID") and ctx in table.stdout, table.stdout

        assert ok(code(cli, "context", "restart", code_sandbox, ctx)).stdout == f"restarted {ctx}\n"
        cleared = code(cli, "run", code_sandbox, "print(cli_state)", "--context", ctx)
        assert cleared.returncode == 1 and "NameError" in cleared.stderr, cleared
    finally:
        ok(code(cli, "context", "remove", code_sandbox, ctx))
    listed = json.loads(ok(code(cli, "context", "list", code_sandbox, json_flag=True)).stdout)
    assert ctx not in {c["id"] for c in listed}, listed

    gone = code(cli, "run", code_sandbox, "1", "--context", ctx)
    assert gone.returncode == 1, gone
    assert f"hint: list the contexts with `nullspace sandbox code context list {code_sandbox}`" in gone.stderr, gone.stderr


CHART = """
import matplotlib.pyplot as plt
plt.figure()
plt.bar(['A', 'B', 'C'], [3, 5, 2])
plt.title('CLI Revenue')
plt.show()
"""


def test_a_chart_becomes_an_artifact_to_list_download_and_delete(cli, code_sandbox, tmp_path):
    proc = ok(code(cli, "run", code_sandbox, CHART))
    assert "[chart: bar 'CLI Revenue', 3 elements]" in proc.stdout, proc.stdout
    found = re.findall(r"\[image/png [0-9.]+ (?:B|KiB|MiB) → artifact (art_\S+)\]", proc.stdout)
    assert len(found) == 1, proc.stdout
    artifact = found[0]

    page = json.loads(ok(code(cli, "artifact", "list", code_sandbox, "--kind", "image", json_flag=True)).stdout)
    listed = {a["id"]: a for a in page["items"]}
    assert artifact in listed and listed[artifact]["mime_type"] == "image/png", page
    assert artifact in ok(code(cli, "artifact", "list", code_sandbox)).stdout

    info = json.loads(ok(code(cli, "artifact", "get", code_sandbox, artifact, json_flag=True)).stdout)
    assert info["id"] == artifact and info["kind"] == "image" and info["size_bytes"] > 0, info

    target = tmp_path / "chart.png"
    saved = json.loads(
        ok(code(cli, "artifact", "download", code_sandbox, artifact, "--output", str(target), json_flag=True)).stdout
    )
    data = target.read_bytes()
    assert data.startswith(PNG_MAGIC), data[:16]
    assert saved["bytes_downloaded"] == len(data) == info["size_bytes"], saved

    again = code(cli, "artifact", "download", code_sandbox, artifact, "--output", str(target))
    assert again.returncode == 1 and "--force" in again.stderr, again
    ok(code(cli, "artifact", "download", code_sandbox, artifact, "--output", str(target), "--force"))

    assert ok(code(cli, "artifact", "delete", code_sandbox, artifact)).stdout == f"deleted {artifact}\n"
    page = json.loads(ok(code(cli, "artifact", "list", code_sandbox, json_flag=True)).stdout)
    assert artifact not in {a["id"] for a in page["items"]}, page
    gone = code(cli, "artifact", "get", code_sandbox, artifact)
    assert gone.returncode == 1 and "code artifact list" in gone.stderr, gone


def test_run_jobs_are_queued_and_waited_for(cli, code_sandbox):
    ctx = json.loads(ok(code(cli, "context", "create", code_sandbox, json_flag=True)).stdout)["id"]
    try:
        run = json.loads(
            ok(code(cli, "run-job", "create", code_sandbox, "print('job-out')\n20 + 22", "--context", ctx, json_flag=True)).stdout
        )
        assert run["id"].startswith("run_") and run["context_id"] == ctx, run
        waited = ok(code(cli, "run-job", "wait", code_sandbox, run["id"]))
        assert waited.stdout == "job-out\n42\n", waited.stdout
        assert f"{run['id']} succeeded" in waited.stderr, waited.stderr

        got = json.loads(ok(code(cli, "run-job", "get", code_sandbox, run["id"], json_flag=True)).stdout)
        assert got["status"] == "succeeded" and got["execution"]["logs"]["stdout"] == ["job-out\n"], got
        page = json.loads(ok(code(cli, "run-job", "list", code_sandbox, "--context", ctx, json_flag=True)).stdout)
        assert run["id"] in {r["id"] for r in page["items"]}, page

        failing = ok(code(cli, "run-job", "create", code_sandbox, "raise KeyError('job-boom')", "--context", ctx)).stdout.strip()
        assert failing.startswith("run_"), failing
        failed = code(cli, "run-job", "wait", code_sandbox, failing)
        assert failed.returncode == 1, failed
        assert "KeyError" in failed.stderr and f"{failing} failed" in failed.stderr, failed.stderr

        missing = code(cli, "run-job", "get", code_sandbox, "run_nope")
        assert missing.returncode == 1 and "code run-job list" in missing.stderr, missing
    finally:
        code(cli, "context", "remove", code_sandbox, ctx)


def test_a_sandbox_without_a_code_interpreter_gets_a_hint(cli, sandboxes):
    plain = sandboxes.create(metadata={"e2e": RUN_ID}).id
    proc = code(cli, "run", plain, "1 + 1")
    assert proc.returncode == 1, proc
    assert "hint:" in proc.stderr and "--template code-interpreter" in proc.stderr, proc.stderr
    as_json = code(cli, "context", "list", plain, json_flag=True)
    assert as_json.returncode == 1, as_json
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "feature_unavailable" and "--template code-interpreter" in error["hint"], error
