"""`nullspace bench --quick` against the e2e server: the short run CI makes (no thresholds: these machines
are noisy). It checks what a user of the bench relies on: every row of every mode asked for is there, with
a figure, its baseline measured in the same run, the ratio of the two and the targets judged, and the
sandboxes the bench made are gone afterwards."""

from __future__ import annotations

import json

MODES = ("files", "exec", "create", "concurrent", "fork", "resume", "density")


def _live_ids(server) -> set[str]:
    with server.http() as http:
        return {item["id"] for item in http.get("/v1/sandboxes", params={"limit": 1000}).json()["items"]}


def test_quick_bench_reports_every_row_beside_its_baseline(server, cli):
    before = _live_ids(server)
    # Concurrent creates of 4, density at 2 and 4 sandboxes: the e2e server admits few default sandboxes (no overcommit flags), and
    # the rows, not the figure, are what this checks (MemAvailable moves by more than 4 sandboxes take).
    argv = ["bench", "--quick", "--mode", ",".join(MODES), "--density-steps", "2,4", "--concurrency", "4", "--data-dir", str(server.data_dir)]
    proc = cli.run(*argv, timeout=900)
    assert proc.returncode == 0, f"bench exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    report = json.loads(proc.stdout)
    assert report["quick"] is True
    assert sorted(report["modes"]) == sorted(MODES)
    rows = report["rows"]
    assert {row["mode"] for row in rows} == set(MODES), rows

    for row in rows:
        where = f"{row['mode']} / {row['name']}"
        assert row["samples"] >= 1, where
        assert row["unit"] in ("ms", "mib_per_s", "mib"), where
        if row["unit"] != "mib":  # memory deltas of a few sandboxes may come out negative on a busy host
            assert row["p50"] > 0 and row["p90"] > 0, where
        baseline = row["baseline"]
        if baseline is not None:
            assert baseline["samples"] >= 1, where
            if baseline["p50"] > 0:
                assert abs(row["ratio"] - row["p50"] / baseline["p50"]) < 1e-9, where
        for target in row["targets"]:
            assert target["text"], where
        assert isinstance(row["met"], bool), where

    by_mode = {mode: [row for row in rows if row["mode"] == mode] for mode in MODES}
    # The rows the issue asks for, each with the baseline it names.
    files = by_mode["files"]
    assert {row["baseline"]["name"] for row in files} == {"cp"}
    names = [row["name"] for row in files]
    for kind in ("upload", "resumable upload", "download"):
        for target in ("(sandbox)", "(volume)", "(size-limited volume)"):
            assert any(name.startswith(kind + " ") and name.endswith(target) for name in names), (kind, target, names)
    assert any(row["baseline"] and "runc" in row["baseline"]["name"] for row in by_mode["create"])
    assert any(row["baseline"] and "healthz" in row["baseline"]["name"] for row in by_mode["exec"])
    assert any(row["baseline"] and "guest socket" in row["baseline"]["name"] for row in by_mode["exec"])
    assert any(row["baseline"] and "cp -a" in row["baseline"]["name"] for row in by_mode["fork"])
    assert any(row["name"].startswith("resume") and row["baseline"] for row in by_mode["resume"])
    assert any("per idle sandbox at 4" in row["name"] for row in by_mode["density"])
    assert any(row["baseline"] and "sequential" in row["baseline"]["name"] for row in by_mode["concurrent"])

    after = _live_ids(server)
    assert after <= before, f"the bench left sandboxes behind: {after - before}"
