#!/usr/bin/env bash
# Outage drills: switchboard serve in front of simulators in the messy failures real outages
# look like (issue 10, "Breakers that tell the truth" and "What clients get"):
#  - chat hangs while /models answers: a passing list probe never closes the breaker;
#  - a failed probe while open does not push recovery back: the breaker half-opens on time;
#  - a hang behind a hedge is ejected by slow strikes, and then costs no hedge delay;
#  - a stream that stalls after its first bytes is cut by the idle timeout with an error chunk;
#  - a probe answered 429 is no failure, and no probe goes out during the Retry-After;
#  - every target cooling after a 429: 429 with Retry-After, or a wait within queue_ms;
#  - every breaker open: 503 with Retry-After until the earliest half-open.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-drills ADMIN_TOKEN=admin-token-for-drills
for s in live dead hangy staller limited lone shut; do
  start_sim "$s" --key "$SIM_KEY" --token-rate 0 || exit 1
done

target() { # target NAME [extra JSON fields]
  printf '{"name": "%s", "kind": "openai", "base_url": "http://127.0.0.1:%s/v1", "api_key_env": "SIM_KEY", "model": "m"%s}' \
    "$1" "${SIM_PORT[$1]}" "${2:+, $2}"
}
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    $(target live '"probe": {"enabled": false}'),
    $(target dead '"first_byte_timeout_ms": 300, "probe": {"interval_ms": 1000, "timeout_ms": 500}'),
    $(target hangy '"probe": {"enabled": false}'),
    $(target staller '"stream_idle_timeout_ms": 500, "probe": {"enabled": false}'),
    $(target limited '"probe": {"interval_ms": 1000, "timeout_ms": 500}'),
    $(target lone '"probe": {"enabled": false}'),
    $(target shut '"probe": {"enabled": false}')
  ],
  "routes": [
    {"name": "chat", "targets": ["dead", "live"], "strategy": "priority"},
    {"name": "hedged", "targets": ["hangy", "live"], "strategy": "priority", "hedge_after_ms": 200},
    {"name": "stall", "targets": ["staller"], "max_attempts": 1},
    {"name": "probed", "targets": ["limited", "live"], "strategy": "priority"},
    {"name": "solo", "targets": ["lone"], "max_attempts": 1},
    {"name": "queued", "targets": ["lone"], "max_attempts": 2, "queue_ms": 5000},
    {"name": "closed", "targets": ["shut"], "max_attempts": 1}
  ],
  "router": {"max_attempts": 3, "backoff_base_ms": 10, "backoff_cap_ms": 50, "deadline_ms": 10000,
             "breaker_failures": 3, "breaker_cooldown_ms": 3000, "breaker_slow_strikes": 3},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$TMP/ledger.db"},
  "guard": {"enabled": false}
}
JSON
start_serve "$TMP/sb.json" || exit 1

field() { echo "$1" | json_get "$2"; }
state() { metric "switchboard_breaker_state{target=\"$1\"}"; }
reason() { admin GET "/admin/targets/$1" | json_get 'j["breaker_reason"]'; }
# post MODEL [stream]: one chat call; prints "STATUS RETRY_AFTER" and keeps the body in $TMP/body
post() {
  local stream=false
  [[ ${2:-} == stream ]] && stream=true
  curl -s --max-time 20 -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' \
    -H 'Content-Type: application/json' \
    --data "{\"model\":\"$1\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions" > "$TMP/status"
  local ra
  ra=$(awk 'tolower($1) == "retry-after:" { gsub("\r", "", $2); print $2 }' "$TMP/head")
  echo "$(cat "$TMP/status") ${ra:--}"
}

# ---- chat hangs while /models answers: probes never close the breaker ---------------------
sim_behavior dead '{"hang":true,"spare_models":true}'
for _ in 1 2 3 4; do post chat >/dev/null; done
check "chat-only hang: the breaker opens" test "$(state dead)" = 2
closed_seen=0 bg=()
for _ in $(seq 40); do # 8 s: two cooldowns with passing probes and trial calls that hang
  [[ $(state dead) == 0 ]] && closed_seen=1
  post chat >/dev/null &
  bg+=($!)
  sleep 0.2
