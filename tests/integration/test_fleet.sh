#!/usr/bin/env bash
# Fleet mode end to end: one real redis-server (Debian's, on a unix socket in $TMP), three
# `switchboard serve` instances sharing it, load spread round-robin over them.
#  - a hard global daily budget of $B across the fleet: the spend in all three ledgers ends
#    within the README's overshoot bound of $B, and later calls get the budget error on every
#    instance;
#  - a pin made through one instance's admin API routes every instance's traffic within 1 s,
#    and its expiry lapses on all of them;
#  - the runaway guard counts one prompt's storm across the instances;
#  - an answer one instance caches serves a storm on the others (guard.action "cache");
#  - a 429 with Retry-After: 5 answered to one instance: no instance sends that target a call
#    for 5 s;
#  - fleet.share_breakers: a breaker one instance opens takes the target out on all;
#  - max_concurrency (fleet_limits) holds across the instances, as one pool (one busy instance
#    may use all of it) whose slots a dead instance gives back when its grant expires;
#  - an rpm limit of R across the fleet (fleet_limits) holds within 10 % over a minute;
#  - the runaway guard's rate spike of a tag is judged on the fleet's arrivals;
#  - a client key's rpm and daily budget hold across the instances;
#  - kill -9 of Redis during load: zero client errors, /metrics says "redis unreachable since";
#    Redis restarted empty: fleet spend equals the sum of the ledgers, overrides re-seeded.
source "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || { echo "redis-server missing (bash .ci/deps test)"; exit 1; }
export SIM_KEY=sim-key-fleet ADMIN_TOKEN=admin-token-fleet
RSOCK=$TMP/redis.sock
LOAD="python3 $(dirname "$0")/fleet_load.py"

start_redis() {
  redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize no --loglevel warning >"$TMP/redis.out" 2>&1 &
  REDIS_PID=$!
  PIDS+=($REDIS_PID)
  for _ in $(seq 50); do [[ -S $RSOCK ]] && rcli PING >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis-server did not start:"; cat "$TMP/redis.out"; return 1
}
rcli() { redis-cli -s "$RSOCK" "$@"; }

start_sim a --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim b --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim c --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim d --key "$SIM_KEY" --token-rate 0 --first-byte-delay-ms 600 || exit 1
RPM=120
start_redis || exit 1

# write_config N BUDGETS_JSON [ON_OUTAGE] [CLIENTS_JSON]
write_config() {
  cat > "$TMP/sb$1.json" <<JSON
{
  "providers": [
    {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[a]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false},
     "price": {"input_per_mtok": 10, "output_per_mtok": 10}},
    {"name": "b", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[b]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false},
     "price": {"input_per_mtok": 10, "output_per_mtok": 10}},
    {"name": "c", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[c]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false},
     "rpm": $RPM, "fleet_limits": true},
    {"name": "d", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[d]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false},
     "max_concurrency": 3, "fleet_limits": true}
  ],
  "routes": [{"name": "chat", "targets": ["a", "b"], "strategy": "priority"},
             {"name": "limited", "targets": ["c"]},
             {"name": "conc", "targets": ["d"], "queue_ms": 5000},
             {"name": "cached", "targets": ["b"], "cache": {"enabled": true, "ttl_ms": 60000}}],
  "router": {"max_attempts": 3, "breaker_failures": 3, "breaker_cooldown_ms": 4000},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "ledger$1.db", "batch_ms": 50},
  "guard": {"identical_max": 10, "identical_window_ms": 10000, "action": "cache",
            "spike_factor": 5, "spike_min_rps": 2},
  "clients": [${4:-}],
  "fleet": {"redis": "unix://$RSOCK", "name": "inst$1", "key_prefix": "t:",
            "share_breakers": true, "on_outage": "${3:-share}"},
  "budgets": [$2]
}
JSON
}

