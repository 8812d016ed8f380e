#!/bin/sh
# Mount an S3 (or S3-compatible) bucket with s3fs. Run explicitly; nothing runs it implicitly.
#   S3_BUCKET              bucket name (required)
#   S3_MOUNT_PATH          absolute mount point (default /mnt/s3)
#   AWS_ACCESS_KEY_ID      } credentials, passed to s3fs through its environment;
#   AWS_SECRET_ACCESS_KEY  } no password file is written
#   S3_ENDPOINT_URL        optional endpoint for S3-compatible stores (https://...)
#   S3_REGION              optional region
# Values are validated and passed as single arguments; they are never evaluated by a shell.
set -eu

die() { printf 'mount-s3: %s\n' "$1" >&2; exit "${2:-1}"; }

bucket="${S3_BUCKET:-}"
[ -n "$bucket" ] || die 'S3_BUCKET is not set; set it to the bucket name (and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and run again' 2
printf '%s' "$bucket" | grep -Eqx '[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]' \
    || die 'S3_BUCKET is not a valid bucket name (3-63 characters: a-z, 0-9, ".", "-")' 2

mount_path="${S3_MOUNT_PATH:-/mnt/s3}"
case "$mount_path" in
    /*) ;;
    *) die 'S3_MOUNT_PATH must be an absolute path' 2 ;;
esac
case "/$mount_path/" in
    */../*|*/./*) die 'S3_MOUNT_PATH must not contain "." or ".." components' 2 ;;
esac
printf '%s' "$mount_path" | grep -Eqx '[A-Za-z0-9._/-]+' || die 'S3_MOUNT_PATH may only contain A-Z a-z 0-9 . _ - /' 2

key_id="${AWS_ACCESS_KEY_ID:-}"
secret="${AWS_SECRET_ACCESS_KEY:-}"
[ -n "$key_id" ] && [ -n "$secret" ] || die 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set' 2
printf '%s%s' "$key_id" "$secret" | grep -q '[[:cntrl:]]' && die 'AWS credentials must not contain control characters' 2

command -v s3fs >/dev/null 2>&1 || die 's3fs is not installed in this sandbox' 127
[ -e /dev/fuse ] || die '/dev/fuse is not available in this sandbox' 3

set --
if [ -n "${S3_ENDPOINT_URL:-}" ]; then
    printf '%s' "$S3_ENDPOINT_URL" | grep -Eqx 'https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._/-]*)?' \
        || die 'S3_ENDPOINT_URL must be an http(s) URL' 2
    set -- "$@" -o "url=$S3_ENDPOINT_URL" -o use_path_request_style
fi
if [ -n "${S3_REGION:-}" ]; then
    printf '%s' "$S3_REGION" | grep -Eqx '[a-z0-9-]+' || die 'S3_REGION is not a valid region name' 2
    set -- "$@" -o "endpoint=$S3_REGION"
fi

mkdir -p -- "$mount_path"
AWSACCESSKEYID="$key_id" AWSSECRETACCESSKEY="$secret" exec s3fs "$bucket" "$mount_path" "$@"
