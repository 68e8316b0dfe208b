#!/usr/bin/env bash
# The admin API for attached consoles: GET /admin/events (Server-Sent Events with ids,
# Last-Event-ID resume, heartbeats), named admin tokens and the audit's "who", POST
# /admin/votes, and direct target calls (X-Switchboard-Target) that need an admin token.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-events ADMIN_TOKEN=tok-legacy-1 ONCALL_TOKEN=tok-oncall-2
APP_KEY=sk-app-events-key-0123456789
APP_SHA=$(printf %s "$APP_KEY" | sha256sum | cut -d' ' -f1)
start_sim alpha --key "$SIM_KEY" || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini"},
    {"name": "beta", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o"}
  ],
  "routes": [{"name": "chat", "targets": ["alpha", "beta"]}],
  "clients": [{"name": "app", "key_sha256": "$APP_SHA"}],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN",
              "admin_tokens": [{"name": "oncall", "token_env": "ONCALL_TOKEN"},
                               {"name": "unset", "token_env": "SB_TEST_UNSET_TOKEN"}]},
  "ledger": {"path": "$TMP/sb.db", "batch_ms": 50}
}
JSON
unset SB_TEST_UNSET_TOKEN
start_serve "$TMP/sb.json" || exit 1

# sse.py PORT TOKEN SECONDS [LAST_ID]: reads /admin/events for SECONDS; prints "id <id>" per
# event, "hb" per heartbeat, "gap" per gap note, "status <code>" first.
cat > "$TMP/sse.py" <<'PY'
import sys, time, http.client
port, token, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
last = sys.argv[4] if len(sys.argv) > 4 else None
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=secs)
h = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
if last:
    h["Last-Event-ID"] = last
c.request("GET", "/admin/events", headers=h)
r = c.getresponse()
print("status", r.status, flush=True)
if r.status != 200:
    sys.exit(0)
end = time.time() + secs
try:
    while time.time() < end:
        line = r.fp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("id: "):
            print("id", line[4:], flush=True)
        elif line.startswith(": heartbeat"):
            print("hb", flush=True)
        elif line.startswith(": gap"):
            print("gap", flush=True)
        elif line.startswith("data: "):
            print("data", line[6:], flush=True)
except Exception:
    pass
PY
sse() { python3 "$TMP/sse.py" "$SB_PORT" "$@"; }
cmd() { # cmd TOKEN USER PATH
  curl -s --max-time 5 -X POST -H "Authorization: Bearer $1" ${2:+-H "X-Switchboard-User: $2"} \
    "http://127.0.0.1:$SB_PORT$3" -o /dev/null -w '%{http_code}'
}

check "events: refused without a token" \
  bash -c "curl -s --max-time 3 -o /dev/null -w '%{http_code}' http://127.0.0.1:$SB_PORT/admin/events | grep -qx 401"
check "events: refused with a wrong token" \
  bash -c "python3 '$TMP/sse.py' $SB_PORT wrong 2 | grep -qx 'status 401'"
check "events: refused with a named token whose variable is unset (empty bearer)" \
  bash -c "curl -s --max-time 3 -H 'Authorization: Bearer ' -o /dev/null -w '%{http_code}' http://127.0.0.1:$SB_PORT/admin/events | grep -qx 401"

# Five operator events, then a stream that sees them all with increasing ids.
for t in alpha beta alpha beta alpha; do cmd "$ONCALL_TOKEN" alice "/admin/targets/$t/probe" >/dev/null; done
sse "$ONCALL_TOKEN" 2.5 > "$TMP/s1.txt"
n1=$(grep -c '^id ' "$TMP/s1.txt")
check "events: the stream carries the events so far, each with an id (got $n1)" test "$n1" -ge 5
check "events: heartbeats while nothing happens" grep -qx hb "$TMP/s1.txt"
check "events: ids are <instance>-<seq>, seq increasing" python3 - "$TMP/s1.txt" <<'PY'
import sys
ids = [l.split()[1] for l in open(sys.argv[1]) if l.startswith("id ")]
inst = {i.rsplit("-", 1)[0] for i in ids}
seqs = [int(i.rsplit("-", 1)[1]) for i in ids]
sys.exit(0 if len(inst) == 1 and seqs == sorted(set(seqs)) else 1)
PY
check "events: the audit names the token and the user (oncall:alice)" \
  grep -q 'oncall:alice' "$TMP/s1.txt"
last=$(grep '^id ' "$TMP/s1.txt" | tail -1 | cut -d' ' -f2)

# Disconnected: three more events; resuming from the last id gives exactly those.
cmd "$ADMIN_TOKEN" "" /admin/targets/alpha/drain >/dev/null
cmd "$ADMIN_TOKEN" bob /admin/targets/alpha/clear >/dev/null
cmd "$ADMIN_TOKEN" bob /admin/targets/beta/probe >/dev/null
sse "$ADMIN_TOKEN" 1.5 "$last" > "$TMP/s2.txt"
check "events: resume after a disconnect gives only the new events (no loss, no duplicate)" \
  python3 - "$TMP/s1.txt" "$TMP/s2.txt" <<'PY'
