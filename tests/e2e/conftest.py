"""End-to-end fixtures: the real `nullspace server` process, API keys, the CLI, and a view of what
sandboxes own on the host (mounts, runc containers, cgroups, directories, processes).

Environment:
  NULLSPACE_BIN           path of the built `nullspace` binary (required)
  NULLSPACE_E2E_DATA_DIR  persistent data dir, so the base template is built only once (required)
  NULLSPACE_FIXTURE_CACHE where scripts/registry-fixtures.sh keeps its built fixture images (optional)
"""

from __future__ import annotations

import glob
import json
import hashlib
import os
import re
import shutil
import signal
import socket
import shlex
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from nullspace import Sandbox

HEALTH_TIMEOUT_SECS = 880  # first start builds the base template (~1 min, can be much slower)
TEST_KEY = "ns_e2e_bootstrap_key_" + "0123456789abcdef"
RUN_ID = uuid.uuid4().hex[:10]


# --------------------------------------------------------------------------------------------------
# helpers


HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# How long a test waits for the server's first build of the code-interpreter template (it starts when the
# session server starts, and takes minutes on a fresh data dir; later runs find it built).
CODE_INTERPRETER_BUILD_SECS = 1800


def wait_for_builtin_template(srv: "Server", name: str, timeout: float = CODE_INTERPRETER_BUILD_SECS) -> None:
    """Waits until `GET /v1/templates` lists built-in `name`; fails at once when the server logged that it
    cannot build it (e.g. its helper binary is not beside the server), else with the log's tail after
    `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = httpx.get(f"{srv.url}/v1/templates", headers={"Authorization": f"Bearer {srv.key}"}, timeout=30).json()
        if any(t.get("id") == name and t.get("builtin") for t in listed):
            return
        if not srv.running:
            raise AssertionError(f"the server exited while building {name}:\n{_tail(srv.log_path)}")
        failed = _builtin_failure(srv, name)
        if failed:
            raise AssertionError(f"the server cannot build built-in template {name}: {failed}")
        time.sleep(2)
    raise AssertionError(f"built-in template {name} was not ready after {timeout:.0f} s:\n{_tail(srv.log_path)}")


def _builtin_failure(srv: "Server", name: str) -> str | None:
    """The line of the running server's log saying built-in template `name` cannot be used or failed to
    build, if any (earlier starts in the same log are not this server's)."""
    try:
        text = srv.log_path.read_text(errors="replace")
    except OSError:
        return None
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).rsplit("===== e2e: starting server", 1)[-1]
    for line in text.splitlines():
        if f"template={name}" in line and ("recipe cannot be used" in line or "failed to build" in line):
            return line.strip()
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 80) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def unique(prefix: str = "e2e") -> str:
    return f"{prefix}-{RUN_ID}-{uuid.uuid4().hex[:8]}"


def host_snapshot(data_dir: str | os.PathLike[str]) -> dict[str, set[str]]:
    """What sandboxes own on this host right now, by category.

    - mounts:    mount points (from /proc/self/mountinfo) that mention the data dir
    - runc:      container ids known to `runc --root <data>/runtime/runc list -q`
    - cgroups:   `/sys/fs/cgroup/<controller>/nullspace/sb_*` (v1) and `/sys/fs/cgroup/nullspace/sb_*` (v2)
    - dirs:      entries of `<data>/sandboxes/`
    - processes: `pid:sb_id` of host processes whose /proc/<pid>/cgroup mentions `nullspace/sb_` (zombies
                 excluded: they have exited and only wait for the host's init to reap them)
    """
    data = str(Path(data_dir).resolve())
    snap: dict[str, set[str]] = {"mounts": set(), "runc": set(), "cgroups": set(), "dirs": set(), "processes": set()}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            if data in line:
                fields = line.split()
                snap["mounts"].add(fields[4] if len(fields) > 4 else line.strip())
    runc_root = Path(data) / "runtime" / "runc"
    if runc_root.exists():
        proc = subprocess.run(["runc", "--root", str(runc_root), "list", "-q"], capture_output=True, text=True)
        snap["runc"] = {line.strip() for line in proc.stdout.splitlines() if line.strip()}
    snap["cgroups"] = set(glob.glob("/sys/fs/cgroup/*/nullspace/sb_*")) | set(glob.glob("/sys/fs/cgroup/nullspace/sb_*"))
    sandboxes_dir = Path(data) / "sandboxes"
    if sandboxes_dir.exists():
        snap["dirs"] = set(os.listdir(sandboxes_dir))
    snap["processes"] = {f"{pid}:{sb}" for pid, sb in sandbox_processes().items()}
    return snap


