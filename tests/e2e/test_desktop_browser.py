"""The managed desktop viewer in a real browser: headless Chromium (Debian `chromium`), driven over the
DevTools protocol (a WebSocket, no driver binary), opens `viewer_url` from `stream.start`. noVNC (served by
the server) connects through the bridge; its canvas must show the sandbox's screen (compared in the page,
pixel by pixel, with the desktop's own screenshot); keys typed into a view-only viewer must not reach the
sandbox (not even after the page's own view-only flag is switched off: the server drops them), keys typed
into an interactive one must (mousepad saves them to a file).

The view-only check needs no timed wait: the view-only keys are typed first, the stream is then stopped
(which closes that bridge), and an interactive viewer types and saves; the saved file holds exactly the
interactive text, so nothing typed before it was delivered."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from nullspace import Sandbox
from websockets.sync.client import connect

from conftest import unique, wait_for_builtin_template, wait_until

pytestmark = pytest.mark.timeout(2400)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TYPED_FILE = "/workspace/typed.txt"


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools protocol."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="ns-viewer-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "--window-size=1280,800",
             "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = None
        for line in self.proc.stderr:  # the first lines say where DevTools listens
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "chromium did not start its DevTools endpoint"
        self.ws = connect(url, max_size=64 << 20).__enter__()  # closed in close()
        self.ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params):
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == message_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    def page(self, method: str, **params):
        return self.call(method, session=self.session, **params)

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        wait_until(lambda: self.evaluate("document.body && document.body.dataset.state") == "connected",
                   timeout=30, what="the viewer to connect")

    def type(self, text: str) -> None:
        for char in text:
            code = f"Key{char.upper()}" if char.isalpha() else ""
            for kind in ("keyDown", "keyUp"):
                self.page("Input.dispatchKeyEvent", type=kind, key=char, code=code, text=char if kind == "keyDown" else "",
                          windowsVirtualKeyCode=ord(char.upper()))

    def ctrl(self, char: str) -> None:
        self.page("Input.dispatchKeyEvent", type="keyDown", key="Control", code="ControlLeft", windowsVirtualKeyCode=17, modifiers=2)
        self.page("Input.dispatchKeyEvent", type="keyDown", key=char, code=f"Key{char.upper()}", windowsVirtualKeyCode=ord(char.upper()), modifiers=2)
        self.page("Input.dispatchKeyEvent", type="keyUp", key=char, code=f"Key{char.upper()}", windowsVirtualKeyCode=ord(char.upper()), modifiers=2)
        self.page("Input.dispatchKeyEvent", type="keyUp", key="Control", code="ControlLeft", windowsVirtualKeyCode=17)

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is required (Debian package `chromium`)")
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def desktop(server, module_sandboxes):
    wait_for_builtin_template(server, "desktop")
    sb = Sandbox.create(template="desktop", api_key=server.key, base_url=server.url, metadata={"e2e": unique()})
    module_sandboxes.created.append((sb.id, server.key))
    return sb


# Compares the noVNC canvas with a PNG (data URL) in the page: the share of pixels within 8 per channel.
COMPARE_JS = """
(async (png) => {
  const canvas = document.querySelector('#screen canvas');
  const image = new Image();
  image.src = png;
  await image.decode();
  const ref = document.createElement('canvas');
  ref.width = image.width; ref.height = image.height;
  ref.getContext('2d').drawImage(image, 0, 0);
  if (canvas.width !== image.width || canvas.height !== image.height)
    return {size: [canvas.width, canvas.height, image.width, image.height], match: 0};
  const a = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const b = ref.getContext('2d').getImageData(0, 0, image.width, image.height).data;
  let same = 0, colours = new Set();
  for (let i = 0; i < a.length; i += 4) {
    if (Math.abs(a[i]-b[i]) <= 8 && Math.abs(a[i+1]-b[i+1]) <= 8 && Math.abs(a[i+2]-b[i+2]) <= 8) same++;
    if (colours.size < 64) colours.add((a[i] << 16) | (a[i+1] << 8) | a[i+2]);
  }
  return {match: same / (a.length / 4), colours: colours.size};
})
"""


def test_the_canvas_shows_the_sandbox_screen(browser, desktop):
    managed = desktop.desktop.stream.start(view_only=True)
    browser.open(managed.viewer_url)
    png = "data:image/png;base64," + base64.b64encode(desktop.desktop.screenshot()).decode()

    def compared():
        result = browser.evaluate(f"{COMPARE_JS}({json.dumps(png)})")
        return result if result["match"] >= 0.98 else None

    result = wait_until(compared, timeout=30, what="the canvas to show the desktop's screenshot")
    assert result["colours"] > 1, "the canvas is not a blank fill"
    desktop.desktop.stream.stop()


def test_view_only_typing_does_nothing_and_interactive_typing_arrives(browser, desktop):
    desktop.commands.run(f": > {TYPED_FILE}")
    desktop.desktop.launch_executable("mousepad", [TYPED_FILE])
    wait_until(lambda: any("typed.txt" in w.title and w.is_active for w in desktop.desktop.list_windows()),
               timeout=60, what="mousepad to open and take the focus")

    view_only = desktop.desktop.stream.start(view_only=True)
    browser.open(view_only.viewer_url)
    browser.evaluate("window.nullspaceViewer.focus()")
    browser.type("viewonly")
    browser.ctrl("s")
    # The page's view-only flag is the viewer's to flip: the server's filter must still drop the keys.
    browser.evaluate("window.nullspaceViewer.viewOnly = false; window.nullspaceViewer.focus()")
    browser.type("flipped")
    browser.ctrl("s")
    assert browser.evaluate("document.body.dataset.state") == "connected", "noVNC's own messages pass the filter"
    desktop.desktop.stream.stop()  # closes the view-only bridge: nothing typed there can arrive later
    wait_until(lambda: browser.evaluate("document.body.dataset.state") == "disconnected", timeout=30,
               what="the view-only viewer to be disconnected by the stop")

    interactive = desktop.desktop.stream.start(view_only=False)
    browser.open(interactive.viewer_url)
    browser.evaluate("window.nullspaceViewer.focus()")
    browser.type("hello")
    browser.ctrl("s")
    wait_until(lambda: desktop.files.read(TYPED_FILE) != "", timeout=30, what="mousepad to save the typed text")
    assert desktop.files.read(TYPED_FILE).strip() == "hello", "only the interactive viewer's keys arrived"
    desktop.desktop.stream.stop()
