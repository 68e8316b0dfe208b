#!/usr/bin/env bash
# tests/bench/eventgap_check.sh BUILD - checks the bench's stream client (tests/bench/eventgap.c)
# before its figures are trusted: its parser self-test, then a short run against the bench's
# paced upstream (BUILD/upstream --pace-ms), whose events are known: 14 per stream (10 of them
# text deltas), one every pace interval. It asserts what the client must see there (no
# errors, every stream in flight, 14 events and 10 content events per stream, gaps at the
# pace within a few ms) and that it completes as many streams as wrk does in the same time
# (within 10 %). Last, that the upstream survives 1,000 clients leaving mid-stream, five
# times over (it used to free a connection twice when the pacing timer and the hang-up came
# in one epoll batch). Not part of `make test` or `make bench` (which runs only the
# self-test); about 20 s. Build first: make BUILD=build/bench OPT='-O2 -DNDEBUG' bench-tools.
#
# Environment: CHECK_STREAMS (200), CHECK_SECONDS (4), CHECK_PACE_MS (50).
set -uo pipefail
build=${1:?usage: tests/bench/eventgap_check.sh BUILD}
root=$(cd "$(dirname "$0")/../.." && pwd)
case $build in /*) B=$build ;; *) B=$root/$build ;; esac
N=${CHECK_STREAMS:-200}
SECS=${CHECK_SECONDS:-4}
PACE=${CHECK_PACE_MS:-50}
for x in "$B/eventgap" "$B/upstream"; do
  [[ -x $x ]] || { echo "eventgap_check: $x missing (make BUILD=$build bench-tools)" >&2; exit 2; }
done
T=$(mktemp -d /tmp/sb-eventgap.XXXXXX)
UPID=
cleanup() {
  [[ -n $UPID ]] && kill "$UPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null
fails=0
fail() { echo "eventgap_check: FAIL: $*" >&2; fails=$((fails + 1)); }

"$B/eventgap" --self-test || fail "self-test"

"$B/upstream" --pace-ms "$PACE" --port-file "$T/port" >"$T/upstream.out" 2>&1 &
UPID=$!
for _ in $(seq 100); do [[ -s $T/port ]] && break; sleep 0.05; done
read -r _ SSE_PORT <"$T/port" || { echo "eventgap_check: upstream did not start" >&2; exit 1; }
URL=http://127.0.0.1:$SSE_PORT/v1/chat/completions

"$B/eventgap" --url "$URL" --streams "$N" --seconds "$SECS" --pace-ms "$PACE" >"$T/eg.out" \
  2>"$T/eg.err" || fail "eventgap exited with $?"
cat "$T/eg.err" >&2
line=$(grep -m1 '^EVENTGAP ' "$T/eg.out" | cut -d' ' -f2-)
[[ -n $line ]] || { fail "no EVENTGAP line"; exit 1; }

wrk_line=
if command -v wrk >/dev/null; then
  BENCH_MODEL=paced wrk -t 2 -c "$N" -d "${SECS}s" --timeout 30s \
    -s "$root/tests/bench/post_stream.lua" "$URL" >"$T/wrk.out" 2>&1
  wrk_line=$(grep -m1 '^BENCH ' "$T/wrk.out" | cut -d' ' -f2-)
  [[ -n $wrk_line ]] || fail "wrk gave no result: $(tail -3 "$T/wrk.out")"
else
  echo "eventgap_check: wrk not installed; the stream-count comparison is skipped" >&2
fi

python3 - "$line" "$wrk_line" "$N" "$PACE" <<'PY' || fails=$((fails + 1))
import sys
f = {k: float(v) for k, v in (kv.split("=") for kv in sys.argv[1].split())}
w = {k: float(v) for k, v in (kv.split("=") for kv in sys.argv[2].split())} if sys.argv[2] else {}
n, pace_us = int(sys.argv[3]), int(sys.argv[4]) * 1000
bad = []
def want(ok, what):
    print(f"eventgap_check: {'ok  ' if ok else 'FAIL'} {what}", file=sys.stderr)
    if not ok:
        bad.append(what)
streams = f["streams"]
want(f["errors"] == 0, f"no errors ({f['errors']:.0f})")
want(f["max_in_flight"] == n, f"all {n} streams in flight at once ({f['max_in_flight']:.0f})")
want(streams > 0, f"streams complete ({streams:.0f})")
# Every counted stream has 14 events and 13 gaps; streams cut by the end add a few more.
per = f["events"] / max(streams, 1)
want(14 <= per <= 14 * (1 + 2 * n / max(streams, 1)), f"14 events per stream ({per:.2f})")
cper = f["content"] / max(streams, 1)
want(10 <= cper <= 10 * (1 + 2 * n / max(streams, 1)), f"10 content events per stream ({cper:.2f})")
want(pace_us <= f["gap_p50_us"] <= pace_us + 5000,
     f"gap p50 at the pace ({f['gap_p50_us']:.0f} us, pace {pace_us} us)")
want(f["late_p50_us"] == f["gap_p50_us"] - pace_us, "late = gap - pace")
want(f["cgap_p50_us"] >= pace_us and f["ttfc_p50_us"] >= pace_us,
     "content starts one interval after the role chunk")
want(f["ttfe_p50_us"] < 20000, f"first event quickly ({f['ttfe_p50_us']:.0f} us)")
lo, hi = 13 * pace_us, 13 * pace_us + 50000
want(lo <= f["stream_p50_us"] <= hi, f"whole stream ~13 intervals ({f['stream_p50_us']:.0f} us)")
if w:
    r = streams / max(w["requests"], 1)
    want(0.9 <= r <= 1.1, f"streams within 10% of wrk's ({streams:.0f} vs {w['requests']:.0f})")
    werr = sum(v for k, v in w.items() if k.startswith("err_"))
    want(werr == 0, f"wrk saw no errors ({werr:.0f})")
sys.exit(1 if bad else 0)
PY
# The upstream must outlive clients that leave mid-stream (1,000 at once, fast pacing).
kill "$UPID" 2>/dev/null
wait "$UPID" 2>/dev/null
rm -f "$T/port"
"$B/upstream" --pace-ms 2 --port-file "$T/port" >"$T/upstream2.out" 2>&1 &
UPID=$!
for _ in $(seq 100); do [[ -s $T/port ]] && break; sleep 0.05; done
read -r _ SSE_PORT <"$T/port" || { echo "eventgap_check: upstream did not start" >&2; exit 1; }
for i in 1 2 3 4 5; do
  "$B/eventgap" --url "http://127.0.0.1:$SSE_PORT/v1/chat/completions" --streams 1000 \
    --seconds 1 --pace-ms 2 >/dev/null 2>&1
  if ! kill -0 "$UPID" 2>/dev/null; then
    fail "the upstream died after client run $i: $(tail -1 "$T/upstream2.out")"
    UPID=
    break
  fi
done
[[ -n $UPID ]] && echo "eventgap_check: ok   the upstream outlives 5 x 1,000 clients leaving mid-stream" >&2

if ((fails)); then
  echo "eventgap_check: $fails problem(s)" >&2
  exit 1
fi
echo "eventgap_check: the client agrees with the upstream's schedule and with wrk" >&2
