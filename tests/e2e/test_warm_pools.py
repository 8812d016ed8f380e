"""Template warm pools through the official client: a pool fills to `min_ready` with started sandboxes
that the tenant does not see; `prefer` claims one (the answer says so, the sandbox takes the request's
envs, cwd, metadata and timeout and nothing of another request) and the pool refills; `require` on an
empty or disabled pool is `warm_pool_unavailable`; `bypass` creates cold; drain and delete leave no
idle sandbox on the host; two concurrent creates never get the same sandbox; another tenant can neither
see nor claim the pool."""

from __future__ import annotations

import concurrent.futures

import pytest

from conftest import host_snapshot, unique, wait_until
from nullspace import Sandbox, SandboxError, TemplateWarmPool

READY_TIMEOUT = 180


@pytest.fixture
def pools(server):
    made: list[TemplateWarmPool] = []

    def make(min_ready: int, max_ready: int, key: str | None = None, **kwargs) -> TemplateWarmPool:
        pool = TemplateWarmPool.create(
            "base",
            name=unique("pool"),
            min_ready=min_ready,
            max_ready=max_ready,
            api_key=key or server.key,
            base_url=server.url,
            **kwargs,
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        try:
            pool.delete()
        except SandboxError:
            pass


def _sandbox_dirs(server) -> set[str]:
    return {entry for entry in host_snapshot(server.data_dir)["dirs"] if entry.startswith("sb_")}


def _listed_ids(server, key: str | None = None) -> set[str]:
    return {info.id for info in Sandbox.list(api_key=key or server.key, base_url=server.url)}


def _create(server, sandboxes, pool, mode: str | None = "prefer", **kwargs) -> Sandbox:
    return sandboxes.create(warm_pool=pool.id, warm_pool_mode=mode, **kwargs)


def test_prefer_claims_a_warm_sandbox_with_the_requests_settings_and_the_pool_refills(server, sandboxes, pools):
    before = _sandbox_dirs(server)
    pool = pools(2, 2)
    info = pool.wait_until_ready(timeout_secs=READY_TIMEOUT)
    assert info.status.ready == 2 and info.status.target == 2
    members = _sandbox_dirs(server) - before
    assert len(members) == 2, members
    assert not members & _listed_ids(server), "idle pool sandboxes are not the tenant's sandboxes"
    with pytest.raises(SandboxError) as err:
        Sandbox.get_info_by_id(sorted(members)[0], api_key=server.key, base_url=server.url)
    assert err.value.code == "sandbox_not_found", "nor reachable by id until claimed"

    first = _create(
        server, sandboxes, pool, envs={"POOL_VAR": "one"}, metadata={"who": "first"}, timeout=123, cwd="/tmp/first"
    )
    checkout = first._info.warm_pool_checkout
    assert checkout is not None and checkout.hit and checkout.source.value == "ready_instance"
    assert checkout.id == pool.id
    assert first.id in members, "the claimed sandbox was started by the pool"
    second = _create(server, sandboxes, pool, envs={"OTHER_VAR": "two"}, metadata={"who": "second"})
    assert second.id in members and second.id != first.id

    out = first.commands.run("echo \"$POOL_VAR/${OTHER_VAR:-unset}\"; pwd", shell=True)
    assert out.stdout.split() == ["one/unset", "/tmp/first"]
    login = first.commands.run("bash -lc 'echo $POOL_VAR'", shell=True)
    assert login.stdout.strip() == "one", "login shells see the claimed envs"
    out = second.commands.run("echo \"${POOL_VAR:-unset}/$OTHER_VAR\"", shell=True)
    assert out.stdout.strip() == "unset/two"

    got = Sandbox.get_info_by_id(first.id, api_key=server.key, base_url=server.url)
    assert got.metadata == {"who": "first"}
    assert got.timeout_ms == 123_000
    assert {first.id, second.id} <= _listed_ids(server), "claimed sandboxes are the tenant's"
    with server.http() as http:
        events = http.get(f"/v1/sandboxes/{first.id}/lifecycle", params={"order": "asc"}).json()["events"]
    creates = [(e["operation"], e["status"], e.get("reason")) for e in events if e["operation"] == "create"]
    # only the claim's events: the pool's start of the sandbox is not the tenant's create
    assert creates == [("create", "requested", "warm_pool"), ("create", "succeeded", "warm_pool")], creates

    def refilled():
        now = pool.get_info()
        return now.status.ready == 2 and now.status.claimed == 2

    wait_until(refilled, timeout=READY_TIMEOUT, what="pool refilled after two claims")


def test_require_on_an_empty_or_disabled_pool_is_unavailable(server, sandboxes, pools):
    empty = pools(0, 1)
    with pytest.raises(SandboxError) as err:
        _create(server, sandboxes, empty, mode="require", warm_pool_wait_ms=300)
    assert err.value.code == "warm_pool_unavailable"

    filled = pools(1, 1)
    filled.wait_until_ready(timeout_secs=READY_TIMEOUT)
    assert filled.disable().state.value == "disabled"
    with pytest.raises(SandboxError) as err:
        _create(server, sandboxes, filled, mode="require")
    assert err.value.code == "warm_pool_unavailable"
    assert filled.get_info().status.ready == 1, "a disabled pool keeps its idle sandbox"

    # a request whose settings are not poolable misses: custom networking, other resources
    filled.enable()
    with pytest.raises(SandboxError) as err:
        _create(server, sandboxes, filled, mode="require", internet_access=False)
    assert err.value.code == "warm_pool_unavailable"
    cold = _create(server, sandboxes, filled, mode="prefer", memory_mb=768)
    assert cold._info.warm_pool_checkout.source.value == "cold_create"


def test_bypass_creates_cold(server, sandboxes, pools):
    pool = pools(1, 1)
    pool.wait_until_ready(timeout_secs=READY_TIMEOUT)
    members = _sandbox_dirs(server)
    sb = _create(server, sandboxes, pool, mode="bypass")
    checkout = sb._info.warm_pool_checkout
    assert checkout.source.value == "bypassed" and not checkout.hit
    assert sb.id not in members
    assert pool.get_info().status.ready == 1


def test_drain_and_delete_leave_no_idle_sandbox(server, pools):
    before = _sandbox_dirs(server)
    drained = pools(2, 2)
    drained.wait_until_ready(timeout_secs=READY_TIMEOUT)
    members = _sandbox_dirs(server) - before
    info = drained.drain()
    assert info.state.value == "draining" and info.status.ready == 0
    wait_until(lambda: not (_sandbox_dirs(server) & members), timeout=60, what="drained sandbox dirs removed")

    deleted = pools(1, 1)
    deleted.wait_until_ready(timeout_secs=READY_TIMEOUT)
    members = _sandbox_dirs(server) - before
    deleted.delete()
    with pytest.raises(SandboxError) as err:
        deleted.get_info()
    assert err.value.code == "not_found"
    wait_until(lambda: not (_sandbox_dirs(server) & members), timeout=60, what="deleted pool's sandbox dirs removed")


def test_concurrent_prefer_creates_get_different_sandboxes(server, sandboxes, pools):
    pool = pools(2, 2)
    pool.wait_until_ready(timeout_secs=READY_TIMEOUT)
    with concurrent.futures.ThreadPoolExecutor(2) as workers:
        made = list(workers.map(lambda _: _create(server, sandboxes, pool), range(2)))
    assert made[0].id != made[1].id
    assert all(sb._info.warm_pool_checkout.hit for sb in made)


def test_another_tenant_cannot_see_or_claim_the_pool(server, second_key, sandboxes, pools):
    pool = pools(1, 1)
    pool.wait_until_ready(timeout_secs=READY_TIMEOUT)
    with pytest.raises(SandboxError) as err:
        TemplateWarmPool.get(pool.id, api_key=second_key, base_url=server.url)
    assert err.value.code == "not_found"
    assert pool.id not in {p.id for p in TemplateWarmPool.list(api_key=second_key, base_url=server.url)}
    assert pool.id in {p.id for p in TemplateWarmPool.list(api_key=server.key, base_url=server.url)}
    with pytest.raises(SandboxError) as err:
        sandboxes.create(key=second_key, warm_pool=pool.id, warm_pool_mode="prefer")
    assert err.value.code == "not_found"
    assert pool.get_info().status.ready == 1, "the pool's sandbox is still there"


def test_a_restart_keeps_pools_and_their_idle_sandboxes(server, sandboxes, pools):
    before = _sandbox_dirs(server)
    pool = pools(1, 1)
    pool.wait_until_ready(timeout_secs=READY_TIMEOUT)
    members = _sandbox_dirs(server) - before
    server.restart()
    info = pool.get_info()
    assert info.state.value == "enabled" and info.status.ready == 1
    assert members <= _sandbox_dirs(server), "the idle sandbox survived the restart"
    sb = _create(server, sandboxes, pool, mode="require", envs={"AFTER": "restart"})
    assert sb.id in members
    assert sb.commands.run("echo $AFTER", shell=True).stdout.strip() == "restart"
