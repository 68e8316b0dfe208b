#!/usr/bin/env python3
"""Drives the gateway with chat completions and summarises what the clients saw.

usage: load.py PORT [--n N] [--c C] [--model M] [--stream] [--prompt P] [--tag T]
               [--timeout S] [--duration S]
Prints one JSON object: counts by HTTP status, by x-switchboard-target, streamed-answer
checks (a [DONE] seen, error chunks), latencies (p50/p99 ms) and per-request failures.
Only talks to 127.0.0.1.
"""
import argparse
import http.client
import json
import threading
import time


def one(port, args, i, out, lock):
    body = {
        "model": args.model,
        "messages": [{"role": "user", "content": f"{args.prompt} #{i}"}],
        "stream": args.stream,
    }
    if args.stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Content-Type": "application/json"}
    if args.tag:
        headers["x-switchboard-tag"] = args.tag
    t0 = time.monotonic()
    rec = {"status": 0, "target": None, "done": False, "error_chunk": False, "text": ""}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        resp = conn.getresponse()
        rec["status"] = resp.status
        rec["target"] = resp.getheader("x-switchboard-target")
        data = resp.read().decode("utf-8", "replace")
        if args.stream and resp.status == 200:
            for line in data.split("\n"):
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    rec["done"] = True
                    continue
                chunk = json.loads(payload)
                if "error" in chunk:
                    rec["error_chunk"] = True
                    continue
                for ch in chunk.get("choices", []):
                    rec["text"] += ch.get("delta", {}).get("content") or ""
        elif resp.status == 200:
            rec["text"] = json.loads(data)["choices"][0]["message"]["content"] or ""
            rec["done"] = True
        else:
            rec["error_body"] = data[:300]
        conn.close()
    except Exception as e:  # noqa: BLE001 - every failure is data here
        rec["exception"] = f"{type(e).__name__}: {e}"
    rec["ms"] = (time.monotonic() - t0) * 1000
    with lock:
        out.append(rec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--c", type=int, default=4)
    ap.add_argument("--model", default="chat")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--prompt", default="hello")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--duration", type=float, default=0, help="stop starting requests after S")
    args = ap.parse_args()

    out, lock = [], threading.Lock()
    counter = iter(range(args.n))
    clock0 = time.monotonic()

    def worker():
        for i in counter:
            if args.duration and time.monotonic() - clock0 > args.duration:
                return
            one(args.port, args, i, out, lock)

    threads = [threading.Thread(target=worker) for _ in range(args.c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_status, by_target = {}, {}
    for r in out:
        by_status[str(r["status"])] = by_status.get(str(r["status"]), 0) + 1
        if r["target"]:
            by_target[r["target"]] = by_target.get(r["target"], 0) + 1
    ms = sorted(r["ms"] for r in out)
    pct = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))] if ms else 0  # noqa: E731
    failures = [r for r in out if r["status"] != 200 or not r["done"] or r["error_chunk"]]
    print(json.dumps({
        "n": len(out),
        "by_status": by_status,
        "by_target": by_target,
        "ok": len(out) - len(failures),
        "failed": len(failures),
        "error_chunks": sum(1 for r in out if r["error_chunk"]),
        "p50_ms": round(pct(0.5), 1),
        "p99_ms": round(pct(0.99), 1),
        "first_failures": failures[:3],
    }))


if __name__ == "__main__":
    main()
