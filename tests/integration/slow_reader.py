#!/usr/bin/env python3
"""slow_reader.py - a streaming client that reads its answer slowly, or stops reading.

usage: slow_reader.py PORT BODY_FILE REQUEST_ID [--stall SECONDS] [--read-every MS]
  Sends BODY_FILE as a POST /v1/chat/completions on a socket with a 4 KB receive buffer.
  --stall S: reads the first 2 KB, then nothing for S seconds, then closes (bounded: 30 s).
  otherwise: reads 2 KB every --read-every ms until the server ends the answer (at most 60 s).
Prints JSON: bytes read, whether "data: [DONE]" was seen, whether the server closed first.
"""
import argparse
import json
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("body_file")
    ap.add_argument("request_id")
    ap.add_argument("--stall", type=float, default=0)
    ap.add_argument("--read-every", type=float, default=2)
    a = ap.parse_args()
    body = open(a.body_file, "rb").read()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", a.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
              b"Content-Type: application/json\r\nx-request-id: " + a.request_id.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    got = bytearray()
    closed = False
    deadline = time.monotonic() + 60
    s.settimeout(5)
    if a.stall > 0:
        while len(got) < 2048:
            d = s.recv(2048)
            if not d:
                closed = True
                break
            got += d
        time.sleep(min(a.stall, 30))
        s.setblocking(False)
        try:  # did the server close meanwhile? (reads what is in the small buffer)
            while True:
                d = s.recv(65536)
                if not d:
                    closed = True
                    break
                got += d
        except (BlockingIOError, ConnectionResetError):
            closed = closed or False
    else:
        while time.monotonic() < deadline:
            try:
                d = s.recv(2048)
            except socket.timeout:
                break
            if not d:
                closed = True
                break
            got += d
            if got.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n") or got.endswith(b"0\r\n\r\n"):
                break
            time.sleep(a.read_every / 1000.0)
    s.close()
    print(json.dumps({"bytes": len(got), "done": b"data: [DONE]" in got, "closed": closed}))


if __name__ == "__main__":
    main()
