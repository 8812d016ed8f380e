#!/usr/bin/env bash
# Builds the release binaries: `nullspace` (dynamic) and `nullspace-guestd` (static, runs in any rootfs),
# and puts both in target/release so the server finds the guest daemon next to itself.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked -p nullspace
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked -p nullspace-guest --target "$host"
install -m 0755 "target/$host/release/nullspace-guestd" target/release/nullspace-guestd
