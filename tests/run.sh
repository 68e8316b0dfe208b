#!/usr/bin/env bash
# Runs the test suites of one build tree and records the counts in BUILD/results.txt.
# Usage: tests/run.sh BUILD [unit|integration|valgrind|all]
# Unit tests are cmocka binaries; integration tests are tests/integration/test_*.sh scripts
# that print "N passed, N failed". Every binary/script runs under a timeout: a hang fails.
set -uo pipefail
build=${1:?build dir}
what=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case $build in /*) export SB_BUILD="$build" ;; *) export SB_BUILD="$root/$build" ;; esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

passed=0 failed=0
rm -f "$build/failures.txt"
log=$(mktemp); trap 'rm -f "$log"' EXIT

count() { # $1 = exit code; reads $log
  local p f
  p=$(grep -aoE '\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
  f=$(grep -aoE '\[  FAILED  \] [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
  if ! grep -aqE '\[  (PASSED|FAILED)  \]' "$log"; then
    p=$(grep -aoE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | awk '{print $1}')
    f=$(grep -aoE '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | awk '{print $3}')
    p=${p:-0} f=${f:-0}
  fi
  if [[ $1 -ne 0 && $f -eq 0 ]]; then f=1; fi  # crashed, timed out or sanitizer report
  passed=$((passed + p)); failed=$((failed + f))
  [[ $f -eq 0 ]] || note_failure "$1" "$2"
}

# note_failure RC NAME: records what failed in BUILD/failures.txt, which tests/summary.sh
# prints last, so the tail of a CI log names the failing checks.
note_failure() {
  local why
  why=$(grep -aE '^FAIL - |^\[  FAILED  \] [a-z_]|^(==[0-9]+==)?ERROR: |^WARNING: ThreadSanitizer|runtime error' \
    "$log" | sort -u | head -5)
  [[ $1 -eq 124 ]] && why+=$'\n'"timed out"
  [[ -n $why ]] || why="exit code $1"
  while IFS= read -r line; do printf '%s %s: %s\n' "$build" "$2" "$line"; done <<<"$why" >>"$build/failures.txt"
}

run_unit() {
  local vg=("$@")
  for t in "$build"/tests/test_*; do
    [[ -x $t ]] || continue
    echo "== $(basename "$t") ($build)"
    timeout 300 "${vg[@]}" "$t" >"$log" 2>&1; rc=$?
    cat "$log"
    count $rc "$(basename "$t")"
  done
}

run_integration() {
  for t in tests/integration/test_*.sh tests/console/test_*.sh; do
    [[ -f $t ]] || continue
    echo "== $(basename "$t") ($build)"
    timeout 600 bash "$t" >"$log" 2>&1; rc=$?
    cat "$log"
    count $rc "$(basename "$t")"
  done
}

case $what in
  unit) run_unit ;;
  integration) run_integration ;;
  valgrind) run_unit valgrind -q --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect ;;
  all) run_unit; run_integration ;;
  *) echo "run.sh: unknown suite '$what'" >&2; exit 2 ;;
esac

echo "$passed $failed" > "$build/results.txt"
echo "$build: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
