#!/bin/sh
# Mount a Google Cloud Storage bucket with gcsfuse. Run explicitly; nothing runs it implicitly.
#   GCS_BUCKET                           bucket name (required)
#   GCS_MOUNT_PATH                       absolute mount point (default /mnt/gcs)
#   GOOGLE_APPLICATION_CREDENTIALS_JSON  service-account key; written to a private 0600 file for this mount
#   GOOGLE_APPLICATION_CREDENTIALS       or: path of an existing key file
# Values are validated and passed as single arguments; they are never evaluated by a shell.
set -eu

die() { printf 'mount-gcs: %s\n' "$1" >&2; exit "${2:-1}"; }

bucket="${GCS_BUCKET:-}"
[ -n "$bucket" ] || die 'GCS_BUCKET is not set; set it to the bucket name (and GOOGLE_APPLICATION_CREDENTIALS_JSON) and run again' 2
printf '%s' "$bucket" | grep -Eqx '[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]' \
    || die 'GCS_BUCKET is not a valid bucket name (3-222 characters: a-z, 0-9, ".", "_", "-")' 2

mount_path="${GCS_MOUNT_PATH:-/mnt/gcs}"
case "$mount_path" in
    /*) ;;
    *) die 'GCS_MOUNT_PATH must be an absolute path' 2 ;;
esac
case "/$mount_path/" in
    */../*|*/./*) die 'GCS_MOUNT_PATH must not contain "." or ".." components' 2 ;;
esac
printf '%s' "$mount_path" | grep -Eqx '[A-Za-z0-9._/-]+' || die 'GCS_MOUNT_PATH may only contain A-Z a-z 0-9 . _ - /' 2

command -v gcsfuse >/dev/null 2>&1 \
    || die 'gcsfuse is not installed in this template (it is not packaged by Debian); use a template that includes it' 127
[ -e /dev/fuse ] || die '/dev/fuse is not available in this sandbox' 3

set --
if [ -n "${GOOGLE_APPLICATION_CREDENTIALS_JSON:-}" ]; then
    key_dir="$(mktemp -d /tmp/gcs-key.XXXXXX)"
    (umask 077; printf '%s' "$GOOGLE_APPLICATION_CREDENTIALS_JSON" > "$key_dir/key.json")
    set -- --key-file "$key_dir/key.json"
elif [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]; then
    [ -f "$GOOGLE_APPLICATION_CREDENTIALS" ] || die 'GOOGLE_APPLICATION_CREDENTIALS does not name a file' 2
    set -- --key-file "$GOOGLE_APPLICATION_CREDENTIALS"
fi

mkdir -p -- "$mount_path"
exec gcsfuse "$@" "$bucket" "$mount_path"
