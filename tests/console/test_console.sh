#!/usr/bin/env bash
# The console, driven like a person would: a real tmux session (private socket), keys sent
# with send-keys, the screen read with capture-pane. Simulated providers behind the console's
# own gateway; every wait is bounded (polls the screen), never a fixed sleep as an assertion.
#  - the board lists every target; counts rise under traffic
#  - an outage opens the breaker (with its reason) within seconds; traffic moves to the other
#    target; r resets it
#  - w sets a weight to 0 and the traffic share moves; pin and drain ask y/n; u undoes
#  - the : line (completion, weight with expiry, route explain), ? help, / filter, themes
#  - the prompt pane streams two answers side by side with their figures; 1 votes (win rate
#    on the board); F2 saves the comparison
#  - 80x24 and back; --readonly refuses changes
#  - q (asking first while the gateway is busy; refused when read-only), SIGTERM and a fatal
#    signal all give the terminal back; nothing is left running
source "$(dirname "$0")/lib.sh"

sed -n '/<!-- console-keys:start -->/,/<!-- console-keys:end -->/p' "$root/README.md" |
  sed '1d;$d' > "$TMP/doc-keys.md"
"$SB" console --keys > "$TMP/code-keys.md"
check "the documented key table is what 'switchboard console --keys' prints" \
  diff -u "$TMP/code-keys.md" "$TMP/doc-keys.md"


export SIM_KEY=sim-key-console
start_sim alpha --key "$SIM_KEY" --token-rate 200 || exit 1
start_sim beta --key "$SIM_KEY" --token-rate 200 || exit 1
start_sim delta --no-auth --token-rate 200 || exit 1

cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}, "probe": {"interval_ms": 60000}},
    {"name": "beta", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}",
     "api_key_env": "SIM_KEY", "model": "claude-haiku-4-5",
     "price": {"input_per_mtok": 3, "output_per_mtok": 15}, "probe": {"interval_ms": 60000}},
    {"name": "gamma", "kind": "gemini", "api_key_env": "SB_TEST_UNSET_KEY",
     "model": "gemini-2.5-flash"},
    {"name": "delta", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[delta]}/v1",
     "model": "llama3.2", "price": {"input_per_mtok": 0, "output_per_mtok": 0},
     "probe": {"interval_ms": 60000}}
  ],
  "routes": [
    {"name": "chat", "strategy": "weighted", "targets": ["alpha", "beta"], "fallback": ["spare"]},
    {"name": "spare", "targets": ["delta"]}
  ],
  "router": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 20,
             "breaker_failures": 3, "breaker_cooldown_ms": 120000},
  "gateway": {"listen": "127.0.0.1:0"},
  "console": {"theme": "default", "refresh_ms": 200}
}
JSON
unset SB_TEST_UNSET_KEY

cell_ge() { local v; v=$(cell "$1" "$2" "$3") && [[ $v =~ ^[0-9]+$ ]] && ((v >= $4)); }
pane_pid() { "${TM[@]}" display -p -t "$1" '#{pane_pid}'; }
console_pid() { pgrep -P "$(pane_pid "$1")" -x switchboard; }
alt_screen_off() { [[ $("${TM[@]}" display -p -t "$1" '#{alternate_on}') == 0 ]]; }
# On a failed check, show the screen of the session under test (CUR) to make it debuggable.
CUR=main
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump "$CUR"; }

# start_console SESSION COLS ROWS [console args...]: runs the console in a shell script that
# reports its exit status and the terminal modes afterwards (so we can see it restored them).
start_console() {
  local s=$1 cols=$2 rows=$3; shift 3
  local pf=$TMP/$s.port
  rm -f "$pf"
  cat > "$TMP/$s.sh" <<SH
cd "$TMP"
export SIM_KEY=$SIM_KEY LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color
export SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES ${CONSOLE_ENV:-}
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$TMP/san-$s" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$TMP/san-$s"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$TMP/san-$s"
${CONSOLE_PRE:-}
"$SB" console -c "$TMP/sb.json" --port-file "$pf" --log "$TMP/$s.log" $*
echo "EXIT rc=\$?"
stty -a | tr ' ;' '\n\n' | grep -xE -- '-?(icanon|echo)' | tr '\n' ' '; echo "<- modes"
exec sleep 3600
SH
  "${TM[@]}" new-session -d -s "$s" -x "$cols" -y "$rows" "bash $TMP/$s.sh"
  if ! wait_for "$pf" "$WAIT"; then
    echo "console $s did not start:"; cap "$s"; cat "$TMP/$s.log" 2>/dev/null; return 1
  fi
  eventually "$WAIT" has "$s" '^TARGET +STATE'
}

