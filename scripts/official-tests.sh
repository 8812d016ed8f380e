#!/usr/bin/env bash
# Runs the official client's own live tests (nullspace-sdk 0.1.9 sdist `tests/`) against a real server
# started here, and fails if any selected test fails. Tests for surfaces this server does not offer yet are
# deselected below, each with the reason; the note of each issue lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/target/e2e-venv"
sdk="$root/target/official-sdk"
port="${OFFICIAL_TESTS_PORT:-3000}"
key=ns_test_key_1

if [ ! -d "$sdk/nullspace_sdk-0.1.9/tests" ]; then
  mkdir -p "$sdk"
  "$venv/bin/pip" download -q --no-deps --no-binary :all: 'nullspace-sdk==0.1.9' -d "$sdk"
  tar -xzf "$sdk/nullspace_sdk-0.1.9.tar.gz" -C "$sdk"
fi
"$venv/bin/pip" install -q 'nullspace-sdk[cli,dev]==0.1.9' 'pytest-timeout' >/dev/null

data="${NULLSPACE_E2E_DATA_DIR:-$root/target/e2e-data}"
home=$(mktemp -d)
log="$data/official-server.log"
mkdir -p "$data"
# The fixture registry (debian:stable-slim and the other fixture images, built here from Debian packages by
# registry-fixtures.sh) stands in for Docker Hub: the server mirrors docker.io to it. The client's docker
# journeys push to registries they start on random loopback ports, so private registries are allowed here.
registry_dir=$(mktemp -d)
registry_port="${OFFICIAL_TESTS_REGISTRY_PORT:-5059}"
"$root/scripts/registry-fixtures.sh" build >/dev/null
"$root/scripts/registry-fixtures.sh" serve "127.0.0.1:$registry_port" "$registry_dir" >/dev/null
HOME="$home" NULLSPACE_BOOTSTRAP_API_KEY="$key" "$root/target/release/nullspace" server \
  --listen "127.0.0.1:$port" --data-dir "$data" --bridge nsofficial --subnet 10.215.0.0/16 \
  --registry-mirror "docker.io=http://127.0.0.1:$registry_port" \
  --registry-allow-private --sandbox-ca-bundle /etc/ssl/certs/ca-certificates.crt >"$log" 2>&1 &
server=$!
docker_fixtures=""
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$home"
  "$root/scripts/registry-fixtures.sh" stop "$registry_dir" || true
  rm -rf "$registry_dir"
  if [ -n "$docker_fixtures" ]; then "$docker_fixtures" down || true; fi
  # The server keeps its bridge and firewall table across restarts; this one is done for good.
  ip link del nsofficial 2>/dev/null || true
  nft delete table inet nullspace_nsofficial 2>/dev/null || true
  nft delete table bridge nullspace_nsofficial 2>/dev/null || true
}
trap cleanup EXIT
# A private Docker daemon with fixture images (busybox:1.36, registry:2, httpd:2 built here from Debian
# packages) for the client's docker-driven template tests; where dockerd is missing they skip themselves.
if command -v dockerd >/dev/null; then
  docker_fixtures="$root/scripts/docker-fixtures.sh"
  DOCKER_HOST=$("$docker_fixtures" up)
  export DOCKER_HOST
fi
for _ in $(seq 1 900); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then tail -50 "$log"; exit 1; fi
  sleep 1
done

# The client's code-interpreter and desktop tests skip themselves while their template is not listed: wait
# for the server's builds of both (found already built when the e2e run used this data dir), so whether they
# run never depends on timing, and fail if one never comes.
wait_for_builtin() {
  for _ in $(seq 1 1800); do
    if curl -fsS -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/templates" 2>/dev/null \
      | python3 -c 'import json,sys; sys.exit(0 if any(t.get("id") == sys.argv[1] and t.get("builtin") for t in json.load(sys.stdin)) else 1)' "$1"; then
      return 0
    fi
    if ! kill -0 "$server" 2>/dev/null; then tail -50 "$log"; exit 1; fi
    sleep 1
  done
  echo "official-tests: the $1 template was not built in time" >&2
  grep -i "built-in\|$1" "$log" | tail -20 >&2
  exit 1
}
wait_for_builtin code-interpreter
wait_for_builtin desktop

