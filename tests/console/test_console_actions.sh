#!/usr/bin/env bash
# Safe, attributable actions and the small screen, as an on-call engineer sees them at 80x24
# (a real tmux session on a private socket; every wait bounded):
#  - pin asks first, naming the routes that move and the estimated cost change;
#  - force-live and reset ask first, naming the breaker (open, its reason) and the probe;
#  - u previews whose change it undoes and what it restores; u of a change that already
#    expired says so and does nothing; u y u y (a repeated press) never brings back an
#    override that lapsed;
#  - every audit row in the ledger has who, target, action, before -> after and expiry
#    (undo and expiry lapses too), and the exported timeline says the same;
#  - the prompt pane with 4 targets at 80x24: the prompt box collapses after sending, each
#    column shows its cost, its own request id, the voted mark and the win rate;
#  - the help is one screen, and / searches it; Esc clears a kept filter;
#  - NO_COLOR gives no colour unless --theme names one.
source "$(dirname "$0")/lib.sh"

if ! command -v sqlite3 >/dev/null; then
  bad "sqlite3 is installed (reads the ledger's audit rows)"; finish; exit 1
fi

for s in alpha beta delta eps; do start_sim "$s" --no-auth --token-rate 400 || exit 1; done
cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "alpha", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[alpha]}/v1",
     "model": "m-a", "price": {"input_per_mtok": 1, "output_per_mtok": 2}, "probe": {"interval_ms": 60000}},
    {"name": "beta", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[beta]}/v1",
     "model": "m-b", "price": {"input_per_mtok": 30, "output_per_mtok": 60}, "probe": {"interval_ms": 60000}},
    {"name": "delta", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[delta]}/v1",
     "model": "m-d", "price": {"input_per_mtok": 1, "output_per_mtok": 1}, "probe": {"interval_ms": 60000}},
    {"name": "eps", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[eps]}/v1",
     "model": "m-e", "price": {"input_per_mtok": 2, "output_per_mtok": 2}, "probe": {"interval_ms": 60000}}
  ],
  "routes": [
    {"name": "chat", "strategy": "weighted", "targets": ["alpha", "beta"]},
    {"name": "spare", "targets": ["delta", "eps"]}
  ],
  "router": {"max_attempts": 3, "backoff_base_ms": 5, "backoff_cap_ms": 20,
             "breaker_failures": 3, "breaker_cooldown_ms": 120000},
  "ledger": {"path": "$TMP/ledger.db", "batch_ms": 50},
  "gateway": {"listen": "127.0.0.1:0"},
  "console": {"refresh_ms": 200}
}
JSON

CUR=main
eval "orig_$(declare -f bad)"
bad() { orig_bad "$@"; dump "$CUR"; }
# the row of a target on the board (its state is the second word)
row() { cap "$1" | grep -E "^$2 " | head -1; }
row_has() { row "$1" "$2" | grep -qE -- "$3"; }
row_lacks() { local r; r=$(row "$1" "$2") && [[ -n $r ]] && ! grep -qE -- "$3" <<<"$r"; }
sql() { sqlite3 -readonly "$TMP/ledger.db" "$1" 2>/dev/null; }

start_console() { # SESSION COLS ROWS ENV [args...]
  local s=$1 cols=$2 rows=$3 env=$4; shift 4
  local pf=$TMP/$s.port
  cat > "$TMP/$s.sh" <<SH
cd "$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$SWITCHBOARD_THEMES USER=oncall $env
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$TMP/san-$s" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$TMP/san-$s"
export TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$TMP/san-$s"
"$SB" console -c "$TMP/sb.json" --port-file "$pf" --log "$TMP/$s.log" $*
exec sleep 3600
SH
  "${TM[@]}" new-session -d -s "$s" -x "$cols" -y "$rows" "bash $TMP/$s.sh"
  wait_for "$pf" "$WAIT" || { echo "console $s did not start"; cap "$s"; return 1; }
  eventually "$WAIT" has "$s" '^TARGET +STATE'
}