import sys
a = [l.split()[1] for l in open(sys.argv[1]) if l.startswith("id ")]
b = [l.split()[1] for l in open(sys.argv[2]) if l.startswith("id ")]
last = int(a[-1].rsplit("-", 1)[1])
seqs = [int(i.rsplit("-", 1)[1]) for i in b]
ok = len(b) >= 3 and not set(a) & set(b) and seqs[0] == last + 1 and \
     seqs == list(range(seqs[0], seqs[0] + len(seqs)))
sys.exit(0 if ok else 1)
PY
check "events: the legacy token is named admin, with the client address when no user is sent" \
  grep -q 'admin@127.0.0.1' "$TMP/s2.txt"
check "events: ...and admin:bob with one" grep -q 'admin:bob' "$TMP/s2.txt"

# Votes.
code=$(curl -s --max-time 5 -X POST -H "Authorization: Bearer $ONCALL_TOKEN" -H 'X-Switchboard-User: carol' \
  --data '{"winner":"alpha","losers":["beta"],"prompt":"hello"}' -o "$TMP/vote.json" -w '%{http_code}' \
  "http://127.0.0.1:$SB_PORT/admin/votes")
check "votes: POST /admin/votes records a vote" test "$code" = 200
code=$(curl -s --max-time 5 -X POST -H "Authorization: Bearer $ONCALL_TOKEN" --data '{"winner":"alpha"}' \
  -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SB_PORT/admin/votes")
check "votes: a vote without losers is a 400" test "$code" = 400
state_has() { admin GET /admin/state | matches -- "$1"; }
check "votes: the vote is on the timeline with who cast it" eventually 3 state_has 'oncall:carol'

# Direct target calls for the prompt pane.
body='{"model":"beta","messages":[{"role":"user","content":"hi"}]}'
code=$(curl -s --max-time 10 -H 'X-Switchboard-Target: beta' --data "$body" -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$SB_PORT/v1/chat/completions")
check "direct call: with neither a client key nor an admin token: 401" test "$code" = 401
code=$(curl -s --max-time 10 -H "Authorization: Bearer $APP_KEY" -H 'X-Switchboard-Target: beta' \
  --data "$body" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SB_PORT/v1/chat/completions")
check "direct call: a client key alone may not pick a target (403)" test "$code" = 403
code=$(curl -s --max-time 10 -H 'X-Switchboard-Target: beta' -H 'X-Switchboard-Admin-Token: wrong' \
  --data "$body" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SB_PORT/v1/chat/completions")
check "direct call: a wrong admin token is no client key either (401)" test "$code" = 401
curl -s --max-time 10 -D "$TMP/direct.h" -H 'X-Switchboard-Target: beta' \
  -H "X-Switchboard-Admin-Token: $ONCALL_TOKEN" -H 'X-Request-Id: console-compare-1' \
  --data "$body" -o "$TMP/direct.json" "http://127.0.0.1:$SB_PORT/v1/chat/completions"
check "direct call: with the admin token (and no client key) it goes to that target" \
  grep -qi '^x-switchboard-target: beta' "$TMP/direct.h"
check "direct call: the ledger marks it with its request id" eventually 5 bash -c \
  "sqlite3 '$TMP/sb.db' \"select count(*) from calls where request_id='console-compare-1' and target='beta'\" | grep -qx 1"

# Restart: resuming with the old process's id gives the new process's events, none repeated.
kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
start_serve "$TMP/sb.json" || exit 1
cmd "$ONCALL_TOKEN" dave /admin/targets/beta/probe >/dev/null
last2=$(grep '^id ' "$TMP/s2.txt" | tail -1 | cut -d' ' -f2)
sse "$ONCALL_TOKEN" 1.5 "$last2" > "$TMP/s3.txt"
check "events: after a restart the resume gets the new instance's events" \
  python3 - "$TMP/s2.txt" "$TMP/s3.txt" <<'PY'
import sys
a = [l.split()[1] for l in open(sys.argv[1]) if l.startswith("id ")]
b = [l.split()[1] for l in open(sys.argv[2]) if l.startswith("id ")]
ia = a[-1].rsplit("-", 1)[0]
ok = b and all(i.rsplit("-", 1)[0] != ia for i in b) and not set(a) & set(b)
sys.exit(0 if ok else 1)
PY
check "events: ...including the command just made" grep -q 'oncall:dave' "$TMP/s3.txt"
# A stream open while the gateway stops ends with it (no hang), and nothing is reported.
sse "$ONCALL_TOKEN" 20 > "$TMP/s4.txt" &
spid=$!
sleep 1
t0=$SECONDS
kill "$SB_PID"; wait "$SB_PID" 2>/dev/null
wait "$spid"
check "events: an open stream does not hold the gateway's stop (took $((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 3
san=$(grep -hE 'Sanitizer|runtime error' "$TMP"/serve.err 2>/dev/null | head -5)
check "events: no sanitizer report from the serve" test -z "$san"
[[ -n $san ]] && echo "$san"
finish
