"""Templates from registry images, pulled by the real server from the local fixture registries of the test
setup (conftest `registry`, `private_registry`; images built here from Debian packages by
scripts/registry-fixtures.sh and labelled as fixtures): `debian:stable-slim` through the docker.io mirror,
an image whose layers delete and replace files (OCI whiteouts and an opaque directory), an image whose
config carries a HEALTHCHECK, EXPOSE, WORKDIR, USER and ENTRYPOINT, basic auth, refused auth kinds, and
layers shared on disk between templates of one base."""

from __future__ import annotations

import json
import os

import pytest

from conftest import unique
from nullspace import Template
from nullspace.errors import SandboxError


def _build(server, builder, name, **kwargs):
    return Template.build(builder, name=name, api_key=server.key, base_url=server.url, **kwargs)


def _layer_dirs(server) -> set[str]:
    root = server.data_dir / "layers"
    return {d for d in os.listdir(root) if (root / d / "layer.json").exists()}


def test_debian_slim_through_the_docker_io_mirror(server, sandboxes):
    name = unique("tpl-debian")
    result = _build(server, Template().from_debian_image("stable-slim").run_cmd("echo from-debian > /marker"), name)
    assert result.status.value == "ready"
    sb = sandboxes.create(template=name)
    assert sb.files.read("/marker").strip() == "from-debian"
    release = sb.commands.run("cat /etc/debian_version", shell=True).stdout
    assert release.strip().startswith("12"), release


def test_whiteouts_and_opaque_directories_of_image_layers_apply(server, sandboxes, registry):
    name = unique("tpl-layered")
    result = _build(server, Template().from_image(f"{registry.address}/nullspace-fixtures/layered:1"), name)
    assert result.status.value == "ready"
    sb = sandboxes.create(template=name)
    listing = sb.commands.run("ls -A /opt/fixture /opt/fixture/replaced", shell=True).stdout
    assert "doomed.txt" not in listing and "gone-dir" not in listing, listing
    assert sb.commands.run("ls -A /opt/fixture/replaced", shell=True).stdout.split() == ["new.txt"]
    links = sb.commands.run("stat -c '%h' /opt/fixture/links/hardlink.txt; readlink /opt/fixture/links/symlink.txt", shell=True)
    assert links.stdout.split() == ["2", "data.txt"]


def test_an_images_config_gives_user_workdir_env_start_command_and_readiness(server, sandboxes, registry):
    name = unique("tpl-health")
    result = _build(server, Template().from_image(f"{registry.address}/nullspace-fixtures/healthcheck:1"), name)
    assert result.status.value == "ready"
    with server.http() as http:
        build = http.get(f"/v1/templates/builds/{result.build_id}", params={"offset": 0}).json()["build"]
    metadata = build.get("oci_metadata") or {}
    assert metadata.get("exposed_ports") == ["8080/tcp"], build
    assert metadata["healthcheck"]["test"] == ["CMD-SHELL", "test -f /tmp/healthy"]
    sb = sandboxes.create(template=name)
    # create returned once the HEALTHCHECK held: the ENTRYPOINT/CMD ran
    assert sb.commands.run("cat /tmp/healthy", shell=True).stdout.strip() == "ok"
    assert sb.commands.run("id -un; pwd", shell=True).stdout.split() == ["nobody", "/srv"]
    assert "FIXTURE_MODE=healthcheck" in sb.commands.run("env", shell=True).stdout


def test_private_registry_basic_auth_and_refused_auth_kinds(server, sandboxes, private_registry):
    image = f"{private_registry.address}/nullspace-fixtures/layered:1"
    with pytest.raises(SandboxError) as anonymous:
        _build(server, Template().from_image(image), unique("tpl-noauth"))
    assert anonymous.value.code == "registry_unauthorized", (anonymous.value.code, str(anonymous.value))
    assert "refused access" in str(anonymous.value)
    with pytest.raises(SandboxError):
        _build(
            server,
            Template().from_image(image, username=private_registry.username, password="wrong"),
            unique("tpl-badauth"),
        )
    name = unique("tpl-auth")
    builder = Template().from_image(image, username=private_registry.username, password=private_registry.password)
    assert _build(server, builder, name).status.value == "ready"
    assert sandboxes.create(template=name).files.read("/opt/fixture/replaced/new.txt").strip() == "new"
    # The credentials are never stored: the build record keeps the auth kind only.
    with server.http() as http:
        record = json.dumps(http.get(f"/v1/templates/refs/{name}/builds").json())
    assert private_registry.password not in record
    with server.http() as http:
        resp = http.post(
            "/v1/templates/build",
            json={"base_image": image, "base_image_auth": {"kind": "aws_ecr", "access_key_id": "a",
                  "secret_access_key": "b", "region": "eu-west-1"}},
            timeout=120,
        )
    assert "unsupported_auth" in resp.text, resp.text[-1000:]


def test_templates_on_one_base_hold_its_layers_once(server):
    before = _layer_dirs(server)
    first = _build(server, Template().from_debian_image("stable-slim").run_cmd(f"echo {unique('a')} > /a"), unique("tpl-share"))
    after_first = _layer_dirs(server)
    second = _build(server, Template().from_debian_image("stable-slim").run_cmd(f"echo {unique('b')} > /b"), unique("tpl-share"))
    after_second = _layer_dirs(server)
    assert first.status.value == second.status.value == "ready"
    # The second template added exactly its own step's layer: the debian layer is shared.
    assert len(after_second - after_first) == 1, (before, after_first, after_second)


def test_unconfigured_private_and_loopback_registries_are_refused(server):
    """A tenant's base image must not make the server a client of its own networks: a registry on a
    loopback port or a private, link-local (cloud metadata) address that the operator did not configure is
    refused before any connection (the session server allows only its fixture registries)."""
    for image in ("127.0.0.1:1/probe:1", "169.254.169.254/latest:1", "10.255.255.1:5000/x:1"):
        with pytest.raises(SandboxError) as refused:
            _build(server, Template().from_image(image), unique("tpl-ssrf"))
        assert refused.value.code == "registry_forbidden", (image, refused.value.code, str(refused.value))