declare -A PORT SPID
start_inst() {
  local n=$1 pf=$TMP/inst$1.port
  rm -f "$pf"
  "$SB" serve -c "$TMP/sb$n.json" --port-file "$pf" >"$TMP/inst$n.out" 2>"$TMP/inst$n.err" &
  SPID[$n]=$!
  PIDS+=($!)
  wait_for "$pf" 10 || { echo "instance $n did not start:"; cat "$TMP/inst$n.err"; return 1; }
  read -r PORT[$n] < "$pf"
}
stop_inst() {
  kill -TERM "${SPID[$1]}"
  for _ in $(seq 100); do kill -0 "${SPID[$1]}" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}
ports() { echo "${PORT[1]},${PORT[2]},${PORT[3]}"; }
adm() { # adm N METHOD PATH [JSON]
  curl -s --max-time 5 -X "$2" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "http://127.0.0.1:${PORT[$1]}$3"
}
# ledger_sum N...: total spend in these instances' ledgers (answer + retries + hedges); with
# CLIENT set, that client key's calls only.
ledger_sum() {
  python3 - "$@" <<'PY'
import sqlite3, sys, os
tot = 0.0
who = os.environ.get("CLIENT")
for n in sys.argv[1:]:
    p = os.path.join(os.environ["TMP"], "ledger%s.db" % n)
    db = sqlite3.connect("file:%s?mode=ro" % p, uri=True)
    q = "SELECT cost_usd, est_cost_usd, retry_cost_usd, hedge_cost_usd FROM calls"
    for c, e, r, h in (db.execute(q + " WHERE client = ?", (who,)) if who else db.execute(q)):
        tot += (c if c is not None else (e or 0)) + max(r or 0, 0) + max(h or 0, 0)
print("%.6f" % tot)
PY
}
# max_cost N...: the most expensive single call in these ledgers.
max_cost() {
  python3 - "$@" <<'PY'
import sqlite3, sys, os
m = 0.0
for n in sys.argv[1:]:
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(os.environ["TMP"], "ledger%s.db" % n), uri=True)
    m = max(m, db.execute("SELECT COALESCE(MAX(cost_usd), 0) FROM calls").fetchone()[0])
print("%.6f" % m)
PY
}
export TMP
state_has() { adm "$1" GET /admin/state | matches -F -- "$2"; }
metrics_has() { curl -sf --max-time 5 "http://127.0.0.1:${PORT[$1]}/metrics" | matches -- "$2"; }

