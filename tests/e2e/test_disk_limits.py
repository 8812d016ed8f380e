"""Sandbox disk limits: a sandbox's writes go to a filesystem of its `disk_mb` (the server's `--sandbox-disk`
default when the create names none), so the kernel stops it there: ENOSPC inside, `insufficient_storage`
from the files API, and the sandbox works on once space is freed. Hibernate/resume, fork and create from a
snapshot keep the limit; destroy leaves no mount, loop device or image behind. When the server's own data
disk is full, creates fail with a clear error, the store stays intact, and the server recovers by itself."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import sibling_server, wait_until
from nullspace import Sandbox
from nullspace.errors import SandboxError

MIB = 1 << 20


def _mount_points_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


def _loop_devices_of(image: Path) -> str:
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout.strip()


def _disk_of(server, sandbox_id: str) -> tuple[Path, Path]:
    root = server.data_dir / "sandboxes" / sandbox_id
    return root / "disk", root / "disk.img"


def _df_total_mib(sb) -> int:
    """Size of the sandbox's root filesystem as `df` inside it reports it, MiB."""
    out = sb.commands.run("df", ["-k", "--output=size", "/"]).stdout.split()
    return int(out[-1]) // 1024


def _fill(sb, path: str, mib: int) -> str:
    return sb.commands.run("sh", ["-c", f"dd if=/dev/zero of={path} bs=1M count={mib} 2>&1; sync"]).stdout


def test_a_sandbox_cannot_write_past_its_disk_and_works_on_after_a_delete(server, sandboxes):
    sb = sandboxes.create(disk_mb=64)
    disk, image = _disk_of(server, sb.id)
    assert str(disk) in _mount_points_below(disk), "the sandbox's writes are on a filesystem of their own"
    assert _loop_devices_of(image), "its disk is a loop device backed by its image"
    assert 40 <= _df_total_mib(sb) <= 64, "df inside shows the limit, not the host's disk"

    out = _fill(sb, "/tmp/fill", 128)
    assert "No space left on device" in out, out
    size = int(sb.commands.run("stat", ["-c", "%s", "/tmp/fill"]).stdout.strip())
    assert 32 * MIB < size <= 64 * MIB, f"the file stopped at the limit, not at 128 MiB: {size}"

    with pytest.raises(SandboxError) as raised:
        sb.files.write("/tmp/more.bin", b"x" * (8 * MIB))
    assert raised.value.code == "insufficient_storage", raised.value
    upload = Path(server.data_dir) / "e2e-upload.bin"
    upload.write_bytes(b"y" * (8 * MIB))
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as http:
            with upload.open("rb") as body:
                resp = http.put(f"/v1/sandboxes/{sb.id}/file", params={"path": "/tmp/upload.bin"}, content=body)
        assert resp.status_code == 507, resp.text
        assert resp.json()["code"] == "insufficient_storage"
    finally:
        upload.unlink()

    sb.commands.run("rm", ["-f", "/tmp/fill"])
    sb.files.write("/tmp/after.txt", "room again")
    assert sb.files.read("/tmp/after.txt") == "room again"
    assert sb.commands.run("echo", ["alive"]).stdout.strip() == "alive"


def test_the_server_default_applies_when_the_create_names_no_size(server, sandboxes):
    sb = sandboxes.create()
    disk, _ = _disk_of(server, sb.id)
    assert str(disk) in _mount_points_below(disk)
    total = _df_total_mib(sb)
    # The e2e server runs with the default --sandbox-disk (10GiB); ext4 keeps a few percent for itself.
    assert 9000 <= total <= 10240, total


def test_out_of_range_sizes_are_invalid_requests(server):
    with server.http() as http:
        for bad in (0, 8, 1 << 30):
            resp = http.post("/v1/sandboxes", json={"template": "base", "disk_mb": bad})
            assert resp.status_code == 400, resp.text
            assert resp.json()["code"] == "invalid_request"
            assert "disk_mb must be between 16 and" in resp.json()["error"]


def test_hibernate_resume_fork_and_snapshots_keep_the_limit(server, sandboxes):
    sb = sandboxes.create(disk_mb=48)
    sb.files.write("/tmp/kept.txt", "from before")
    assert _df_total_mib(sb) <= 48

    snap = sb.hibernate()
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/tmp/kept.txt") == "from before"
    assert _df_total_mib(resumed) <= 48, "a resumed sandbox keeps its limit"
    assert "No space left on device" in _fill(resumed, "/tmp/fill", 96)
    resumed.commands.run("rm", ["-f", "/tmp/fill"])

    child = resumed.fork()
    sandboxes.created.append((child.id, server.key))
    assert child.files.read("/tmp/kept.txt") == "from before"
    assert _df_total_mib(child) <= 48, "a fork keeps its parent's limit"
    assert "No space left on device" in _fill(child, "/tmp/fill", 96)

    snapshot = resumed.create_snapshot()
    from_snapshot = sandboxes.create(snapshot_id=snapshot.id)
    assert from_snapshot.files.read("/tmp/kept.txt") == "from before"
    assert _df_total_mib(from_snapshot) <= 48, "a sandbox from a snapshot keeps the snapshot's limit"


