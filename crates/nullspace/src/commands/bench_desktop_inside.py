"""nullspace bench's in-sandbox desktop baselines, run with `python3 -c` inside a `desktop` sandbox.

argv: MODE RUNS WARMUP
  screenshots  desktopd's own `POST /screenshot` (PNG) and `POST /screenshot/compressed` (JPEG q80),
               requested over loopback (127.0.0.1:49990): the same capture and encoder as through the
               API, without the server's relay and the guest tunnel
  input        `xdotool mousemove X Y`, then `xdotool getmouselocation` until it reports X Y
Prints one JSON line: {"png_ms": [...], "jpeg_ms": [...]} or {"input_ms": [...]} (the timed runs, in
milliseconds, after WARMUP untimed ones). Exits 2 with a message on stderr when a run fails.
"""
import json
import subprocess
import sys
import time
import urllib.request

DESKTOPD = "http://127.0.0.1:49990"
POLL_LIMIT_SECS = 5.0


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def position(index):
    """The pointer position of run `index` (the same series as the bench's API runs)."""
    return 100 + (index * 37) % 1700, 100 + (index * 53) % 900


def post(path, body, magic):
    request = urllib.request.Request(
        DESKTOPD + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        data = response.read()
    if not data.startswith(magic):
        fail(f"{path} answered {len(data)} bytes that are not the expected image")


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
            png = timed(lambda i: post("/screenshot", {}, b"\x89PNG"), runs, warmup)
            jpeg = timed(
                lambda i: post("/screenshot/compressed", {"format": "jpeg", "quality": 80}, b"\xff\xd8"), runs, warmup
            )
            print(json.dumps({"png_ms": png, "jpeg_ms": jpeg}))
        elif mode == "input":
            print(json.dumps({"input_ms": timed(move, runs, warmup)}))
        else:
            fail(f"unknown mode {mode}")
    except (OSError, subprocess.CalledProcessError) as error:
        fail(f"{mode}: {error}")


main()