# ---- 1. a fleet-wide budget ------------------------------------------------------------------
B=0.05
for n in 1 2 3; do write_config $n "{\"scope\": \"global\", \"daily_usd\": $B}"; start_inst $n || exit 1; done
check "all three instances joined the fleet" eventually 5 metrics_has 1 '^switchboard_fleet_instances 3'
heartbeat_ok() { # instance N's heartbeat: /admin/state's shape, its targets and routes
  rcli GET "t:inst:inst$1" | python3 -c "import json,sys; j=json.load(sys.stdin); \
    exit(0 if j['name'] == 'inst$1' and [t['name'] for t in j['targets']] == ['a','b','c','d'] \
    and 'latency_1m_ms' in j['targets'][0]['stats'] and j['routes'][0]['name'] == 'chat' else 1)"
}
check "each instance heartbeats its state summary (short TTL)" eventually 3 heartbeat_ok 2
check "the heartbeat expires unless renewed" test "$(rcli PTTL t:inst:inst3)" -le 3000
check "the state names the fleet" eventually 3 state_has 2 '"status":"fleet: 3 instances"'
C=6
$LOAD "$(ports)" --n 600 --c $C >"$TMP/budget.json"
elapsed=$(json_get "j['elapsed_s']" <"$TMP/budget.json")
ok200=$(json_get "j['by_status'].get('200', 0)" <"$TMP/budget.json")
n429=$(json_get "j['by_status'].get('429', 0)" <"$TMP/budget.json")
sleep 0.5 # ledgers written (batch_ms 50)
spent=$(ledger_sum 1 2 3)
cmax=$(max_cost 1 2 3)
# README "Running a fleet": overshoot <= (calls in flight + calls started in
# 2 x flush + refresh = 450 ms) x the dearest call
bound=$(python3 -c "r=$ok200/$elapsed; print('%.6f' % (($C + r*0.45) * $cmax))")
echo "# budget: \$$spent spent over $ok200 answered calls (\$$cmax max each, $(python3 -c "print(round($ok200/$elapsed))") calls/s); bound \$$B + \$$bound"
check "the fleet stopped near its daily budget (spend >= B)" python3 -c "exit(0 if $spent >= $B else 1)"
check "fleet spend stays within the stated overshoot bound" python3 -c "exit(0 if $spent <= $B + $bound else 1)"
check "calls beyond the budget were refused with 429" test "$n429" -gt 0
for n in 1 2 3; do
  code=$(curl -s -o "$TMP/after$n.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data '{"model":"chat","messages":[{"role":"user","content":"more"}]}' \
    "http://127.0.0.1:${PORT[$n]}/v1/chat/completions")
  check "instance $n answers the budget error after the cap ($code)" \
    bash -c "[[ $code == 429 ]] && grep -q 'over budget' '$TMP/after$n.body'"
done
redis_micro=$(rcli GET "t:spend:global::d:$(date -u +%F)")
check "Redis holds the fleet's spend (sum of the ledgers)" python3 -c \
  "exit(0 if abs($redis_micro/1e6 - $spent) < 1e-4 else 1)"
for n in 1 2 3; do stop_inst $n; done
rcli FLUSHALL >/dev/null

# ---- 2. a pin through one instance reaches all, and lapses on all ------------------------------
for n in 1 2 3; do write_config $n ""; rm -f "$TMP"/ledger$n.db*; start_inst $n || exit 1; done
$LOAD "$(ports)" --n 30 --c 3 >"$TMP/pre.json"
check "before the pin, every instance routes to a (priority)" \
  test "$(json_get "sum(v for k, v in j['by_port_target'].items() if k.endswith(':a'))" <"$TMP/pre.json")" -eq 30
adm 1 POST /admin/targets/b/pin '{"expires_in_s": 4}' >"$TMP/pin.out"
t_pin=$(date +%s.%N)
sleep 1
$LOAD "$(ports)" --n 30 --c 3 >"$TMP/pinned.json"
check "within 1 s of the pin, all three instances route to b" \
  test "$(json_get "sum(v for k, v in j['by_port_target'].items() if k.endswith(':b'))" <"$TMP/pinned.json")" -eq 30
check "instance 3's state shows the pin from instance 1" state_has 3 '"pinned":"b"'
sleep "$(python3 -c "import time; print(max(0, 4.3 - (time.time() - $t_pin)))")"
$LOAD "$(ports)" --n 30 --c 3 >"$TMP/lapsed.json"
check "the pin's expiry lapsed on every instance" \
  test "$(json_get "sum(v for k, v in j['by_port_target'].items() if k.endswith(':a'))" <"$TMP/lapsed.json")" -eq 30

# ---- 2b. a retry storm spread over the instances is one storm -----------------------------------
codes=$(for i in $(seq 24); do
  n=$(( (i % 3) + 1 ))
  curl -s -o "$TMP/storm$i.body" -w '%{http_code}\n' -H 'Content-Type: application/json' \
    --data '{"model":"chat","messages":[{"role":"user","content":"the same loop"}]}' \
    "http://127.0.0.1:${PORT[$n]}/v1/chat/completions"
  sleep 0.05
done | sort | uniq -c | tr -s ' ' | tr '\n' ',')
echo "# storm: 24 identical prompts, 8 per instance (local limit 10): $codes"
check "the fleet-wide guard refused the storm although no instance saw 10" \
  bash -c "grep -l 'runaway guard (fleet)' '$TMP'/storm*.body | grep -q ."
check "and only beyond the limit (at least 10 answered)" \
  test "$(grep -L 'runaway guard' "$TMP"/storm*.body | wc -l)" -ge 10

# ---- 2c. an answer cached on one instance serves a storm on the others -------------------------
cached_call() { # cached_call N I: one call of the cached route's prompt to instance N
  curl -s -o "$TMP/cached$2.body" -D "$TMP/cached$2.hdr" -H 'Content-Type: application/json' \
    --data '{"model":"cached","messages":[{"role":"user","content":"cache me"}]}' \
    "http://127.0.0.1:${PORT[$1]}/v1/chat/completions"
}
cached_call 1 0
check "instance 1 answered the prompt from its target" grep -qi '^x-switchboard-target: b' "$TMP/cached0.hdr"
check "the answer is stored in Redis with the route's TTL" eventually 2 bash -c \
  "redis-cli -s '$RSOCK' --scan --pattern 't:cache:*' | grep -q ."
sim_behavior b '{"outage": "503"}' # instances 2 and 3 cannot record answers of their own
b_before=$(sim_requests b /v1/chat/completions)
for i in $(seq 1 16); do cached_call $(( (i % 2) + 2 )) "$i"; sleep 0.1; done
sim_behavior b '{"outage": "none"}'
replayed=$(grep -li '^x-switchboard-target: cache' "$TMP"/cached{1..16}.hdr | wc -l)
echo "# cache: $replayed of 16 storm calls on instances 2 and 3 answered from instance 1's answer"
check "instances 2 and 3 answered the storm from instance 1's cached answer" test "$replayed" -ge 3
check "...without calling the target for those" \
  test $(( $(sim_requests b /v1/chat/completions) - b_before )) -le $(( 3 * (16 - replayed) ))
sleep 4.5 # b's breakers (opened by the outage) cool down before the next drills

# ---- 3. a Retry-After seen by one instance cools the target on all ------------------------------
sim_behavior a '{"rate_limit": {"status": 429, "retry_after_s": 5}}'
curl -s -o /dev/null -H 'Content-Type: application/json' \
  --data '{"model":"chat","messages":[{"role":"user","content":"hit the limit"}]}' \
  "http://127.0.0.1:${PORT[1]}/v1/chat/completions"
t429=$(date +%s.%N)
sim_behavior a '{"rate_limit": null}'
# The notice reaches the other instances through Redis pub/sub, which takes a moment on a
# loaded machine; the load starts once both show the cooldown, and ends before it lapses.
check "instance 2 learned the cooldown from the fleet" eventually 3 state_has 2 'Retry-After (fleet)'
check "instance 3 learned the cooldown from the fleet" eventually 3 state_has 3 'Retry-After (fleet)'
cool_s=$(python3 -c "import time; print('%.1f' % max(1.0, 4.6 - (time.time() - $t429)))")
$LOAD "$(ports)" --duration "$cool_s" --c 3 --rps 30 >"$TMP/cool.json"
sleep 0.3 # the ledgers' batch
# a_during: calls the cooled target answered while the Retry-After ran (each ledger's rows for
# a that ended before it lapsed; t429 is taken after the 429 came back, so 100 ms of margin).
# Calls the load makes after the lapse (a slow machine stretches the load) go to a rightly.
a_during() {
  python3 - "$t429" <<'PY'
import sqlite3, sys, os
t = float(sys.argv[1]) * 1000
n = 0
for i in (1, 2, 3):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(os.environ["TMP"], "ledger%d.db" % i), uri=True)
    for ts, st in db.execute("SELECT ts_ms, status FROM calls WHERE target = 'a' AND ts_ms > ?", (t - 2000,)):
        late = ts - t
        print("# instance %d: a answered %+.0f ms after the 429, status %s" % (i, late, st), file=sys.stderr)
        n += late < 4900
print(n)
PY
}
during=$(a_during)
check "no instance sent a call to the cooled target for 5 s ($during sent)" test "$during" -eq 0
check "the calls went to b meanwhile, without errors" \
  test "$(json_get "j['by_status'].get('200', 0) == j['n']" <"$TMP/cool.json")" = True
