#!/bin/sh
# Customize hook for the `base` template, run by mmdebstrap (--customize-hook) on the host.
#   $1                      the finished chroot (becomes the read-only template layer)
#   NULLSPACE_RECIPE_DIR    directory holding this recipe's files/ (set by the builder)
# Everything here must be deterministic.
set -eu

root="$1"
recipe="${NULLSPACE_RECIPE_DIR:?NULLSPACE_RECIPE_DIR is not set}"
in_root() { chroot "$root" "$@"; }

# Users: root (default, HOME /root) and `user` (uid 1000) with passwordless sudo. `nobody` comes from base-passwd.
in_root useradd --create-home --home-dir /home/user --shell /bin/bash --uid 1000 --user-group user
printf 'user ALL=(ALL) NOPASSWD:ALL\n' > "$root/etc/sudoers.d/user"
chmod 0440 "$root/etc/sudoers.d/user"
in_root visudo -cf /etc/sudoers.d/user >/dev/null

# Directories: default cwd, root's ssh dir, a sticky world-writable /tmp.
install -d -m 0755 -o 0 -g 0 "$root/workspace"
install -d -m 0700 -o 0 -g 0 "$root/root/.ssh"
chmod 1777 "$root/tmp"

# No SSH host keys in the template (every sandbox would share them): the guest daemon generates the
# sandbox's own at boot (crates/nullspace-guest/src/host_keys.rs).
install -d -m 0755 "$root/etc/ssh"
rm -f "$root"/etc/ssh/ssh_host_*

# Bucket mount helpers: explicit, never run implicitly.
install -m 0755 "$recipe/files/mount-s3.sh" "$root/usr/local/bin/mount-s3.sh"
install -m 0755 "$recipe/files/mount-gcs.sh" "$root/usr/local/bin/mount-gcs.sh"

# Python: allow `pip install` into the system interpreter, as users of a sandbox expect (PEP 668 marker off).
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED

# Network identity placeholders; the node replaces them in each sandbox's upper dir.
cat > "$root/etc/resolv.conf" <<'RESOLV'
# placeholder written at template build; the sandbox runtime replaces this file
nameserver 1.1.1.1
nameserver 8.8.8.8
RESOLV
printf 'sandbox\n' > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost sandbox
::1	localhost ip6-localhost ip6-loopback
HOSTS

# Keep the layer small: no apt lists, caches or logs from the build.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/apt/* \
       "$root"/var/log/dpkg.log "$root"/var/log/alternatives.log
