#!/usr/bin/env bash
# tests/bench/bigstall.sh BUILD_A BUILD_B [ROUNDS] - what 4 MiB prompts cost the streams beside
# them (docs/bench.md, "Big prompts beside paced streams, session 10").
#
# One simulator (BUILD_A/switchboard-sim, token_rate 20) and two `switchboard serve`
# instances, BUILD_A's and BUILD_B's, with the same config in the default gateway shape
# (gateway.threads absent: the router's loop on 2 or fewer cores), the ledger on. Per round
# (ROUNDS, default 3) and per row, A then B (B then A every other round): 16 streams of
# WORDS (60) events at 20 a second through tests/integration/gap_streams.py, which records
# each stream's longest gap between two events; once every stream has its first event, chat
# requests of about 4.6 MiB (a history of ~19,000 user and assistant turns of 220 bytes, the
# plain history of tests/bench/encode.c, ending in a user turn unique to the post so the
# runaway guard never sees the same prompt twice) are posted one after the other until the
# streams end. Rows:
#   openai     the big posts go to a route whose target is kind "openai" (/v1/chat/completions)
#   anthropic  the same to a kind "anthropic" target (/v1/messages: the Anthropic encoder)
#   none       no big posts: the streams alone (the floor, nominal gap 50 ms)
# The streams always go through the openai target. Prints, per round, row and instance, the
# median and the max over the 16 streams of their longest gap, the big posts answered 200
# out of those sent, their median time, and the 1-minute load average at the end; then per row
# and instance the range and median of the rounds' medians. Everything on 127.0.0.1; every
# process started here is stopped at exit (also on Ctrl-C); every wait is bounded.
# Environment: BIGSTALL_WORDS (60) events per stream, BIGSTALL_STREAMS (16),
# BIGSTALL_ROWS ("openai anthropic none"), BIGSTALL_KEEP=1 keeps the temporary directory.
# Needs python3 and curl; not part of make bench.
set -uo pipefail
usage="usage: bigstall.sh BUILD_A BUILD_B [ROUNDS]"
A_DIR=${1:?$usage}
B_DIR=${2:?$usage}
ROUNDS=${3:-3}
WORDS=${BIGSTALL_WORDS:-60}
STREAMS=${BIGSTALL_STREAMS:-16}
ROWS=${BIGSTALL_ROWS:-openai anthropic none}
HERE=$(cd "$(dirname "$0")" && pwd)
GAP_STREAMS=$HERE/../integration/gap_streams.py
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
A_DIR=$(abs "$A_DIR")
B_DIR=$(abs "$B_DIR")
for b in "$A_DIR" "$B_DIR"; do
  [[ -x $b/switchboard ]] || { echo "bigstall: no $b/switchboard" >&2; exit 2; }
done
[[ -x $A_DIR/switchboard-sim ]] || { echo "bigstall: no $A_DIR/switchboard-sim" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
for r in $ROWS; do
  case $r in openai | anthropic | none) ;; *) echo "bigstall: unknown row $r" >&2; exit 2 ;; esac
done