sleep "$(python3 -c "import time; print(max(0, 5.5 - (time.time() - $t429)))")"
$LOAD "$(ports)" --n 9 --c 3 >"$TMP/warm.json"
check "after the Retry-After, a is used again" \
  test "$(json_get "sum(v for k, v in j['by_port_target'].items() if k.endswith(':a'))" <"$TMP/warm.json")" -eq 9

# ---- 3b. share_breakers: a breaker opened on one instance takes the target out on all ------------
sim_behavior a '{"outage": "503"}'
for i in 1 2 3 4; do
  curl -s -o /dev/null -H 'Content-Type: application/json' \
    --data '{"model":"chat","messages":[{"role":"user","content":"fail over"}]}' \
    "http://127.0.0.1:${PORT[1]}/v1/chat/completions"
done
sim_behavior a '{"outage": "none"}'
sleep 0.5
$LOAD "${PORT[2]},${PORT[3]}" --n 20 --c 2 >"$TMP/shared.json"
check "instances 2 and 3 keep off the target instance 1's breaker opened" \
  test "$(json_get "sum(v for k, v in j['by_port_target'].items() if k.endswith(':b'))" <"$TMP/shared.json")" -eq 20
check "the transition is on their timelines" state_has 3 'fleet: breaker a on inst1: closed -> open'
sleep 4

