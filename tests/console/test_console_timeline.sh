#!/usr/bin/env bash
# The console's incident timeline, driven through tmux (what a person sees):
#  - a failure is filed under the target that failed; per-call churn is one aggregate line per
#    (target, error class), updated in place, naming the target that took over
#  - the events pane filters: K (key events only), v (kind), T (the selected target),
#    / (search, Esc clears)
#  - scrolled back, the title says "N newer"; Home follows again; Tab away and back keeps
#    following
#  - request ids in recent calls; :req ID opens the call from the ledger, embedded and
#    attached (GET /admin/requests/ID)
source "$(dirname "$0")/lib.sh"


export SIM_KEY=sim-key-timeline ADMIN_TOKEN=tok-timeline-1
start_sim alpha --key "$SIM_KEY" || exit 1
start_sim beta --key "$SIM_KEY" || exit 1
config() { # config FILE LEDGER
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"interval_ms": 600000},
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
    {"name": "beta", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o", "probe": {"interval_ms": 600000},
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
    {"name": "spare", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o", "probe": {"interval_ms": 600000}}
  ],
  "routes": [{"name": "chat", "strategy": "priority", "targets": ["alpha", "beta", "spare"]}],
  "router": {"max_attempts": 2, "backoff_base_ms": 5, "backoff_cap_ms": 20,
             "breaker_failures": 1000, "breaker_min_volume": 1000},
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": "$2", "batch_ms": 50},
  "console": {"refresh_ms": 200}
}
JSON
}
config "$TMP/sb.json" "$TMP/sb.db"

lacks() { ! cap "$1" | matches -E -- "$2"; }
count_is() { [[ $(cap "$1" | grep -cE -- "$2") == "$3" ]]; }
CUR=main
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump "$CUR"; }
cmd() { keys "$1" :; text "$1" "$2"; keys "$1" Enter; } # cmd SESSION LINE

start_console() { # start_console SESSION ARGS...
  local s=$1; shift
  local pf=$TMP/$s.port
  cat > "$TMP/$s.sh" <<SH
cd "$TMP"
export SIM_KEY=$SIM_KEY ADMIN_TOKEN=$ADMIN_TOKEN LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color
export SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$TMP/san-$s" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$TMP/san-$s"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$TMP/san-$s"
"$SB" console $* --log "$TMP/$s.log"
exec sleep 3600
SH
  "${TM[@]}" new-session -d -s "$s" -x 200 -y 50 "bash $TMP/$s.sh"
  eventually "$WAIT" has "$s" '^TARGET +STATE'
}

call() { # call PORT REQUEST-ID: prints the status
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    -H "x-request-id: $2" --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$1/v1/chat/completions"
}

start_console main -c "$TMP/sb.json" --port-file "$TMP/main.port" || { dump main; finish; exit 1; }
read -r PORT < "$TMP/main.port"
SB_PORT=$PORT

# ---- request ids ------------------------------------------------------------------------------
check "a call with a request id is answered" test "$(call "$PORT" req-tl-one)" = 200
keys main Enter
check "recent calls show the call's request id" eventually "$WAIT" has main ' ok .* req-tl-one'
esc main
cmd main "req req-tl-one"
check ":req opens the call from the ledger" eventually "$WAIT" has main 'request id +req-tl-one'
check "with its target and model" has main 'target +alpha +model gpt-4o-mini'
check "its status and attempts" has main 'status +200 to the client'
check "its attempts" has main 'attempts +1 \(retries/fallbacks 0'
check "its timings and cost" has main 'latency +[0-9.]+ ms.*first byte'
esc main
cmd main "req no-such-request"
check ":req of an unknown id says so" eventually "$WAIT" has main 'no call with request id no-such-request'

# ---- failures filed under the failing target, aggregated ---------------------------------------
cmd main "drain spare"
check "the drain is on the timeline" eventually "$WAIT" has main 'operator +spare .*drain'
sim_behavior alpha '{"outage":"refuse"}'
r=$(load --n 30 --c 3 --model chat)
check "alpha refusing, every call is answered by beta" test "$(echo "$r" | json_get 'j["ok"]')" = 30
check "the failures are one line under alpha, naming beta" \
  eventually "$WAIT" has main 'fallback +alpha +alpha: [0-9]+ failures \(connect\) -> fallback to beta'
check "the count is updated in place: one fallback line, 30 failures" \
  eventually "$WAIT" has main 'alpha: 30 failures \(connect\)'
check "only one fallback line" count_is main ' fallback +alpha ' 1
keys main Enter
check "alpha's detail view lists its own failures" eventually "$WAIT" has main 'EVENTS for alpha +[1-9]'
check "including the fallback line" has main 'fallback +alpha +alpha: 30 failures'
check "and its recent calls show the failed attempts with request ids" has main ' connect .* [0-9a-f]{16}'
esc main
sim_behavior alpha '{"reset":true}'

