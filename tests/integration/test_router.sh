#!/usr/bin/env bash
# The router under failure, end to end: switchboard serve in front of simulators.
#  - primary in outage (refused, then 503s): no client sees a failure, traffic moves to the
#    fallback, the breaker opens, and closes again after recovery;
#  - 429 with Retry-After: no request reaches that target before the time given;
#  - a hanging target: the hedge answers; with no other target the deadline gives 504;
#  - a stream cut after the first byte: an error chunk, counted as truncated;
#  - weights 3:1 split 2,000 calls 3:1; drain and pin act at once; an override with an
#    expiry lapses on time;
#  - SIGHUP reloads a valid file and rejects an invalid one, keeping the old config.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-router ADMIN_TOKEN=admin-token-for-tests
for s in primary fallback hangy cutter w3 w1; do
  start_sim "$s" --key "$SIM_KEY" --token-rate 0 || exit 1
done
sim_behavior hangy '{"hang":true}'
sim_behavior cutter '{"cut_after_tokens":3}'

write_config() { # write_config W3_WEIGHT
  cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "primary", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[primary]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "price": {"input_per_mtok": 1, "output_per_mtok": 2},
     "probe": {"interval_ms": 1000, "timeout_ms": 500}},
    {"name": "fallback", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[fallback]}",
     "api_key_env": "SIM_KEY", "model": "claude-haiku-4-5", "probe": {"interval_ms": 1000}},
    {"name": "hangy", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[hangy]}/v1",
     "api_key_env": "SIM_KEY", "model": "m", "probe": {"enabled": false}},
    {"name": "cutter", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[cutter]}/v1",
     "api_key_env": "SIM_KEY", "model": "m", "probe": {"enabled": false}},
    {"name": "w3", "kind": "gemini", "base_url": "http://127.0.0.1:${SIM_PORT[w3]}/v1beta",
     "api_key_env": "SIM_KEY", "model": "gemini-2.5-flash", "weight": $1, "probe": {"enabled": false}},
    {"name": "w1", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[w1]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "weight": 1, "probe": {"enabled": false}}
  ],
  "routes": [
    {"name": "chat", "targets": ["primary", "fallback"], "strategy": "priority"},
    {"name": "hedged", "targets": ["hangy", "fallback"], "strategy": "priority", "hedge_after_ms": 300},
    {"name": "stuck", "targets": ["hangy"], "deadline_ms": 1000},
    {"name": "cut", "targets": ["cutter"], "max_attempts": 1},
    {"name": "split", "targets": ["w3", "w1"], "strategy": "weighted"}
  ],
  "router": {"max_attempts": 3, "backoff_base_ms": 10, "backoff_cap_ms": 50, "deadline_ms": 10000,
             "breaker_failures": 5, "breaker_cooldown_ms": 1000},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"}
}
JSON
}
write_config 3
start_serve "$TMP/sb.json" || exit 1

field() { echo "$1" | json_get "$2"; }

# ---- outage: refused, then 503 --------------------------------------------------------------
sim_behavior primary '{"outage":"refuse"}'
r=$(load --n 250 --c 4)
check "outage (refused): 250 calls, no failure seen by clients" test "$(field "$r" 'j["failed"]')" = 0
check "outage (refused): traffic on the fallback" test "$(field "$r" 'j["by_target"].get("fallback",0) >= 245')" = True
sim_behavior primary '{"outage":"none","error_rate":1,"error_statuses":[503]}'
r=$(load --n 250 --c 4 --stream)
check "outage (503s): 250 streamed calls, no failure seen by clients" test "$(field "$r" 'j["failed"]')" = 0
check "outage: primary's breaker is open" test "$(metric 'switchboard_breaker_state{target="primary"}')" = 2
sim_behavior primary '{"reset":true}'
breaker_closed() { [[ $(metric 'switchboard_breaker_state{target="primary"}') == 0 ]]; }
# Only a real trial call closes it (a passing model-list probe proves liveness only).
trial_closes() { load --n 1 --c 1 >/dev/null; breaker_closed; }
check "recovery: a trial call closes the breaker again" eventually 10 trial_closes
r=$(load --n 20 --c 1)
check "recovery: traffic is back on the primary" test "$(field "$r" 'j["by_target"].get("primary",0)')" = 20

# ---- 429 with Retry-After -------------------------------------------------------------------
# Retry-After 8 s: room for a loaded machine to start the 2 s load well inside it
sim_behavior primary '{"rate_limit":{"status":429,"retry_after_s":8},"spare_models":true}' # probes pass
curl -sf -X POST "http://127.0.0.1:${SIM_CTL[primary]}/_sim/reset-stats" >/dev/null
r=$(load --n 1 --c 1)
t429=$(date +%s.%N) # the 429 reached the router before this answer did
check "429: the first call reached the target once" test "$(sim_requests primary /v1/chat/completions)" = 1
check "429: the client still gets an answer (fallback)" test "$(field "$r" 'j["by_target"].get("fallback",0)')" = 1
curl -sf -X POST "http://127.0.0.1:${SIM_CTL[primary]}/_sim/reset-stats" >/dev/null
r=$(load --n 2000 --c 2 --duration 2)
check "429: clients still get answers during the cooldown" test "$(field "$r" 'j["failed"]')" = 0
check "429: no request reaches the target before its Retry-After" \
  test "$(sim_requests primary /v1/chat/completions)" = 0
