#!/usr/bin/env bash
# One command for a new host: system packages, release build, binaries into /usr/local/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-host-deps.sh
./scripts/build.sh
install -m 0755 target/release/nullspace target/release/nullspace-guestd /usr/local/bin/
mkdir -p /usr/local/share/nullspace && rm -rf /usr/local/share/nullspace/novnc
cp -R target/release/novnc /usr/local/share/nullspace/novnc
echo "installed: $(command -v nullspace); start it with: nullspace server"
