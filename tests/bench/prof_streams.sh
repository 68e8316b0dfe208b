#!/usr/bin/env bash
# tests/bench/prof_streams.sh BUILD GWTHREADS MODE [STREAMS] - where switchboard's CPU goes at
# STREAMS (1000) paced streams (docs/bench.md, "1,000 paced streams against nginx, session 9").
#
# One `BUILD/switchboard serve` (gateway.threads GWTHREADS, ledger on, the bench's router
# settings) against `BUILD/upstream --pace-ms 200`, driven by `BUILD/eventgap --streams
# STREAMS` (starts spread over one stream, 3 s warm-up, 8 s counted). 4 s after the start, 5 s
# of MODE:
#   none      nothing: CPU per event from every thread's schedstat, per-thread CPU and sleeps
#   perf      perf record -g (cpu-clock) of the process into DIR/perf.data
#   walks     perf stat on uprobes in libmicrohttpd 0.9.75 (Debian 12's build only: checked by
#             build id): walks of resume_suspended_connections and MHD_resume_connection
#             calls per event; then 2 s counting the nodes each walk visits (slows the
#             process 2-4x: read nodes per walk from it, nothing else)
#   syscalls  perf stat on every syscall tracepoint and sched_switch, per event
# For a profile build: make BUILD=build/prof OPT='-O2 -g -DNDEBUG -fno-omit-frame-pointer' all
# bench-tools. Prints the figures and DIR (kept for perf report). Not part of make bench.
set -uo pipefail
build=${1:?usage: prof_streams.sh BUILD GWTHREADS none|perf|walks|syscalls [STREAMS]}
GT=${2:?gateway.threads}
MODE=${3:?mode}
N=${4:-1000}
case $MODE in none | perf | walks | syscalls) ;; *) echo "prof_streams: unknown mode $MODE" >&2; exit 2 ;; esac
case $build in /*) B=$build ;; *) B=$PWD/$build ;; esac
MHD_LIB=/usr/lib/x86_64-linux-gnu/libmicrohttpd.so.12.60.0
MHD_BUILD_ID=82409ef300cf36b2b29de579899201c58c80fa17 # libmicrohttpd12 0.9.75-6 (Debian 12)
if [[ $MODE == walks ]]; then
  id=$(readelf -n "$MHD_LIB" 2>/dev/null | awk '/Build ID/ { print $3 }')
  [[ $id == "$MHD_BUILD_ID" ]] || { echo "prof_streams: walks needs $MHD_LIB with build id $MHD_BUILD_ID" >&2; exit 2; }
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
T=$(mktemp -d /tmp/sb-prof.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

"$B/upstream" --pace-ms 200 --port-file "$T/up.port" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [[ -s $T/up.port ]] && break; sleep 0.05; done
read -r _ UP_SSE <"$T/up.port" || { echo "prof_streams: upstream did not start" >&2; exit 1; }
cat >"$T/sb.json" <<EOF
{"providers": [{"name": "up-paced", "kind": "openai-compatible", "base_url": "http://127.0.0.1:$UP_SSE/v1",
   "model": "bench-model", "price": {"input_per_mtok": 1, "output_per_mtok": 2}, "probe": {"enabled": false}}],
 "routes": [{"name": "paced", "targets": ["up-paced"]}],
 "router": {"max_attempts": 1, "deadline_ms": 120000, "breaker_failures": 1000, "breaker_error_rate": 1,
            "breaker_min_volume": 1000000, "breaker_cooldown_ms": 100},
 "gateway": {"listen": "127.0.0.1:0", "threads": $GT, "max_connections": $((N + 200)),
             "max_connections_per_client": 0, "idle_timeout_ms": 300000},
 "guard": {"action": "observe"}, "ledger": {"path": "$T/sb.db"}, "log_level": "warn"}
EOF
"$B/switchboard" serve -c "$T/sb.json" --port-file "$T/sb.port" >/dev/null 2>"$T/sb.err" &
PID=$!
PIDS+=("$PID")
for _ in $(seq 100); do [[ -s $T/sb.port ]] && break; sleep 0.05; done
read -r port <"$T/sb.port" || { echo "prof_streams: switchboard did not start:" >&2; cat "$T/sb.err" >&2; exit 1; }
"$B/eventgap" --url "http://127.0.0.1:$port/v1/chat/completions" --model paced --streams "$N" \
  --warmup-s 3 --seconds 8 --pace-ms 200 --stagger-ms 2600 >"$T/eventgap.txt" 2>&1 &
W=$!
sleep 4

threads() { # comm tid cpu_ns voluntary_switches, one line per thread
  local f a
  for f in /proc/"$PID"/task/*; do
    read -r a _ <"$f/schedstat"
    echo "$(tr ' ' _ <"$f/comm") ${f##*/} $a $(awk '/^voluntary_ctxt/ { print $2 }' "$f/status")"
  done
}
threads >"$T/threads0"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
case $MODE in
  none) sleep 5 ;;
  perf) perf record -g -o "$T/perf.data" -p "$PID" -- sleep 5 >/dev/null 2>&1 ;;
  walks)
    perf probe -q -d 'probe_libmicrohttpd:*' >/dev/null 2>&1
    perf probe -q -x "$MHD_LIB" -a 'sbwalk=0xa64d' -a 'sbnode=0xa732' -a MHD_resume_connection >/dev/null 2>&1 ||
      { echo "prof_streams: perf probe failed" >&2; exit 1; }
    perf stat -x, -e probe_libmicrohttpd:sbwalk -e probe_libmicrohttpd:MHD_resume_connection \
      -p "$PID" -o "$T/stat.txt" -- sleep 5 >/dev/null 2>&1 ;;
  syscalls)
    perf stat -x, -e 'syscalls:sys_enter_*' -e sched:sched_switch -p "$PID" -o "$T/stat.txt" \
      -- sleep 5 >/dev/null 2>&1 ;;