start_console main 80 24 "" || { finish; exit 1; }
read -r SB_PORT < "$TMP/main.port"
r=$(load --n 40 --c 4 --model chat)
check "traffic on chat: 40 calls answered" test "$(echo "$r" | json_get 'j["ok"]')" = 40
load --n 10 --c 2 --model spare >/dev/null

# ---- pin: which routes move, and the cost ------------------------------------------------------
rate_shows() { # beta's REQ/S (the last minute) is not 0.0 yet right after the load
  cap main | grep -E '^beta ' | grep -qE ' (0\.[1-9]|[1-9][0-9]*\.[0-9]) '
}
check "the traffic shows in the last minute's rate" eventually "$WAIT" rate_shows
keys main Home j  # beta
keys main p
check "p asks first" eventually "$WAIT" has main 'pin beta\? y/n'
check "the pin preview names the route that moves, with its mix" \
  has main 'chat: (alpha|beta) [0-9]+% .*-> beta 100%'
check "the pin preview estimates the cost change per call" \
  has main '~\$[0-9.]+ -> \$[0-9.]+ a call'
check "...and per hour at the route's rate (beta costs more)" \
  has main '\(\+\$[0-9.]+/h at [0-9.]+ req/s\)'
keys main n
check "n: nothing pinned" eventually "$WAIT" has main 'cancelled: nothing changed'

# ---- force-live and reset name the breaker and the probe --------------------------------------
sim_behavior alpha '{"outage":"refuse"}'
load --n 30 --c 2 --model chat >/dev/null
check "outage: alpha's breaker opens" eventually "$WAIT" row_has main alpha 'OPEN'
keys main Home f
check "f asks first" eventually "$WAIT" has main 'force-live alpha\? y/n'
check "the force-live question names the open breaker and its reason" \
  has main 'Now: breaker open \(half-open in [0-9]+[smh]\): .*consecutive'
check "the force-live question names the probe" has main '(last probe|not probed yet|probes off)'
keys main y
check "f y: alpha forced live" eventually "$WAIT" row_has main alpha 'forced'
keys main r
check "r asks first, naming the breaker" eventually "$WAIT" has main 'reset alpha\? y/n'
check "the reset question says what it clears (forced live now)" has main 'forced live\)'
keys main n
eventually "$WAIT" has main 'cancelled: nothing changed'
sim_behavior alpha '{"reset":true}'

# ---- undo: preview, expired, repeated press ---------------------------------------------------
keys main u
check "u previews whose change it undoes" \
  eventually "$WAIT" has main "undo console:oncall's force-live on alpha \(at [0-9:]+\)\? y/n"
check "u previews what it restores" has main 'Restores alpha: weight 1\.'
keys main y
check "u y: alpha no longer forced" eventually "$WAIT" row_lacks main alpha 'forced'

keys main :; text main "drain delta for 2s"; keys main Enter
check ":drain with an expiry applies" eventually "$WAIT" row_has main delta drained
check "the drain lapses by itself" eventually "$WAIT" row_lacks main delta drained
keys main u
check "u of the lapsed drain says it already expired" \
  eventually "$WAIT" has main "the drain on delta already expired at [0-9:]+Z: nothing to undo"
check "...and does nothing (delta stays undrained)" row_lacks main delta drained

keys main :; text main "weight eps 0 for 2s"; keys main Enter
check "a weight override on eps" eventually "$WAIT" has main "ok: weight eps: weight 0 \(override\)"
keys main :; text main "drain eps"; keys main Enter
eventually "$WAIT" row_has main eps drained
lapsed() { sql "SELECT COUNT(*) FROM events WHERE user='expiry' AND target='eps'" | grep -qx 1; }
check "the weight override on eps lapses" eventually "$WAIT" lapsed
keys main u
eventually "$WAIT" has main "undo console:oncall's drain on eps .*\? y/n"
check "the undo preview does not bring the lapsed weight back" has main 'Restores eps: weight 1\.'
keys main y u y  # a repeated press, on whatever preview is on screen
check "u y u y: eps is undrained" eventually "$WAIT" row_lacks main eps drained
never_zero() {
  for _ in 1 2 3 4 5 6; do  # no change after the lapse left eps at weight 0
    sql "SELECT COUNT(*) FROM events WHERE target='eps' AND state_after LIKE 'weight 0%' AND ts_ms >
         (SELECT MAX(ts_ms) FROM events WHERE target='eps' AND user='expiry')" | grep -qx 0 || return 1
    row_has main eps '^eps +[a-z]+ +[A-Z]* +0 ' && return 1
    sleep 0.3
  done
}
check "...and its lapsed weight 0 never comes back" never_zero
check "the second press did nothing (the previewed change was gone) or undid the next, shown" \
  eventually "$WAIT" has main '(already undone|\? y/n|undid|nothing to undo)'
