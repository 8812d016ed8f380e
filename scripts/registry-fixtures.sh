#!/usr/bin/env bash
# Test fixtures for template builds: OCI images built on this machine from Debian packages, and local
# registries (Debian's docker-registry) that serve them. This machine reaches no image registry, so every
# image here is a FIXTURE made locally; none is a copy of an upstream image. What each imitates:
#
#   debian:stable-slim (also library/debian:stable-slim, the path Docker Hub names map to)
#       imitates Docker Hub's debian:bookworm-slim: a real Debian minbase rootfs from mmdebstrap with the
#       dpkg path-excludes Debian's slim images use, ONE layer, config Cmd ["bash"] and Env PATH.
#   nullspace-fixtures/layered:1
#       imitates nothing upstream: the debian layer plus four layers that exercise layer application —
#       added files and dirs; a deleted file and dir (`.wh.` whiteouts, emitted by umoci repack); a
#       directory replaced wholesale (opaque `.wh..wh..opq`, a hand-made tar: umoci emits no opaque
#       whiteouts); a hard link and symlinks (umoci repack).
#   nullspace-fixtures/healthcheck:1
#       imitates nothing upstream: the debian layer with a full Docker-style config (Healthcheck,
#       ExposedPorts, Labels, WorkingDir, User, Env, Entrypoint, Cmd).
# Every fixture image carries the label nullspace.fixture=<what it is>.
#
# Usage:
#   registry-fixtures.sh build
#       Builds the images (once per recipe hash) into the OCI layout
#       ${NULLSPACE_FIXTURE_CACHE:-target/registry-fixtures}/<hash>/oci and prints that path.
#   registry-fixtures.sh serve ADDR DIR [--htpasswd USER:PASS]
#       Starts docker-registry on ADDR (a loopback host:port) with its config, storage, log and pid file
#       in DIR, anonymous or with basic auth, pushes every fixture image, and returns once it answers /v2/.
#   registry-fixtures.sh stop DIR
#       Stops the registry `serve` started in DIR (by its pid file only).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
suite=${NULLSPACE_FIXTURE_SUITE:-bookworm}
mirror=${NULLSPACE_FIXTURE_MIRROR:-http://deb.debian.org/debian}
security_mirror=${NULLSPACE_FIXTURE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cache=${NULLSPACE_FIXTURE_CACHE:-$root/target/registry-fixtures}
debian_path="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() {
  echo "registry-fixtures: $*" >&2
  exit 1
}

# layout tag -> the registry references it is pushed as
push_map=(
  "debian-stable-slim debian:stable-slim"
  "debian-stable-slim library/debian:stable-slim"
  "layered-1 nullspace-fixtures/layered:1"
  "healthcheck-1 nullspace-fixtures/healthcheck:1"
)

# --------------------------------------------------------------------------------------------------
# image recipes (their text is hashed: change one and the next `build` makes a new cache entry)

recipe_debian() {
  local layout=$1 work=$2
  # Debian's slim images (debuerreotype's slimify) drop docs, man pages, info and translations; the hooks
  # remove what the essential packages' first extraction left before the dpkg options applied ($1 is
  # mmdebstrap's root directory, expanded by mmdebstrap's hook shell).
  # shellcheck disable=SC2016
  mmdebstrap --quiet --mode=root --variant=minbase --format=tar --skip=output/dev --skip=output/mknod \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/linda/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='find "$1/usr/share/doc" -xdev -not -type d -not -name copyright -delete' \
    --customize-hook='find "$1/usr/share/doc" -xdev -depth -mindepth 1 -type d -empty -delete' \
    --customize-hook='cd "$1/usr/share" && rm -rf man/* groff/* info/* lintian/* linda/* locale/*' \
    "$suite" "$work/debian.tar" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security_mirror $suite-security main"
  umoci new --image "$layout:debian-stable-slim"
  umoci raw add-layer --image "$layout:debian-stable-slim" \
    --history.created_by "mmdebstrap --variant=minbase $suite (slim path-excludes)" \
    --history.comment "nullspace fixture: a Debian $suite minbase rootfs" "$work/debian.tar"
  umoci config --image "$layout:debian-stable-slim" --config.cmd bash --config.env "$debian_path" \
    --config.label "nullspace.fixture=debian-stable-slim: imitates debian:$suite-slim, built with mmdebstrap" \
    --history.comment "nullspace fixture: Cmd and Env of debian:stable-slim"
}

recipe_layered() {
  local layout=$1 work=$2 bundle
  bundle="$work/layered-a"
  umoci unpack --image "$layout:debian-stable-slim" "$bundle"
  # layer 1: files and directories added
  mkdir -p "$bundle/rootfs/opt/fixture/gone-dir" "$bundle/rootfs/opt/fixture/replaced/sub" \
    "$bundle/rootfs/opt/fixture/empty-dir"
  echo hello > "$bundle/rootfs/opt/fixture/hello.txt"
  echo doomed > "$bundle/rootfs/opt/fixture/doomed.txt"
  echo inner > "$bundle/rootfs/opt/fixture/gone-dir/inner.txt"
  echo old-1 > "$bundle/rootfs/opt/fixture/replaced/old-1.txt"
  echo old-2 > "$bundle/rootfs/opt/fixture/replaced/sub/old-2.txt"
  umoci repack --refresh-bundle --image "$layout:layered-1" \
    --history.comment "nullspace fixture layer 1: adds /opt/fixture files and dirs" "$bundle"
  # layer 2: a file and a directory deleted (umoci writes `.wh.<name>` whiteouts)
  rm "$bundle/rootfs/opt/fixture/doomed.txt"
  rm -r "$bundle/rootfs/opt/fixture/gone-dir"
  umoci repack --image "$layout:layered-1" \
    --history.comment "nullspace fixture layer 2: deletes doomed.txt and gone-dir (whiteouts)" "$bundle"
  # layer 3: /opt/fixture/replaced replaced wholesale: an opaque whiteout (an empty regular file named
  # `.wh..wh..opq`, OCI image-spec layer.md) and the new contents, in one hand-made tar
  mkdir -p "$work/opaque/opt/fixture/replaced"
  : > "$work/opaque/opt/fixture/replaced/.wh..wh..opq"
  echo new > "$work/opaque/opt/fixture/replaced/new.txt"
  tar --create --file "$work/opaque.tar" --directory "$work/opaque" --owner=0 --group=0 --numeric-owner \
    --mtime=@0 --no-recursion opt/fixture/replaced opt/fixture/replaced/.wh..wh..opq opt/fixture/replaced/new.txt
  umoci raw add-layer --image "$layout:layered-1" \
    --history.comment "nullspace fixture layer 3: replaces /opt/fixture/replaced (opaque whiteout)" "$work/opaque.tar"
  # layer 4: a hard link and symlinks
  bundle="$work/layered-b"
  umoci unpack --image "$layout:layered-1" "$bundle"
  mkdir -p "$bundle/rootfs/opt/fixture/links"
  echo linked > "$bundle/rootfs/opt/fixture/links/data.txt"
  ln "$bundle/rootfs/opt/fixture/links/data.txt" "$bundle/rootfs/opt/fixture/links/hardlink.txt"
  ln -s data.txt "$bundle/rootfs/opt/fixture/links/symlink.txt"
  ln -s ../replaced "$bundle/rootfs/opt/fixture/links/dir-symlink"
  umoci repack --image "$layout:layered-1" \
    --history.comment "nullspace fixture layer 4: a hard link and symlinks" "$bundle"
  umoci config --image "$layout:layered-1" \
    --config.label "nullspace.fixture=layered: debian-stable-slim plus 4 layers of adds, whiteouts, an opaque dir, links" \
    --history.comment "nullspace fixture: label"
}

recipe_healthcheck() {
  local layout=$1 work=$2
  umoci config --image "$layout:debian-stable-slim" --tag healthcheck-1 \
    --config.entrypoint /bin/sh --config.entrypoint -c \
    --clear config.cmd --config.cmd 'echo ok > /tmp/healthy && exec sleep infinity' \
    --config.env "$debian_path" --config.env FIXTURE_MODE=healthcheck \
    --config.exposedports 8080/tcp --config.workingdir /srv --config.user nobody \
    --config.label "nullspace.fixture=healthcheck: debian-stable-slim with a full Docker-style config" \
    --config.label org.opencontainers.image.title=nullspace-healthcheck-fixture \
    --history.comment "nullspace fixture: healthcheck config"
  # umoci knows only the OCI config fields; Healthcheck is Docker's, so it is written into the config blob.
  set_config_field "$layout" healthcheck-1 Healthcheck \
    '{"Test":["CMD-SHELL","test -f /tmp/healthy"],"Interval":5000000000,"Timeout":2000000000,"StartPeriod":1000000000,"Retries":3}'
  : "$work"
}

# Sets `.config.<field>` of the image config that layout tag `tag` points at (new config blob, new manifest
# blob, index.json updated; the old blobs are left to `umoci gc`).
set_config_field() {
  local layout=$1 tag=$2 field=$3 value=$4 manifest config new_config new_manifest
  manifest=$(jq -r --arg t "$tag" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json")
  [ -n "$manifest" ] || die "no tag $tag in $layout"
  config=$(jq -r .config.digest "$layout/blobs/sha256/${manifest#sha256:}")
  jq -c --arg f "$field" --argjson v "$value" '.config[$f] = $v' "$layout/blobs/sha256/${config#sha256:}" \
    > "$layout/new-config"
  new_config=$(sha256sum "$layout/new-config" | cut -d' ' -f1)
  jq -c --arg d "sha256:$new_config" --argjson s "$(stat -c %s "$layout/new-config")" \
    '.config.digest = $d | .config.size = $s' "$layout/blobs/sha256/${manifest#sha256:}" > "$layout/new-manifest"
  mv "$layout/new-config" "$layout/blobs/sha256/$new_config"
  new_manifest=$(sha256sum "$layout/new-manifest" | cut -d' ' -f1)
  jq -c --arg t "$tag" --arg d "sha256:$new_manifest" --argjson s "$(stat -c %s "$layout/new-manifest")" \
    '.manifests |= map(if .annotations["org.opencontainers.image.ref.name"] == $t then .digest = $d | .size = $s else . end)' \
    "$layout/index.json" > "$layout/new-index"
  mv "$layout/new-manifest" "$layout/blobs/sha256/$new_manifest"
  mv "$layout/new-index" "$layout/index.json"
}

recipes=(recipe_debian recipe_layered recipe_healthcheck set_config_field)

recipe_hash() {
  { declare -f "${recipes[@]}"; echo "$suite $mirror $security_mirror $debian_path"; } | sha256sum | cut -c1-16
}

# --------------------------------------------------------------------------------------------------
# build

# Prints the OCI layout of the fixture images, building it first unless the cache has it.
build() {
  local dest tmp
  dest="$cache/$(recipe_hash)"
  if [ -d "$dest/oci" ]; then
    echo "$dest/oci"
    return
  fi
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.building-XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap must remove this build's own temp dir
  trap "rm -rf '$tmp'" EXIT
  echo "registry-fixtures: building fixture images into $dest (Debian $suite)" >&2
  mkdir -p "$tmp/work"
  umoci init --layout "$tmp/oci"
  recipe_debian "$tmp/oci" "$tmp/work" >&2
  recipe_layered "$tmp/oci" "$tmp/work" >&2
  recipe_healthcheck "$tmp/oci" "$tmp/work" >&2
  umoci gc --layout "$tmp/oci"
  rm -rf "$tmp/work"
  # A complete layout appears at once; if another build finished first, its result is kept.
  if ! mv -T "$tmp" "$dest" 2>/dev/null; then
    [ -d "$dest/oci" ] || die "could not move $tmp to $dest"
    rm -rf "$tmp"
  fi
  trap - EXIT
  echo "$dest/oci"
}

# --------------------------------------------------------------------------------------------------
# serve / stop

registry_pid() {
  local dir=$1 pid
  [ -f "$dir/registry.pid" ] || return 1
  pid=$(cat "$dir/registry.pid")
  # only the registry this script started with this config (a pid may be reused after it exited)
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "docker-registry serve $dir/config.yml" || return 1
  echo "$pid"
}

serve() {
  local addr=$1 dir=$2 creds="" layout pid entry tag ref
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --htpasswd) creds=${2:?--htpasswd needs USER:PASS}; shift 2 ;;
      *) die "serve: unknown option $1" ;;
    esac
  done
  case $addr in
    127.*:* | localhost:*) ;;
    *) die "serve: $addr is not a loopback host:port" ;;
  esac
  layout=$(build)
  mkdir -p "$dir/storage"
  dir=$(cd "$dir" && pwd)
  if registry_pid "$dir" >/dev/null; then
    die "serve: a registry started here is still running (pid $(cat "$dir/registry.pid")); stop it first"
  fi
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: \"$dir/storage\"}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: $addr"
    echo "  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    if [ -n "$creds" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: nullspace-fixtures, path: \"$dir/htpasswd\"}"
    fi
  } > "$dir/config.yml"
  if [ -n "$creds" ]; then
    htpasswd -Bbn "${creds%%:*}" "${creds#*:}" > "$dir/htpasswd"
  fi
  setsid /usr/bin/docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/registry.pid"
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null -w '%{http_code}' "http://$addr/v2/" | grep -qE '^(200|401)$'; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/registry.log" >&2
      die "serve: docker-registry exited before answering /v2/"
    fi
    sleep 0.1
  done
  curl -s -o /dev/null -w '%{http_code}' "http://$addr/v2/" | grep -qE '^(200|401)$' \
    || die "serve: docker-registry on $addr does not answer /v2/ (log: $dir/registry.log)"
  for entry in "${push_map[@]}"; do
    tag=${entry%% *}
    ref=${entry#* }
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false ${creds:+--dest-creds "$creds"} \
      "oci:$layout:$tag" "docker://$addr/$ref" >&2
  done
  echo "registry-fixtures: serving on $addr (pid $pid, dir $dir)" >&2
}

stop() {
  local dir=$1 pid
  dir=$(cd "$dir" && pwd)
  if ! pid=$(registry_pid "$dir"); then
    rm -f "$dir/registry.pid"
    return 0
  fi
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  rm -f "$dir/registry.pid"
}

case ${1:-} in
  build) build ;;
  serve) [ $# -ge 3 ] || die "usage: $0 serve ADDR DIR [--htpasswd USER:PASS]"; shift; serve "$@" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  hash) recipe_hash ;;
  *) die "usage: $0 build | serve ADDR DIR [--htpasswd USER:PASS] | stop DIR | hash" ;;
esac
