"""Under `--runtime runsc` (gVisor), hibernate, resume and fork keep running processes and their memory, not
only the filesystem. This module starts its own server with `--runtime runsc` on a data dir beside the main
one, whose `templates` is a symlink to the main data dir's (built by the session server).

The proof is a Python process holding a counter and a random token that exist only in its memory: it writes
them to a file only when asked (SIGUSR1). After resume (and in both parent and child after a fork) the same
pid answers with the same token and a counter that went on from where it was, not from 0.
"""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import runsc_installed, wait_until
from nullspace import Sandbox, Snapshot

COUNTER = r"""
import os, signal, time
token = os.urandom(8).hex()  # lives only in memory
n = 0
def dump(*_):
    tmp = '/workspace/counter.tmp'
    with open(tmp, 'w') as fh:
        fh.write(f'{os.getpid()} {token} {n}')
    os.rename(tmp, '/workspace/counter.txt')
signal.signal(signal.SIGUSR1, dump)
open('/workspace/counter.ready', 'w').close()  # SIGUSR1 would kill it before this point
while True:
    n += 1
    time.sleep(0.01)
"""


pytestmark = pytest.mark.skipif(not runsc_installed(), reason="runsc (gVisor) is not installed on this host")


@pytest.fixture()
def created(runsc_server):
    ids: list[str] = []
    yield ids
    with runsc_server.http() as http:
        for sandbox_id in ids:
            http.delete(f"/v1/sandboxes/{sandbox_id}")


def start_counter(sb: Sandbox) -> int:
    sb.files.write("/workspace/counter.py", COUNTER)
    pid = sb.commands.run("python3", ["/workspace/counter.py"], background=True).pid
    wait_until(lambda: sb.files.exists("/workspace/counter.ready"), timeout=10, what="the counter to start")
    wait_until(lambda: read_counter(sb, pid), timeout=10, what="the counter to answer")
    return pid


def read_counter(sb: Sandbox, pid: int) -> tuple[int, str, int] | None:
    """(pid, token, counter) as the process with `pid` reports them now; None when it does not answer."""
    script = (
        f"rm -f /workspace/counter.txt; kill -USR1 {pid} || exit 3; "
        "for i in $(seq 100); do [ -f /workspace/counter.txt ] && cat /workspace/counter.txt && exit 0; sleep 0.02; done; exit 4"
    )
    result = sb.commands.run("sh", ["-c", script])
    if result.exit_code != 0:
        return None
    got_pid, token, value = result.stdout.split()
    return int(got_pid), token, int(value)


def timed(what: str, fn):
    started = time.monotonic()
    value = fn()
    print(f"runsc {what}: {(time.monotonic() - started) * 1000:.0f} ms")
    return value


def test_healthz_reports_memory_snapshots(runsc_server):
    body = httpx.get(f"{runsc_server.url}/healthz", timeout=10).json()
    assert body["runtime"] == "runsc"
    assert body["memory_snapshots"] is True


def test_hibernate_resume_keeps_the_running_process_and_its_memory(runsc_server, created):
    sb = runsc_server.create()
    created.append(sb.id)
    pid = start_counter(sb)
    time.sleep(0.3)
    _, token, before = read_counter(sb, pid)
    assert before > 0
    snap = timed("hibernate", sb.hibernate)
    resumed = timed("resume", lambda: Sandbox.resume(snap.id, api_key=runsc_server.key, base_url=runsc_server.url))
    created.append(resumed.id)
    assert resumed.id != sb.id
    after = read_counter(resumed, pid)
    assert after is not None, "the counter process is not running after resume"
    assert after[0] == pid and after[1] == token, "the same process (pid and in-memory token) continues"
    assert after[2] >= before, f"the counter went on from {before}, it did not restart: {after[2]}"
    time.sleep(0.2)
    assert read_counter(resumed, pid)[2] > after[2], "and it keeps counting"
    # The guest itself works as usual in the restored sandbox.
    assert resumed.commands.run("echo", ["ok"]).stdout == "ok\n"
    resumed.files.write("/workspace/after-resume.txt", "x")
    assert resumed.files.read("/workspace/after-resume.txt") == "x"

    # The memory image lives beside the layer and goes with it once nothing references the layer.
    snapshots = runsc_server.data_dir / "snapshots"
    assert (snapshots / f"{snap.id}.mem").is_dir() and (snapshots / snap.id).is_dir()
    assert not any((snapshots / snap.id).rglob("checkpoint.img")), "the image is not inside the layer"
    resumed.kill()
    created.remove(resumed.id)
    Snapshot.delete(snap.id, api_key=runsc_server.key, base_url=runsc_server.url)
    wait_until(lambda: not (snapshots / f"{snap.id}.mem").exists(), timeout=10, what="the memory image to go")
    assert not (snapshots / snap.id).exists()


def test_fork_continues_the_same_memory_in_parent_and_child(runsc_server, created):
    parent = runsc_server.create()
    created.append(parent.id)
    pid = start_counter(parent)
    parent.files.write("/workspace/shared.txt", "before")
    time.sleep(0.3)
    _, token, before = read_counter(parent, pid)
    child = timed("fork", parent.fork)
    created.append(child.id)

    in_parent = read_counter(parent, pid)
    in_child = read_counter(child, pid)
    assert in_parent is not None and in_child is not None, "the counter runs on in parent and child"
    assert in_parent[:2] == (pid, token) and in_child[:2] == (pid, token), "both continue the same memory"
    assert in_parent[2] >= before and in_child[2] >= before, "neither restarted from 0"

    # Independent from here on: files and processes.
    parent.files.write("/workspace/shared.txt", "parent")
    child.files.write("/workspace/shared.txt", "child")
    assert parent.files.read("/workspace/shared.txt") == "parent"
    assert child.files.read("/workspace/shared.txt") == "child"
    assert child.commands.run("kill", ["-9", str(pid)]).exit_code == 0
    wait_until(lambda: read_counter(child, pid) is None, timeout=10, what="the child's counter to stop")
    still = read_counter(parent, pid)
    assert still is not None and still[2] > in_parent[2], "the parent's counter is untouched by the child"

    # The parent's record stacks the fork layer below its new upper dir; a second fork works too.
    grandchild = timed("second fork", parent.fork)
    created.append(grandchild.id)
    assert read_counter(grandchild, pid)[1] == token
    assert grandchild.files.read("/workspace/shared.txt") == "parent"
