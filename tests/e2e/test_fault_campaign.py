"""The fault campaign: the server killed with `kill -9` in the middle of real work (many live sandboxes,
streaming execs, a resumable upload half done) comes back with every sandbox running and reachable, the
upload resumes from its last part, and once the sandboxes are destroyed nothing of theirs is left on the
host or in the store.

`NULLSPACE_FAULT_SANDBOXES` sets how many sandboxes are live at the kill (default 50)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import RUN_ID, host_counts, host_snapshot, sibling_server, snapshot_mentions, unique, wait_until
from nullspace import Sandbox, SandboxStatus

LIVE = int(os.environ.get("NULLSPACE_FAULT_SANDBOXES", "50"))
STREAMS = 5
UPLOAD_BYTES = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def fault_server(server):
    """A server of its own (killed with -9 by the test, so the session server is left alone), with enough
    vCPU overcommit to hold the campaign's sandboxes on this small host."""
    srv = sibling_server(server, "fault", ["--cpu-overcommit", "64"])
    yield srv
    if srv.running:
        srv.kill_all(srv.key)
    srv.stop()
    srv.remove_network()


def _create(server, i: int) -> tuple[Sandbox, str]:
    sb = Sandbox.create(api_key=server.key, base_url=server.url, timeout=900, vcpus=1, memory_mb=256,
                        metadata={"fault": RUN_ID, "n": str(i)})
    mark = unique(f"mark-{i}")
    sb.files.write("/workspace/mark.txt", mark)
    return sb, mark


def _stream(sb: Sandbox, ticks: list[str], ended: threading.Event) -> None:
    """An exec streaming a line every 50 ms until the server dies under it."""
    try:
        sb.commands.run_streaming(
            "sh", ["-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"],
            on_stdout=ticks.append, timeout=600,
        )
    except Exception:  # noqa: BLE001 - the server is killed under this stream: its end is expected
        pass
    finally:
        ended.set()


def _start_upload(server, sb: Sandbox, source: bytes, target: str) -> tuple[str, int, int]:
    """Creates a resumable upload session and sends the first half of its parts; returns the session id,
    the parts sent and the part count."""
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
    with http:
        resp = http.post(
            f"/v1/sandboxes/{sb.id}/uploads",
            json={
                "kind": "file",
                "source_kind": "restartable_file",
                "target_path": target,
                "content_length": len(source),
                "conflict": "replace",
                "archive_format": None,
                "checksum_algorithm": "sha256",
                "whole_checksum_sha256": hashlib.sha256(source).hexdigest(),
                "metadata": {},
            },
        )
        assert resp.status_code in (200, 201), resp.text
        session = resp.json()["session"]
        part_size, part_count = session["part_size"], session["part_count"]
        assert part_count >= 2, f"the upload must have several parts to be half done: {session}"
        sent = part_count // 2
        for n in range(sent):
            part = source[n * part_size:(n + 1) * part_size]
            put = http.put(
                f"/v1/sandboxes/{sb.id}/uploads/{session['upload_id']}/parts/{n}",
                content=part,
                headers={"Content-Type": "application/octet-stream",
                         "x-nullspace-part-sha256": hashlib.sha256(part).hexdigest()},
            )
            assert put.status_code == 200, put.text
        return session["upload_id"], sent, part_count


def test_kill9_with_live_sandboxes_streams_and_a_half_done_upload(fault_server, tmp_path):
    server = fault_server
    counts_before = host_counts(server.data_dir, server.bridge)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        live = list(pool.map(lambda i: _create(server, i), range(LIVE)))
    print(f"{LIVE} sandboxes created in {time.monotonic() - started:.1f} s")
    ids = [sb.id for sb, _ in live]
    try:
        streams = []
        for sb, _ in live[:STREAMS]:
            ticks: list[str] = []
            ended = threading.Event()
            threading.Thread(target=_stream, args=(sb, ticks, ended), daemon=True).start()
            streams.append((ticks, ended))
        source = os.urandom(UPLOAD_BYTES)
        source_path = tmp_path / "upload.bin"
        source_path.write_bytes(source)
        uploader = live[STREAMS][0]
        upload_id, sent, part_count = _start_upload(server, uploader, source, "/workspace/upload.bin")
        wait_until(lambda: all(len(ticks) >= 3 for ticks, _ in streams), 30, what="every stream to tick")

        server.stop(kill9=True)
        for _, ended in streams:
            assert ended.wait(30), "a stream outlived the server that carried it"
        started = time.monotonic()
        server.start(timeout=180)
        print(f"server back after kill -9 with {LIVE} live sandboxes in {time.monotonic() - started:.1f} s")

        # every sandbox is running and reachable, with its files
        def check(entry: tuple[Sandbox, str]) -> None:
            sb, mark = entry
            again = server.connect(sb.id)
            assert again.get_info().status == SandboxStatus.RUNNING, sb.id
            assert again.files.read("/workspace/mark.txt") == mark
            assert again.commands.run("echo", ["alive"]).stdout == "alive\n"

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(check, live))
        listed = {info.id: info.status for info in Sandbox.list(api_key=server.key, base_url=server.url)}
        assert all(listed.get(sandbox_id) == SandboxStatus.RUNNING for sandbox_id in ids)

        # the upload resumes from its last part
        http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60)
        with http:
            session = http.get(f"/v1/sandboxes/{uploader.id}/uploads/{upload_id}").json()
        assert session.get("next_part") == sent, session
        assert session["accepted_bytes"] == sent * session["part_size"], session
        again = server.connect(uploader.id)
        result = again.files.resume_upload(upload_id, str(source_path))
        assert result.bytes_uploaded == UPLOAD_BYTES
        digest = again.commands.run("sha256sum", ["/workspace/upload.bin"]).stdout.split()[0]
        assert digest == hashlib.sha256(source).hexdigest()
        print(f"upload of {part_count} parts resumed at part {sent} after the kill")
    finally:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda sandbox_id: server.connect(sandbox_id).kill(), ids))

    # nothing orphaned: no host resource mentions a destroyed sandbox, and the server's counts (mounts,
    # netns, veths, nft rules, loop devices, cgroups, processes, live store rows) are where they began
    snap = host_snapshot(server.data_dir)
    leftovers = {sandbox_id: snapshot_mentions(snap, sandbox_id) for sandbox_id in ids}
    assert all(not left for left in leftovers.values()), {k: v for k, v in leftovers.items() if v}

    def counts_settled() -> bool:
        return host_counts(server.data_dir, server.bridge) == counts_before

    try:
        wait_until(counts_settled, 30, what="resource counts to return to their start")
    except AssertionError:
        raise AssertionError(f"counts before {counts_before}, after {host_counts(server.data_dir, server.bridge)}")
