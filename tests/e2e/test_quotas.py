"""Tenant quotas: limits set with `nullspace tenant set-limits` on the server's store bind the next
request of that tenant; a create, fork, resume or volume past a limit is the client's
QuotaExceededError naming the limit (code `quota_exceeded`, `details` with the limit and current use);
deleting frees the slot; concurrent creates at the last slot let exactly one through."""

from __future__ import annotations

import json
import threading

import pytest
from nullspace import Sandbox, Volume
from nullspace.errors import QuotaExceededError, SandboxError

from conftest import create_api_key, unique


class Tenant:
    """A fresh tenant with its own key, whose sandboxes and volumes are removed at the end."""

    def __init__(self, server, cli) -> None:
        self.server, self.cli = server, cli
        self.name = unique("quota")
        self.key = create_api_key(server, self.name)
        server.extra_keys.append(self.key)
        self.sandboxes: list[Sandbox] = []
        self.volumes: list[Volume] = []

    def limits(self, *flags: str) -> dict:
        return self.cli.json("tenant", "set-limits", self.name, *flags, "--data-dir", str(self.server.data_dir))

    def get(self) -> dict:
        return self.cli.json("tenant", "get", self.name, "--data-dir", str(self.server.data_dir))

    def create(self, **kwargs) -> Sandbox:
        kwargs.setdefault("memory_mb", 256)
        kwargs.setdefault("vcpus", 1)
        sb = self.server.create(key=self.key, **kwargs)
        self.sandboxes.append(sb)
        return sb

    def volume(self, name: str) -> Volume:
        vol = Volume.create(name, api_key=self.key, base_url=self.server.url)
        self.volumes.append(vol)
        return vol

    def cleanup(self) -> None:
        self.server.kill_all(self.key)
        for vol in self.volumes:
            try:
                vol.delete()
            except SandboxError:
                pass


@pytest.fixture
def tenant(server, cli):
    owner = Tenant(server, cli)
    yield owner
    owner.cleanup()


def refused(call, limit: str) -> QuotaExceededError:
    with pytest.raises(QuotaExceededError) as info:
        call()
    error = info.value
    assert error.code == "quota_exceeded", error
    assert limit in str(error), error
    assert error.details["limit"] == limit, error.details
    return error


def test_the_sandbox_limit_refuses_the_next_create_until_one_is_deleted(tenant):
    set_ = tenant.limits("--max-sandboxes", "2")
    assert set_["limits"]["max_sandboxes"] == 2 and set_["limits"]["max_vcpus"] is None
    first = tenant.create()
    tenant.create()
    error = refused(lambda: tenant.create(), "max_sandboxes")
    assert error.details == {"limit": "max_sandboxes", "max": 2, "used": 2, "requested": 1}
    assert "2 of 2" in str(error)

    report = tenant.get()
    assert report["tenant"] == tenant.name
    assert report["usage"]["sandboxes"] == 2
    assert report["usage"]["vcpus"] == 2 and report["usage"]["memory_mb"] == 512

    first.kill()
    third = tenant.create()
    assert third.commands.run("echo", ["ok"]).stdout == "ok\n"
    # Cleared, the limit binds nothing any more.
    assert tenant.limits("--max-sandboxes", "none")["limits"]["max_sandboxes"] is None
    tenant.create()


def test_vcpu_and_memory_limits_are_sums_over_the_tenants_sandboxes(tenant):
    tenant.limits("--max-vcpus", "3", "--max-memory", "1GiB")
    assert tenant.get()["limits"] == {
        "max_sandboxes": None,
        "max_vcpus": 3,
        "max_memory_mb": 1024,
        "max_disk_mb": None,
        "max_volumes": None,
    }
    tenant.create(vcpus=2, memory_mb=512)
    error = refused(lambda: tenant.create(vcpus=2, memory_mb=256), "max_vcpus")
    assert error.details == {"limit": "max_vcpus", "max": 3, "used": 2, "requested": 2}
    error = refused(lambda: tenant.create(vcpus=1, memory_mb=768), "max_memory_mb")
    assert (error.details["used"], error.details["requested"]) == (512, 768)
    tenant.create(vcpus=1, memory_mb=512)
    assert tenant.get()["usage"]["vcpus"] == 3


