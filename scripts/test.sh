#!/usr/bin/env bash
# The whole test suite: unit and host tests (cargo), a short fuzzing run, then end-to-end tests that start the real server and
# drive real sandboxes with the official Python client (nullspace-sdk==0.1.9) and with our CLI, then the
# official client's own integration tests for sandboxes, commands and files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Tests first: `cargo test --workspace` also builds a (dynamically linked) nullspace-guestd into
# target/release, and build.sh must come after it to put the static guest there.
cargo test --release --locked --workspace
# Coverage-guided fuzzing of every parser of untrusted input, 20 s per target (docs/security.md, "Fuzzing");
# its own workspace and target dir (fuzz/), so it never slows the cargo tests above.
./scripts/fuzz.sh
./scripts/build.sh

venv="$root/target/e2e-venv"
if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv"
fi
# Also when a kept venv lacks a package added since (`mcp` is the MCP client of test_mcp.py; the
# official client's extras pin it below 2, and official-tests.sh installs them into this venv too).
if ! "$venv/bin/python" -c 'import nullspace, pytest, pytest_timeout, pytest_asyncio, httpx, mcp' 2>/dev/null; then
  "$venv/bin/pip" install -q 'nullspace-sdk==0.1.9' 'pytest>=8' 'pytest-timeout' 'pytest-asyncio' 'httpx' 'mcp>=1.2,<2'
fi

# The HTTP fuzzer (tests/e2e/test_http_fuzz.py) runs schemathesis from a venv of its own, so its
# dependencies (hypothesis, its own pytest plugin) never meet the e2e venv's.
fuzz_venv="$root/target/fuzz-venv"
if ! "$fuzz_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$fuzz_venv"
  "$fuzz_venv/bin/pip" install -q 'schemathesis==4.32.5'
fi

export NULLSPACE_BIN="$root/target/release/nullspace"
export NULLSPACE_E2E_DATA_DIR="${NULLSPACE_E2E_DATA_DIR:-$root/target/e2e-data}"
"$venv/bin/pytest" -q -p no:cacheprovider --timeout 900 tests/e2e "$@"

./scripts/official-tests.sh
