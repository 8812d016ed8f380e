"""The desktop template with the official client: the built-in `desktop` template (built by the server's
template engine from `images/desktop/`), the create request's `desktop` settings driving its X server
(`Xtigervnc :N -geometry WxH -dpi D`, started by `nullspace-desktopd` on port 49990) and every command's
`$DISPLAY`, and the server's relay of `/v1/sandboxes/{id}/desktop/**` to the daemon.

Everything here runs against a real server, a real X server and the real desktop daemon; a test needing
the template waits for the server's build of it (and fails if it never comes)."""

from __future__ import annotations

import httpx
import pytest
from nullspace import Sandbox, SandboxError, TemplateWarmPool

from conftest import unique, wait_for_builtin_template

pytestmark = pytest.mark.timeout(2400)

CUSTOM = {"resolution": (1366, 768), "dpi": 144, "display": ":3"}


@pytest.fixture(scope="module")
def desktop_template(server):
    wait_for_builtin_template(server, "desktop")
    return "desktop"


def error_of(answer: httpx.Response) -> tuple[str, str]:
    """(code, message) of the protocol's flat error envelope."""
    body = answer.json()
    assert isinstance(body, dict), body
    return body.get("code", ""), body.get("error", "")


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:16]
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def x_server_args(sb: Sandbox) -> str:
    """The command line of the sandbox's X server (Xtigervnc), from `ps`."""
    found = sb.commands.run("sh", ["-c", "ps -eo args | grep -E '(^|/)(Xvnc|Xtigervnc) ' | grep -v grep"])
    assert found.exit_code == 0, f"no X server runs: {found.stdout}{found.stderr}"
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def display_of(sb: Sandbox) -> str:
    return sb.commands.run("sh", ["-c", 'printf %s "$DISPLAY"']).stdout


def assert_desktop(sb: Sandbox, display: str, width: int, height: int, dpi: int) -> None:
    args = x_server_args(sb).split()
    assert display in args, args
    assert args[args.index("-geometry") + 1] == f"{width}x{height}", args
    assert args[args.index("-dpi") + 1] == str(dpi), args
    assert display_of(sb) == display
    # `sh -l` (as the client's own tests run commands) keeps it too.
    assert sb.commands.run("sh", ["-lc", 'printf %s "$DISPLAY"']).stdout == display
    assert sb.desktop.screen_size() == (width, height)
    assert png_size(sb.desktop.screenshot()) == (width, height)


def test_create_settings_drive_the_x_server_and_display(server, sandboxes, desktop_template):
    sb = sandboxes.create(template=desktop_template, **CUSTOM)
    assert_desktop(sb, ":3", 1366, 768, 144)
    # The template's own defaults are behind the settings, not next to them.
    env = sb.commands.run("sh", ["-c", "env | grep '^NULLSPACE_DESKTOP_' | sort"]).stdout.split()
    assert env == ["NULLSPACE_DESKTOP_DISPLAY=:3", "NULLSPACE_DESKTOP_DPI=144", "NULLSPACE_DESKTOP_RESOLUTION=1366x768"]


def test_a_desktop_without_settings_gets_the_defaults(server, sandboxes, desktop_template):
    sb = sandboxes.create(template=desktop_template)
    assert_desktop(sb, ":1", 1920, 1080, 96)
    listed = httpx.get(f"{server.url}/v1/templates", headers={"Authorization": f"Bearer {server.key}"}).json()
    info = next(t for t in listed if t["id"] == "desktop")
    assert info["builtin"] is True and info["canonical_ref"] == "nullspace/desktop"
    assert sb.commands.run("pwd").stdout.strip() == "/workspace"


