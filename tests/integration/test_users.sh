#!/usr/bin/env bash
# Per-user routing end to end: a user's preference (from users.preferences_file or the admin
# API) picks the route over the model name; rules match the end user exactly, by prefix and
# from a users_file; x-switchboard-user names the user when client keys are off; the ledger
# records who the user was; admin changes are audited and can be removed again.
source "$(dirname "$0")/lib.sh"

export SB_TEST_ADMIN=admin-token-0123456789
ADMIN_TOKEN=$SB_TEST_ADMIN
start_sim good --no-auth --token-rate 0 || exit 1
start_sim fast --no-auth --token-rate 0 || exit 1
printf '# preferences\nbob concise\nerin careful\n' > "$TMP/prefs.txt"
printf 'carol\n# comment\n  vip-2  \n' > "$TMP/vip.txt"
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "good", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[good]}/v1", "model": "m-good"},
    {"name": "fast", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[fast]}/v1", "model": "m-fast"}
  ],
  "routes": [ {"name": "careful", "targets": ["good"]}, {"name": "cheap", "targets": ["fast"]} ],
  "rules": [ {"match": {"users_file": "vip.txt"}, "route": "careful"},
             {"match": {"user": "intern-*"}, "route": "cheap"} ],
  "users": {"preferences_file": "prefs.txt", "concise_route": "cheap",
            "detailed_route": "careful"},
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger.db", "batch_ms": 50},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "SB_TEST_ADMIN"}
}
JSON
check "check accepts users and user rules" bash -c "\"$SB\" check -c \"$TMP/sb.json\" >/dev/null 2>&1"
start_serve "$TMP/sb.json" || exit 1
GW=http://127.0.0.1:$SB_PORT

MSG='"messages":[{"role":"user","content":"hello"}]'
# target_for ID MODEL USER [curl args]: prints the x-switchboard-target of the answer
target_for() {
  local id=$1 model=$2 user=$3; shift 3
  local u=""; [[ -n $user ]] && u=",\"user\":\"$user\""
  curl -s --max-time 30 -D - -o /dev/null -H 'Content-Type: application/json' -H "x-request-id: $id" \
    --data-binary "{\"model\":\"$model\"$u,$MSG}" "$@" "$GW/v1/chat/completions" |
    awk -F': ' 'tolower($1)=="x-switchboard-target" { sub(/\r$/, "", $2); print $2 }'
}
check "no user: the model decides (careful -> good)" test "$(target_for n1 careful '')" = good
check "bob prefers concise (file): careful is served by the concise route" \
  test "$(target_for u1 careful bob)" = fast
check "erin prefers a route by name (file): cheap -> careful" test "$(target_for u2 cheap erin)" = good
check "carol is in the rule's users_file: cheap -> careful" test "$(target_for u3 cheap carol)" = good
check "users_file lines are trimmed (vip-2)" test "$(target_for u4 cheap vip-2)" = good
check "a user prefix rule (intern-*): careful -> cheap" test "$(target_for u5 careful intern-7)" = fast
check "x-switchboard-user names the user without client keys" \
  test "$(target_for u6 careful '' -H 'x-switchboard-user: intern-9')" = fast
check "an unknown user: the model decides" test "$(target_for u7 cheap zed)" = fast

out=$(admin PUT /admin/users/dave '{"preference":"detailed"}')
check "admin: PUT a preference" bash -c "echo '$out' | grep -q '\"ok\":true'"
check "dave prefers detailed (admin): cheap -> careful" test "$(target_for u8 cheap dave)" = good
admin GET /admin/users >"$TMP/users.json"
check "admin: GET lists file and admin preferences with their routes" python3 -c "
import json; u={x['user']: x for x in json.load(open('$TMP/users.json'))['users']}
assert u['dave']['source']=='admin' and u['dave']['route']=='careful'
assert u['bob']['source']=='file' and u['bob']['route']=='cheap'"
bad=$(admin PUT /admin/users/dave '{"preference":""}')
check "admin: an empty preference is refused" bash -c "echo '$bad' | grep -q preference"
admin DELETE /admin/users/dave >/dev/null
check "admin: DELETE removes it (cheap -> cheap again)" test "$(target_for u9 cheap dave)" = fast
gone=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X DELETE \
  -H "Authorization: Bearer $ADMIN_TOKEN" "$GW/admin/users/dave")
check "admin: DELETE of a user without a preference: 404" test "$gone" = 404
state_has_audit() { admin GET /admin/state | matches 'user dave: preference detailed'; }
check "admin changes are audit events on the timeline" state_has_audit

user_of() { sqlite3 -readonly "$TMP/ledger.db" "SELECT IFNULL(user,'NULL') FROM calls WHERE request_id='$1'"; }
user_is() { test "$(user_of "$1")" = "$2"; }
check "ledger: the user is recorded (from the body)" eventually 5 user_is u1 bob
check "ledger: the user is recorded (from x-switchboard-user)" eventually 5 user_is u6 intern-9
check "ledger: no user, NULL" eventually 5 user_is n1 NULL
finish
