#!/usr/bin/env bash
# The offload pool: endpoints that may block (/admin/, /metrics, /v1/feedback) run off the
# threads that serve the HTTP connections. A slow admin request is made real by holding the
# ledger's write lock from another process (sqlite3, BEGIN IMMEDIATE): POST /admin/keys then
# waits on SQLite's busy timeout. Meanwhile the chat streams in flight on the same listener
# keep flowing, other admin endpoints answer, a client that leaves mid-request costs nothing,
# and SIGTERM with offloaded requests running and queued ends cleanly: the queued ones get
# 503, the running ones their answer, the process exits 0 (ASan-clean with an ASan build).
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-offload ADMIN_TOKEN=tok-offload-1
start_sim alpha --key "$SIM_KEY" || exit 1
sim_behavior alpha '{"token_rate": 20}' || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini"}
  ],
  "routes": [{"name": "chat", "targets": ["alpha"]}],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$TMP/sb.db", "batch_ms": 50}
}
JSON
start_serve "$TMP/sb.json" || exit 1
GW=http://127.0.0.1:$SB_PORT

# lock_ledger SECONDS: holds the ledger's write lock for SECONDS in the background; returns
# once it is held.
lock_ledger() {
  rm -f "$TMP/locked"
  python3 - "$TMP/sb.db" "$1" "$TMP/locked" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[3], "w").write("locked\n")
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
PY
  LOCK_PID=$!
  PIDS+=($LOCK_PID)
  wait_for "$TMP/locked" 10
}
# add_key NAME OUT [curl args]: POST /admin/keys in the background; status -> OUT.code
add_key() {
  local n=$1 out=$2; shift 2
  curl -s -o "$out.body" -w '%{http_code}' --max-time 20 "$@" -X POST \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    --data "{\"name\":\"$n\"}" "$GW/admin/keys" >"$out.code" &
}
# quick PATH [curl args]: the status of a GET answered within 1 s
quick() {
  local p=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$GW$p"
}
auth=(-H "Authorization: Bearer $ADMIN_TOKEN")
code_of() { cat "$1.code" 2>/dev/null; }

check "the ledger exists once the gateway runs" eventually 10 test -s "$TMP/sb.db"

# ---- a slow admin request does not stall the chat streams on the listener ------------------
# 16 streams of 140 words at 20 words/s (7 s each); MHD spreads them over its threads.
python3 "$(dirname "$0")/gap_streams.py" "$SB_PORT" --streams 16 --words 140 \
  --ready "$TMP/streams.ready" >"$TMP/streams.json" &
STREAMS=$!
PIDS+=($STREAMS)
check "16 streams are flowing" wait_for "$TMP/streams.ready" 10
check "the ledger's write lock is held by another process" lock_ledger 4
add_key slow1 "$TMP/slow1"
sleep 0.5
check "the admin request is still waiting on the ledger" test ! -s "$TMP/slow1.code"
check "meanwhile /metrics answers" test "$(quick /metrics)" = 200
check "meanwhile /admin/state answers" test "$(quick /admin/state "${auth[@]}")" = 200
check "meanwhile /healthz answers" test "$(quick /healthz)" = 200
wait "$STREAMS"
cat "$TMP/streams.json"
check "every stream completed" test "$(json_get 'j["ok"]' <"$TMP/streams.json")" = 16
check "no stream went 1 s without an event while the admin request waited" \
  test "$(json_get 'max(j["max_gap_s"]) < 1.0' <"$TMP/streams.json")" = True
wait "$LOCK_PID"
check "the slow admin request was answered once the lock went (201)" \
  eventually 10 test "$(code_of "$TMP/slow1")" = 201

# ---- a client that leaves while its request waits --------------------------------------------
lock_ledger 3
add_key gone1 "$TMP/gone1" --max-time 1
sleep 1.5
check "the client gave up" test "$(code_of "$TMP/gone1")" = 000
wait "$LOCK_PID"
check "its request still ran (the key exists)" eventually 10 bash -c \
  "curl -s --max-time 5 -H 'Authorization: Bearer $ADMIN_TOKEN' '$GW/admin/keys' | grep -q gone1"
check "the gateway answers after it" test "$(quick /healthz)" = 200

# ---- SIGTERM with offloaded requests running and queued -------------------------------------
lock_ledger 4
for i in 1 2 3 4; do add_key "stop$i" "$TMP/stop$i"; done
sleep 1
kill -TERM "$SB_PID"
t0=$(date +%s)
stopped=no
for _ in $(seq 150); do kill -0 "$SB_PID" 2>/dev/null || { stopped=yes; break; }; sleep 0.1; done
check "switchboard serve stops (within 15 s)" test "$stopped" = yes
wait "$SB_PID"
check "it exits 0" test $? = 0
echo "stopped after $(( $(date +%s) - t0 )) s"
sleep 0.5
codes=$(for i in 1 2 3 4; do code_of "$TMP/stop$i"; echo; done | sort | tr '\n' ' ')
echo "answers: $codes"
check "every offloaded request got an answer (no dropped connection)" \
  bash -c "! grep -q 000 <<<'$codes'"
check "the running ones finished (201), the queued ones got 503" \
  bash -c "grep -q 201 <<<'$codes' && grep -q 503 <<<'$codes'"
check "no sanitizer report" bash -c "! grep -q 'Sanitizer' '$TMP/serve.err'"
grep -m5 -A20 Sanitizer "$TMP/serve.err"
finish
