#!/usr/bin/env bash
# Installs the host packages Nullspace needs on Debian/Ubuntu (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  runc runsc mmdebstrap debian-archive-keyring iproute2 nftables e2fsprogs xfsprogs mount ca-certificates \
  pkg-config gcc libc6-dev python3 python3-venv python3-pip curl procps chromium \
  docker-registry skopeo umoci apache2-utils jq tar docker.io containerd tini busybox-static shellcheck \
  python3-ipykernel python3-matplotlib python3-numpy python3-pandas >/dev/null
# xfsprogs: the fork tests make an XFS (reflink) filesystem to test O(1) forks of sandbox disks on it.
# The desktop viewer bridge test runs a real VNC server (Xtigervnc) and reads its pointer back (xdotool).
# The desktop: a real X server with VNC, a window manager, an editor, the clipboard and recordings for
# nullspace-desktopd's tests; npm fetches the managed viewer's noVNC at build time.
apt-get install -y -qq --no-install-recommends tigervnc-standalone-server openbox mousepad x11-utils xclip xdotool \
  ffmpeg >/dev/null
# Debian's npm, unless a nodejs that ships its own npm (which conflicts with Debian's) is installed.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm >/dev/null