sim_behavior primary '{"reset":true}'
sleep "$(python3 -c "import time; print(max(0, 8.3 - (time.time() - $t429)))")"
r=$(load --n 5 --c 1)
check "429: after Retry-After the target gets traffic again" test "$(field "$r" 'j["by_target"].get("primary",0)')" = 5

# ---- hang: hedge, deadline ------------------------------------------------------------------
s0=$(date +%s%N)
r=$(load --n 1 --c 1 --model hedged)
s1=$(date +%s%N)
check "hang: the hedge answers" test "$(field "$r" 'j["by_target"].get("fallback",0)')" = 1
check "hang: within the budget (< 3 s)" test $(( (s1 - s0) / 1000000 )) -lt 3000
r=$(load --n 1 --c 1 --model stuck)
check "hang with no other target: 504 at the deadline" test "$(field "$r" 'j["by_status"].get("504",0)')" = 1
h=$(metric 'switchboard_hedges_total{target="fallback"}')
check "hang: the hedge is counted" test "${h:-0}" -ge 1

# ---- stream cut after first byte -----------------------------------------------------------
r=$(load --n 1 --c 1 --model cut --stream)
check "cut stream: the client sees an error chunk" test "$(field "$r" 'j["error_chunks"]')" = 1
check "cut stream: no [DONE]" test "$(field "$r" 'j["failed"]')" = 1
tr=$(metric 'switchboard_truncated_streams_total{target="cutter"}')
check "cut stream: counted as truncated" test "${tr:-0}" -ge 1

# ---- weights, drain, pin, expiry ---------------------------------------------------------------
r=$(load --n 2000 --c 8 --model split)
check "weights 3:1: 2,000 calls all answered" test "$(field "$r" 'j["ok"]')" = 2000
check "weights 3:1: split 3:1 within 2%" \
  test "$(field "$r" 'abs(j["by_target"].get("w3",0) / 2000 - 0.75) < 0.02')" = True
admin POST /admin/targets/w3/drain >/dev/null
r=$(load --n 40 --c 4 --model split)
check "drain: takes effect at once" test "$(field "$r" 'j["by_target"].get("w1",0)')" = 40
admin POST /admin/targets/w3/clear >/dev/null
admin POST /admin/targets/w1/pin >/dev/null
r=$(load --n 40 --c 4 --model split)
check "pin: takes effect at once" test "$(field "$r" 'j["by_target"].get("w1",0)')" = 40
admin POST /admin/targets/w1/clear >/dev/null
admin POST /admin/targets/w3/weight '{"weight":0,"expires_in_s":2}' >/dev/null
r=$(load --n 40 --c 4 --model split)
check "weight 0 with expiry: no traffic while it holds" test "$(field "$r" 'j["by_target"].get("w1",0)')" = 40
sleep 2.4
r=$(load --n 40 --c 4 --model split)
check "weight override lapses on time" test "$(field "$r" 'j["by_target"].get("w3",0) >= 25')" = True

# ---- route --explain: local dry run and live state ------------------------------------------
"$SB" route --explain -c "$TMP/sb.json" -m split --prompt-tokens 10 >"$TMP/explain.out" 2>&1
check "route --explain: names the route and the strategy" grep -q 'route: split (by model name)' "$TMP/explain.out"
check "route --explain: shows the pick" grep -q '^pick: w' "$TMP/explain.out"
admin POST /admin/targets/w3/drain >/dev/null
"$SB" route --explain -c "$TMP/sb.json" -m split --server "http://127.0.0.1:$SB_PORT" >"$TMP/explain2.out" 2>&1
check "route --explain --server: shows live filters (drained)" grep -qE 'w3 +drained by operator' "$TMP/explain2.out"
check "route --explain --server: picks the other target" grep -q '^pick: w1' "$TMP/explain2.out"
admin POST /admin/targets/w3/clear >/dev/null

# ---- SIGHUP reload ----------------------------------------------------------------------------
write_config 0
kill -HUP "$SB_PID"
weight_zero() { [[ $(metric 'switchboard_weight{target="w3"}') == 0 ]]; }
check "SIGHUP: a valid file is applied" eventually 5 weight_zero
r=$(load --n 20 --c 2 --model split)
check "SIGHUP: new weights route traffic" test "$(field "$r" 'j["by_target"].get("w1",0)')" = 20
echo '{"providers": [' > "$TMP/sb.json"
kill -HUP "$SB_PID"
sleep 0.5
check "SIGHUP: an invalid file is rejected and logged" grep -q "rejected" "$TMP/serve.err"
r=$(load --n 10 --c 2 --model chat)
check "SIGHUP: the old config keeps serving" test "$(field "$r" 'j["ok"]')" = 10
check "serve is still running" kill -0 "$SB_PID"
kill -TERM "$SB_PID"
stopped() { ! kill -0 "$SB_PID" 2>/dev/null; }
check "SIGTERM: serve stops" eventually 10 stopped
wait "$SB_PID" 2>/dev/null; rc=$?
check "SIGTERM: exit status 0" test "$rc" = 0
check "no API key in serve's output" bash -c "! grep -qF '$SIM_KEY' '$TMP/serve.out' '$TMP/serve.err'"
finish
