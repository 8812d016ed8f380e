"""State over time with the official client: hibernate, resume, snapshots, fork, lifecycle events, and
what a crash in the middle of a hibernate leaves behind."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from conftest import RUN_ID, unique, wait_until
from nullspace import NotFoundError, Sandbox, SandboxError, SandboxStatus, Snapshot
from nullspace.lifecycle import Lifecycle


def _value(item) -> str:
    return getattr(item, "value", item)


def _status(server, sandbox_id: str):
    try:
        return Sandbox.get_info_by_id(sandbox_id, api_key=server.key, base_url=server.url).status
    except NotFoundError:
        return None


def test_hibernate_resume_keeps_files_envs_metadata_cwd_and_modes(server, sandboxes):
    sb = sandboxes.create(envs={"KEEP": "yes"}, metadata={"run": RUN_ID, "n": 7}, cwd="/srv/app")
    marker = unique("state")
    sb.files.write("/srv/app/data.txt", marker)
    sb.files.set_permissions("/srv/app/data.txt", "0640")
    sb.files.remove("/etc/motd") if sb.files.exists("/etc/motd") else None
    snap = sb.hibernate()
    assert snap.sandbox_id == sb.id and snap.size_bytes > 0
    info = Sandbox.get_info_by_id(sb.id, api_key=server.key, base_url=server.url)
    assert info.status == SandboxStatus.PAUSED and info.snapshot_id == snap.id
    with pytest.raises(SandboxError):
        sb.commands.run("true")  # nothing runs while paused

    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.id != sb.id and resumed.id.startswith("sb_")
    assert resumed.files.read("/srv/app/data.txt") == marker
    assert resumed.files.get_info("/srv/app/data.txt").mode == "0640"
    assert resumed.commands.run("sh", ["-c", "echo $KEEP; pwd"]).stdout == "yes\n/srv/app\n"
    assert not resumed.files.exists("/etc/motd"), "a deletion (overlay whiteout) survives the snapshot"
    assert resumed.get_info().metadata == {"run": RUN_ID, "n": 7}
    assert _status(server, sb.id) is None, "the paused alias is gone after resume"


def test_fork_children_are_independent(server, sandboxes):
    parent = sandboxes.create(metadata={"run": RUN_ID})
    parent.files.write("/workspace/shared.txt", "before")
    children = []
    for _ in range(3):
        child = parent.fork()
        sandboxes.created.append((child.id, server.key))
        children.append(child)
    parent.files.write("/workspace/shared.txt", "parent-after")
    for index, child in enumerate(children):
        assert child.files.read("/workspace/shared.txt") == "before"
        child.files.write("/workspace/shared.txt", f"child-{index}")
    assert parent.files.read("/workspace/shared.txt") == "parent-after"
    assert [c.files.read("/workspace/shared.txt") for c in children] == ["child-0", "child-1", "child-2"]
    grandchild = children[0].fork()
    sandboxes.created.append((grandchild.id, server.key))
    assert grandchild.files.read("/workspace/shared.txt") == "child-0"


def test_snapshot_keeps_running_and_seeds_independent_sandboxes(server, sandboxes):
    sb = sandboxes.create(metadata={"run": RUN_ID, "kind": "snapshot-source"})
    sb.files.write("/workspace/seed.txt", "seed")
    snap = sb.create_snapshot()
    assert sb.commands.run("true").exit_code == 0, "the source keeps running"
    listed = [s.id for s in Snapshot.list(sandbox_id=sb.id, api_key=server.key, base_url=server.url)]
    assert snap.id in listed
    copies = []
    for _ in range(2):
        copy = Sandbox.create(snapshot_id=snap.id, api_key=server.key, base_url=server.url)
        sandboxes.created.append((copy.id, server.key))
        copies.append(copy)
    copies[0].files.write("/workspace/seed.txt", "changed")
    assert copies[1].files.read("/workspace/seed.txt") == "seed"
    assert sb.files.read("/workspace/seed.txt") == "seed"
    Snapshot.delete(snap.id, api_key=server.key, base_url=server.url)
    with pytest.raises(NotFoundError):
        Snapshot.get(snap.id, api_key=server.key, base_url=server.url)
    # sandboxes created from a deleted snapshot keep working: their layers live as long as they do
    assert copies[1].files.read("/workspace/seed.txt") == "seed"


def test_kill_of_a_paused_sandbox_deletes_its_snapshot(server, sandboxes):
    sb = sandboxes.create()
    snap = sb.hibernate()
    Sandbox.kill_by_id(sb.id, api_key=server.key, base_url=server.url)
    assert _status(server, sb.id) is None
    with pytest.raises(NotFoundError):
        Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)


def test_lifecycle_events_are_listed_in_order_and_streamed(server, sandboxes):
    sb = sandboxes.create()
    lifecycle = Lifecycle(api_key=server.key, base_url=server.url)
    received: list[tuple[str, str]] = []

    def watch() -> None:
        for event in lifecycle.stream_events(sandbox_id=sb.id, live_only=True):
            received.append((_value(event.operation), _value(event.status)))
            if received[-1] == ("destroy", "succeeded"):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(1.0)
    sb.set_timeout(120)
    sb.kill()
    watcher.join(timeout=20)
    assert not watcher.is_alive(), f"stream did not deliver destroy succeeded: {received}"
    assert ("timeout_updated", "succeeded") in received
    assert received[-2:] == [("destroy", "requested"), ("destroy", "succeeded")]
    events = lifecycle.list_sandbox_events(sb.id, order_asc=True).events
    operations = [(_value(e.operation), _value(e.status)) for e in events]
    assert operations[:2] == [("create", "requested"), ("create", "succeeded")]
    assert operations[-2:] == [("destroy", "requested"), ("destroy", "succeeded")]


def _db(server):
    return sqlite3.connect(server.data_dir / "nullspace.db")


def test_crash_before_the_layer_exists_leaves_the_sandbox_running(server, sandboxes):
    """A hibernate recorded in the store but not started on the host: the sandbox runs on after restart."""
    sb = sandboxes.create()
    sb.files.write("/workspace/keep.txt", "kept")
    server.stop(kill9=True)
    with _db(server) as db:
        db.execute("UPDATE sandboxes SET state='hibernating', snapshot_id='snap_neverwritten0000000' WHERE id=?", (sb.id,))
    server.start()
    assert _status(server, sb.id) == SandboxStatus.RUNNING
    assert server.connect(sb.id).files.read("/workspace/keep.txt") == "kept"


def test_crash_after_the_layer_exists_leaves_a_complete_snapshot(server, sandboxes):
    """The layer reached the disk but the snapshot row did not: the restart completes the hibernate."""
    sb = sandboxes.create()
    sb.files.write("/workspace/keep.txt", "kept")
    snap = sb.hibernate()
    server.stop(kill9=True)
    with _db(server) as db:
        db.execute("DELETE FROM snapshots WHERE id=?", (snap.id,))
        db.execute("UPDATE sandboxes SET state='hibernating' WHERE id=?", (sb.id,))
    server.start()
    info = Sandbox.get_info_by_id(sb.id, api_key=server.key, base_url=server.url)
    assert info.status == SandboxStatus.PAUSED and info.snapshot_id == snap.id
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/workspace/keep.txt") == "kept"


def test_layers_are_removed_once_nothing_references_them(server, sandboxes):
    sb = sandboxes.create()
    snap = sb.hibernate()
    layer = server.data_dir / "snapshots" / snap.id
    assert layer.is_dir()
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    Snapshot.delete(snap.id, api_key=server.key, base_url=server.url)
    assert layer.is_dir(), "the resumed sandbox still stacks the layer"
    resumed.kill()
    wait_until(lambda: not layer.exists(), timeout=10, what="layer removal")
