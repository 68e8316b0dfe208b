#!/usr/bin/env bash
# tests/bench/run.sh BUILD - `make bench`: switchboard's gateway + router against a pure proxy
# and against the upstream itself, measured in one run and interleaved. Nothing here is a
# test: it prints figures and PASS/MISS against the issue's targets and never fails on them.
#
#   upstreams (127.0.0.1, ephemeral ports)
#     nginx-light            delay 0: `return 200 '<fixed body>'` for JSON and SSE
#     BUILD/upstream         delay 100 ms (nginx cannot wait), and the token-paced SSE
#                            upstream of the 1,000-stream step; a delay-0 instance too, to
#                            calibrate it against nginx (tests/bench/upstream.c)
#   targets driven by wrk (tests/bench/post.lua, post_stream.lua)
#     direct                 the upstream itself
#     nginx                  nginx proxy_pass in front of it (keep-alive upstream pool; SSE
#                            with proxy_buffering off): no parsing, no routing
#     switchboard            `switchboard serve`, one openai-compatible target per upstream
#     floor-tpc, floor-relay, floor-loop, floor-loop2
#                            the library floor at delay 0 (tests/bench/floor.c): libmicrohttpd
#                            in front of libcurl, forwarding bytes, in four shapes (thread per
#                            connection; switchboard's pool -> one curl thread -> resume; one
#                            thread running both on one epoll loop; two such loops on a port)
#   for JSON and SSE x concurrency 1, 16, 64 x upstream delay 0 and 100 ms; the three targets
#   of a configuration run back to back (order reversed every other round), so machine noise
#   hits all three alike. Then 1,000 concurrent paced streams, directly, through nginx
#   proxy_pass (its own instance, one worker, proxy_buffering off, keep-alive upstream pool)
#   and through switchboard, interleaved, driven by BUILD/eventgap (tests/bench/eventgap.c),
#   which timestamps every event: the delay added between events, RSS, threads and CPU.
#   First of all, BUILD/encode (tests/bench/encode.c): the encoders on a worst-case 4 MiB
#   request, one figure per wire format, appended to the report.
#
# Environment: BENCH_SECONDS (5) per run, BENCH_WARMUP (1) per run, BENCH_ROUNDS (2),
# BENCH_STREAMS (1000), BENCH_STREAM_SECONDS (10) measured after BENCH_STREAM_WARMUP (3),
# BENCH_PACE_MS (200), BENCH_STREAM_STAGGER_MS (13 x pace), BENCH_STREAM_ROUNDS (3);
# BENCH_HOLD=1 starts everything, prints where it is and waits (for perf, strace...).
# BENCH_BASELINE=PATH runs a second switchboard binary (an earlier build) as the target
# `baseline`, interleaved with the others in every configuration and in the stream step, so
# the two builds are compared within one round; BENCH_BASELINE_GATEWAY adds keys to the
# baseline's "gateway" object (e.g. '"threads": 2', with BENCH_BASELINE=BUILD/switchboard to
# compare two settings of one build); BENCH_FLEET=0 skips the fleet-mode step.
# BENCH_ONLY=streams runs only the 1,000-stream step (no encoders, relay, calibration, matrix
# or fleet step); BENCH_ONLY=floor only the delay-0 rows of the matrix (c=1, 16, 64, where the
# library floors run; no encoders, relay, calibration, 100 ms rows, streams or fleet step).
# See docs/bench.md.
# Output: the report on stdout and in BUILD/results.md; raw rows in BUILD/bench-raw.tsv;
# every wrk and eventgap output under BUILD/bench-logs/. Every process started here is
# stopped on exit.
set -uo pipefail
build=${1:?usage: tests/bench/run.sh BUILD}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
case $build in /*) B=$build ;; *) B=$root/$build ;; esac
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
STREAMS=${BENCH_STREAMS:-1000}
STREAM_SECS=${BENCH_STREAM_SECONDS:-10}
STREAM_WARM=${BENCH_STREAM_WARMUP:-3}
PACE_MS=${BENCH_PACE_MS:-200}
# The streams' first starts are spread over one whole stream (13 pace intervals): events and
# the requests' own work are then even in time. Over one pace interval the events are even,
# but every stream starts its next request in the same interval, once per stream length, and
# the counted seconds hold 3 or 4 of those bursts depending on where they fall.
STREAM_STAGGER=${BENCH_STREAM_STAGGER_MS:-$((13 * PACE_MS))}
# The stream step's rounds (order reversed every other round; the report takes medians).
STREAM_ROUNDS=${BENCH_STREAM_ROUNDS:-3}
ONLY=${BENCH_ONLY:-}
case $ONLY in '' | streams | floor) ;; *) echo "bench: BENCH_ONLY is empty, 'streams' or 'floor'" >&2; exit 2 ;; esac
HERE=$root/tests/bench
SB=$B/switchboard
UPSTREAM=$B/upstream
FLOOR=$B/floor
RAW=$B/bench-raw.tsv
LOGS=$B/bench-logs

BASE_SB=${BENCH_BASELINE:-}
EVENTGAP=$B/eventgap
for x in "$SB" "$UPSTREAM" "$FLOOR" "$B/encode" "$B/relay" "$EVENTGAP" ${BASE_SB:+"$BASE_SB"}; do
  [[ -x $x ]] || { echo "bench: $x missing (run \`make bench\`)" >&2; exit 2; }
done
for c in nginx wrk python3 curl; do
  command -v "$c" >/dev/null || [[ -x /usr/sbin/$c ]] ||
    { echo "bench: $c missing (.ci/deps bench installs it)" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The stream client's own parser check (a second).
"$EVENTGAP" --self-test || { echo "bench: eventgap --self-test failed" >&2; exit 1; }
rm -f "$B/bench-encode.txt" "$B/bench-relay.txt"
if [[ -z $ONLY ]]; then
  # The encoders first: no network, a second or two.
  "$B/encode" | tee "$B/bench-encode.txt" >&2 || { echo "bench: encode failed" >&2; exit 1; }
  # The relay's per-event CPU, passthrough against parse + re-encode (tests/bench/relay.c).
  "$B/relay" | tee "$B/bench-relay.txt" >&2 || { echo "bench: relay failed" >&2; exit 1; }
fi

T=$(mktemp -d /tmp/sb-bench.XXXXXX)
PIDS=()
WRK_PID=
cleanup() {
  [[ -n $WRK_PID ]] && kill "$WRK_PID" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1,000 client connections + 1,000 upstream connections per process, and then some.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $((2 * STREAMS + 512)) ]]; then
  echo "bench: open-file limit $(ulimit -n) is too low for $STREAMS streams" >&2; exit 2
fi

mkdir -p "$LOGS"
rm -f "$LOGS"/*.txt
printf 'phase\tfmt\tconc\tdelay_ms\tround\ttarget\trps\tp50_us\tp99_us\tcpu_us_req\tpeak_rss_kb\terrors\trequests\n' >"$RAW"

log() { echo "bench: $*" >&2; }

# free_ports N: N distinct free TCP ports on 127.0.0.1 (probed by binding, then released).
free_ports() {
  python3 -c "
import socket, sys
ss = []
for _ in range($1):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); ss.append(s)
print(' '.join(str(s.getsockname()[1]) for s in ss))"
}

# wait_http URL [stream]: until URL answers a POST with 200 (10 s at most).
wait_http() {
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
      -H 'Content-Type: application/json' -d '{}' "$1") == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# ---- processes ----------------------------------------------------------------------------

JSON_BODY=$("$UPSTREAM" --print json)
SSE_BODY_ESC=$("$UPSTREAM" --print sse | python3 -c "import sys; sys.stdout.write(sys.stdin.read().replace('\n', '\\\\n'))")

nginx_common() { # nginx_common DIR
  cat <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server_tokens off;
EOF
}

# start_nginx NAME: runs nginx in the foreground with $T/NAME/nginx.conf; sets PID_<NAME>.
start_nginx() {
  local d=$T/$1
  "$NGINX" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" >"$d/out" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
}

# start_upstream NAME ARGS...: BUILD/upstream on two ephemeral ports; sets PID_<NAME>,
# <NAME>_JSON, <NAME>_SSE.
start_upstream() {
  local name=$1; shift
  "$UPSTREAM" --port-file "$T/$name.port" "$@" >"$T/$name.out" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$name" '%s' "$!"
  for _ in $(seq 100); do [[ -s $T/$name.port ]] && break; sleep 0.05; done
  local pj ps
  read -r pj ps <"$T/$name.port" || { log "upstream $name did not start"; exit 1; }
  printf -v "${name}_JSON" '%s' "$pj"
  printf -v "${name}_SSE" '%s' "$ps"
}

start_upstream UC            # delay 0, to calibrate against nginx
start_upstream UD --delay-ms 100
start_upstream UP --pace-ms "$PACE_MS"

read -r N0_JSON N0_SSE PX_J0 PX_S0 PX_J1 PX_S1 NS_PORT < <(free_ports 7)
mkdir -p "$T/N0" "$T/PX" "$T/NS"
{ nginx_common "$T/N0"; cat <<EOF
  server { listen 127.0.0.1:$N0_JSON; location / { default_type application/json; return 200 '$JSON_BODY'; } }
  server { listen 127.0.0.1:$N0_SSE; location / { default_type text/event-stream; return 200 '$SSE_BODY_ESC'; } }
}
EOF
} >"$T/N0/nginx.conf"
proxy_server() { # proxy_server LISTEN_PORT UPSTREAM_NAME SSE
  cat <<EOF
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://$2;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      $([[ $3 == 1 ]] && echo 'proxy_buffering off;')
    }
  }
EOF
}
{ nginx_common "$T/PX"; cat <<EOF
  upstream j0 { server 127.0.0.1:$N0_JSON; keepalive 256; }
  upstream s0 { server 127.0.0.1:$N0_SSE; keepalive 256; }
  upstream j1 { server 127.0.0.1:$UD_JSON; keepalive 256; }
  upstream s1 { server 127.0.0.1:$UD_SSE; keepalive 256; }
EOF
  proxy_server "$PX_J0" j0 0; proxy_server "$PX_S0" s0 1
  proxy_server "$PX_J1" j1 0; proxy_server "$PX_S1" s1 1
  echo "}"
} >"$T/PX/nginx.conf"
# The 1,000-stream step's reference: nginx proxy_pass in front of the paced upstream, its own
# instance (so its CPU, RSS and fds are the step's alone), configured like the SSE rows' proxy.
{ nginx_common "$T/NS"; cat <<EOF
  upstream paced { server 127.0.0.1:$UP_SSE; keepalive 256; }
EOF
  proxy_server "$NS_PORT" paced 1
  echo "}"
} >"$T/NS/nginx.conf"
start_nginx N0
start_nginx PX
start_nginx NS

# start_floor NAME MODE UPSTREAM_PORT CONTENT_TYPE: BUILD/floor; sets PID_<NAME>, PORT_<NAME>.
start_floor() {
  "$FLOOR" --mode "$2" --upstream "http://127.0.0.1:$3/v1/chat/completions" --content-type "$4" \
    --port-file "$T/$1.port" >"$T/$1.out" 2>&1 &
  PIDS+=($!)
  printf -v "PID_$1" '%s' "$!"
  for _ in $(seq 100); do [[ -s $T/$1.port ]] && break; sleep 0.05; done
  local port
  read -r port <"$T/$1.port" || { log "floor $1 did not start"; exit 1; }
  printf -v "PORT_$1" '%s' "$port"
}
start_floor FT_J tpc "$N0_JSON" application/json
start_floor FT_S tpc "$N0_SSE" text/event-stream
start_floor FR_J relay "$N0_JSON" application/json
start_floor FR_S relay "$N0_SSE" text/event-stream
start_floor FL_J loop "$N0_JSON" application/json
start_floor FL_S loop "$N0_SSE" text/event-stream
start_floor F2_J loop2 "$N0_JSON" application/json
start_floor F2_S loop2 "$N0_SSE" text/event-stream

target_json() { # target_json NAME PORT
  cat <<EOF
    {"name": "$1", "kind": "openai-compatible", "base_url": "http://127.0.0.1:$2/v1",
     "model": "bench-model", "price": {"input_per_mtok": 1, "output_per_mtok": 2},
     "connect_timeout_ms": 5000, "first_byte_timeout_ms": 60000, "total_timeout_ms": 120000,
     "probe": {"enabled": false}}
EOF
}
cat >"$T/sb.json" <<EOF
{
  "providers": [
$(target_json up-json0 "$N0_JSON"),
$(target_json up-sse0 "$N0_SSE"),
$(target_json up-json100 "$UD_JSON"),
$(target_json up-sse100 "$UD_SSE"),
$(target_json up-paced "$UP_SSE")
  ],
  "routes": [
    {"name": "json0", "targets": ["up-json0"]},
    {"name": "sse0", "targets": ["up-sse0"]},
    {"name": "json100", "targets": ["up-json100"]},
    {"name": "sse100", "targets": ["up-sse100"]},
    {"name": "paced", "targets": ["up-paced"]}
  ],
  "router": {"max_attempts": 1, "deadline_ms": 120000, "breaker_failures": 1000,
             "breaker_error_rate": 1, "breaker_min_volume": 1000000, "breaker_cooldown_ms": 100},
  "gateway": {"listen": "127.0.0.1:0", "max_connections": $((STREAMS + 200)),
              "max_connections_per_client": 0,
              "idle_timeout_ms": 300000},
  "guard": {"action": "observe"},
  "ledger": {"path": "$T/bench.db"},
  "log_level": "warn"
}
EOF
"$SB" serve -c "$T/sb.json" --port-file "$T/sb.port" >"$T/sb.out" 2>"$T/sb.err" &
PID_SB=$!
PIDS+=("$PID_SB")
for _ in $(seq 100); do [[ -s $T/sb.port ]] && break; sleep 0.05; done
read -r SB_PORT <"$T/sb.port" 2>/dev/null || { log "switchboard did not start:"; cat "$T/sb.err" >&2; exit 1; }
PID_BASE= BASE_PORT=
if [[ -n $BASE_SB ]]; then # the same config, its own ledger
  sed -e "s|$T/bench.db|$T/base.db|" \
    -e "s|\"gateway\": {|\"gateway\": {${BENCH_BASELINE_GATEWAY:+$BENCH_BASELINE_GATEWAY, }|" \
    "$T/sb.json" >"$T/base.json"
  "$BASE_SB" serve -c "$T/base.json" --port-file "$T/base.port" >"$T/base.out" 2>"$T/base.err" &
  PID_BASE=$!
  PIDS+=("$PID_BASE")
  for _ in $(seq 100); do [[ -s $T/base.port ]] && break; sleep 0.05; done
  read -r BASE_PORT <"$T/base.port" 2>/dev/null || { log "baseline did not start:"; cat "$T/base.err" >&2; exit 1; }
fi

for u in "$N0_JSON" "$N0_SSE" "$PX_J0" "$PX_S0" "$PX_J1" "$PX_S1" "$NS_PORT"; do
  wait_http "http://127.0.0.1:$u/v1/chat/completions" || { log "nginx on port $u is not answering"; cat "$T"/*/error.log >&2; exit 1; }
