#!/usr/bin/env bash
# How a stream's answer is framed, on both gateway shapes (gateway.threads 0, the router's
# loop, and 2, MHD threads): a stream that is complete before its response is created (the
# upstream sent it in one write) goes out as one response with Content-Length, a slow stream
# (an event every 0.15 s) chunked and event by event; both bodies byte for byte the same
# (but for the request id and the created time), the same headers but for the framing, to
# HTTP/1.1 and HTTP/1.0 clients; the ledger rows of both, of a client that leaves before its
# fast answer and of one that leaves mid-stream. Upstream: tests/integration/sse_upstream.py;
# client: raw_client.py, and the official OpenAI Node SDK (node/framing.mjs; lib.sh
# node_sdk_ready installs the pinned version when it is missing).
# router.workers 0: with decode/encode workers a stream's events may still be on a worker
# when the commit's resume reaches the handler (then it is chunked, correctly but not tested).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

python3 "$HERE/sse_upstream.py" "$TMP/up.port" 2>"$TMP/up.err" &
PIDS+=($!)
wait_for "$TMP/up.port" 10 || { echo "upstream did not start"; cat "$TMP/up.err"; exit 1; }
UP_PORT=$(cat "$TMP/up.port")

ask() { # ask NAME REQUEST_ID MODE [client args]: the answer's JSON summary -> $TMP/NAME.json
  local n=$1; shift
  python3 "$HERE/raw_client.py" "$SB_PORT" "$@" >"$TMP/$n.json"
}
js() { python3 -c "import json,sys; j=json.load(open('$TMP/$1.json')); sys.exit(0 if ($2) else 1)"; }
# same_body A B: the decoded bodies are equal once each one's request id and created time are
# replaced (the only fields that differ between two calls).
same_body() {
  python3 - "$TMP/$1.json" "$TMP/$2.json" <<'PY'
import json, re, sys
def norm(path):
    j = json.load(open(path))
    b = j["body"].replace("chatcmpl-" + j["headers"]["x-request-id"], "chatcmpl-ID")
    return re.sub(r'"created":\d+', '"created":0', b)
a, b = norm(sys.argv[1]), norm(sys.argv[2])
sys.exit(0 if a == b and a.endswith("data: [DONE]\n\n") and a.count("data: ") == 14 else 1)
PY
}
# same_headers A B: every header but the framing, the date and the request id is the same.
same_headers() {
  python3 - "$TMP/$1.json" "$TMP/$2.json" <<'PY'
import json, sys
skip = {"content-length", "transfer-encoding", "date", "x-request-id", "connection"}
h = [{k: v for k, v in json.load(open(p))["headers"].items() if k not in skip} for p in sys.argv[1:3]]
sys.exit(0 if h[0] == h[1] and "x-switchboard-target" in h[0] else 1)
PY
}
ledger_row() { # ledger_row REQUEST_ID -> "status|error|tokens_in|tokens_out|target"
  python3 - "$TMP/ledger$SHAPE.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
r = db.execute("SELECT status, error, tokens_in, tokens_out, target FROM calls WHERE request_id = ?",
               (sys.argv[2],)).fetchone()
print("|".join(str(x) for x in r) if r else "none")
PY
}

