"""The `nullspace volume …` CLI and `sandbox create --volume` against the real server: volumes by name
and id, direct file commands, direct and resumable transfers checked by sha256, directory downloads
(extracted and as tar), signed URLs, file watches, a read-only mount inside a sandbox, the README's
command lines as written, and the error users get for a volume that does not exist."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from conftest import RUN_ID, unique


def run(cli, *args: str, stdin: str | bytes | None = None, cwd: Path | None = None, json_flag: bool = True,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Like `cli.run`, with stdin and a working directory."""
    argv = list(args)
    if json_flag and "--json" not in argv:
        argv.append("--json")
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [cli.srv.binary, *argv],
        input=data if data is not None else b"",
        capture_output=True,
        env=cli.env(),
        cwd=str(cwd or cli.home),
        timeout=timeout,
    )
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def ok(proc: subprocess.CompletedProcess[str]):
    """The JSON a successful `--json` command printed."""
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def volume(server, cli):
    name = unique("vol")
    created = cli.json("volume", "create", name)
    yield created
    cli.run("volume", "delete", created["id"])


def test_create_list_get_by_name_and_id(cli, volume):
    name, vid = volume["name"], volume["id"]
    assert vid.startswith("vol_") and volume["status"] == "available"
    assert {"used_bytes", "inode_count", "mount_count", "created_at"} <= set(volume)

    listed = cli.json("volume", "list")
    assert vid in {v["id"] for v in listed}
    projected = cli.json("volume", "list", "--fields", "id,name,mount_count,used_bytes")
    mine = [v for v in projected if v["id"] == vid]
    assert mine and set(mine[0]) == {"id", "name", "mount_count", "used_bytes"} and mine[0]["name"] == name
    rows = cli("volume", "list", "--fields", "id,name", json_flag=False)
    assert rows.returncode == 0 and f"{vid}\t{name}" in rows.stdout.splitlines()
    table = cli("volume", "list", json_flag=False)
    assert table.returncode == 0 and table.stdout.startswith("ID") and name in table.stdout

    assert cli.json("volume", "get", name)["id"] == vid
    assert cli.json("volume", "get", vid)["name"] == name
    assert cli.json("volume", "get", name, "--fields", "id,status") == {"id": vid, "status": "available"}
    human = cli("volume", "get", name, json_flag=False)
    assert human.returncode == 0 and vid in human.stdout and "status" in human.stdout


def test_write_from_stdin_read_back_and_write_files(cli, volume):
    name = volume["name"]
    wrote = run(cli, "volume", "write", name, "/hello.txt", stdin="hello", json_flag=False)
    assert wrote.returncode == 0, wrote.stderr
    assert run(cli, "volume", "read", name, "/hello.txt", json_flag=False).stdout == "hello"
    assert run(cli, "volume", "cat", name, "/hello.txt", json_flag=False).stdout == "hello"
    as_json = ok(run(cli, "volume", "read", name, "/hello.txt", "--encoding", "base64"))
    assert as_json == {"path": "/hello.txt", "encoding": "base64", "content": "aGVsbG8="}
    info = ok(run(cli, "volume", "write", name, "/bin.dat", "--encoding", "base64", stdin="AAEC/w=="))
    assert info["size"] == 4 and info["path"] == "/bin.dat"
    assert ok(run(cli, "volume", "read", name, "/bin.dat", "--encoding", "base64"))["content"] == "AAEC/w=="
    binary_cat = run(cli, "volume", "cat", name, "/bin.dat", json_flag=False)
    assert binary_cat.returncode == 1 and "not valid UTF-8" in binary_cat.stderr

    written = ok(run(cli, "volume", "write-files", name, '[["/batch/a.txt","a\\n"],["/batch/b.txt","b\\n"]]'))
    assert [f["path"] for f in written] == ["/batch/a.txt", "/batch/b.txt"]
    assert run(cli, "volume", "cat", name, "/batch/b.txt", json_flag=False).stdout == "b\n"
    listed = cli.json("volume", "ls-files", name, "/batch")
    assert sorted(f["path"] for f in listed) == ["/batch/a.txt", "/batch/b.txt"]
    table = cli("volume", "ls-files", name, "/batch", json_flag=False)
    assert table.returncode == 0 and "/batch/a.txt" in table.stdout