done

# ---- /proc readings -----------------------------------------------------------------------

# cpu_ns PID: CPU time of every thread of PID, in ns (schedstat; all of the bench's
# processes keep their threads for their lifetime, except floor-tpc's: its connection threads
# end with their connections, so its figure comes from /proc/PID/stat, which keeps the time
# of ended threads, in clock ticks).
cpu_ns() {
  local s=0 a f
  if [[ $1 == "${PID_FT_J:-}" || $1 == "${PID_FT_S:-}" ]]; then
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($14 + $15) * 1e9 / hz }' "/proc/$1/stat"
    return
  fi
  for f in /proc/"$1"/task/*/schedstat; do read -r a _ <"$f" 2>/dev/null && s=$((s + a)); done
  echo "$s"
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # status_kb PID VmRSS
threads() { ls "/proc/$1/task" | wc -l; }
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; } # VmHWM := VmRSS

sleep 1
IDLE_RSS_KB=$(status_kb "$PID_SB" VmRSS)
IDLE_THREADS=$(threads "$PID_SB")

# ---- sanity: every path answers what it should -----------------------------------------------

sanity() { # sanity LABEL URL MODEL STREAM
  local body out stream=
  # (not inside ${4:+...}: its first "}" would end the expansion and leave one "}" too many)
  [[ -n ${4:-} ]] && stream=',"stream":true,"stream_options":{"include_usage":true}'
  body="{\"model\":\"$3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]$stream}"
  out=$(curl -s --max-time 5 -X POST -H 'Content-Type: application/json' -d "$body" "$2")
  if ! grep -q 'brown' <<<"$out" || ! grep -q 'total_tokens' <<<"$out"; then
    log "sanity check failed for $1 ($2): $(head -c 300 <<<"$out")"; cat "$T/sb.err" >&2; exit 1
  fi
  if [[ -n ${4:-} ]] && ! grep -q '\[DONE\]' <<<"$out"; then
    log "sanity check failed for $1: no [DONE]"; exit 1
  fi
}
P=/v1/chat/completions
sanity sb-json0 "http://127.0.0.1:$SB_PORT$P" json0 ""
sanity sb-sse0 "http://127.0.0.1:$SB_PORT$P" sse0 1
sanity sb-json100 "http://127.0.0.1:$SB_PORT$P" json100 ""
sanity sb-sse100 "http://127.0.0.1:$SB_PORT$P" sse100 1
sanity sb-paced "http://127.0.0.1:$SB_PORT$P" paced 1
[[ -n $BASE_PORT ]] && sanity baseline-sse0 "http://127.0.0.1:$BASE_PORT$P" sse0 1
sanity px-sse1 "http://127.0.0.1:$PX_S1$P" x 1
sanity px-paced "http://127.0.0.1:$NS_PORT$P" x 1
sanity floor-tpc-json "http://127.0.0.1:$PORT_FT_J$P" x ""
sanity floor-tpc-sse "http://127.0.0.1:$PORT_FT_S$P" x 1
sanity floor-relay-json "http://127.0.0.1:$PORT_FR_J$P" x ""
sanity floor-relay-sse "http://127.0.0.1:$PORT_FR_S$P" x 1
sanity floor-loop-json "http://127.0.0.1:$PORT_FL_J$P" x ""
sanity floor-loop-sse "http://127.0.0.1:$PORT_FL_S$P" x 1
sanity floor-loop2-json "http://127.0.0.1:$PORT_F2_J$P" x ""
sanity floor-loop2-sse "http://127.0.0.1:$PORT_F2_S$P" x 1
# The bench repeats one prompt: nothing in switchboard may refuse it (guard, budgets...).
codes=$(for _ in $(seq 60); do
  curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 -X POST -H 'Content-Type: application/json' \
    -d '{"model":"json0","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$SB_PORT$P"
done | sort | uniq -c | tr -s ' ' | tr '\n' ',')
if [[ $codes != " 60 200," ]]; then
  log "switchboard did not answer 60 identical requests with 200 (got:$codes); fix the bench config in tests/bench/run.sh"
  exit 1
fi

# BENCH_HOLD=1: start everything, say where it is, and wait (for perf, strace, callgrind...).
if [[ ${BENCH_HOLD:-0} == 1 ]]; then
  cat <<EOF
switchboard pid $PID_SB  http://127.0.0.1:$SB_PORT$P  routes json0 sse0 json100 sse100 paced
nginx proxy pid $PID_PX  json0 :$PX_J0  sse0 :$PX_S0  json100 :$PX_J1  sse100 :$PX_S1
nginx upstream pid $PID_N0  json :$N0_JSON  sse :$N0_SSE
upstream 100 ms pid $PID_UD  json :$UD_JSON  sse :$UD_SSE;  paced pid $PID_UP  sse :$UP_SSE
nginx proxy of the paced upstream pid $PID_NS  :$NS_PORT
floor tpc pids $PID_FT_J $PID_FT_S  json :$PORT_FT_J  sse :$PORT_FT_S;  relay pids $PID_FR_J $PID_FR_S  json :$PORT_FR_J  sse :$PORT_FR_S
floor loop pids $PID_FL_J $PID_FL_S  json :$PORT_FL_J  sse :$PORT_FL_S;  loop2 pids $PID_F2_J $PID_F2_S  json :$PORT_F2_J  sse :$PORT_F2_S
e.g. BENCH_MODEL=json0 wrk -t2 -c16 -d5s -s $HERE/post.lua http://127.0.0.1:$SB_PORT$P
Holding; Ctrl-C (or SIGTERM to $$) stops everything.
EOF
  while :; do sleep 3600 & WRK_PID=$!; wait "$WRK_PID"; done
fi

# ---- one measured run ---------------------------------------------------------------------

# wrk_run LOGFILE CONC SECONDS SCRIPT MODEL URL: runs wrk; prints its BENCH line's fields.
wrk_run() {
  local t=1
  (($2 >= 16)) && t=2
  BENCH_MODEL=$5 timeout $(($3 + 40)) wrk -t "$t" -c "$2" -d "${3}s" --timeout 10s --latency \
    -s "$HERE/$4" "$6" >"$1" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID"
  WRK_PID=
  grep -m1 '^BENCH ' "$1" | cut -d' ' -f2-
}

# measure PHASE FMT CONC DELAY ROUND TARGET URL MODEL PID: a warm-up, then one measured run;
# appends a row to $RAW.
measure() {
  local phase=$1 fmt=$2 conc=$3 delay=$4 round=$5 target=$6 url=$7 model=$8 pid=$9
  local script=post.lua
  [[ $fmt == sse ]] && script=post_stream.lua
  local tag="$phase-$fmt-c$conc-d$delay-$target-r$round"
  wrk_run "$LOGS/$tag-warmup.txt" "$conc" "$WARM" "$script" "$model" "$url" >/dev/null
  reset_peak "$pid"
  local c0 c1 line
  c0=$(cpu_ns "$pid")
  line=$(wrk_run "$LOGS/$tag.txt" "$conc" "$SECS" "$script" "$model" "$url")
  c1=$(cpu_ns "$pid")
  local hwm
  hwm=$(status_kb "$pid" VmHWM)
  if [[ -z $line ]]; then
    log "$tag: wrk gave no result; see $LOGS/$tag.txt"
    line="requests=0 duration_us=1 p50_us=0 p99_us=0 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0"
  fi
  local -A w=()
  local kv errs rps cpu
  for kv in $line; do w[${kv%%=*}]=${kv#*=}; done
  errs=$((w[err_connect] + w[err_read] + w[err_write] + w[err_status] + w[err_timeout]))
  rps=$(python3 -c "print(f'{${w[requests]} * 1e6 / ${w[duration_us]}:.1f}')")
  cpu=$(python3 -c "print(f'{($c1 - $c0) / 1000 / max(${w[requests]}, 1):.1f}')")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$fmt" "$conc" "$delay" \
    "$round" "$target" "$rps" "${w[p50_us]}" "${w[p99_us]}" "$cpu" "$hwm" "$errs" "${w[requests]}" >>"$RAW"
  log "$(printf '%-6s %-4s c=%-3s delay=%-3s r%s %-12s %10s req/s  p50 %7s us  p99 %7s us  cpu %7s us/req  hwm %6s kB  errors %s' \
    "$phase" "$fmt" "$conc" "$delay" "$round" "$target" "$rps" "${w[p50_us]}" "${w[p99_us]}" "$cpu" "$hwm" "$errs")"
}

# run_config PHASE FMT CONC DELAY ROUND: the targets, interleaved (the floors at delay 0).
run_config() {
  local phase=$1 fmt=$2 conc=$3 delay=$4 round=$5
  local dport xport model upid sfx=
  if [[ $delay == 0 ]]; then
    upid=$PID_N0
    if [[ $fmt == json ]]; then dport=$N0_JSON xport=$PX_J0 model=json0 sfx=_J
    else dport=$N0_SSE xport=$PX_S0 model=sse0 sfx=_S; fi
  else
    upid=$PID_UD
    if [[ $fmt == json ]]; then dport=$UD_JSON xport=$PX_J1 model=json100; else dport=$UD_SSE xport=$PX_S1 model=sse100; fi
  fi
  local order=(direct nginx floor-tpc floor-relay floor-loop floor-loop2 switchboard baseline)
  ((round % 2 == 0)) && order=(baseline switchboard floor-loop2 floor-loop floor-relay floor-tpc nginx direct)
  local m=("$phase" "$fmt" "$conc" "$delay" "$round")
  for t in "${order[@]}"; do
    case $t in
      direct) measure "${m[@]}" direct "http://127.0.0.1:$dport$P" "$model" "$upid" ;;
      nginx) measure "${m[@]}" nginx "http://127.0.0.1:$xport$P" "$model" "$PID_PX" ;;
      floor-*)
        [[ -n $sfx ]] || continue
        local -A fname=([floor-tpc]=FT [floor-relay]=FR [floor-loop]=FL [floor-loop2]=F2)
        local fp=PORT_${fname[$t]}$sfx fpid=PID_${fname[$t]}$sfx
        measure "${m[@]}" "$t" "http://127.0.0.1:${!fp}$P" "$model" "${!fpid}" ;;
      switchboard) measure "${m[@]}" switchboard "http://127.0.0.1:$SB_PORT$P" "$model" "$PID_SB" ;;
      baseline)
        [[ -n $BASE_PORT ]] || continue
        measure "${m[@]}" baseline "http://127.0.0.1:$BASE_PORT$P" "$model" "$PID_BASE" ;;
    esac
  done
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
MATRIX_ROUNDS=$ROUNDS
[[ $ONLY == streams ]] && MATRIX_ROUNDS=0 # BENCH_ONLY=streams: no calibration, no matrix
CALIB_ROUNDS=$MATRIX_ROUNDS DELAYS=(0 100)
[[ $ONLY == floor ]] && CALIB_ROUNDS=0 DELAYS=(0) # BENCH_ONLY=floor: the delay-0 rows only
log "switchboard idle: RSS $IDLE_RSS_KB kB, $IDLE_THREADS threads; load $LOAD_BEFORE; ${SECS}s runs, ${ROUNDS} rounds"

# Calibration: is BUILD/upstream (the 100 ms upstream) as fast as nginx at delay 0?
for r in $(seq 1 "$CALIB_ROUNDS"); do
  for fmt in json sse; do
    script=post.lua; [[ $fmt == sse ]] && script=post_stream.lua
    n0=$N0_JSON uc=$UC_JSON
    [[ $fmt == sse ]] && n0=$N0_SSE uc=$UC_SSE
    measure calib "$fmt" 16 0 "$r" nginx-upstream "http://127.0.0.1:$n0$P" x "$PID_N0"
    measure calib "$fmt" 16 0 "$r" c-upstream "http://127.0.0.1:$uc$P" x "$PID_UC"
  done
done

for r in $(seq 1 "$MATRIX_ROUNDS"); do
  for delay in "${DELAYS[@]}"; do
    for fmt in json sse; do
      for conc in 1 16 64; do
        run_config matrix "$fmt" "$conc" "$delay" "$r"
      done
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
POST_RSS_KB=$(status_kb "$PID_SB" VmRSS)

# ---- 1,000 concurrent streams -------------------------------------------------------------

# streams_run LABEL ROUND URL PID: STREAMS paced streams through URL, driven by BUILD/eventgap
# (every event timestamped): STREAM_WARM seconds of warm-up (the 1,000 connections open,
# staggered over STREAM_STAGGER ms, and the first streams run), then STREAM_SECS counted.
# PID's RSS, threads, fds (and switchboard's in-flight gauge) are sampled and its CPU taken
# over the counted seconds; its peak RSS (VmHWM) includes the warm-up. Appends a row to
# $T/streams.tsv.
streams_run() {
  local label=$1 round=$2 url=$3 pid=$4 samples=$T/$1-r$2.samples out=$LOGS/streams-$1-r$2.txt
  : >"$samples"
  reset_peak "$pid"
  local c0 c1
  timeout $((STREAM_WARM + STREAM_SECS + 60)) "$EVENTGAP" --url "$url" --model paced \
    --streams "$STREAMS" --warmup-s "$STREAM_WARM" --seconds "$STREAM_SECS" --pace-ms "$PACE_MS" \
    --stagger-ms "$STREAM_STAGGER" \
    >"$out" 2>&1 &
  WRK_PID=$!
  sleep "$STREAM_WARM"
  c0=$(cpu_ns "$pid")
  while kill -0 "$WRK_PID" 2>/dev/null; do
    local inflight="" mport=
    [[ $pid == "$PID_SB" ]] && mport=$SB_PORT
    [[ -n $PID_BASE && $pid == "$PID_BASE" ]] && mport=$BASE_PORT
    [[ -n $mport ]] && inflight=$(curl -s --max-time 1 "http://127.0.0.1:$mport/metrics" |
      awk '$1 == "switchboard_gateway_in_flight" { print $2 }')
    echo "$(status_kb "$pid" VmRSS) $(threads "$pid") $(ls "/proc/$pid/fd" | wc -l) ${inflight:--1} $(ls "/proc/$PID_UP/fd" | wc -l)" >>"$samples"
    sleep 0.5
  done
  wait "$WRK_PID"
  WRK_PID=
  c1=$(cpu_ns "$pid")
  local hwm line
  hwm=$(status_kb "$pid" VmHWM)
  line=$(grep -m1 '^EVENTGAP ' "$out" | cut -d' ' -f2-)
  [[ -n $line ]] || log "streams $label: eventgap gave no result; see $out"
  log "streams $label r$round: $(grep -m1 '^eventgap: ' "$out" | cut -d' ' -f2-)"
  python3 - "$samples" "$hwm" "$line" "$STREAMS" "$label" "$((c1 - c0))" "$T/streams.tsv" "$round" <<'PY'
import csv, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
f = dict(kv.split("=") for kv in sys.argv[3].split()) if sys.argv[3] else {}
dur = float(f.get("duration_us", 1)) / 1e6
done = int(f.get("streams", 0))
cpu_ns = int(sys.argv[6])
row = {
    "label": sys.argv[5], "round": sys.argv[8], "streams": sys.argv[4],
    "max_rss_kb": int(max((r[0] for r in rows), default=0)), "hwm_kb": int(sys.argv[2] or 0),
    "max_threads": int(max((r[1] for r in rows), default=0)),
    "max_fds": int(max((r[2] for r in rows), default=0)),
    "max_in_flight": int(max((r[3] for r in rows), default=-1)),
    "max_upstream_fds": int(max((r[4] for r in rows), default=0)),
    "requests": done, "rps": f"{done / dur:.1f}", "errors": int(f.get("errors", 1 if not f else 0)),
    "p50_us": f.get("stream_p50_us", 0), "p99_us": f.get("stream_p99_us", 0),
    "cpu_us_req": f"{cpu_ns / 1e3 / max(done, 1):.1f}", "cpu_pct": f"{100 * cpu_ns / 1e9 / dur:.0f}",
    "client_max_in_flight": f.get("max_in_flight", ""),
}
with open(sys.argv[7]) as t:
    cols = t.readline().rstrip("\n").split("\t")
for k in cols:  # the client's own figures: events, gaps, first event, in flight, its CPU
    row.setdefault(k, f.get(k, ""))
with open(sys.argv[7], "a") as t:
    csv.DictWriter(t, cols, delimiter="\t", lineterminator="\n").writerow(row)
PY
}
STREAM_COLS=(label round streams max_rss_kb hwm_kb max_threads max_fds max_in_flight max_upstream_fds
  requests rps errors p50_us p99_us cpu_us_req cpu_pct started events gaps content content_gaps err_connect
  err_status err_read err_timeout client_cpu_pct)
for k in gap late cgap clate ttfe ttfc; do
  for q in p50 p90 p99 p999 max; do STREAM_COLS+=("${k}_${q}_us"); done
done
STREAM_COLS+=(client_max_in_flight)
(IFS=$'\t'; echo "${STREAM_COLS[*]}") >"$T/streams.tsv"
[[ $ONLY == floor ]] && STREAM_ROUNDS=0 # BENCH_ONLY=floor: no stream step
STREAMS_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "$STREAMS concurrent streams, ${STREAM_WARM}s + ${STREAM_SECS}s, one event every ${PACE_MS} ms; load $STREAMS_LOAD_BEFORE"
for r in $(seq 1 "$STREAM_ROUNDS"); do
  order=(direct nginx switchboard baseline)
  ((r % 2 == 0)) && order=(baseline switchboard nginx direct)
  for t in "${order[@]}"; do
    case $t in
      direct) streams_run direct "$r" "http://127.0.0.1:$UP_SSE$P" "$PID_UP" ;;
      nginx) streams_run nginx "$r" "http://127.0.0.1:$NS_PORT$P" "$PID_NS" ;;
      switchboard)
        streams_run switchboard "$r" "http://127.0.0.1:$SB_PORT$P" "$PID_SB"
        if ((r == STREAM_ROUNDS)); then
          sleep 2
          AFTER_STREAMS_RSS_KB=$(status_kb "$PID_SB" VmRSS)
        fi ;;
      baseline) [[ -n $BASE_PORT ]] && streams_run baseline "$r" "http://127.0.0.1:$BASE_PORT$P" "$PID_BASE" ;;
    esac
  done
done
AFTER_STREAMS_THREADS=$(threads "$PID_SB")
STREAMS_LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$T/streams.tsv" "$B/bench-streams.tsv"

# ---- report ---------------------------------------------------------------------------------

ELAPSED=$(($(date +%s) - START))
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
NPROC=$(nproc)
SB_COMMIT=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" status --porcelain 2>/dev/null | grep -q . && SB_COMMIT+=+dirty
export BENCH_SECONDS=$SECS BENCH_WARMUP=$WARM BENCH_ROUNDS=$ROUNDS BENCH_STREAMS=$STREAMS \
  BENCH_STREAM_SECONDS=$STREAM_SECS BENCH_STREAM_WARMUP=$STREAM_WARM \
  BENCH_STREAM_STAGGER_MS=$STREAM_STAGGER BENCH_STREAM_ROUNDS=$STREAM_ROUNDS BENCH_PACE_MS=$PACE_MS IDLE_RSS_KB IDLE_THREADS POST_RSS_KB \
  AFTER_STREAMS_RSS_KB AFTER_STREAMS_THREADS LOAD_BEFORE LOAD_AFTER ELAPSED NGINX_VERSION \
  WRK_VERSION CPU_MODEL NPROC SB_COMMIT STREAMS_LOAD_BEFORE STREAMS_LOAD_AFTER
export RELAY_TXT=$B/bench-relay.txt BASELINE_NAME=${BASE_SB:+$("$BASE_SB" --version 2>/dev/null | head -1)${BENCH_BASELINE_GATEWAY:+, gateway: $BENCH_BASELINE_GATEWAY}}
{
  python3 "$HERE/report.py" "$RAW" "$B/bench-streams.tsv"
  if [[ -z $ONLY ]]; then
    printf '\n## Encoders, worst case\n\n```\n'
    cat "$B/bench-encode.txt"
    printf '```\n'
    printf '\n## Relay per-event CPU (build/bench/relay)\n\n'
    grep '^|' "$B/bench-relay.txt"
  fi
} | tee "$B/results.md"
log "report written to $B/results.md"

# ---- fleet mode's cost (issue 14): the same serve with and without Redis ----------------------
[[ ${BENCH_FLEET:-1} == 1 && -z $ONLY ]] || exit 0
echo
echo "## Fleet mode"
echo
bash "$HERE/fleet.sh" "$B"
