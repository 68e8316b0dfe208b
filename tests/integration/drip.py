#!/usr/bin/env python3
"""drip.py - a bounded slowloris for tests: opens N connections to 127.0.0.1:PORT from a
given loopback source address, sends the start of a request on each, then drips one more
byte on each every --every seconds. Stops by itself after --duration seconds.

Prints a JSON summary: how many connections were opened, how many the server closed early
(within --early seconds: refused at accept), how many later (cut by a deadline, with the
latest such time), and how many were still open at the end.

usage: drip.py PORT [--n 50] [--source 127.0.0.2] [--duration 6] [--every 0.25]
               [--early 0.5] [--body [--length 60000]]
  --body: send whole headers with Content-Length: LENGTH, then drip the body instead.
"""
import argparse
import json
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--source", default="127.0.0.2")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--every", type=float, default=0.25)
    ap.add_argument("--early", type=float, default=0.5)
    ap.add_argument("--body", action="store_true")
    ap.add_argument("--length", type=int, default=60000)
    a = ap.parse_args()
    if a.n > 2000 or a.duration > 60:
        raise SystemExit("drip.py: bounded to 2000 connections and 60 s")

    if a.body:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % a.length)
    else:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
    socks = []
    start = time.monotonic()
    for _ in range(a.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((a.source, 0))
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", a.port))
            s.sendall(head)
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append({"s": s, "opened": time.monotonic(), "closed": None})

    def poll_closed(c, now):
        try:
            if c["s"].recv(4096) == b"":
                c["closed"] = now
        except BlockingIOError:
            pass
        except OSError:
            c["closed"] = now

    while time.monotonic() - start < a.duration:
        now = time.monotonic()
        for c in socks:
            if c["closed"] is not None:
                continue
            poll_closed(c, now)
            if c["closed"] is not None:
                continue
            try:
                c["s"].send(b" " if a.body else b"X")
            except BlockingIOError:
                pass
            except OSError:
                c["closed"] = now
        time.sleep(a.every)

    early = [c for c in socks if c["closed"] is not None and c["closed"] - c["opened"] < a.early]
    late = [c for c in socks if c["closed"] is not None and c["closed"] - c["opened"] >= a.early]
    out = {
        "opened": len(socks),
        "closed_early": len(early),
        "closed_late": len(late),
        "latest_close_s": round(max([c["closed"] - c["opened"] for c in late], default=0), 2),
        "still_open": len([c for c in socks if c["closed"] is None]),
    }
    for c in socks:
        c["s"].close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
