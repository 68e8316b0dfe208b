#!/usr/bin/env bash
# Client keys end to end: `switchboard serve` with clients[] in front of a simulator. No key
# and a wrong key get 401 (OpenAI-shaped), a key limited to one route gets 403 on another, a
# key's budget is enforced (429 naming the key), a forged x-switchboard-tag is ignored (and
# a self_tag key still cannot take a budgeted tag it does not own), an expired key gets 401,
# the key's name is in the ledger rows and in /metrics (and no unknown key adds a label);
# `switchboard keys add|list|revoke` and the admin API's /admin/keys round trip against the
# running gateway; keys never appear in logs or the ledger; `check` warns about a public
# listen without keys and about credentials in a base_url without printing them.
source "$(dirname "$0")/lib.sh"

export SB_TEST_ADMIN=admin-token-0123456789
KEY_A=sbk-alpha-0123456789abcdef0123456789
KEY_B=sbk-bravo-0123456789abcdef0123456789
KEY_C=sbk-charlie-0123456789abcdef01234567
KEY_X=sbk-expired-0123456789abcdef01234567
KEY_F=sbk-frugal-0123456789abcdef012345678
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
start_sim alt --no-auth --token-rate 0 || exit 1
start_sim bare --no-auth --token-rate 0 --omit-usage || exit 1

cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alt", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[alt]}/v1", "model": "llama3.2",
     "price": {"input_per_mtok": 10000, "output_per_mtok": 10000}},
    {"name": "bare", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[bare]}/v1", "model": "llama3.2",
     "price": {"input_per_mtok": 10000, "output_per_mtok": 10000}}
  ],
  "routes": [ {"name": "chat", "targets": ["alt"]}, {"name": "solo", "targets": ["alt"]},
              {"name": "nousage", "targets": ["bare"]} ],
  "budgets": [ {"scope": "tag", "name": "victim", "daily_usd": 1000} ],
  "clients": [
    {"name": "alpha", "key_sha256": "$(sha $KEY_A)", "tag": "team-a"},
    {"name": "bravo", "key_sha256": "$(sha $KEY_B)", "routes": ["solo"], "daily_usd": 0.5},
    {"name": "charlie", "key_sha256": "$(sha $KEY_C | tr a-f A-F)", "tag": "team-c",
     "self_tag": true},
    {"name": "old", "key_sha256": "$(sha $KEY_X)", "expires": "2020-01-01"},
    {"name": "frugal", "key_sha256": "$(sha $KEY_F)", "routes": ["nousage"], "daily_usd": 0.5}
  ],
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger.db", "batch_ms": 50},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "SB_TEST_ADMIN"}
}
JSON

check "check accepts clients[] (hashes in either case)" "$SB" check -c "$TMP/sb.json"
start_serve "$TMP/sb.json" || exit 1
GW=http://127.0.0.1:$SB_PORT

