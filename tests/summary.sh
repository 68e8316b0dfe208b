#!/usr/bin/env bash
# Adds up BUILD/results.txt of each tree given, lists what failed (BUILD/failures.txt, from
# tests/run.sh) and prints the closing line.
set -uo pipefail
passed=0 failed=0
for b in "$@"; do
  if [[ -f $b/results.txt ]]; then
    read -r p f < "$b/results.txt"
    passed=$((passed + p)); failed=$((failed + f))
    echo "  $b: $p passed, $f failed"
  else
    echo "  $b: did not run (build failed?)"; failed=$((failed + 1))
  fi
done
for b in "$@"; do
  [[ -s $b/failures.txt ]] && sed 's/^/  failed in /' "$b/failures.txt"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