# ---- 4. a fleet-wide rpm limit over a minute ----------------------------------------------------
if [[ ${FLEET_QUICK:-0} != 1 ]]; then
  c_before=$(sim_requests c /v1/chat/completions)
  # meanwhile a tag's baseline for the guard: 1.5 req/s across the fleet (0.5 on each)
  $LOAD "$(ports)" --duration 62 --c 2 --rps 1.5 --header "x-switchboard-tag: spiky" >"$TMP/base.json" &
  BASE_PID=$!
  $LOAD "$(ports)" --duration 60 --c 6 --rps 6 --model limited >"$TMP/rpm.json"
  sent=$(( $(sim_requests c /v1/chat/completions) - c_before ))
  echo "# rpm: $sent calls reached the target in 60 s (fleet rpm $RPM, offered $(json_get "j['n']" <"$TMP/rpm.json"))"
  check "the fleet held rpm $RPM within 10 % over a minute ($sent)" \
    python3 -c "exit(0 if $RPM * 0.9 <= $sent <= $RPM * 1.1 else 1)"
  check "calls over the limit were told to come back (429), none failed otherwise" \
    test "$(json_get "set(j['by_status']) <= {'200', '429'}" <"$TMP/rpm.json")" = True
  wait $BASE_PID
  check "the tag's baseline minute was all answered" \
    test "$(json_get "j['by_status'].get('200', 0) == j['n']" <"$TMP/base.json")" = True
  # its loop spread over three: 24 req/s, 8 on each (under 5x an instance's own 2/s floor),
  # but 12x the fleet's baseline floor of 2/s
  $LOAD "$(ports)" --duration 8 --c 8 --rps 24 --header "x-switchboard-tag: spiky" >"$TMP/spike.json"
  spiked=$(python3 -c "import json; j=json.load(open('$TMP/spike.json')); print(sum(1 for f in j['failures'] if 'spiked' in f.get('body','') or 'more than 5x' in f.get('body','')))")
  n_ok=$(json_get "j['by_status'].get('200', 0)" <"$TMP/spike.json")
  n_429=$(json_get "j['by_status'].get('429', 0)" <"$TMP/spike.json")
  echo "# guard spike: 24 req/s over 3 instances for 8 s: $n_ok answered, $n_429 refused"
  check "the fleet-wide guard caught a spike no instance saw alone ($n_429 refused)" \
    test "$n_429" -ge 30
  check "...refusing as a rate spike" test "$spiked" -ge 1
  # The slack is the fleet counts' flush lag (250 ms per instance): each instance reads the
  # others' recent seconds late, so its share of the 10 s allowance (mine / arrived) comes out
  # high and the shares add up to more than one. A sanitizer build runs several times slower
  # and lags more (TSan saw 134); the normal tree saw 132 once (CI at 732b239). Without
  # sharing all 192 are answered, so 150 still tells the two apart.
  slack=70
  grep -qaE '__(asan|tsan)_init' "$SB" && slack=90
  check "...and kept about 5x the fleet's floor (<= 10/s + $slack: $n_ok in 8 s)" \
    test "$n_ok" -le $((80 + slack))
fi

