"""The raw Jupyter baseline of `nullspace bench`, run inside a code-interpreter sandbox as
`python3 -c THIS RUNS WARMUP CODE [STATE_DIR]`: connects `jupyter_client.BlockingKernelClient` to the kernel of
the gateway's default python context (the gateway records its contexts in STATE_DIR/contexts.json and
writes each kernel's connection file as STATE_DIR/runtime/kernel-<context id>-<start number>.json),
times RUNS `execute_interactive(CODE)` round trips (sent until the kernel is idle again and its reply
arrived) after WARMUP untimed ones, and prints one JSON line: {"round_trips_ms": [...],
"connection_file": ..., "jupyter_client": version}. Failures go to stderr with exit code 2."""

import glob
import json
import os
import sys
import time


def fail(message):
    print(f"raw jupyter baseline: {message}", file=sys.stderr)
    sys.exit(2)


def connection_file(state_dir):
    contexts = os.path.join(state_dir, "contexts.json")
    try:
        with open(contexts) as file:
            records = json.load(file)
    except (OSError, ValueError) as error:
        fail(f"cannot read the gateway's contexts {contexts}: {error}")
    ids = [r.get("id") for r in records if r.get("is_default") and r.get("language") == "python"]
    if not ids:
        fail(f"{contexts} records no default python context")

    def start_number(path):
        return int(path[: -len(".json")].rsplit("-", 1)[1])

    files = glob.glob(os.path.join(state_dir, "runtime", f"kernel-{ids[0]}-*.json"))
    if not files:
        fail(f"no connection file of context {ids[0]} under {state_dir}/runtime (is its kernel running?)")
    return max(files, key=start_number)


def main():
    if len(sys.argv) < 4:
        fail("usage: RUNS WARMUP CODE [STATE_DIR]")
    runs, warmup, code = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    state_dir = sys.argv[4] if len(sys.argv) > 4 else "/workspace/.nullspace/code"
    path = connection_file(state_dir)
    import jupyter_client

    client = jupyter_client.BlockingKernelClient(connection_file=path)
    client.load_connection_file()
    client.start_channels()
    results = []

    def hook(message):
        if message["msg_type"] == "execute_result":
            results.append(message["content"]["data"].get("text/plain"))

    timings = []
    try:
        client.wait_for_ready(timeout=60)
        for index in range(warmup + runs):
            results.clear()
            started = time.perf_counter()
            reply = client.execute_interactive(code, timeout=60, output_hook=hook)
            elapsed = time.perf_counter() - started
            status = reply["content"]["status"]
            if status != "ok":
                fail(f"execute of {code!r} ended {status}: {reply['content']}")
            if not results:
                fail(f"execute of {code!r} gave no execute_result")
            if index >= warmup:
                timings.append(elapsed * 1000.0)
    finally:
        client.stop_channels()
    print(json.dumps({"round_trips_ms": timings, "connection_file": path, "jupyter_client": jupyter_client.__version__}))


main()
