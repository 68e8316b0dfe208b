#!/usr/bin/env bash
# The console's detail view shows the target's quality over the last hour and its latest
# negative feedback with request ids: two calls through the console's own gateway, one rated
# down through POST /v1/feedback, then Enter on the board: no mean under
# ledger.quality_min_volume (2), then the other call rated up and the mean shows. A real tmux session (private
# socket); every wait is bounded.
source "$(dirname "$0")/lib.sh"


start_sim solo --no-auth --token-rate 0 || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "solo", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[solo]}/v1",
     "model": "llama3.2", "price": {"input_per_mtok": 1, "output_per_mtok": 1},
     "probe": {"interval_ms": 60000}}
  ],
  "routes": [ {"name": "chat", "targets": ["solo"]} ],
  "ledger": {"path": "$TMP/ledger.db", "batch_ms": 50, "quality_min_volume": 2},
  "gateway": {"listen": "127.0.0.1:0"},
  "console": {"refresh_ms": 200}
}
JSON


pf=$TMP/main.port
cat > "$TMP/main.sh" <<SH
cd "$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$TMP/san" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$TMP/san"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$TMP/san"
"$SB" console -c "$TMP/sb.json" --port-file "$pf" --log "$TMP/main.log"
exec sleep 3600
SH
"${TM[@]}" new-session -d -s main -x 160 -y 48 "bash $TMP/main.sh"
if ! wait_for "$pf" "$WAIT"; then
  echo "console did not start:"; cap main; finish; exit 1
fi
read -r PORT < "$pf"
GW=http://127.0.0.1:$PORT
check "the board is up" eventually "$WAIT" has main '^TARGET +STATE'

call() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
  -H "x-request-id: $1" --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
  "$GW/v1/chat/completions"; }
check "two calls answered" test "$(call q-ok)$(call q-bad)" = 200200
rate() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
  --data "$1" "$GW/v1/feedback"; }
rated=$(rate '{"request_id":"q-bad","label":"thumbs_down","comment":"too short"}')
check "the console's gateway takes feedback" test "$rated" = 201

keys main Enter
check "the detail view shows the target's quality over the last hour (no mean under 2 ratings)" \
  eventually "$WAIT" has main 'quality 1h 2 calls, abandoned 0\.0%, complete 100\.0%, score n/a \(need 2\) \(1 rated, n/a negative\)'
check "a second rating" test "$(rate '{"request_id":"q-ok","label":"thumbs_up"}')" = 201
check "... and the mean shows" \
  eventually "$WAIT" has main 'score \+0\.00 \(2 rated, 50\.0% negative\)'
check "... and its latest negative feedback with the request id" \
  eventually "$WAIT" has main 'negative .* api +-1\.00 q-bad thumbs_down: too short'
keys main q # the gateway served calls a moment ago: quitting asks first
eventually "$WAIT" has main 'Quit\? y/N' && keys main y
console_gone() { [[ $("${TM[@]}" display -p -t main '#{pane_current_command}') == sleep ]]; }
check "q quits the console" eventually "$WAIT" console_gone
san=$(cat "$TMP"/san* 2>/dev/null | head -40)
check "no sanitizer report from the console (quality reader thread included)" test -z "$san"
[[ -n $san ]] && echo "$san"
finish
