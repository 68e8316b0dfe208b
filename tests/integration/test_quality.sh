#!/usr/bin/env bash
# Quality end to end: `switchboard serve` in front of two simulators, one route each. Calls
# answered by both targets are rated through POST /v1/feedback (thumbs, -1..1 and 0..5
# stars); unknown, duplicate, malformed and late ratings get their 4xx; streams the client
# closes early count as abandoned for the target that served them; per-target satisfaction,
# abandonment, completion and cost per satisfied answer show in /admin/state, /metrics and
# `switchboard report quality`; the ledger rows carry the user (hashed) and finish reason.
# With client keys, a key may rate only its own calls.
source "$(dirname "$0")/lib.sh"

export SB_TEST_ADMIN=admin-token-0123456789
ADMIN_TOKEN=$SB_TEST_ADMIN
start_sim good --no-auth --token-rate 0 || exit 1
start_sim fast --no-auth --token-rate 0 || exit 1

write_config() { # write_config FILE EXTRA_JSON
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "good", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[good]}/v1", "model": "m-good",
     "price": {"input_per_mtok": 10000, "output_per_mtok": 10000}},
    {"name": "fast", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[fast]}/v1", "model": "m-fast",
     "price": {"input_per_mtok": 1000, "output_per_mtok": 1000}}
  ],
  "routes": [ {"name": "careful", "targets": ["good"]},
              {"name": "cheap", "targets": ["fast"], "baseline": "good"} ],
  "guard": {"enabled": false},
  $2
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "SB_TEST_ADMIN"}
}
JSON
}
write_config "$TMP/sb.json" "\"ledger\": {\"path\": \"$TMP/ledger.db\", \"batch_ms\": 50,
  \"feedback_window_ms\": 3000, \"quality_min_volume\": 3, \"hash_users\": true,
  \"quality_baseline\": \"$(date -u -d yesterday +%F)\"},"
check "check accepts the quality settings" bash -c "\"$SB\" check -c \"$TMP/sb.json\" >/dev/null 2>&1"
start_serve "$TMP/sb.json" || exit 1
GW=http://127.0.0.1:$SB_PORT
sql() { sqlite3 -readonly "$TMP/ledger.db" "$1"; }