esc main

# ---- the audit rows -------------------------------------------------------------------------------
keys main :; text main "pin beta for 10m"; keys main Enter
eventually "$WAIT" row_has main beta pinned
all_fields() {
  [[ $(sql "SELECT COUNT(*) FROM events WHERE kind='operator' AND action IS NOT NULL AND (user IS NULL
        OR target IS NULL OR state_before IS NULL OR state_after IS NULL)") == 0 ]] &&
  [[ $(sql "SELECT COUNT(*) FROM events WHERE kind='operator' AND action IS NOT NULL") -ge 8 ]]
}
check "every audit row has who, target, action, before and after" eventually "$WAIT" all_fields
check "an audit row with an expiry keeps it (pin for 10m)" eventually "$WAIT" bash -c \
  "[[ \$(sqlite3 -readonly '$TMP/ledger.db' \"SELECT COUNT(*) FROM events WHERE action='pin'
     AND user='console:oncall' AND target='beta' AND expires_ms BETWEEN ts_ms + 599000 AND ts_ms + 601000\") == 1 ]]"
check "undo is an audit row (who, before -> after)" test "$(sql "SELECT COUNT(*) FROM events
  WHERE action='undo force-live' AND user='console:oncall' AND target='alpha'
  AND state_before='weight 1, forced live' AND state_after='weight 1'")" = 1
check "an expiry lapse is an audit row" test "$(sql "SELECT COUNT(*) FROM events
  WHERE action='drain expired' AND user='expiry' AND target='delta'
  AND state_before='weight 1, drained' AND state_after='weight 1'")" = 1
keys main E
check "E exports the timeline" eventually "$WAIT" has main 'events written to '
f=$(ls "$TMP"/switchboard-events-*.log 2>/dev/null | head -1)
check "the export has the expiry of a change" grep -qE 'pin beta for 10m \(until [0-9:]+Z\): weight 1 -> weight 1, pinned on chat' "${f:-/dev/null}"
check "the export has the undo with before -> after" grep -qE "undo console:oncall's force-live alpha: weight 1, forced live -> weight 1" "${f:-/dev/null}"
check "the export has the lapse with before -> after" grep -qE 'expiry: drain on delta expired: weight 1, drained -> weight 1' "${f:-/dev/null}"
keys main :; text main "clear beta"; keys main Enter

# ---- Esc clears a kept filter --------------------------------------------------------------------
keys main /; text main del; keys main Enter
only_delta() { has main '^delta ' && lacks_now main '^alpha '; }
check "/ del Enter keeps a filter" eventually "$WAIT" only_delta
esc main
all4() { for t in alpha beta delta eps; do has main "^$t " || return 1; done; }
check "Esc on the board clears the kept filter" eventually "$WAIT" all4

# ---- help: one screen, with search -------------------------------------------------------------
keys main '?'
check "? opens the cheat-sheet" eventually "$WAIT" has main 'Everywhere'
check "the cheat-sheet has every section on one 80x24 screen" \
  bash -c "s=\$(${TM[*]} capture-pane -p -t main); for w in Board 'Events pane' 'Detail view' 'Prompt: typing' 'Prompt: answers' 'Commands \\(:\\)'; do grep -qE \"\$w\" <<<\"\$s\" || exit 1; done; ! grep -q 'more: / to search' <<<\"\$s\""
keys main /; text main undo
check "/ searches: the matches with their help" eventually "$WAIT" has main 'undo the last change'
check "the search counts its matches" has main '[0-9]+ match(es)? for "undo"'
check "the search hides what does not match" lacks_now main 'export-events'
esc main
check "Esc clears the search (the sheet is back)" eventually "$WAIT" has main 'E +export-eve'
esc main
check "Esc again closes the help" eventually "$WAIT" lacks_now main 'Prompt: answers'

# ---- the prompt pane at 80x24, 4 targets ----------------------------------------------------------
keys main c
check "c opens the prompt pane" eventually "$WAIT" has main 'PROMPT PANE'
text main "Say hello in five words"
keys main Tab Tab Tab  # system, max tokens, targets
eventually "$WAIT" has main 'focus: targets'
for t in alpha beta delta eps; do
  if has main "\[ \] $t"; then keys main Space; sleep 0.3; fi
  keys main Right; sleep 0.2
done
keys main C-d
check "four answers stream side by side" eventually "$WAIT" has main '┌─ 4 '
done4() { [[ $(cap main | grep -c 'total [0-9]') -ge 1 ]] && [[ $(cap main | grep -o 'total [0-9]' | wc -l) -ge 4 ]]; }
check "all four answered" eventually "$WAIT" done4
costs4() { [[ $(cap main | grep -oE '\$[0-9]+\.[0-9]+' | wc -l) -ge 4 ]]; }
check "every one of the 4 columns shows its cost at 80x24" eventually "$WAIT" costs4
check "the prompt box collapsed after sending" has main 'Prompt \(sent; e: edit\)'
keys main 2
check "2 marks answer 2: the mark and the win rate lead its title" eventually "$WAIT" has main '┌─ 2★ 100% [a-z]'
check "the others show their win rate too" has main '┌─ 1 0% [a-z]'
ids() { [[ $(sql "SELECT COUNT(DISTINCT request_id) FROM calls WHERE request_id LIKE 'console-compare-%'") == 4 ]]; }
check "each compare call has its own request id in the ledger" eventually "$WAIT" ids
voted() { [[ $(sql "SELECT COUNT(DISTINCT prompt_hash) FROM votes WHERE prompt_hash IS NOT NULL AND prompt_hash != 0") == 1 ]]; }
check "the vote is stored with the prompt's hash" eventually "$WAIT" voted
keys main 1
check "a second vote on the same prompt replaces the first (win rates count prompts)" \
  eventually "$WAIT" has main '┌─ 1★ 100% [a-z]'
check "...the first winner's rate follows" has main '┌─ 2 0% [a-z]'
check "both votes carry the same prompt hash" voted
keys main F2
check "F2 saves the comparison" eventually "$WAIT" has main 'saved .*switchboard-compare-'
md=$(ls "$TMP"/switchboard-compare-*.md 2>/dev/null | head -1)
check "the saved comparison names each call's own request id" \
  test "$(grep -oE 'request id: `console-compare-[0-9]+-[0-9]+-[1-4]`' "${md:-/dev/null}" | sort -u | wc -l)" = 4
check "the saved comparison names the prompt hash" grep -qE 'prompt hash: [0-9a-f]{16}' "${md:-/dev/null}"
esc main
check "back on the board at 80 columns, the WIN column shows the win rates" \
  eventually "$WAIT" bash -c "${TM[*]} capture-pane -p -t main | grep -E '^TARGET .* WIN' >/dev/null &&
    ${TM[*]} capture-pane -p -t main | grep -E '^alpha .* (100|0)%( |$)' >/dev/null"

# ---- NO_COLOR yields to --theme ---------------------------------------------------------------------
coloured() { "${TM[@]}" capture-pane -e -p -t "$1" | matches -E $'\e\\[[0-9;]*(3[0-7]|38;5;[0-9]+)m'; }
CUR=mono
start_console mono 80 24 "NO_COLOR=1" || dump mono
not_coloured() { ! coloured "$1"; }
check "NO_COLOR alone: no colour on screen" not_coloured mono
CUR=themed
start_console themed 80 24 "NO_COLOR=1" --theme dark || dump themed
check "NO_COLOR with --theme dark: colours" coloured themed
check "no sanitizer report" bash -c "! cat '$TMP'/san-* 2>/dev/null | grep -qE 'Sanitizer|runtime error'"
finish