def segment_bridges(bridge: str) -> list[str]:
    """The bridges of a server's other subnet segments (`<bridge>-<k>`) that exist now."""
    names = os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []
    return sorted(n for n in names if re.fullmatch(re.escape(bridge) + r"-[0-9]+", n))


def host_counts(data_dir: str | os.PathLike[str], bridge: str) -> dict[str, int]:
    """How many of each host resource a server (data dir + bridge) holds right now: the categories of
    `host_snapshot` plus network namespaces (`/run/netns/<bridge>-*`), veths enslaved to the bridge, nftables
    rules and chains in the server's two tables, loop devices backed by files in the data dir (sandbox disks),
    the host uid ranges the store holds for sandboxes' user namespaces, and the store's rows of sandboxes
    that are not destroyed. A long create/kill campaign must end where it began."""
    data = str(Path(data_dir).resolve())
    counts = {key: len(items) for key, items in host_snapshot(data_dir).items()}
    run_netns = Path("/run/netns")
    counts["netns"] = len([n for n in os.listdir(run_netns) if n.startswith(f"{bridge}-")]) if run_netns.exists() else 0
    # Veths on the bridge and on the bridges of the subnet's other segments (`<bridge>-<k>`), and those
    # other bridges themselves (made past 1,021 sandboxes, removed by the reconcile once empty).
    bridges = [bridge] + segment_bridges(bridge)
    counts["veths"] = 0
    for name in bridges:
        links = subprocess.run(["ip", "-o", "link", "show", "master", name], capture_output=True, text=True)
        counts["veths"] += len([line for line in links.stdout.splitlines() if line.strip()])
    counts["segment_bridges"] = len(bridges) - 1
    for family in ("inet", "bridge"):
        table = subprocess.run(["nft", "-a", "list", "table", family, f"nullspace_{bridge}"],
                               capture_output=True, text=True)
        lines = table.stdout.splitlines()
        counts[f"nft_{family}_chains"] = len([line for line in lines if line.strip().startswith("chain ")])
        counts[f"nft_{family}_rules"] = len([line for line in lines if "# handle" in line and not line.strip().startswith(("chain ", "table ", "set ", "map "))])
        counts[f"nft_{family}_elements"] = table.stdout.count(",") if "elements" in table.stdout else 0
    loops = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True, text=True)
    counts["loop_devices"] = len([line for line in loops.stdout.splitlines() if line.strip().startswith(data)])
    db = Path(data) / "nullspace.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            counts["store_live_sandboxes"] = conn.execute(
                "SELECT COUNT(*) FROM sandboxes WHERE state NOT IN ('destroyed', 'error')").fetchone()[0]
            counts["uid_ranges"] = conn.execute("SELECT COUNT(*) FROM sandbox_id_ranges").fetchone()[0]
    return counts


