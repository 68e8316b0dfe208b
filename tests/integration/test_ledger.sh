#!/usr/bin/env bash
# The spend ledger end to end: switchboard serve in front of simulators, the ledger read back
# with python3's sqlite3 module (an independent reader).
#  - a hard target budget: the target stops receiving calls at its cap, the fallback takes over;
#  - a clean stop writes every row; after a restart spend is rebuilt and the cap still holds;
#  - a global budget (added by SIGHUP): 429 naming the budget, with Retry-After;
#  - the runaway guard: a loop of identical prompts is throttled within the window, and with
#    action "cache" answered from the route's cache (no upstream call, cost 0);
#  - answers without usage are flagged with a NULL cost and an estimate, never $0;
#  - operator actions are recorded;
#  - `switchboard report` figures match an independent count over the ledger rows;
#  - kill -9 under load: the answered calls missing from the ledger stay within the batch
#    window (observed rate x 250 ms + calls in flight).
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-ledger ADMIN_TOKEN=admin-token-ledger
start_sim cheap --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim spare --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim nouse --key "$SIM_KEY" --token-rate 0 --omit-usage || exit 1
DB=$TMP/ledger.db
CAP=3 # target "cheap", USD per day

# write_config GUARD_ACTION BATCH_MS EXTRA_BUDGETS
write_config() {
  cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "cheap", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[cheap]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false},
     "price": {"input_per_mtok": 10000, "output_per_mtok": 20000}},
    {"name": "spare", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[spare]}",
     "api_key_env": "SIM_KEY", "model": "claude-haiku-4-5", "probe": {"enabled": false},
     "price": {"input_per_mtok": 30000, "output_per_mtok": 60000}},
    {"name": "nouse", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[nouse]}/v1",
     "api_key_env": "SIM_KEY", "model": "m", "probe": {"enabled": false},
     "price": {"input_per_mtok": 10000, "output_per_mtok": 20000}},
    {"name": "premium", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[cheap]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o", "probe": {"enabled": false},
     "price": {"input_per_mtok": 100000, "output_per_mtok": 200000}}
  ],
  "routes": [
    {"name": "chat", "targets": ["cheap", "spare"], "strategy": "priority", "baseline": "premium"},
    {"name": "nousage", "targets": ["nouse"], "baseline": "premium"},
    {"name": "cached", "targets": ["spare"], "baseline": "premium",
     "cache": {"enabled": true, "ttl_ms": 60000}},
    {"name": "bulk", "targets": ["spare"]}
  ],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "ledger.db", "batch_ms": $2},
  "guard": {"identical_max": 5, "identical_window_ms": 10000, "action": "$1"},
  "budgets": [{"scope": "target", "name": "cheap", "daily_usd": $CAP}$3]
}
JSON
}

# sql QUERY: one value (or rows joined by '|') from the ledger, read like any other tool would.
sql() {
  python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for row in db.execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
PY
}

