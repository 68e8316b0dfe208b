#!/usr/bin/env python3
"""Spreads chat completions round-robin over several gateways (a fleet behind a load balancer).

usage: fleet_load.py PORT,PORT,... [--n N] [--c C] [--duration S] [--model M] [--rps R]
                     [--header "Name: value"]...
Request i goes to the (i mod k)-th port. Prints one JSON object: counts by status, by
"port:status", by "port:target", the elapsed seconds, and a few failure samples. --rps paces
the starts (whole fleet). Only talks to 127.0.0.1.
"""
import argparse
import http.client
import json
import threading
import time


def one(port, model, i, timeout, headers):
    body = {"model": model, "messages": [{"role": "user", "content": f"fleet call #{i}"}]}
    rec = {"port": port, "status": 0, "target": None}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        rec["status"] = resp.status
        rec["target"] = resp.getheader("x-switchboard-target")
        data = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            rec["body"] = data[:200]
        conn.close()
    except Exception as e:  # noqa: BLE001 - a failure is data here
        rec["exception"] = f"{type(e).__name__}: {e}"
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ports")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--c", type=int, default=4)
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--rps", type=float, default=0)
    ap.add_argument("--model", default="chat")
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--header", action="append", default=[])
    a = ap.parse_args()
    headers = dict(h.split(": ", 1) for h in a.header)
    ports = [int(p) for p in a.ports.split(",")]
    lock = threading.Lock()
    state = {"next": 0}
    recs = []
    t0 = time.monotonic()

    def worker():
        while True:
            with lock:
                i = state["next"]
                if (a.duration <= 0 and i >= a.n) or (
                        a.duration > 0 and time.monotonic() - t0 >= a.duration):
                    return
                state["next"] += 1
            if a.rps > 0:
                delay = t0 + i / a.rps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            r = one(ports[i % len(ports)], a.model, i, a.timeout, headers)
            with lock:
                recs.append(r)

    threads = [threading.Thread(target=worker) for _ in range(a.c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {"n": len(recs), "elapsed_s": time.monotonic() - t0, "by_status": {},
           "by_port_status": {}, "by_port_target": {}, "failures": []}
    for r in recs:
        s = str(r["status"])
        out["by_status"][s] = out["by_status"].get(s, 0) + 1
        k = f'{r["port"]}:{s}'
        out["by_port_status"][k] = out["by_port_status"].get(k, 0) + 1
        k = f'{r["port"]}:{r["target"]}'
        out["by_port_target"][k] = out["by_port_target"].get(k, 0) + 1
        if r["status"] != 200 and len(out["failures"]) < 5:
            out["failures"].append(r)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
