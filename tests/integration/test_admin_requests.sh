#!/usr/bin/env bash
# GET /admin/requests/{x-request-id}: one call from the ledger for attached consoles (`:req
# ID`), behind the admin token; and the per-call churn on /admin/events: a fallback filed
# under the target that failed, naming the call's request id, with its aggregate's id.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-requests ADMIN_TOKEN=tok-requests-1
start_sim alpha --key "$SIM_KEY" || exit 1
start_sim beta --key "$SIM_KEY" || exit 1
cat > "$TMP/sb.json" <<JSON
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
  "router": {"breaker_failures": 100},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$TMP/sb.db", "batch_ms": 50}
}
JSON
start_serve "$TMP/sb.json" || exit 1

call() { # call REQUEST-ID: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    -H "x-request-id: $1" --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions"
}
status_of() { # status_of PATH [curl args]: the HTTP status of a GET
  local p=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://127.0.0.1:$SB_PORT$p"
}
found() { [[ $(status_of "/admin/requests/$1" -H "Authorization: Bearer $ADMIN_TOKEN") == 200 ]]; }

check "a call with its own x-request-id is answered" test "$(call req-lookup-1)" = 200
check "the call can be looked up by its request id" eventually 10 found req-lookup-1
r=$(admin GET /admin/requests/req-lookup-1)
check "it names the target that answered" test "$(echo "$r" | json_get 'j["target"]')" = alpha
check "its status, attempts and route" \
  test "$(echo "$r" | json_get '(j["status"], j["attempts"], j["route"])')" = "(200, 1, 'chat')"
check "its timings and cost" \
  test "$(echo "$r" | json_get 'j["latency_ms"] > 0 and j["cost_usd"] > 0')" = True
check "and a text rendering for consoles" \
  test "$(echo "$r" | json_get '"request id  req-lookup-1" in j["text"]')" = True

check "without the admin token: 401" test "$(status_of /admin/requests/req-lookup-1)" = 401
check "a wrong token: 401" \
  test "$(status_of /admin/requests/req-lookup-1 -H 'Authorization: Bearer nope')" = 401
check "POST is refused (405)" test "$(status_of /admin/requests/req-lookup-1 -X POST \
  -H "Authorization: Bearer $ADMIN_TOKEN")" = 405
check "an unknown id: 404" test "$(status_of /admin/requests/no-such-call \
  -H "Authorization: Bearer $ADMIN_TOKEN")" = 404
check "an id with characters no request id has: 400" test "$(status_of '/admin/requests/a%20b' \
  -H "Authorization: Bearer $ADMIN_TOKEN")" = 400

# ---- a fallback: filed under alpha (which failed), its request id on the event -------------
sim_behavior alpha '{"outage":"refuse"}'
check "alpha refusing, the call falls back and is answered" test "$(call req-fallback-1)" = 200
check "the fallback call is in the ledger" eventually 10 found req-fallback-1
r=$(admin GET /admin/requests/req-fallback-1)
check "it shows beta answering after 2 attempts (1 fallback)" \
  test "$(echo "$r" | json_get '(j["target"], j["attempts"], j["retries"])')" = "('beta', 2, 1)"

python3 - "$SB_PORT" "$ADMIN_TOKEN" > "$TMP/events.json" <<'PY'
import sys, json, time, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=3)
c.request("GET", "/admin/events", headers={"Authorization": "Bearer " + sys.argv[2]})
r = c.getresponse()
out = []
end = time.time() + 2  # the backlog comes at once; heartbeats follow every second
try:
    while time.time() < end:
        line = r.fp.readline().decode()
        if not line:
            break
        if line.startswith("data: "):
            out.append(json.loads(line[6:]))
except Exception:
    pass
print(json.dumps(out))
PY
fb() { python3 -c "import json,sys; e=[x for x in json.load(open('$TMP/events.json')) if x['kind']=='fallback']; print($1)"; }
check "/admin/events has one fallback" test "$(fb 'len(e)')" = 1
check "filed under alpha, the target that failed" test "$(fb 'e[0]["target"]')" = alpha
check "naming beta, which took over, and the request id" \
  test "$(fb '"fallback to beta" in e[0]["text"] and "req-fallback-1" in e[0]["text"]')" = True
check "marked as churn with its aggregate's id" \
  test "$(fb 'e[0].get("churn") is True and e[0].get("agg", 0) > 0')" = True
kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
san=$(grep -hE 'Sanitizer|runtime error' "$TMP"/serve.err 2>/dev/null | head -5)
check "no sanitizer report from the serve" test -z "$san"
[[ -n $san ]] && echo "$san"
finish