deselect=(
  # Expects GET {preview}/hello.txt == "hello from python quickstart" but never writes that file
  # (it writes /workspace/quickstart-py.txt); everything before that assertion passes.
  --deselect tests/test_quickstart_integration.py::test_quickstart_create_exec_files_get_host_kill
)
deselect+=(
  # The test calls the client's private _scan_directory_upload_source() without its required
  # `ignore_patterns` argument and fails with a TypeError before any request is made.
  --deselect tests/test_firecracker_uploads_integration.py::TestUploadSoak::test_resume_after_partial_directory_upload
  # Expects a write as `user` to replace a root-owned 0644 file in the sticky /tmp (root's write plus a chown).
  # Files requests made as a user have exactly that user's permissions (issue 11, finding 4: the same
  # privileged write overwrote /etc/shadow through a symlink), and the kernel refuses this one: by design.
  --deselect tests/test_firecracker_filesystem_parity.py::test_sync_filesystem_overwrite_with_user_switches_owner
)

# The client's template journeys: all of them run against the server, whose docker.io mirror is the fixture
# registry; the six that drive a local registry:2 with basic auth through docker use the private dockerd above
# (they skip themselves without one). Deselected, each with its reason (issue 12's note lists them):
journeys=tests/test_firecracker_sdk_user_journeys.py::TestTemplateUserJourneys
deselect+=(
  # They build FROM images this machine cannot have (no Docker Hub; only images built here from Debian
  # packages are served, and faking ubuntu/python/node/bun under their real names would be dishonest):
  # ubuntu:22.04 (the client's default base) ...
  --deselect "$journeys::test_template_builds_from_default_and_predefined_base_images[default-grep '^ID=' /etc/os-release-ubuntu]"
  --deselect "$journeys::test_template_builder_copy_env_start_cmd_and_lifecycle"
  --deselect "$journeys::test_template_build_envs_are_build_only_and_runtime_envs_persist"
  --deselect "$journeys::test_template_file_readiness_env_visibility_and_create_env_invisibility"
  --deselect "$journeys::test_template_process_readiness_restores_running_process"
  --deselect "$journeys::test_template_from_dockerfile_content_with_explicit_context"
  --deselect "$journeys::test_template_from_dockerfile_with_local_copy"
  --deselect "$journeys::test_template_can_extend_a_tagged_nullspace_template"
  --deselect "$journeys::test_template_background_build_status_polling_and_launch"
  --deselect "$journeys::test_template_tag_lifecycle_resolves_name_and_tag_refs"
  --deselect "$journeys::test_template_runtime_readiness_and_default_user"
  --deselect "$journeys::test_template_namespace_visibility_and_exact_build_refs"
  # ... python:3.12, node:20, oven/bun:1.2.0.
  --deselect "$journeys::test_template_builds_from_default_and_predefined_base_images[python-python3 --version 2>&1-Python 3.12]"
  --deselect "$journeys::test_template_builds_from_default_and_predefined_base_images[node-node --version-v20]"
  --deselect "$journeys::test_template_builds_from_default_and_predefined_base_images[bun-bun --version-1.2.]"
  --deselect "$journeys::test_template_npm_scope_copy_metadata_and_run_cmd_order"
)

cd "$sdk/nullspace_sdk-0.1.9"
secondary=$(HOME="$home" "$root/target/release/nullspace" api-key create --tenant secondary --data-dir "$data")
NULLSPACE_INTEGRATION=1 NULLSPACE_API_URL="http://127.0.0.1:$port" NULLSPACE_API_KEY="$key" \
  NULLSPACE_SECONDARY_API_KEY="$secondary" NULLSPACE_TEST_TIMEOUT_HIBERNATE=1 \
  NULLSPACE_FIRECRACKER_SOAK=1 NULLSPACE_FIRECRACKER_SOAK_UPLOAD_BYTES=268435456 \
  NULLSPACE_FIRECRACKER_RELIABILITY_LOOP_COUNT=3 \
  "$venv/bin/pytest" -q -p no:cacheprovider --timeout 300 -o addopts="" \
  tests/test_integration.py tests/test_quickstart_integration.py tests/test_firecracker_filesystem_parity.py \
  tests/test_pty_integration.py tests/test_firecracker_uploads_integration.py \
  tests/test_sandbox_integration.py tests/test_lifecycle_integration.py "$journeys" \
  tests/test_firecracker_code_interpreter_integration.py tests/test_firecracker_code_interpreter_sdk_sync_async.py \
  tests/test_firecracker_sdk_user_journeys.py::TestCodeInterpreterUserJourneys \
  tests/test_desktop_firecracker_integration.py \
  "${deselect[@]}"