done
wait "${bg[@]}" 
check "chat-only hang: passing /models probes never close it" test "$closed_seen" = 0
r=$(post chat)
check "chat-only hang: clients are still served by the fallback ($r)" test "$r" = "200 -"

# ---- a failed probe while open does not push recovery back --------------------------------
sim_behavior dead '{"reset":true}'
sim_behavior dead '{"outage":"503"}' # probes fail every second from now on
for _ in 1 2 3 4; do post chat >/dev/null; done
check "failing probes: the breaker is open ($(state dead))" test "$(state dead)" = 2
sleep 2.5 # probes fail meanwhile; each used to restart the 3 s cooldown
sim_behavior dead '{"reset":true}' # healthy again: the cooldown runs out on time
healed() { post chat >/dev/null; [[ $(state dead) == 0 ]]; }
check "failing probes: recovery within the cooldown, not pushed back by probes" eventually 8 healed

# ---- a hang behind a hedge is ejected --------------------------------------------------------
sim_behavior hangy '{"hang":true}'
for _ in 1 2 3; do post hedged >/dev/null; done
opened() { [[ $(state hangy) == 2 ]]; }
check "hedge: three slow strikes open the hung target's breaker" eventually 3 opened
check "hedge: the reason says slow" contains <(reason hangy) "slow: no first byte"
t0=$(date +%s%N)
r=$(post hedged)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "hedge: the next call is answered without the hedge delay (${ms} ms)" test "$r" = "200 -" -a "$ms" -lt 200

# ---- a stream that stalls ----------------------------------------------------------------------
sim_behavior staller '{"stall_after_tokens":2}'
r=$(post stall stream)
check "stall: the stream starts (200)" test "${r%% *}" = 200
check "stall: it ends with an error chunk that says so" contains "$TMP/body" "stalled"
truncated_once() { [[ $(metric 'switchboard_truncated_streams_total{target="staller"}') == 1 ]]; }
check "stall: counted as truncated" eventually 3 truncated_once

# ---- a probe answered 429 ------------------------------------------------------------------------
sim_behavior limited '{"rate_limit":{"status":429,"retry_after_s":4},"models_only":true}'
limited_resting() { admin GET /admin/targets/limited | json_get 'j["rate_limited"]' | grep -q True; }
eventually 5 limited_resting # a probe met the 429
n1=$(sim_requests limited /v1/models)
sleep 2
n2=$(sim_requests limited /v1/models)
check "429 probe: the breaker stays closed" test "$(state limited)" = 0
check "429 probe: no probe during its Retry-After ($n1 -> $n2)" test "$n1" = "$n2"
sim_behavior limited '{"reset":true}'

# ---- every target cooling after 429s ---------------------------------------------------------
sim_behavior lone '{"rate_limit":{"status":429,"retry_after_s":4}}'
r=$(post solo)
check "429: the call that met it gets 429 with Retry-After ($r)" test "${r%% *}" = 429 -a "${r##* }" != -
r=$(post solo)
check "429: the next client gets 429 with the time left, not 503 ($r)" test "${r%% *}" = 429 -a "${r##* }" -le 4
check "429: the body is OpenAI-shaped" contains "$TMP/body" '"code":"rate_limit_exceeded"'
sim_behavior lone '{"reset":true}' # serves again, but switchboard lets it rest until then
t0=$(date +%s)
r=$(post queued)
waited=$(( $(date +%s) - t0 ))
check "429: a route with queue_ms waits for the target and serves ($r after ${waited} s)" test "${r%% *}" = 200 -a "$waited" -ge 1

# ---- every breaker open --------------------------------------------------------------------------
sim_behavior shut '{"outage":"503"}'
for _ in 1 2 3; do post closed >/dev/null; done
r=$(post closed)
check "open: 503 with Retry-After until half-open ($r)" test "${r%% *}" = 503 -a "${r##* }" != - -a "${r##* }" -le 3
check "open: the message says why" contains "$TMP/body" "breaker open"

finish
