#!/usr/bin/env python3
"""One chat request over a raw socket, reporting how the answer was framed and when it came.

raw_client.py PORT REQUEST_ID MODE [--http1.0] [--leave-after S]
Sends a streamed chat request (route "chat", last message MODE) with x-request-id REQUEST_ID.
Prints JSON: status, headers (lower-case names), framing ("length", "chunked" or "close"),
body (the decoded body, latin-1), content_length, recvs (socket reads that brought body
bytes), first_s / last_s (seconds from the request to the first and last body byte), and
chunk_times (seconds of each chunk's arrival, chunked framing only). With --leave-after it
closes the connection S seconds after sending and prints {"left": true}.
"""
import json
import socket
import sys
import time


def main():
    port, rid, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    http10 = "--http1.0" in sys.argv
    leave = None
    if "--leave-after" in sys.argv:
        leave = float(sys.argv[sys.argv.index("--leave-after") + 1])
    body = json.dumps({"model": "chat", "stream": True,
                       "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": mode}]}).encode()
    ver = "HTTP/1.0" if http10 else "HTTP/1.1"
    req = ("POST /v1/chat/completions %s\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "x-request-id: %s\r\nContent-Length: %d\r\n\r\n" % (ver, rid, len(body))).encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.monotonic()
    s.sendall(req)
    if leave is not None:
        time.sleep(leave)
        s.close()
        print(json.dumps({"left": True}))
        return
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        if not got:
            break
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    arrivals = []  # (time, bytes) of each read with body bytes
    if rest:
        arrivals.append((time.monotonic() - t0, rest))
    raw = rest
    framing = "close"
    if "content-length" in headers:
        framing = "length"
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        framing = "chunked"

    def complete():
        if framing == "length":
            return len(raw) >= int(headers["content-length"])
        if framing == "chunked":
            return raw.endswith(b"0\r\n\r\n") and decode_chunked(raw)[1]
        return False

    while not complete():
        got = s.recv(65536)
        if not got:
            break
        arrivals.append((time.monotonic() - t0, got))
        raw += got
    s.close()
    out = {"status": status, "headers": headers, "framing": framing,
           "content_length": int(headers.get("content-length", -1)),
           "recvs": len(arrivals),
           "first_s": arrivals[0][0] if arrivals else None,
           "last_s": arrivals[-1][0] if arrivals else None}
    if framing == "chunked":
        out["body"], _ = decode_chunked(raw)
        out["chunk_times"] = chunk_times(arrivals)
    else:
        out["body"] = raw.decode("latin-1")
    print(json.dumps(out))


def decode_chunked(raw):
    """(decoded body as latin-1, True when the terminating chunk was seen)."""
    body, i = b"", 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return body.decode("latin-1"), False
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            return body.decode("latin-1"), True
        body += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def chunk_times(arrivals):
    """Arrival time of every data chunk (by the read that completed its size line)."""
    times, buf, i = [], b"", 0
    for t, got in arrivals:
        buf += got
        while True:
            j = buf.find(b"\r\n", i)
            if j < 0:
                break
            size = int(buf[i:j].split(b";")[0], 16)
            if size == 0 or len(buf) < j + 2 + size + 2:
                break
            times.append(t)
            i = j + 2 + size + 2
    return times


if __name__ == "__main__":
    main()
