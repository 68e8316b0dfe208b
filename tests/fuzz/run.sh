#!/usr/bin/env bash
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang (ASan + UBSan) and runs it.
# Usage: tests/fuzz/run.sh SECONDS   fuzz each target that long (new inputs kept in build/)
#        tests/fuzz/run.sh regress   replay the seed corpus once per target (part of make test)
#        FUZZ_ONLY=NAME ...          only fuzz_NAME (e.g. FUZZ_ONLY=sse tests/fuzz/run.sh 60)
# Seed corpora live in tests/fuzz/corpus/<name>/ where <name> is the file name without
# the fuzz_ prefix. Crashes are saved in build/fuzz/artifacts/.
set -uo pipefail
mode=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=build/fuzz
mkdir -p "$out/obj" "$out/artifacts"
CC=${FUZZ_CC:-clang}
pkgs="libcurl libcjson libmicrohttpd ncursesw sqlite3 hiredis libssl libcrypto"
flags="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags $pkgs) -fsanitize=address,undefined -fno-sanitize-recover=all"
libs="$(pkg-config --libs $pkgs) -lm -pthread"

# Library objects, rebuilt only when their source changed.
objs=()
for src in src/*/*.c; do
  o="$out/obj/${src//\//_}.o"
  if [[ ! -f $o || $src -nt $o || -n $(find include src -newer "$o" -name '*.h' | head -1) ]]; then
    $CC $flags -fsanitize=fuzzer-no-link -c "$src" -o "$o" || { echo "fuzz: cannot build $src" >&2; exit 1; }
  fi
  objs+=("$o")
done

passed=0 failed=0
rm -f "$out/failures.txt"
fail() { # fail NAME WHY: counts a failure and records it for tests/summary.sh
  failed=$((failed + 1)); echo "$out fuzz_$1: $2" >>"$out/failures.txt"
}
for t in tests/fuzz/fuzz_${FUZZ_ONLY:-*}.c; do
  [[ -f $t ]] || continue
  name=$(basename "$t" .c); name=${name#fuzz_}
  bin="$out/fuzz_$name"
  # A target may name more sources on a line "/* fuzz-extra: FILE... */" (test support).
  extra=$(sed -n 's|^/\* fuzz-extra: \(.*\) \*/$|\1|p' "$t")
  if ! $CC $flags -fsanitize=fuzzer "$t" tests/fuzz/hooks.c $extra "${objs[@]}" $libs -o "$bin"; then
    echo "fuzz $name: build failed"; fail "$name" "build failed"; continue
  fi
  seeds="tests/fuzz/corpus/$name"
  mkdir -p "$seeds"
  if [[ $mode == regress ]]; then
    files=("$seeds"/*)
    if [[ -e ${files[0]} ]] && "$bin" -runs=0 "${files[@]}" >"$out/$name.log" 2>&1; then
      echo "fuzz $name: ${#files[@]} seed inputs replayed, ok"; passed=$((passed + 1))
    elif [[ ! -e ${files[0]} ]]; then
      echo "fuzz $name: no seed corpus in $seeds"; fail "$name" "no seed corpus"
    else
      echo "fuzz $name: FAILED on seed corpus"; tail -30 "$out/$name.log"; fail "$name" "failed on its seed corpus"
    fi
  else
    work="$out/corpus/$name"; mkdir -p "$work"
    if "$bin" -max_total_time="$mode" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$out/artifacts/$name-" "$work" "$seeds" >"$out/$name.log" 2>&1; then
      runs=$(grep -oE 'Done [0-9]+ runs' "$out/$name.log" | awk '{print $2}')
      echo "fuzz $name: ${runs:-?} runs in ${mode}s, no findings (corpus: $(ls "$work" | wc -l) inputs)"
      passed=$((passed + 1))
    else
      echo "fuzz $name: FINDING (see $out/$name.log, artifacts in $out/artifacts)"
      grep -E 'ERROR|SUMMARY' "$out/$name.log" | head -5
      fail "$name" "finding in ${mode}s"
    fi
  fi
done
echo "$passed $failed" > "$out/results.txt"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
