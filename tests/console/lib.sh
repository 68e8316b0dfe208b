# Shared by the console's tmux-driven tests (source it first): the integration helpers
# (check, eventually, start_sim, $SB, $TMP...), then a private tmux server for the script and
# the few ways every script reads and drives it. A script may redefine any of these after
# sourcing (e.g. a capture that joins wrapped lines).
#   $root   the repository;  $TM  tmux on the script's own socket (killed at exit)
#   $WAIT   seconds a wait for the screen may take (CONSOLE_WAIT; generous for sanitizer builds)
#   cap S / has S RE / keys S KEYS... / dump S   capture, match, send keys, print a screen
#   lacks_now S RE / text S TEXT / esc S          no match now, type literally, a lone Escape
#   cell S TARGET TITLE / cell_is ... VALUE / cell_not ... VALUE   a board cell (cell.py)
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

if ! command -v tmux >/dev/null; then
  bad "tmux is installed (needed to drive the console)"; finish; exit 1
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
console_tests=$root/tests/console
export LANG=C.UTF-8 LC_ALL=C.UTF-8
export SWITCHBOARD_THEMES=$root/themes
SOCK=sb$(basename "$0" .sh | tr -cd 'a-z' | cut -c1-16)-$$
TM=(tmux -L "$SOCK" -f /dev/null)
trap '"${TM[@]}" kill-server 2>/dev/null; cleanup' EXIT
WAIT=${CONSOLE_WAIT:-25}

cap() { "${TM[@]}" capture-pane -p -t "$1"; }
has() { cap "$1" | matches -E -- "$2"; }
keys() { local s=$1; shift; "${TM[@]}" send-keys -t "$s" "$@"; }
dump() { echo "---- screen of $1:"; cap "$1"; echo "----"; }
lacks_now() { ! cap "$1" | matches -E -- "$2"; }
text() { "${TM[@]}" send-keys -t "$1" -l -- "$2"; }
esc() { keys "$1" Escape; sleep 0.3; } # let ESC stand alone (not an Alt- prefix)
cell() { cap "$1" | python3 "$console_tests/cell.py" "$2" "$3"; }
cell_is() { [[ "$(cell "$1" "$2" "$3")" == "$4" ]]; }
cell_not() { local v; v=$(cell "$1" "$2" "$3") && [[ -n $v && $v != "$4" ]]; }
