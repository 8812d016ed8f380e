"""HTTP fuzzing: schemathesis generates requests for every operation of the server's own `/openapi.json`
(valid and invalid bodies, path and query parameters) and sends them to the real server with an API key and
real ids (a live sandbox, a volume, a snapshot, a webhook), so it gets past the 404s. It checks that no
answer is a crash (5xx other than the protocol's deliberate 501/503), that every error is the protocol's
envelope and conforms to the document, and that routes needing a key refuse a request without one.

CI runs a bounded pass (a few examples per operation, a time cap); `NULLSPACE_HTTP_FUZZ_LONG=1` runs the
long mode (many more examples per operation, the coverage phase, a longer cap). The schemathesis
executable comes from its own venv, `target/fuzz-venv` (scripts/test.sh creates it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, RUN_ID, unique

FUZZ_VENV = REPO_ROOT / "target" / "fuzz-venv"
SCHEMATHESIS = FUZZ_VENV / "bin" / "schemathesis"
LONG = os.environ.get("NULLSPACE_HTTP_FUZZ_LONG", "") not in ("", "0")
MAX_EXAMPLES = int(os.environ.get("NULLSPACE_HTTP_FUZZ_EXAMPLES", "200" if LONG else "6"))
MAX_TIME_SECS = int(os.environ.get("NULLSPACE_HTTP_FUZZ_SECS", "3600" if LONG else "240"))
PHASES = "examples,coverage,fuzzing" if LONG else "examples,fuzzing"

# Operations that destroy or stop what they are given get objects of their own, so the rest of the run
# still reaches the live ones.
SACRIFICIAL_SANDBOX_OPS = [
    ("DELETE", "/v1/sandboxes/{id}"),
    ("POST", "/v1/sandboxes/{id}/hibernate"),
    ("POST", "/v1/sandboxes/{id}/pause"),
    ("POST", "/v1/sandboxes/{id}/timeout"),
]

CHECKS = [
    "nullspace_no_crash_and_envelope",  # http_fuzz_checks.py
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
]


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _config(params: dict[str, str], overrides: list[tuple[str, str, dict[str, str]]]) -> str:
    lines = ['headers = { Authorization = "Bearer ${NULLSPACE_FUZZ_KEY}" }', "", "[checks]", "enabled = false"]
    for name in CHECKS:
        lines += [f"{name}.enabled = true"]
    lines += ["", "[parameters]"]
    lines += [f"{_toml_str(key)} = {_toml_str(value)}" for key, value in params.items()]
    for method, path, values in overrides:
        inline = ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in values.items())
        lines += ["", "[[operations]]", f"include-method = {_toml_str(method)}", f"include-path = {_toml_str(path)}"]
        lines += [f"parameters = {{ {inline} }}"]
    return "\n".join(lines) + "\n"


def test_http_fuzz(server, sandboxes, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing; scripts/test.sh creates the fuzz venv (pip install schemathesis)")
    with server.http() as http:
        before_sandboxes = {s["id"] for s in http.get("/v1/sandboxes").json()["items"]}
        before_volumes = {v["id"] for v in http.get("/v1/volumes").json()}
    live = sandboxes.create(metadata={"http_fuzz": RUN_ID})
    spare = sandboxes.create(metadata={"http_fuzz": RUN_ID})
    with server.http() as http:
        volume = http.post("/v1/volumes", json={"name": unique("fuzzvol")}).raise_for_status().json()
        spare_volume = http.post("/v1/volumes", json={"name": unique("fuzzvol")}).raise_for_status().json()
        snap = http.post(f"/v1/sandboxes/{live.id}/snapshots", json={}).raise_for_status().json()
        spare_snap = http.post(f"/v1/sandboxes/{live.id}/snapshots", json={}).raise_for_status().json()
        hook = http.post(
            "/v1/lifecycle/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "operations": ["create"], "signing_secret": "s3cret-fuzz"},
        ).raise_for_status().json()
    params = {
        "path.id": live.id,
        "path.vid": volume["id"],
        "path.name": volume["name"],
        "path.wid": hook["id"],
    }
    overrides = [(method, path, {"path.id": spare.id}) for method, path in SACRIFICIAL_SANDBOX_OPS]
    overrides += [
        ("DELETE", "/v1/volumes/{vid}", {"path.vid": spare_volume["id"]}),
        ("GET", "/v1/snapshots/{id}", {"path.id": snap["id"]}),
        ("GET", "/v1/snapshots/{id}/lifecycle", {"path.id": snap["id"]}),
        ("DELETE", "/v1/snapshots/{id}", {"path.id": spare_snap["id"]}),
    ]
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(params, overrides))
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    env = dict(os.environ)
    env.update(
        NULLSPACE_FUZZ_KEY=server.key,
        SCHEMATHESIS_HOOKS="http_fuzz_checks",
        PYTHONPATH=str(Path(__file__).parent),
    )
    cmd = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{server.url}/openapi.json",
        "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME_SECS), "--phases", PHASES,
        "--workers", "2", "--request-timeout", "60", "--generation-database", "none", "--no-color",
        "--report", "junit,json", "--report-junit-path", str(junit), "--report-json-path", str(report),
        "--seed", os.environ.get("NULLSPACE_HTTP_FUZZ_SEED", "15"),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=MAX_TIME_SECS + 600, env=env, cwd=tmp_path
        )
    finally:
        # What the fuzzer created (sandboxes from create and fork, volumes) goes, so later tests have room.
        with server.http() as http:
            for item in http.get("/v1/sandboxes").json()["items"]:
                if item["id"] not in before_sandboxes:
                    http.delete(f"/v1/sandboxes/{item['id']}")
            for item in http.get("/v1/volumes").json():
                if item["id"] not in before_volumes:
                    http.delete(f"/v1/volumes/{item['id']}")
    out = proc.stdout + proc.stderr
    (server.data_dir / "http-fuzz.log").write_text(out)
    summary = out[-6000:]
    print(summary)
    assert "No operations" not in out, summary
    assert proc.returncode == 0, f"schemathesis found failures (exit {proc.returncode}):\n{summary}"
    counts = _counts(report)
    print(f"http fuzz: {counts}")
    assert counts.get("operations", 1) > 0, summary


def _counts(report: Path) -> dict[str, int]:
    """Cases and failures from schemathesis' JSON report (best effort: its layout is not a contract)."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {}
    found: dict[str, int] = {}

    def walk(value, prefix=""):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{prefix}{key}.")
        elif isinstance(value, int) and not isinstance(value, bool):
            found[prefix.rstrip(".")] = value

    walk(data.get("summary", data))
    return found
