#!/usr/bin/env bash
# The board's figures in an incident (issue 15), driven like a person would in a real tmux
# session (private socket), every wait bounded:
#  - problems first: a target whose breaker opens moves to the top; o toggles config order;
#    N / X sort by one column (again: reverse), the title and the header name the order;
#    a click on a column title sorts, a click on a row selects it
#  - the selected failing row stays red (capture-pane -e: the STATE cell in the breaker
#    colour, only the name cell reversed); the line under the table leads with the reason
#  - P shows what the probe found, not the weight; a probe that fails in half-open extends the
#    countdown and the timeline says so
#  - at 60 columns a read-only console keeps READ-ONLY and the override count in the header,
#    and marks the rows the table hides
#  - an open breaker without traffic shows a dash for ERR% and P95 once the minute has passed
#    (waits ~60 s: normal tree only)
#  - SIGHUP with a rejected file says REJECTED, never "config reloaded"
source "$(dirname "$0")/lib.sh"


export SIM_KEY=sim-key-board
start_sim alpha --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim beta --key "$SIM_KEY" --token-rate 0 || exit 1
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"interval_ms": 600000}},
    {"name": "beta", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o", "probe": {"interval_ms": 600000}},
    {"name": "gamma", "kind": "gemini", "api_key_env": "SB_TEST_UNSET_KEY",
     "model": "gemini-2.5-flash"}
  ],
  "routes": [ {"name": "chat", "strategy": "weighted", "targets": ["alpha", "beta"]} ],
  "router": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 20,
             "breaker_failures": 3, "breaker_cooldown_ms": 60000},
  "gateway": {"listen": "127.0.0.1:0"},
  "console": {"theme": "default", "refresh_ms": 100}
}
JSON
unset SB_TEST_UNSET_KEY

CUR=main
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump "$CUR"; }
first_row_is() { cap main | grep -A1 '^TARGET' | tail -1 | grep -q "^$1 "; }
# cell TARGET TITLE: the cell under a right-aligned column title in TARGET's row
cell() {
  cap main | python3 -c '
import sys
t, title = sys.argv[1], sys.argv[2]
lines = sys.stdin.read().split("\n")
hdr = next(l for l in lines if l.startswith("TARGET"))
row = next(l for l in lines if l.startswith(t + " "))
e = hdr.index(title) + len(title)
print(row[:e].split()[-1])' "$1" "$2"
}
cell_is() { [[ "$(cell "$1" "$2" 2>/dev/null)" == "$3" ]]; }

# start SESSION COLS ROWS [args]: the embedded console in a tmux session
start() {
  local s=$1 cols=$2 rows=$3; shift 3
  cat > "$TMP/$s.sh" <<SH
cd "$TMP"
export SIM_KEY=$SIM_KEY LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$TMP/san-$s" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$TMP/san-$s"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$TMP/san-$s"
"$SB" console -c "$TMP/sb.json" --port-file "$TMP/$s.port" --log "$TMP/$s.log" $*
exec sleep 3600
SH
  "${TM[@]}" new-session -d -s "$s" -x "$cols" -y "$rows" "bash $TMP/$s.sh"
  wait_for "$TMP/$s.port" "$WAIT" && eventually "$WAIT" has "$s" '^TARGET'
}

start main 120 32 || { dump main; finish; exit 1; }
read -r SB_PORT < "$TMP/main.port"

# ---- order and sorting -------------------------------------------------------------------------
check "the default order is problems first, and the header says so" \
  eventually "$WAIT" has main 'problems first'
check "with no problem, config order: alpha first" first_row_is alpha
load --n 20 --c 2 --model chat >/dev/null
keys main N
check "N sorts by TARGET (the title and the header say so)" \
  eventually "$WAIT" has main '^TARGET▲ .*|sort TARGET ▲'
check "...A-Z" first_row_is alpha
keys main N
check "N again reverses it" eventually "$WAIT" first_row_is gamma
keys main X
check "X sorts by ERR%, shown in its title" eventually "$WAIT" has main '▼ERR%'
keys main o
check "o goes back to problems first" eventually "$WAIT" has main 'problems first \(o: config'

# ---- mouse (SGR reports, as xterm sends them: ESC [ < button ; x ; y M, 1-based) --------------
click() { # click SESSION X Y (0-based cells): press and release
  "${TM[@]}" send-keys -t "$1" -l -- $'\e'"[<0;$(($2 + 1));$(($3 + 1))M"
  "${TM[@]}" send-keys -t "$1" -l -- $'\e'"[<0;$(($2 + 1));$(($3 + 1))m"
}
title_y=$(cap main | grep -n '^TARGET' | head -1 | cut -d: -f1); title_y=$((title_y - 1))
calls_x=$(cap main | grep '^TARGET' | head -1 | python3 -c 'import sys; print(sys.stdin.read().index("CALLS"))')
click main "$calls_x" "$title_y"
check "a click on a column title sorts by it" eventually "$WAIT" has main 'sort CALLS ▼'
keys main o
eventually "$WAIT" has main 'problems first'
click main 2 $((title_y + 2))
check "a click on a row selects it (the line under the table follows)" \
  eventually "$WAIT" has main '^ beta healthy: '

