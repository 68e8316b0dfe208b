#!/usr/bin/env bash
# An ATTACHED console (`console --attach URL --attach URL`) shows a target's quality over the
# last hour in the detail view, merged over two `switchboard serve` instances (each with its
# own ledger, read through GET /admin/quality/TARGET): calls and ratings summed, the mean
# recomputed from the sums, the latest negative feedback of both newest first with request
# ids; an instance that stops answering is named, and with none left the view says the
# quality is not available and why. A real tmux session (private socket); every wait is bounded.
source "$(dirname "$0")/lib.sh"

export ONCALL_TOKEN=tok-oncall-quality
start_sim solo --no-auth --token-rate 0 || exit 1

# serve NAME: a serve with its own ledger (quality_min_volume 2); sets PORT_<NAME>, PID_<NAME>.
serve() {
  local pf=$TMP/$1.port
  cat > "$TMP/$1.json" <<JSON
{
  "providers": [
    {"name": "solo", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[solo]}/v1",
     "model": "llama3.2", "price": {"input_per_mtok": 1, "output_per_mtok": 1},
     "probe": {"interval_ms": 60000}}
  ],
  "routes": [ {"name": "chat", "targets": ["solo"]} ],
  "ledger": {"path": "$TMP/$1.db", "batch_ms": 50, "quality_min_volume": 2},
  "gateway": {"listen": "127.0.0.1:0",
              "admin_tokens": [{"name": "oncall", "token_env": "ONCALL_TOKEN"}]}
}
JSON
  "$SB" serve -c "$TMP/$1.json" --port-file "$pf" >"$TMP/$1.out" 2>"$TMP/$1.err" &
  local pid=$!
  PIDS+=($pid)
  wait_for "$pf" 10 || { echo "serve $1 did not start:"; cat "$TMP/$1.err"; return 1; }
  printf -v "PID_$1" %s "$pid"
  printf -v "PORT_$1" %s "$(cat "$pf")"
}
serve one || exit 1
serve two || exit 1
P1=$PORT_one P2=$PORT_two

call() { # call PORT REQUEST-ID: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    -H "x-request-id: $2" --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$1/v1/chat/completions"
}
rate() { # rate PORT JSON: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data "$2" "http://127.0.0.1:$1/v1/feedback"
}
check "two calls on each instance" \
  test "$(call "$P1" a-ok)$(call "$P1" a-bad)$(call "$P2" b-ok)$(call "$P2" b-bad)" = 200200200200
check "one negative rating on instance one" \
  test "$(rate "$P1" '{"request_id":"a-bad","label":"thumbs_down","comment":"too short"}')" = 201
sleep 1.1 # the two negatives a second apart: newest first is then unambiguous
check "a negative and a positive rating on instance two" \
  test "$(rate "$P2" '{"request_id":"b-bad","label":"thumbs_down","comment":"wrong city"}')$(rate "$P2" '{"request_id":"b-ok","label":"thumbs_up"}')" = 201201

CUR=two
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump "$CUR"; }
cat > "$TMP/two.sh" <<SH
cd "$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
export ONCALL_TOKEN=$ONCALL_TOKEN SWITCHBOARD_USER=tester
export ASAN_OPTIONS="\${ASAN_OPTIONS:-}:log_path=$TMP/san" UBSAN_OPTIONS="\${UBSAN_OPTIONS:-}:log_path=$TMP/san"
export TSAN_OPTIONS="\${TSAN_OPTIONS:-} log_path=$TMP/san"
"$SB" console --token-env ONCALL_TOKEN --log "$TMP/two.log" --attach http://127.0.0.1:$P1 --attach http://127.0.0.1:$P2
echo "EXIT rc=\$?"
exec sleep 3600
SH
"${TM[@]}" new-session -d -s two -x 170 -y 50 "bash $TMP/two.sh"
check "the attached board is up" eventually "$WAIT" has two '^TARGET +STATE'
check "both instances answer" eventually "$WAIT" has two '2/2 up'
keys two Home Enter
check "the detail view opens" eventually "$WAIT" has two 'DETAIL +solo'
# 4 calls, 3 ratings (2 negative): mean (-1 - 1 + 1) / 3 = -0.33, 66.7% negative; satisfied =
# 4 answered - 2 rated negative = 2.
check "attached: the quality over the last hour, summed over both instances" \
  eventually "$WAIT" has two 'quality 1h 4 calls, abandoned 0\.0%, complete 100\.0%, score -0\.33 \(3 rated, 66\.7% negative\), \$/satisfied \$[0-9]'
newest_first() {
  cap two | grep -E '^ *negative ' | tr -s ' ' | cut -d' ' -f6-7 | tr '\n' '|' |
    grep -qx 'b-bad thumbs_down:|a-bad thumbs_down:|'
}
check "...and the latest negative feedback of both instances, newest first, with request ids" \
  eventually "$WAIT" newest_first
check "...with the comment" has two 'negative .* api +-1\.00 b-bad thumbs_down: wrong city'

kill -9 "$PID_two"; wait "$PID_two" 2>/dev/null
check "one instance gone: the view names it and what it said" \
  eventually "$WAIT" has two "quality counts 1/2 instances; 127\.0\.0\.1:$P2: connection refused"
check "...and shows the other's figures" \
  eventually "$WAIT" has two 'quality 1h 2 calls, abandoned 0\.0%, complete 100\.0%, score n/a \(need 2\) \(1 rated'
kill -9 "$PID_one"; wait "$PID_one" 2>/dev/null
check "none left: quality not available, and why" \
  eventually "$WAIT" has two "quality +not available \(127\.0\.0\.1:$P1: connection refused"
keys two Escape q
check "q detaches" eventually "$WAIT" has two 'EXIT rc=0'
san=$(cat "$TMP"/san* 2>/dev/null | head -40)
check "no sanitizer report from the console" test -z "$san"
[[ -n $san ]] && echo "$san"
finish
