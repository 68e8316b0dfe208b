#!/usr/bin/env bash
# The quality guard end to end: a route split between two targets, the baseline target rated
# well and the other badly through POST /v1/feedback. Within a few guard rounds the failing
# target's weight is overridden to 0 (user "quality-guard", with an expiry: audited in the
# ledger like an operator's), an event says why, traffic moves to the baseline target, and
# undo gives the weight back.
source "$(dirname "$0")/lib.sh"

export SB_TEST_ADMIN=admin-token-0123456789
ADMIN_TOKEN=$SB_TEST_ADMIN
start_sim good --no-auth --token-rate 0 || exit 1
start_sim poor --no-auth --token-rate 0 || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "good", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[good]}/v1", "model": "m-good"},
    {"name": "poor", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[poor]}/v1", "model": "m-poor"}
  ],
  "routes": [ {"name": "mixed", "targets": ["good", "poor"], "baseline": "good",
               "quality_guard": {"enabled": true, "metric": "satisfaction", "margin_pct": 5,
                                 "min_volume": 3, "shift": true, "shift_ms": 120000}} ],
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger.db", "batch_ms": 50},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "SB_TEST_ADMIN"}
}
JSON
check "check accepts routes[].quality_guard" bash -c "\"$SB\" check -c \"$TMP/sb.json\" >/dev/null 2>&1"
start_serve "$TMP/sb.json" || exit 1
GW=http://127.0.0.1:$SB_PORT

MSG='"messages":[{"role":"user","content":"hello"}]'
call() { # call ID: prints the target that answered
  curl -s --max-time 30 -D - -o /dev/null -H 'Content-Type: application/json' -H "x-request-id: $1" \
    --data-binary "{\"model\":\"mixed\",$MSG}" "$GW/v1/chat/completions" |
    awk -F': ' 'tolower($1)=="x-switchboard-target" { sub(/\r$/, "", $2); print $2 }'
}
rate() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
  --data-binary "{\"request_id\":\"$1\",\"score\":$2}" "$GW/v1/feedback"; }

good=0 poor=0 i=0
while (( (good < 4 || poor < 4) && i < 60 )); do
  i=$((i + 1))
  t=$(call "c$i")
  if [[ $t == good ]]; then good=$((good + 1)); rate "c$i" 1 >/dev/null
  elif [[ $t == poor ]]; then poor=$((poor + 1)); rate "c$i" -1 >/dev/null; fi
done
check "both targets served and were rated (good $good, poor $poor)" test "$good" -ge 4 -a "$poor" -ge 4

target_py() { admin GET /admin/state | python3 -c "
import json,sys
t={x['name']: x for x in json.load(sys.stdin)['targets']}
sys.exit(0 if ($1) else 1)"; }
check "the guard shifts weight away from the failing target" \
  eventually 20 target_py "t['poor']['weight']==0 and t['poor']['override_expires_in_ms']>0"
check "the baseline target keeps its weight" target_py "t['good']['weight']==1"
events_have() { admin GET /admin/state | matches "$1"; }
check "an event says why (satisfaction vs the baseline)" \
  events_have 'quality guard: route mixed: poor: satisfaction 0.0 vs baseline good 100.0'
audit_row() { test "$(sqlite3 -readonly "$TMP/ledger.db" "SELECT COUNT(*) FROM events WHERE kind='operator' AND text LIKE '%quality-guard%' AND target='poor'")" -ge 1; }
check "the override is audited like an operator's (user quality-guard)" eventually 5 audit_row
quality_row() { test "$(sqlite3 -readonly "$TMP/ledger.db" "SELECT COUNT(*) FROM events WHERE kind='quality' AND target='poor'")" -ge 1; }
check "the guard's event is in the ledger" eventually 5 quality_row
after=""
for j in 1 2 3 4 5 6; do after+="$(call "d$j") "; done
check "traffic goes to the baseline target now ($after)" test "$after" = "good good good good good good "
admin POST /admin/undo >/dev/null
check "undo gives the weight back" target_py "t['poor']['weight']==1"
check "the guard does not override again before its override would have expired" \
  bash -c "sleep 6; $(declare -f admin target_py); ADMIN_TOKEN=$ADMIN_TOKEN SB_PORT=$SB_PORT target_py \"t['poor']['weight']==1\""
finish
