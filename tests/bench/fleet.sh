#!/usr/bin/env bash
# tests/bench/fleet.sh BUILD - fleet mode's cost on the hot path (part of `make bench`): the
# same `switchboard serve` (one openai-compatible target on BUILD/upstream at delay 0, a global
# budget so every call is charged and checked) with and without fleet mode (redis-server on
# loopback TCP), driven by wrk at c=1 and c=16, interleaved over BENCH_ROUNDS rounds.
# Targets (issue 14): fleet req/s >= 0.9x at c=16; fleet c=1 p50 <= +20 us. Also the CPU time
# per request (serve, plus redis-server for the fleet run), which the machine's load disturbs
# less than req/s and latency. Prints figures and
# PASS/MISS; never fails on them. Output also in BUILD/fleet-results.md.
set -uo pipefail
build=${1:?usage: tests/bench/fleet.sh BUILD}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) B=$build ;; *) B=$root/$build ;; esac
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
HERE=$root/tests/bench
for x in "$B/switchboard" "$B/upstream"; do
  [[ -x $x ]] || { echo "bench-fleet: $x missing (run \`make bench\`)" >&2; exit 2; }
done
for c in redis-server wrk python3; do
  command -v "$c" >/dev/null || { echo "bench-fleet: $c missing (.ci/deps bench)" >&2; exit 2; }
done
T=$(mktemp -d /tmp/sb-bench-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "bench-fleet: $*" >&2; }

"$B/upstream" --port-file "$T/up.port" >"$T/up.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $T/up.port ]] && break; sleep 0.05; done
read -r UP _ <"$T/up.port" || { log "upstream did not start"; exit 1; }
RPORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
redis-server --bind 127.0.0.1 --port "$RPORT" --save '' --appendonly no --loglevel warning \
  >"$T/redis.out" 2>&1 &
PIDS+=($!)
RPID=$!
sleep 0.5

config() { # config NAME FLEET_JSON
  cat >"$T/$1.json" <<JSON
{
  "providers": [{"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:$UP/v1",
     "model": "bench-model", "price": {"input_per_mtok": 1, "output_per_mtok": 2},
     "probe": {"enabled": false}}],
  "routes": [{"name": "json0", "targets": ["up"]}],
  "router": {"max_attempts": 1, "breaker_failures": 1000, "breaker_error_rate": 1,
             "breaker_min_volume": 1000000},
  "gateway": {"listen": "127.0.0.1:0"},
  "guard": {"action": "observe"},
  "ledger": {"path": "$T/$1.db"},
  "budgets": [{"scope": "global", "daily_usd": 1000000}],
  "log_level": "warn"$2
}
JSON
  "$B/switchboard" serve -c "$T/$1.json" --port-file "$T/$1.port" >"$T/$1.out" 2>"$T/$1.err" &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
  for _ in $(seq 100); do [[ -s $T/$1.port ]] && break; sleep 0.05; done
  read -r port <"$T/$1.port" || { log "$1 did not start"; cat "$T/$1.err" >&2; exit 1; }
  printf -v "PORT_$1" '%s' "$port"
}
config plain ""
config fleet ",\"fleet\": {\"redis\": \"redis://127.0.0.1:$RPORT/0\", \"name\": \"bench\"}"
up=0
for _ in $(seq 100); do # a loaded machine may take a few seconds
  curl -sf "http://127.0.0.1:$PORT_fleet/metrics" | grep -q '^switchboard_fleet_up 1' && { up=1; break; }
  sleep 0.1
done
((up)) || { log "the fleet instance is not connected to redis"; exit 1; }

# cpu_ticks PID...: user + system clock ticks these processes used so far
cpu_ticks() {
  local sum=0 f
  for p in "$@"; do
    read -ra f <"/proc/$p/stat" || continue
    sum=$((sum + f[13] + f[14]))
  done
  echo "$sum"
}
# run CONC PORT PID: prints "rps p50_us cpu_us_per_request" (the serve's CPU and, for the
# fleet instance, redis-server's: what a request costs whatever else the machine runs)
run() {
  local t=1 out c0 c1
  (($1 >= 16)) && t=2
  BENCH_MODEL=json0 wrk -t "$t" -c "$1" -d "${WARM}s" -s "$HERE/post.lua" \
    "http://127.0.0.1:$2/v1/chat/completions" >/dev/null 2>&1
  c0=$(cpu_ticks $3)
  out=$(BENCH_MODEL=json0 wrk -t "$t" -c "$1" -d "${SECS}s" --latency -s "$HERE/post.lua" \
    "http://127.0.0.1:$2/v1/chat/completions" 2>&1 | grep -m1 '^BENCH ' | cut -d' ' -f2-)
  c1=$(cpu_ticks $3)
  local -A w=()
  for kv in $out; do w[${kv%%=*}]=${kv#*=}; done
  python3 -c "n = ${w[requests]:-0}; print(f'{n * 1e6 / ${w[duration_us]:-1}:.1f} ${w[p50_us]:-0} {($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / max(n, 1):.1f}')"
}

declare -A RPS P50 CPU
for r in $(seq 1 "$ROUNDS"); do
  for c in 1 16; do
    order=(plain fleet)
    ((r % 2 == 0)) && order=(fleet plain)
    for k in "${order[@]}"; do
      p=PORT_$k pid=PID_$k pids=${!pid}
      [[ $k == fleet ]] && pids="$pids $RPID"
      read -r rps p50 cpu < <(run "$c" "${!p}" "$pids")
      RPS[$k,$c]="${RPS[$k,$c]:-} $rps"
      P50[$k,$c]="${P50[$k,$c]:-} $p50"
      CPU[$k,$c]="${CPU[$k,$c]:-} $cpu"
      log "r$r c=$c $k: $rps req/s, p50 $p50 us, $cpu us CPU/request"
    done
  done
done
med() { python3 -c "import statistics,sys; print(statistics.median([float(x) for x in sys.argv[1:]]))" $1; }
{
  echo "| c | serve req/s | serve + fleet req/s | ratio | serve p50 us | serve + fleet p50 us | delta | serve CPU us/req | serve + fleet (+ redis) CPU us/req |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for c in 1 16; do
    a=$(med "${RPS[plain,$c]}") b=$(med "${RPS[fleet,$c]}")
    pa=$(med "${P50[plain,$c]}") pb=$(med "${P50[fleet,$c]}")
    ca=$(med "${CPU[plain,$c]}") cb=$(med "${CPU[fleet,$c]}")
    python3 -c "print(f'| {$c} | {$a:.0f} | {$b:.0f} | {$b/$a:.3f}x | {$pa:.0f} | {$pb:.0f} | {$pb-$pa:+.0f} us | {$ca:.1f} | {$cb:.1f} |')"
  done
  a=$(med "${RPS[plain,16]}") b=$(med "${RPS[fleet,16]}")
  pa=$(med "${P50[plain,1]}") pb=$(med "${P50[fleet,1]}")
  python3 -c "
r = $b / $a; d = $pb - $pa
print()
print(f'fleet c=16 req/s >= 0.9x: {r:.3f}x', 'PASS' if r >= 0.9 else 'MISS')
print(f'fleet c=1 p50 <= +20 us: {d:+.0f} us', 'PASS' if d <= 20 else 'MISS')"
  echo "(medians of $ROUNDS rounds of ${SECS}s; redis-server on 127.0.0.1 TCP; $(redis-server --version | cut -d' ' -f3))"
} | tee "$B/fleet-results.md"