MSG='"messages":[{"role":"user","content":"Tell me about switchboards"}]'
chat() { # chat ID MODEL: a call with x-request-id ID; status -> $TMP/ID.code
  curl -s --max-time 30 -o "$TMP/$1.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "x-request-id: $1" --data-binary "{\"model\":\"$2\",\"user\":\"alice@example.com\",$MSG}" \
    "$GW/v1/chat/completions" >"$TMP/$1.code"
}
rate() { # rate NAME JSON [curl args]: POST /v1/feedback; status -> $TMP/NAME.fcode, body -> .fbody
  local n=$1 body=$2; shift 2
  curl -s --max-time 10 -o "$TMP/$n.fbody" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$body" "$@" "$GW/v1/feedback" >"$TMP/$n.fcode"
}
all_codes() { # all_codes EXT CODE NAMES...: every $TMP/NAME.EXT holds CODE
  local ext=$1 want=$2; shift 2
  for n in "$@"; do [[ $(cat "$TMP/$n.$ext") == "$want" ]] || return 1; done
}
fcode() { cat "$TMP/$1.fcode"; }
fbody_py() { python3 -c "import json,sys; j=json.load(open('$TMP/$1.fbody')); sys.exit(0 if ($2) else 1)"; }

# ---- calls on both targets, rated ---------------------------------------------------------
for i in 1 2 3 4; do chat "g$i" careful; chat "f$i" cheap; done
check "8 calls answered" all_codes code 200 g1 g2 g3 g4 f1 f2 f3 f4
rate g1 '{"request_id":"g1","label":"thumbs_up"}'
check "feedback: 201" test "$(fcode g1)" = 201
check "feedback: names the target, route and model of the call" fbody_py g1 \
  "j['ok'] and j['target']=='good' and j['route']=='careful' and j['model']=='m-good' and j['score']==1"
rate g2 '{"request_id":"g2","score":1,"comment":"great"}'
rate g3 '{"request_id":"g3","score":4,"scale":5}'
check "feedback: 0..5 stars normalised (4 -> 0.6)" fbody_py g3 "abs(j['score']-0.6)<1e-9"
rate f1 '{"request_id":"f1","label":"thumbs_down","comment":"too short"}'
rate f2 '{"request_id":"f2","score":1,"scale":5}'
rate f3 '{"request_id":"f3","score":-0.5}'
check "every rating accepted" all_codes fcode 201 g1 g2 g3 f1 f2 f3

rate dup '{"request_id":"g1","score":-1}'
check "duplicate rating: 409 already_rated" test "$(fcode dup)" = 409
check "duplicate rating: OpenAI-shaped error" fbody_py dup \
  "j['error']['code']=='already_rated' and 'g1' in j['error']['message']"
rate unknown '{"request_id":"no-such-call","score":1}'
check "unknown request id: 404 unknown_request_id" fbody_py unknown \
  "j['error']['code']=='unknown_request_id'"
check "unknown request id: status 404" test "$(fcode unknown)" = 404
rate noscore '{"request_id":"g4"}'
check "no score and no thumbs label: 400" test "$(fcode noscore)" = 400
rate range '{"request_id":"g4","score":7}'
check "score out of range: 400 naming the field" fbody_py range "'score' in j['error']['message']"
rate badjson 'not json'
check "malformed body: 400" test "$(fcode badjson)" = 400
getfb=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$GW/v1/feedback")
check "GET /v1/feedback: 405" test "$getfb" = 405
chat late careful
sleep 3.3
rate late '{"request_id":"late","score":1}'
check "after ledger.feedback_window_ms: 410 feedback_window_closed" fbody_py late \
  "j['error']['code']=='feedback_window_closed'"

# ---- abandonment: streams the client closes early ----------------------------------------
sim_behavior fast '{"token_rate":5}'
for i in 1 2; do
  curl -s -N --max-time 1 -H 'Content-Type: application/json' -H "x-request-id: gone$i" \
    --data-binary "{\"model\":\"cheap\",\"stream\":true,$MSG}" "$GW/v1/chat/completions" >/dev/null
done
sim_behavior fast '{"reset":true}'
abandoned_rows() { test "$(sql "SELECT COUNT(*) FROM calls WHERE status=499 AND target='fast'")" = 2; }
check "early-closed streams: two 499 rows for target fast" eventually 10 abandoned_rows
check "no abandoned call is put on the other target" \
  test "$(sql "SELECT COUNT(*) FROM calls WHERE status=499 AND target<>'fast'")" = 0

# ---- the ledger ------------------------------------------------------------------------------
check "ledger: feedback rows carry the call's target, route, model and hashed user" \
  test "$(sql "SELECT target||'|'||route||'|'||model||'|'||substr(user,1,2) FROM feedback WHERE request_id='f1'")" = "fast|cheap|m-fast|u-"
check "ledger: the user is hashed (ledger.hash_users), never stored as sent" \
  test "$(sql "SELECT COUNT(*) FROM calls WHERE user LIKE '%alice%'")" = 0
check "ledger: answers record their finish reason" \
  test "$(sql "SELECT finish FROM calls WHERE request_id='g1'")" = stop
check "ledger: a label and comment are kept" \
  test "$(sql "SELECT label||'|'||comment FROM feedback WHERE request_id='f1'")" = "thumbs_down|too short"

# ---- /admin/state ------------------------------------------------------------------------------
state_py() { admin GET /admin/state | python3 -c "
import json,sys
j=json.load(sys.stdin); w=j['quality']['windows']['1h']
t={r['name']: r for r in w['targets']}; r={x['name']: x for x in w['routes']}
sys.exit(0 if ($1) else 1)"; }
# The figures are recomputed in the background every 5 s: wait for a round that saw it all
# (8 calls, the late one and the 2 abandoned streams; 6 ratings).
check "/admin/state: the background refresh sees every call and rating" eventually 12 state_py \
  "w['total']['calls']==11 and w['total']['feedback']==6"
check "/admin/state: satisfaction per target (good 0.87, fast -0.67) with counts" state_py \
  "t['good']['feedback']==3 and abs(t['good']['satisfaction']-(2.6/3))<1e-9 \
   and t['fast']['feedback']==3 and abs(t['fast']['satisfaction']+2.1/3)<1e-9"
check "/admin/state: negative share and abandonment per target" state_py \
  "abs(t['fast']['negative_share']-1)<1e-9 and t['fast']['abandoned']==2 \
   and abs(t['fast']['abandonment']-2/6)<1e-9 and t['good']['abandoned']==0"
check "/admin/state: completion and cost per satisfied answer" state_py \
  "t['good']['completion']==1 and t['fast']['satisfied']==1 \
   and abs(t['fast']['cost_per_satisfied_usd']-t['fast']['spend_usd'])<1e-12 \
   and t['fast']['cost_per_satisfied_usd']>t['fast']['cost_per_call_usd'] \
   and abs(t['good']['cost_per_satisfied_usd']-t['good']['cost_per_call_usd'])<1e-12"
check "/admin/state: per route, with savings against the baseline" state_py \
  "r['cheap']['savings_usd']>0 and r['careful']['calls']==5 and w['total']['feedback']==6"
check "/admin/state: since the baseline day (ledger.quality_baseline) too" state_py \
  "j['quality']['baseline']=='$(date -u -d yesterday +%F)' \
   and j['quality']['windows']['baseline']['total']['calls']==j['quality']['windows']['24h']['total']['calls']"
check "/admin/state: the 24h window too" \
  bash -c "curl -s -H 'Authorization: Bearer $ADMIN_TOKEN' $GW/admin/state | python3 -c \"import json,sys; j=json.load(sys.stdin); sys.exit(0 if j['quality']['windows']['24h']['total']['calls']>=11 else 1)\""

# ---- /metrics ------------------------------------------------------------------------------------
metric_ok() { [[ -n $(metric "$1") ]] && python3 -c "import sys; sys.exit(0 if ($(metric "$1") $2) else 1)"; }
check "/metrics: satisfaction per target" \
  metric_ok 'switchboard_quality_satisfaction{by="target",name="fast",window="1h"}' "< 0"
check "/metrics: abandonment ratio per target" \
  metric_ok 'switchboard_quality_abandonment_ratio{by="target",name="fast",window="1h"}' "> 0.3"
check "/metrics: negative feedback per target" \
  metric_ok 'switchboard_quality_negative_feedback{by="target",name="fast",window="1h"}' "== 3"
check "/metrics: the baseline window" \
  metric_ok 'switchboard_quality_calls{by="target",name="good",window="baseline"}' "== 5"
check "/metrics: cost per satisfied answer per route" \
  metric_ok 'switchboard_quality_cost_per_satisfied_usd{by="route",name="careful",window="1h"}' "> 0"

# ---- switchboard report quality ------------------------------------------------------------------
"$SB" report quality -c "$TMP/sb.json" --since 1h --format json >"$TMP/rq.json" 2>"$TMP/rq.err"
check "report quality: exit 0" test $? = 0
check "report quality: per target, as in /admin/state" python3 -c "
import json; j=json.load(open('$TMP/rq.json')); g={x['target']: x for x in j['groups']}
assert g['fast']['abandoned']==2 and g['fast']['feedback']==3 and g['good']['satisfaction']>0.8"
"$SB" report quality -c "$TMP/sb.json" --by user >"$TMP/rq.txt"
check "report quality --by user: hashed user ids" grep -q '^u-' "$TMP/rq.txt"
"$SB" report quality -c "$TMP/sb.json" --by route --min-volume 100 --format csv >"$TMP/rq.csv"
check "report quality: no satisfaction figure under the minimum volume" \
  python3 -c "import csv; r=list(csv.DictReader(open('$TMP/rq.csv'))); assert all(x['satisfaction']=='' for x in r)"
"$SB" report quality -c "$TMP/sb.json" --by day >/dev/null 2>"$TMP/rqbad.err"
check "report quality --by day: refused" contains "$TMP/rqbad.err" "user or client"

# ---- the simulator's persona knob: a quality drop ------------------------------------------------
sim_behavior good '{"persona":"terse"}'
chat terse1 careful
check "persona terse: a few words, finish stop" python3 -c "
import json; j=json.load(open('$TMP/terse1.body')); c=j['choices'][0]
assert len(c['message']['content'].split()) <= 4 and c['finish_reason']=='stop'"
sim_behavior good '{"persona":"truncated"}'
chat trunc1 careful
chat trunc2 careful
sim_behavior good '{"reset":true}'
check "persona truncated: finish length through the gateway" python3 -c "
import json; j=json.load(open('$TMP/trunc1.body')); assert j['choices'][0]['finish_reason']=='length'"
finish_rows() { test "$(sql "SELECT COUNT(*) FROM calls WHERE finish='length' AND target='good'")" = 2; }
check "ledger: truncated answers recorded with finish length" eventually 5 finish_rows
"$SB" report quality -c "$TMP/sb.json" --since 1h --format json >"$TMP/rq2.json"
check "report quality: the truncated answers lower good's completion" python3 -c "
import json; g={x['target']: x for x in json.load(open('$TMP/rq2.json'))['groups']}['good']
assert g['length']==2 and abs(g['completion']-6/8)<1e-9, g"

# ---- client keys: a key rates only its own calls ------------------------------------------------
kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
KEY_A=sbk-alpha-0123456789abcdef0123456789
KEY_B=sbk-bravo-0123456789abcdef0123456789
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
write_config "$TMP/keys.json" "\"ledger\": {\"path\": \"$TMP/keys.db\", \"batch_ms\": 50},
  \"clients\": [{\"name\": \"alpha\", \"key_sha256\": \"$(sha $KEY_A)\"},
                {\"name\": \"bravo\", \"key_sha256\": \"$(sha $KEY_B)\", \"self_tag\": true}],"
start_serve "$TMP/keys.json" || exit 1
GW=http://127.0.0.1:$SB_PORT
curl -s -o /dev/null --max-time 30 -H "Authorization: Bearer $KEY_A" -H 'x-request-id: ka1' \
  -H 'Content-Type: application/json' --data-binary "{\"model\":\"careful\",$MSG}" "$GW/v1/chat/completions"
rate nokey '{"request_id":"ka1","score":1}'
check "keys on: feedback without a key: 401" test "$(fcode nokey)" = 401
rate other '{"request_id":"ka1","score":-1}' -H "Authorization: Bearer $KEY_B"
check "keys on: another key's call: 403 not_your_request" fbody_py other \
  "j['error']['code']=='not_your_request'"
rate own '{"request_id":"ka1","score":1}' -H "Authorization: Bearer $KEY_A"
check "keys on: the key's own call: 201" test "$(fcode own)" = 201
rated_by() { test "$(sqlite3 -readonly "$TMP/keys.db" "SELECT rater||'|'||client FROM feedback WHERE request_id='ka1'")" = "alpha|alpha"; }
check "keys on: the ledger names who rated and whose call it was" eventually 5 rated_by
keycall() { # keycall KEY ID [curl args]: a call with the key, x-request-id ID
  local k=$1 id=$2; shift 2
  curl -s -o /dev/null --max-time 30 -H "Authorization: Bearer $k" -H "x-request-id: $id" \
    -H 'Content-Type: application/json' --data-binary "{\"model\":\"careful\",$MSG}" "$@" \
    "$GW/v1/chat/completions"
}
keycall "$KEY_A" ka2 -H 'x-switchboard-user: mallory'
keycall "$KEY_B" kb1 -H 'x-switchboard-user: ben'
user_of() { sqlite3 -readonly "$TMP/keys.db" "SELECT IFNULL(user,'NULL') FROM calls WHERE request_id='$1'"; }
user_is() { test "$(user_of "$1")" = "$2"; }
check "keys on: x-switchboard-user is ignored for a key without self_tag" eventually 5 user_is ka2 NULL
check "keys on: x-switchboard-user names the user for a self_tag key" eventually 5 user_is kb1 ben
finish