# ---- 4b. fleet-wide max_concurrency ---------------------------------------------------------------
peak_file=$TMP/peak
( peak=0; end=$(( $(date +%s) + 5 ))
  while (( $(date +%s) < end )); do
    v=$(sim_stats d | json_get "j['in_flight']" 2>/dev/null || echo 0)
    (( v > peak )) && peak=$v; echo "$peak" >"$peak_file"; sleep 0.05
  done ) &
PEAK_PID=$!
$LOAD "$(ports)" --duration 4 --c 9 --model conc >"$TMP/conc.json"
wait $PEAK_PID
echo "# max_concurrency: 9 clients over 3 instances; the target saw at most $(cat "$peak_file") at once"
check "fleet max_concurrency 3 holds across three instances (peak $(cat "$peak_file"))" \
  test "$(cat "$peak_file")" -le 3
check "the calls over it waited for a slot (queue_ms), none failed" \
  test "$(json_get "j['by_status'].get('200', 0) == j['n']" <"$TMP/conc.json")" = True
# a pool, not a split: with instances 2 and 3 idle, instance 1 alone may use every slot
sleep 2.5 # FLEET_SLOT_IDLE_MS: the idle instances give their spare slots back
( peak=0; end=$(( $(date +%s) + 5 ))
  while (( $(date +%s) < end )); do
    v=$(sim_stats d | json_get "j['in_flight']" 2>/dev/null || echo 0)
    (( v > peak )) && peak=$v; echo "$peak" >"$peak_file"; sleep 0.05
  done ) &
PEAK_PID=$!
$LOAD "${PORT[1]}" --duration 4 --c 6 --model conc >"$TMP/conc1.json"
wait $PEAK_PID
echo "# max_concurrency pool: 6 clients on instance 1 alone; the target saw at most $(cat "$peak_file") at once"
check "one busy instance draws the whole fleet pool of 3 (peak $(cat "$peak_file"), a split gives 1)" \
  test "$(cat "$peak_file")" -eq 3
check "...and its calls all succeed" \
  test "$(json_get "j['by_status'].get('200', 0) == j['n']" <"$TMP/conc1.json")" = True
rcli SET t:conc:d:c:ghost 3 PX 3000 >/dev/null # a dead instance holding every slot
rcli SADD t:conc:d:c ghost >/dev/null
sleep 0.2
t_ghost=$(date +%s.%N)
$LOAD "${PORT[1]}" --n 3 --c 3 --model conc >"$TMP/ghost.json"
waited=$(python3 -c "import time; print('%.1f' % (time.time() - $t_ghost))")
echo "# a dead instance's 3 slots: calls waited ${waited} s for them to expire"
check "a dead instance's slots come back when its grant expires (waited ${waited} s)" \
  python3 -c "exit(0 if 2.0 <= $waited <= 6.5 else 1)"
check "...and those calls succeed" \
  test "$(json_get "j['by_status'].get('200', 0) == j['n']" <"$TMP/ghost.json")" = True

# ---- 5. kill -9 of Redis under load ------------------------------------------------------------
adm 2 POST /admin/targets/a/weight '{"weight": 7}' >/dev/null
sleep 0.5
$LOAD "$(ports)" --duration 4 --c 4 >"$TMP/kill.json" &
LPID=$!
sleep 1
kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null
sleep 1
# each instance notices at its own next Redis call: a TSan build may take a few seconds
check "an instance reports the outage in /metrics" eventually 5 metrics_has 3 '^# fleet: redis unreachable since'
check "and in /admin/state" eventually 5 state_has 1 'fleet: redis unreachable since'
check "and in the fleet_up gauge" eventually 5 metrics_has 2 '^switchboard_fleet_up 0'
wait $LPID
check "zero client errors while Redis was down" \
  test "$(json_get "j['by_status'].get('200', 0) == j['n'] and j['n'] > 0" <"$TMP/kill.json")" = True
rm -f "$RSOCK"
start_redis || exit 1
# Every instance, not only the first: each retries on its own backoff (up to 5 s by the end of
# the outage), and only a reconnected instance adds its share back.
for n in 1 2 3; do
  check "instance $n reconnects" eventually 12 metrics_has $n '^switchboard_fleet_up 1'