# chat NAME MODEL TAG PROMPT: one non-streamed call; $TMP/NAME.{hdr,body}; prints the status.
chat() {
  curl -s --max-time 10 -o "$TMP/$1.body" -D "$TMP/$1.hdr" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H "x-switchboard-tag: $3" \
    --data "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"$4\"}]}" \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions"
}
hdr() { awk -v k="$2" 'BEGIN{IGNORECASE=1} index(tolower($0), tolower(k)":")==1 {sub(/\r$/,""); sub(/^[^:]*: */,""); print}' "$TMP/$1.hdr"; }
field() { echo "$1" | json_get "$2"; }
rows() { sql "SELECT COUNT(*) FROM calls${1:+ WHERE $1}"; }
# serve wrote no sanitizer report (ASan/UBSan/TSan builds; LeakSanitizer runs at a clean exit)
serve_clean() { ! grep -qE 'Sanitizer|runtime error' "$TMP/serve.err"; }
stop_serve() { # clean stop, waits for the exit
  kill -TERM "$SB_PID"
  for _ in $(seq 100); do kill -0 "$SB_PID" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

write_config throttle 100 ""
start_serve "$TMP/sb.json" || exit 1

# ---- hard target budget ---------------------------------------------------------------------
r=$(load --n 30 --c 1 --model chat)
check "target budget: 30 calls, all answered" test "$(field "$r" 'j["ok"]')" = 30
check "target budget: the capped target took calls first" test "$(field "$r" 'j["by_target"].get("cheap",0) >= 1')" = True
check "target budget: the fallback took over at the cap" test "$(field "$r" 'j["by_target"].get("spare",0) >= 1')" = True
check "ledger: the 30 rows are written within a batch window or two" eventually 5 test "$(rows "route='chat'")" = 30
order=$(sql "SELECT group_concat(target, '') FROM (SELECT substr(target,1,1) AS target FROM calls WHERE route='chat' ORDER BY id)")
check "target budget: once the fallback answered, the capped target got nothing ($order)" \
  bash -c "[[ '$order' =~ ^c+s+$ ]]"
spent=$(sql "SELECT SUM(cost_usd) FROM calls WHERE target='cheap'")
before=$(sql "SELECT SUM(cost_usd) FROM calls WHERE target='cheap' AND id < (SELECT MAX(id) FROM calls WHERE target='cheap')")
check "target budget: it stopped at the cap (\$$before < \$$CAP <= \$$spent)" \
  python3 -c "import sys; sys.exit(0 if float('${before:-0}') < $CAP <= float('$spent') else 1)"
check "target budget: the cap is an event in the ledger" \
  test "$(sql "SELECT COUNT(*) FROM events WHERE kind='budget' AND text LIKE '%target:cheap%daily cap%reached%'")" = 1
check "calls row: tokens and cost recorded" \
  test "$(rows "target='cheap' AND tokens_in > 0 AND tokens_out > 0 AND cost_usd > 0 AND status = 200")" -ge 1
check "calls row: baseline cost from the route's baseline target" \
  test "$(rows "route='chat' AND baseline_cost_usd > cost_usd")" = 30

# ---- operator actions -------------------------------------------------------------------------
admin POST /admin/targets/spare/weight '{"weight":2}' >/dev/null
check "operator action: recorded in the ledger" \
  eventually 3 test "$(sql "SELECT COUNT(*) FROM events WHERE kind='operator' AND text LIKE '%spare%'")" -ge 1

# ---- the status the client saw is the ledger's ------------------------------------------------
check "unknown model: the client gets 404" test "$(chat nomodel no-such-model t-none hi)" = 404
check "unknown model: its ledger row says 404, not 400" \
  eventually 3 test "$(rows "route='' AND status=404")/$(rows "route='' AND status=400")" = 1/0

# ---- clean stop and restart -------------------------------------------------------------------
check "SIGTERM: serve stops" stop_serve
check "clean stop: every call is in the ledger" test "$(rows "route='chat'")" = 30
check "clean stop: no sanitizer report" serve_clean
start_serve "$TMP/sb.json" || exit 1
r=$(load --n 5 --c 1 --model chat)
check "restart: spend rebuilt, the target budget still holds" test "$(field "$r" 'j["by_target"].get("spare",0)')" = 5
grep -q 'spent today' "$TMP/serve.err"
check "restart: the rebuilt spend is logged" test $? = 0

# ---- global budget (SIGHUP) -------------------------------------------------------------------
eventually 3 test "$(rows)" = 35 >/dev/null
today=$(sql "SELECT SUM(IFNULL(cost_usd, IFNULL(est_cost_usd, 0)))
             FROM calls WHERE ts_ms >= (CAST(strftime('%s','now','start of day') AS INTEGER) * 1000)")
gcap=$(python3 -c "print('%.2f' % (float('$today') + 1.5))")
write_config throttle 100 ", {\"scope\": \"global\", \"daily_usd\": $gcap}"
kill -HUP "$SB_PID"
check "SIGHUP: the reload is recorded" \
  eventually 3 test "$(sql "SELECT COUNT(*) FROM events WHERE kind='config' AND text LIKE 'config reloaded%'")" -ge 1
sp0=$(sim_requests spare /v1/messages)
status=200 n=0
while [[ $status == 200 && $n -lt 40 ]]; do n=$((n + 1)); status=$(chat g chat "" "global $n"); done
check "global budget: calls answered until the cap, then 429 (after $n calls)" test "$status" = 429
check "global budget: the message names the budget" \
  grep -q "budget 'global' daily cap \$$gcap" "$TMP/g.body"
check "global budget: ...and when it resets" grep -q "resets at 00:00 UTC" "$TMP/g.body"
check "global budget: a rate_limit_error" \
  python3 -c "import json,sys; sys.exit(0 if json.load(open('$TMP/g.body'))['error']['type']=='rate_limit_error' else 1)"
check "global budget: Retry-After until midnight UTC" test "$(hdr g retry-after)" -gt 0
sp1=$(sim_requests spare /v1/messages)
for i in 1 2 3; do chat g2 bulk "" "more $i" >/dev/null; done
check "global budget: every route is refused now" test "$(chat g3 nousage "" x)" = 429
check "global budget: refused calls never reach a provider" test "$(sim_requests spare /v1/messages)" = "$sp1"
check "global budget: refused calls are rows with throttled=1, status 429" \
  eventually 3 test "$(rows "throttled=1 AND status=429 AND error='rate_limit'")" -ge 5
check "global budget: answered calls before the cap reached the provider" test "$sp1" -gt "$sp0"
check "metrics: budget refusals counted" test "$(metric switchboard_budget_refused_total)" -ge 5
check "metrics: the global budget at its cap (level 2)" test "$(metric 'switchboard_budget_level{budget="global"}')" = 2

# ---- runaway guard: throttle ----------------------------------------------------------------
write_config throttle 100 ""
kill -HUP "$SB_PID"
eventually 3 test "$(sql "SELECT COUNT(*) FROM events WHERE kind='config' AND text LIKE 'config reloaded%'")" -ge 2
codes=""
for i in $(seq 12); do codes+="$(chat loop bulk loop-tag "summarise the same thing") "; done
check "guard: identical prompts: 5 answered, then 429 ($codes)" \
  test "$codes" = "200 200 200 200 200 429 429 429 429 429 429 429 "
check "guard: the 429 says why" grep -q "runaway guard: tag 'loop-tag' sent this same prompt 12 times in 10 s (limit 5)" "$TMP/loop.body"
check "guard: Retry-After within the window" test "$(hdr loop retry-after)" -le 10
check "guard: one event for the storm" \
  eventually 3 test "$(sql "SELECT COUNT(*) FROM events WHERE kind='guard' AND text LIKE '%loop-tag%looping%'")" = 1
check "guard: throttled rows" eventually 3 test "$(rows "tag='loop-tag' AND throttled=1")" = 7
check "guard: another prompt from the same tag still passes" test "$(chat other bulk loop-tag "something else")" = 200
check "metrics: guard refusals counted" test "$(metric switchboard_guard_throttled_total)" = 7

# ---- runaway guard: cache -------------------------------------------------------------------
write_config cache 100 ""
kill -HUP "$SB_PID"
eventually 3 test "$(sql "SELECT COUNT(*) FROM events WHERE kind='config' AND text LIKE 'config reloaded%'")" -ge 3
s0=$(sim_requests spare /v1/messages)
codes="" targets=""
for i in $(seq 12); do
  codes+="$(chat c cached cache-tag "the same question") "
  targets+="$(hdr c x-switchboard-target) "
done
check "guard cache: every call answered ($codes)" \
  test "$codes" = "200 200 200 200 200 200 200 200 200 200 200 200 "
check "guard cache: the storm is answered from the cache ($targets)" \
  test "$targets" = "spare spare spare spare spare cache cache cache cache cache cache cache "
check "guard cache: only the first 5 reached the provider" test "$(( $(sim_requests spare /v1/messages) - s0 ))" = 5
check "guard cache: a cached answer costs nothing" test "$(hdr c x-switchboard-cost-usd)" = 0.000000
check "guard cache: the same answer" \
  python3 -c "import json,sys; a=json.load(open('$TMP/c.body')); sys.exit(0 if a['choices'][0]['message']['content'] else 1)"
check "guard cache: rows with cached=1, target cache, cost 0" \
  eventually 3 test "$(rows "tag='cache-tag' AND cached=1 AND target='cache' AND cost_usd=0 AND status=200")" = 7
check "guard cache: a cached answer saved its baseline cost" \
  test "$(rows "tag='cache-tag' AND cached=1 AND baseline_cost_usd > 0")" = 7
check "metrics: cached answers counted" test "$(metric switchboard_guard_cached_total)" = 7
check "metrics: routing saved money against the baseline" \
  python3 -c "import sys; sys.exit(0 if float('$(metric 'switchboard_savings_usd{window="day"}')') > 0 else 1)"

# ---- answers without usage ------------------------------------------------------------------
r=$(load --n 4 --c 1 --model nousage --tag nousage)
check "missing usage: answered" test "$(field "$r" 'j["ok"]')" = 4
check "missing usage: flagged, cost NULL (never \$0), estimate kept" \
  eventually 3 test "$(rows "tag='nousage' AND usage_missing=1 AND cost_usd IS NULL AND tokens_in IS NULL AND est_cost_usd > 0")" = 4

# ---- report figures against an independent count -------------------------------------------
eventually 3 test "$(sql "SELECT COUNT(*) FROM calls WHERE tag='nousage'")" = 4 >/dev/null
"$SB" report -c "$TMP/sb.json" --since 1h --by target --format json > "$TMP/rep.json" 2>"$TMP/rep.err"
check "report --format json: runs" test $? = 0
cat > "$TMP/verify.py" <<'PY'
import json, math, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rep = json.load(open(sys.argv[2]))
by = sys.argv[3]
col = {"target": "target", "route": "route", "tag": "tag"}[by]
rows = db.execute("SELECT %s, error, latency_us, tokens_in, tokens_out, cost_usd, est_cost_usd,"
                  " usage_missing, baseline_cost_usd, retries, hedges, throttled, cached"
                  " FROM calls WHERE ts_ms >= ?" % col, (rep_since := 0,)).fetchall()
groups = {}
for r in rows:
    key = r[0] if r[0] else "(none)"
    groups.setdefault(key, []).append(r)
def nearest(vals, q):
    if not vals: return 0.0
    vals = sorted(vals); k = max(1, math.ceil(q * len(vals)))
    return vals[min(k, len(vals)) - 1]
def expect(rs):
    ok = [r[2] / 1000.0 for r in rs if r[1] is None]
    return {
        "calls": len(rs), "errors": sum(1 for r in rs if r[1] is not None),
        "p50_ms": nearest(ok, .5), "p95_ms": nearest(ok, .95),
        "tokens_in": sum(r[3] or 0 for r in rs), "tokens_out": sum(r[4] or 0 for r in rs),
        "spend_usd": sum(r[5] or 0 for r in rs if not r[7]),
        "est_spend_usd": sum(r[6] or 0 for r in rs if r[7]),
        "usage_missing": sum(r[7] for r in rs),
        "baseline_usd": sum(r[8] for r in rs if r[8] is not None and not r[7]),
        "savings_usd": sum(r[8] - r[5] for r in rs if r[8] is not None and not r[7]),
        "retries": sum(r[9] for r in rs), "hedges": sum(r[10] for r in rs),
        "throttled": sum(r[11] for r in rs), "cached": sum(r[12] for r in rs),
    }
got = {g[by]: g for g in rep["groups"]}
bad = []
if sorted(got) != sorted(groups):
    bad.append("groups %s != %s" % (sorted(got), sorted(groups)))
for key, rs in groups.items():
    want = expect(rs)
    for k, v in want.items():
        g = got.get(key, {}).get(k)
        if g is None or abs(g - v) > 1e-6 * max(1, abs(v)):
            bad.append("%s %s: report %s, ledger %s" % (key, k, g, v))
total = expect([r for rs in groups.values() for r in rs])
for k, v in total.items():
    if abs(rep["total"][k] - v) > 1e-6 * max(1, abs(v)):
        bad.append("TOTAL %s: report %s, ledger %s" % (k, rep["total"][k], v))
print("\n".join(bad) if bad else "%d groups, %d calls: all figures match" % (len(groups), len(rows)))
sys.exit(1 if bad else 0)
PY
check "report by target: every figure matches the ledger" python3 "$TMP/verify.py" "$DB" "$TMP/rep.json" target
"$SB" report -c "$TMP/sb.json" --since 1h --by tag --format json > "$TMP/rep-tag.json"
check "report by tag: every figure matches the ledger" python3 "$TMP/verify.py" "$DB" "$TMP/rep-tag.json" tag
"$SB" report -c "$TMP/sb.json" --since 1h --by route --format json > "$TMP/rep-route.json"
check "report by route: every figure matches the ledger" python3 "$TMP/verify.py" "$DB" "$TMP/rep-route.json" route
"$SB" report -c "$TMP/sb.json" --since 1h --by tag --format csv > "$TMP/rep.csv"
check "report --format csv: parses, one line per tag plus TOTAL" \
  python3 -c "
import csv,json,sys
rows=list(csv.DictReader(open('$TMP/rep.csv', newline='')))
want=json.load(open('$TMP/rep-tag.json'))
sys.exit(0 if rows[-1]['tag']=='TOTAL' and len(rows)==len(want['groups'])+1 and int(rows[-1]['calls'])==want['total']['calls'] else 1)"
"$SB" report -c "$TMP/sb.json" --by day > "$TMP/rep.txt"
check "report table: a TOTAL line" grep -q '^TOTAL' "$TMP/rep.txt"
check "report table: today's UTC date" grep -q "^$(date -u +%F)" "$TMP/rep.txt"
"$SB" report -c "$TMP/sb.json" --since yesterday >/dev/null 2>"$TMP/since.err"
check "report: a bad --since is a usage error (exit 2)" test $? = 2
check "report: ...naming the option" grep -q -- "--since yesterday" "$TMP/since.err"
"$SB" report --ledger "$TMP/none.db" >/dev/null 2>"$TMP/none.err"
check "report: a missing ledger says so (exit 1)" test $? = 1

# ---- kill -9 under load ----------------------------------------------------------------------
stop_serve
check "guard, budgets, cache, reloads: no sanitizer report" serve_clean
write_config throttle 250 ""
start_serve "$TMP/sb.json" || exit 1
C=8
t0=$(date +%s.%N)
load --n 1000000 --c $C --duration 4 --tag kill9 > "$TMP/kill9.json" &
loadpid=$!
sleep 2.5
kill -9 "$SB_PID"
t1=$(date +%s.%N)
wait "$loadpid"
answered=$(json_get 'j["ok"]' < "$TMP/kill9.json")
written=$(sql "SELECT COUNT(*) FROM calls WHERE tag='kill9' AND status=200")
# The rate the calls were answered at just before the kill: the ledger's last second of rows
# (the client's average over the whole run, start-up included, would understate it).
rate=$(sql "SELECT COUNT(*) FROM calls WHERE tag='kill9' AND ts_ms > (SELECT MAX(ts_ms) FROM calls WHERE tag='kill9') - 1000")
avg=$(python3 -c "print('%.0f' % ($answered / ($t1 - $t0)))")
bound=$(python3 -c "import math; print(math.ceil($rate * 0.250) + $C)")
lost=$((answered - written))
echo "     kill -9: $answered calls answered by the clients (about $avg/s on average, $rate/s in the last second);"
echo "              $written in the ledger; lost $lost, bound $bound (last-second rate x 250 ms + $C in flight)"
check "kill -9: the clients got answers before the kill" test "$answered" -gt 20
check "kill -9: what was committed before the kill is there" test "$written" -gt 0
check "kill -9: lost rows within the batch window ($lost <= $bound)" test "$lost" -le "$bound"
start_serve "$TMP/sb.json" || exit 1
check "kill -9: the ledger opens again and spend is rebuilt" grep -q 'spent today' "$TMP/serve.err"
check "kill -9: the report still reads it" bash -c "'$SB' report -c '$TMP/sb.json' --by tag | grep -q '^kill9'"
stop_serve
check "after kill -9 and a restart: no sanitizer report" serve_clean
finish
