#!/usr/bin/env bash
# make demo: the full experience on loopback, in the production shape. Four simulated
# providers (cheap and fast, premium and slow, flaky, local), the gateway running as
# `switchboard serve` in the background, a traffic generator at a few requests a second that
# also rates the answers (POST /v1/feedback), and the console in this terminal attached to that
# gateway through its admin API (`console --attach`). Two scripted incidents: 20 seconds in,
# the flaky provider's answers turn terse (a quality drop: its ratings fall, the chat route's
# quality guard moves its weight away, an event says why); about a minute in, the cheap
# provider goes down and 45 seconds later recovers. Watch the breaker open, traffic fail over
# and spend move; press c for the prompt pane, ? for help, q to detach. DEMO_EMBEDDED=1 runs
# the console with the gateway inside it instead (`console -c FILE`). Enter on a target shows
# its quality and latest negative feedback either way (the local ledger, or the gateway's
# GET /admin/quality/TARGET).
# DEMO_FLEET=1 (make demo FLEET=1) runs a fleet instead: a redis-server on a unix socket, three
# `serve` instances in fleet mode sharing it (spend, budgets, cooldowns, overrides), traffic
# spread round-robin over them, and the console attached to the whole fleet through Redis
# (`console --fleet`): its board sums the instances, its actions reach every one.
# q (or Ctrl-C, or any failure) stops everything this script started: nothing is left running.
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case $build in /*) ;; *) build=$root/$build ;; esac
SB=$build/switchboard
SIM=$build/switchboard-sim
[[ -x $SB && -x $SIM ]] || { echo "demo: build first (make all): no $SB" >&2; exit 1; }
OUTAGE_AFTER=${DEMO_OUTAGE_AFTER:-60}
OUTAGE_FOR=${DEMO_OUTAGE_FOR:-45}
QUALITY_DROP_AFTER=${DEMO_QUALITY_DROP_AFTER:-20}
dir=$(mktemp -d /tmp/switchboard-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [[ ! -t 0 || ! -t 1 ]]; then
  echo "demo: the console needs a terminal; run 'make demo' from one" >&2
  exit 2
fi

# The admin token the attached console uses (random per run; never printed).
SWITCHBOARD_ADMIN_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export SWITCHBOARD_ADMIN_TOKEN
export DEMO_FAST_KEY=demo-fast-key DEMO_PREMIUM_KEY=demo-premium-key DEMO_FLAKY_KEY=demo-flaky-key
start() { # start NAME ARGS...: a simulator on ephemeral ports; sets port_NAME and ctl_NAME
  local name=$1; shift
  "$SIM" --name "$name" --port 0 --control-port 0 --port-file "$dir/$name.port" --quiet "$@" \
    >"$dir/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s $dir/$name.port ]] && break; sleep 0.1; done
  local p c
  read -r p c < "$dir/$name.port" || { echo "demo: simulator $name did not start" >&2; exit 1; }
  printf -v "port_$name" %s "$p"
  printf -v "ctl_$name" %s "$c"
}
start fast --key "$DEMO_FAST_KEY" --token-rate 400
start premium --key "$DEMO_PREMIUM_KEY" --token-rate 35 --first-byte-delay-ms 700
start flaky --key "$DEMO_FLAKY_KEY" --token-rate 120 --error-rate 0.1
start local --no-auth --token-rate 60

FLEET=${DEMO_FLEET:-0}
if [[ $FLEET == 1 ]]; then
  command -v redis-server >/dev/null || { echo "demo: FLEET=1 needs redis-server" >&2; exit 1; }
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --loglevel warning >"$dir/redis.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [[ -S $dir/redis.sock ]] && break; sleep 0.1; done
  fleet_json=',
  "fleet": {"redis": "unix://'$dir'/redis.sock", "name": "NAME"},
  "ledger": {"path": "NAME.db"},
  "budgets": [{"scope": "global", "daily_usd": 5}]'
fi

cat > "$dir/demo.json" <<JSON
{
  "providers": [
    {"name": "groq-fast", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:$port_fast/v1", "api_key_env": "DEMO_FAST_KEY",
     "model": "llama-3.1-8b-instant", "weight": 3,
     "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.08},
     "probe": {"interval_ms": 5000, "timeout_ms": 1000}},
    {"name": "claude-premium", "kind": "anthropic",
     "base_url": "http://127.0.0.1:$port_premium", "api_key_env": "DEMO_PREMIUM_KEY",
     "model": "claude-sonnet-4-5", "weight": 1,
     "price": {"input_per_mtok": 3, "output_per_mtok": 15},
     "probe": {"interval_ms": 10000, "timeout_ms": 3000}},
    {"name": "gemini-flaky", "kind": "gemini",
     "base_url": "http://127.0.0.1:$port_flaky/v1beta", "api_key_env": "DEMO_FLAKY_KEY",
     "model": "gemini-2.5-flash", "weight": 2,
     "price": {"input_per_mtok": 0.30, "output_per_mtok": 2.50},
     "probe": {"interval_ms": 5000, "timeout_ms": 1000}},
    {"name": "ollama-local", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:$port_local/v1", "model": "llama3.2:3b",
     "price": {"input_per_mtok": 0, "output_per_mtok": 0},
     "probe": {"interval_ms": 10000, "timeout_ms": 2000}}
  ],
  "routes": [
    {"name": "chat", "strategy": "weighted",
     "targets": ["groq-fast", "gemini-flaky", "claude-premium"], "fallback": ["local"],
     "baseline": "claude-premium",
     "quality_guard": {"enabled": true, "metric": "satisfaction", "margin_pct": 10,
                       "min_volume": 12, "window_ms": 600000, "shift": true,
                       "shift_ms": 300000}},
    {"name": "smart", "strategy": "priority", "targets": ["claude-premium", "groq-fast"],
     "hedge_after_ms": 1500},
    {"name": "fast", "strategy": "fastest", "targets": ["groq-fast", "gemini-flaky"],
     "hedge_after_ms": 400, "max_attempts": 2, "fallback": ["local"]},
    {"name": "local", "targets": ["ollama-local"]}
  ],
  "rules": [
    {"match": {"tag": "batch"}, "route": "local"}
  ],
  "router": {"max_attempts": 3, "backoff_base_ms": 50, "backoff_cap_ms": 500,
             "deadline_ms": 30000, "breaker_failures": 5, "breaker_cooldown_ms": 15000},
  "gateway": {"listen": "127.0.0.1:0",
              "admin_tokens": [{"name": "demo", "token_env": "SWITCHBOARD_ADMIN_TOKEN"}]},
  "console": {"theme": "default", "refresh_ms": 250}${fleet_json:-}
}
JSON

if ! "$SB" check -c "$dir/demo.json" >"$dir/check.out" 2>&1; then
  cat "$dir/check.out" >&2
  exit 1
fi

ports=()
if [[ $FLEET == 1 ]]; then
  for n in gw-1 gw-2 gw-3; do
    sed "s/NAME/$n/g" "$dir/demo.json" >"$dir/$n.json"
    "$SB" serve -c "$dir/$n.json" --port-file "$dir/$n.port" >"$dir/$n.log" 2>&1 &
    pids+=($!)
    ports+=(--port-file "$dir/$n.port")
  done
  portfile=$dir/gw-1.port
elif [[ ${DEMO_EMBEDDED:-0} == 1 ]]; then
  portfile=$dir/console.port
else
  portfile=$dir/serve.port
  "$SB" serve -c "$dir/demo.json" --port-file "$portfile" >"$dir/serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [[ -s $portfile ]] && break; sleep 0.1; done
  [[ -s $portfile ]] || { echo "demo: switchboard serve did not start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
fi

[[ ${#ports[@]} -gt 0 ]] || ports=(--port-file "$portfile")
python3 "$root/tests/demo/traffic.py" "${ports[@]}" --rate 3 \
  --outage-ctl "$ctl_fast" --outage-after "$OUTAGE_AFTER" --outage-for "$OUTAGE_FOR" \
  --persona-ctl "$ctl_flaky" --persona-after "$QUALITY_DROP_AFTER" \
  --parent $$ >"$dir/traffic.log" 2>&1 &
pids+=($!)

echo "switchboard demo: 4 simulated providers on 127.0.0.1, traffic at ~3 req/s;"
echo "gemini-flaky's answers turn terse after ${QUALITY_DROP_AFTER}s (the quality guard acts);"
echo "groq-fast goes down after ${OUTAGE_AFTER}s and recovers ${OUTAGE_FOR}s later."
if [[ $FLEET == 1 ]]; then
  echo "A fleet: three 'switchboard serve' instances (gw-1..3) share spend, budgets and"
  echo "overrides through redis; the console attaches to all of them through redis:"
  echo "  switchboard console --fleet unix://$dir/redis.sock     (q detaches)"
  sleep 2
  "$SB" console --fleet "unix://$dir/redis.sock" --log "$dir/switchboard.log"
elif [[ ${DEMO_EMBEDDED:-0} == 1 ]]; then
  echo "The console runs the gateway itself (embedded). q quits."
  sleep 1
  "$SB" console -c "$dir/demo.json" --port-file "$portfile" --log "$dir/switchboard.log"
else
  port=$(cat "$portfile")
  echo "The gateway runs as 'switchboard serve' on 127.0.0.1:$port; the console attaches to it:"
  echo "  switchboard console --attach http://127.0.0.1:$port     (q detaches)"
  sleep 1
  "$SB" console --attach "http://127.0.0.1:$port" --log "$dir/switchboard.log"
fi
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "demo: the console exited with status $rc; its log:" >&2
  tail -20 "$dir/switchboard.log" >&2
fi
echo "switchboard demo stopped; the gateway, simulators and traffic stopped too."
exit $rc
