"""A sandbox's root is not the host's root (issue 15): every runc/crun sandbox runs in a user namespace of its
own, whose ids 0..65535 are an unprivileged host range recorded in the store, and sees host trees through
idmapped mounts, so everything stays 0-based on disk (upper dirs, volumes, snapshot layers).

Each test drives the real server with the official client and looks at the result from the host.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import sandbox_processes, sibling_server, unique, wait_until
from nullspace import Sandbox, Volume

RANGE = 65536


def _range_of(server, sandbox_id: str) -> int | None:
    """The host base the store records for `sandbox_id` (migration 0011), or None."""
    with sqlite3.connect(f"file:{server.data_dir / 'nullspace.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT host_base, size FROM sandbox_id_ranges WHERE sandbox_id = ?", (sandbox_id,)).fetchone()
    if row is None:
        return None
    assert row[1] == RANGE, row
    return row[0]


def _id_map(sb, which: str) -> list[int]:
    out = sb.commands.run("cat", [f"/proc/self/{which}"])
    assert out.exit_code == 0, out
    return [int(field) for field in out.stdout.split()]


def _host_ids(pid: int) -> tuple[list[int], list[int]]:
    """Real, effective, saved and filesystem uids and gids of a host process (its /proc status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return [int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()]


def _py(sb, script: str):
    return sb.commands.run("python3", ["-c", script], timeout=60)


def _sh(sb, command: str, *, as_user: bool = False):
    """Runs a shell command as root, or as the template's `user` (switched by root itself: the client's
    commands have no user option)."""
    if not as_user:
        return sb.commands.run("sh", ["-c", command], timeout=60)
    switch = (
        "import os, pwd, sys\n"
        "u = pwd.getpwnam('user')\n"
        "os.setgroups([]); os.setgid(u.pw_gid); os.setuid(u.pw_uid)\n"
        "os.execvp('sh', ['sh', '-c', sys.argv[1]])\n"
    )
    return sb.commands.run("python3", ["-c", switch, command], timeout=60)


def _as_host_uid(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs `argv` on the host as uid/gid `uid` with no groups and no capabilities: what a process that
    escaped a sandbox would be."""
    return subprocess.run(argv, capture_output=True, text=True, user=uid, group=uid, extra_groups=[])


def test_the_sandbox_root_is_its_own_unprivileged_host_range(server, sandboxes):
    a, b = sandboxes.create(), sandboxes.create()
    base = _range_of(server, a.id)
    assert base is not None and base >= 0x100000, base
    # Inside: uid 0 and gid 0 are the first ids of the recorded range, 65536 of them.
    assert _id_map(a, "uid_map") == [0, base, RANGE]
    assert _id_map(a, "gid_map") == [0, base, RANGE]
    assert a.commands.run("id", ["-u"]).stdout.strip() == "0"
    # Another sandbox has another range, not overlapping.
    other = _range_of(server, b.id)
    assert other is not None and abs(other - base) >= RANGE, (base, other)
    assert _id_map(b, "uid_map") == [0, other, RANGE]

    # From the host: the guest daemon (the sandbox's root) and a process of `user` run as range ids.
    started = _sh(a, "sleep 300 >/dev/null 2>&1 & echo started", as_user=True)
    assert started.exit_code == 0, started
    seen: dict[int, tuple[list[int], list[int]]] = {}

    def sleeper_seen():
        for pid in sandbox_processes(a.id):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                    seen[pid] = _host_ids(pid)
                    return True
            except OSError:
                continue
        return False

    wait_until(sleeper_seen, timeout=30, what="the sandbox's sleep process on the host")
    for uids, gids in seen.values():
        assert uids == [base + 1000] * 4 and gids == [base + 1000] * 4, (uids, gids)
    pids = sandbox_processes(a.id)
    assert pids, "the sandbox has host processes"
    for pid in pids:
        try:
            uids, gids = _host_ids(pid)
        except OSError:
            continue
        assert all(base <= uid < base + RANGE for uid in uids), (pid, uids)
        assert all(base <= gid < base + RANGE for gid in gids), (pid, gids)
        assert 0 not in uids

    # The range is released with the sandbox and never left behind.
    a.kill()
    wait_until(lambda: _range_of(server, a.id) is None, timeout=60, what="the range's release")


def test_a_sandbox_cannot_see_or_signal_host_processes_load_modules_mount_or_use_raw_sockets(server, sandboxes):
    sb = sandboxes.create()
    host_pid = os.getpid()
    script = f"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
out = {{}}
out['host_pid_visible'] = os.path.exists('/proc/{host_pid}')
try:
    os.kill({host_pid}, 0); out['kill'] = 'ok'
except OSError as e:
    out['kill'] = errno.errorcode[e.errno]
def err(result):
    return 'ok' if result == 0 else errno.errorcode[ctypes.get_errno()]
# finit_module(-1, "", 0) and init_module(NULL, 0, ""): a capability check comes first.
out['finit_module'] = err(libc.syscall(313, -1, b'', 0))
out['init_module'] = err(libc.syscall(175, None, 0, b''))
os.makedirs('/tmp/m', exist_ok=True)
out['mount'] = err(libc.mount(b'none', b'/tmp/m', b'tmpfs', 0, None))
out['bind'] = err(libc.mount(b'/etc', b'/tmp/m', None, 4096, None))
for name, family, kind, proto in [('raw', socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                                  ('raw_tcp', socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
                                  ('packet', socket.AF_PACKET, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(family, kind, proto).close(); out[name] = 'ok'
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
print(out)
"""
    ran = _py(sb, script)
    assert ran.exit_code == 0, ran
    out = eval(ran.stdout.strip())  # a dict literal printed by the script above
    assert out["host_pid_visible"] is False, out
    assert out["kill"] == "ESRCH", out
    for what in ["finit_module", "init_module", "mount", "bind", "raw", "raw_tcp", "packet"]:
        assert out[what] in ("EPERM", "EACCES"), (what, out)
    # Whatever it runs is its range on the host: the whole sandbox sees nothing but itself.
    listing = sb.commands.run("sh", ["-c", "ls /proc | grep -c '^[0-9]'"])
    assert int(listing.stdout.strip()) < 50, listing


def test_what_a_sandbox_writes_is_zero_based_on_disk_and_an_escaped_root_owns_nothing(server, sandboxes):
    sb = sandboxes.create()
    base = _range_of(server, sb.id)
    assert base is not None
    sb.files.write("/workspace/root.txt", "root")
    sb.files.write("/home/user/user.txt", "user", user="user")
    made = _sh(sb, "touch /home/user/ran.txt && mkdir -p /home/user/d && stat -c %u:%g /home/user/ran.txt", as_user=True)
    assert made.exit_code == 0 and made.stdout.strip() == "1000:1000", made
    inside = sb.commands.run("stat", ["-c", "%u:%g", "/workspace/root.txt", "/home/user/user.txt"])
    assert inside.stdout.split() == ["0:0", "1000:1000"], inside

    upper = server.data_dir / "sandboxes" / sb.id / "disk" / "upper"  # on the sandbox's own disk image
    root_file = (upper / "workspace" / "root.txt").stat()
    assert (root_file.st_uid, root_file.st_gid) == (0, 0)
    for name in ["user.txt", "ran.txt", "d"]:
        owned = (upper / "home" / "user" / name).stat()
        assert (owned.st_uid, owned.st_gid) == (1000, 1000), name
    # No file on disk carries a range id, so a process that escaped as the sandbox's root (host uid
    # `base`) owns nothing: it can neither reach the data dir nor write the sandbox's own files.
    escaped = _as_host_uid(
        base, ["sh", "-c", f"cat {upper / 'workspace' / 'root.txt'}; echo x >> {upper / 'home' / 'user' / 'user.txt'}"]
    )
    assert escaped.returncode != 0 and "Permission denied" in escaped.stderr, escaped
    # Nothing was chowned into the range for this sandbox.
    assert all(
        not (base <= path.lstat().st_uid < base + RANGE) for path in upper.rglob("*")
    )


def test_two_sandboxes_of_a_tenant_share_a_volume_with_ownership_both_ways(server, sandboxes):
    volume = Volume.create(unique("uvol"), api_key=server.key, base_url=server.url)
    try:
        a = sandboxes.create(volumes=[volume.mount("/data")])
        b = sandboxes.create(volumes=[volume.mount("/data")])
        assert _range_of(server, a.id) != _range_of(server, b.id)
        assert _sh(a, "chmod 777 /data").exit_code == 0
        a.files.write("/data/from-a-user.txt", "a", user="user")
        b.files.write("/data/from-b-root.txt", "b")
        for sb in (a, b):
            owners = sb.commands.run("stat", ["-c", "%n %u:%g", "/data/from-a-user.txt", "/data/from-b-root.txt"])
            assert owners.stdout.split("\n")[:2] == ["/data/from-a-user.txt 1000:1000", "/data/from-b-root.txt 0:0"], owners
        # `user` of b may write what `user` of a created (same uid 1000 in both), not root's file.
        assert _sh(b, "echo more >> /data/from-a-user.txt", as_user=True).exit_code == 0
        assert _sh(b, "echo no >> /data/from-b-root.txt", as_user=True).exit_code != 0
        assert a.files.read("/data/from-a-user.txt") == "amore\n"
        # On disk the volume is 0-based: uid 1000 and uid 0, no range id.
        data = server.data_dir / "volumes" / volume.id / "data"
        assert (data / "from-a-user.txt").stat().st_uid == 1000
        assert (data / "from-b-root.txt").stat().st_uid == 0
        # And the volume's own API (no sandbox) sees the same owners.
        assert volume.files.read("/from-b-root.txt") == "b"
    finally:
        sandboxes.cleanup()
        volume.delete()


def test_hibernate_resume_and_fork_keep_files_and_ownership(server, sandboxes):
    sb = sandboxes.create()
    sb.files.write("/home/user/mine.txt", "kept", user="user")
    made = _sh(sb, "cp -p /home/user/mine.txt /home/user/odd.txt && chown 1234:2345 /home/user/odd.txt && stat -c %u /home/user/mine.txt")
    assert made.exit_code == 0 and made.stdout.strip() == "1000", made

    child = sb.fork()
    sandboxes.created.append((child.id, server.key))
    assert _range_of(server, child.id) not in (None, _range_of(server, sb.id))
    owners = child.commands.run("stat", ["-c", "%u:%g", "/home/user/mine.txt", "/home/user/odd.txt"])
    assert owners.stdout.split() == ["1000:1000", "1234:2345"], owners
    assert child.files.read("/home/user/mine.txt") == "kept"
    assert _sh(child, "echo child >> /home/user/mine.txt", as_user=True).exit_code == 0

    snap = sb.hibernate()
    # A hibernated sandbox holds no range (nothing of it runs); resume gets one again.
    wait_until(lambda: _range_of(server, sb.id) is None, timeout=60, what="the hibernated sandbox's release")
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    base = _range_of(server, resumed.id)
    assert base is not None and _id_map(resumed, "uid_map") == [0, base, RANGE]
    owners = resumed.commands.run("stat", ["-c", "%u:%g", "/home/user/mine.txt", "/home/user/odd.txt"])
    assert owners.stdout.split() == ["1000:1000", "1234:2345"], owners
    assert resumed.files.read("/home/user/mine.txt") == "kept"
    assert _sh(resumed, "echo again >> /home/user/mine.txt", as_user=True).exit_code == 0


def test_a_restart_keeps_live_ranges_and_frees_none_twice(server, sandboxes):
    sb = sandboxes.create()
    base = _range_of(server, sb.id)
    server.stop()
    server.start()
    assert _range_of(server, sb.id) == base, "a live sandbox keeps its range across a restart"
    assert _id_map(sb, "uid_map") == [0, base, RANGE]
    fresh = sandboxes.create()
    assert _range_of(server, fresh.id) != base, "a live range is never handed out again"


@pytest.fixture(scope="module")
def host_root_server(server):
    srv = sibling_server(server, "hostroot", ["--allow-host-root"])
    yield srv
    if srv.running:
        srv.kill_all(srv.key)
    srv.stop()


def test_allow_host_root_runs_sandboxes_as_the_host_root_and_records_no_range(host_root_server):
    sb = Sandbox.create(api_key=host_root_server.key, base_url=host_root_server.url)
    try:
        assert _id_map(sb, "uid_map") == [0, 0, 4294967295]
        assert _range_of(host_root_server, sb.id) is None
    finally:
        sb.kill()
    assert "allow-host-root" in host_root_server.log_path.read_text()
