#!/usr/bin/env python3
"""Concurrent paced streams: how long each went without an event.

usage: gap_streams.py PORT --streams N --words K [--ready FILE] [--timeout S]
Each stream asks the simulator to echo K words (paced by the simulator's token_rate) and
records the longest time between two data events once its first event arrived. Writes
"ready" to FILE once every stream has had its first event, and prints one JSON summary:
{"ok": n, "max_gap_s": [...per stream...], "bad": [...first failures...]}. 127.0.0.1 only.
"""
import argparse
import http.client
import json
import threading
import time


def one(port, i, k, timeout, out, lock, first):
    words = ["w%d-%d" % (i, j) for j in range(k)]
    body = {"model": "chat", "stream": True,
            "messages": [{"role": "user", "content": "echo: " + " ".join(words)}]}
    gap, last, err, done = 0.0, None, None, False
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            err = "status %d" % resp.status
        else:
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data: "):
                    continue
                now = time.monotonic()
                if last is None:
                    first.release()
                else:
                    gap = max(gap, now - last)
                last = now
                if line == "data: [DONE]":
                    done = True
        conn.close()
    except Exception as e:  # noqa: BLE001 - reported, the test fails on it
        err = repr(e)
    if last is None:
        first.release()
    with lock:
        if err or not done:
            out["bad"].append("stream %d: %s" % (i, err or "no [DONE]"))
        else:
            out["ok"] += 1
        out["max_gap_s"].append(round(gap, 3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--words", type=int, default=100)
    ap.add_argument("--ready")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    out = {"ok": 0, "max_gap_s": [], "bad": []}
    lock = threading.Lock()
    first = threading.Semaphore(0)
    ts = [threading.Thread(target=one, args=(a.port, i, a.words, a.timeout, out, lock, first))
          for i in range(a.streams)]
    for t in ts:
        t.start()
    for _ in ts:
        first.acquire()
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    for t in ts:
        t.join()
    print(json.dumps(out))


main()
