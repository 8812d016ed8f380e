"""A real browser through the preview proxy: headless Chromium opens a preview URL; the page's script
opens a WebSocket to its own host (`location.host`, path `/ws`, authenticated by the cookie the first
response set), sends "ping" and writes the echo into the DOM. The sandbox side is stdlib-only Python: the
page over HTTP plus a minimal RFC 6455 echo. Chromium resolves `*.localhost` to loopback by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import wait_until

CHROMIUM = "/usr/bin/chromium"
PAGE_TEXT = "preview page rendered"

INDEX_HTML = f"""<!doctype html>
<html><head><title>preview</title></head>
<body>
<h1>{PAGE_TEXT}</h1>
<div id="out">waiting</div>
<script>
  const out = document.getElementById("out");
  const ws = new WebSocket("ws://" + location.host + "/ws");
  ws.onopen = () => ws.send("ping");
  ws.onmessage = (event) => {{ out.textContent = "echo:" + event.data + ":done"; ws.close(); }};
  ws.onerror = () => {{ out.textContent = "websocket error"; }};
</script>
<!-- Parser-blocking: the server answers only once it has sent the echo (or given up), so the load event,
     and with it --dump-dom, waits for the WebSocket. Chromium's virtual time does not wait for sockets. -->
<script src="/after-echo.js"></script>
</body></html>
"""

# Stdlib only: the sandbox has python3 but no pip packages and no internet.
WS_SERVER = r'''
import base64, hashlib, struct, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGE = open("/workspace/site/index.html", "rb").read()
ECHOED = threading.Event()


def read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.split("?")[0] == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path.split("?")[0] == "/after-echo.js":
            body = b"// echoed\n" if ECHOED.wait(30) else b"// no echo within 30 s\n"
            return self.reply("application/javascript", body)
        self.reply("text/html; charset=utf-8", PAGE)

    def reply(self, content_type, body):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        try:
            while True:
                b1, b2 = read_exact(self.rfile, 2)
                opcode, masked, length = b1 & 0x0F, b2 & 0x80, b2 & 0x7F
                if length == 126:
                    length = struct.unpack(">H", read_exact(self.rfile, 2))[0]
                elif length == 127:
                    length = struct.unpack(">Q", read_exact(self.rfile, 8))[0]
                mask = read_exact(self.rfile, 4) if masked else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(self.rfile, length)))
                if opcode == 0x8:  # close: answer it and stop
                    self.wfile.write(bytes([0x88, len(payload)]) + payload)
                    self.wfile.flush()
                    break
                if opcode == 0x9:  # ping -> pong
                    self.wfile.write(bytes([0x8A, len(payload)]) + payload)
                elif opcode in (0x1, 0x2):  # echo text/binary (short frames are all this test sends)
                    self.wfile.write(bytes([0x80 | opcode, len(payload)]) + payload)
                    self.wfile.flush()
                    ECHOED.set()
                self.wfile.flush()
        except (EOFError, ConnectionError):
            pass
        self.close_connection = True

    def log_message(self, fmt, *args):
        sys.stderr.write("ws-server: " + (fmt % args) + "\n")


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
'''


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (install the Debian chromium package)")
def test_browser_renders_the_page_and_echoes_over_websocket(server, sandboxes):
    sb = sandboxes.create()
    sb.files.write("/workspace/site/index.html", INDEX_HTML)
    sb.files.write("/workspace/ws_server.py", WS_SERVER)
    sb.commands.run("exec python3 /workspace/ws_server.py 8090", shell=True, background=True)
    ready = sb.wait_for_preview(8090, kind="http", timeout_secs=30)
    assert ready.ready, ready
    preview = sb.get_preview_url(8090)

    profile = tempfile.mkdtemp(prefix="ns-chromium-")
    try:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                preview.url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    dom = proc.stdout
    assert PAGE_TEXT in dom, f"chromium exited {proc.returncode}\nDOM: {dom[:2000]}\nstderr: {proc.stderr[-2000:]}"
    assert "echo:ping:done" in dom, f"no echo in the DOM\nDOM: {dom[:2000]}\nstderr: {proc.stderr[-2000:]}"

    def counted():
        grant = {g.id: g for g in sb.list_preview_urls(port=8090)}[preview.grant.id]
        done = grant.http_request_count >= 1 and grant.websocket_connection_count >= 1
        return grant if done and grant.bytes_in_count > 0 and grant.bytes_out_count > 0 else None

    wait_until(counted, 10, what="the grant's http and websocket counters")