def sandbox_processes(sandbox_id: str | None = None) -> dict[int, str]:
    """Host pids that live in a sandbox cgroup → the sandbox id (optionally only for one sandbox)."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/cgroup").read_text()
        except OSError:
            continue
        match = re.search(r"nullspace/(sb_[A-Za-z0-9_-]+)", text)
        if match and (sandbox_id is None or match.group(1) == sandbox_id):
            if _is_zombie(entry):
                continue  # exited, waiting for the host's init to reap it: owns nothing any more
            found[int(entry)] = match.group(1)
    return found


def _is_zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def snapshot_mentions(snap: dict[str, set[str]], sandbox_id: str) -> dict[str, list[str]]:
    """The items of a snapshot that belong to one sandbox (empty dict: nothing left)."""
    left = {k: sorted(v for v in items if sandbox_id in v) for k, items in snap.items()}
    return {k: v for k, v in left.items() if v}


def restrict(snap: dict[str, set[str]], sandbox_ids: set[str]) -> dict[str, set[str]]:
    """Keep only the host-global items (cgroups, processes) of the given sandboxes. Other servers on the
    same host (other data dirs) share `/sys/fs/cgroup/*/nullspace/`; their sandboxes are not ours."""
    out = {k: set(v) for k, v in snap.items()}
    for key in ("cgroups", "processes"):
        out[key] = {item for item in snap[key] if _sandbox_id_of(item) in sandbox_ids}
    return out


def _sandbox_id_of(item: str) -> str | None:
    match = re.search(r"(sb_[A-Za-z0-9_-]+)", item)
    return match.group(1) if match else None


def comparable(snap: dict[str, set[str]]) -> dict[str, set[str]]:
    """A snapshot where processes are reduced to the set of sandboxes that have any (pids churn)."""
    out = {k: set(v) for k, v in snap.items()}
    out["processes"] = {item.split(":", 1)[1] for item in snap["processes"]}
    return out


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# the server process


class Server:
    def __init__(self, binary: str, data_dir: Path, extra_args: list[str] | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.extra_args = list(extra_args or [])  # more `nullspace server` options, e.g. --runtime runsc
        # Each test server gets its own bridge and subnet, so it never meets another server's sandbox
        # networks on this host (a developer's server, or another test run).
        digest = int(hashlib.sha256(str(data_dir).encode()).hexdigest(), 16)
        self.bridge = f"nse{digest % 10**6:06d}"
        self.subnet = f"10.{216 + digest % 32}.0.0/16"
        self.extra_args += ["--bridge", self.bridge, "--subnet", self.subnet]
        # This host's HTTPS goes through a TLS-inspecting proxy: sandboxes (pip, npm in template builds and
        # in the code interpreter) trust what the host trusts.
        if Path(HOST_CA_BUNDLE).is_file():
            self.extra_args += ["--sandbox-ca-bundle", HOST_CA_BUNDLE]
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = TEST_KEY
        self.log_path = data_dir / "e2e-server.log"
        self.home = data_dir / "e2e-home"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None
        self.extra_keys: list[str] = []

    # lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = HEALTH_TIMEOUT_SECS) -> None:
        assert self.proc is None, "server already running"
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            NULLSPACE_BOOTSTRAP_API_KEY=self.key,
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            RUST_BACKTRACE="1",
        )
        env.pop("NULLSPACE_API_KEY", None)
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== e2e: starting server on {self.url} at {time.ctime()} =====\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [self.binary, "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before /healthz was 200\n{self.log_tail()}"
                )
            try:
                resp = httpx.get(f"{self.url}/healthz", timeout=5)
                last = f"{resp.status_code} {resp.text[:200]}"
                if resp.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"/healthz not 200 after {timeout}s (last: {last})\n{self.log_tail()}")

    def stop(self, kill9: bool = False, timeout: float = 60) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill9:
                self.proc.kill()
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(f"server did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def restart(self, kill9: bool = False) -> None:
        self.stop(kill9=kill9)
        self.start(timeout=120)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def known_ids(self) -> set[str]:
        """Every sandbox id this data dir's servers ever logged or hold a directory for."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        ids = set(re.findall(r"sb_[a-z0-9]{8,}", text))
        sandboxes_dir = self.data_dir / "sandboxes"
        if sandboxes_dir.exists():
            ids |= set(os.listdir(sandboxes_dir))
        return ids

    def remove_network(self) -> None:
        """Removes this server's bridge and its firewall and port-guard tables once no sandbox of it is left."""
        for name in [self.bridge] + segment_bridges(self.bridge):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        for family in ("inet", "bridge"):
            subprocess.run(["nft", "delete", "table", family, f"nullspace_{self.bridge}"], capture_output=True)

    def log_tail(self, lines: int = 80) -> str:
        return f"----- server log tail ({self.log_path}) -----\n{_tail(self.log_path, lines)}"

    # conveniences ------------------------------------------------------------------------------
    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def create(self, key: str | None = None, **kwargs: Any) -> Sandbox:
        kwargs.setdefault("timeout", 900)
        return Sandbox.create(api_key=key or self.key, base_url=self.url, **kwargs)

    def connect(self, sandbox_id: str, key: str | None = None) -> Sandbox:
        return Sandbox.connect(sandbox_id, api_key=key or self.key, base_url=self.url)

    def kill_all(self, key: str) -> None:
        """Delete every sandbox the key's tenant can see (best effort)."""
        try:
            with self.http(key) as http:
                ids: list[str] = []
                token = None
                for _ in range(100):
                    params: dict[str, Any] = {"limit": 100}
                    if token:
                        params["next_token"] = token
                    resp = http.get("/v1/sandboxes", params=params)
                    if resp.status_code != 200:
                        break
                    body = resp.json()
                    items = body if isinstance(body, list) else body.get("items", [])
                    ids.extend(item["id"] for item in items)
                    if isinstance(body, list) or not body.get("has_next") or not body.get("next_token"):
                        break
                    token = body["next_token"]
                for sandbox_id in ids:
                    http.delete(f"/v1/sandboxes/{sandbox_id}")
        except httpx.HTTPError:
            pass


