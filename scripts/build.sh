#!/usr/bin/env bash
# Builds the release binaries: `nullspace` (dynamic), `nullspace-guestd`, `nullspace-codegw` and
# `nullspace-desktopd` (static, run in any rootfs; codegw is the code-interpreter gateway, desktopd the
# desktop daemon), and puts them in target/release so the server finds the guest binaries next to itself.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked -p nullspace
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked -p nullspace-guest -p nullspace-codegw -p nullspace-desktopd --target "$host"
install -m 0755 "target/$host/release/nullspace-guestd" target/release/nullspace-guestd
install -m 0755 "target/$host/release/nullspace-codegw" target/release/nullspace-codegw
install -m 0755 "target/$host/release/nullspace-desktopd" target/release/nullspace-desktopd
./scripts/fetch-novnc.sh target/release/novnc # the desktop viewer's noVNC, served by the server