def test_the_text_resolution_and_the_users_own_envs(server, sandboxes, desktop_template):
    """`"WxH"` is read as well as `{width, height}`; a create's envs reach commands untouched, and may
    repeat DISPLAY with the desktop's own value. A create that names no memory gets the template's 2 GiB
    (the official client always sends one: 512 MiB unless told otherwise)."""
    body = {
        "template": desktop_template,
        "desktop": {"resolution": "1024x768", "display": ":2"},
        "envs": {"DISPLAY": ":2", "MINE": "kept"},
    }
    with server.http() as http:
        created = http.post("/v1/sandboxes", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["memory_mb"] == 2048
    sb = server.connect(created.json()["id"])
    sandboxes.created.append((sb.id, server.key))
    assert_desktop(sb, ":2", 1024, 768, 96)
    assert sb.commands.run("sh", ["-c", 'printf %s "$MINE"']).stdout == "kept"


def test_settings_survive_fork_and_hibernate(server, sandboxes, desktop_template):
    sb = sandboxes.create(template=desktop_template, **CUSTOM)
    assert_desktop(sb, ":3", 1366, 768, 144)
    with server.http() as http:
        forked = http.post(f"/v1/sandboxes/{sb.id}/fork", json={})
        assert forked.status_code in (200, 201), forked.text
        child = server.connect(forked.json()["id"])
        sandboxes.created.append((child.id, server.key))
        assert_desktop(child, ":3", 1366, 768, 144)
        paused = http.post(f"/v1/sandboxes/{sb.id}/hibernate")
        assert paused.status_code == 200, paused.text
        # A create from the snapshot keeps its sandbox's settings: new ones are refused, not ignored.
        body = {"snapshot_id": paused.json()["id"], "template": "desktop", "desktop": {"dpi": 200}}
        refused = http.post("/v1/sandboxes", json=body)
        assert refused.status_code == 400 and "keeps the desktop settings" in refused.text, refused.text
        resumed = http.post(f"/v1/sandboxes/{sb.id}/resume", json={})
        assert resumed.status_code in (200, 201), resumed.text
    back = server.connect(resumed.json()["id"])
    sandboxes.created.append((back.id, server.key))
    assert_desktop(back, ":3", 1366, 768, 144)


def test_a_warm_pool_serves_only_the_default_desktop(server, sandboxes, desktop_template):
    """Pool sandboxes run the default desktop: a create with no settings takes one (with its own envs), a
    create with other settings is a cold create (or `warm_pool_unavailable` under `require`)."""
    pool = TemplateWarmPool.create(
        desktop_template, name=unique("desktop-pool"), min_ready=1, max_ready=1, api_key=server.key, base_url=server.url
    )
    try:
        pool.wait_until_ready(timeout_secs=300)
        warm = sandboxes.create(template=desktop_template, warm_pool=pool.id, envs={"MINE": "kept"})
        checkout = warm._info.warm_pool_checkout
        assert checkout is not None and checkout.hit, checkout
        assert_desktop(warm, ":1", 1920, 1080, 96)
        assert warm.commands.run("sh", ["-c", 'printf %s "$MINE"']).stdout == "kept"
        pool.wait_until_ready(timeout_secs=300)
        with pytest.raises(SandboxError) as refused:
            sandboxes.create(template=desktop_template, warm_pool=pool.id, warm_pool_mode="require", **CUSTOM)
        assert refused.value.code == "warm_pool_unavailable" and "desktop settings" in str(refused.value)
        custom = sandboxes.create(template=desktop_template, warm_pool=pool.id, **CUSTOM)
        checkout = custom._info.warm_pool_checkout
        assert checkout is not None and not checkout.hit and checkout.source.value == "cold_create", checkout
        assert_desktop(custom, ":3", 1366, 768, 144)
    finally:
        pool.delete()


@pytest.mark.parametrize(
    "desktop,expected",
    [
        ({"resolution": {"width": 0, "height": 768}}, "desktop.resolution.width must be from"),
        ({"resolution": {"width": 1366}}, "desktop.resolution must be"),
        ({"resolution": "huge"}, "desktop.resolution must be"),
        ({"dpi": -1}, "desktop.dpi must be a positive integer"),
        ({"dpi": 5000}, "desktop.dpi must be from"),
        ({"display": "3"}, "desktop.display must look like :1"),
        ({"display": ":3.0"}, "desktop.display must look like :1"),
        ({"depth": 24}, 'desktop has no setting "depth"'),
    ],
)
def test_bad_settings_are_named(server, desktop, expected):
    with server.http() as http:
        answer = http.post("/v1/sandboxes", json={"template": "desktop", "desktop": desktop})
    assert answer.status_code == 400, answer.text
    code, message = error_of(answer)
    assert code == "invalid_request" and expected in message, answer.text


def test_settings_need_the_desktop_template(server):
    with server.http() as http:
        answer = http.post("/v1/sandboxes", json={"template": "base", "desktop": {"dpi": 96}})
    assert answer.status_code == 400
    assert error_of(answer)[0] == "invalid_request" and "only to the desktop template" in error_of(answer)[1]


def test_envs_may_not_contradict_the_desktop(server, desktop_template):
    body = {"template": desktop_template, "desktop": {"display": ":3"}, "envs": {"DISPLAY": ":0"}}
    with server.http() as http:
        answer = http.post("/v1/sandboxes", json=body)
    assert answer.status_code == 400, answer.text
    code, message = error_of(answer)
    assert code == "invalid_request" and "envs.DISPLAY" in message and "desktop.display" in message, message


def test_a_sandbox_without_a_desktop_says_which_template_has_one(server, sandboxes):
    sb = sandboxes.create(template="base")
    with server.http() as http:
        answer = http.get(f"/v1/sandboxes/{sb.id}/desktop/screen_size")
    assert answer.status_code >= 400, answer.text
    code, message = error_of(answer)
    assert code == "feature_unavailable" and "`desktop` template" in message, answer.text