done
sleep 1.5
spent=$(ledger_sum 1 2 3)
fleet_spend() { redis-cli -s "$RSOCK" GET "t:spend:global::d:$(date -u +%F)"; }
check "after the restart, fleet spend equals the sum of the ledgers" eventually 5 python3 -c \
  "import subprocess; v=int(subprocess.run(['redis-cli','-s','$RSOCK','GET','t:spend:global::d:$(date -u +%F)'],capture_output=True,text=True).stdout.strip() or 0); exit(0 if abs(v/1e6 - $spent) < 1e-4 else 1)"
echo "# spend after the restart: Redis $(fleet_spend) micro-USD, the ledgers $spent USD"
reseeded() { rcli HGET t:ov weight:a | grep -q '"weight":7'; }
check "overrides were re-seeded into the empty Redis" eventually 3 reseeded
for n in 1 2 3; do
  check "instance $n exits cleanly" stop_inst $n
  check "instance $n wrote no sanitizer report" bash -c "! grep -qE 'Sanitizer|runtime error' '$TMP/inst$n.err'"
done

# ---- 6. budgets while Redis is down: fleet.on_outage closed / open / share ---------------------
rcli FLUSHALL >/dev/null
B2=0.03
modes=(x closed open share)
for n in 1 2 3; do
  write_config $n "{\"scope\": \"global\", \"daily_usd\": $B2}" "${modes[$n]}"
  rm -f "$TMP"/ledger$n.db*
  start_inst $n || exit 1
done
$LOAD "$(ports)" --n 72 --c 3 >/dev/null # about half of the budget, a third on each
sleep 1
before=$(ledger_sum 1 2 3)
kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null
sleep 0.5
$LOAD "${PORT[1]}" --n 5 --c 1 >"$TMP/closed.json"
check "on_outage closed: calls under the capped budget get 429 while Redis is down" \
  test "$(json_get "j['by_status'].get('429', 0)" <"$TMP/closed.json")" = 5
check "...saying why" bash -c "python3 -c \"import json; print(json.load(open('$TMP/closed.json'))['failures'])\" | grep -q 'redis unreachable'"
$LOAD "${PORT[2]}" --n 30 --c 1 >"$TMP/open.json"
check "on_outage open: this instance's own budget only (30 of 30 answered)" \
  test "$(json_get "j['by_status'].get('200', 0)" <"$TMP/open.json")" = 30
$LOAD "${PORT[3]}" --n 40 --c 1 >"$TMP/share.json"
n_share=$(json_get "j['by_status'].get('200', 0)" <"$TMP/share.json")
avg=$(python3 -c "print('%.6f' % ($before / 72))")
expect=$(python3 -c "print(round(($B2 - $before) / 3 / $avg))")
echo "# share: \$$before spent before the outage; instance 3 answered $n_share more (its share: ~$expect calls at \$$avg)"
check "on_outage share: instance 3 stops at about its share of what was left" \
  python3 -c "exit(0 if 0 < $n_share < 40 and abs($n_share - $expect) <= max(3, $expect * 0.5) else 1)"
sed -i 's/"name": "inst2"/"name": "renamed"/' "$TMP/sb2.json"
kill -HUP "${SPID[2]}"
check "a reload that changes the fleet settings says they wait for a restart" \
  eventually 5 state_has 2 'fleet settings changed: the old ones stay in force until a restart'