MSG='"messages":[{"role":"user","content":"Tell me about switchboards"}]'
# chat NAME MODEL [curl args...]: body -> $TMP/NAME.body, headers -> .hdr, status -> .code
chat() {
  local n=$1 m=$2; shift 2
  curl -s --max-time 30 -D "$TMP/$n.hdr" -o "$TMP/$n.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary "{\"model\":\"$m\",$MSG}" "$@" \
    "$GW/v1/chat/completions" >"$TMP/$n.code"
}
code() { cat "$TMP/$1.code"; }
body_py() { python3 -c "import json,sys; j=json.load(open('$TMP/$1.body')); sys.exit(0 if ($2) else 1)"; }
auth() { echo "Authorization: Bearer $1"; }
sql() { sqlite3 -readonly "$TMP/ledger.db" "$1"; }

# ---- who may call ------------------------------------------------------------------------
chat nokey chat
check "no key: 401" test "$(code nokey)" = 401
check "no key: OpenAI-shaped error" body_py nokey \
  "j['error']['code']=='invalid_api_key' and j['error']['type']=='invalid_request_error' \
   and 'API key' in j['error']['message']"
check "no key: WWW-Authenticate: Bearer" grep -qi '^WWW-Authenticate: Bearer' "$TMP/nokey.hdr"
chat wrong chat -H "$(auth sbk-wrong-0123456789abcdef)"
check "wrong key: 401" test "$(code wrong)" = 401
check "wrong key: incorrect API key" body_py wrong "'Incorrect API key' in j['error']['message']"
chat basic chat -H "Authorization: Basic $(printf 'alpha:%s' "$KEY_A" | base64 -w0)"
check "a key sent as Basic auth: 401" test "$(code basic)" = 401
chat expired chat -H "$(auth $KEY_X)"
check "expired key: 401 saying so" test "$(code expired)" = 401
check "expired key: message" body_py expired "'expired' in j['error']['message']"
models=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$GW/v1/models")
check "/v1/models needs a key too: 401" test "$models" = 401
models=$(curl -s -o "$TMP/models.body" -w '%{http_code}' --max-time 10 -H "$(auth $KEY_A)" "$GW/v1/models")
check "/v1/models with a key: 200, every route" body_py models \
  "sorted(m['id'] for m in j['data'])==['chat','nousage','solo'] and '$models'=='200'"
curl -s -o "$TMP/models_b.body" --max-time 10 -H "$(auth $KEY_B)" "$GW/v1/models"
check "/v1/models lists only the routes the key may use" body_py models_b \
  "[m['id'] for m in j['data']]==['solo']"
health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$GW/healthz")
check "/healthz needs no key" test "$health" = 200

chat a1 chat -H "$(auth $KEY_A)"
check "alpha on chat: 200" test "$(code a1)" = 200
chat b_chat chat -H "$(auth $KEY_B)"
check "bravo (routes: solo) on chat: 403" test "$(code b_chat)" = 403
check "bravo on chat: says which key and model" body_py b_chat \
  "j['error']['code']=='model_not_allowed' and 'bravo' in j['error']['message'] \
   and 'chat' in j['error']['message']"
chat b1 solo -H "$(auth $KEY_B)"
check "bravo on solo: 200" test "$(code b1)" = 200

# ---- tags no client can forge ------------------------------------------------------------
chat forged chat -H "$(auth $KEY_A)" -H 'x-switchboard-tag: victim' -H 'x-request-id: forged1'
check "alpha with a forged tag: still answered" test "$(code forged)" = 200
chat self_ok chat -H "$(auth $KEY_C)" -H 'x-switchboard-tag: c-batch' -H 'x-request-id: self1'
chat self_bad chat -H "$(auth $KEY_C)" -H 'x-switchboard-tag: victim' -H 'x-request-id: self2'
chat self_other chat -H "$(auth $KEY_C)" -H 'x-switchboard-tag: team-a' -H 'x-request-id: self3'
row_tag() { sql "SELECT IFNULL(tag,'NULL') || '|' || IFNULL(client,'NULL') FROM calls WHERE request_id='$1'"; }
tag_is() { test "$(row_tag "$1")" = "$2"; }
check "ledger: forged tag ignored, the key's tag and name recorded" \
  eventually 5 tag_is forged1 "team-a|alpha"
check "ledger: self_tag key's own tag honoured" eventually 5 tag_is self1 "c-batch|charlie"
check "ledger: self_tag key cannot take a budgeted tag it does not own" \
  eventually 5 tag_is self2 "team-c|charlie"
check "ledger: self_tag key cannot take another key's tag" \
  eventually 5 tag_is self3 "team-c|charlie"
check "ledger: no call row carries the victim tag" test "$(sql "SELECT COUNT(*) FROM calls WHERE tag='victim'")" = 0
check "ledger: a key without a tag carries its name as tag" \
  test "$(sql "SELECT DISTINCT tag FROM calls WHERE client='bravo'")" = bravo

# ---- a key's budget ----------------------------------------------------------------------
n=0
for i in $(seq 20); do
  chat bud solo -H "$(auth $KEY_B)"
  [[ $(code bud) == 429 ]] && break
  n=$((n + 1))
done
check "bravo's daily budget stops it (after $n more calls)" test "$(code bud)" = 429
check "budget 429 names the key and the cap" body_py bud \
  "j['error']['code']=='budget_exceeded' and 'bravo' in j['error']['message'] \
   and 'daily' in j['error']['message']"
check "budget 429 has Retry-After" grep -qiE '^Retry-After: [1-9]' "$TMP/bud.hdr"
chat a2 chat -H "$(auth $KEY_A)"
check "another key is not held by bravo's budget" test "$(code a2)" = 200
for i in $(seq 20); do
  chat fru nousage -H "$(auth $KEY_F)"
  [[ $(code fru) == 429 ]] && break
done
check "a provider that reports no usage does not slip past a key's budget (estimates count)" \
  body_py fru "j['error']['code']=='budget_exceeded' and 'frugal' in j['error']['message']"

# ---- metrics -----------------------------------------------------------------------------
metrics() { curl -s --max-time 10 "$GW/metrics" > "$TMP/metrics.txt"; }
mval() { awk -v k="$1" 'index($0, k" ") == 1 { print $2; exit }' "$TMP/metrics.txt"; }
metrics
check "metrics: alpha's requests" python3 -c "import sys; sys.exit(0 if float('$(mval 'switchboard_client_requests_total{client="alpha"}')' or 0) >= 3 else 1)"
check "metrics: bravo refused for route and budget" python3 -c "
import sys
r = float('$(mval 'switchboard_client_refused_total{client="bravo",reason="route"}')' or 0)
b = float('$(mval 'switchboard_client_refused_total{client="bravo",reason="budget"}')' or 0)
sys.exit(0 if r >= 1 and b >= 1 else 1)"
check "metrics: 401s by reason, without key names" python3 -c "
import sys
m = float('$(mval 'switchboard_client_auth_failures_total{reason="missing"}')' or 0)
i = float('$(mval 'switchboard_client_auth_failures_total{reason="invalid"}')' or 0)
sys.exit(0 if m >= 3 and i >= 1 else 1)"
check "metrics: spend per key" grep -qE '^switchboard_client_spend_usd_total\{client="bravo"\} [0-9.e+-]+$' "$TMP/metrics.txt"
check "metrics: only configured key names as labels" \
  test "$(grep -oE 'client="[^"]*"' "$TMP/metrics.txt" | sort -u | tr '\n' ' ')" = \
  'client="alpha" client="bravo" client="charlie" client="frugal" client="old" '

# ---- switchboard keys add / list / revoke against the running gateway ---------------------
"$SB" keys add -c "$TMP/sb.json" delta --route chat --tag team-d --rpm 100 \
  >"$TMP/add.out" 2>"$TMP/add.err"
KEY_D=$(cat "$TMP/add.out")
check "keys add prints a new key once" grep -qE '^sbk-[0-9a-f]{48}$' "$TMP/add.out"
check "keys add stores only the hash" test "$(sql "SELECT key_sha256 FROM client_keys WHERE name='delta'")" = "$(sha "$KEY_D")"
d_ok() { chat d chat -H "$(auth "$KEY_D")"; test "$(code d)" = 200; }
check "the running gateway takes the new key within seconds" eventually 5 d_ok
chat d_solo solo -H "$(auth "$KEY_D")"
check "the new key's routes hold: 403 on solo" test "$(code d_solo)" = 403
"$SB" keys list -c "$TMP/sb.json" >"$TMP/list.out" 2>&1
check "keys list shows config and ledger keys" \
  bash -c "grep -qE '^alpha +config +active' '$TMP/list.out' && grep -qE '^delta +ledger +active +chat +team-d' '$TMP/list.out' && grep -qE '^old +config +expired' '$TMP/list.out'"
check "keys list never shows a key or hash" bash -c "! grep -qE 'sbk-|$(sha "$KEY_D")' '$TMP/list.out'"
"$SB" keys add -c "$TMP/sb.json" delta >"$TMP/dup.out" 2>"$TMP/dup.err"
check "keys add refuses a taken name" bash -c "[[ ! -s '$TMP/dup.out' ]] && grep -q 'exists already' '$TMP/dup.err'"
"$SB" keys add -c "$TMP/sb.json" alpha >/dev/null 2>"$TMP/dupc.err"
check "keys add refuses a name clients[] has" grep -q "clients\[\] of the config" "$TMP/dupc.err"
check "keys revoke" "$SB" keys revoke -c "$TMP/sb.json" delta
d_gone() { chat d chat -H "$(auth "$KEY_D")"; test "$(code d)" = 401; }
check "the running gateway refuses the revoked key within seconds" eventually 5 d_gone
check "revoked key: says so" body_py d "'revoked' in j['error']['message']"
"$SB" keys list -c "$TMP/sb.json" --json >"$TMP/list.json" 2>&1
check "keys list --json marks it revoked" grep -qE '"name":"delta".*"status":"revoked"' "$TMP/list.json"
check "keys revoke twice fails" bash -c "! '$SB' keys revoke -c '$TMP/sb.json' delta 2>/dev/null"
h=$(printf '%s\n' "$KEY_A" | "$SB" keys hash)
check "keys hash prints the SHA-256 clients[] wants" test "$h" = "$(sha $KEY_A)"

# ---- the admin API's /admin/keys ---------------------------------------------------------
adm() { # adm NAME METHOD PATH [JSON]
  curl -s --max-time 10 -o "$TMP/$1.body" -w '%{http_code}' -X "$2" \
    -H "Authorization: Bearer $SB_TEST_ADMIN" ${4:+--data-binary "$4"} "$GW$3" >"$TMP/$1.code"
}
adm add POST /admin/keys '{"name":"echo","routes":["solo"],"self_tag":true,"rpm":2}'
check "admin: add answers 201" test "$(code add)" = 201
KEY_E=$(python3 -c "import json; print(json.load(open('$TMP/add.body'))['key'])")
check "admin: the key's hash matches" body_py add "j['key_sha256']=='$(sha "$KEY_E")' and j['name']=='echo'"
chat e1 solo -H "$(auth "$KEY_E")"
check "admin: the new key works at once" test "$(code e1)" = 200
chat e2 solo -H "$(auth "$KEY_E")"
chat e3 solo -H "$(auth "$KEY_E")"
check "admin: the key's rpm holds: the third call in a minute gets 429" test "$(code e3)" = 429
check "rpm 429 says rate limit, with Retry-After" \
  bash -c "grep -q 'requests per minute' '$TMP/e3.body' && grep -qiE '^Retry-After: [1-9]' '$TMP/e3.hdr'"
adm list GET /admin/keys
check "admin: list has config and ledger keys with usage" body_py list \
  "j['required'] and {k['name']:k['source'] for k in j['keys']}=={'alpha':'config','bravo':'config','charlie':'config','old':'config','frugal':'config','delta':'ledger','echo':'ledger'} \
   and [k for k in j['keys'] if k['name']=='echo'][0]['requests']==2 \
   and [k for k in j['keys'] if k['name']=='delta'][0]['revoked'] is not None \
   and [k for k in j['keys'] if k['name']=='bravo'][0]['spend_today_usd']>=0.5"
check "admin: list never shows a key" bash -c "! grep -q 'sbk-' '$TMP/list.body'"
adm dup POST /admin/keys '{"name":"echo"}'
check "admin: a taken name is 409" test "$(code dup)" = 409
adm badroute POST /admin/keys '{"name":"foxtrot","routes":["nope"]}'
check "admin: an unknown route is 400" test "$(code badroute)" = 400
adm cfgrev POST /admin/keys/alpha/revoke
check "admin: a config key cannot be revoked here (409)" test "$(code cfgrev)" = 409
adm rev POST /admin/keys/echo/revoke
check "admin: revoke answers 200" test "$(code rev)" = 200
chat e4 solo -H "$(auth "$KEY_E")"
check "admin: the revoked key gets 401 at once" test "$(code e4)" = 401
adm rev2 POST /admin/keys/echo/revoke
check "admin: revoking twice is 409" test "$(code rev2)" = 409
adm none POST /admin/keys/nobody/revoke
check "admin: revoking an unknown key is 404" test "$(code none)" = 404
noauth=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$GW/admin/keys")
check "admin: /admin/keys needs the admin token" test "$noauth" = 401
chat akey chat -H "Authorization: Bearer $SB_TEST_ADMIN"
check "the admin token is not a client key" test "$(code akey)" = 401

# ---- SIGHUP re-reads clients[] -------------------------------------------------------------
KEY_G=sbk-golf-0123456789abcdef0123456789ab
chat g0 chat -H "$(auth $KEY_G)"
check "before the reload a new config key is unknown: 401" test "$(code g0)" = 401
python3 - "$TMP/sb.json" "$(sha $KEY_G)" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["clients"] = [c for c in cfg["clients"] if c["name"] != "alpha"]
cfg["clients"].append({"name": "golf", "key_sha256": sys.argv[2], "routes": ["chat"]})
json.dump(cfg, open(sys.argv[1], "w"))
PY
kill -HUP "$SB_PID"
g_ok() { chat g chat -H "$(auth $KEY_G)"; test "$(code g)" = 200; }
check "SIGHUP: a key added to clients[] works" eventually 5 g_ok
chat a3 chat -H "$(auth $KEY_A)"
check "SIGHUP: a key removed from clients[] gets 401" test "$(code a3)" = 401
chat b3 solo -H "$(auth $KEY_B)"
check "SIGHUP: bravo's spend survives the reload (still over budget)" test "$(code b3)" = 429

# ---- nothing secret anywhere -------------------------------------------------------------
sleep 0.3
kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
for k in "$KEY_A" "$KEY_B" "$KEY_C" "$KEY_D" "$KEY_E" "$KEY_G"; do
  check "key ${k:0:9}... in no log" bash -c "! grep -qF -- '$k' '$TMP/serve.err' '$TMP/serve.out'"
  check "key ${k:0:9}... not in the ledger file" bash -c "! grep -qaF -- '$k' '$TMP/ledger.db'*"
done
check "ledger rows name their key" test "$(sql "SELECT COUNT(DISTINCT client) FROM calls WHERE client IS NOT NULL")" -ge 4

# ---- check's warnings --------------------------------------------------------------------
cat > "$TMP/open.json" <<JSON
{
  "providers": [
    {"name": "alt", "kind": "openai-compatible",
     "base_url": "https://bob:hunter2secret@llm.example/v1?api_key=sekrit-query-value",
     "model": "llama3.2"}
  ],
  "routes": [ {"name": "chat", "targets": ["alt"]} ],
  "ledger": {"path": ":memory:"},
  "gateway": {"listen": "0.0.0.0:8080"}
}
JSON
"$SB" check -c "$TMP/open.json" >"$TMP/check.out" 2>&1
check "check: warns about a public listen without client keys" \
  grep -q 'reachable from other machines and no clients\[\] keys' "$TMP/check.out"
check "check: warns about credentials in base_url" grep -q 'base_url.*embeds credentials' "$TMP/check.out"
check "check: never prints them" \
  bash -c "! grep -qE 'hunter2secret|sekrit-query-value|bob:' '$TMP/check.out'"
check "check: shows the URL masked" grep -qF 'https://***@llm.example/v1?***' "$TMP/check.out"
sed -i 's/"0.0.0.0:8080"/"127.0.0.1:8080"/' "$TMP/open.json"
"$SB" check -c "$TMP/open.json" >"$TMP/check2.out" 2>&1
check "check: no exposure warning on loopback" bash -c "! grep -q 'reachable from other machines' '$TMP/check2.out'"

finish
