"""Persistent volumes: shared mounts between sandboxes (writes, atomic rename, flock), read-only and subpath
mounts, refused mount paths and subpaths, the direct volume files API with signed URLs (served by a
per-volume guest confined to the volume), resume and fork keeping mounts, data across a server restart,
busy delete, tenant isolation, and attach / detach / health / remount on running sandboxes."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from conftest import unique, wait_until
from nullspace import Volume
from nullspace.errors import SandboxError


def _volume(server, key=None) -> Volume:
    return Volume.create(unique("vol"), api_key=key or server.key, base_url=server.url)


def _code(resp: httpx.Response) -> str:
    return resp.json().get("code", "")


def _guest_pid(server, volume_id: str) -> int | None:
    try:
        # "<pid> <start time> <boot id>": the guest is identified exactly, not by its pid alone
        return int((server.data_dir / "volumes" / volume_id / "guest" / "guest.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_two_sandboxes_share_writes_rename_and_flock(server, sandboxes):
    volume = _volume(server)
    a = sandboxes.create(volumes=[volume.mount("/data")])
    b = sandboxes.create(volumes=[volume.mount("/data")])
    assert [(v.mount_path, v.read_only, str(v.state.value)) for v in a.volumes] == [("/data", False, "mounted")]

    a.files.write("/data/hello.txt", "from a")
    assert b.files.read("/data/hello.txt") == "from a"
    b.files.write("/data/reply.txt", "from b")
    assert a.files.read("/data/reply.txt") == "from b"

    # Atomic rename: the reader only ever sees a complete file.
    run = a.commands.run("sh", ["-c", "head -c 200000 /dev/zero | tr '\\0' x > /data/big.tmp && mv /data/big.tmp /data/big"])
    assert run.exit_code == 0, run.stderr
    size = b.commands.run("sh", ["-c", "wc -c < /data/big; test ! -e /data/big.tmp"])
    assert size.exit_code == 0 and size.stdout.strip() == "200000"

    if b.commands.run("sh", ["-c", "command -v flock"]).exit_code != 0:
        pytest.skip("flock is not in the base image")
    a.commands.run("sh", ["-c", "flock /data/lock -c 'sleep 4'"], background=True)
    wait_until(lambda: a.commands.run("sh", ["-c", "flock -n /data/lock true; echo $?"]).stdout.strip() == "1",
               timeout=5, what="a holds the lock")
    held = b.commands.run("sh", ["-c", "flock -n /data/lock true; echo $?"])
    assert held.stdout.strip() == "1", "b must see a's lock on the shared volume"
    wait_until(lambda: b.commands.run("sh", ["-c", "flock -n /data/lock true; echo $?"]).stdout.strip() == "0",
               timeout=10, what="lock released")


def test_read_only_mount_rejects_writes(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/seed.txt", "seed")
    sb = sandboxes.create(volumes=[volume.mount("/ro", read_only=True)])
    assert sb.files.read("/ro/seed.txt") == "seed"
    with pytest.raises(SandboxError) as err:
        sb.files.write("/ro/new.txt", "no")
    assert err.value.code == "volume_read_only"
    touched = sb.commands.run("sh", ["-c", "touch /ro/x 2>&1; echo $?"])
    assert touched.stdout.strip().endswith("1") and "Read-only" in touched.stdout
    assert not volume.files.exists("/new.txt")


def test_subpath_exposes_only_the_subtree_and_cannot_escape(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/projects/demo/hello.txt", "sub")
    volume.files.write("/top.txt", "top")
    sb = sandboxes.create(volumes=[volume.mount("/sub", subpath="projects/demo"), volume.mount("/fresh", subpath="new/dir")])
    assert sb.files.read("/sub/hello.txt") == "sub"
    assert sb.files.exists("/sub/top.txt") is False
    assert sb.commands.run("sh", ["-c", "ls -a /sub"]).stdout.split() == [".", "..", "hello.txt"]
    sb.files.write("/fresh/made.txt", "x")
    assert volume.files.read("/new/dir/made.txt") == "x", "a missing subpath is created"

    # A symlink planted in the volume (by any sandbox) does not lead a later mount outside the volume.
    writer = sandboxes.create(volumes=[volume.mount("/data")])
    assert writer.commands.run("sh", ["-c", "ln -s /etc /data/evil && ln -s ../../.. /data/projects/up"]).exit_code == 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as http:
        for subpath in ["evil", "evil/ssl", "projects/up", "../x", "a/../../x"]:
            body = {"volumes": [{"ref": volume.id, "mount_path": "/x", "read_only": False, "subpath": subpath}]}
            resp = http.post("/v1/sandboxes", json=body)
            assert resp.status_code == 400, (subpath, resp.text)
            assert _code(resp) == "invalid_request"


@pytest.mark.parametrize(
    "mount_path",
    ["/", "/proc", "/proc/x", "/sys", "/dev", "/run/nullspace", "/workspace/.nullspace", "/etc/resolv.conf",
     "/etc/hosts", "data", "/data/../proc"],
)
def test_reserved_mount_paths_are_refused(server, mount_path):
    volume = _volume(server)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as http:
        body = {"volumes": [{"ref": volume.name, "mount_path": mount_path, "read_only": False}]}
        resp = http.post("/v1/sandboxes", json=body)
        assert resp.status_code == 400, resp.text
        assert _code(resp) == "invalid_request"
        assert "mount_path" in resp.json()["error"]
    volume.delete()


def test_direct_files_and_signed_urls(server, sandboxes, tmp_path):
    volume = _volume(server)
    volume.files.make_dir("/direct")
    volume.files.write("/direct/api.txt", "from direct api")
    assert volume.files.read("/direct/api.txt") == "from direct api"
    assert [f.name for f in volume.files.list("/")] == ["direct"]
    # Paths cannot leave the volume: the guest's root is the volume.
    assert volume.files.exists("/../../etc/passwd") is False
    with pytest.raises(SandboxError):
        volume.files.read("/../../etc/hostname")

    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(100_000))
    volume.files.upload_file(source, "/direct/up.bin", resumable=False)
    volume.files.download_file("/direct/up.bin", tmp_path / "down.bin")
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()
    volume.files.upload_file(source, "/direct/resumable.bin", resumable=True)
    volume.files.download_file("/direct/resumable.bin", tmp_path / "resumed.bin")
    assert (tmp_path / "resumed.bin").read_bytes() == source.read_bytes()
    assert [f.name for f in volume.files.list("/")] == ["direct"], "upload staging never shows in the volume"
    volume.files.remove("/direct/resumable.bin")

    # Raw signed URLs, no API key.
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as http:
        up = http.post(f"/v1/volumes/{volume.id}/files/upload-url", json={"path": "/direct/raw.txt"}).json()
        down = http.post(f"/v1/volumes/{volume.id}/files/download-url", json={"path": "/direct/raw.txt"}).json()
        assert http.post(f"/v1/volumes/{volume.id}/exec", json={"command": "id"}).status_code == 404
    assert httpx.put(up["url"], content=b"raw bytes").status_code < 400
    got = httpx.get(down["url"])
    assert got.status_code == 200 and got.content == b"raw bytes"
    assert httpx.get(down["url"][:-2] + "xx").status_code == 401

    replaced = volume.files.replace_in_files(["/direct/api.txt"], "direct", "DIRECT")
    assert replaced.replacements == 1
    assert volume.files.search_files("/", "*.txt") == ["/direct/api.txt", "/direct/raw.txt"]

    sb = sandboxes.create(volumes=[volume.mount("/data")])
    assert sb.files.read("/data/direct/api.txt") == "from DIRECT api"
    assert sb.commands.run("sh", ["-c", "printf guest > /data/direct/guest.txt"]).exit_code == 0
    assert volume.files.read("/direct/guest.txt") == "guest"
    info = volume.get_info()
    assert info.mount_count == 1 and str(info.status.value) == "attached"
    assert info.used_bytes >= 100_000 and info.inode_count >= 5


def test_resume_and_fork_keep_mounts(server, sandboxes):
    volume = _volume(server)
    sb = sandboxes.create(volumes=[volume.mount("/data", subpath="s")])
    sb.files.write("/data/one.txt", "1")
    child = sb.fork()
    sandboxes.created.append((child.id, server.key))
    assert [v.mount_path for v in child.volumes] == ["/data"]
    child.files.write("/data/from-child.txt", "c")
    assert sb.files.read("/data/from-child.txt") == "c", "fork mounts the same volume, not a copy"

    sb.hibernate()
    resumed = server.connect(sb.id)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/data/one.txt") == "1"
    assert [(v.mount_path, v.subpath) for v in resumed.volumes] == [("/data", "s")]
    assert volume.files.read("/s/from-child.txt") == "c"


def test_delete_is_refused_while_mounted_and_stops_the_volume_guest(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/a.txt", "a")  # starts the volume guest
    pid = _guest_pid(server, volume.id)
    assert pid and _alive(pid)
    # It serves from a child that is PID 1 of its own PID namespace, with only chown, DAC
    # override/read-search, fowner and fsetid, under no_new_privs.
    [server_pid] = open(f"/proc/{pid}/task/{pid}/children").read().split()
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{server_pid}/status").read().splitlines() if ":\t" in line)
    assert status["NSpid"].split() == [server_pid, "1"]
    assert (status["CapEff"], status["CapBnd"], status["NoNewPrivs"]) == ("000000000000001f", "000000000000001f", "1")
    sb = sandboxes.create(volumes=[volume.mount("/data")])
    with pytest.raises(SandboxError) as err:
        volume.delete()
    assert err.value.code == "volume_busy"
    assert [a.sandbox_id for a in volume.attachments()] == [sb.id]
    sb.kill()
    volume.delete()
    wait_until(lambda: not _alive(pid), timeout=10, what="volume guest stopped")
    wait_until(lambda: not _alive(int(server_pid)), timeout=10, what="its serving child stopped")
    assert not (server.data_dir / "volumes" / volume.id).exists()
    with pytest.raises(SandboxError) as err:
        Volume.get(volume.id, api_key=server.key, base_url=server.url)
    assert err.value.code == "not_found"


def test_data_survives_sandbox_kill_and_server_restart(server, sandboxes):
    volume = _volume(server)
    sb = sandboxes.create(volumes=[volume.mount("/data")])
    sb.files.write("/data/keep.txt", "kept")
    sb.kill()
    volume.files.read("/keep.txt")  # a running volume guest must not survive the restart either
    pid = _guest_pid(server, volume.id)
    server.restart()
    assert pid is None or not _alive(pid)
    again = Volume.from_name(volume.name, api_key=server.key, base_url=server.url)
    assert again.id == volume.id
    assert again.files.read("/keep.txt") == "kept"
    sb2 = sandboxes.create(volumes=[again.mount("/data")])
    assert sb2.files.read("/data/keep.txt") == "kept"


def test_other_tenant_cannot_see_or_use_a_volume(server, second_key, sandboxes):
    volume = _volume(server)
    volume.files.write("/secret.txt", "s")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {second_key}"}, timeout=60) as http:
        assert volume.id not in [v["id"] for v in http.get("/v1/volumes").json()]
        for method, path, body in [
            ("GET", f"/v1/volumes/{volume.id}", None),
            ("GET", f"/v1/volumes/by-name/{volume.name}", None),
            ("DELETE", f"/v1/volumes/{volume.id}", None),
            ("GET", f"/v1/volumes/{volume.id}/attachments", None),
            ("POST", f"/v1/volumes/{volume.id}/files/read", {"path": "/secret.txt"}),
            ("POST", f"/v1/volumes/{volume.id}/files/download-url", {"path": "/secret.txt"}),
            ("POST", "/v1/sandboxes", {"volumes": [{"ref": volume.id, "mount_path": "/d", "read_only": False}]}),
            ("POST", "/v1/sandboxes", {"volumes": [{"ref": volume.name, "mount_path": "/d", "read_only": False}]}),
        ]:
            resp = http.request(method, path, json=body)
            assert resp.status_code == 404, (method, path, resp.text)
            assert _code(resp) == "not_found"
        # The same name is free for the other tenant.
        created = http.post("/v1/volumes", json={"name": volume.name})
        assert created.status_code in (200, 201) and created.json()["id"] != volume.id
        http.delete(f"/v1/volumes/{created.json()['id']}")
    assert volume.files.read("/secret.txt") == "s"


def test_volume_api_shapes(server):
    name = unique("shape")
    volume = Volume.create(name, api_key=server.key, base_url=server.url)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=60) as http:
        dup = http.post("/v1/volumes", json={"name": name})
        assert dup.status_code == 409
        assert http.post("/v1/volumes", json={"name": "bad/name"}).status_code == 400
        miss = http.get(f"/v1/volumes/by-name/{unique('missing')}")
        assert miss.status_code == 404 and _code(miss) == "not_found"
        projected = http.get("/v1/volumes", params={"fields": "id,name"}).json()
        assert {"id": volume.id, "name": name} in projected
        assert http.get(f"/v1/volumes/{volume.id}", params={"fields": "status"}).json() == {"status": "available"}
        attach = http.post("/v1/sandboxes/sb_x/volumes", json={"ref": name, "mount_path": "/d", "read_only": False})
        assert attach.status_code == 404 and _code(attach) == "sandbox_not_found"
    created = Volume.from_name(unique("auto"), create_if_missing=True, api_key=server.key, base_url=server.url)
    assert created.id.startswith("vol_")
    created.delete()
    volume.delete()


def _init_pid(server, sandbox_id: str) -> int:
    state = subprocess.run(
        ["runc", "--root", str(server.data_dir / "runtime" / "runc"), "state", sandbox_id],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(state.stdout)["pid"]


def _sandbox_mounts(sb) -> str:
    return sb.commands.run("cat", args=["/proc/self/mountinfo"]).stdout


def test_runtime_attach_health_remount_detach(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/d/f.txt", "from the volume")
    sb = sandboxes.create()
    host_mounts = open("/proc/self/mountinfo").read()

    att = sb.attach_volume(volume.id, "/workspace/rt", subpath="d")
    assert att.id.startswith("att_") and att.state.value == "mounted"
    assert (att.volume_id, att.mount_path, att.read_only, att.subpath) == (volume.id, "/workspace/rt", False, "d")
    assert sb.files.read("/workspace/rt/f.txt") == "from the volume"
    sb.files.write("/workspace/rt/back.txt", "from the sandbox")
    assert volume.files.read("/d/back.txt") == "from the sandbox"
    assert [a.id for a in sb.list_volumes()] == [att.id]
    assert [a.id for a in volume.attachments()] == [att.id]
    assert Volume.get(volume.id, api_key=server.key, base_url=server.url).mount_count == 1
    with pytest.raises(SandboxError) as err:
        volume.delete()
    assert err.value.code == "volume_busy"
    # The mount exists in the sandbox only.
    assert open("/proc/self/mountinfo").read() == host_mounts

    # By name and read-only: writes fail inside the sandbox.
    ro = sb.attach_volume(volume.name, "/ro", read_only=True)
    assert ro.read_only and sb.files.read("/ro/d/f.txt") == "from the volume"
    assert Volume.get(volume.id, api_key=server.key, base_url=server.url).mount_count == 1, "sandboxes, not mounts"
    denied = sb.commands.run("sh", args=["-c", "echo x > /ro/new.txt"])
    assert denied.exit_code != 0 and "Read-only file system" in denied.stderr
    assert not volume.files.exists("/new.txt")

    health = sb.get_volume_health(att.id)
    assert health.state.value == "mounted" and health.last_error_code is None

    # Something unmounts it behind our back (a host operator here): health says so, remount repairs it.
    subprocess.run(
        ["nsenter", "--target", str(_init_pid(server, sb.id)), "--mount", "--pid", "umount", "-l", "/workspace/rt"], check=True
    )
    broken = sb.get_volume_health(att.id)
    assert broken.state.value == "failed" and broken.last_error_code == "volume_mount_missing"
    assert not sb.files.exists("/workspace/rt/f.txt")
    repaired = sb.remount_volume(att.id)
    assert repaired.state.value == "mounted"
    assert sb.get_volume_health(att.id).state.value == "mounted"
    assert sb.files.read("/workspace/rt/back.txt") == "from the sandbox"
    assert _sandbox_mounts(sb).count(" /workspace/rt ") == 1, "remount replaces the mount, it does not stack"

    detached = sb.detach_volume(att.id)
    assert detached.state.value == "released" and detached.id == att.id
    assert " /workspace/rt " not in _sandbox_mounts(sb)
    assert [a.id for a in sb.list_volumes()] == [ro.id]
    sb.detach_volume(ro.id)
    assert sb.list_volumes() == []
    assert volume.files.read("/d/back.txt") == "from the sandbox", "detach keeps the data"
    with pytest.raises(SandboxError) as err:
        sb.detach_volume(att.id)
    assert err.value.code == "not_found"
    volume.delete()


def _mount_points(sb) -> list[str]:
    return [line.split(" ")[4] for line in _sandbox_mounts(sb).splitlines()]


def test_detach_follows_a_renamed_parent_and_never_a_planted_symlink(server, sandboxes):
    """The sandbox moves its mount by renaming a parent and plants a symlink where the parent was, aimed
    at /proc so that the recorded path leads to the runtime's read-only /proc/sys. Detach must remove the
    volume's mount where it went, and nothing else."""
    volume = _volume(server)
    volume.files.write("/f.txt", "v")
    sb = sandboxes.create()
    keep = sb.attach_volume(volume.id, "/workspace/keep")
    att = sb.attach_volume(volume.id, "/workspace/x/sys")
    assert sb.commands.run("mv /workspace/x /workspace/moved && ln -s /proc /workspace/x", shell=True).exit_code == 0
    assert "/proc/sys" in _mount_points(sb) and "/workspace/moved/sys" in _mount_points(sb)
    health = sb.get_volume_health(att.id)
    assert health.state.value == "failed" and health.last_error_code == "volume_mount_missing"

    assert sb.detach_volume(att.id).state.value == "released"
    points = _mount_points(sb)
    assert "/proc/sys" in points, "the runtime's read-only /proc/sys must stay mounted"
    assert "/workspace/moved/sys" not in points, "the moved volume mount is detached where it went"
    assert "/workspace/keep" in points, "another attachment of the same volume stays"
    denied = sb.commands.run("sh", args=["-c", "echo 1 > /proc/sys/kernel/sysrq"])
    assert denied.exit_code != 0, "/proc/sys must still be read-only"
    assert sb.files.read("/workspace/keep/f.txt") == "v"
    assert [a.id for a in sb.list_volumes()] == [keep.id]


