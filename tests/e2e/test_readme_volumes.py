"""The seed README's "Persistent Volumes" examples, run unmodified: its two Python blocks as scripts with
nothing but the environment configuring the official client (`NULLSPACE_API_KEY`, `NULLSPACE_API_URL`),
then its shell lines with our CLI. A fresh tenant per run keeps the README's fixed name `team-data` free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from conftest import create_api_key, unique

# Verbatim from the README (sdk-0.1.0-README.md, "## Persistent Volumes").
SHARED_MOUNT = '''
from nullspace import Sandbox, Volume

shared = Volume.create("team-data")
same_shared = Volume.from_name("team-data")

with Sandbox.create(volumes=[shared.mount("/workspace/shared")]) as sandbox:
    sandbox.files.write("/workspace/shared/hello.txt", "persistent state")
    print([attachment.mount_path for attachment in sandbox.volumes])
    print(same_shared.id)
'''

DIRECT_FILES = '''
from pathlib import Path
import tempfile

from nullspace import Volume

shared = Volume.from_name("team-data", create_if_missing=True)
shared.files.make_dir("/datasets")
shared.files.write("/datasets/hello.txt", "hello from direct volume access\\n")

with tempfile.TemporaryDirectory() as tmpdir:
    local_file = Path(tmpdir) / "artifact.txt"
    local_file.write_text("uploaded from local disk\\n", encoding="utf-8")
    shared.files.upload_file(local_file, "/datasets/artifact.txt")
    shared.files.download_file("/datasets/artifact.txt", Path(tmpdir) / "artifact-copy.txt")
    shared.files.download_dir("/datasets", Path(tmpdir) / "datasets-copy")

print(shared.files.read("/datasets/hello.txt").strip())
print(shared.files.download_url("/datasets/artifact.txt"))
'''

SHELL_LINES = [
    "nullspace volume ls-files team-data /",
    "nullspace volume upload team-data ./dist/model.bin /models/model.bin",
    "nullspace volume download team-data /models/model.bin ./model.bin",
    "nullspace volume download team-data /datasets/frontend ./frontend-copy",
    "nullspace volume download team-data /datasets/frontend ./frontend-copy.tar --archive",
]


def test_the_readme_volume_examples_run_unmodified(server, tmp_path: Path):
    key = create_api_key(server, unique("readme"))
    server.extra_keys.append(key)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{Path(server.binary).parent}:/usr/bin:/bin", "HOME": str(home),
           "NULLSPACE_API_KEY": key, "NULLSPACE_API_URL": server.url}

    def python(script: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    mount_paths, volume_id = python(SHARED_MOUNT)
    assert mount_paths == "['/workspace/shared']"
    assert volume_id.startswith("vol_")

    hello, url = python(DIRECT_FILES)
    assert hello == "hello from direct volume access"
    assert httpx.get(url, timeout=30).text == "uploaded from local disk\n", "the signed URL serves the upload"

    with server.http(key) as http:
        read = http.post(f"/v1/volumes/{volume_id}/files/read", json={"path": "/hello.txt"})
        assert read.json()["content"] == "persistent state", "the sandbox's write landed in the volume"
        http.post(f"/v1/volumes/{volume_id}/files/write",
                  json={"path": "/datasets/frontend/index.html", "content": "<p>hi</p>\n"}).raise_for_status()

    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "model.bin").write_bytes(bytes(range(256)) * 1000)
    for line in SHELL_LINES:
        argv = line.split()
        proc = subprocess.run([server.binary, *argv[1:]], capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=300)
        assert proc.returncode == 0, f"{line}: {proc.stderr}"
    assert (tmp_path / "model.bin").read_bytes() == (tmp_path / "dist" / "model.bin").read_bytes()
    assert (tmp_path / "frontend-copy" / "index.html").read_text() == "<p>hi</p>\n"
    assert (tmp_path / "frontend-copy.tar").stat().st_size > 0

    with server.http(key) as http:
        assert http.delete(f"/v1/volumes/{volume_id}").status_code in (200, 204)