restored() { # SESSION: the shell's terminal is back in cooked mode, off the alternate screen
  has "$1" 'icanon echo <- modes' && alt_screen_off "$1"
}

# ---- the board -------------------------------------------------------------------------------
start_console main 160 48 || { dump main; finish; exit 1; }
read -r PORT < "$TMP/main.port"
SB_PORT=$PORT
all_targets() { for t in alpha beta gamma delta; do has main "^$t " || return 1; done; }
check "the board lists every configured target" eventually "$WAIT" all_targets
check "a target without its key says so" eventually "$WAIT" cell_is main gamma STATE no
check "the header shows the gateway address" has main "127\.0\.0\.1:$PORT"

r=$(load --n 40 --c 4 --model chat)
check "traffic: 40 calls answered" test "$(echo "$r" | json_get 'j["ok"]')" = 40
check "counts rise under traffic (alpha)" eventually "$WAIT" cell_ge main alpha CALLS 10
check "counts rise under traffic (beta)" eventually "$WAIT" cell_ge main beta CALLS 10
check "a sparkline shows the traffic" eventually "$WAIT" has main '^alpha .*[▁▂▃▄▅▆▇█]'

# ---- outage: breaker opens with its reason, traffic moves --------------------------------------
sim_behavior alpha '{"outage":"refuse"}'
r=$(load --n 30 --c 2 --model chat)
check "outage: clients still get answers" test "$(echo "$r" | json_get 'j["failed"]')" = 0
check "outage: alpha's breaker shows OPEN" eventually "$WAIT" cell_is main alpha STATE OPEN
check "outage: the reason is on screen" eventually "$WAIT" has main '^ alpha OPEN [0-9ms]+: 3 consecutive failures \(last: connect\), half-open in'
check "outage: the timeline has the breaker transition" has main 'breaker +alpha +breaker alpha: closed -> open'
check "outage: the timeline files the fallback under alpha, naming beta" has main 'fallback +alpha .*fallback to beta'
a_calls=$(cell main alpha CALLS); b_calls=$(cell main beta CALLS)
r=$(load --n 20 --c 2 --model chat)
check "outage: new traffic goes to beta" test "$(echo "$r" | json_get 'j["by_target"].get("beta",0)')" = 20
check "outage: beta's count takes the traffic" eventually "$WAIT" cell_ge main beta CALLS $((b_calls + 20))
check "outage: alpha gets no more calls" cell_is main alpha CALLS "$a_calls"
sim_behavior alpha '{"reset":true}'
keys main r   # alpha is the selected (first) row
check "r asks first, naming the breaker and the probe" \
  eventually "$WAIT" has main 'reset alpha\? y/n'
check "the reset question names the open breaker" has main 'Now: breaker open \(half-open in'
keys main y
closed_again() { local v; v=$(cell main alpha STATE) && [[ $v == healthy || $v == degraded ]]; }
check "r resets the breaker (closed: healthy, or degraded by the errors of the last minute)" \
  eventually "$WAIT" closed_again
check "the reset is an operator event, naming the operator" eventually "$WAIT" has main 'operator +alpha +console:[A-Za-z0-9._-]+: reset alpha'

