#!/usr/bin/env bash
# Decode/encode workers (router.workers, issue 16) under many concurrent streams: 64 clients
# stream at once through the simulator, each asking for its own numbered pieces ("i-0000
# i-0001 ..."); every client must see its own sequence complete and in order, with workers = 2
# (the streams are spread over two worker threads) and with workers = 0 (all on the router
# thread). Run in the TSan tree too (make tsan): the hand-offs must be race-free.
source "$(dirname "$0")/lib.sh"
SEQ="python3 $(dirname "$0")/seq_streams.py"

start_sim up --no-auth --token-rate 400 || exit 1

config() { # config WORKERS
  cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[up]}/v1",
     "model": "m"}
  ],
  "routes": [ {"name": "chat", "targets": ["up"]} ],
  "router": {"workers": $1},
  "guard": {"enabled": false},
  "ledger": {"path": "$TMP/ledger-$1.db"},
  "gateway": {"listen": "127.0.0.1:0"}
}
JSON
}
jq_ok() { # the summary says 64 ok and nothing bad (prints it otherwise)
  python3 -c "import json,sys; j=json.load(open('$1')); sys.exit(0 if j['ok'] == 64 and not j['bad'] else print(j) or 1)"
}
workers_named() { cat /proc/"$SB_PID"/task/*/comm 2>/dev/null | grep -c '^sb-worker-' ; }
stop_serve() {
  kill "$SB_PID"
  for _ in $(seq 100); do kill -0 "$SB_PID" 2>/dev/null || break; sleep 0.1; done
  ! kill -0 "$SB_PID" 2>/dev/null
}
ledger_ok() { # ledger_ok WORKERS N: N rows, all 200
  python3 - "$TMP/ledger-$1.db" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = db.execute("SELECT status, COUNT(*) FROM calls GROUP BY status").fetchall()
sys.exit(0 if rows == [(200, int(sys.argv[2]))] else print(rows) or 1)
PY
}

for w in 2 0; do
  config "$w"
  start_serve "$TMP/sb.json" || exit 1
  $SEQ "$SB_PORT" --streams 64 --pieces 200 >"$TMP/seq-$w.json"
  check "workers=$w: 64 concurrent streams, each complete and in order" \
    jq_ok "$TMP/seq-$w.json"
  [[ $w == 2 ]] && check "workers=2: two worker threads ran" test "$(workers_named)" -eq 2
  [[ $w == 0 ]] && check "workers=0: no worker thread" test "$(workers_named)" -eq 0
  # a second wave on the same workers
  $SEQ "$SB_PORT" --streams 64 --pieces 50 >"$TMP/seq2-$w.json"
  check "workers=$w: a second wave, complete and in order" jq_ok "$TMP/seq2-$w.json"
  check "workers=$w: switchboard stops cleanly" stop_serve
  check "workers=$w: every call in the ledger as a 200" ledger_ok "$w" 128
  check "workers=$w: no sanitizer output" \
    bash -c "! grep -qE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error' '$TMP/serve.err'"
done
finish
