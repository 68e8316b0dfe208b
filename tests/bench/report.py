#!/usr/bin/env python3
"""report.py RAW_TSV STREAMS_TSV - the Markdown report of tests/bench/run.sh.

Rows of the same configuration and target from several rounds are reduced to their median
(peak RSS: the maximum; errors and requests: the sum). Ratios are taken within one run of the
harness, so machine noise mostly cancels. Each target of the issue is printed with the
measured value and PASS or MISS; nothing is tuned or hidden here. Run metadata comes from
the environment run.sh exports.
"""
import csv
import os
import statistics
import sys
import time
from collections import defaultdict

raw_path, streams_path = sys.argv[1], sys.argv[2]
env = os.environ.get


def num(x):
    return float(x) if x not in ("", None) else 0.0


groups = defaultdict(list)
with open(raw_path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        groups[(r["phase"], r["fmt"], int(r["conc"]), int(r["delay_ms"]), r["target"])].append(r)


def agg(key):
    rows = groups.get(key)
    if not rows:
        return None
    med = lambda k: statistics.median(num(r[k]) for r in rows)  # noqa: E731
    return {
        "rps": med("rps"),
        "p50": med("p50_us"),
        "p99": med("p99_us"),
        "cpu": med("cpu_us_req"),
        "hwm": max(num(r["peak_rss_kb"]) for r in rows),
        "errors": sum(int(num(r["errors"])) for r in rows),
        "requests": sum(int(num(r["requests"])) for r in rows),
        "rounds": len(rows),
    }


def lat(us):
    if us >= 10000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.0f} µs"


def ratio(a, b):
    return a / b if b else float("nan")


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def ms(us):
    return f"{num(us) / 1000:.2f} ms"


out = []
w = out.append
FLOORS = ["floor-tpc", "floor-relay", "floor-loop", "floor-loop2"]
targets = ["direct", "nginx"] + FLOORS + ["switchboard", "baseline"]
configs = [(fmt, c, d) for d in (0, 100) for fmt in ("json", "sse") for c in (1, 16, 64)]

w("## Benchmark results")
w("")
w(f"- when: {time.strftime('%Y-%m-%d %H:%M %Z')}; switchboard {env('SB_COMMIT', '?')}, built `-O2 -DNDEBUG`")
w(f"- machine: {env('NPROC', '?')} cores ({env('CPU_MODEL', '?')}); load average before "
  f"{env('LOAD_BEFORE', '?')}, after {env('LOAD_AFTER', '?')} (1, 5, 15 min)")
w(f"- {env('NGINX_VERSION', 'nginx')} (upstream at delay 0, and the proxy, one worker each), "
  f"{env('WRK_VERSION', 'wrk')} (`-t 1` at c=1, `-t 2` above); "
  f"{env('BENCH_SECONDS')} s per run after a {env('BENCH_WARMUP')} s warm-up, "
  f"{env('BENCH_ROUNDS')} rounds (median), whole run {env('ELAPSED', '?')} s")
w("- req/s of SSE rows are complete streams per second (14 events each); p50/p99 are whole "
  "responses as wrk sees them; CPU µs/req is the measured process's CPU time (every thread) "
  "divided by the requests it served: the upstream for `direct`, the proxy for `nginx`, "
  "switchboard itself for `switchboard`; peak RSS is that process's VmHWM during the run")
w("- `floor-tpc`, `floor-relay`, `floor-loop` and `floor-loop2` (delay 0 only) are "
  "tests/bench/floor.c: libmicrohttpd in front of libcurl forwarding bytes, nothing parsed, "
  "SSE buffered whole; `tpc` runs a thread per connection with a blocking easy handle each, "
  "`relay` has switchboard's shape (MHD's epoll pool, one libcurl multi thread, "
  "suspend/resume), `loop` one thread running both libraries on one epoll set (MHD in "
  "external-loop mode, curl_multi_socket_action; no hand-off), `loop2` two such loops "
  "sharing the port (SO_REUSEPORT). See \"The library floor\" below")