def test_a_mount_made_at_create_below_a_symlink_is_healthy_and_detaches(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/f.txt", "v")
    sb = sandboxes.create(volumes=[volume.mount("/var/run/vdata")])  # /var/run -> /run in Debian
    assert sb.files.read("/run/vdata/f.txt") == "v"
    [att] = sb.list_volumes()
    assert sb.get_volume_health(att.id).state.value == "mounted"
    assert sb.detach_volume(att.id).state.value == "released"
    assert "/run/vdata" not in _mount_points(sb), "found in the mount table where the symlink led"
    assert not sb.files.exists("/run/vdata/f.txt")


def test_health_of_a_removed_subpath_fails_and_creates_nothing(server, sandboxes):
    volume = _volume(server)
    volume.files.write("/d/f.txt", "x")
    sb = sandboxes.create()
    att = sb.attach_volume(volume.id, "/workspace/sub", subpath="d")
    volume.files.remove("/d")
    health = sb.get_volume_health(att.id)
    assert health.state.value == "failed" and health.last_error_code == "volume_mount_missing"
    assert not volume.files.exists("/d"), "a health probe must not recreate the removed subpath"
    # Remount is the explicit repair: it creates the subpath again, empty.
    assert sb.remount_volume(att.id).state.value == "mounted"
    assert volume.files.exists("/d") and sb.get_volume_health(att.id).state.value == "mounted"
    sb.files.write("/workspace/sub/new.txt", "y")
    assert volume.files.read("/d/new.txt") == "y"


def test_runtime_attach_refuses_bad_requests(server, sandboxes, second_key):
    volume = _volume(server)
    sb = sandboxes.create()
    sb.attach_volume(volume.id, "/data")
    # A symlink planted by the sandbox cannot redirect the mount onto a path the runtime owns.
    assert sb.commands.run("ln", args=["-s", "/run/nullspace", "/workspace/evil"]).exit_code == 0
    sb.files.write("/workspace/file.txt", "x")
    cases = [
        ({"ref": volume.id, "mount_path": "/proc/x", "read_only": False}, 400, "invalid_request"),
        ({"ref": volume.id, "mount_path": "relative", "read_only": False}, 400, "invalid_request"),
        ({"ref": volume.id, "mount_path": "/data", "read_only": False}, 400, "invalid_request"),
        ({"ref": volume.id, "mount_path": "/x", "subpath": "../up", "read_only": False}, 400, "invalid_request"),
        ({"ref": volume.id, "mount_path": "/workspace/evil/x", "read_only": False}, 400, "invalid_request"),
        ({"ref": volume.id, "mount_path": "/workspace/file.txt/x", "read_only": False}, 400, "invalid_request"),
        ({"ref": "no-such-volume", "mount_path": "/x", "read_only": False}, 404, "not_found"),
        ({"mount_path": "/x"}, 400, "invalid_request"),
    ]
    with server.http() as http:
        for body, status, code in cases:
            resp = http.post(f"/v1/sandboxes/{sb.id}/volumes", json=body)
            assert (resp.status_code, _code(resp)) == (status, code), (body, resp.text)
        assert http.post(f"/v1/sandboxes/{sb.id}/volumes", content=b"{").status_code == 400
        for method, path in [
            ("DELETE", f"/v1/sandboxes/{sb.id}/volumes/att_nope"),
            ("GET", f"/v1/sandboxes/{sb.id}/volumes/att_nope/health"),
            ("POST", f"/v1/sandboxes/{sb.id}/volumes/att_nope/remount"),
        ]:
            resp = http.request(method, path)
            assert (resp.status_code, _code(resp)) == (404, "not_found"), (method, path, resp.text)
    assert not os.path.exists("/run/nullspace/x"), "nothing is created on the host"
    assert sb.commands.run("ls", args=["/run/nullspace"]).exit_code == 0
    assert [a.mount_path for a in sb.list_volumes()] == ["/data"]

    # Another tenant can neither mount this volume nor touch this sandbox's attachments.
    other = sandboxes.create(key=second_key)
    with server.http(second_key) as http:
        resp = http.post(f"/v1/sandboxes/{other.id}/volumes", json={"ref": volume.id, "mount_path": "/x"})
        assert (resp.status_code, _code(resp)) == (404, "not_found"), resp.text
        resp = http.post(f"/v1/sandboxes/{sb.id}/volumes", json={"ref": volume.id, "mount_path": "/y"})
        assert resp.status_code == 404, resp.text
        resp = http.get(f"/v1/sandboxes/{sb.id}/volumes")
        assert resp.status_code == 404, resp.text

    # A paused sandbox is not changed.
    sb.hibernate()
    with server.http() as http:
        resp = http.post(f"/v1/sandboxes/{sb.id}/volumes", json={"ref": volume.id, "mount_path": "/z"})
        assert resp.status_code == 409 and _code(resp) == "sandbox_not_ready", resp.text
    # Killing the sandbox releases its runtime attachment.
    sb.kill()
    volume.delete()


def test_runtime_attachments_survive_hibernate_resume_and_fork(server, sandboxes):
    volume = _volume(server)
    sb = sandboxes.create()
    att = sb.attach_volume(volume.id, "/mnt/shared", subpath="s")
    sb.files.write("/mnt/shared/one.txt", "1")
    server.restart()
    assert sb.get_volume_health(att.id).state.value == "mounted", "a server restart keeps runtime mounts"
    assert [a.id for a in sb.list_volumes()] == [att.id]
    child = sb.fork()
    sandboxes.created.append((child.id, server.key))
    assert [(v.mount_path, v.subpath) for v in child.volumes] == [("/mnt/shared", "s")]
    child.files.write("/mnt/shared/from-child.txt", "c")
    assert sb.files.read("/mnt/shared/from-child.txt") == "c", "the child mounts the same volume"

    sb.hibernate()
    resumed = server.connect(sb.id)
    sandboxes.created.append((resumed.id, server.key))
    assert resumed.files.read("/mnt/shared/one.txt") == "1"
    [again] = resumed.list_volumes()
    assert (again.volume_id, again.mount_path, again.subpath) == (volume.id, "/mnt/shared", "s")
    assert resumed.get_volume_health(again.id).state.value == "mounted"
    # Detached before the next hibernate: the next resume does not mount it.
    resumed.detach_volume(again.id)
    resumed.hibernate()
    bare = server.connect(resumed.id)
    sandboxes.created.append((bare.id, server.key))
    assert bare.list_volumes() == []
    assert not bare.files.exists("/mnt/shared/one.txt")