_SERVER: Server | None = None


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} must be set for the end-to-end tests", returncode=2)
    return value


@pytest.fixture(scope="session")
def server(registry, private_registry):
    global _SERVER
    binary = _require_env("NULLSPACE_BIN")
    data_dir = Path(_require_env("NULLSPACE_E2E_DATA_DIR")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The webhook tests deliver to loopback receivers, which servers refuse unless the operator allows them.
    # Image pulls go to the local fixture registries (started before the server): Docker Hub names through
    # the anonymous one, both spoken to over plain HTTP.
    # NULLSPACE_E2E_SERVER_ARGS adds options for a developer's partial run (e.g. `--without-template desktop`
    # to skip building a template the tests at hand do not use); the full suite sets none.
    more = shlex.split(os.environ.get("NULLSPACE_E2E_SERVER_ARGS", ""))
    srv = Server(
        binary,
        data_dir,
        extra_args=["--webhook-allow-private", *registry_server_args(registry, private_registry), *more],
    )
    _SERVER = srv
    srv.start()
    srv.kill_all(srv.key)  # leftovers of an earlier run with the same persistent data dir
    yield srv
    if srv.running:
        for key in [srv.key, *srv.extra_keys]:
            srv.kill_all(key)
    srv.stop()
    srv.remove_network()
    _SERVER = None


def create_api_key(srv: Server, tenant: str) -> str:
    proc = subprocess.run(
        [srv.binary, "api-key", "create", "--tenant", tenant, "--data-dir", str(srv.data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"api-key create failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}"
    out = proc.stdout.strip()
    try:
        body = json.loads(out)
    except json.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        for field in ("api_key", "key", "token", "secret"):
            if isinstance(body.get(field), str) and body[field]:
                return body[field]
        raise AssertionError(f"api-key create --json printed no key field: {out}")
    if isinstance(body, str) and body:
        return body
    tokens = out.split()
    assert tokens, f"api-key create printed nothing: {proc.stderr}"
    return tokens[-1]


def runsc_installed() -> bool:
    return shutil.which("runsc") is not None or any(Path(d, "runsc").exists() for d in ("/usr/sbin", "/usr/bin"))


def sibling_server(server: Server, name: str, extra_args: list[str]) -> Server:
    """A started server of its own (data dir `<session data dir>-<name>`, own bridge and subnet) with
    `extra_args`, sharing the session server's built templates, with no sandbox left from an earlier run."""
    data_dir = Path(f"{server.data_dir}-{name}")
    data_dir.mkdir(parents=True, exist_ok=True)
    templates = data_dir / "templates"
    if not templates.is_symlink():
        if templates.exists():
            shutil.rmtree(templates)
        templates.symlink_to(server.data_dir / "templates")
    # Siblings never build the code interpreter or the desktop (the session server does, once).
    srv = Server(
        server.binary,
        data_dir,
        extra_args=[*extra_args, "--without-template", "code-interpreter", "--without-template", "desktop"],
    )
    srv.start(timeout=120)
    srv.kill_all(srv.key)
    return srv


@pytest.fixture(scope="module")
def runsc_server(server):
    """A second server with `--runtime runsc` (one per test module that asks for it; skip the module with
    `runsc_installed()` where gVisor is missing)."""
    srv = sibling_server(server, "runsc", ["--runtime", "runsc"])
    yield srv
    if srv.running:
        srv.kill_all(srv.key)
    srv.stop()


@pytest.fixture(scope="session")
def second_key(server):
    key = create_api_key(server, f"other-{RUN_ID}")
    assert key and key != server.key
    server.extra_keys.append(key)
    return key


# --------------------------------------------------------------------------------------------------
# local registries serving fixture images (scripts/registry-fixtures.sh: images built on this machine from
# Debian packages; this machine reaches no image registry)

REPO_ROOT = Path(__file__).resolve().parents[2]
REGISTRY_FIXTURES = REPO_ROOT / "scripts" / "registry-fixtures.sh"
FIXTURE_BUILD_TIMEOUT_SECS = 1800  # the first build runs mmdebstrap (about 1-2 min); later ones reuse the cache


@dataclass(frozen=True)
class Registry:
    """A running docker-registry on loopback holding the fixture images (debian:stable-slim,
    library/debian:stable-slim, nullspace-fixtures/layered:1, nullspace-fixtures/healthcheck:1)."""

    address: str  # 127.0.0.1:PORT
    dir: Path
    username: str | None = None
    password: str | None = None

    @property
    def creds(self) -> str | None:
        return f"{self.username}:{self.password}" if self.username else None


def _registry_script(*args: str, timeout: float) -> str:
    proc = subprocess.run([str(REGISTRY_FIXTURES), *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"registry-fixtures.sh {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}")
    return proc.stdout.strip()


def _serve_registry(name: str, username: str | None = None) -> Iterator[Registry]:
    _registry_script("build", timeout=FIXTURE_BUILD_TIMEOUT_SECS)
    state = Path(tempfile.mkdtemp(prefix=f"nullspace-e2e-registry-{name}-"))
    password = f"pw-{uuid.uuid4().hex[:12]}" if username else None
    reg = Registry(address=f"127.0.0.1:{_free_port()}", dir=state, username=username, password=password)
    try:
        auth = ["--htpasswd", reg.creds] if reg.creds else []
        _registry_script("serve", reg.address, str(state), *auth, timeout=600)
        yield reg
    finally:
        _registry_script("stop", str(state), timeout=60)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """The anonymous fixture registry; the session server mirrors docker.io to it."""
    yield from _serve_registry("anon")


@pytest.fixture(scope="session")
def private_registry() -> Iterator[Registry]:
    """The same fixture images behind basic auth (a bcrypt htpasswd entry)."""
    yield from _serve_registry("auth", username="nullspace-e2e")


def registry_server_args(registry: Registry, private_registry: Registry) -> list[str]:
    """`nullspace server` options that point image pulls at the fixture registries."""
    return [
        "--registry-mirror", f"docker.io=http://{registry.address}",
        "--insecure-registry", registry.address,
        "--insecure-registry", private_registry.address,
    ]


# --------------------------------------------------------------------------------------------------
# sandboxes owned by a test


class Sandboxes:
    """Creates sandboxes through the official client and kills whatever is left at teardown."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.created: list[tuple[str, str]] = []

    def create(self, key: str | None = None, **kwargs: Any) -> Sandbox:
        sb = self.srv.create(key=key, **kwargs)
        self.created.append((sb.id, key or self.srv.key))
        return sb

    def cleanup(self) -> None:
        if not self.srv.running:
            return
        for sandbox_id, key in self.created:
            try:
                with self.srv.http(key) as http:
                    http.delete(f"/v1/sandboxes/{sandbox_id}")
            except httpx.HTTPError:
                pass


@pytest.fixture
def sandboxes(server):
    owner = Sandboxes(server)
    yield owner
    owner.cleanup()


@pytest.fixture(scope="module")
def module_sandboxes(server):
    owner = Sandboxes(server)
    yield owner
    owner.cleanup()


@pytest.fixture(scope="module")
def sandbox(module_sandboxes):
    """One shared sandbox per test module (commands and files tests)."""
    return module_sandboxes.create(metadata={"e2e": RUN_ID})


@pytest.fixture
def snapshot(server):
    return lambda: host_snapshot(server.data_dir)


# --------------------------------------------------------------------------------------------------
# the CLI


class Cli:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.home = srv.data_dir / "e2e-cli-home"
        self.home.mkdir(parents=True, exist_ok=True)

    def env(self, key: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            NULLSPACE_API_URL=self.srv.url,
            NULLSPACE_API_KEY=key or self.srv.key,
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
        )
        env.pop("NULLSPACE_BASE_URL", None)
        return env

    def run(self, *args: str, key: str | None = None, json_flag: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        if json_flag and "--json" not in argv:
            if "--" in argv:
                argv.insert(argv.index("--"), "--json")
            else:
                argv.append("--json")
        return subprocess.run(
            [self.srv.binary, *argv],
            capture_output=True,
            text=True,
            env=self.env(key),
            cwd=str(self.home),
            timeout=timeout,
        )

    def json(self, *args: str, key: str | None = None) -> Any:
        proc = self.run(*args, key=key)
        assert proc.returncode == 0, f"nullspace {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"nullspace {' '.join(args)} --json printed non-JSON: {proc.stdout!r}") from exc

    def __call__(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(*args, **kwargs)


@pytest.fixture(scope="session")
def cli(server):
    return Cli(server)


# --------------------------------------------------------------------------------------------------
# reporting


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER is not None:
        rep.sections.append(("nullspace server log", _SERVER.log_tail()))
