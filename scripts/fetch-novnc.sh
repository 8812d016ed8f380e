#!/usr/bin/env bash
# Vendors noVNC, the VNC client of the desktop viewer page, for the server: the npm package @novnc/novnc
# at a pinned version (its ES modules: core/, vendor/pako/), checked against a pinned sha256 before use,
# unpacked into DEST (default target/release/novnc, beside the server binary, which serves it at
# /v1/desktop/viewer-assets/**; NULLSPACE_NOVNC_DIR points elsewhere). Browsers never load it from a CDN.
# Idempotent: an up-to-date DEST is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.7.0
sha256=32689f18d6abe96bc6530828a6bd0b9ae33bda07c083a6575ed255b5a8f2e903
dest=${1:-target/release/novnc}
stamp="$version $sha256"
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$stamp" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-novnc: npm is needed to fetch @novnc/novnc@$version" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@novnc/novnc@$version" >/dev/null)
tarball="$work/novnc-novnc-$version.tgz"
if ! echo "$sha256  $tarball" | sha256sum --check --status; then
  echo "fetch-novnc: @novnc/novnc@$version does not match the pinned sha256 $sha256" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/docs"
cp -R "$work/package/core" "$work/package/vendor" "$dest.tmp/"
cp "$work/package/LICENSE.txt" "$work/package/AUTHORS" "$dest.tmp/"
cp "$work/package/docs/"LICENSE.* "$dest.tmp/docs/"
echo "$stamp" >"$dest.tmp/.version"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "fetch-novnc: noVNC $version in $dest"
