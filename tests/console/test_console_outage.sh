#!/usr/bin/env bash
# A two-minute outage under 1,000+ req/s, watched from the embedded console (tmux): alpha
# refuses every connection, its breaker opens, the operator force-lives it anyway (so every
# call weighted to alpha fails and falls back: hundreds of failures a second for the rest of
# the outage) and takes more actions along the way. At the end, the breaker-open event and
# every operator action are still in the timeline and on screen with one key (K: key events
# only), and the churn is a few aggregate lines, not one per failed call.
#
# Needs wrk (.ci/deps test). Runs in the normal tree only: the sanitizer trees cannot carry
# 1,000 req/s on CI machines, so there it says so and counts nothing.
source "$(dirname "$0")/lib.sh"

if grep -qaE '__(asan|tsan)_init' "$SB"; then
  echo "note: $SB is a sanitizer build: the 1,000 req/s outage runs in the normal tree only"
  finish; exit 0
fi
command -v wrk >/dev/null || { bad "wrk is installed (.ci/deps test)"; finish; exit 1; }
OUTAGE_S=${OUTAGE_S:-120}

start_sim alpha --no-auth --token-rate 0 || exit 1
start_sim beta --no-auth --token-rate 0 || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "model": "llama3.2", "probe": {"interval_ms": 600000}},
    {"name": "beta", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "model": "llama3.2", "probe": {"interval_ms": 600000}},
    {"name": "spare", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "model": "llama3.2", "probe": {"interval_ms": 600000}}
  ],
  "routes": [{"name": "chat", "strategy": "weighted", "targets": ["alpha", "beta", "spare"]}],
  "router": {"max_attempts": 2, "backoff_base_ms": 1, "backoff_cap_ms": 5,
             "breaker_failures": 5, "breaker_cooldown_ms": 600000,
             "breaker_cooldown_max_ms": 600000},
  "guard": {"enabled": false},
  "ledger": {"path": ":memory:"},
  "gateway": {"listen": "127.0.0.1:0"},
  "console": {"refresh_ms": 250}
}
JSON

cap() { "${TM[@]}" capture-pane -p -t main; }
has() { cap | matches -E -- "$1"; }
keys() { "${TM[@]}" send-keys -t main "$@"; }
text() { "${TM[@]}" send-keys -t main -l -- "$1"; }
cmd() { keys :; text "$1"; keys Enter; sleep 0.5; }
dump() { echo "---- screen:"; cap; echo "----"; }
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump; }

cat > "$TMP/main.sh" <<SH
cd "$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
"$SB" console -c "$TMP/sb.json" --port-file "$TMP/main.port" --log "$TMP/main.log"
exec sleep 3600
SH
"${TM[@]}" new-session -d -s main -x 200 -y 50 "bash $TMP/main.sh"
wait_for "$TMP/main.port" "$WAIT" || { dump; finish; exit 1; }
read -r PORT < "$TMP/main.port"
check "the board is up" eventually "$WAIT" has '^TARGET +STATE'

BENCH_MODEL=chat wrk -t2 -c32 -d"$((OUTAGE_S + 10))s" -s "$root/tests/bench/post.lua" \
  "http://127.0.0.1:$PORT/v1/chat/completions" > "$TMP/wrk.out" 2>&1 &
WRK=$!
PIDS+=($WRK)
sleep 5
t0=$(date +%s)
sim_behavior alpha '{"outage":"refuse"}'
check "the breaker opens" eventually "$WAIT" has 'breaker +alpha +breaker alpha: closed -> open'
cmd "force-live alpha"   # the operator sends traffic to alpha anyway: failures at full rate
check "force-live shows on the timeline" eventually "$WAIT" has 'operator +alpha .*force-live'
actions=("weight beta 3" "drain spare" "weight beta 2" "clear spare" "weight beta 4")
step=$(( (OUTAGE_S - 15) / ${#actions[@]} ))
for a in "${actions[@]}"; do
  sleep "$step"
  cmd "$a"
done
while (( $(date +%s) - t0 < OUTAGE_S )); do sleep 1; done
check "after $OUTAGE_S s, the churn is aggregated: alpha's failures on a line that counts them" \
  has 'fallback +alpha +alpha: [0-9]+ failures \(connect\) -> fallback to (beta|spare)'

keys K   # one key
check "K shows key events only" eventually "$WAIT" has 'EVENTS \[key events\]'
check "the breaker-open event is on screen" has 'breaker +alpha +breaker alpha: closed -> open'
check "force-live is on screen" has 'operator +alpha .*force-live'
check "weight beta 3 is on screen" has 'operator +beta .*weight beta.*3'
check "drain spare is on screen" has 'operator +spare .*drain spare'
check "weight beta 2 is on screen" has 'operator +beta .*weight beta.*-> .*2'
check "clear spare is on screen" has 'operator +spare .*clear spare'
check "weight beta 4 is on screen" has 'operator +beta .*weight beta.*4'
wait "$WRK"
rate=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$TMP/wrk.out")
total=$(awk '/requests in/ { print $1 }' "$TMP/wrk.out")
non2xx=$(awk '/Non-2xx/ { print $NF }' "$TMP/wrk.out")
echo "load: ${rate:-?} req/s, ${total:-?} requests, ${non2xx:-0} not 2xx (wrk)"
check "the load held 1,000+ req/s" test "${rate:-0}" -ge 1000
check "and the clients got answers (under 1% not 2xx)" \
  test "$(( ${non2xx:-0} * 100 ))" -lt "${total:-0}"
keys K
check "K again: the churn is back" eventually "$WAIT" has 'fallback +alpha '
fails=$(cap | grep -cE ' fallback +alpha ')
check "the churn of two minutes fits a screen: a few aggregate lines ($fails)" \
  test "$fails" -ge 1
keys q
finish