def test_stat_and_exists(cli, volume):
    name = volume["name"]
    ok(run(cli, "volume", "write", name, "/stat/five.txt", stdin="12345"))
    stat = cli.json("volume", "stat", name, "/stat/five.txt")
    assert stat["path"] == "/stat/five.txt" and stat["size"] == 5 and stat["is_dir"] is False
    assert cli.json("volume", "info", name, "/stat")["is_dir"] is True

    yes = cli("volume", "exists", name, "/stat/five.txt")
    assert yes.returncode == 0 and json.loads(yes.stdout) == {"path": "/stat/five.txt", "exists": True}
    no = cli("volume", "exists", name, "/stat/missing.txt")
    assert no.returncode == 1 and json.loads(no.stdout) == {"path": "/stat/missing.txt", "exists": False}
    assert cli("volume", "exists", name, "/stat/missing.txt", json_flag=False).stdout.strip() == "false"

    missing = cli("volume", "stat", name, "/stat/missing.txt", json_flag=False)
    assert missing.returncode == 1 and "hint:" in missing.stderr


def test_mkdir_mv_chmod_rm(cli, volume):
    name = volume["name"]
    assert cli("volume", "mkdir", name, "/tree/deep/er").returncode == 0
    assert cli.json("volume", "stat", name, "/tree/deep/er")["is_dir"] is True
    ok(run(cli, "volume", "write", name, "/tree/deep/er/f.txt", stdin="f"))
    moved = cli.json("volume", "mv", name, "/tree/deep/er/f.txt", "/tree/g.txt")
    assert moved["path"] == "/tree/g.txt"
    assert cli("volume", "exists", name, "/tree/deep/er/f.txt").returncode == 1
    assert cli.json("volume", "chmod", name, "/tree/g.txt", "0600") == {"path": "/tree/g.txt", "mode": "0600"}
    assert cli.json("volume", "stat", name, "/tree/g.txt")["mode"] == "0600"
    removed = cli("volume", "rm", name, "/tree", json_flag=False)
    assert removed.returncode == 0 and "removed /tree" in removed.stdout
    assert cli("volume", "exists", name, "/tree").returncode == 1


def test_find_search_replace(cli, volume):
    name = volume["name"]
    ok(run(cli, "volume", "write-files", name, json.dumps({"/src/a.py": "x = 'old'\nold again\n", "/src/b.txt": "none\n"})))
    found = cli.json("volume", "find", name, "/src", "old")
    assert sorted((m["file"], m["line"]) for m in found) == [("/src/a.py", 1), ("/src/a.py", 2)]
    grep = cli("volume", "find", name, "/src", "again", json_flag=False)
    assert grep.stdout == "/src/a.py:2:old again\n"
    assert cli.json("volume", "search", name, "/src", "*.py") == ["/src/a.py"]

    dry = cli.json("volume", "replace", name, "old", "new", "/src/a.py", "/src/b.txt", "--dry-run")
    assert dry["dry_run"] is True and dry["replacements"] == 2 and dry["files_modified"] == 1
    assert run(cli, "volume", "cat", name, "/src/a.py", json_flag=False).stdout == "x = 'old'\nold again\n"
    done = cli.json("volume", "replace", name, "old", "new", "/src/a.py")
    assert done["dry_run"] is False and done["replacements"] == 2
    assert run(cli, "volume", "cat", name, "/src/a.py", json_flag=False).stdout == "x = 'new'\nnew again\n"


@pytest.mark.parametrize("resumable", ["always", "never"])
def test_upload_then_download_keeps_every_byte(cli, volume, tmp_path, resumable):
    name = volume["name"]
    local = tmp_path / "random.bin"
    local.write_bytes(os.urandom(9 * 1024 * 1024 + 12345))
    remote = f"/uploads/{resumable}.bin"
    uploaded = ok(run(cli, "volume", "upload", name, str(local), remote, "--resumable", resumable, "--concurrency", "3"))
    assert uploaded["transport"] == ("resumable" if resumable == "always" else "direct")
    assert uploaded["target_path"] == remote and uploaded["source_kind"] == "file"
    assert uploaded["result"]["bytes_uploaded"] == local.stat().st_size
    assert (uploaded["result"]["upload_id"] is not None) == (resumable == "always")
    assert cli.json("volume", "stat", name, remote)["size"] == local.stat().st_size

    copy = tmp_path / "copy.bin"
    downloaded = ok(run(cli, "volume", "download", name, remote, str(copy)))
    assert downloaded["kind"] == "file" and downloaded["bytes_downloaded"] == local.stat().st_size
    assert downloaded["volume_id"] == volume["id"] and downloaded["extracted"] is False
    assert sha256(copy) == sha256(local)

    again = run(cli, "volume", "download", name, remote, str(copy), json_flag=False)
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    copy.write_bytes(b"stale")
    ok(run(cli, "volume", "download", name, remote, str(copy), "--force"))
    assert sha256(copy) == sha256(local)


