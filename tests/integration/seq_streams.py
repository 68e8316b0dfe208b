#!/usr/bin/env python3
"""Many concurrent streamed chat completions whose pieces carry sequence numbers.

usage: seq_streams.py PORT [--streams N] [--pieces K] [--timeout S]
Client i asks the simulator to echo "i-0000 i-0001 ... i-(K-1)"; the simulator streams one
piece per word. Each client checks that its own pieces arrive complete, once each and in
order (no other stream's piece spliced in), that the stream ends with [DONE], and prints one
JSON summary: {"ok": n, "bad": [...first failures...]}. Only talks to 127.0.0.1.
"""
import argparse
import http.client
import json
import threading


def one(port, i, k, timeout, out, lock):
    words = ["%d-%04d" % (i, j) for j in range(k)]
    body = {"model": "chat", "stream": True,
            "messages": [{"role": "user", "content": "echo: " + " ".join(words)}]}
    got, err, done = [], None, False
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            err = "status %d: %s" % (resp.status, resp.read()[:200])
        else:
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    err = "error chunk: %s" % chunk["error"]
                for ch in chunk.get("choices", []):
                    piece = (ch.get("delta") or {}).get("content")
                    if piece:
                        got.extend(piece.split())
        conn.close()
    except Exception as e:  # noqa: BLE001 - every failure is data here
        err = "%s: %s" % (type(e).__name__, e)
    if err is None and got != words:
        first = next((n for n, (a, b) in enumerate(zip(got, words)) if a != b), min(len(got), k))
        err = "stream %d: %d of %d pieces, first difference at %d (%s)" % (
            i, len(got), k, first, got[first] if first < len(got) else "missing")
    if err is None and not done:
        err = "stream %d: no [DONE]" % i
    with lock:
        out.append(err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--pieces", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    out, lock = [], threading.Lock()
    ts = [threading.Thread(target=one, args=(a.port, i, a.pieces, a.timeout, out, lock))
          for i in range(a.streams)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    bad = [e for e in out if e]
    print(json.dumps({"ok": len(out) - len(bad), "bad": bad[:5]}))


if __name__ == "__main__":
    main()