# ---- weight, pin, drain, undo -------------------------------------------------------------------
load --n 20 --c 2 --model chat >/dev/null  # fresh traffic on both, so alpha has a share to lose
keys main w
check "w opens a weight field" eventually "$WAIT" has main 'weight for alpha \(now 1, configured 1\)'
text main 0; keys main Enter
check "w 0 sets alpha's weight to 0" eventually "$WAIT" cell_is main alpha W 0
share0=$(cell main alpha SHARE); share0=${share0%\%}
calls0=$(cell main alpha CALLS)
r=$(load --n 40 --c 2 --model chat)
check "weight 0: every new call goes to beta" test "$(echo "$r" | json_get 'j["by_target"].get("alpha",0)')" = 0
share_dropped() { local s; s=$(cell main alpha SHARE) && s=${s%\%} && ((s < share0)); }
check "weight 0: alpha's traffic share falls (was ${share0}%)" eventually "$WAIT" share_dropped
check "weight 0: alpha's calls stay put" cell_is main alpha CALLS "$calls0"

keys main j p  # beta
check "p asks for confirmation" eventually "$WAIT" has main 'pin beta\? .*y/n'
keys main n
check "n cancels the pin" eventually "$WAIT" has main 'cancelled: nothing changed'
check "cancelled: beta is not pinned" cell_not main beta STATE pinned
keys main p
eventually "$WAIT" has main 'pin beta\? .*y/n'
keys main y
check "p then y pins beta" eventually "$WAIT" cell_is main beta STATE pinned
keys main j j d  # delta
check "d asks for confirmation" eventually "$WAIT" has main 'drain delta\? .*y/n'
keys main y
check "d then y drains delta" eventually "$WAIT" cell_is main delta STATE drained
check "the header counts the overrides" has main 'overrides 3'
keys main u
check "u previews what it restores" eventually "$WAIT" has main "undo console:[A-Za-z0-9._-]+'s drain on delta .*\\? y/n"
keys main y
check "u y undoes the drain" eventually "$WAIT" cell_not main delta STATE drained
keys main u
eventually "$WAIT" has main "'s pin on beta .*\\? y/n"
keys main y
check "u y again undoes the pin" eventually "$WAIT" cell_not main beta STATE pinned
keys main u
eventually "$WAIT" has main "'s weight on alpha .*\\? y/n"
keys main y
check "u y again restores alpha's weight" eventually "$WAIT" cell_is main alpha W 1

# ---- the : line -----------------------------------------------------------------------------------
keys main :; text main "dr"; keys main Tab
check ": completes command names" eventually "$WAIT" has main '^:drain *$'
text main "al"; keys main Tab
check ": completes target names" eventually "$WAIT" has main '^:drain alpha *$'
esc main
check "Esc leaves the : line without applying" cell_not main alpha STATE drained
keys main Home  # select alpha: the info line under the table is about it
keys main :; text main "weight alpha 2 for 10m"; keys main Enter
check ":weight with an expiry applies at once" eventually "$WAIT" cell_is main alpha W 2
check "the override's expiry is shown" eventually "$WAIT" has main 'override expires in (9m5[0-9]s|10m)'
keys main :; text main "pin beta"; keys main Enter
check ":pin applies without asking (the fast path)" eventually "$WAIT" cell_is main beta STATE pinned
keys main :; text main "clear beta"; keys main Enter
check ":clear removes the pin" eventually "$WAIT" cell_not main beta STATE pinned
keys main :; text main "drain nosuch"; keys main Enter
check ":drain of an unknown target shows the router's answer" eventually "$WAIT" has main "no target named 'nosuch'"
keys main :; text main "frobnicate"; keys main Enter
check "an unknown command is named" eventually "$WAIT" has main "unknown command 'frobnicate'"
keys main :; text main "route explain chat"; keys main Enter
check ":route explain shows the router's explanation" eventually "$WAIT" has main 'route: chat \(by model name\)'
check "the explanation names the pick" has main 'pick: '
esc main

