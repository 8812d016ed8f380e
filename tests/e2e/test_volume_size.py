"""Size-limited volumes: a volume created with a size limit (our CLI's `--max-size`, the API's
`max_size_bytes`, or the server's `--volume-size` default for the official client) is a filesystem of that
size. Writes past it fail in every sandbox mounting it, through a sandbox's files API and through the
direct files API (`QuotaExceededError`); freeing space in one place frees it everywhere; the filesystem is mounted again
after a host restart, and deleting the volume leaves no mount, loop device or file behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import unique
from nullspace import Volume
from nullspace.errors import QuotaExceededError

MIB = 1 << 20


def _cli(cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli.srv.binary, *args], capture_output=True, text=True, env=cli.env(),
                          cwd=str(cli.home), timeout=120)


def _mounted_at(path: Path) -> list[str]:
    """Sources of the mounts on `path` in the host's mount table."""
    with open("/proc/self/mountinfo") as fh:
        rows = [line.split() for line in fh]
    return [row[row.index("-") + 2] for row in rows if row[4] == str(path)]


def _loop_devices_of(image: Path) -> str:
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout.strip()


def test_writes_stop_at_the_limit_in_sandboxes_and_the_files_api(server, cli, sandboxes):
    name = unique("sized")
    created = _cli(cli, "volume", "create", name, "--max-size", "32MiB", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["max_size_bytes"] == 32 * MIB

    volume = Volume.from_name(name, api_key=server.key, base_url=server.url)
    assert volume.max_size_bytes == 32 * MIB, "the official client reads the limit"
    data = server.data_dir / "volumes" / volume.id / "data"
    assert _mounted_at(data), "a size-limited volume's data directory is its own filesystem"
    assert not (data / "lost+found").exists(), "a new volume starts empty"

    writer = sandboxes.create(volumes=[volume.mount("/data")])
    reader = sandboxes.create(volumes=[volume.mount("/data", read_only=True)])
    fill = writer.commands.run("sh", ["-c", "dd if=/dev/zero of=/data/fill bs=1M count=64 2>&1; sync"])
    assert "No space left on device" in fill.stdout, fill.stdout
    size = int(reader.commands.run("stat", ["-c", "%s", "/data/fill"]).stdout.strip())
    assert 20 * MIB < size <= 32 * MIB, f"the file stopped at the limit, not at 64 MiB: {size}"

    with pytest.raises(QuotaExceededError) as raised:
        volume.files.write("/more.bin", b"x" * (4 * MIB))
    assert raised.value.code == "volume_quota_exceeded"
    with pytest.raises(QuotaExceededError) as raised:
        writer.files.write("/data/via-sandbox.bin", b"x" * (4 * MIB))
    assert raised.value.code == "volume_quota_exceeded", "a sandbox's files API knows a full volume mount too"
    assert writer.files.write("/tmp/still-fine.txt", "the sandbox's own disk has room").size > 0
    assert not volume.files.exists("/more.bin") or volume.files.info("/more.bin").size < 4 * MIB

    assert writer.commands.run("rm", ["/data/fill"]).exit_code == 0
    volume.files.write("/more.bin", b"x" * (4 * MIB))
    assert reader.commands.run("stat", ["-c", "%s", "/data/more.bin"]).stdout.strip() == str(4 * MIB)
    assert volume.get_info().used_bytes == 4 * MIB

    for sb in (writer, reader):
        sb.kill()
    image = server.data_dir / "volumes" / volume.id / "data.img"
    assert _loop_devices_of(image), "the image is attached to a loop device while the volume exists"
    volume.delete()
    assert not _mounted_at(data), "delete unmounts the filesystem"
    assert not (server.data_dir / "volumes" / volume.id).exists(), "delete removes the image"
    assert _loop_devices_of(image) == "", "no loop device is left"


def test_a_limited_volume_attached_at_runtime_keeps_its_limit_through_hibernate_and_a_crash(server, sandboxes):
    """Live attach clones the mounted filesystem itself, hibernate/resume mount it again, and a kill -9 of
    the server leaves the running sandbox's mount (and the limit) working."""
    with server.http() as http:
        resp = http.post("/v1/volumes", json={"name": unique("live"), "max_size_bytes": 24 * MIB})
        assert resp.status_code == 201, resp.text
        volume = Volume.get(resp.json()["id"], api_key=server.key, base_url=server.url)
    sb = sandboxes.create()
    sb.attach_volume(volume.id, "/mnt/limited")
    full = sb.commands.run("sh", ["-c", "dd if=/dev/zero of=/mnt/limited/fill bs=1M count=40 2>&1"])
    assert "No space left on device" in full.stdout, full.stdout
    assert sb.commands.run("rm", ["/mnt/limited/fill"]).exit_code == 0
    sb.files.write("/mnt/limited/note.txt", "attached live")

    sb.hibernate()
    resumed = server.connect(sb.id)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/mnt/limited/note.txt") == "attached live"
    assert resumed.get_volume_health(resumed.list_volumes()[0].id).state.value == "mounted"

    server.restart(kill9=True)
    assert resumed.files.read("/mnt/limited/note.txt") == "attached live"
    again = resumed.commands.run("sh", ["-c", "dd if=/dev/zero of=/mnt/limited/fill bs=1M count=40 2>&1"])
    assert "No space left on device" in again.stdout, "the limit holds after the server's crash"
    resumed.kill()
    volume.delete()
    assert not _mounted_at(server.data_dir / "volumes" / volume.id / "data")


def test_bad_sizes_are_refused_with_what_to_do(server, cli):
    with server.http() as http:
        resp = http.post("/v1/volumes", json={"name": unique("tiny"), "max_size_bytes": 4096})
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == "invalid_request"
        assert "16 MiB" in resp.json()["error"]
        huge = http.post("/v1/volumes", json={"name": unique("huge"), "max_size_bytes": 1 << 62})
        assert huge.status_code == 400 and "larger than the host filesystem" in huge.json()["error"], huge.text
        names = {v["name"] for v in http.get("/v1/volumes").json()}
        assert not any(n.startswith(("tiny-", "huge-")) for n in names), "a refused create leaves no volume"
    bad = _cli(cli, "volume", "create", unique("bad"), "--max-size", "lots")
    assert bad.returncode == 2 and "512MiB" in bad.stderr, bad.stderr


def test_the_server_default_limit_and_a_host_restart(server):
    """The official client sends no size: `--volume-size` gives its volumes one. After a host restart
    (the volume's filesystem is no longer mounted) the server mounts it again and the data is there;
    a volume directory the store does not know (a crash mid-delete) is removed."""
    server.extra_args += ["--volume-size", "48MiB"]
    try:
        server.restart()
        volume = Volume.create(unique("dflt"), api_key=server.key, base_url=server.url)
        assert volume.max_size_bytes == 48 * MIB
        volume.files.write("/keep.txt", "kept across a host restart")
    finally:
        del server.extra_args[-2:]  # the next start is without a default

    data = server.data_dir / "volumes" / volume.id / "data"
    stale = server.data_dir / "volumes" / "vol_e2estale0000000000"
    server.stop()
    subprocess.run(["umount", str(data)], check=True)  # what a reboot does
    (stale / "data").mkdir(parents=True, exist_ok=True)
    (stale / "data" / "orphan.txt").write_text("left by a crash")
    assert not _mounted_at(data)
    server.start(timeout=120)

    assert _mounted_at(data), "the server mounts a size-limited volume's filesystem at start"
    assert volume.files.read("/keep.txt") == "kept across a host restart"
    assert Volume.get(volume.id, api_key=server.key, base_url=server.url).max_size_bytes == 48 * MIB
    assert not stale.exists(), "a volume directory without a volume is removed at start"
    plain = Volume.create(unique("plain"), api_key=server.key, base_url=server.url)
    assert plain.max_size_bytes is None, "without a default, volumes are unlimited"
    volume.delete()
    plain.delete()