def test_hibernated_sandboxes_hold_their_slot_but_no_cpu_and_resume_in_place(tenant):
    tenant.limits("--max-sandboxes", "1", "--max-vcpus", "2")
    sb = tenant.create(vcpus=2)
    sb.commands.run("sh", ["-c", "echo kept > /root/kept"])
    sb.hibernate()
    usage = tenant.get()["usage"]
    assert (usage["sandboxes"], usage["vcpus"], usage["memory_mb"]) == (1, 0, 0)
    refused(lambda: tenant.create(vcpus=1), "max_sandboxes")
    # The resumed sandbox takes the paused one's place: it is not counted twice.
    resumed = Sandbox.resume(sb.id, api_key=tenant.key, base_url=tenant.server.url)
    assert resumed.commands.run("cat", ["/root/kept"]).stdout == "kept\n"
    assert tenant.get()["usage"]["vcpus"] == 2
    # A fork would be a second sandbox.
    refused(lambda: resumed.fork(), "max_sandboxes")


def test_the_disk_limit_sums_the_sandboxes_disks_hibernated_ones_included(tenant):
    tenant.limits("--max-disk", "3GiB")
    sb = tenant.create(disk_mb=2048)
    error = refused(lambda: tenant.create(disk_mb=2048), "max_disk_mb")
    assert error.details == {"limit": "max_disk_mb", "max": 3072, "used": 2048, "requested": 2048}
    tenant.create(disk_mb=1024)
    assert tenant.get()["usage"]["disk_mb"] == 3072
    # A hibernated sandbox keeps its disk.
    sb.hibernate()
    assert tenant.get()["usage"]["disk_mb"] == 3072
    refused(lambda: tenant.create(disk_mb=64), "max_disk_mb")
    sb.kill()
    tenant.create(disk_mb=2048)


def test_concurrent_creates_at_the_last_slot_let_exactly_one_through(tenant):
    tenant.limits("--max-sandboxes", "1")
    outcomes: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def create() -> None:
        barrier.wait()
        try:
            result: object = tenant.create()
        except QuotaExceededError as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [o for o in outcomes if isinstance(o, Sandbox)]
    refusals = [o for o in outcomes if isinstance(o, QuotaExceededError)]
    assert len(created) == 1 and len(refusals) == 2, outcomes
    assert all(error.details["limit"] == "max_sandboxes" for error in refusals)
    assert tenant.get()["usage"]["sandboxes"] == 1


def test_the_volume_limit_counts_volumes_and_frees_on_delete(tenant):
    tenant.limits("--max-volumes", "1")
    first = tenant.volume(unique("qv"))
    error = refused(lambda: tenant.volume(unique("qv")), "max_volumes")
    assert error.details == {"limit": "max_volumes", "max": 1, "used": 1, "requested": 1}
    assert tenant.get()["usage"]["volumes"] == 1
    first.delete()
    tenant.volumes.remove(first)
    tenant.volume(unique("qv"))


def test_limits_of_one_tenant_do_not_bind_another(tenant, server, sandboxes):
    tenant.limits("--max-sandboxes", "0")
    refused(lambda: tenant.create(), "max_sandboxes")
    sb = sandboxes.create()
    assert sb.commands.run("true").exit_code == 0


def test_the_tenant_commands_explain_their_errors(tenant, cli, server):
    unknown = cli("tenant", "get", unique("nobody"), "--data-dir", str(server.data_dir))
    assert unknown.returncode == 1
    body = json.loads(unknown.stdout)
    assert "no tenant named" in body["error"]["message"] and "api-key create" in body["error"]["hint"]

    nothing = cli("tenant", "set-limits", tenant.name, "--data-dir", str(server.data_dir), json_flag=False)
    assert nothing.returncode == 1
    assert "hint:" in nothing.stderr and "--max-sandboxes" in nothing.stderr

    bad = cli("tenant", "set-limits", tenant.name, "--max-memory", "lots", "--data-dir", str(server.data_dir))
    assert bad.returncode != 0 and "512MiB" in bad.stderr

    human = cli("tenant", "get", tenant.name, "--data-dir", str(server.data_dir), json_flag=False)
    assert human.returncode == 0 and "RESOURCE" in human.stdout and "sandboxes" in human.stdout