# ---- help, filter, faults, theme, export -------------------------------------------------------
keys main '?'
check "? shows help generated from the key table" eventually "$WAIT" has main 'Everywhere'
keys main Tab End  # Tab: the full reference
check "help lists the commands with usage" eventually "$WAIT" has main ':weight TARGET N \[for DURATION\]'
esc main
check "Esc closes the help" eventually "$WAIT" lacks_now main 'Everywhere \(board'
keys main /; text main del
only_delta() { has main '^delta ' && lacks_now main '^alpha ' && lacks_now main '^beta '; }
check "/ filters the targets as you type" eventually "$WAIT" only_delta
esc main
check "Esc clears the filter" eventually "$WAIT" all_targets
keys main F
check "F shows faults only (gamma has no key)" eventually "$WAIT" has main '^gamma '
check "F hides healthy targets" eventually "$WAIT" lacks_now main '^delta '
keys main F
eventually "$WAIT" all_targets
keys main s
check "s sorts by a column (the first: the name)" eventually "$WAIT" has main 'sort TARGET ▲'
keys main S
first_row_is() { cap main | grep -A1 '^TARGET' | tail -1 | grep -q "^$1 "; }
check "S reverses the sort" eventually "$WAIT" first_row_is gamma
keys main :; text main "sort ERR%"; keys main Enter
check ":sort picks a column by its title" eventually "$WAIT" has main '▼ERR%'
keys main :; text main "sort"; keys main Enter
check ":sort alone goes back to config order" eventually "$WAIT" first_row_is alpha
keys main t
check "t cycles the theme" eventually "$WAIT" has main 'theme dark'
keys main E
check "E exports the event timeline" eventually "$WAIT" has main 'events written to '
f=$(ls "$TMP"/switchboard-events-*.log 2>/dev/null | head -1)
check "the export holds the breaker transition" grep -q 'breaker alpha: closed -> open' "${f:-/dev/null}"

# ---- the prompt pane -------------------------------------------------------------------------------
keys main Home c
check "c opens the prompt pane" eventually "$WAIT" has main 'PROMPT PANE'
check "the first two targets are picked" has main '\[x\] alpha +\[x\] beta'
text main "Compare breakers: naïve ünïcödé 日本語 ok"
check "the prompt renders UTF-8" eventually "$WAIT" has main 'naïve ünïcödé 日本語 ok'
keys main C-d
side_by_side() { has main '1 alpha .*2 beta '; }
check "two answers, side by side" eventually "$WAIT" side_by_side
figures_twice() { cap main | grep -E 'tok/s.*tok/s' | grep -qE 'ttft.*ttft'; }
check "each answer shows TTFT, tokens/s (and the rest) under it" eventually "$WAIT" figures_twice
check "figures include tokens in/out and cost" has main 'in [0-9]+ +out [0-9]+ .*\$'
check "both columns hold answer text" has main '^│[A-Z][^│]*││[A-Z]'
keys main 1
check "1 marks the first answer better" eventually "$WAIT" has main "marked alpha's answer"
keys main F2
check "F2 saves the comparison" eventually "$WAIT" has main 'saved .*switchboard-compare-.*\.md'
md=$(ls "$TMP"/switchboard-compare-*.md 2>/dev/null | head -1)
check "the saved file holds the prompt" grep -q 'naïve ünïcödé 日本語' "${md:-/dev/null}"
check "the saved file holds both answers and the vote" \
  bash -c "grep -q '## 1. alpha' '${md:-/dev/null}' && grep -q '## 2. beta' '${md:-/dev/null}' && grep -q 'Better answer: \*\*alpha\*\*' '${md:-/dev/null}'"
check "the saved file holds the figures" grep -q '| TTFT | latency | tokens in | tokens out | tokens/s | cost |' "${md:-/dev/null}"
esc main
check "Esc goes back to the board" eventually "$WAIT" has main '^TARGET +STATE'
check "the vote shows as a win rate" eventually "$WAIT" cell_is main alpha WIN 100%
check "the other target's win rate" cell_is main beta WIN 0%
vote_rows() { [[ $(sqlite3 -readonly "$TMP/switchboard.db" "SELECT group_concat(target || ':' || score, ' ') FROM (SELECT target, score FROM feedback WHERE source = 'console' ORDER BY target)" 2>/dev/null) == "alpha:1.0 beta:-1.0" ]]; }
check "the vote is console feedback in the ledger (+1 alpha, -1 beta)" eventually "$WAIT" vote_rows