def test_directory_download_extracted_and_as_archive(cli, volume, tmp_path):
    name = volume["name"]
    ok(run(cli, "volume", "write-files", name, '[["/dir/a.txt","a\\n"],["/dir/sub/b.txt","b\\n"]]'))

    extracted = ok(run(cli, "volume", "download", name, "/dir", str(tmp_path / "out")))
    assert extracted["extracted"] is True and extracted["archive_format"] == "tar"
    assert (tmp_path / "out" / "a.txt").read_text() == "a\n"
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b\n"

    archived = ok(run(cli, "volume", "download", name, "/dir", str(tmp_path / "dir.tar"), "--archive"))
    assert archived["kind"] == "directory_archive" and archived["extracted"] is False
    with tarfile.open(tmp_path / "dir.tar") as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
        assert {"a.txt", "sub/b.txt"} <= names
        member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "sub/b.txt")
        assert tar.extractfile(member).read() == b"b\n"


def test_signed_urls_work_without_the_key(cli, volume):
    name = volume["name"]
    ok(run(cli, "volume", "write", name, "/signed/hello.txt", stdin="signed hello"))
    printed = cli("volume", "download-url", name, "/signed/hello.txt", json_flag=False)
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert "/v1/signed/" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"signed hello"
    assert cli.json("volume", "download-url", name, "/signed/hello.txt")["url"].startswith("http")

    upload = cli.json("volume", "upload-url", name, "/signed/put.bin")
    assert upload["token"]
    request = urllib.request.Request(upload["url"], data=b"\x00put\xff", method="PUT",
                                     headers={"content-type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status < 400
    assert ok(run(cli, "volume", "read", name, "/signed/put.bin", "--encoding", "base64"))["content"] == "AHB1dP8="


def test_watch_prints_changes(cli, volume):
    name = volume["name"]
    assert cli("volume", "mkdir", name, "/watched").returncode == 0
    watcher = subprocess.Popen(
        [cli.srv.binary, "volume", "watch", name, "/watched", "--recursive", "--timeout", "6", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env(),
    )
    try:
        armed = watcher.stderr.readline()  # printed once the server confirmed the watch
        assert armed.startswith("watching /watched"), armed
        ok(run(cli, "volume", "write", name, "/watched/new.txt", stdin="x"))
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(e["name"] == "new.txt" and e["path"] == "/watched/new.txt" for e in events), events


def test_sandbox_mounts_volume_read_only(server, cli, volume):
    name = volume["name"]
    ok(run(cli, "volume", "write", name, "/mounted/data.txt", stdin=f"from volume {RUN_ID}"))
    created = cli.json(
        "sandbox", "create", "--timeout", "300",
        "--volume", f"ref={name},mount=/data,ro=true",
        "--volume", f"ref={volume['id']},mount=/sub,subpath=/mounted",
    )
    sandbox_id = created["id"]
    try:
        read = cli("sandbox", "exec", sandbox_id, "--", "cat", "/data/mounted/data.txt", json_flag=False)
        assert read.returncode == 0 and read.stdout == f"from volume {RUN_ID}", read.stderr
        sub = cli("sandbox", "exec", sandbox_id, "--", "cat", "/sub/data.txt", json_flag=False)
        assert sub.returncode == 0 and sub.stdout == f"from volume {RUN_ID}", sub.stderr
        write = cli("sandbox", "exec", sandbox_id, "--", "sh", "-c", "echo x > /data/new.txt", json_flag=False)
        assert write.returncode != 0 and "read-only" in write.stderr.lower()
        refused = cli("sandbox", "file", "write", sandbox_id, "/data/new.txt", "x")
        assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "volume_read_only"
        assert cli.json("volume", "get", name)["mount_count"] == 1, "one sandbox, mounted at two paths"
    finally:
        cli("sandbox", "kill", sandbox_id)


def test_readme_lines_run_as_written(cli, tmp_path):
    name = unique("team-data")
    ok(run(cli, "volume", "create", name))
    try:
        (tmp_path / "dist").mkdir()
        (tmp_path / "dist" / "model.bin").write_bytes(os.urandom(300_000))
        ok(run(cli, "volume", "write-files", name, '[["/datasets/frontend/index.html","<p>hi</p>\\n"]]'))
        lines = [
            "nullspace volume ls-files team-data /",
            "nullspace volume upload team-data ./dist/model.bin /models/model.bin",
            "nullspace volume download team-data /models/model.bin ./model.bin",
            "nullspace volume download team-data /datasets/frontend ./frontend-copy",
            "nullspace volume download team-data /datasets/frontend ./frontend-copy.tar --archive",
        ]
        for line in lines:
            argv = [name if word == "team-data" else word for word in line.split()[1:]]
            proc = run(cli, *argv, cwd=tmp_path, json_flag=False)
            assert proc.returncode == 0, f"{line}: {proc.stderr}"
        assert sha256(tmp_path / "model.bin") == sha256(tmp_path / "dist" / "model.bin")
        assert (tmp_path / "frontend-copy" / "index.html").read_text() == "<p>hi</p>\n"
        assert tarfile.is_tarfile(tmp_path / "frontend-copy.tar")
    finally:
        deleted = cli("volume", "delete", name, json_flag=False)
        assert deleted.returncode == 0 and "deleted volume" in deleted.stdout
    assert cli("volume", "get", name).returncode == 1


def test_unknown_volume_is_a_clear_user_error(cli):
    missing = f"missing-{RUN_ID}"
    human = cli("volume", "get", missing, json_flag=False)
    assert human.returncode == 1 and human.stdout == ""
    assert f"no volume is named or has the id `{missing}`" in human.stderr
    assert "hint: list your volumes with `nullspace volume list`" in human.stderr
    as_json = cli("volume", "ls-files", missing, "/")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"]["code"] == "not_found"
    by_id = cli("volume", "read", "vol_doesnotexist", "/x", json_flag=False)
    assert by_id.returncode == 1 and "no volume" in by_id.stderr
    mount = cli("sandbox", "create", "--volume", f"ref={missing},mount=/data", json_flag=False)
    assert mount.returncode == 1 and missing in mount.stderr
    bad_spec = cli("sandbox", "create", "--volume", "mount=/data", json_flag=False)
    assert bad_spec.returncode == 2 and "ref=<name-or-id>" in bad_spec.stderr


def test_sandbox_volume_attach_health_detach(cli, volume):
    name = volume["name"]
    ok(run(cli, "volume", "write", name, "/runtime/hello.txt", stdin="attached later"))
    sandbox_id = ok(run(cli, "sandbox", "create", "--timeout", "300"))["id"]
    try:
        att = ok(run(cli, "sandbox", "volume", "attach", sandbox_id, f"ref={name},mount=/late,subpath=runtime,ro=true"))
        assert att["state"] == "mounted" and att["mount_path"] == "/late" and att["read_only"] is True
        read = cli("sandbox", "exec", sandbox_id, "--", "cat", "/late/hello.txt", json_flag=False)
        assert read.returncode == 0 and read.stdout == "attached later", read.stderr
        listed = ok(run(cli, "sandbox", "volume", "list", sandbox_id))
        assert [a["id"] for a in (listed if isinstance(listed, list) else [listed])] == [att["id"]]
        human = run(cli, "sandbox", "volume", "list", sandbox_id, json_flag=False)
        assert human.returncode == 0 and att["id"] in human.stdout and "/late" in human.stdout and " ro " in human.stdout
        assert ok(run(cli, "sandbox", "volume", "health", sandbox_id, att["id"]))["state"] == "mounted"
        assert ok(run(cli, "sandbox", "volume", "remount", sandbox_id, att["id"]))["state"] == "mounted"
        by_volume = ok(run(cli, "volume", "attachments", name))
        assert sandbox_id in json.dumps(by_volume)
        # A mount path the runtime owns: a clear error, exit 1.
        refused = run(cli, "sandbox", "volume", "attach", sandbox_id, f"ref={name},mount=/proc/x")
        assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "invalid_request"
        detached = ok(run(cli, "sandbox", "volume", "detach", sandbox_id, att["id"]))
        assert detached["state"] == "released"
        gone = cli("sandbox", "exec", sandbox_id, "--", "cat", "/late/hello.txt", json_flag=False)
        assert gone.returncode != 0
        missing = run(cli, "sandbox", "volume", "health", sandbox_id, att["id"])
        assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "not_found"
    finally:
        cli("sandbox", "kill", sandbox_id)
