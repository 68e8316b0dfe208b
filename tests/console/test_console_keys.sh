#!/usr/bin/env bash
# The console with client keys: calls made with a key through the console's own gateway show
# the key's name in the target's detail view (Enter on the board: recent calls), and a call
# without a key is refused before it reaches any target. A real tmux session (private
# socket); every wait is bounded.
source "$(dirname "$0")/lib.sh"


KEY=sbk-console-0123456789abcdef0123456789
start_sim solo --no-auth --token-rate 0 || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "solo", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[solo]}/v1",
     "model": "llama3.2", "price": {"input_per_mtok": 1, "output_per_mtok": 1},
     "probe": {"interval_ms": 60000}}
  ],
  "routes": [ {"name": "chat", "targets": ["solo"]} ],
  "clients": [ {"name": "team-a", "key_sha256": "$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)"} ],
  "ledger": {"path": ":memory:"},
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
check "the board is up" eventually "$WAIT" has main '^TARGET +STATE'

call() { # call [curl args...]: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' "$@" \
    "http://127.0.0.1:$PORT/v1/chat/completions"
}
check "the console's gateway refuses a call without a key (401)" test "$(call)" = 401
check "a call with the key is answered" test "$(call -H "Authorization: Bearer $KEY")" = 200
check "a second one too" test "$(call -H "Authorization: Bearer $KEY")" = 200

keys main Enter
check "Enter opens the target's detail view with the recent calls" \
  eventually "$WAIT" has main 'Recent calls'
check "the recent calls have client and request id columns" eventually "$WAIT" has main ' client +request id +error'
check "each recent call names its client key" \
  eventually "$WAIT" has main '^ +[0-9.]+[a-z]+ +ok .* team-a( |$)'
no_key() { ! cap main | matches sbk-; }
check "the key itself is nowhere on screen" no_key
keys main q
finish