w("")
if env("BASELINE_NAME"):
    w(f"- `baseline` is another build or setting ({env('BASELINE_NAME')}, BENCH_BASELINE), run in the same "
      "rounds; × base is switchboard's req/s against it")
    w("")
if any(k[0] == "matrix" for k in groups):
    w("| configuration | target | req/s | p50 | p99 | p50 added | × direct | × nginx | CPU µs/req | peak RSS | errors |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
else:
    w("(BENCH_ONLY=streams: no matrix, only the 1,000-stream step.)")
for fmt, c, d in configs:
    base = agg(("matrix", fmt, c, d, "direct"))
    ngx = agg(("matrix", fmt, c, d, "nginx"))
    for t in targets:
        a = agg(("matrix", fmt, c, d, t))
        if not a:
            continue
        name = f"{fmt.upper()} c={c} delay {d} ms"
        added = f"{a['p50'] - base['p50']:+.0f} µs" if base and t != "direct" else ""
        xd = f"{ratio(a['rps'], base['rps']):.3f}" if base and t != "direct" else ""
        xn = f"{ratio(a['rps'], ngx['rps']):.2f}" if ngx and t not in ("direct", "nginx") else ""
        w(f"| {name} | {t} | {a['rps']:,.0f} | {lat(a['p50'])} | {lat(a['p99'])} | {added} | {xd} | "
          f"{xn} | {a['cpu']:.1f} | {mb(a['hwm'])} | {a['errors']} |")
w("")

def agg_streams(rows):
    """One row per label from its rounds: medians; peaks and fds the maximum, the in-flight
    counts the minimum (every round must reach the concurrency), errors summed; "rounds" keeps
    the rounds' own rows."""
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        if k in ("label", "round"):
            out[k] = vals[0]
        elif k in ("max_rss_kb", "hwm_kb", "max_threads", "max_fds", "max_upstream_fds"):
            out[k] = str(max(int(num(v)) for v in vals))
        elif k in ("max_in_flight", "client_max_in_flight"):
            out[k] = str(min(int(num(v)) for v in vals))
        elif k == "errors":
            out[k] = str(sum(int(num(v)) for v in vals))
        else:
            med = statistics.median(num(v) for v in vals)
            out[k] = str(int(med)) if med == int(med) else f"{med:.1f}"
    out["rounds"] = rows
    return out


streams = {}
STREAM_LABELS = ("direct", "nginx", "switchboard", "baseline")
if os.path.exists(streams_path):
    by_label = defaultdict(list)
    with open(streams_path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            by_label[r["label"]].append(r)
    streams = {k: agg_streams(v) for k, v in by_label.items()}
# ---- targets ------------------------------------------------------------------------------
w("### Targets (issue), measured in this run")
w("")
w("| target | measured | verdict |")
w("| --- | --- | --- |")
verdicts = []


def verdict(name, ok, text, *rows):
    """rows: the measurements behind it; a run with errors proves nothing either way."""
    errs = sum(r["errors"] for r in rows if r)
    if errs:
        ok = False
        text += f"; **{errs} errors: not a valid measurement**"
    v = "PASS" if ok else "MISS"
    verdicts.append(v)
    w(f"| {name} | {text} | **{v}** |")


def get(fmt, c, d, t):
    return agg(("matrix", fmt, c, d, t))


def floor_note(fmt, c, show):
    """'; library floor: tpc X, relay Y, loop Z...' for a delay-0 configuration, the floors
    measured."""
    parts = [f"{t[6:]} {show(a)}" for t in FLOORS if (a := get(fmt, c, 0, t))]
    return "; library floor: " + ", ".join(parts) if parts else ""


for fmt, want in (("json", 0.5), ("sse", 0.4)):
    s, n = get(fmt, 16, 0, "switchboard"), get(fmt, 16, 0, "nginx")
    if s and n:
        r = ratio(s["rps"], n["rps"])
        extra = " (every event parsed and re-encoded)" if fmt == "sse" else ""
        verdict(f"{fmt.upper()} c=16{extra}: req/s >= {want}x nginx proxy's", r >= want,
                f"{r:.2f}x ({s['rps']:,.0f} vs {n['rps']:,.0f} req/s; direct {get(fmt, 16, 0, 'direct')['rps']:,.0f})"
                + floor_note(fmt, 16, lambda a: f"{ratio(a['rps'], n['rps']):.2f}x"),
                s, n)
for fmt in ("json", "sse"):
    s, dct = get(fmt, 1, 0, "switchboard"), get(fmt, 1, 0, "direct")
    if s and dct:
        added = s["p50"] - dct["p50"]
        verdict(f"{fmt.upper()} c=1: p50 added over direct <= 30 µs", added <= 30,
                f"{added:+.0f} µs (p50 {s['p50']:.0f} vs {dct['p50']:.0f} µs)"
                + floor_note(fmt, 1, lambda a: f"{a['p50'] - dct['p50']:+.0f} µs"), s, dct)
for fmt in ("json", "sse"):
    s, dct = get(fmt, 64, 100, "switchboard"), get(fmt, 64, 100, "direct")
    if s and dct:
        r = ratio(s["rps"], dct["rps"])
        verdict(f"{fmt.upper()} 100 ms upstream, c=64: req/s >= 0.99x direct", r >= 0.99,
                f"{r:.3f}x ({s['rps']:,.1f} vs {dct['rps']:,.1f} req/s)", s, dct)
        r = ratio(s["p99"], dct["p99"])
        verdict(f"{fmt.upper()} 100 ms upstream, c=64: p99 <= 1.05x direct", r <= 1.05,
                f"{r:.3f}x ({s['p99'] / 1000:.2f} vs {dct['p99'] / 1000:.2f} ms)", s, dct)

n_streams = int(env("BENCH_STREAMS", "1000"))
idle_kb = num(env("IDLE_RSS_KB"))
idle_threads = int(num(env("IDLE_THREADS")))
sb = streams.get("switchboard")
if sb:
    concurrent = int(num(sb["max_in_flight"]))
    valid = concurrent >= 0.95 * n_streams and int(num(sb["errors"])) == 0
    peak = max(num(sb["hwm_kb"]), num(sb["max_rss_kb"]))
    note = "" if valid else f" (step not valid: {concurrent} in flight at most, {sb['errors']} errors)"
    verdict(f"{n_streams:,} concurrent streams: RSS < 64 MB", valid and peak < 64 * 1024,
            f"peak {mb(peak)} with {concurrent} streams in flight{note}")
    verdict(f"{n_streams:,} concurrent streams: bounded number of threads",
            valid and int(num(sb["max_threads"])) <= idle_threads,
            f"{int(num(sb['max_threads']))} threads under load, {idle_threads} idle{note}")
verdict("idle RSS < 16 MB", 0 < idle_kb < 16 * 1024, f"{mb(idle_kb)} after start ({idle_threads} threads)")
w("")
w(f"{verdicts.count('PASS')} targets met, {verdicts.count('MISS')} missed.")
w("")

# ---- issue 16: the streaming hot path ---------------------------------------------------------
w("### Streaming targets (issue 16), measured in this run")
w("")
w("| target | measured | verdict |")
w("| --- | --- | --- |")
v16 = len(verdicts)
s, dct = get("sse", 64, 100, "switchboard"), get("sse", 64, 100, "direct")
if s and dct:
    r = ratio(s["rps"], dct["rps"])
    verdict("SSE 100 ms upstream, c=64: req/s >= 0.99x direct", r >= 0.99,
            f"{r:.3f}x ({s['rps']:,.1f} vs {dct['rps']:,.1f} streams/s)", s, dct)
    r = ratio(s["p99"], dct["p99"])
    verdict("SSE 100 ms upstream, c=64: p99 <= 1.05x direct", r <= 1.05,
            f"{r:.3f}x ({s['p99'] / 1000:.2f} vs {dct['p99'] / 1000:.2f} ms)", s, dct)
s, n = get("sse", 16, 0, "switchboard"), get("sse", 16, 0, "nginx")
if s and n:
    r = ratio(s["rps"], n["rps"])
    verdict("SSE c=16, no delay: req/s >= 0.45x nginx proxy_pass", r >= 0.45,
            f"{r:.2f}x ({s['rps']:,.0f} vs {n['rps']:,.0f} streams/s)"
            + floor_note("sse", 16, lambda a: f"{ratio(a['rps'], n['rps']):.2f}x"), s, n)
relay = {}
if env("RELAY_TXT") and os.path.exists(env("RELAY_TXT")):
    for line in open(env("RELAY_TXT")):
        f = line.split("\t")
        if f[0] == "relay-ns-per-event":
            relay[int(f[1])] = (float(f[2]), float(f[3]))
if relay:
    events = max(relay)
    parsed, passed = relay[events]
    sj, ss = get("json", 16, 0, "switchboard"), get("sse", 16, 0, "switchboard")
    whole = ""
    if sj and ss:  # a stream is one request plus 13 more events than a JSON answer
        whole = (f"; whole process, SSE c=16 stream minus JSON c=16 request over 13 events: "
                 f"{(ss['cpu'] - sj['cpu']) / 13:.2f} µs/event")
    verdict("CPU per streamed event on the passthrough path <= 1.5 µs", passed <= 1500,
            f"{passed / 1000:.2f} µs/event decode + encode (build/bench/relay, {events}-event "
            f"stream; parse + re-encode {parsed / 1000:.2f} µs){whole}")
for fmt, bar in (("sse", 150), ("json", 100)):
    s, dct = get(fmt, 1, 0, "switchboard"), get(fmt, 1, 0, "direct")
    if s and dct:
        added = s["p50"] - dct["p50"]
        verdict(f"{fmt.upper()} c=1: p50 added over direct <= {bar} µs", added <= bar,
                f"{added:+.0f} µs (p50 {s['p50']:.0f} vs {dct['p50']:.0f} µs)", s, dct)


def added_by_round(s, ref, key):
    """s's figure minus ref's within each round of the stream step (they ran in the same
    round, interleaved), round by round."""
    return [num(a[key]) - num(b[key]) for a, b in zip(s["rounds"], ref["rounds"])]


def added_ms(s, ref, key):
    """The median over the rounds of added_by_round, in ms, and the rounds' own figures."""
    rounds = added_by_round(s, ref, key)
    return statistics.median(rounds) / 1000, ", ".join(f"{x / 1000:+.1f}" for x in rounds)


sb, dr, ng = streams.get("switchboard"), streams.get("direct"), streams.get("nginx")
if sb and dr:
    cpu = num(sb.get("cpu_pct", 0)) / 100
    # nginx proxy_pass in the same rounds: what a proxy that only relays costs on this machine
    # at this load (the upstream itself is direct's figure).
    ref = (f"; nginx proxy_pass {num(ng.get('cpu_pct', 0)) / 100:.2f} core "
           f"({ng.get('cpu_us_req')} µs/stream)" if ng else "")
    verdict(f"{n_streams:,} paced streams: CPU of the whole process <= 0.25 core", cpu <= 0.25,
            f"{cpu:.2f} core ({sb.get('cpu_us_req')} µs/stream){ref}; the upstream itself "
            f"{num(dr.get('cpu_pct', 0)) / 100:.2f} core")
    if sb.get("cgap_p99_us") and dr.get("cgap_p99_us"):
        # Content events (text deltas) are the tokens the upstream paces; switchboard's own
        # chunks (the role chunk, sent with the first delta; finish_reason, sent with the
        # usage) follow its encoding schedule, so they are shown apart, as info.
        # Added = switchboard minus direct within each round (they ran back to back), median
        # over the rounds.
        added, per_round = added_ms(sb, dr, "cgap_p99_us")
        added999, _ = added_ms(sb, dr, "cgap_p999_us")
        ref = ""
        if ng and ng.get("cgap_p99_us"):
            nadded, nrounds = added_ms(ng, dr, "cgap_p99_us")
            ref = (f"; nginx proxy_pass adds {nadded:+.2f} ms ({ms(ng['cgap_p99_us'])}; rounds "
                   f"{nrounds} ms)")
        verdict(f"{n_streams:,} paced streams: p99 inter-event delay added <= 2 ms", added <= 2,
                f"{added:+.2f} ms (p99 gap between content events {ms(sb['cgap_p99_us'])} "
                f"vs {ms(dr['cgap_p99_us'])} direct, pace {env('BENCH_PACE_MS')} ms){ref}; p99.9 "
                f"{added999:+.2f} ms ({ms(sb['cgap_p999_us'])} vs "
                f"{ms(dr['cgap_p999_us'])}); added: median over {plural(len(sb['rounds']), 'round')} of "
                f"the difference within the round (p99: {per_round} ms), gaps: medians, {int(num(sb['content_gaps'])):,} and "
                f"{int(num(dr['content_gaps'])):,} gaps a round (tests/bench/eventgap.c)",
                {"errors": int(num(sb["errors"])) + int(num(dr["errors"]))})
        w(f"| {n_streams:,} paced streams: the same over every event (role, finish, usage, "
          f"[DONE] included) | p99 {(num(sb['gap_p99_us']) - num(dr['gap_p99_us'])) / 1000:+.2f} ms "
          f"({ms(sb['gap_p99_us'])} vs {ms(dr['gap_p99_us'])}), p99.9 "
          f"{(num(sb['gap_p999_us']) - num(dr['gap_p999_us'])) / 1000:+.2f} ms; first event "
          f"p50 {ms(sb['ttfe_p50_us'])} vs {ms(dr['ttfe_p50_us'])}, first content p50 "
          f"{ms(sb['ttfc_p50_us'])} vs {ms(dr['ttfc_p50_us'])}"
          + (f"; nginx proxy_pass p99 {(num(ng['gap_p99_us']) - num(dr['gap_p99_us'])) / 1000:+.2f} ms"
             if ng and ng.get("gap_p99_us") else "") + " | info |")
    peak = max(num(sb["hwm_kb"]), num(sb["max_rss_kb"]))
    verdict(f"{n_streams:,} paced streams: RSS < 64 MB", peak < 64 * 1024, f"peak {mb(peak)}")
for fmt, c in (("json", 1), ("json", 16), ("json", 64), ("sse", 16)):
    s, b = get(fmt, c, 0, "switchboard"), get(fmt, c, 0, "baseline")
    if s and b:
        w(f"| {fmt.upper()} c={c} against the baseline build (same rounds) | "
          f"{ratio(s['rps'], b['rps']):.3f}x req/s ({s['rps']:,.0f} vs {b['rps']:,.0f}), "
          f"p50 {s['p50'] - b['p50']:+.0f} µs, CPU {s['cpu']:.0f} vs {b['cpu']:.0f} µs/req | info |")
bs = streams.get("baseline")
if sb and bs:
    w(f"| {n_streams:,} paced streams against the baseline build | peak RSS "
      f"{mb(max(num(sb['hwm_kb']), num(sb['max_rss_kb'])))} vs "
      f"{mb(max(num(bs['hwm_kb']), num(bs['max_rss_kb'])))}, CPU {sb.get('cpu_pct')}% vs "
      f"{bs.get('cpu_pct')}%, p99 gap between events {ms(sb.get('gap_p99_us'))} vs "
      f"{ms(bs.get('gap_p99_us'))} (p99.9 {ms(sb.get('gap_p999_us'))} vs "
      f"{ms(bs.get('gap_p999_us'))}) | info |")
w("")
w(f"{verdicts[v16:].count('PASS')} of issue 16's targets met, {verdicts[v16:].count('MISS')} missed.")
w("")

# ---- the library floor --------------------------------------------------------------------
floor_rows = []
floor_cols = [t for t in FLOORS if any(k[0] == "matrix" and k[4] == t for k in groups)]
for fmt, c in (("json", 1), ("json", 16), ("json", 64), ("sse", 1), ("sse", 16), ("sse", 64)):
    dct, n, s = get(fmt, c, 0, "direct"), get(fmt, c, 0, "nginx"), get(fmt, c, 0, "switchboard")
    floors = [get(fmt, c, 0, t) for t in floor_cols]
    if not (dct and n and s and floors and all(floors)):
        continue
    cells = []
    for a in [n] + floors + [s]:
        cells.append(f"{ratio(a['rps'], n['rps']):.2f}x / {a['p50'] - dct['p50']:+.0f} µs / {a['cpu']:.0f} µs")
    floor_rows.append(f"| {fmt.upper()} c={c} | " + " | ".join(cells) + " |")
if floor_rows:
    w("### The library floor")
    w("")
    w("Each cell: req/s against nginx's / p50 added over direct / CPU µs per request. The floors "
      "do only what any proxy on these two libraries must do (no parsing, routing, ledger); "
      "`floor-relay` has switchboard's threads and hand-offs, `floor-tpc` none, `floor-loop` "
      "one thread for both libraries (no hand-off, one core), `floor-loop2` two of those. What "
      "switchboard spends above `floor-relay` is its own work; what `floor-relay` spends above "
      "`floor-tpc` or `floor-loop` is the hand-offs; what `floor-tpc` spends above nginx is the "
      "libraries.")
    w("")
    w("| configuration | nginx | " + " | ".join(floor_cols) + " | switchboard |")
    w("| --- | ---: | " + " | ".join("---:" for _ in floor_cols) + " | ---: |")
    for row in floor_rows:
        w(row)
    w("")

# ---- context ------------------------------------------------------------------------------
w("### Context")
w("")
ctx = []
for fmt, ref in (("json", "~54%"), ("sse", "~35%")):
    n, dct = get(fmt, 16, 0, "nginx"), get(fmt, 16, 0, "direct")
    if n and dct:
        ctx.append(f"nginx proxy_pass keeps {100 * ratio(n['rps'], dct['rps']):.0f}% of direct "
                   f"{fmt.upper()} req/s at c=16 (issue's reference: {ref})")
n, dct = get("json", 1, 0, "nginx"), get("json", 1, 0, "direct")
if n and dct:
    ctx.append(f"nginx adds {n['p50'] - dct['p50']:.0f} µs to p50 at c=1 (reference: ~20 µs)")
for fmt in ("json", "sse"):
    a, b = agg(("calib", fmt, 16, 0, "nginx-upstream")), agg(("calib", fmt, 16, 0, "c-upstream"))
    if a and b:
        ctx.append(f"calibration, {fmt.upper()} c=16 direct at delay 0: tests/bench/upstream.c "
                   f"{b['rps']:,.0f} req/s ({b['cpu']:.1f} CPU µs/req) vs nginx {a['rps']:,.0f} "
                   f"({a['cpu']:.1f} CPU µs/req): {ratio(b['rps'], a['rps']):.2f}x")
for line in ctx:
    w(f"- {line}")
if streams:
    if ctx:
        w("")
    w(f"{n_streams:,} concurrent streams, one event every {env('BENCH_PACE_MS')} ms "
      f"(14 events, 13 intervals: about {13 * int(env('BENCH_PACE_MS', '200')) / 1000:.1f} s a stream), "
      f"first starts spread over {env('BENCH_STREAM_STAGGER_MS', '?')} ms, "
      f"{env('BENCH_STREAM_SECONDS')} s counted after a {env('BENCH_STREAM_WARMUP', '0')} s warm-up, "
      f"medians of {plural(int(env('BENCH_STREAM_ROUNDS', '1')), 'round')} "
      "(streams, latencies, events and CPU count only those seconds; peak RSS, threads and fds "
      "include the warm-up):")
    w("")
    w("| through | streams/s | p50 | p99 | max in flight | peak RSS | threads | fds | upstream fds | CPU µs/stream | CPU | errors |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in STREAM_LABELS:
        s = streams.get(label)
        if not s:
            continue
        inflight = s["max_in_flight"] if int(num(s["max_in_flight"])) >= 0 else ""
        peak = max(num(s["hwm_kb"]), num(s["max_rss_kb"]))
        w(f"| {label} | {num(s['rps']):,.1f} | {lat(num(s['p50_us']))} | {lat(num(s['p99_us']))} | "
          f"{inflight} | {mb(peak)} | {s['max_threads']} | {s['max_fds']} | {s['max_upstream_fds']} | "
          f"{s.get('cpu_us_req', '')} | {s.get('cpu_pct', '')}% | {s['errors']} |")
    w("")
    w("Per event (tests/bench/eventgap.c: every SSE event timestamped on arrival; gap = time "
      "since the stream's previous event, ideally the pace; first event = from the request "
      "sent; `content` rows count only events with a non-empty delta content, the tokens). "
      f"Load average {env('STREAMS_LOAD_BEFORE', '?')} before the step, "
      f"{env('STREAMS_LOAD_AFTER', '?')} after.")
    w("")
    w("| through | events | gap p50 | p90 | p99 | p99.9 | max | first event p50 | p99 | client in flight | client CPU |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in STREAM_LABELS:
        for kind, g, f, n in (("all", "gap", "ttfe", "events"), ("content", "cgap", "ttfc", "content")):
            s = streams.get(label)
            if not s or not s.get(f"{g}_p50_us"):
                continue
            gaps = " | ".join(ms(s[f"{g}_{q}_us"]) for q in ("p50", "p90", "p99", "p999", "max"))
            w(f"| {label}, {kind} | {int(num(s[n])):,} | {gaps} | {ms(s[f'{f}_p50_us'])} | "
              f"{ms(s[f'{f}_p99_us'])} | {s['client_max_in_flight']} | {s['client_cpu_pct']}% |")
    w("")
    dr = streams.get("direct")
    added_rows = [lb for lb in STREAM_LABELS[1:] if dr and streams.get(lb) and streams[lb].get("cgap_p99_us")]
    if added_rows:
        w("Added over direct (each figure minus direct's within the round, median over the rounds; "
          "the content p99 per round in brackets). CPU: the process's, the upstream's for direct "
          f"({num(dr.get('cpu_pct', 0)) / 100:.2f} core, {dr.get('cpu_us_req')} µs/stream).")
        w("")
        w("| through | content gap p99 | p99.9 | every event p99 | first content p50 | CPU | CPU µs/stream |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label in added_rows:
            s = streams[label]
            p99, rounds = added_ms(s, dr, "cgap_p99_us")
            cells = [f"{p99:+.2f} ms ({rounds})"]
            cells += [f"{added_ms(s, dr, k)[0]:+.2f} ms" for k in ("cgap_p999_us", "gap_p99_us", "ttfc_p50_us")]
            w(f"| {label} | " + " | ".join(cells) + f" | {num(s.get('cpu_pct', 0)) / 100:.2f} core | "
              f"{s.get('cpu_us_req')} |")
        w("")
    w(f"switchboard RSS: {mb(idle_kb)} idle after start, {mb(num(env('POST_RSS_KB')))} after the "
      f"matrix, {mb(num(env('AFTER_STREAMS_RSS_KB')))} 2 s after the streams "
      f"({env('AFTER_STREAMS_THREADS')} threads).")
print("\n".join(out))
