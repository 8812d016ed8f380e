#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every parser of untrusted input: each target in
# fuzz/fuzz_targets runs for NULLSPACE_FUZZ_SECONDS (default 20) from its committed seed corpus
# (fuzz/corpus/<target>, never modified: new inputs go to target/fuzz-corpus/<target>). A crash, a
# failed invariant, a leak or a slow input fails the script; libFuzzer leaves the input in
# fuzz/artifacts/<target>/ and prints how to reproduce it (`cargo fuzz run <target> <file>`).
#
# Usage: scripts/fuzz.sh [TARGET…]   (default: every target)
# Env:   NULLSPACE_FUZZ_SECONDS=600 for a long run; NULLSPACE_FUZZ_JOBS=N to run N targets at once.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, coverage instrumentation); this machine has
# stable Rust only, so the build runs with RUSTC_BOOTSTRAP=1, which enables them on the stable compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${NULLSPACE_FUZZ_SECONDS:-20}
jobs=${NULLSPACE_FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

start=$(date +%s)
(cd fuzz && cargo fuzz build)
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - start)) s"

logs="$root/target/fuzz-logs"
mkdir -p "$logs"
run_one() {
  local target=$1
  local scratch="$root/target/fuzz-corpus/$target"
  mkdir -p "$scratch"
  # The scratch corpus comes first: libFuzzer adds new inputs to the first directory only.
  if (cd "$root/fuzz" && cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) \
      >"$logs/$target.log" 2>&1; then
    local execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log")
    cov=$(grep -E '^#[0-9]+' "$logs/$target.log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [^ ]*' | tail -1)
    echo "fuzz: $target ok: $execs executions in $seconds s, $cov"
  else
    echo "fuzz: $target FAILED; the log ends:"
    tail -40 "$logs/$target.log"
    return 1
  fi
}

failed=0
running=0
for target in "${targets[@]}"; do
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
echo "fuzz: done in $(($(date +%s) - start)) s"
exit $failed