# ---- filters ---------------------------------------------------------------------------------
keys main Tab
check "Tab focuses the events pane" eventually "$WAIT" has main 'EVENTS .*\[Up/Down'
keys main K
check "K: key events only (title)" eventually "$WAIT" has main 'EVENTS \[key events\]'
check "K: the fallback churn is hidden" lacks main ' fallback +alpha '
check "K: the operator action stays" has main 'operator +spare'
keys main K
check "K again: every event" eventually "$WAIT" has main ' fallback +alpha '
keys main v v
check "v twice: breaker events only" eventually "$WAIT" has main 'EVENTS \[kind breaker\]'
check "no breaker event: the pane says the filter hides everything" \
  has main 'no event matches the filter'
keys main v v
check "v twice more: fallbacks only" eventually "$WAIT" has main 'EVENTS \[kind fallback\]'
check "v: the fallback line shows, the operator action does not" \
  eval "has main ' fallback +alpha ' && lacks main 'operator +spare'"
keys main K K
keys main /
text main drain
check "/ search: the title shows it" eventually "$WAIT" has main 'EVENTS \[/drain\]'
check "/ search: matching lines only" has main 'operator +spare' 
check "/ search: the rest is hidden" lacks main ' fallback +alpha '
esc main
check "Esc clears the search" eventually "$WAIT" has main ' fallback +alpha '
keys main /
text main "fallback to beta"
keys main Enter
check "Enter keeps the search" eventually "$WAIT" has main 'EVENTS \[/fallback to beta\]'
keys main Enter
check "Enter opens the call the top line names" eventually "$WAIT" has main 'request id +[0-9a-f]{16}'
check "it fell back from alpha to beta" has main 'target +beta'
check "after 2 attempts" has main 'attempts +2 \(retries/fallbacks 1'
esc main
keys main /
esc main
check "/ then Esc clears the kept search" eventually "$WAIT" has main 'operator +spare'
keys main T
check "T: the selected target's events only" eventually "$WAIT" has main 'EVENTS \[target alpha\]'
check "T: another target's line is hidden" lacks main 'operator +spare'
keys main T
check "T again: every target" eventually "$WAIT" has main 'operator +spare'

# ---- N newer, follow, Tab keeps following ----------------------------------------------------
first_event() { cap main | grep -A1 -E '^ EVENTS' | tail -1; }
cmd main "weight spare 2"
cmd main "weight spare 1"
check "two more operator events to scroll through" eventually "$WAIT" has main 'EVENTS +4 events'
keys main Down Down
check "scrolled back: the title says 2 newer" eventually "$WAIT" has main '2 newer \(Home: follow\)'
cmd main "weight beta 3"
check "a new event while scrolled back: 3 newer, the place is kept" \
  eventually "$WAIT" has main '3 newer \(Home: follow\)'
check "the new event is not on top while scrolled back" eval '! first_event | grep -q "weight beta"'
keys main Home
check "Home follows: no 'newer', the newest on top" eventually "$WAIT" eval 'first_event | grep -q "weight beta.*3"'
check "no N newer while following" lacks main 'newer \(Home'
keys main Tab
cmd main "weight beta 4"
keys main Tab
check "Tab away and back keeps following: the newest on top" \
  eventually "$WAIT" eval 'first_event | grep -q "weight beta.*4"'
check "and no 'newer' marker" lacks main 'newer \(Home'
keys main Tab

# ---- attached: :req through GET /admin/requests/ID ---------------------------------------------
config "$TMP/serve.json" "$TMP/serve.db"
start_serve "$TMP/serve.json" || { finish; exit 1; }
check "a call to the serve with a request id" test "$(call "$SB_PORT" req-tl-attached)" = 200
CUR=att
start_console att --attach "http://127.0.0.1:$SB_PORT" --token-env ADMIN_TOKEN || dump att
cmd att "req req-tl-attached"
check "attached: :req opens the call from the serve's ledger" \
  eventually "$WAIT" has att 'request id +req-tl-attached'
check "attached: with its target and status" has att 'target +alpha'
esc att
sim_behavior alpha '{"outage":"refuse"}'
r=$(load --n 20 --c 2 --model chat)
check "attached: the serve answers every call through beta" \
  test "$(echo "$r" | json_get 'j["ok"]')" = 20
check "attached: the failures are one aggregate line under alpha, updated to 20" \
  eventually "$WAIT" has att 'fallback +alpha +alpha: 20 failures \(connect\) -> fallback to beta'
check "attached: only one fallback line" count_is att ' fallback +alpha ' 1
sim_behavior alpha '{"reset":true}'
cmd att "req no-such-request"
check "attached: an unknown id says so" eventually "$WAIT" has att 'no call with request id'

# ---- both consoles quit cleanly; no sanitizer report ------------------------------------------
gone() { ! pgrep -f "$TMP/$1.log" >/dev/null; }
keys att q
check "q detaches the attached console" eventually "$WAIT" gone att
keys main q
sleep 0.5
has main 'Quit\?' && keys main y
check "the embedded console quits" eventually "$WAIT" gone main
san=$(cat "$TMP"/san-* 2>/dev/null | head -40)
check "no sanitizer report from either console" test -z "$san"
[[ -n $san ]] && echo "$san"
serve_san=$(grep -hE 'Sanitizer|runtime error' "$TMP"/serve.err 2>/dev/null | head -5)
check "no sanitizer report from the serve" test -z "$serve_san"
finish
