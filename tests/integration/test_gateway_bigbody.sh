#!/usr/bin/env bash
# Big request bodies, on both gateway shapes (gateway.threads 0, the router's loop, where a
# body over 64 KiB is parsed on the offload pool; and 2, MHD threads, where it is parsed on the
# MHD thread): a 4 MiB prompt is answered correctly, streamed and not, while paced streams
# keep flowing (each stream's pieces complete and in order), with its ledger row and headers;
# a malformed 4 MiB body gets the same 400 as a small one, one for a model nothing serves the
# same 404; a client that leaves right after
# sending a big body is cancelled (499 in the ledger). Correctness and order only, no timing.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-bigbody ADMIN_TOKEN=tok-bigbody-1
start_sim oa --key "$SIM_KEY" || exit 1
sim_behavior oa '{"token_rate": 20}' || exit 1

# big_json FILE MARKER STREAM [BROKEN]: a chat request of about 4 MiB (a history of filler
# turns) whose last user turn asks the simulator to echo MARKER; BROKEN: cut before its end.
big_json() {
  python3 - "$@" <<'PY'
import json, sys
path, marker, stream = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
broken = len(sys.argv) > 4
turn = "the quick brown fox jumps over the lazy dog; " * 4
msgs = []
while sum(len(m["content"]) + 40 for m in msgs) < 4 * 1024 * 1024 - 4096:
    msgs.append({"role": "user" if len(msgs) % 2 == 0 else "assistant",
                 "content": "turn %d: %s" % (len(msgs), turn)})
msgs.append({"role": "user", "content": "echo: " + marker})
text = json.dumps({"model": "chat", "stream": stream, "messages": msgs})
open(path, "w").write(text[:-2] if broken else text)
PY
}

big_json "$TMP/big.json" BIG-MARKER-1 0
big_json "$TMP/bigs.json" BIG-MARKER-2 1
big_json "$TMP/bigleave.json" "$(seq -s ' ' 1 60)" 1
big_json "$TMP/bad.json" BIG-MARKER-3 0 broken
sed 's/"model": "chat"/"model": "no-such-model"/' "$TMP/big.json" >"$TMP/nomodel.json"
printf '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}' >"$TMP/smallnomodel.json"
printf '{"model":"chat","messages":[{"role":"user","content":"echo: x"}' >"$TMP/smallbad.json"
check "the big bodies are over 4 MiB" test "$(stat -c %s "$TMP/big.json")" -gt 4000000

# post NAME FILE [curl args]: POSTs FILE to the gateway; body, headers, status into $TMP/NAME.*
post() {
  local n=$1 f=$2; shift 2
  curl -s -N --max-time 60 -D "$TMP/$n.hdr" -o "$TMP/$n.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary "@$f" "$@" "$GW/v1/chat/completions" \
    >"$TMP/$n.code"
}
code() { cat "$TMP/$1.code"; }
hdr() { grep -i "^$2:" "$TMP/$1.hdr" | head -1 | cut -d: -f2- | tr -d ' \r'; }
err_field() { python3 -c "import json; print(json.load(open('$TMP/$1.body'))['error']['$2'])"; }
sse_text() { # the content of a stream's deltas, joined
  python3 -c "
import json
out = []
for line in open('$TMP/$1.body'):
    line = line.strip()
    if line.startswith('data: ') and line != 'data: [DONE]':
        for ch in json.loads(line[6:]).get('choices', []):
            out.append((ch.get('delta') or {}).get('content') or '')
print(''.join(out))"
}
ledger_status() { # ledger_status REQUEST_ID: the status the ledger recorded
  python3 -c "
import sqlite3, sys
r = sqlite3.connect('$TMP/$SHAPE.db').execute(
    'select status from calls where request_id = ?', (sys.argv[1],)).fetchone()
print(r[0] if r else '')" "$1"
}