for SHAPE in 0 2; do
  cat >"$TMP/sb$SHAPE.json" <<JSON
{
  "providers": [
    {"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:$UP_PORT/v1",
     "model": "m"}
  ],
  "routes": [ {"name": "chat", "targets": ["up"]} ],
  "router": {"workers": 0},
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger$SHAPE.db"},
  "gateway": {"listen": "127.0.0.1:0", "threads": $SHAPE}
}
JSON
  start_serve "$TMP/sb$SHAPE.json" || exit 1
  t="threads $SHAPE:"

  ask fast$SHAPE f$SHAPE fast
  check "$t a stream complete at once: 200, one response with Content-Length" \
    js fast$SHAPE "j['status']==200 and j['framing']=='length' and j['content_length']==len(j['body'].encode('latin-1')) and 'transfer-encoding' not in j['headers']"
  check "$t ...text/event-stream, no-cache, the target and the provider's rate-limit headers" \
    js fast$SHAPE "j['headers']['content-type']=='text/event-stream' and j['headers']['cache-control']=='no-cache' and j['headers']['x-switchboard-target']=='up' and j['headers']['x-switchboard-attempts']=='1' and any(k.startswith('x-ratelimit') for k in j['headers'])"
  ask slow$SHAPE s$SHAPE slow
  check "$t a slow stream: chunked" js slow$SHAPE "j['status']==200 and j['framing']=='chunked' and 'content-length' not in j['headers']"
  check "$t a slow stream: event by event (chunks over >= 1 s)" \
    js slow$SHAPE "len(j['chunk_times'])>=8 and j['chunk_times'][-1]-j['chunk_times'][0]>=1.0"
  check "$t both bodies byte for byte the same (14 events, [DONE])" same_body fast$SHAPE slow$SHAPE
  check "$t the same headers but for the framing" same_headers fast$SHAPE slow$SHAPE

  ask fast10_$SHAPE g$SHAPE fast --http1.0
  ask slow10_$SHAPE t$SHAPE slow --http1.0
  check "$t HTTP/1.0, complete at once: Content-Length" js fast10_$SHAPE "j['status']==200 and j['framing']=='length'"
  check "$t HTTP/1.0, slow: no chunked encoding, ends at close" js slow10_$SHAPE "j['status']==200 and j['framing']=='close'"
  check "$t HTTP/1.0: both bodies the same as HTTP/1.1's" \
    bash -c "$(declare -f same_body); TMP=$TMP same_body fast10_$SHAPE fast$SHAPE && TMP=$TMP same_body slow10_$SHAPE fast$SHAPE"

  # The official OpenAI Node SDK reads both framings (lib.sh installs the pinned SDK if needed).
  node_sdk_ready
  for m in fast slow; do
    (cd "$HERE/node" && timeout 30 node framing.mjs "$SB_PORT" $m) >"$TMP/sdk$m$SHAPE.json" 2>"$TMP/sdk.err"
  done
  sdk_ok='j["text"]=="one two three four five six seven eight nine ten" and j["finish"]=="stop" and j["usage"]["total_tokens"]==17 and j["chunks"]==13'
  check "$t Node SDK: a one-write stream (Content-Length) reads whole" \
    js sdkfast$SHAPE "$sdk_ok and j['content_length'] is not None and j['transfer_encoding'] is None"
  check "$t Node SDK: a chunked stream the same" js sdkslow$SHAPE "$sdk_ok and j['transfer_encoding']=='chunked'"
  ask left$SHAPE l$SHAPE late --leave-after 0.1
  ask leftmid$SHAPE m$SHAPE slow --leave-after 0.5
  check "$t every call is over (none in flight)" \
    eventually 5 bash -c "test \"\$(curl -s --max-time 2 http://127.0.0.1:$SB_PORT/metrics | awk '\$1==\"switchboard_gateway_in_flight\" {print \$2}')\" = 0"
  check "$t nothing held for clients" test "$(metric switchboard_gateway_answer_bytes)" = 0
  kill -TERM "$SB_PID"; wait "$SB_PID"
  check "$t ledger: the one-write stream is a 200 with its usage" test "$(ledger_row f$SHAPE)" = "200|None|7|10|up"
  check "$t ledger: the chunked stream the same" test "$(ledger_row s$SHAPE)" = "200|None|7|10|up"
  check "$t ledger: HTTP/1.0 the same" test "$(ledger_row g$SHAPE)/$(ledger_row t$SHAPE)" = "200|None|7|10|up/200|None|7|10|up"
  # Gone before a fast answer: the answer's write still succeeds (the kernel takes it), so the
  # call is a 200, as it was before streams went out in one write (main's build gives the same).
  check "$t ledger: a client gone before its one-write answer: 200 as before" \
    test "$(ledger_row l$SHAPE)" = "200|None|7|10|up"
  check "$t ledger: a client gone mid-stream is cancelled ($(ledger_row m$SHAPE))" \
    bash -c "[[ '$(ledger_row m$SHAPE)' == 499\|cancelled\|* ]]"
  check "$t no sanitizer output" bash -c "! grep -qE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error' '$TMP/serve.err'"
done

finish
