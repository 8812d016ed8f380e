#!/usr/bin/env bash
# A private Docker daemon (Debian's docker.io) with FIXTURE images for the official client's docker-driven
# tests (tests/integration_helpers.py: authenticated_local_registry). This machine reaches no image
# registry, so the images those tests name are imitations built here from Debian packages — none is the
# upstream image. What each imitates, for what the tests use:
#
#   busybox:1.36  Docker Hub's busybox: Debian's busybox-static (1.35, the version Debian has) as
#                 /bin/busybox with every applet as a hard link in /bin, /etc/passwd and /etc/group,
#                 Cmd ["sh"]. The tests `docker build FROM` it (RUN mkdir/echo) and `docker export` it as a
#                 bootable base layer.
#   registry:2    the Distribution registry: Debian's docker-registry (2.8, the same code) on a Debian
#                 minbase rootfs, with the upstream image's /entrypoint.sh, /etc/docker/registry/config.yml
#                 (no auth, storage /var/lib/registry, :5000) and /bin/registry. The tests run it with
#                 REGISTRY_AUTH=htpasswd env overrides and `-p 127.0.0.1:PORT:5000`.
#   httpd:2       Apache httpd: Debian's apache2 on a Debian minbase rootfs, with the upstream layout the
#                 tests use: htpasswd on PATH via /usr/local/apache2/bin (`--entrypoint htpasswd httpd:2
#                 -Bbn USER PASS`), plus httpd-foreground as Cmd.
# Every image carries the label nullspace.fixture=<what it is>.
#
# Usage:
#   docker-fixtures.sh up    starts dockerd (own data root under target/, own exec root, socket, pid file,
#                            bridge; no iptables rules) unless it runs, imports the images unless this
#                            recipe hash is already imported, and prints the DOCKER_HOST value to use.
#   docker-fixtures.sh down  stops the dockerd `up` started (by its pid file) and removes its bridge.
# It installs nothing: scripts/install-host-deps.sh does (docker.io, busybox-static, mmdebstrap).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${NULLSPACE_DOCKER_FIXTURES_DIR:-$root/target/docker-fixtures}
mkdir -p "$state"
state=$(cd "$state" && pwd)
id=$(printf %s "$state" | sha256sum | cut -c1-8)
# unix socket paths are short-lived and length-limited: the exec root lives under /run
run=/run/nullspace-docker-$id
bridge=nsdock$id
subnet_octet=$((16#${id:0:2} % 200 + 20))
bridge_cidr=172.31.$subnet_octet.1/24
sock=$run/docker.sock
suite=${NULLSPACE_FIXTURE_SUITE:-bookworm}
mirror=${NULLSPACE_FIXTURE_MIRROR:-http://deb.debian.org/debian}
debian_path="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() {
  echo "docker-fixtures: $*" >&2
  exit 1
}

docker_cli() {
  DOCKER_HOST="unix://$sock" docker "$@"
}

# --------------------------------------------------------------------------------------------------
# image recipes (their text is hashed: change one and the next `up` imports the images again)

recipe_busybox() {
  local out=$1 dir applet
  dir=$(mktemp -d "$state/busybox-XXXXXX")
  mkdir -p "$dir/bin" "$dir/dev" "$dir/etc" "$dir/home" "$dir/proc" "$dir/root" "$dir/sys" "$dir/usr/sbin" \
    "$dir/var/spool/mail" "$dir/var/www" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  chmod 700 "$dir/root"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln "$dir/bin/busybox" "$dir/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
    'bin:x:2:2:bin:/bin:/bin/false' 'sys:x:3:3:sys:/dev:/bin/false' 'sync:x:4:100:sync:/bin:/bin/sync' \
    'mail:x:8:8:mail:/var/spool/mail:/bin/false' 'www-data:x:33:33:www-data:/var/www:/bin/false' \
    'operator:x:37:37:Operator:/var:/bin/false' 'nobody:x:65534:65534:nobody:/home:/bin/false' > "$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'bin:x:2:' 'sys:x:3:' 'adm:x:4:' 'tty:x:5:' 'disk:x:6:' 'wheel:x:10:root' \
    'mail:x:8:' 'www-data:x:33:' 'operator:x:37:' 'staff:x:50:' 'users:x:100:' 'nogroup:x:65534:' > "$dir/etc/group"
  tar --create --file "$out" --directory "$dir" --numeric-owner --owner=0 --group=0 --sort=name .
  rm -rf "$dir"
  docker_cli import --change "ENV $debian_path" --change 'CMD ["sh"]' \
    --change 'LABEL nullspace.fixture="busybox:1.36 imitation: Debian busybox-static with hard-linked applets"' \
    "$out" busybox:1.36 >/dev/null
}

# A Debian minbase rootfs tar with `packages`, slimmed like Debian's slim images; `hooks` run in it.
debian_rootfs() {
  local out=$1 packages=$2
  shift 2
  # shellcheck disable=SC2016 # $1 is mmdebstrap's root directory, expanded by its hook shell
  mmdebstrap --quiet --mode=root --variant=minbase --format=tar --skip=output/dev --skip=output/mknod \
    --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='find "$1/usr/share/doc" -xdev -not -type d -not -name copyright -delete' \
    --customize-hook='cd "$1/usr/share" && rm -rf man/* locale/*' \
    "$@" "$suite" "$out" "deb $mirror $suite main"
}

recipe_registry() {
  local out=$1
  # the upstream image's config (minus auth: Debian's package config enables htpasswd) and entrypoint
  # shellcheck disable=SC2016 # $1 is mmdebstrap's root directory, expanded by its hook shell
  debian_rootfs "$out" docker-registry \
    --customize-hook='mkdir -p "$1/var/lib/registry" "$1/etc/docker/registry"' \
    --customize-hook='ln -sf /usr/bin/docker-registry "$1/bin/registry"' \
    --customize-hook='printf "%s\n" "version: 0.1" "log:" "  fields:" "    service: registry" "storage:" \
      "  cache:" "    blobdescriptor: inmemory" "  filesystem:" "    rootdirectory: /var/lib/registry" \
      "http:" "  addr: :5000" "  headers:" "    X-Content-Type-Options: [nosniff]" "health:" \
      "  storagedriver:" "    enabled: true" "    interval: 10s" "    threshold: 3" \
      > "$1/etc/docker/registry/config.yml"' \
    --customize-hook='printf "%s\n" "#!/bin/sh" "set -e" "case \"\$1\" in" \
      "    *.yaml|*.yml) set -- registry serve \"\$@\" ;;" \
      "    serve|garbage-collect|help|-*) set -- registry \"\$@\" ;;" "esac" "exec \"\$@\"" \
      > "$1/entrypoint.sh" && chmod 755 "$1/entrypoint.sh"'
  docker_cli import --change 'ENTRYPOINT ["/entrypoint.sh"]' --change 'CMD ["/etc/docker/registry/config.yml"]' \
    --change "ENV $debian_path" --change 'EXPOSE 5000' --change 'VOLUME ["/var/lib/registry"]' \
    --change 'LABEL nullspace.fixture="registry:2 imitation: Debian docker-registry 2.8 with the upstream entrypoint and config"' \
    "$out" registry:2 >/dev/null
}

recipe_httpd() {
  local out=$1
  # shellcheck disable=SC2016 # $1 is mmdebstrap's root directory, expanded by its hook shell
  debian_rootfs "$out" apache2,apache2-utils \
    --customize-hook='mkdir -p "$1/usr/local/apache2/bin"' \
    --customize-hook='for p in /usr/bin/htpasswd /usr/bin/htdigest /usr/bin/ab /usr/sbin/apache2ctl; do
        ln -s "$p" "$1/usr/local/apache2/bin/${p##*/}"; done; ln -s /usr/sbin/apache2 "$1/usr/local/apache2/bin/httpd"' \
    --customize-hook='ln -s /etc/apache2 "$1/usr/local/apache2/conf" && ln -s /var/www/html "$1/usr/local/apache2/htdocs" &&
        ln -s /var/log/apache2 "$1/usr/local/apache2/logs"' \
    --customize-hook='printf "%s\n" "#!/bin/sh" "set -e" "rm -f /var/run/apache2/apache2.pid" \
      "exec apache2ctl -DFOREGROUND \"\$@\"" > "$1/usr/local/bin/httpd-foreground" &&
        chmod 755 "$1/usr/local/bin/httpd-foreground"'
  docker_cli import --change 'ENV HTTPD_PREFIX=/usr/local/apache2' \
    --change 'ENV PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /usr/local/apache2' --change 'EXPOSE 80' --change 'CMD ["httpd-foreground"]' \
    --change 'LABEL nullspace.fixture="httpd:2 imitation: Debian apache2 with the upstream /usr/local/apache2 layout"' \
    "$out" httpd:2 >/dev/null
}

recipes=(recipe_busybox debian_rootfs recipe_registry recipe_httpd)

recipe_hash() {
  { declare -f "${recipes[@]}"; echo "$suite $mirror $debian_path"; sha256sum /bin/busybox; } | sha256sum | cut -c1-16
}

# --------------------------------------------------------------------------------------------------
# the daemon

dockerd_pid() {
  local pid
  [ -f "$run/dockerd.pid" ] || return 1
  pid=$(cat "$run/dockerd.pid")
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--exec-root $run/exec" || return 1
  echo "$pid"
}

start_dockerd() {
  command -v dockerd >/dev/null || die "dockerd is missing (Debian's docker.io: scripts/install-host-deps.sh)"
  mkdir -p "$run"
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$bridge_cidr" dev "$bridge"
  fi
  ip link set "$bridge" up
  # No iptables rules (the host's nftables belong to the nullspace servers): published ports go through
  # docker-proxy on the host, which reaches the containers over the bridge.
  setsid dockerd --data-root "$state/data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
    --host "unix://$sock" --bridge "$bridge" --iptables=false --ip6tables=false --ip-masq=false \
    --userland-proxy=true > "$state/dockerd.log" 2>&1 < /dev/null &
  local launched=$!
  for _ in $(seq 1 600); do
    if docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$launched" 2>/dev/null; then
      tail -20 "$state/dockerd.log" >&2
      die "dockerd exited while starting (log: $state/dockerd.log)"
    fi
    sleep 0.1
  done
  die "dockerd does not answer on $sock (log: $state/dockerd.log)"
}

import_images() {
  local hash work ref
  hash=$(recipe_hash)
  if [ "$(cat "$state/images.sha256" 2>/dev/null)" = "$hash" ] \
    && docker_cli image inspect busybox:1.36 registry:2 httpd:2 >/dev/null 2>&1; then
    return 0
  fi
  echo "docker-fixtures: importing fixture images (recipe $hash)" >&2
  rm -f "$state/images.sha256"
  work=$(mktemp -d "$state/import-XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap must remove this run's own work dir
  trap "rm -rf '$work'" EXIT
  recipe_busybox "$work/busybox.tar"
  recipe_registry "$work/registry.tar"
  recipe_httpd "$work/httpd.tar"
  rm -rf "$work"
  trap - EXIT
  for ref in busybox:1.36 registry:2 httpd:2; do
    docker_cli image inspect "$ref" >/dev/null
  done
  docker_cli image prune --force >/dev/null # the images of an earlier recipe, untagged by this import
  echo "$hash" > "$state/images.sha256"
}

up() {
  if ! dockerd_pid >/dev/null; then
    start_dockerd
  fi
  import_images
  echo "unix://$sock"
}

down() {
  local pid
  if pid=$(dockerd_pid); then
    # containers the tests left behind go first (they use --rm; a failed test may not reach its cleanup)
    docker_cli ps -aq | xargs -r env DOCKER_HOST="unix://$sock" docker rm -f >/dev/null 2>&1 || true
    kill "$pid"
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) did not exit within 30 s of SIGTERM"
  fi
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link del "$bridge"
  fi
  # the exec root only once nothing is mounted under it any more
  if ! grep -qF " $run/" /proc/self/mountinfo; then
    rm -rf "$run"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  hash) recipe_hash ;;
  *) die "usage: $0 up | down | hash" ;;
esac
