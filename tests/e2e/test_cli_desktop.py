"""The `nullspace sandbox desktop …` CLI against a real desktop sandbox (created by the CLI with the seed
reference's `sandbox create --template desktop --resolution 1280x720 --dpi 144 --display :1`): screenshots
(full PNG of the screen's size, a region, a scaled PNG, JPEG, and PNG bytes on stdout), pointer input seen
through `cursor`, text typed into mousepad started by `launch executable` and saved with `hotkey`, `windows`
(JSON and table), `current-window`/`window-title`, a clipboard round trip, a recording started, stopped,
listed, downloaded as an MP4 and deleted, the managed viewer (`stream start` prints a URL that serves the
viewer page, `stream url`, `stream stop`), and the hints of a sandbox without a desktop and of missing
objects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import RUN_ID, wait_until, wait_for_builtin_template

pytestmark = pytest.mark.timeout(2400)

WIDTH, HEIGHT = 1280, 720
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TYPED_FILE = "/workspace/cli-typed.txt"


def desktop(cli, *args: str, json_flag: bool = False, text: bool = True, timeout: float = 120):
    """`nullspace sandbox desktop ARGS…` (human output unless json_flag)."""
    # --json goes first: `launch executable` takes every argument after its command as the program's.
    argv = [cli.srv.binary, "sandbox", "desktop", *(["--json"] if json_flag else []), *args]
    return subprocess.run(argv, capture_output=True, text=text, env=cli.env(), cwd=str(cli.home), timeout=timeout)


def ok(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    return proc


def as_json(proc: subprocess.CompletedProcess):
    return json.loads(ok(proc).stdout)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def shell(cli, sandbox: str, command: str) -> str:
    proc = cli.run("sandbox", "exec", sandbox, "--shell", command, json_flag=False)
    assert proc.returncode == 0, proc
    return proc.stdout


@pytest.fixture(scope="module")
def desk(server, cli):
    wait_for_builtin_template(server, "desktop")
    created = cli.json(
        "sandbox", "create", "--template", "desktop", "--resolution", f"{WIDTH}x{HEIGHT}", "--dpi", "144",
        "--display", ":1", "--metadata", f"e2e={RUN_ID}",
    )
    yield created["id"]
    with server.http() as http:
        http.delete(f"/v1/sandboxes/{created['id']}")


def test_screenshots_are_images_of_the_screen(cli, desk, tmp_path):
    assert ok(desktop(cli, "screen-size", desk)).stdout.strip() == f"{WIDTH}x{HEIGHT}"

    target = tmp_path / "screen.png"
    saved = ok(desktop(cli, "screenshot", desk, "--output", str(target)))
    assert f"saved screenshot to {target}" in saved.stdout, saved.stdout
    assert png_size(target.read_bytes()) == (WIDTH, HEIGHT)
    assert [p.name for p in tmp_path.iterdir()] == ["screen.png"], "no temporary file is left behind"

    region = as_json(desktop(cli, "screenshot", desk, "-o", str(tmp_path / "region.png"), "--region", "10,20,300,200",
                             json_flag=True))
    assert region["path"] == str(tmp_path / "region.png") and region["bytes"] > 0, region
    assert png_size((tmp_path / "region.png").read_bytes()) == (300, 200)

    ok(desktop(cli, "screenshot", desk, "-o", str(tmp_path / "half.png"), "--scale", "0.5", "--show-cursor"))
    assert png_size((tmp_path / "half.png").read_bytes()) == (WIDTH // 2, HEIGHT // 2)

    ok(desktop(cli, "screenshot", desk, "-o", str(tmp_path / "shot.jpg"), "--format", "jpeg", "--quality", "70"))
    jpeg = (tmp_path / "shot.jpg").read_bytes()
    assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9", jpeg[:8]

    piped = ok(desktop(cli, "screenshot", desk, text=False))
    assert png_size(piped.stdout) == (WIDTH, HEIGHT)

    bad = desktop(cli, "screenshot", desk, "-o", str(tmp_path / "bad.png"), "--region", "0,0,0,10")
    assert bad.returncode == 2 and "empty" in bad.stderr, bad  # clap's usage error
    outside = desktop(cli, "screenshot", desk, "-o", str(tmp_path / "out.png"), "--region", f"{WIDTH},0,10,10")
    assert outside.returncode == 1 and "does not fit" in outside.stderr, outside
    assert not (tmp_path / "out.png").exists()


def test_pointer_commands_move_the_pointer(cli, desk):
    ok(desktop(cli, "move", desk, "100", "200"))
    assert ok(desktop(cli, "cursor", desk)).stdout.strip() == "100,200"
    ok(desktop(cli, "click", desk, "320", "240"))
    assert as_json(desktop(cli, "cursor", desk, json_flag=True)) == {"x": 320, "y": 240}
    ok(desktop(cli, "click", desk, "330", "250", "--button", "right", "--double"))
    ok(desktop(cli, "key", desk, "Escape"))
    ok(desktop(cli, "drag", desk, "50", "60", "70", "80"))
    assert ok(desktop(cli, "cursor", desk)).stdout.strip() == "70,80"
    ok(desktop(cli, "scroll", desk, "640", "360", "--direction", "down", "--amount", "2"))
    ok(desktop(cli, "scroll", desk, "640", "360", "up"))
    assert ok(desktop(cli, "cursor", desk)).stdout.strip() == "640,360"
    ok(desktop(cli, "mouse-down", desk, "--x", "5", "--y", "6"))
    ok(desktop(cli, "mouse-up", desk))
    assert ok(desktop(cli, "cursor", desk)).stdout.strip() == "5,6"


def test_text_typed_into_mousepad_is_saved_and_its_window_listed(cli, desk):
    shell(cli, desk, f": > {TYPED_FILE}")
    launched = as_json(desktop(cli, "launch", "executable", desk, "mousepad", TYPED_FILE, json_flag=True))
    assert launched["argv"][-1] == TYPED_FILE and launched["pid"] > 0, launched

    def mousepad():
        windows = as_json(desktop(cli, "windows", desk, json_flag=True))
        return next((w for w in windows if "cli-typed.txt" in w["title"] and w["is_active"]), None)

    window = wait_until(mousepad, timeout=60, what="mousepad to open and take the focus")
    table = ok(desktop(cli, "windows", desk)).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "ACTIVE", "GEOMETRY", "CLASS", "TITLE"], table
    row = next(line for line in table if line.startswith(window["id"] + " "))
    assert "cli-typed.txt" in row and "*" in row.split(), row
    assert ok(desktop(cli, "current-window", desk)).stdout.strip() == window["id"]
    assert ok(desktop(cli, "window-title", desk, window["id"])).stdout.strip() == window["title"]

    ok(desktop(cli, "type", desk, "hello from the cli"))
    ok(desktop(cli, "hotkey", desk, "ctrl+s"))
    wait_until(lambda: shell(cli, desk, f"cat {TYPED_FILE}") != "", timeout=30, what="mousepad to save the text")
    assert shell(cli, desk, f"cat {TYPED_FILE}").strip() == "hello from the cli"


def test_clipboard_round_trip(cli, desk):
    text = f"clipboard from the cli {RUN_ID} ✓"
    assert as_json(desktop(cli, "clipboard", "set", desk, text, json_flag=True)) == {"text": text}
    got = ok(desktop(cli, "clipboard", "get", desk))
    assert got.stdout == text, got.stdout
    assert as_json(desktop(cli, "clipboard", "get", desk, json_flag=True)) == {"text": text}


def test_a_recording_is_downloaded_as_mp4(cli, desk, tmp_path):
    started = as_json(desktop(cli, "recording", "start", desk, "--name", "demo", json_flag=True))
    rec = started["id"]
    assert started["status"] == "recording" and started["name"] == "demo", started
    listed = ok(desktop(cli, "recording", "list", desk)).stdout
    assert rec in listed and "recording" in listed, listed
    for x in range(100, 600, 100):  # something to record
        ok(desktop(cli, "move", desk, str(x), str(x)))
    stopped = as_json(desktop(cli, "recording", "stop", desk, rec, json_flag=True))
    assert stopped["status"] == "stopped" and stopped["file_size_bytes"] > 0, stopped

    target = tmp_path / "demo.mp4"
    saved = as_json(desktop(cli, "recording", "download", desk, rec, "--output", str(target), json_flag=True))
    data = target.read_bytes()
    assert saved["bytes"] == len(data) == stopped["file_size_bytes"], saved
    assert data[4:8] == b"ftyp", data[:16]
    assert ok(desktop(cli, "recording", "get", desk, rec)).stdout.startswith(f"{rec} stopped")

    ok(desktop(cli, "recording", "delete", desk, rec))
    gone = desktop(cli, "recording", "get", desk, rec)
    assert gone.returncode == 1 and f"recording list {desk}" in gone.stderr, gone
    missing = desktop(cli, "recording", "download", desk, rec, "-o", str(tmp_path / "gone.mp4"))
    assert missing.returncode == 1 and not (tmp_path / "gone.mp4").exists(), missing


def test_stream_start_prints_a_viewer_url_that_serves_the_page(cli, desk):
    url = ok(desktop(cli, "stream", "start", desk)).stdout.strip()
    assert url.startswith(f"{cli.srv.url}/v1/sandboxes/{desk}/desktop/viewer?auth="), url
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and "viewer-assets" in page.text, page.text[:500]
    assert ok(desktop(cli, "stream", "url", desk)).stdout.strip() == url
    key = ok(desktop(cli, "stream", "auth-key", desk)).stdout.strip()
    assert url.endswith(f"auth={key}")

    view_only = as_json(desktop(cli, "stream", "start", desk, "--view-only", json_flag=True))
    assert view_only["view_only"] is True and view_only["auth_key"] != key, view_only
    replaced = httpx.get(url, timeout=10)
    assert "Viewer session replaced" in replaced.text and "rfb.js" not in replaced.text, replaced.text[:500]

    ok(desktop(cli, "stream", "stop", desk))
    none = desktop(cli, "stream", "url", desk)
    assert none.returncode == 1 and f"stream start {desk}" in none.stderr, none
    raw = desktop(cli, "stream", "info", desk)
    assert raw.returncode == 1 and "hint:" in raw.stderr and "stream start" in raw.stderr, raw


def test_a_sandbox_without_a_desktop_gets_a_hint(cli, sandboxes, tmp_path):
    plain = sandboxes.create(metadata={"e2e": RUN_ID}).id
    target = tmp_path / "none.png"
    proc = desktop(cli, "screenshot", plain, "--output", str(target))
    assert proc.returncode == 1, proc
    assert "hint:" in proc.stderr and "not created from the desktop template" in proc.stderr, proc.stderr
    assert "nullspace sandbox create --template desktop" in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == [], "a failed screenshot leaves no file"
    as_error = desktop(cli, "windows", plain, json_flag=True)
    assert as_error.returncode == 1, as_error
    error = json.loads(as_error.stdout)["error"]
    assert error["code"] == "feature_unavailable" and "--template desktop" in error["hint"], error
