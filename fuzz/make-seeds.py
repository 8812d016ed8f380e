#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target to fuzz/corpus/<target>/ (run from anywhere; the seeds are
committed, rerun this after changing it). Seeds are real inputs: paths clients send, tar archives as
the SDK and tar(1) make them (and the hostile shapes the extractor must refuse), JSON bodies and
WebSocket messages of the protocol, preview hosts, cookies and session files as guestd writes them."""

import hashlib
import io
import json
import os
import shutil
import tarfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def paths():
    for line in [
        "a/./b//c\n/workspace\n/root\nalpha.txt",
        "/../../etc/passwd\n/workspace\n/root\n../x",
        "~/project/main.py\n/workspace\n/home/user\n.",
        "../etc/passwd\n/workspace\n/root\n/etc/passwd",
        "a/b/l\n/\n/root\n../../x",
        "a/link\n/home/user/proj\n/home/user\nc/./d",
        "d\n/workspace\n/root\n.",
        "e\n/workspace\n/root\nd/..",
        "app/ui.js\n/workspace\n/root\ncore/../../x",
        ".hidden/x\n/workspace\n/root\n",
        "x\\y\n/\n/\n",
        "\n/workspace\n/root\n",
        "a\0b\n/workspace\n/root\n",
        "/workspace/.nullspace/runtime\n/workspace\n/root\n",
        "~\n/workspace\n/home/user\n..",
    ]:
        write("paths", line)


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry["name"])
            info.mtime = 1_700_000_000
            info.mode = entry.get("mode", 0o644)
            kind = entry.get("type", "file")
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = entry.get("mode", 0o755)
                archive.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry["link"]
                archive.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry["link"]
                archive.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                archive.addfile(info)
            elif kind == "char":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = 1, 3
                archive.addfile(info)
            else:
                data = entry.get("data", b"content\n")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    # tar(1) pads to 10 KiB records; keep the entries and the two zero blocks that end the archive.
    end = len(data.rstrip(b"\0"))
    return data[: (end + 511) // 512 * 512 + 1024]


def tar_extract():
    archives = [
        [{"name": "hello.txt"}],
        [{"name": "src", "type": "dir"}, {"name": "src/main.py", "data": b"print('hi')\n"}, {"name": "README.md"}],
        [{"name": "./a/b/c.txt"}, {"name": "a/link", "type": "symlink", "link": "b/c.txt"}],
        [{"name": "up", "type": "symlink", "link": "../x"}],
        [{"name": "abs", "type": "symlink", "link": "/etc/passwd"}],
        [{"name": "../escape.txt"}],
        [{"name": "/etc/evil"}],
        [{"name": "d", "type": "symlink", "link": "."}, {"name": "e", "type": "symlink", "link": "d/.."}],
        [{"name": "d", "type": "symlink", "link": "."}, {"name": "d/x.txt"}],
        [{"name": "l", "type": "symlink", "link": "sub"}, {"name": "l", "type": "file"}],
        [{"name": "sub", "type": "dir", "mode": 0o000}, {"name": "sub/x"}],
        [{"name": "h", "type": "hardlink", "link": "hello.txt"}],
        [{"name": "f", "type": "fifo"}],
        [{"name": "null", "type": "char"}],
        [{"name": "x" * 150 + "/" + "y" * 120}],
        [{"name": "dup"}, {"name": "dup", "type": "dir"}, {"name": "dup/z"}],
        [{"name": "setuid", "mode": 0o4755}],
        [{"name": ".", "type": "dir"}],
    ]
    # Mode byte: conflict merge (0), replace (1) or error (2), plus 4 for an existing target.
    for index, entries in enumerate(archives):
        for mode in (0, 5) if index % 3 else (0, 1, 2, 4, 5, 6):
            write("tar_extract", bytes([mode]) + tar_bytes(entries))
    write("tar_extract", bytes([0]) + tar_bytes([{"name": "pax-" + "p" * 200}], fmt=tarfile.PAX_FORMAT))
    write("tar_extract", bytes([1]) + tar_bytes([{"name": "u.txt"}], fmt=tarfile.USTAR_FORMAT))
    write("tar_extract", bytes([0]) + b"not a tar")


def session(**changes):
    record = {
        "upload_id": "up_planted0000000000",
        "kind": "file",
        "source_kind": "restartable_file",
        "target_path": "/workspace/big.bin",
        "content_length": 20_000_000,
        "part_size": 8_388_608,
        "part_count": 3,
        "conflict": "merge",
        "archive_format": None,
        "whole_checksum_sha256": None,
        "user": None,
        "status": "uploading",
        "received": [0],
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
        "idempotency_key": "key-1",
        "published_bytes": 0,
        "published_file_count": 0,
    }
    record.update(changes)
    return json.dumps(record)


def upload_ranges():
    mib = 1024 * 1024
    for text in [
        f"0 5 0\npart 0 5 5",
        f"0 0 0",
        f"{8 * mib + 5} {8 * mib + 5} 0\npart 1 5 5\npart 0 - {4 * mib},{4 * mib}",
        f"{512 * 1024 * mib} {8 * mib} 1\npart 0 {8 * mib} {8 * mib}\npart 0 1 1",
        f"{512 * 1024 * mib + 1} 3 0\npart 7 3 3\npart 0 4 3,1",
        f"{10**12} 100 0\npart 0 99 99",
        "18446744073709551615 18446744073709551615 1\npart 0 - 0",
        "5 5 0\nsession\n" + session(),
        "5 5 0\nsession\n" + session(status="completed", received=[0, 1, 2]),
        "5 5 0\nsession\n" + session(content_length=1, part_count=5, received=[4]),
        "5 5 0\nsession\n" + session(part_size=0, part_count=0),
        "5 5 0\nsession\n" + session(part_count=10**12),
        "5 5 0\nsession\n" + session(received=[99], status="staged"),
    ]:
        write("upload_ranges", text)


def preview():
    for lines in [
        ["8080-sb_abc123.localhost:3000", "localhost", "sb_abc123", "8080", "3000", "/?edge_token=pvg_abc.s3cret&x=1",
         "pvg_abc.s3cret", "/workspace/a.txt", "", "2000000000", "1700000000", "cookie: a=1; nullspace_edge_token=pvg_x.s; b=2"],
        ["3000-sb_x.preview.example.com.", "preview.example.com", "sb_x", "3000", "80", "/app?edge_token",
         "pvg_.x", "/", "user", "1", "2", "x-nullspace-preview-proxy-token: pvg_q.t", "cookie: nullspace_edge_token"],
        ["[::1]:3000", "localhost", "sb-a", "65535", "8443", "/ws?a=b&&edge_token=1&edge_token=2", "no-dot", "..", "root",
         "-5", "9223372036854775807", "cookie: nullspace_edge_token=a", "cookie: nullspace_edge_token = b; c"],
        ["0-sb.localhost", "LOCALHOST", "SB", "0", "0", "*", "pvg_" + "a" * 70 + ".s", "/x", "", "0", "0"],
        ["99999-sb.localhost:", "localhost.", "x" * 65, "1", "1", "http://8080-sb.localhost/?edge_token=z",
         "pvg_a." + "s" * 129, "/a", "", "10", "5", "host: 8080-sb.localhost"],
    ]:
        write("preview", "\n".join(lines))


def json_bodies():
    server = {
        0: [
            {},
            {"template": "base", "timeout_ms": 300000, "metadata": {"team": "eval"}, "envs": {"A": "1"},
             "cwd": "/workspace", "internet_access": False,
             "network": {"allow_out": ["1.1.1.1/32", "example.com"], "deny_out": ["0.0.0.0/0"]},
             "volumes": [{"ref": "data", "mount_path": "/data", "subpath": "a/b", "read_only": True},
                         {"ref": "vol_x", "mount_path": "/data/nested"}],
             "warm_pool": {"mode": "prefer", "wait_ms": 100}},
            {"template": "desktop", "desktop": {"resolution": {"width": 1280, "height": 800}, "dpi": 96}},
            {"cwd": "/proc/self", "volumes": [{"ref": "v", "mount_path": "/../etc", "subpath": "../x"}]},
            {"metadata": {"k" * 200: "v"}, "timeout_ms": 18446744073709551615, "envs": {"A=B": "x"}},
            {"warm_pool": {"mode": "sometimes", "wait_ms": -1}, "snapshot_id": "snap_x"},
        ],
        1: [{"timeout_ms": 60000, "timeout_action": "hibernate"}, {"timeout_ms": None}, []],
        2: [{"name": "data"}, {"name": "data", "max_size_bytes": 16777216}, {"name": ".hidden"}, {"name": ""}],
        3: [
            {"base_image": "python:3.12-slim", "name": "my-template:v1",
             "steps": [{"action": "apt_install", "packages": ["curl"]}, {"action": "run", "command": "echo hi"},
                       {"action": "pip_install", "packages": ["requests"]}],
             "build_envs": {"A": "1"}, "start_cmd": "python -m http.server"},
            {"dockerfile": "FROM python:3.12\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt\nCMD [\"python\", \"app.py\"]\n",
             "build_context": {"files": [{"path": "app.py", "content": "print(1)"}]}},
            {"dockerfile": "FROM scratch\nCOPY ../x /\nWORKDIR ../../..\nUSER root\n", "tags": ["a", "b"]},
        ],
    }
    for route, bodies in server.items():
        for body in bodies:
            write("json_bodies", bytes([route]) + json.dumps(body).encode())
    write("json_bodies", bytes([4]) + b'{"team":"eval"}')
    write("json_bodies", bytes([0]) + b"   ")
    write("json_bodies", bytes([0]) + b"[1,2]")
    guest = {
        5: [{"command": "ls", "args": ["-la"], "envs": {"A": "1"}, "cwd": "/tmp", "timeout_secs": 5},
            {"command": "echo $A", "shell": True, "user": "user", "background": True}, {"command": "x", "envs": {"": "v"}}],
        6: [{"path": "/workspace/a.txt", "encoding": "base64"}, {"path": "~/x"}],
        7: [{"path": "a.txt", "content": "hello", "encoding": "utf8"}],
        8: [{"path": "/"}, {"path": ""}, {"path": "a\u0000b"}],
        9: [{"old_path": "a", "new_path": "../b"}],
        10: [{"path": "/x", "permissions": "0755"}, {"path": "/x", "permissions": "rwxr-x---"}, {"path": "/x", "permissions": "0o17777"}],
        11: [{"path": "/workspace", "pattern": "**/*.py"}, {"path": "/", "pattern": "[a-"}],
        12: [{"files": ["/workspace/a.txt", "b.txt"], "pattern": "foo", "replacement": "bar", "dry_run": True}],
        13: [{"kind": "directory_tar", "source_kind": "directory_archive", "target_path": "/workspace/dir",
              "content_length": 10240, "archive_format": "tar", "checksum_algorithm": "sha256",
              "whole_checksum_sha256": "0" * 64}],
        14: [{"envs": {"A": "1"}, "cwd": "/workspace"}],
    }
    for route, bodies in guest.items():
        for body in bodies:
            write("json_bodies", bytes([route]) + json.dumps(body).encode())


def guest_protocol():
    for message in [
        {"type": "exec_start", "id": "1", "command": "ls", "args": ["-l"], "envs": {"A": "1"}, "cwd": "/tmp"},
        {"type": "exec_connect", "id": "2", "pid": 42},
        {"type": "file_watch", "id": "w", "path": "/workspace", "recursive": True, "timeout_secs": 1.5},
        {"type": "pty_start", "id": "p", "cols": 80, "rows": 24, "envs": {"TERM": "xterm"}},
        {"type": "pty_connect", "id": "p", "session_id": "pty_1"},
        {"type": "pty_input", "session_id": "pty_1", "data_base64": "aGkK"},
        {"type": "pty_input", "session_id": "pty_1", "data": "ls\n"},
        {"type": "pty_resize", "session_id": "pty_1", "cols": 0, "rows": 5000},
        {"type": "pty_kill", "session_id": "pty_1"},
        {"type": "nope", "id": 3},
    ]:
        write("guest_protocol", bytes([0]) + json.dumps(message).encode())
    write("guest_protocol", bytes([0]) + b"not json")
    for which, message in [
        (0, {"type": "exec_started", "id": "1", "pid": 7}),
        (0, {"type": "exec_stdout", "id": "1", "data": "hi\n"}),
        (0, {"type": "exec_exit", "id": "1", "exit_code": -1}),
        (0, {"type": "error", "id": None, "message": "bad"}),
        (1, {"type": "pty_output", "id": "p", "data_base64": "aGk="}),
        (2, {"type": "file_watch_event", "id": "w", "event_type": "create", "path": "/a"}),
        (3, {"status": "ok", "version": "0.1.0", "uptime_secs": 1.25}),
        (4, {"envs": {"A": "1"}, "cwd": "/workspace", "sandbox_id": "sb_1"}),
        (5, {"stdout": "x", "stderr": "", "exit_code": 0, "duration_ms": 1.5}),
        (6, {"pid": 1, "command": "sleep 1", "status": "running"}),
        (7, {"session_id": "pty_1", "pid": 3, "cols": 80, "rows": 24}),
    ]:
        write("guest_protocol", bytes([1, which]) + json.dumps(message).encode())
    for which, message in [
        (0, {"name": "a.txt", "path": "/a.txt", "type": "file", "size": 3, "mode": 33188, "permissions": "-rw-r--r--",
             "owner": "root", "group": "root", "modified_time": "2026-01-01T00:00:00Z", "symlink_target": None}),
        (2, {"error": "no", "code": "invalid_request", "retryable": False}),
    ]:
        write("guest_protocol", bytes([2, which]) + json.dumps(message).encode())
    write("guest_protocol", bytes([3, 2]) + "héllo wörld → ✓ 😀".encode() + b"\xff\xfe\xe2\x82" + "end".encode())
    write("guest_protocol", bytes([3, 0]) + b"\xf0\x9f\x98")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    paths()
    tar_extract()
    upload_ranges()
    preview()
    json_bodies()
    guest_protocol()
    for target in sorted(os.listdir(ROOT)):
        print(target, len(os.listdir(os.path.join(ROOT, target))))
