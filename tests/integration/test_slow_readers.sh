#!/usr/bin/env bash
# Clients that read their streamed answer slowly, or stop reading, against the simulator:
#  - a slow but steady reader gets the whole answer: the gateway pauses the upstream (libcurl
#    pause) when the client is behind and resumes it when the client drained, so the bytes
#    held for it stay near the per-connection cap instead of growing with the answer;
#  - a reader that stalls past gateway.idle_timeout_ms is closed, its call is cancelled and
#    the ledger records it as cut (499, not 200), and it is counted in /metrics.
source "$(dirname "$0")/lib.sh"
READER="python3 $(dirname "$0")/slow_reader.py"

start_sim up --no-auth --token-rate 0 || exit 1
start_sim nu --no-auth --token-rate 0 || exit 1
sim_behavior nu '{"omit_usage":true}' || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[up]}/v1",
     "model": "m"},
    {"name": "nu", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[nu]}/v1",
     "model": "m", "price": {"input_per_mtok": 1, "output_per_mtok": 2}}
  ],
  "routes": [ {"name": "chat", "targets": ["up"]}, {"name": "nousage", "targets": ["nu"]} ],
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger.db"},
  "gateway": {"listen": "127.0.0.1:0", "idle_timeout_ms": 2000}
}
JSON
start_serve "$TMP/sb.json" || exit 1

# An answer of N pieces: "echo: w1 .. wN" (the simulator streams one piece per word).
body() { # body FILE N
  python3 -c "import json,sys; n=int(sys.argv[1]); print(json.dumps({'model':'chat','stream':True,'messages':[{'role':'user','content':'echo: '+' '.join('w%d'%i for i in range(1,n+1))}]}))" "$2" >"$1"
}
jq_py() { python3 -c "import json,sys; j=json.load(open('$1')); sys.exit(0 if ($2) else 1)"; }
ledger_row() { # ledger_row REQUEST_ID -> "status|error" (after the process stopped)
  python3 - "$TMP/ledger.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
r = db.execute("SELECT status, error FROM calls WHERE request_id = ?", (sys.argv[2],)).fetchone()
print("%s|%s" % r if r else "none")
PY
}
max_answer_bytes() { # samples switchboard_gateway_answer_bytes for S seconds; prints the max
  local max=0 v
  for _ in $(seq $(( $1 * 10 ))); do
    v=$(metric switchboard_gateway_answer_bytes); v=${v:-0}
    (( v > max )) && max=$v
    sleep 0.1
  done
  echo "$max"
}

body "$TMP/big.json" 6000     # about 1 MB of SSE for the client
body "$TMP/huge.json" 40000   # about 7 MB: more than loopback's socket buffers take (~3 MB)

# ---- a slow, steady reader ---------------------------------------------------------------------
$READER "$SB_PORT" "$TMP/big.json" slow1 --read-every 3 >"$TMP/slow1.json" &
r1=$!
held=$(max_answer_bytes 2)
wait "$r1"
check "slow reader: gets the whole answer ([DONE])" jq_py "$TMP/slow1.json" "j['done'] and j['bytes'] > 500000"
check "slow reader: the upstream was paused for it" \
  test "$(metric switchboard_gateway_upstream_pauses_total)" -ge 1
check "slow reader: bytes held for it stayed near the cap ($held, answer ~1 MB)" test "$held" -lt 300000

# ---- a reader that stalls -----------------------------------------------------------------------
$READER "$SB_PORT" "$TMP/huge.json" stall1 --stall 5 >"$TMP/stall1.json" &
r2=$!
held=$(max_answer_bytes 2)
check "stalled reader: bytes held for it stay bounded ($held, answer ~7 MB)" test "$held" -lt 300000
wait "$r2"
check "stalled reader: closed by the idle timeout and counted" \
  eventually 5 bash -c "test \"\$(curl -s --max-time 2 http://127.0.0.1:$SB_PORT/metrics | awk '\$1==\"switchboard_gateway_clients_stalled_total\" {print \$2}')\" -ge 1"
check "stalled reader: logged" grep -q "stopped reading its answer" "$TMP/serve.err"
check "stalled reader: nothing is held once it is gone" \
  eventually 5 bash -c "test \"\$(curl -s --max-time 2 http://127.0.0.1:$SB_PORT/metrics | awk '\$1==\"switchboard_gateway_answer_bytes\" {print \$2}')\" = 0"
check "stalled reader: the call is over (no call in flight)" \
  eventually 5 bash -c "test \"\$(curl -s --max-time 2 http://127.0.0.1:$SB_PORT/metrics | awk '\$1==\"switchboard_gateway_in_flight\" {print \$2}')\" = 0"

# A stream whose end waits for its client still gets its cost estimated when usage is missing.
curl -s -N --max-time 10 -o "$TMP/nu.body" -H 'Content-Type: application/json' -H 'x-request-id: nu1' \
  --data-binary '{"model":"nousage","stream":true,"messages":[{"role":"user","content":"echo: a b c"}]}' \
  "http://127.0.0.1:$SB_PORT/v1/chat/completions"
check "usage missing: the stream ends with [DONE]" grep -q '^data: \[DONE\]' "$TMP/nu.body"

kill -TERM "$SB_PID"; wait "$SB_PID"
check "usage missing: the ledger row has an estimated cost" python3 - "$TMP/ledger.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
r = db.execute("SELECT usage_missing, est_cost_usd FROM calls WHERE request_id = 'nu1'").fetchone()
sys.exit(0 if r and r[0] == 1 and r[1] is not None and r[1] > 0 else 1)
PY
check "slow reader: a 200 in the ledger" test "$(ledger_row slow1)" = "200|None"
check "stalled reader: cut in the ledger (499 cancelled, not 200)" \
  test "$(ledger_row stall1)" = "499|cancelled"
check "no sanitizer output" bash -c "! grep -qE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error' '$TMP/serve.err'"

finish
