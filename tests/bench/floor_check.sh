#!/usr/bin/env bash
# tests/bench/floor_check.sh BUILD - checks the library floor (tests/bench/floor.c) in every
# mode (tpc, relay, loop, loop2) before its figures are trusted: the answer through the floor
# is byte for byte the upstream's (JSON and SSE, BUILD/upstream), a dead upstream gives a
# 502, a client that leaves while its request is at a slow upstream (--delay-ms) does not
# stop the floor from answering the next one, and SIGTERM with requests in flight ends the
# process with status 0 within 5 s. Not part of `make test` or `make bench`; about 15 s.
# Build first: make BUILD=build/bench OPT='-O2 -DNDEBUG' bench-tools.
set -uo pipefail
build=${1:?usage: tests/bench/floor_check.sh BUILD}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) B=$build ;; *) B=$root/$build ;; esac
for x in "$B/floor" "$B/upstream"; do
  [[ -x $x ]] || { echo "floor_check: $x missing (make BUILD=$build bench-tools)" >&2; exit 2; }
done
T=$(mktemp -d /tmp/sb-floorcheck.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
fail() { echo "floor_check: FAIL: $*" >&2; fails=$((fails + 1)); }
P=/v1/chat/completions
BODY='{"model":"x","messages":[{"role":"user","content":"hi"}]}'

# start NAME CMD...: runs CMD with --port-file; sets PID_<NAME>; prints nothing.
start() {
  local name=$1
  shift
  "$@" --port-file "$T/$name.port" >"$T/$name.out" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
  for _ in $(seq 100); do [[ -s $T/$name.port ]] && return; sleep 0.05; done
  echo "floor_check: $name did not start" >&2
  exit 1
}
post() { # post URL OUTFILE [curl options]: prints the status
  local url=$1 out=$2
  shift 2
  curl -s -o "$out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$BODY" "$@" "$url"
}

start up "$B/upstream"
read -r JSON_PORT SSE_PORT <"$T/up.port"
start slow "$B/upstream" --delay-ms 1500
read -r SLOW_PORT _ <"$T/slow.port"
post "http://127.0.0.1:$JSON_PORT$P" "$T/direct.json" >/dev/null
post "http://127.0.0.1:$SSE_PORT$P" "$T/direct.sse" >/dev/null

for mode in tpc relay loop loop2; do
  start "${mode}_json" "$B/floor" --mode "$mode" --upstream "http://127.0.0.1:$JSON_PORT$P" --content-type application/json
  start "${mode}_sse" "$B/floor" --mode "$mode" --upstream "http://127.0.0.1:$SSE_PORT$P" --content-type text/event-stream
  start "${mode}_dead" "$B/floor" --mode "$mode" --upstream "http://127.0.0.1:1$P" --content-type application/json
  start "${mode}_slow" "$B/floor" --mode "$mode" --upstream "http://127.0.0.1:$SLOW_PORT$P" --content-type application/json
  port() { cat "$T/${mode}_$1.port"; }
  for fmt in json sse; do
    for i in 1 2 3; do # keep-alive to the upstream: the second and third reuse the connection
      code=$(post "http://127.0.0.1:$(port "$fmt")$P" "$T/got.$fmt")
      [[ $code == 200 ]] || fail "$mode $fmt request $i: status $code"
      cmp -s "$T/got.$fmt" "$T/direct.$fmt" || fail "$mode $fmt request $i: body differs from the upstream's"
    done
  done
  code=$(post "http://127.0.0.1:$(port dead)$P" /dev/null)
  [[ $code == 502 ]] || fail "$mode: dead upstream answered $code, not 502"
  post "http://127.0.0.1:$(port slow)$P" /dev/null --max-time 0.3 >/dev/null # the client leaves
  code=$(post "http://127.0.0.1:$(port slow)$P" /dev/null --max-time 5)
  [[ $code == 200 ]] || fail "$mode: after a client left, the next request got $code"
  clients=()
  for _ in 1 2 3; do
    post "http://127.0.0.1:$(port slow)$P" /dev/null --max-time 5 >/dev/null &
    clients+=($!)
  done
  sleep 0.3
  for name in json sse dead slow; do
    pid_var=PID_${mode}_$name
    kill -TERM "${!pid_var}"
    rc=
    for _ in $(seq 50); do
      kill -0 "${!pid_var}" 2>/dev/null || { wait "${!pid_var}"; rc=$?; break; }
      sleep 0.1
    done
    [[ $rc == 0 ]] || fail "$mode $name: SIGTERM did not end the process with status 0 within 5 s (${rc:-still running})"
  done
  wait "${clients[@]}" 2>/dev/null
done

if ((fails)); then
  echo "floor_check: $fails check(s) failed" >&2
  exit 1
fi
echo "floor_check: tpc, relay, loop, loop2: answers byte-exact, 502, client gone, SIGTERM: ok"
