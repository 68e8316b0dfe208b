#!/usr/bin/env bash
# `switchboard console --fleet`: the console over a fleet found through Redis, driven through
# tmux, against a real redis-server (unix socket) and `serve` instances in fleet mode:
#  - the instances are discovered from their heartbeats: the board sums their calls, the
#    header counts them and shows the fleet's budget; one that stops disappears, one that
#    joins appears, no restart;
#  - a pin made in the console (through Redis) routes every instance's traffic within 1 s,
#    is stored in Redis and shows on the events timeline (the audit stream);
#  - explain and the prompt pane say they need --attach; q leaves the instances serving.
source "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || { bad "redis-server is installed"; finish; exit 1; }
WAIT=${CONSOLE_WAIT:-20}
RSOCK=$TMP/redis.sock
rcli() { redis-cli -s "$RSOCK" "$@"; }

redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --save '' --appendonly no \
  --loglevel warning >"$TMP/redis.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do rcli PING >/dev/null 2>&1 && break; sleep 0.1; done

export SIM_KEY=sim-key-fleet-console FC_ADMIN_TOKEN=fc-admin-token-0123456789
start_sim alpha --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim beta --key "$SIM_KEY" --token-rate 0 || exit 1

# serve NAME: a fleet instance; sets PORT_<NAME>, PID_<NAME>.
serve() {
  cat > "$TMP/$1.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}},
    {"name": "beta", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}}
  ],
  "routes": [{"name": "chat", "strategy": "priority", "targets": ["alpha", "beta"]}],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "FC_ADMIN_TOKEN"},
  "ledger": {"path": "$TMP/$1.db"},
  "fleet": {"redis": "unix://$RSOCK", "name": "$1", "key_prefix": "fc:"},
  "budgets": [{"scope": "global", "daily_usd": 5}]
}
JSON
  local pf=$TMP/$1.port
  "$SB" serve -c "$TMP/$1.json" --port-file "$pf" >"$TMP/$1.out" 2>"$TMP/$1.err" &
  local pid=$!
  PIDS+=($pid)
  wait_for "$pf" 10 || { echo "serve $1 did not start:"; cat "$TMP/$1.err"; return 1; }
  printf -v "PID_$1" %s "$pid"
  printf -v "PORT_$1" %s "$(cat "$pf")"
}
loadp() { python3 "$root/tests/integration/load.py" "$@"; }
targets_of() { loadp "$1" --n 10 --c 2 --model chat | json_get "j['by_target']"; }
all_to() { # all_to TARGET PORT...: ten calls to each instance all answered by TARGET
  local t=$1 p; shift
  for p in "$@"; do [[ $(targets_of "$p") == "{'$t': 10}" ]] || return 1; done
}

dump() { echo "---- screen:"; cap con; echo "----"; }
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump; }

serve one || exit 1
serve two || exit 1
loadp "$PORT_one" --n 12 --c 2 --model chat >/dev/null
loadp "$PORT_two" --n 8 --c 2 --model chat >/dev/null

cat > "$TMP/con.sh" <<SH
cd "$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
export SWITCHBOARD_USER=tester
export ASAN_OPTIONS="\${ASAN_OPTIONS:-}:log_path=$TMP/san-con" UBSAN_OPTIONS="\${UBSAN_OPTIONS:-}:log_path=$TMP/san-con"
"$SB" console --fleet "unix://$RSOCK" --fleet-prefix fc: --log "$TMP/con.log"
echo "EXIT rc=\$?"
exec sleep 3600
SH
"${TM[@]}" new-session -d -s con -x 180 -y 44 "bash $TMP/con.sh"
check "the fleet console starts" eventually "$WAIT" has con '^TARGET +STATE'
check "the header names the fleet and counts its instances" eventually "$WAIT" has con 'fleet: 2 instances'
check "both instances are up" eventually "$WAIT" has con '2/2 up'
check "the fleet's budget shows in the header" eventually "$WAIT" has con 'budget \$5\.00'
calls_sum() { cap con | grep -E '^alpha ' | grep -qE ' 20 +0 '; }
check "the board sums the instances' calls (12 + 8 on alpha)" eventually "$WAIT" calls_sum

keys con :; text con "pin beta for 4s"; keys con Enter
t0=$(date +%s.%N)
check "the pin is sent through redis" eventually "$WAIT" has con 'pin beta.*sent through redis to 2 instances'
check "within 1 s every instance routes to beta" eventually 1 all_to beta "$PORT_one" "$PORT_two"
echo "# pin seen on both instances (the test's own calls included) within $(python3 -c "import time; print(round(time.time() - $t0, 2))") s"
check "the pin is stored in redis" bash -c "redis-cli -s '$RSOCK' HGET fc:ov pin:beta | grep -q '\"pin\"'"
check "the events timeline shows it (audit stream)" eventually "$WAIT" has con 'tester on console:tester: pin beta'
sleep 4
check "its expiry lapses on every instance" eventually 2 all_to alpha "$PORT_one" "$PORT_two"

keys con :; text con "drain alpha for 2s"; keys con Enter
check "a second action is on the timeline too (events keep coming)" eventually "$WAIT" has con 'tester on console:tester: drain alpha'
sleep 2.5
inst_admin() { # inst_admin PORT METHOD PATH [JSON]
  curl -s --max-time 5 -X "$2" -H "Authorization: Bearer $FC_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "http://127.0.0.1:$1$3"
}
inst_admin "$PORT_one" POST /admin/targets/beta/drain '{"expires_in_s": 600}' >/dev/null
check "an instance's own change is on the timeline with its expiry and before -> after" \
  eventually "$WAIT" has con 'on one: drain beta until [0-9:]+Z: weight 1 -> weight 1, drained'
inst_admin "$PORT_one" POST /admin/targets/beta/clear >/dev/null
keys con :; text con "route explain chat"; keys con Enter
check "explain says it needs --attach" eventually "$WAIT" has con 'explain needs a gateway'

kill "$PID_two"
check "an instance that stops disappears (no restart)" eventually 8 has con 'fleet: 1 instance'
serve three || exit 1
check "one that joins appears" eventually 8 has con 'fleet: 2 instances'
keys con q
check "q leaves the console" eventually "$WAIT" has con 'EXIT rc=0'
check "the instances keep serving" all_to alpha "$PORT_one" "$PORT_three"
check "no sanitizer report" bash -c "! cat '$TMP'/san-con* 2>/dev/null | grep -q Sanitizer"
finish