for SHAPE in 0 2; do
  cat >"$TMP/sb$SHAPE.json" <<JSON
{
  "providers": [
    {"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[oa]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini"}
  ],
  "routes": [{"name": "chat", "targets": ["oa"]}],
  "guard": {"enabled": false},
  "gateway": {"listen": "127.0.0.1:0", "threads": $SHAPE, "max_body_bytes": 8388608,
              "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$TMP/$SHAPE.db", "batch_ms": 50}
}
JSON
  start_serve "$TMP/sb$SHAPE.json" || exit 1
  GW=http://127.0.0.1:$SB_PORT
  t="threads $SHAPE:"
  if [[ $SHAPE == 0 ]]; then
    check "$t the listener runs on the router's loop" \
      eventually 5 grep -q "on the router thread's loop" "$TMP/serve.err"
  fi

  # 8 streams of 60 numbered pieces at 20 pieces/s (3 s each), checked for order
  python3 "$(dirname "$0")/seq_streams.py" "$SB_PORT" --streams 8 --pieces 60 \
    >"$TMP/seq$SHAPE.json" &
  SEQ=$!
  PIDS+=($SEQ)
  sleep 0.5
  post big "$TMP/big.json" -H 'x-request-id: big-req-'$SHAPE
  post bigs "$TMP/bigs.json"
  post bad "$TMP/bad.json"
  post smallbad "$TMP/smallbad.json"
  post nomodel "$TMP/nomodel.json"
  post smallnomodel "$TMP/smallnomodel.json"
  wait "$SEQ"
  cat "$TMP/seq$SHAPE.json"
  check "$t every paced stream completed, its pieces in order" \
    test "$(json_get 'j["ok"]' <"$TMP/seq$SHAPE.json")" = 8
  check "$t the 4 MiB prompt is answered 200" test "$(code big)" = 200
  check "$t ...with the echo of its last turn" \
    test "$(json_get 'j["choices"][0]["message"]["content"]' <"$TMP/big.body")" = BIG-MARKER-1
  check "$t ...its target and attempts in the headers" \
    test "$(hdr big x-switchboard-target)/$(hdr big x-switchboard-attempts)" = oa/1
  check "$t ...and the request id it was sent with" test "$(hdr big x-request-id)" = big-req-$SHAPE
  check "$t the streamed 4 MiB prompt is answered 200" test "$(code bigs)" = 200
  check "$t ...as a stream of the echo, ended by [DONE]" \
    test "$(sse_text bigs)/$(tail -c 200 "$TMP/bigs.body" | grep -c 'data: \[DONE\]')" = BIG-MARKER-2/1
  check "$t a malformed 4 MiB body gets 400" test "$(code bad)" = 400
  check "$t ...as a small one does" test "$(code smallbad)" = 400
  check "$t ...with the same error type and code" \
    test "$(err_field bad type)/$(err_field bad code)" = "$(err_field smallbad type)/$(err_field smallbad code)"
  check "$t ...and the same headers" \
    test "$(hdr bad x-switchboard-target)/$(hdr bad x-switchboard-attempts)" = none/0
  check "$t a 4 MiB body for a model nothing serves gets 404 model_not_found, as a small one" \
    test "$(code nomodel)/$(err_field nomodel code)" = "$(code smallnomodel)/$(err_field smallnomodel code)"
  check "$t ...which is 404 model_not_found" test "$(code nomodel)/$(err_field nomodel code)" = 404/model_not_found
  check "$t the big call's ledger row says 200" eventually 5 test "$(ledger_status big-req-$SHAPE)" = 200

  # a client that leaves once its call is in flight (not after a fixed second: under TSan the
  # 4 MiB upload and parse alone can take longer): its stream (60 pieces, 3 s) is cancelled
  curl -s -N -o /dev/null -H 'Content-Type: application/json' \
    -H "x-request-id: leave-$SHAPE" --data-binary "@$TMP/bigleave.json" "$GW/v1/chat/completions" &
  LEAVER=$!
  eventually 20 bash -c "test \"\$(curl -s --max-time 2 $GW/metrics | awk '\$1==\"switchboard_gateway_in_flight\" {print \$2}')\" -ge 1" 2>/dev/null
  kill "$LEAVER" 2>/dev/null
  wait "$LEAVER" 2>/dev/null
  for _ in $(seq 100); do # the row comes once the cancelled call ends
    [[ $(ledger_status "leave-$SHAPE") == 499 ]] && break
    sleep 0.1
  done
  check "$t a client gone after sending a big body: its call is cancelled, 499" \
    test "$(ledger_status "leave-$SHAPE")" = 499
  kill "$SB_PID"
  wait "$SB_PID"
  check "$t serve exits 0" test $? = 0
done
finish
