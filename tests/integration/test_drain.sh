#!/usr/bin/env bash
# Stopping `switchboard serve` with calls in flight, against the simulator:
#  - SIGTERM drains: /readyz answers 503 at once, new calls get 503 shutting_down with
#    Retry-After, /healthz and /metrics still answer, and a slow stream in flight finishes;
#  - past gateway.drain_timeout_ms the calls left end with "switchboard is shutting down"
#    (an error chunk for a stream, a 503 for a waiting call), recorded in the ledger as 503
#    (not 499, a client that left);
#  - a second signal while draining stops at once.
source "$(dirname "$0")/lib.sh"

# 10 streamed pieces a second: "echo: w1 .. wN" streams N pieces in N/10 s.
start_sim up --no-auth --token-rate 10 || exit 1
start_sim late --no-auth --token-rate 10 || exit 1
sim_behavior late '{"first_byte_delay_ms":20000}' || exit 1

write_config() { # write_config FILE DRAIN_MS LEDGER
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[up]}/v1",
     "model": "m", "first_byte_timeout_ms": 30000},
    {"name": "late", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[late]}/v1", "model": "m",
     "first_byte_timeout_ms": 30000}
  ],
  "routes": [ {"name": "chat", "targets": ["up"]}, {"name": "slow", "targets": ["late"]} ],
  "guard": {"enabled": false},
  "ledger": {"path": "$3"},
  "gateway": {"listen": "127.0.0.1:0", "drain_timeout_ms": $2}
}
JSON
}

words() { local i out=""; for i in $(seq "$1"); do out+="w$i "; done; echo "${out% }"; }
# stream NAME WORDS [curl args]: a streamed call in the background; sets PID_<NAME>.
stream() {
  local n=$1 w=$2; shift 2
  curl -s -N --max-time 60 -o "$TMP/$n.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "x-request-id: $n" "$@" --data-binary \
    "{\"model\":\"chat\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"echo: $(words "$w")\"}]}" \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/$n.code" &
  printf -v "PID_$n" '%s' $!
}
get() { # get NAME PATH: status -> NAME.code, body -> NAME.body, headers -> NAME.hdr
  curl -s --max-time 5 -D "$TMP/$1.hdr" -o "$TMP/$1.body" -w '%{http_code}' \
    "http://127.0.0.1:$SB_PORT$2" >"$TMP/$1.code"
}
post_chat() { # post_chat NAME MODEL: a non-streamed call (foreground)
  curl -s --max-time 30 -D "$TMP/$1.hdr" -o "$TMP/$1.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' -H "x-request-id: $1" --data-binary \
    "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/$1.code"
}
code() { cat "$TMP/$1.code"; }
done_ok() { grep -q '^data: \[DONE\]' "$TMP/$1.body" && ! grep -q '"error"' "$TMP/$1.body"; }
ends_shutdown() { grep -q 'shutting down' "$TMP/$1.body" && ! grep -q '^data: \[DONE\]' "$TMP/$1.body"; }
exited_within() { # exited_within SECONDS PID
  local n=$(( $1 * 10 ))
  for _ in $(seq "$n"); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}
ledger_row() { # ledger_row DB REQUEST_ID -> "status|error"
  python3 - "$1" "$2" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
r = db.execute("SELECT status, error FROM calls WHERE request_id = ?", (sys.argv[2],)).fetchone()
print("%s|%s" % r if r else "none")
PY
}

# ---- 1. SIGTERM: a slow stream in flight finishes; nothing new is taken ----------------------
write_config "$TMP/a.json" 10000 "$TMP/a.db"
start_serve "$TMP/a.json" || exit 1
stream s1 25 # 2.5 s
sleep 0.5
kill -TERM "$SB_PID"
sleep 0.2
get ready /readyz
check "draining: /readyz answers 503 at once" test "$(code ready)" = 503
check "draining: /readyz says why" grep -q "shutting down" "$TMP/ready.body"
post_chat new chat
check "draining: a new call gets 503 ($(code new))" test "$(code new)" = 503
check "draining: its error code is shutting_down" grep -q '"code":"shutting_down"' "$TMP/new.body"
check "draining: with Retry-After" grep -qi '^retry-after: 1' "$TMP/new.hdr"
check "draining: and Connection: close" grep -qi '^connection: close' "$TMP/new.hdr"
get health /healthz
check "draining: /healthz still 200" test "$(code health)" = 200
check "draining: /metrics says so" test "$(metric switchboard_gateway_draining)" = 1
check "draining: the process waits for the stream" kill -0 "$SB_PID"
wait "$PID_s1"
check "draining: the stream in flight finishes with [DONE] and no error" done_ok s1
check "draining: the whole answer arrived" grep -q 'w25' "$TMP/s1.body"
check "drained: the process exits soon after" exited_within 3 "$SB_PID"
wait "$SB_PID"; rc=$?
check "drained: exit status 0 ($rc)" test "$rc" = 0
check "drained: logged" grep -q "drained: no call in flight" "$TMP/serve.err"
check "drained: the stream is a 200 in the ledger" test "$(ledger_row "$TMP/a.db" s1)" = "200|None"

# ---- 2. past drain_timeout_ms: the rest end with the shutdown error ---------------------------
write_config "$TMP/b.json" 1000 "$TMP/b.db"
start_serve "$TMP/b.json" || exit 1
stream s2 100 # 10 s: longer than the drain
post_chat w2 slow & # waits 20 s for a first byte
w2_pid=$!
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$SB_PID"
wait "$PID_s2"
wait "$w2_pid"
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
check "drain timeout: the calls end after about drain_timeout_ms ($ms ms)" test "$ms" -ge 900 -a "$ms" -lt 4000
check "drain timeout: the stream ends with a 'shutting down' error chunk" ends_shutdown s2
check "drain timeout: the stream got output before that" grep -q 'w1' "$TMP/s2.body"
check "drain timeout: the waiting call gets 503 ($(code w2))" test "$(code w2)" = 503
check "drain timeout: its message says shutting down" grep -q "shutting down" "$TMP/w2.body"
check "drain timeout: the process exits" exited_within 5 "$SB_PID"
wait "$SB_PID"; rc=$?
check "drain timeout: exit status 0 ($rc)" test "$rc" = 0
check "drain timeout: logged" grep -q "still in flight after 1000 ms" "$TMP/serve.err"
check "drain timeout: the stream's ledger row is a shutdown (503), not a client gone (499)" \
  test "$(ledger_row "$TMP/b.db" s2)" = "503|cancelled"
check "drain timeout: so is the waiting call's" test "$(ledger_row "$TMP/b.db" w2)" = "503|cancelled"

# ---- 3. a second signal stops at once -------------------------------------------------------
write_config "$TMP/c.json" 30000 "$TMP/c.db"
start_serve "$TMP/c.json" || exit 1
stream s3 100
sleep 0.5
kill -TERM "$SB_PID"
sleep 0.5
check "second signal: still draining after the first" kill -0 "$SB_PID"
t0=$(date +%s%N)
kill -INT "$SB_PID"
check "second signal: the process exits at once" exited_within 2 "$SB_PID"
wait "$PID_s3"
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
check "second signal: the stream ends within a second ($ms ms)" test "$ms" -lt 1000
check "second signal: with the shutdown error" ends_shutdown s3
wait "$SB_PID"; rc=$?
check "second signal: exit status 0 ($rc)" test "$rc" = 0
check "second signal: logged" grep -q "while draining: stopping now" "$TMP/serve.err"
check "no sanitizer output" bash -c "! grep -qE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error' '$TMP/serve.err'"

finish
