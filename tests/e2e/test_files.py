"""Files in a sandbox through the official client, and path confinement: no path, `..` or symlink in a
file API request reaches the host's filesystem."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid

import pytest

from nullspace import SandboxError


@pytest.fixture
def base(sandbox):
    path = f"/workspace/e2e-{uuid.uuid4().hex[:8]}"
    yield path
    sandbox.commands.run("rm", ["-rf", path])


def test_text_round_trip(sandbox, base):
    text = "héllo wörld ✓\nsecond line\n"
    info = sandbox.files.write(f"{base}/text/hello.txt", text)  # parent dirs are created
    assert info.path == f"{base}/text/hello.txt"
    assert info.name == "hello.txt"
    assert info.size == len(text.encode())
    assert info.is_dir is False
    assert sandbox.files.read(f"{base}/text/hello.txt") == text
    assert sandbox.commands.run("cat", [f"{base}/text/hello.txt"]).stdout == text
    # overwrite replaces the content
    sandbox.files.write(f"{base}/text/hello.txt", "short")
    assert sandbox.files.read(f"{base}/text/hello.txt") == "short"


def test_binary_round_trip(sandbox, base):
    small = bytes(range(256)) * 4
    sandbox.files.write(f"{base}/small.bin", small)
    assert sandbox.files.read(f"{base}/small.bin", format="bytes") == small

    big = os.urandom(5 * 1024 * 1024)
    info = sandbox.files.write(f"{base}/big.bin", big)
    assert info.size == len(big)
    assert sandbox.files.read(f"{base}/big.bin", format="bytes") == big

    # streamed upload (PUT with a file-like body) of another 5 MiB
    big2 = os.urandom(5 * 1024 * 1024 + 17)
    info = sandbox.files.write(f"{base}/big2.bin", io.BytesIO(big2))
    assert info.size == len(big2)
    assert sandbox.files.read(f"{base}/big2.bin", format="bytes") == big2
    digest = sandbox.commands.run("sha256sum", [f"{base}/big2.bin"]).stdout.split()[0]
    import hashlib

    assert digest == hashlib.sha256(big2).hexdigest()


def test_write_files(sandbox, base):
    infos = sandbox.files.write_files(
        [(f"{base}/wf/a.txt", "alpha\n"), (f"{base}/wf/sub/b.bin", b"\x00\x01\xffbeta")]
    )
    assert [i.path for i in infos] == [f"{base}/wf/a.txt", f"{base}/wf/sub/b.bin"]
    assert sandbox.files.read(f"{base}/wf/a.txt") == "alpha\n"
    assert sandbox.files.read(f"{base}/wf/sub/b.bin", format="bytes") == b"\x00\x01\xffbeta"


def test_list_depth(sandbox, base):
    root = f"{base}/tree"
    sandbox.files.write(f"{root}/a.txt", "a")
    sandbox.files.write(f"{root}/d1/b.txt", "b")
    sandbox.files.write(f"{root}/d1/d2/c.txt", "c")

    depth1 = sandbox.files.list(root, depth=1)
    assert {e.name for e in depth1} == {"a.txt", "d1"}
    by_name = {e.name: e for e in depth1}
    assert by_name["d1"].is_dir and not by_name["a.txt"].is_dir
    assert by_name["a.txt"].path == f"{root}/a.txt"
    assert by_name["a.txt"].size == 1

    depth2 = {e.path for e in sandbox.files.list(root, depth=2)}
    assert depth2 == {f"{root}/a.txt", f"{root}/d1", f"{root}/d1/b.txt", f"{root}/d1/d2"}


def test_exists_info_permissions(sandbox, base):
    path = f"{base}/perm.txt"
    assert sandbox.files.exists(path) is False
    sandbox.files.write(path, "secret")
    assert sandbox.files.exists(path) is True
    assert sandbox.files.exists(base) is True

    sandbox.files.set_permissions(path, "0640")
    info = sandbox.files.get_info(path)
    assert info.mode == "0640"
    assert info.size == 6 and info.is_dir is False
    assert sandbox.commands.run("stat", ["-c", "%a", path]).stdout.strip() == "640"

    with pytest.raises(SandboxError) as err:
        sandbox.files.get_info(f"{base}/missing.txt")
    assert err.value.code in ("file_not_found", "not_found")


def test_user_owned_write(sandbox, base):
    sandbox.commands.run("mkdir", ["-p", base])
    sandbox.commands.run("chmod", ["777", base])
    info = sandbox.files.write(f"{base}/owned.txt", "mine", user="user")
    assert sandbox.commands.run("stat", ["-c", "%U", f"{base}/owned.txt"]).stdout.strip() == "user"
    if info.owner is not None:
        assert info.owner == "user"


def test_mkdir_rename_remove(sandbox, base):
    deep = f"{base}/m/a/b/c"
    sandbox.files.make_dir(deep)
    sandbox.files.make_dir(deep)  # idempotent, like mkdir -p
    assert sandbox.files.get_info(deep).is_dir

    sandbox.files.write(f"{base}/m/old.txt", "moved content")
    new = sandbox.files.rename(f"{base}/m/old.txt", f"{base}/m/a/new.txt")
    assert new.path == f"{base}/m/a/new.txt"
    assert not sandbox.files.exists(f"{base}/m/old.txt")
    assert sandbox.files.read(f"{base}/m/a/new.txt") == "moved content"

    sandbox.files.remove(f"{base}/m")  # a non-empty directory, recursively
    assert not sandbox.files.exists(f"{base}/m")
    assert sandbox.commands.run("test", ["-e", f"{base}/m"]).exit_code == 1


def test_search_find_replace(sandbox, base):
    root = f"{base}/src"
    sandbox.files.write(f"{root}/main.py", "import os\n# TODO: needle here\nprint('old')\n")
    sandbox.files.write(f"{root}/pkg/util.py", "def f():\n    return 'old old'\n")
    sandbox.files.write(f"{root}/notes.txt", "needle in notes\n")

    found = sandbox.files.search_files(root, "*.py")
    assert sorted(found) == [f"{root}/main.py", f"{root}/pkg/util.py"]

    matches = sandbox.files.find_files(root, "needle")
    got = sorted((m.file, m.line) for m in matches)
    assert got == [(f"{root}/main.py", 2), (f"{root}/notes.txt", 1)]
    assert any("needle here" in m.content for m in matches)

    count = sandbox.files.replace_in_files([f"{root}/main.py", f"{root}/pkg/util.py"], "old", "new")
    assert count == 3
    assert sandbox.files.read(f"{root}/main.py") == "import os\n# TODO: needle here\nprint('new')\n"
    assert sandbox.files.read(f"{root}/pkg/util.py") == "def f():\n    return 'new new'\n"


# ------------------------------------------------------------------------------------------------
# path confinement


def test_dotdot_stays_in_sandbox(server, sandbox):
    name = f"ns-e2e-escape-{uuid.uuid4().hex}"
    host_path = f"/tmp/{name}"
    assert not os.path.exists(host_path)
    sandbox.files.write(f"/workspace/../../../../tmp/{name}", "inside")
    try:
        assert not os.path.exists(host_path), "a write with .. landed on the host"
        assert sandbox.commands.run("cat", [f"/tmp/{name}"]).stdout == "inside"
        assert sandbox.files.read(f"/../../tmp/{name}") == "inside"
        # the raw byte route resolves `..` inside the sandbox too
        with server.http() as http:
            resp = http.get(f"/v1/sandboxes/{sandbox.id}/file", params={"path": f"/workspace/../../../tmp/{name}"})
            assert resp.status_code == 200 and resp.content == b"inside"
    finally:
        if os.path.exists(host_path):
            os.remove(host_path)


def test_symlinks_resolve_inside_sandbox(sandbox):
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    sandbox.files.write("/etc/e2e-marker", marker)
    run = sandbox.commands.run("ln -sfn / /workspace/rootlink && ln -sfn /etc /workspace/etclink", shell=True)
    assert run.exit_code == 0, run.stderr

    assert sandbox.files.read("/workspace/etclink/e2e-marker") == marker
    assert sandbox.files.read("/workspace/rootlink/etc/e2e-marker") == marker

    # /etc seen through the links is the sandbox's /etc (the one its processes see), not the host's
    sandbox_hostname = sandbox.commands.run("cat", ["/etc/hostname"]).stdout
    assert sandbox.files.read("/workspace/etclink/hostname") == sandbox_hostname
    assert sandbox.files.read("/workspace/rootlink/etc/hostname") == sandbox_hostname
    sandbox_os = sandbox.commands.run("cat", ["/etc/os-release"]).stdout
    assert sandbox.files.read("/workspace/rootlink/etc/os-release") == sandbox_os
    host_only = f"/etc/ns-e2e-host-only-{uuid.uuid4().hex}"
    with open(host_only, "w") as fh:
        fh.write("host only")
    try:
        for path in (f"/workspace/rootlink{host_only}", f"/workspace/etclink/{os.path.basename(host_only)}", host_only):
            assert not sandbox.files.exists(path), f"host-only file visible via {path}"
    finally:
        os.remove(host_only)

    # writing through the symlink writes the sandbox's file, never the host's
    sandbox.files.write("/workspace/etclink/e2e-marker-2", "via link")
    assert not os.path.exists("/etc/e2e-marker-2")
    assert sandbox.commands.run("cat", ["/etc/e2e-marker-2"]).stdout == "via link"


def test_host_paths_not_exposed(server, sandbox):
    host_dir = tempfile.mkdtemp(prefix="ns-e2e-host-")
    secret = f"host-secret-{uuid.uuid4().hex}"
    host_file = os.path.join(host_dir, "secret.txt")
    with open(host_file, "w") as fh:
        fh.write(secret)
    try:
        sandbox.commands.run("ln", ["-sfn", host_file, "/workspace/hostlink"])
        sandbox.commands.run("ln", ["-sfn", host_dir, "/workspace/hostdirlink"])
        candidates = [
            host_file,
            "/workspace/hostlink",
            "/workspace/hostdirlink/secret.txt",
            f"/workspace/../../..{host_file}",
            f"/proc/1/root{host_file}",
            f"/proc/self/root{host_file}",
            f"/workspace/rootlink{host_file}",
        ]
        for path in candidates:
            try:
                content = sandbox.files.read(path)
            except SandboxError:
                content = ""
            assert secret not in content, f"host file readable via {path}"
            try:
                raw = sandbox.files.read(path, format="bytes")
            except SandboxError:
                raw = b""
            assert secret.encode() not in raw, f"host file readable (bytes) via {path}"
            assert secret not in " ".join(_safe_search(sandbox, path))
        try:
            listed = sandbox.files.list(host_dir)
        except SandboxError:
            listed = []
        assert "secret.txt" not in {e.name for e in listed}
        # and the processes in the sandbox cannot see it either
        out = sandbox.commands.run(f"cat {host_file} /workspace/hostlink 2>&1; true", shell=True).stdout
        assert secret not in out

        # writing through the absolute symlink does not modify the host file
        try:
            sandbox.files.write("/workspace/hostlink", "overwritten")
        except SandboxError:
            pass
        with open(host_file) as fh:
            assert fh.read() == secret

        # the data dir of the server is not reachable from the sandbox either
        data_dir = str(server.data_dir)
        try:
            listed = sandbox.files.list(f"{data_dir}/sandboxes")
        except SandboxError:
            listed = []
        assert sandbox.id not in {e.name for e in listed}
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def _safe_search(sandbox, path: str) -> list[str]:
    try:
        return [m.content for m in sandbox.files.find_files(os.path.dirname(path) or "/", "host-secret")]
    except SandboxError:
        return []


def test_a_rename_is_one_watch_event_and_every_change_is_reported(sandbox):
    """The protocol's contract: a rename yields `rename` (one event, under the new name; a move out of the
    watched tree keeps the old one), `set_permissions` yields `chmod`."""
    import time as _time

    root = f"/workspace/watch-{uuid.uuid4().hex[:8]}"
    sandbox.files.make_dir(root)
    sandbox.files.write(f"{root}/original.txt", "x")
    events: list[tuple[str, str]] = []
    handle = sandbox.files.watch_dir(root, lambda e: events.append((e.type, e.name)), recursive=True, timeout=30)
    try:
        sandbox.files.rename(f"{root}/original.txt", f"{root}/renamed.txt")
        sandbox.files.set_permissions(f"{root}/renamed.txt", "0640")
        sandbox.files.rename(f"{root}/renamed.txt", "/workspace/outside.txt")
        deadline = _time.monotonic() + 15
        while len(events) < 3 and _time.monotonic() < deadline:
            _time.sleep(0.05)
        _time.sleep(0.3)  # nothing more may arrive
        assert [(str(kind).split(".")[-1].lower(), name) for kind, name in events] == [
            ("rename", "renamed.txt"),
            ("chmod", "renamed.txt"),
            ("rename", "renamed.txt"),
        ], events
    finally:
        handle.stop()