T=$(mktemp -d /tmp/sb-bigstall.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [[ ${BIGSTALL_KEEP:-0} == 1 ]]; then echo "bigstall: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE SECONDS: until FILE exists and is non-empty.
wait_for() {
  local f=$1 n=$(($2 * 10))
  for _ in $(seq "$n"); do [[ -s $f ]] && return 0; sleep 0.1; done
  return 1
}

export BIGSTALL_SIM_KEY=sim-key-bigstall
"$A_DIR/switchboard-sim" --name bigstall --port 0 --control-port 0 --port-file "$T/sim.port" \
  --key "$BIGSTALL_SIM_KEY" --token-rate 20 --quiet >"$T/sim.out" 2>"$T/sim.err" &
PIDS+=($!)
wait_for "$T/sim.port" 10 || { echo "bigstall: the simulator did not start:" >&2; cat "$T/sim.err" >&2; exit 1; }
read -r SIM_PORT _ <"$T/sim.port"

# The big request's JSON up to its last turn, and the rest (a unique marker goes between).
python3 - "$T/big.head" "$T/big.tail" <<'PY' || exit 1
import sys
turn = 220
words = rb'lorem ipsum dolor sit amet, \"consectetur\" elit\n'
text = (words * (turn // len(words) + 1))[:turn]
if text.endswith(b"\\"):
    text = text[:-1] + b"."  # not half an escape
n = 4 * 1024 * 1024 // turn + 1
parts = [b'{"model":"MODEL","messages":[{"role":"system","content":"be brief"}']
for k in range(n):
    parts.append(b',{"role":"%s","content":"%s"}' % (b"assistant" if k % 2 else b"user", text))
parts.append(b',{"role":"user","content":"echo: ')
open(sys.argv[1], "wb").write(b"".join(parts))
open(sys.argv[2], "wb").write(b'"}]}')
print("bigstall: big request %d bytes, %d turns" % (sum(map(len, parts)) + 4, n + 2))
PY

# The poster: posts the big request to MODEL until STOP exists; one JSON line of counts.
cat >"$T/post.py" <<'PY'
import http.client, json, os, sys, time
port, model, head, tail, stop, tag = sys.argv[1:7]
head = open(head, "rb").read().replace(b'"model":"MODEL"', b'"model":"%s"' % model.encode(), 1)
tail = open(tail, "rb").read()
sent, ok, secs, bad, failing = 0, 0, [], [], 0
while not os.path.exists(stop) and failing < 3:
    body = head + b"%s-%d" % (tag.encode(), sent) + tail
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        failing = 0
        if r.status == 200:
            ok += 1
        elif len(bad) < 3:
            bad.append(r.status)
    except Exception as e:  # noqa: BLE001 - counted as not answered 200; 3 in a row end it
        failing += 1
        if len(bad) < 3:
            bad.append(repr(e))
    secs.append(time.monotonic() - t0)
    sent += 1
secs.sort()
print(json.dumps({"sent": sent, "ok": ok, "median_s": secs[len(secs) // 2] if secs else 0,
                  "bad": bad}))
PY

# start_serve NAME BUILD_DIR: sets PORT[NAME].
declare -A PORT
start_serve() {
  local n=$1 b=$2
  cat >"$T/$n.json" <<JSON
{
  "providers": [
    {"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:$SIM_PORT/v1",
     "api_key_env": "BIGSTALL_SIM_KEY", "model": "gpt-4o-mini"},
    {"name": "an", "kind": "anthropic", "base_url": "http://127.0.0.1:$SIM_PORT",
     "api_key_env": "BIGSTALL_SIM_KEY", "model": "claude-sonnet-4-5"}
  ],
  "routes": [
    {"name": "chat", "targets": ["oa"]},
    {"name": "big-openai", "targets": ["oa"]},
    {"name": "big-anthropic", "targets": ["an"]}
  ],
  "gateway": {"listen": "127.0.0.1:0", "max_body_bytes": 8388608},
  "ledger": {"path": "$T/$n.db"},
  "log_level": "warn"
}
JSON
  "$b/switchboard" serve -c "$T/$n.json" --port-file "$T/$n.port" >"$T/$n.out" 2>"$T/$n.err" &
  PIDS+=($!)
  wait_for "$T/$n.port" 10 || { echo "bigstall: $n did not start:" >&2; cat "$T/$n.err" >&2; exit 1; }
  read -r "PORT[$n]" <"$T/$n.port"
}
start_serve A "$A_DIR"
start_serve B "$B_DIR"
echo "bigstall: A $A_DIR (port ${PORT[A]}), B $B_DIR (port ${PORT[B]}), simulator $SIM_PORT;" \
  "$STREAMS streams of $WORDS events at 20/s, $ROUNDS rounds, $(nproc) cores"

# one ROUND ROW NAME: one run; appends "ROW NAME median_ms max_ms ok sent post_ms load [note]"
# to $T/results.
BASE_PIDS=("${PIDS[@]}")
one() {
  local round=$1 row=$2 n=$3 port=${PORT[$3]} d=$T/r$1-$2-$3 sp pp=
  mkdir -p "$d"
  python3 "$GAP_STREAMS" "$port" --streams "$STREAMS" --words "$WORDS" --timeout 60 \
    --ready "$d/ready" >"$d/streams.json" 2>"$d/streams.err" &
  sp=$!
  PIDS+=("$sp")
  if ! wait_for "$d/ready" 20; then
    echo "bigstall: $n's streams did not start" >&2
  elif [[ $row != none ]]; then
    timeout 180 python3 "$T/post.py" "$port" "big-$row" "$T/big.head" "$T/big.tail" \
      "$d/stop" "r$round-$n" >"$d/post.json" 2>"$d/post.err" &
    pp=$!
    PIDS+=("$pp")
  fi
  # gap_streams.py ends once its streams do (each read times out after 60 s): WORDS/20 s,
  # bounded at that plus a minute
  local waited=0 limit=$(((WORDS / 20 + 60) * 10))
  while kill -0 "$sp" 2>/dev/null && ((waited < limit)); do sleep 0.1; waited=$((waited + 1)); done
  kill "$sp" 2>/dev/null
  wait "$sp" 2>/dev/null
  : >"$d/stop"
  [[ -n $pp ]] && wait "$pp" 2>/dev/null
  PIDS=("${BASE_PIDS[@]}")
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  python3 - "$d" "$row" "$n" "$load" "$STREAMS" <<'PY' >>"$T/results"
import json, os, sys
d, row, n, load, want = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
try:
    s = json.load(open(os.path.join(d, "streams.json")))
except Exception:  # noqa: BLE001 - the row says so
    s = {"ok": 0, "max_gap_s": [], "bad": ["no summary"]}
g = sorted(s["max_gap_s"])
med = g[len(g) // 2] * 1000 if g else float("nan")
mx = g[-1] * 1000 if g else float("nan")
p = {"sent": 0, "ok": 0, "median_s": 0, "bad": []}
if row != "none":
    try:
        p = json.load(open(os.path.join(d, "post.json")))
    except Exception:  # noqa: BLE001
        p["bad"] = ["no poster summary"]
note = ""
if s["ok"] != want:
    note += " streams ok %d/%d %s" % (s["ok"], want, s["bad"][:2])
if p["bad"]:
    note += " posts not 200: %s" % p["bad"]
print("%s %s %.0f %.0f %d %d %.0f %s%s" % (row, n, med, mx, p["ok"], p["sent"],
                                          p["median_s"] * 1000, load, note))
PY
}

: >"$T/results"
printf '%-5s %-9s %-2s %9s %7s %10s %8s %5s\n' round row in "median ms" "max ms" "posts 200" "post ms" load
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order="A B"; else order="B A"; fi
  for row in $ROWS; do
    for n in $order; do
      one "$round" "$row" "$n"
      line=$(tail -1 "$T/results")
      read -r _ _ med mx ok sent pms load rest <<<"$line"
      printf '%-5s %-9s %-2s %9s %7s %10s %8s %5s %s\n' "$round" "$row" "$n" "$med" "$mx" \
        "$ok/$sent" "$pms" "$load" "${rest:-}"
    done
  done
done

echo
echo "per row and instance, over the rounds: the streams' median longest gap (ms), range and median"
python3 - "$T/results" "$ROWS" <<'PY'
import statistics, sys
rows = sys.argv[2].split()
by = {}
for line in open(sys.argv[1]):
    f = line.split()
    by.setdefault((f[0], f[1]), []).append((float(f[2]), float(f[3]), int(f[4]), int(f[5]), float(f[7])))
for row in rows:
    out = []
    for n in ("A", "B"):
        v = by.get((row, n), [])
        if not v:
            continue
        m = sorted(x[0] for x in v)
        out.append("%s %.0f-%.0f (median %.0f, max %.0f, posts 200 %d/%d)" % (
            n, m[0], m[-1], statistics.median(m), max(x[1] for x in v), sum(x[2] for x in v),
            sum(x[3] for x in v)))
    loads = [x[4] for n in ("A", "B") for x in by.get((row, n), [])]
    print("%-9s %s; load %.2f-%.2f" % (row, "; ".join(out), min(loads), max(loads)))
PY
