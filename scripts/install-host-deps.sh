#!/usr/bin/env bash
# Installs the host packages Nullspace needs on Debian/Ubuntu (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  runc runsc mmdebstrap debian-archive-keyring iproute2 nftables e2fsprogs mount ca-certificates \
  pkg-config gcc libc6-dev python3 python3-venv python3-pip curl procps chromium \
  docker-registry skopeo umoci apache2-utils jq tar docker.io containerd tini busybox-static shellcheck \
  python3-ipykernel python3-matplotlib python3-numpy python3-pandas >/dev/null
# The desktop viewer bridge test runs a real VNC server (Xtigervnc) and reads its pointer back (xdotool).
apt-get install -y -qq --no-install-recommends tigervnc-standalone-server xdotool >/dev/null