def test_destroy_leaves_no_mount_loop_device_or_image(server, sandboxes):
    sb = sandboxes.create(disk_mb=32)
    root = server.data_dir / "sandboxes" / sb.id
    disk, image = _disk_of(server, sb.id)
    assert _loop_devices_of(image)
    sb.kill()
    wait_until(lambda: not root.exists(), timeout=30, what="the sandbox's directory to go")
    assert not _mount_points_below(root), "no mount is left"
    assert not _loop_devices_of(image), "no loop device is left"
    assert not image.exists()


def test_a_crashed_server_keeps_live_disks_and_releases_stale_ones_at_start(server):
    srv = sibling_server(server, "diskcrash", [])
    try:
        sb = srv.create(disk_mb=32)
        disk, image = _disk_of(srv, sb.id)
        # What a crash between attaching a loop device and mounting it leaves: an orphan's image on a loop.
        stale_root = srv.data_dir / "sandboxes" / "sb_e2estale0"
        stale_root.mkdir(parents=True, exist_ok=True)
        stale_image = stale_root / "disk.img"
        subprocess.run(["truncate", "-s", "32M", str(stale_image)], check=True)
        subprocess.run(["losetup", "-f", str(stale_image)], check=True)
        assert _loop_devices_of(stale_image)

        srv.stop(kill9=True)
        srv.start(timeout=120)

        assert not _loop_devices_of(stale_image), "the orphan's loop device is released"
        assert not stale_root.exists(), "the orphan's directory is removed"
        again = srv.connect(sb.id)
        assert again.commands.run("echo", ["alive"]).stdout.strip() == "alive"
        assert str(disk) in _mount_points_below(disk), "a live sandbox keeps its disk across the restart"
        assert _df_total_mib(again) <= 32
        again.kill()
        wait_until(lambda: not image.exists(), timeout=30, what="the image to go")
        assert not _loop_devices_of(image)
        assert not _mount_points_below(disk.parent)
    finally:
        for leftover in (srv.data_dir / "sandboxes").glob("sb_e2estale0/disk.img"):
            for line in _loop_devices_of(leftover).splitlines():
                subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
        if srv.running:
            srv.kill_all(srv.key)
            srv.stop()
        srv.remove_network()


def _make_small_filesystem(mount_point: Path, mib: int) -> Path:
    image = Path(f"{mount_point}.img")
    subprocess.run(["umount", str(mount_point)], capture_output=True)
    image.unlink(missing_ok=True)
    subprocess.run(["truncate", "-s", f"{mib}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True)
    return image


def _fill_host(path: Path) -> None:
    """Fills the filesystem of `path` completely with one file."""
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M"], capture_output=True)


def test_a_full_data_disk_fails_creates_cleanly_and_recovers_without_a_restart(server):
    mount_point = Path(f"{server.data_dir}-diskfull")
    image = _make_small_filesystem(mount_point, 384)
    srv = None
    try:
        srv = sibling_server(server, "diskfull", ["--sandbox-disk", "64MiB"])
        first = srv.create(disk_mb=32)
        filler = mount_point / "filler.bin"
        _fill_host(filler)

        with pytest.raises(SandboxError) as raised:
            srv.create(disk_mb=32)
        assert raised.value.code == "insufficient_storage", raised.value
        assert "disk is full" in str(raised.value), raised.value
        assert "Error" not in str(raised.value) and "os error" not in str(raised.value)
        assert srv.running, "the server is still up"

        filler.unlink()
        again = srv.create(disk_mb=32)
        assert again.commands.run("echo", ["ok"]).stdout.strip() == "ok"
        assert first.commands.run("echo", ["ok"]).stdout.strip() == "ok"
        for sb in (first, again):
            sb.kill()
        srv.stop()
        db = sqlite3.connect(mount_point / "nullspace.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    finally:
        if srv is not None:
            if srv.running:
                srv.kill_all(srv.key)
                srv.stop()
            srv.remove_network()
        subprocess.run(["umount", str(mount_point)], capture_output=True)
        image.unlink(missing_ok=True)
