# tests/integration/lib.sh - shared helpers for integration tests (sourced, bash).
# Every process a test starts is killed on exit; every wait is bounded.
# Needs SB_BUILD (absolute build dir) in the environment; tests/run.sh sets it.
set -uo pipefail
: "${SB_BUILD:?SB_BUILD must name the build directory}"
SB=$SB_BUILD/switchboard
SIM=$SB_BUILD/switchboard-sim
TMP=$(mktemp -d /tmp/sb-it.XXXXXX)
PIDS=()
PASS=0
FAIL=0

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# ... | matches [grep options] PATTERN: grep -q over the whole of stdin. A bare `| grep -q`
# exits at its first match, and a producer still writing (curl getting a page in pieces, more
# slowly under a sanitizer) then dies of SIGPIPE: under pipefail the pipeline fails although
# the text matched, and `! ... | grep -q` passes although it matched.
matches() { local in; in=$(cat); grep -q "$@" <<<"$in"; }

# check "description" command...   (passes when the command exits 0)
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

finish() {
  echo "$PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 ]]
}

# wait_for FILE [seconds]: waits until FILE exists and is non-empty.
wait_for() {
  local f=$1 n=$(( ${2:-10} * 10 ))
  for _ in $(seq "$n"); do [[ -s $f ]] && return 0; sleep 0.1; done
  return 1
}

# start_sim NAME [sim args...]: starts a simulator on ephemeral ports; sets
# SIM_PORT[NAME] and SIM_CTL[NAME].
declare -A SIM_PORT SIM_CTL
start_sim() {
  local name=$1; shift
  local pf=$TMP/$name.port
  "$SIM" --name "$name" --port 0 --control-port 0 --port-file "$pf" --quiet "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS+=($!)
  if ! wait_for "$pf" 10; then
    echo "simulator $name did not start:"; cat "$TMP/$name.err"; return 1
  fi
  read -r SIM_PORT[$name] SIM_CTL[$name] < "$pf"
}

# sim_behavior NAME JSON: changes a simulator's behaviour through its control port.
sim_behavior() {
  curl -sf --max-time 5 -X POST -H 'Content-Type: application/json' \
    --data "$2" "http://127.0.0.1:${SIM_CTL[$1]}/_sim/behavior" >/dev/null
}

# sim_stats NAME: prints the simulator's stats JSON.
sim_stats() { curl -sf --max-time 5 "http://127.0.0.1:${SIM_CTL[$1]}/_sim/stats"; }

# json_get EXPR < json: evaluates a Python expression over the parsed JSON `j`.
json_get() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

# contains HAYSTACK_FILE NEEDLE / lacks HAYSTACK_FILE NEEDLE
contains() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }
# nofile_raised PID: PID's soft open-file limit is its hard one, and not the 256 it started
# with (start it under `ulimit -Sn 256`).
nofile_raised() {
  local soft hard
  read -r soft hard < <(awk '/^Max open files/ { print $4, $5 }' "/proc/$1/limits")
  [[ -n $soft && $soft == "$hard" && $soft != 256 ]]
}

# start_serve CONFIG: starts `switchboard serve` on an ephemeral port; sets SB_PORT, SB_PID.
start_serve() {
  local pf=$TMP/serve.port
  rm -f "$pf"
  "$SB" serve -c "$1" --port-file "$pf" >"$TMP/serve.out" 2>"$TMP/serve.err" &
  SB_PID=$!
  PIDS+=($SB_PID)
  if ! wait_for "$pf" 10; then
    echo "switchboard serve did not start:"; cat "$TMP/serve.err"; return 1
  fi
  read -r SB_PORT < "$pf"
}

# metric NAME_WITH_LABELS: prints the value of one /metrics sample (empty when absent).
metric() {
  curl -sf --max-time 5 "http://127.0.0.1:$SB_PORT/metrics" |
    awk -v k="$1" 'index($0, k" ") == 1 { print $2; exit }'
}

# admin METHOD PATH [JSON]: calls the admin API with $ADMIN_TOKEN; prints the body.
admin() {
  curl -s --max-time 5 -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$SB_PORT$2"
}

# load ARGS...: runs the load driver against the gateway; prints its JSON summary.
load() { python3 "$(dirname "${BASH_SOURCE[0]}")/load.py" "$SB_PORT" "$@"; }

# eventually SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds or time is up.
eventually() {
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

# sim_requests NAME PATH: how many requests the simulator got on PATH.
sim_requests() {
  sim_stats "$1" | json_get "j.get('by_path', {}).get('$2', 0)"
}

# The official OpenAI Node SDK, pinned in tests/integration/node/package.json + package-lock.json,
# installed with `npm ci` into tests/integration/node/node_modules (git-ignored, reused while it
# matches the pinned version; one install at a time, since several build trees may run at once).
# Returns 1 after a `bad` when node/npm or the install is missing: a FAILURE, never a skip.
NODE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/node" && pwd)
node_sdk_ready() {
  local pinned
  pinned=$(python3 -c "import json; print(json.load(open('$NODE_DIR/package.json'))['dependencies']['openai'])")
  installed() {
    [[ -f $NODE_DIR/node_modules/openai/package.json ]] &&
      [[ $(python3 -c "import json; print(json.load(open('$NODE_DIR/node_modules/openai/package.json'))['version'])") == "$pinned" ]]
  }
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    bad "node and npm are installed (.ci/deps test installs Debian's nodejs npm)"
    return 1
  fi
  if ! installed; then
    flock -w 300 "$NODE_DIR" bash -c "
      cd '$NODE_DIR' || exit 1
      [[ -f node_modules/openai/package.json ]] &&
        grep -q '\"version\": \"$pinned\"' node_modules/openai/package.json && exit 0
      timeout 240 npm ci --no-audit --no-fund --loglevel=error
    " >"$TMP/npm.log" 2>&1
    if ! installed; then
      bad "npm ci installed openai@$pinned into tests/integration/node (no network? npm log below)"
      sed 's/^/    npm: /' "$TMP/npm.log" | tail -20
      return 1
    fi
  fi
  ok "openai@$pinned installed for node $(node --version)"
}