# ---- 80x24 and back ------------------------------------------------------------------------------
"${TM[@]}" resize-window -t main -x 80 -y 24
small() { has main '^TARGET +STATE' && lacks_now main 'TOK IN/OUT' && all_targets; }
check "80x24: the board fits (low-priority columns dropped)" eventually "$WAIT" small
widest() { cap main | python3 -c 'import sys; print(max((len(l) for l in sys.stdin.read().split("\n")), default=0))'; }
fits() { [[ $(widest) -le 80 ]]; }
check "80x24: no line is wider than the terminal" fits
header_and_bar() { has main '^ switchboard ' && has main 'F1 Help'; }
check "80x24: the header and key bar are there" header_and_bar
check "80x24: cells stay under their titles" cell_is main alpha W 2
"${TM[@]}" resize-window -t main -x 160 -y 48
check "back to 160x48: the dropped columns return" eventually "$WAIT" has main 'TOK IN/OUT'

# ---- read-only ---------------------------------------------------------------------------------------
CUR=ro
CONSOLE_ENV=NO_COLOR=1 start_console ro 120 40 --readonly || dump ro
check "NO_COLOR gives the mono theme" has ro 'theme mono'
keys ro d
check "--readonly refuses a key" eventually "$WAIT" has ro 'read-only console: drain refused'
keys ro :; text ro "weight alpha 0"; keys ro Enter
check "--readonly refuses the : line" eventually "$WAIT" has ro 'read-only console: weight refused'
check "--readonly: nothing changed" cell_is ro alpha W 1
check "--readonly: the header says READ-ONLY" has ro 'READ-ONLY'
keys ro q
check "--readonly: q cannot stop the gateway" eventually "$WAIT" has ro 'read-only console: quitting would stop the gateway'
check "--readonly: ...and the console stays" lacks_now ro 'EXIT rc='
kill -TERM "$(console_pid ro)"
check "--readonly: SIGTERM still stops it" eventually "$WAIT" has ro 'EXIT rc=0'

# ---- SIGHUP reloads; SIGTERM and fatal signals restore the terminal ----------------------------------
CUR=sig
CONSOLE_PRE='ulimit -Sn 256' start_console sig 120 40 || dump sig
pid=$(console_pid sig)
check "the console raises its open-file limit to the hard limit" nofile_raised "$pid"
kill -HUP "$pid"
check "SIGHUP reloads the config (an event)" eventually "$WAIT" has sig 'config +config reloaded'
kill -TERM "$pid"
check "SIGTERM: the console exits cleanly" eventually "$WAIT" has sig 'EXIT rc=0'
check "SIGTERM: the terminal is restored" eventually "$WAIT" restored sig
gone() { ! kill -0 "$1" 2>/dev/null; }
check "SIGTERM: the process is gone" eventually "$WAIT" gone "$pid"

CUR=fatal
start_console fatal 100 30 || dump fatal
pid=$(console_pid fatal)
kill -ABRT "$pid"
check "fatal signal: the process dies" eventually "$WAIT" has fatal 'EXIT rc=[1-9]'
check "fatal signal: the terminal is restored anyway" eventually "$WAIT" restored fatal
rm -f "$TMP"/san-fatal*

# ---- quit ---------------------------------------------------------------------------------------------
CUR=main
pid=$(console_pid main)
keys main q
check "q with recent calls asks first, naming the gateway" \
  eventually "$WAIT" has main "Quit stops the gateway on 127\.0\.0\.1:$PORT \([0-9]+ connections, [0-9]+ calls in the last minute\)\. Quit\? y/N"
keys main n
check "n keeps the console (and the gateway)" eventually "$WAIT" has main 'not quitting: the gateway keeps serving'
keys main q
eventually "$WAIT" has main 'Quit\? y/N'
keys main y
check "q then y quits" eventually "$WAIT" has main 'EXIT rc=0'
check "quitting restores the terminal" eventually "$WAIT" restored main
check "quitting leaves no process behind" eventually "$WAIT" gone "$pid"
no_children() { [[ -z $(pgrep -P "$(pane_pid main)") ]]; }
check "nothing the console started is left (no child processes)" no_children

san=$(cat "$TMP"/san-* 2>/dev/null | head -40)
check "no sanitizer report from any console" test -z "$san"
[[ -n $san ]] && echo "$san"
finish