esac
threads >"$T/threads1"
LOAD1=$(cut -d' ' -f1 /proc/loadavg)
if [[ $MODE == walks ]]; then # nodes per walk (the per-node probe is slow: its own 2 s)
  perf stat -x, -e probe_libmicrohttpd:sbwalk -e probe_libmicrohttpd:sbnode -p "$PID" \
    -o "$T/nodes.txt" -- sleep 2 >/dev/null 2>&1
  perf probe -q -d 'probe_libmicrohttpd:*' >/dev/null 2>&1
fi
wait "$W"
line=$(grep -m1 '^EVENTGAP ' "$T/eventgap.txt" | cut -d' ' -f2-)
[[ -n $line ]] || { echo "prof_streams: eventgap gave no result:" >&2; cat "$T/eventgap.txt" >&2; exit 1; }
python3 - "$T" "$line" "$MODE" "$GT" "$N" "$LOAD0" "$LOAD1" <<'PY'
import os, sys
d, line, mode, gt, n, l0, l1 = sys.argv[1:8]
f = dict(kv.split("=") for kv in line.split())
evs = int(f["events"]) / (int(f["duration_us"]) / 1e6)
def rd(name):
    return {x.split()[1]: x.split() for x in open(os.path.join(d, name))}
t0, t1 = rd("threads0"), rd("threads1")
per = []
for tid, (comm, _, ns, sw) in t1.items():
    if tid in t0:
        per.append((comm, (int(ns) - int(t0[tid][2])) / 5e3 / evs, (int(sw) - int(t0[tid][3])) / 5 / evs))
cpu = sum(p[1] for p in per) * evs / 1e6
print(f"gateway.threads {gt}, {n} streams, mode {mode}: {cpu:.3f} core, {evs:,.0f} events/s, "
      f"{cpu * 1e6 / evs:.1f} µs per event; errors {f.get('errors')}; load {l0} -> {l1}")
for comm, us, sw in sorted(per, key=lambda p: -p[1])[:6]:
    print(f"  thread {comm:<16} {us:6.1f} µs per event, {sw:5.2f} sleeps per event")
def stat(name, secs):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return {}
    out = {}
    for x in open(path):
        p = x.strip().split(",")
        if len(p) > 2 and p[0].isdigit():
            out[p[2].split(":")[-1]] = int(p[0])
    return {k: v / secs / evs for k, v in out.items()}
for k, v in sorted(stat("stat.txt", 5).items(), key=lambda kv: -kv[1]):
    if v >= 0.01:
        print(f"  {k.replace('sys_enter_', ''):<24} {v:6.3f} per event")
nodes = stat("nodes.txt", 2)
if nodes.get("sbwalk"):
    print(f"  nodes per walk (slowed run): {nodes['sbnode'] / nodes['sbwalk']:.0f}")
PY
echo "$T"
