"""Commands in a sandbox through the official client: argv and shell, exit codes, env, cwd, user,
timeouts, background processes (logs, stdin, kill), streaming over WebSocket, the process list."""

from __future__ import annotations

import time

import pytest

from conftest import wait_until
from nullspace import SandboxError


def test_argv_is_not_shell_parsed(sandbox):
    result = sandbox.commands.run("echo", ["hello world", "$HOME", "a;b", "*"])
    assert result.exit_code == 0
    assert result.stdout == "hello world $HOME a;b *\n"
    assert result.stderr == ""


def test_shell_command(sandbox):
    result = sandbox.commands.run("echo $((6*7)) | tr 4 X; echo err >&2", shell=True)
    assert result.exit_code == 0
    assert result.stdout == "X2\n"
    assert result.stderr == "err\n"


def test_exit_code_passthrough(sandbox):
    assert sandbox.commands.run("exit 42", shell=True).exit_code == 42
    assert sandbox.commands.run("false").exit_code == 1
    missing = None
    try:
        missing = sandbox.commands.run("/no/such/binary-e2e")
    except SandboxError:
        pass  # an error for a missing program is acceptable; a success is not
    if missing is not None:
        assert missing.exit_code != 0


def test_env(sandbox):
    result = sandbox.commands.run("printenv", ["E2E_ONE"], envs={"E2E_ONE": "1 two", "E2E_OTHER": "x"})
    assert result.stdout == "1 two\n"
    result = sandbox.commands.run("echo \"$E2E_ONE|$E2E_OTHER\"", shell=True, envs={"E2E_ONE": "a", "E2E_OTHER": "b"})
    assert result.stdout == "a|b\n"
    # per-command envs do not leak into the next command
    assert sandbox.commands.run("printenv E2E_ONE || echo unset", shell=True).stdout == "unset\n"


def test_cwd(sandbox):
    assert sandbox.commands.run("pwd", cwd="/tmp").stdout == "/tmp\n"
    sandbox.commands.run("mkdir", ["-p", "/workspace/e2e cwd"])
    assert sandbox.commands.run("pwd", cwd="/workspace/e2e cwd").stdout == "/workspace/e2e cwd\n"


def test_user(server, sandbox):
    # The client's commands.run has no `user` argument; the exec route takes one.
    with server.http() as http:
        resp = http.post(f"/v1/sandboxes/{sandbox.id}/exec", json={"command": "id", "args": ["-un"], "user": "user"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["stdout"] == "user\n", resp.json()
        home = http.post(f"/v1/sandboxes/{sandbox.id}/exec", json={"command": "echo $HOME", "shell": True, "user": "user"})
        assert home.json()["stdout"] == "/home/user\n", home.json()
        root = http.post(f"/v1/sandboxes/{sandbox.id}/exec", json={"command": "id", "args": ["-un"], "user": "root"})
        assert root.json()["stdout"] == "root\n", root.json()


def test_timeout_kills_long_command(sandbox):
    marker = f"/tmp/e2e-timeout-{time.time_ns()}"
    start = time.monotonic()
    result = None
    try:
        result = sandbox.commands.run(f"sleep 60; touch {marker}", shell=True, timeout=2)
    except SandboxError:
        pass  # a timeout error is an acceptable report
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"timeout=2 command returned after {elapsed:.1f}s"
    if result is not None:
        assert result.exit_code != 0
    # the command was really killed, not left running
    count = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 60 $' || true"
    wait_until(lambda: sandbox.commands.run(count, shell=True).stdout.strip() == "0", 5,
               what="the timed-out command to be gone")


def test_background_logs_kill(sandbox):
    cmd = sandbox.commands.run("echo started; echo oops >&2; exec sleep 300", shell=True, background=True)
    pid = cmd.pid
    assert isinstance(pid, int) and pid > 0

    logs = wait_until(lambda: (lambda l: l if "started" in l.stdout else None)(cmd.get_logs()), 10, what="started in logs")
    assert logs.stdout == "started\n"
    assert "oops" in logs.stderr
    assert "started" in logs.output and "oops" in logs.output
    assert logs.exit_code is None

    procs = {p.pid: p for p in sandbox.commands.list()}
    assert pid in procs and procs[pid].running is True, procs

    cmd.kill()

    def stopped():
        entry = {p.pid: p for p in sandbox.commands.list()}.get(pid)
        return entry is not None and entry.running is False

    wait_until(stopped, 10, what=f"pid {pid} listed with running=false after kill")
    final = wait_until(lambda: (lambda l: l if l.exit_code is not None else None)(sandbox.commands.get_logs(pid)), 10,
                       what="exit code after kill")
    assert final.exit_code != 0
    assert final.stdout == "started\n"


def test_background_exits_by_itself(sandbox):
    cmd = sandbox.commands.run("echo done; exit 5", shell=True, background=True)
    logs = wait_until(lambda: (lambda l: l if l.exit_code is not None else None)(cmd.get_logs()), 10, what="exit")
    assert logs.exit_code == 5
    assert logs.stdout == "done\n"


def test_send_stdin(sandbox):
    cmd = sandbox.commands.run("head", ["-n1"], background=True)
    sandbox.commands.send_stdin(cmd.pid, "hello from stdin\n")
    logs = wait_until(lambda: (lambda l: l if l.exit_code is not None else None)(cmd.get_logs()), 10,
                      what="head -n1 to exit after stdin")
    assert logs.exit_code == 0
    assert logs.stdout == "hello from stdin\n"

    cat = sandbox.commands.run("cat", background=True)
    sandbox.commands.send_stdin(cat.pid, "one\n")
    sandbox.commands.send_stdin(cat.pid, "two\n")
    wait_until(lambda: cat.get_logs().stdout == "one\ntwo\n", 10, what="cat to echo both stdin writes")
    cat.kill()


def test_streaming_on_stdout(sandbox):
    chunks: list[tuple[float, str]] = []
    errs: list[str] = []
    result = sandbox.commands.run(
        "for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done; echo bye >&2",
        shell=True,
        on_stdout=lambda data: chunks.append((time.monotonic(), data)),
        on_stderr=errs.append,
    )
    finished = time.monotonic()
    assert result.exit_code == 0
    text = "".join(d for _, d in chunks)
    assert text == "line1\nline2\nline3\nline4\nline5\n"
    assert result.stdout == text
    assert "".join(errs) == "bye\n"
    # output arrives while the command runs, not all at the end
    assert len(chunks) >= 2, chunks
    assert finished - chunks[0][0] > 0.6, "first stdout chunk only arrived at the end (not streamed)"

    failing = sandbox.commands.run("echo x; exit 7", shell=True, on_stdout=lambda _d: None)
    assert failing.exit_code == 7


def test_process_list(sandbox):
    cmd = sandbox.commands.run("sleep", ["123"], background=True)
    try:
        procs = sandbox.commands.list()
        assert procs, "process list is empty"
        mine = [p for p in procs if p.pid == cmd.pid]
        assert mine and mine[0].running and "sleep 123" in mine[0].command, procs
    finally:
        cmd.kill()
