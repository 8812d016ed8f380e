"""nullspace bench's in-sandbox desktop baselines, run with `python3 -c` inside a `desktop` sandbox.

argv: MODE RUNS WARMUP
  screenshots  desktopd's own `POST /screenshot` (PNG) and `POST /screenshot/compressed` (JPEG q80),
               requested by one curl over one keep-alive loopback connection (127.0.0.1:49990) and
               timed by curl itself (`time_total` of each): the same capture and encoder as through
               the API, without the server's relay and the guest tunnel
  input        XTEST motion to X Y, then XQueryPointer until it reports X Y, in this process (libX11
               and libXtst through ctypes: what the X server itself costs); then `xdotool mousemove
               X Y` and `xdotool getmouselocation` until it reports X Y (what a script pays)
Prints one JSON line: {"png_ms": [...], "jpeg_ms": [...]} or {"xtest_ms": [...], "xdotool_ms": [...]}
(the timed runs, in milliseconds, after WARMUP untimed ones). Exits 2 with a message on stderr when a
run fails.
"""
import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import time

DESKTOPD = "http://127.0.0.1:49990"
POLL_LIMIT_SECS = 5.0


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def position(index):
    """The pointer position of run `index` (the same series as the bench's API runs)."""
    return 100 + (index * 37) % 1700, 100 + (index * 53) % 900


def curl_series(path, body, magic, runs, warmup):
    """Milliseconds of `warmup + runs` requests made by one curl on one keep-alive connection, as curl
    timed each (`time_total`), after the warmup; every answer must be 200 and start with `magic`."""
    folder = tempfile.mkdtemp(prefix="nullspace-bench-")
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(body),
         f"{DESKTOPD}{path}?run=[1-{warmup + runs}]", "-o", f"{folder}/shot_#1",
         "-w", "%{http_code} %{time_total}\n"],
        check=True, capture_output=True, text=True,
    ).stdout
    samples = []
    for index, line in enumerate(out.split("\n")[: warmup + runs]):
        status, seconds = line.split()
        with open(f"{folder}/shot_{index + 1}", "rb") as image:
            head = image.read(len(magic))
        if status != "200" or head != magic:
            fail(f"{path} answered {status} with bytes that are not the expected image")
        samples.append(float(seconds) * 1000.0)
    shutil.rmtree(folder)
    if len(samples) != warmup + runs:
        fail(f"curl timed {len(samples)} requests of {path}, not {warmup + runs}")
    return samples[warmup:]


class XTest:
    """One connection to the display, moving the pointer with XTEST and reading it back."""

    def __init__(self):
        self.x11 = ctypes.CDLL("libX11.so.6")
        self.xtst = ctypes.CDLL("libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XDefaultRootWindow.restype = ctypes.c_ulong
        self.x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XQueryPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 7
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
        self.display = self.x11.XOpenDisplay(None)
        if not self.display:
            fail("cannot open the X display (is DISPLAY set?)")
        self.root = self.x11.XDefaultRootWindow(self.display)

    def pointer(self):
        windows = [ctypes.c_ulong(), ctypes.c_ulong()]
        ints = [ctypes.c_int() for _ in range(4)]
        mask = ctypes.c_uint()
        self.x11.XQueryPointer(self.display, self.root, *[ctypes.byref(v) for v in windows + ints + [mask]])
        return ints[0].value, ints[1].value

    def move(self, index):
        x, y = position(index)
        self.xtst.XTestFakeMotionEvent(self.display, -1, x, y, 0)
        self.x11.XFlush(self.display)
        started = time.monotonic()
        while self.pointer() != (x, y):
            if time.monotonic() - started > POLL_LIMIT_SECS:
                fail(f"the pointer did not reach {x},{y} within {POLL_LIMIT_SECS} s")


def move(index):
    x, y = position(index)
    subprocess.run(["xdotool", "mousemove", str(x), str(y)], check=True)
    started = time.monotonic()
    while time.monotonic() - started < POLL_LIMIT_SECS:
        out = subprocess.run(
            ["xdotool", "getmouselocation", "--shell"], check=True, capture_output=True, text=True
        ).stdout
        fields = dict(line.split("=", 1) for line in out.split() if "=" in line)
        if (int(fields.get("X", -1)), int(fields.get("Y", -1))) == (x, y):
            return
    fail(f"the pointer did not reach {x},{y} within {POLL_LIMIT_SECS} s")


def timed(run, runs, warmup):
    samples = []
    for index in range(warmup + runs):
        started = time.perf_counter()
        run(index)
        elapsed = (time.perf_counter() - started) * 1000.0
        if index >= warmup:
            samples.append(elapsed)
    return samples


def main():
    if len(sys.argv) != 4:
        fail("usage: MODE RUNS WARMUP")
    mode, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        if mode == "screenshots":
            png = curl_series("/screenshot", {}, b"\x89PNG", runs, warmup)
            jpeg = curl_series("/screenshot/compressed", {"format": "jpeg", "quality": 80}, b"\xff\xd8", runs, warmup)
            print(json.dumps({"png_ms": png, "jpeg_ms": jpeg}))
        elif mode == "input":
            xtest = timed(XTest().move, runs, warmup)
            print(json.dumps({"xtest_ms": xtest, "xdotool_ms": timed(move, runs, warmup)}))
        else:
            fail(f"unknown mode {mode}")
    except (OSError, subprocess.CalledProcessError) as error:
        fail(f"{mode}: {error}")


main()
