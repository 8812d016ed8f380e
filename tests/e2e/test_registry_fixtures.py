"""The fixture registries and images themselves (scripts/registry-fixtures.sh), read back from the running
registries with skopeo: what the template-build tests assume about them holds. No nullspace server here."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import Registry

DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FIXTURE_REFS = [
    "debian:stable-slim",
    "library/debian:stable-slim",
    "nullspace-fixtures/layered:1",
    "nullspace-fixtures/healthcheck:1",
]


def skopeo(*args: str, creds: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    auth = ["--creds", creds] if creds else ["--no-creds"]
    proc = subprocess.run(
        ["skopeo", "--insecure-policy", *args[:1], "--tls-verify=false", *auth, *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, f"skopeo {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc


def inspect(reg: Registry, ref: str, *flags: str) -> dict:
    return json.loads(skopeo("inspect", *flags, f"docker://{reg.address}/{ref}", creds=reg.creds).stdout)


def layer_tars(reg: Registry, ref: str, dest: Path) -> list[tarfile.TarFile]:
    """The image's layers, in manifest order, opened as tar archives (copied with `skopeo copy ... dir:`)."""
    proc = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reg.address}/{ref}", f"dir:{dest}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    return [tarfile.open(dest / layer["digest"].split(":", 1)[1], "r:*") for layer in manifest["layers"]]


def names(layer: tarfile.TarFile) -> set[str]:
    return {member.name.removeprefix("./").rstrip("/") for member in layer.getmembers()}


def test_debian_slim_is_one_debian_layer_under_both_docker_hub_names(registry, tmp_path):
    plain = inspect(registry, "debian:stable-slim")
    library = inspect(registry, "library/debian:stable-slim")
    assert plain["Digest"] == library["Digest"]
    assert len(plain["Layers"]) == 1
    config = inspect(registry, "debian:stable-slim", "--config")["config"]
    assert config["Cmd"] == ["bash"]
    assert config["Env"] == [DEBIAN_PATH]

    (layer,) = layer_tars(registry, "debian:stable-slim", tmp_path)
    members = {m.name.removeprefix("./"): m for m in layer.getmembers()}
    version = layer.extractfile(members["etc/debian_version"]).read().decode()
    assert version.startswith("12."), version
    assert "usr/bin/bash" in members and "usr/bin/apt-get" in members
    # the slim path-excludes: only copyright files under /usr/share/doc, no man pages, no translations
    docs = [n for n, m in members.items() if n.startswith("usr/share/doc/") and not m.isdir()]
    assert docs and all(n.endswith("/copyright") for n in docs), [n for n in docs if not n.endswith("/copyright")][:5]
    assert not [n for n in members if n.startswith(("usr/share/man/", "usr/share/locale/"))]
    assert not [n for n, m in members.items() if m.ischr() or m.isblk() or m.isfifo()]


def test_layered_image_has_genuine_whiteouts_an_opaque_dir_and_links(registry, tmp_path):
    base = inspect(registry, "debian:stable-slim")
    layered = inspect(registry, "nullspace-fixtures/layered:1")
    assert layered["Layers"][0] == base["Layers"][0]
    assert len(layered["Layers"]) == 5

    _, added, deleted, opaque, links = layer_tars(registry, "nullspace-fixtures/layered:1", tmp_path)
    assert {
        "opt/fixture/hello.txt",
        "opt/fixture/doomed.txt",
        "opt/fixture/gone-dir/inner.txt",
        "opt/fixture/replaced/old-1.txt",
        "opt/fixture/replaced/sub/old-2.txt",
        "opt/fixture/empty-dir",
    } <= names(added)
    whiteouts = {n for n in names(deleted) if "/.wh." in n}
    assert whiteouts == {"opt/fixture/.wh.doomed.txt", "opt/fixture/.wh.gone-dir"}
    assert {"opt/fixture/replaced/.wh..wh..opq", "opt/fixture/replaced/new.txt"} <= names(opaque)
    assert opaque.getmember("opt/fixture/replaced/.wh..wh..opq").isfile()

    by_name = {m.name.removeprefix("./"): m for m in links.getmembers()}
    hard = by_name["opt/fixture/links/hardlink.txt"]
    assert hard.islnk() and hard.linkname.removeprefix("./") == "opt/fixture/links/data.txt"
    assert by_name["opt/fixture/links/symlink.txt"].issym()
    assert by_name["opt/fixture/links/symlink.txt"].linkname == "data.txt"
    assert by_name["opt/fixture/links/dir-symlink"].linkname == "../replaced"


def test_healthcheck_image_config_has_every_field(registry):
    image = inspect(registry, "nullspace-fixtures/healthcheck:1")
    assert image["Layers"] == inspect(registry, "debian:stable-slim")["Layers"]
    config = inspect(registry, "nullspace-fixtures/healthcheck:1", "--config", "--raw")["config"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /tmp/healthy"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "StartPeriod": 1_000_000_000,
        "Retries": 3,
    }
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["WorkingDir"] == "/srv"
    assert config["User"] == "nobody"
    assert config["Env"] == [DEBIAN_PATH, "FIXTURE_MODE=healthcheck"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["Cmd"] == ["echo ok > /tmp/healthy && exec sleep infinity"]
    assert config["Labels"]["org.opencontainers.image.title"] == "nullspace-healthcheck-fixture"


@pytest.mark.parametrize("ref", FIXTURE_REFS)
def test_every_fixture_image_is_labelled_as_a_fixture(registry, ref):
    labels = inspect(registry, ref, "--config")["config"]["Labels"]
    assert labels["nullspace.fixture"]


def test_private_registry_serves_the_same_images_only_with_its_credentials(registry, private_registry):
    ref = f"docker://{private_registry.address}/nullspace-fixtures/healthcheck:1"
    anonymous = skopeo("inspect", ref, check=False)
    assert anonymous.returncode != 0 and "unauthorized" in anonymous.stderr.lower(), anonymous.stderr
    wrong = skopeo("inspect", ref, creds=f"{private_registry.username}:wrong-password", check=False)
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower(), wrong.stderr
    right = inspect(private_registry, "nullspace-fixtures/healthcheck:1")
    assert right["Digest"] == inspect(registry, "nullspace-fixtures/healthcheck:1")["Digest"]