# ---- an outage: the open breaker on top, red when selected, reason first -----------------------
sim_behavior beta '{"outage":"refuse"}'
load --n 30 --c 2 --model chat >/dev/null
check "beta's breaker opens" eventually "$WAIT" has main '^beta +OPEN'
check "problems first: the open breaker moves to the top" eventually "$WAIT" first_row_is beta
keys main Home
check "the line under the table leads with the reason" \
  eventually "$WAIT" has main '^ beta OPEN [0-9ms]+: 3 consecutive failures \(last: connect\), half-open in'
red_row() { # the selected row: name reversed, STATE in the breaker colour (bright red)
  local row
  row=$("${TM[@]}" capture-pane -e -p -t main | grep -a 'beta' | grep -a 'OPEN' | head -1)
  [[ $row =~ $'\e'\[[0-9\;]*7[0-9\;]*m\ ?beta ]] && [[ $row =~ $'\e'\[[0-9\;]*9[1][0-9\;]*m\ *OPEN ]]
}
still_alive() { has main 'problems first'; }
check "the console still answers after the clicks" eventually "$WAIT" still_alive
check "the selected failing row is red (capture-pane -e), only its name reversed" \
  eventually "$WAIT" red_row
keys main Down
sel_moved() { ! red_row && "${TM[@]}" capture-pane -e -p -t main | grep -a 'OPEN' |
  grep -aqE $'\e\\[[0-9;]*91[0-9;]*m *OPEN'; }
check "unselected, the row stays red" eventually "$WAIT" sel_moved
keys main Home

# ---- P: the probe's result; a failed probe in half-open extends the countdown -------------------
keys main P
check "P on the dead target says what the probe found" \
  eventually "$WAIT" has main 'probe beta: FAILED in [^,]+, breaker stays open, half-open in [0-9ms]+: connect'
lacks_weight() { ! has main 'probe beta: weight'; }
check "...not the weight" lacks_weight
sim_behavior beta '{"reset":true}'
keys main P
check "P on the recovered target: its status, time and the breaker's move" \
  eventually "$WAIT" has main 'probe beta: 200 in [<0-9.]+m?s, breaker -> half-open'
sim_behavior beta '{"outage":"refuse"}'
keys main P
check "a probe failing in half-open reopens the breaker" \
  eventually "$WAIT" has main 'probe beta: FAILED .*breaker -> open'
check "...and the timeline says the countdown was extended, with its new value" \
  eventually "$WAIT" has main 'half-open -> open: probe failed; countdown extended: half-open in [0-9]+s'
check "the countdown shows the new value (the 60 s cooldown doubled: 2 minutes)" \
  eventually "$WAIT" has main '^beta +OPEN (1m5[0-9]|2m00)s'

# ---- 60 columns, read-only: header keeps READ-ONLY and overrides; hidden rows are marked ------
CUR=narrow
start narrow 60 12 --readonly || { dump narrow; finish; exit 1; }
check "60 columns: READ-ONLY stays in the header" eventually "$WAIT" has narrow '^ *sb .*READ-ONLY'
check "60 columns: the override count stays in the header" has narrow 'ovr 0'
check "a short table marks the rows it hides" has narrow 'more below'
CUR=main

# ---- a rejected reload never reads "config reloaded" --------------------------------------------
cp "$TMP/sb.json" "$TMP/sb.good"
echo '{"providers": [' > "$TMP/sb.json"
cpid=$(pgrep -P "$("${TM[@]}" display -p -t main '#{pane_pid}')" -x switchboard)
kill -HUP "$cpid"
check "SIGHUP with a broken file: the message line says REJECTED" \
  eventually "$WAIT" has main 'config reload REJECTED, the running config stays'
no_reloaded() { ! has main 'config reloaded'; }
check "...and never 'config reloaded'" no_reloaded
rejected_red() { # the events pane's line: its kind cell in the error (breaker) colour, not cyan
  local row
  row=$("${TM[@]}" capture-pane -e -p -t main | grep -a 'config reload rejected' | head -1)
  [[ $row =~ $'\e'\[[0-9\;]*91[0-9\;]*m\ *config ]]
}
check "...and the events pane draws the rejected reload in the error colour" \
  eventually "$WAIT" rejected_red
cp "$TMP/sb.good" "$TMP/sb.json"
kill -HUP "$cpid"
check "SIGHUP with a good file: config reloaded" eventually "$WAIT" has main 'SIGHUP: config reloaded'

# ---- no traffic: ERR% and P95 are dashes once the minute has passed -----------------------------
if [[ $SB_BUILD == *asan* || $SB_BUILD == *tsan* ]]; then
  echo "skip - the one-minute window (normal tree only)"
else
  check "a breaker open for a minute without traffic: ERR% is a dash" \
    eventually 90 cell_is beta ERR% -
  check "...and P95 a dash, not <1ms" cell_is beta P95 -
  check "...and the line under the table says so" has main 'no traffic in the last minute'
fi

san=$(cat "$TMP"/san-* 2>/dev/null | grep -E 'Sanitizer|runtime error' | head -5)
check "no sanitizer report" test -z "$san"
keys main q
finish
