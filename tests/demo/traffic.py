#!/usr/bin/env python3
"""make demo's background actors: a traffic generator and a scripted incident.

usage: traffic.py --port-file F [--port-file F2 ...] [--rate R] [--outage-ctl PORT]
                  [--outage-after S] [--outage-for S] [--persona-ctl PORT] [--persona-after S]
                  [--parent PID]

Waits for the console's gateway port (the port file), then sends chat completions at about
R requests/s with varied prompts, routes, tags and stream settings. With --outage-ctl it
starts an outage on that simulator (its control port) after --outage-after seconds and
recovers it --outage-for seconds later, so the console shows breakers opening, traffic failing
over and spend moving. With --persona-ctl it makes that simulator's answers terse after
--persona-after seconds (a quality drop). Like an application's users, it rates about half of
the answers through POST /v1/feedback: short or cut-off answers get a thumbs down, the rest
mostly a thumbs up, so the console's detail view and the route's quality guard have
something to go on. Writes nothing to the terminal (the console owns it); exits when its
parent (the demo script) is gone. Several --port-file (a fleet, `make demo FLEET=1`): calls
go round-robin over the gateways, as a load balancer would send them. Only talks to 127.0.0.1.
"""
import argparse
import http.client
import json
import os
import random
import threading
import time
import uuid

PROMPTS = [
    "Summarise why circuit breakers matter for LLM gateways in two sentences.",
    "Write a haiku about on-call pagers at 3am.",
    "Explain exponential backoff with jitter to a new engineer.",
    "List three risks of routing all traffic to one model provider.",
    "Translate 'the fallback answered in time' into French and German.",
    "What is a hedged request? Keep it short.",
    "Give a one-line SQL query that counts rows per day.",
    "Draft a status-page update for a partial provider outage.",
    "Compare latency and cost trade-offs of small versus large models.",
    "Suggest a name for a switchboard that routes prompts.",
]

# (route, tag, weight)
MIX = [("chat", None, 55), ("smart", None, 15), ("fast", None, 15), ("chat", "batch", 15)]


def alive(parent):
    return parent <= 0 or os.getppid() == parent


def read_port(path, parent, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and alive(parent):
        try:
            with open(path) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.2)
    return 0


def answer_of(resp, stream):
    """(text, finish_reason) of a chat completion or an SSE stream body."""
    raw = resp.read().decode("utf-8", "replace")
    if not stream:
        choice = json.loads(raw)["choices"][0]
        return choice["message"].get("content") or "", choice.get("finish_reason")
    text, finish = [], None
    for line in raw.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        for choice in json.loads(line[6:]).get("choices", []):
            text.append((choice.get("delta") or {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    return "".join(text), finish


def rate(port, request_id, text, finish):
    """A user's verdict: terse answers are bad; nearly all others are fine. (An answer cut by
    the max_tokens the user asked for is not held against the provider.)"""
    bad = len(text.split()) <= 4 and finish != "length"
    label = "thumbs_down" if bad or random.random() < 0.02 else "thumbs_up"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/feedback",
                     json.dumps({"request_id": request_id, "label": label}),
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    except Exception:  # noqa: BLE001
        pass


def one_call(port, inflight):
    route, tag, _ = random.choices(MIX, weights=[m[2] for m in MIX])[0]
    stream = random.random() < 0.5
    body = {
        "model": route,
        "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
        "stream": stream,
        "max_tokens": random.choice([64, 128, 256]),
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    request_id = "demo-" + uuid.uuid4().hex[:16]
    headers = {"Content-Type": "application/json", "x-request-id": request_id}
    if tag:
        headers["x-switchboard-tag"] = tag
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        resp = conn.getresponse()
        ok = resp.status == 200
        text, finish = answer_of(resp, stream) if ok else ("", None)
        conn.close()
        if ok and random.random() < 0.6:
            rate(port, request_id, text, finish)
    except Exception:  # noqa: BLE001 - failures are what the console shows
        pass
    finally:
        inflight.release()


def behave(ctl, patch):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ctl, timeout=5)
        conn.request("POST", "/_sim/behavior", json.dumps(patch),
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
    except Exception:  # noqa: BLE001
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True, action="append")
    ap.add_argument("--rate", type=float, default=3.0)
    ap.add_argument("--outage-ctl", type=int, default=0)
    ap.add_argument("--outage-after", type=float, default=60)
    ap.add_argument("--outage-for", type=float, default=45)
    ap.add_argument("--persona-ctl", type=int, default=0)
    ap.add_argument("--persona-after", type=float, default=20)
    ap.add_argument("--parent", type=int, default=0)
    args = ap.parse_args()

    ports = [read_port(p, args.parent) for p in args.port_file]
    if not all(ports):
        return
    n = 0
    inflight = threading.BoundedSemaphore(16)
    t0 = time.monotonic()
    phase = 0  # 0 before the outage, 1 during, 2 after
    terse = False
    while alive(args.parent):
        now = time.monotonic() - t0
        if args.persona_ctl and not terse and now >= args.persona_after:
            behave(args.persona_ctl, {"persona": "terse"})
            terse = True
        if args.outage_ctl and phase == 0 and now >= args.outage_after:
            behave(args.outage_ctl, {"outage": "refuse"})
            phase = 1
        elif args.outage_ctl and phase == 1 and now >= args.outage_after + args.outage_for:
            behave(args.outage_ctl, {"reset": True})
            phase = 2
        if inflight.acquire(blocking=False):
            port = ports[n % len(ports)]
            n += 1
            threading.Thread(target=one_call, args=(port, inflight), daemon=True).start()
        time.sleep(random.expovariate(args.rate))


if __name__ == "__main__":
    main()
