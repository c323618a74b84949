#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script):
#   1. dev preset (futex backend, g++, -Werror): unit, stress, examples, Relacy models, install
#   2. portable preset (mutex+condvar backend, clang++, -Werror, deadlock detection): unit, examples
#   3. tsan preset: unit and stress tests under ThreadSanitizer
#   4. asan preset: unit and stress tests under AddressSanitizer + UndefinedBehaviorSanitizer
# Usage: scripts/test.sh [stage ...]   (stages: dev portable tsan asan; default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(dev portable tsan asan)
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
status=0
summary=()

run_stage() {
  local preset=$1 labels=$2
  local start=$SECONDS
  echo "=== [$preset] configure and build" >&2
  if ! cmake --preset "$preset" >/dev/null || ! cmake --build --preset "$preset" -j "$jobs"; then
    failed=$((failed + 1))
    status=1
    summary+=("$preset: BUILD FAILED")
    return 0
  fi
  echo "=== [$preset] ctest -L '$labels'" >&2
  local log="build/$preset/ctest.log" rc=0
  ctest --preset "$preset" -L "$labels" -j "$jobs" 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    local f=${BASH_REMATCH[1]} t=${BASH_REMATCH[2]}
    passed=$((passed + t - f))
    failed=$((failed + f))
    summary+=("$preset: $((t - f)) passed, $f failed ($((SECONDS - start)) s)")
  else
    failed=$((failed + 1))
    summary+=("$preset: ctest did not report a result")
  fi
  [ $rc -ne 0 ] && status=1
  return 0
}

for s in "${stages[@]}"; do
  case "$s" in
    dev) run_stage dev "unit|stress|examples|model|install" ;;
    portable) run_stage portable "unit|examples" ;;
    tsan) run_stage tsan "unit|stress" ;;
    asan) run_stage asan "unit|stress" ;;
    *) echo "unknown stage '$s' (stages: dev portable tsan asan)" >&2; exit 2 ;;
  esac
done

echo
printf '%s\n' "${summary[@]}"
echo "parkpool: $passed passed, $failed failed"
exit $status
