#!/usr/bin/env bash
# GET /admin/quality/{target}: a target's quality over the last hour in whole minutes, from the
# ledger writer's minute buckets (the counts and sums a console merges across instances, and
# the figures derived from them), and its most recent negative feedback, behind the admin
# token. Real calls through the gateway, real ratings through POST /v1/feedback; the figures
# are checked against an independent count of the ledger file (python3's sqlite3).
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-quality ADMIN_TOKEN=tok-quality-1
start_sim alpha --key "$SIM_KEY" || exit 1
start_sim beta --key "$SIM_KEY" || exit 1
config() { # config FILE LEDGER
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
    {"name": "beta", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o",
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}}
  ],
  "routes": [{"name": "chat", "targets": ["alpha", "beta"], "strategy": "priority"}],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$2", "batch_ms": 50, "quality_min_volume": 2}
}
JSON
}
config "$TMP/sb.json" "$TMP/sb.db"
start_serve "$TMP/sb.json" || exit 1

call() { # call REQUEST-ID: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    -H "x-request-id: $1" --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions"
}
rate() { # rate JSON: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data "$1" "http://127.0.0.1:$SB_PORT/v1/feedback"
}
status_of() { # status_of PATH [curl args]: the HTTP status of a GET
  local p=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://127.0.0.1:$SB_PORT$p"
}
auth=(-H "Authorization: Bearer $ADMIN_TOKEN")

check "four calls answered by alpha" test "$(call q-1)$(call q-2)$(call q-3)$(call q-4)" = 200200200200
check "a thumbs-down with a comment" \
  test "$(rate '{"request_id":"q-1","label":"thumbs_down","comment":"too short"}')" = 201
sleep 1.1 # a second apart: newest first is unambiguous
check "two stars (negative) and a thumbs-up" \
  test "$(rate '{"request_id":"q-2","score":2,"scale":5,"label":"stars"}')$(rate '{"request_id":"q-3","label":"thumbs_up"}')" = 201201
rated() { [[ $(admin GET /admin/quality/alpha | json_get 'j["quality"]["feedback"]') == 3 ]]; }
check "the ratings reach the endpoint" eventually 10 rated

q=$(admin GET /admin/quality/alpha)
echo "$q" > "$TMP/quality.json"
python3 - "$TMP/sb.db" "$TMP/quality.json" > "$TMP/compare.txt" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
j = json.load(open(sys.argv[2]))
q, since, until = j["quality"], j["since_ms"], j["until_ms"]
calls, answered, spend = db.execute(
    "SELECT COUNT(*), SUM(status = 200), SUM(IFNULL(cost_usd, 0)) FROM calls"
    " WHERE target = 'alpha' AND ts_ms >= ? AND ts_ms < ?", (since, until)).fetchone()
fb, neg, ssum = db.execute(
    "SELECT COUNT(*), SUM(score < 0), SUM(score) FROM feedback WHERE target = 'alpha'"
    " AND call_ts_ms >= ? AND call_ts_ms < ?", (since, until)).fetchone()
negs = [r[0] for r in db.execute(
    "SELECT request_id FROM feedback WHERE target = 'alpha' AND score < 0"
    " ORDER BY ts_ms DESC, id DESC")]
print("calls", q["calls"] == calls == 4)
print("answered", q["answered"] == answered == 4)
print("feedback", q["feedback"] == fb == 3 and q["negative"] == neg == 2)
print("score_sum", abs(q["score_sum"] - ssum) < 1e-9)
print("satisfaction", abs(q["satisfaction"] - ssum / fb) < 1e-9)
print("satisfied", q["satisfied"] == answered - neg == 2 and q["answered_negative"] == 2)
print("spend", spend > 0 and abs(q["spend_usd"] - spend) < 1e-9)
print("cost_per_satisfied", abs(q["cost_per_satisfied_usd"] - spend / 2) < 1e-12)
print("completion", q["completion"] == 1 and q["abandonment"] == 0)
print("negatives", [n["request_id"] for n in j["negative"]] == negs == ["q-2", "q-1"])
print("negative_fields", j["negative"][1]["comment"] == "too short"
      and j["negative"][1]["source"] == "api" and j["negative"][1]["score"] == -1
      and j["negative"][1]["label"] == "thumbs_down" and j["negative"][1]["wall_ms"] > 0)
print("nothing_secret", "rater" not in json.dumps(j) and "sim-key" not in json.dumps(j))
print("header", j["target"] == "alpha" and j["configured"] is True and j["min_volume"] == 2
      and since % 60000 == 0 and until % 60000 == 0 and 3600000 < until - since <= 3660000)
PY
while read -r what verdict; do
  check "the endpoint agrees with the ledger: $what" test "$verdict" = True
done < "$TMP/compare.txt"
check "every figure compared" test "$(wc -l < "$TMP/compare.txt")" = 13

b=$(admin GET /admin/quality/beta)
check "a target without calls: 200 with zero counts, undefined rates null" test \
  "$(echo "$b" | json_get '(j["quality"]["calls"], j["quality"]["abandonment"], j["quality"]["satisfaction"], j["negative"])')" \
  = "(0, None, None, [])"
check "without the admin token: 401" test "$(status_of /admin/quality/alpha)" = 401
check "a wrong token: 401" test "$(status_of /admin/quality/alpha -H 'Authorization: Bearer nope')" = 401
check "POST is refused (405)" test "$(status_of /admin/quality/alpha -X POST "${auth[@]}")" = 405
check "an unknown target: 404" test "$(status_of /admin/quality/gamma "${auth[@]}")" = 404
check "a name no target can have: 400" test "$(status_of '/admin/quality/a%01b' "${auth[@]}")" = 400
check "no name: 400" test "$(status_of '/admin/quality/' "${auth[@]}")" = 400

# ---- a gateway whose ledger keeps nothing ----------------------------------------------------
config "$TMP/mem.json" ":memory:"
start_serve "$TMP/mem.json" || exit 1
check "a ledger that keeps nothing: 400" test "$(status_of /admin/quality/alpha "${auth[@]}")" = 400
finish