# ---- 7. a client key's rpm and daily budget hold across the fleet -------------------------------
for n in 1 2 3; do stop_inst $n; done
rm -f "$RSOCK"
start_redis || exit 1
KEY_R=sbk-fleet-rate-0123456789abcdef KEY_B=sbk-fleet-budget-0123456789abcdef
KEY_T=sbk-fleet-tokens-0123456789abcdef
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
CLIENTS="{\"name\": \"rated\", \"key_sha256\": \"$(sha $KEY_R)\", \"rpm\": 30},
         {\"name\": \"capped\", \"key_sha256\": \"$(sha $KEY_B)\", \"daily_usd\": 0.01},
         {\"name\": \"tokens\", \"key_sha256\": \"$(sha $KEY_T)\", \"tpm\": 120}"
for n in 1 2 3; do
  write_config $n "" share "$CLIENTS"
  rm -f "$TMP"/ledger$n.db*
  start_inst $n || exit 1
done
check "the instances rejoined" eventually 5 metrics_has 1 '^switchboard_fleet_instances 3'
$LOAD "$(ports)" --duration 20 --c 3 --rps 3 --header "Authorization: Bearer $KEY_R" >"$TMP/krate.json"
k_ok=$(json_get "j['by_status'].get('200', 0)" <"$TMP/krate.json")
k_offered=$(json_get "j['n']" <"$TMP/krate.json")
echo "# client key rpm 30: $k_ok of $k_offered answered in 20 s over three instances (each alone would allow 30 a minute)"
check "a client key's rpm holds across the fleet (<= 30/min x 20 s + burst: $k_ok)" \
  test "$k_ok" -le 14
check "...and it is not starved (>= 30/min x 20 s - 30 %: $k_ok)" test "$k_ok" -ge 7
check "...the rest refused as the key's fleet-wide limit" bash -c \
  "python3 -c \"import json; print(json.load(open('$TMP/krate.json'))['failures'])\" | grep -q 'fleet-wide rate limit of 30 requests per minute'"
# tpm 120 with calls of ~20 tokens: each instance alone would admit 6 a minute (18 in all);
# the fleet's bucket refills 2 tokens a second, and a call's tokens are charged at its end
$LOAD "$(ports)" --duration 12 --c 3 --rps 3 --header "Authorization: Bearer $KEY_T" >"$TMP/ktok.json"
sleep 0.5 # ledgers written
kt_ok=$(json_get "j['by_status'].get('200', 0)" <"$TMP/ktok.json")
kt_tok=$(python3 - <<PY
import sqlite3, os
t = 0
for n in (1, 2, 3):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join("$TMP", "ledger%d.db" % n), uri=True)
    t += db.execute("SELECT COALESCE(SUM(COALESCE(tokens_in,0) + COALESCE(tokens_out,0)), 0) FROM calls WHERE client = 'tokens'").fetchone()[0]
print(t)
PY
)
echo "# client key tpm 120: $kt_ok calls ($kt_tok tokens) answered in 12 s over three instances"
check "a client key's tpm holds across the fleet ($kt_tok tokens in 12 s: <= 24 + 3 calls' overdraft)" \
  python3 -c "exit(0 if 0 < $kt_ok <= 8 and $kt_tok <= 24 + 3 * $kt_tok / $kt_ok + 20 else 1)"
$LOAD "$(ports)" --n 150 --c 3 --rps 30 --header "Authorization: Bearer $KEY_B" >"$TMP/kbudget.json"
sleep 0.5
kb_ok=$(json_get "j['by_status'].get('200', 0)" <"$TMP/kbudget.json")
kb_spent=$(CLIENT=capped ledger_sum 1 2 3)
kb_el=$(json_get "j['elapsed_s']" <"$TMP/kbudget.json")
# the same bound as the fleet budget's: (calls in flight + calls started in 450 ms) x the dearest
kb_bound=$(python3 -c "print('%.6f' % ((3 + $kb_ok / $kb_el * 0.45) * $(max_cost 1 2 3)))")
echo "# client key daily \$0.01: $kb_ok calls answered, \$$kb_spent spent across the three ledgers (bound +\$$kb_bound; each instance alone would allow \$0.01)"
check "a client key's daily budget holds across the fleet (\$$kb_spent, cap \$0.01 + \$$kb_bound)" \
  python3 -c "exit(0 if 0.01 <= $kb_spent <= 0.01 + $kb_bound else 1)"
check "...then every instance refuses the key's calls" bash -c \
  "python3 -c \"import json; print(json.load(open('$TMP/kbudget.json'))['failures'])\" | grep -q 'daily budget .0.01 reached'"
finish
