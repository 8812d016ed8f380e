"""Reliability of the single-host appliance: server restarts (SIGTERM and kill -9) lose nothing, a guest
that died while the server was down is reported gone and cleaned up, create/kill cycles leak nothing on
the host, and fork bombs / memory hogs stay inside their sandbox."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import (
    RUN_ID,
    comparable,
    host_counts,
    host_snapshot,
    restrict,
    sandbox_processes,
    snapshot_mentions,
    unique,
    wait_until,
)
from nullspace import NotFoundError, Sandbox, SandboxError, SandboxStatus
from nullspace.types import SandboxQuery


def _gone(server, sandbox_id: str) -> bool:
    try:
        info = Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url)
    except NotFoundError:
        return True
    return info.status in (SandboxStatus.DESTROYED, SandboxStatus.ERROR)


def _listed_running(server, sandbox_id: str) -> bool:
    for info in Sandbox.list(api_key=server.key, base_url=server.url):
        if info.id == sandbox_id:
            return info.status == SandboxStatus.RUNNING
    return False


@pytest.mark.parametrize("kill9", [False, True], ids=["sigterm", "kill9"])
def test_restart_keeps_running_sandboxes(server, sandboxes, kill9):
    sb = sandboxes.create(metadata={"restart": RUN_ID})
    content = unique("survives")
    sb.files.write("/workspace/restart.txt", content)
    bg = sb.commands.run("sleep", ["1000"], background=True)

    server.restart(kill9=kill9)

    again = server.connect(sb.id)
    assert again.get_info().status == SandboxStatus.RUNNING
    assert _listed_running(server, sb.id)
    result = again.commands.run("echo", ["after restart"])
    assert result.exit_code == 0 and result.stdout == "after restart\n"
    assert again.files.read("/workspace/restart.txt") == content
    # a process started before the restart still runs (the guest was not restarted)
    procs = {p.pid: p for p in again.commands.list()}
    assert bg.pid in procs and procs[bg.pid].running, procs
    # the sandbox still can be killed cleanly after the restart
    again.kill()
    assert _gone(server, sb.id)
    wait_until(lambda: snapshot_mentions(host_snapshot(server.data_dir), sb.id) == {}, 15,
               what=f"host resources of {sb.id} released")


def test_guest_died_while_server_down(server, sandboxes):
    sb = sandboxes.create(metadata={"guest_died": RUN_ID})
    keeper = sandboxes.create(metadata={"guest_died": RUN_ID, "role": "keeper"})
    assert sb.commands.run("true").exit_code == 0
    pids = sandbox_processes(sb.id)
    assert pids, f"no host process found in cgroup nullspace/{sb.id}"

    server.stop()
    try:
        guest = [pid for pid in sandbox_processes(sb.id) if "guestd" in _cmdline(pid)]
        assert guest, f"no guestd process in {sb.id}: {[_cmdline(p) for p in sandbox_processes(sb.id)]}"
        for pid in guest:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not [p for p in sandbox_processes(sb.id) if "guestd" in _cmdline(p)], 10,
                   what=f"guestd of {sb.id} to die")
    finally:
        server.start(timeout=120)

    wait_until(lambda: _gone(server, sb.id), 20, interval=0.5, what=f"{sb.id} reported gone after restart")
    assert sb.id not in {i.id for i in Sandbox.list(api_key=server.key, base_url=server.url)}
    wait_until(lambda: snapshot_mentions(host_snapshot(server.data_dir), sb.id) == {}, 20,
               what=f"everything of dead {sb.id} removed from the host")
    # the other sandbox was not collateral damage
    assert server.connect(keeper.id).commands.run("echo", ["ok"]).stdout == "ok\n"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# The campaign's long mode: NULLSPACE_RELIABILITY_CYCLES=10000 (the note's figures); CI runs 100.
CYCLES = int(os.environ.get("NULLSPACE_RELIABILITY_CYCLES", "100"))


def test_create_kill_cycles_leak_nothing(server):
    before_raw = host_snapshot(server.data_dir)
    counts_before = host_counts(server.data_dir, server.bridge)
    errors: list[str] = []
    started = time.monotonic()

    def cycle(i: int) -> str:
        sb = Sandbox.create(api_key=server.key, base_url=server.url, timeout=300, metadata={"cycle": RUN_ID})
        try:
            if i % 10 == 0:  # every tenth cycle also runs a command: the exec path's resources are counted too
                assert sb.commands.run("true").exit_code == 0
            return sb.id
        finally:
            sb.kill()

    ids = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(cycle, i) for i in range(CYCLES)]
        for fut in futures:
            try:
                ids.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - report every failure, not just the first
                errors.append(repr(exc))
    elapsed = time.monotonic() - started
    print(f"{CYCLES} create/kill cycles in {elapsed:.1f} s ({CYCLES / elapsed:.1f}/s), {len(errors)} failed")
    assert not errors, f"{len(errors)} of {CYCLES} create/kill cycles failed: {errors[:5]}"
    assert len(set(ids)) == CYCLES

    ours = server.known_ids() | set(ids)
    before = comparable(restrict(before_raw, ours))

    def current():
        return comparable(restrict(host_snapshot(server.data_dir), ours))

    try:
        wait_until(lambda: current() == before, 10, what="host snapshot to return to its state before the cycles")
    except AssertionError:
        after = current()
        diff = {k: {"added": sorted(after[k] - before[k])[:10], "removed": sorted(before[k] - after[k])[:10]}
                for k in before if after[k] != before[k]}
        raise AssertionError(f"create/kill cycles leaked host resources: {diff}")
    snap = host_snapshot(server.data_dir)
    for sandbox_id in ids:
        assert snapshot_mentions(snap, sandbox_id) == {}, sandbox_id
    # Host-global counts of this server's resources (netns, veths, nft rules, loop devices, store rows…)
    # are back to where they started.
    def counts_settled() -> bool:
        return host_counts(server.data_dir, server.bridge) == counts_before

    try:
        wait_until(counts_settled, 10, what="resource counts to return to their start")
    except AssertionError:
        raise AssertionError(f"counts before {counts_before}, after {host_counts(server.data_dir, server.bridge)}")
    print(f"resource counts before and after the cycles: {counts_before}")
    leftover = [i.id for i in Sandbox.list(query=SandboxQuery(metadata={"cycle": RUN_ID}),
                                           api_key=server.key, base_url=server.url)]
    assert leftover == []


def _cgroup_file(sandbox_id: str, controller: str, v1_name: str, v2_name: str) -> str | None:
    for path in (f"/sys/fs/cgroup/{controller}/nullspace/{sandbox_id}/{v1_name}",
                 f"/sys/fs/cgroup/nullspace/{sandbox_id}/{v2_name}"):
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return None


def test_fork_bomb_is_contained(server, sandboxes):
    bomb = sandboxes.create(metadata={"bomb": RUN_ID})
    bystander = sandboxes.create(metadata={"bomb": RUN_ID, "role": "bystander"})
    assert _cgroup_file(bomb.id, "pids", "pids.max", "pids.max") == "1024"

    try:
        bomb.commands.run("bash", ["-c", ":(){ :|:& };:"], timeout=5)
    except SandboxError:
        pass  # the exec may fail or time out; what matters is everything else

    start = time.monotonic()
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200
    result = bystander.commands.run("echo", ["still fine"], timeout=10)
    assert result.stdout == "still fine\n"
    assert time.monotonic() - start < 10, "server/bystander slow while a fork bomb runs"
    count = len(sandbox_processes(bomb.id))
    assert count <= 1100, f"fork bomb has {count} processes, over the 1024 pids limit"
    events = _cgroup_file(bomb.id, "pids", "pids.events", "pids.events") or ""
    hits = int(events.split()[-1]) if events.startswith("max") else 0
    assert hits > 0, f"the fork bomb never reached the pids limit (pids.events: {events!r}); test did not bomb"

    bomb.kill()
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(bomb.id, api_key=server.key, base_url=server.url)
    wait_until(lambda: snapshot_mentions(host_snapshot(server.data_dir), bomb.id) == {}, 30,
               what="fork-bomb sandbox fully removed from the host")
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert bystander.commands.run("echo", ["ok"]).stdout == "ok\n"


def test_memory_hog_is_contained(server, sandboxes):
    sb = sandboxes.create(memory_mb=256, metadata={"hog": RUN_ID})
    limit = _cgroup_file(sb.id, "memory", "memory.limit_in_bytes", "memory.max")
    assert limit is not None and int(limit) <= 256 * 1024 * 1024, limit

    failed = False
    try:
        result = sb.commands.run("python3", ["-c", "a = bytearray(2 * 1024**3); print('allocated')"], timeout=60)
        failed = result.exit_code != 0
        assert "allocated" not in result.stdout
    except SandboxError:
        failed = True
    assert failed, "a 2 GiB allocation succeeded in a 256 MiB sandbox"

    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    # the sandbox itself keeps serving after its process was OOM-killed
    assert sb.commands.run("echo", ["alive"]).stdout == "alive\n"
    small = sb.commands.run("python3", ["-c", "a = bytearray(32 * 1024**2); print(len(a))"])
    assert small.stdout.strip() == str(32 * 1024**2)
