#!/usr/bin/env python3
"""An OpenAI-compatible upstream whose stream timing the test controls (test_stream_framing.sh).

POST /v1/chat/completions answers a stream of 14 events (role, 10 content pieces, the finish,
usage, [DONE]); the last user message picks the timing:
  "fast"  - status line, headers and the whole body in ONE write (the answer reaches
            switchboard in one piece, as from a fast provider at c=1);
  "slow"  - headers, then one event every GAP seconds (0.15), each its own write;
  "late"  - like fast, after a 0.4 s pause (a client can leave before the answer).
Rate-limit headers come with every answer. Writes its port to argv[1]. Keep-alive.
"""
import json
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler

GAP = 0.15
WORDS = ["one", " two", " three", " four", " five", " six", " seven", " eight", " nine", " ten"]


def events(model):
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model}

    def chunk(delta, finish=None, **extra):
        c = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}], **extra)
        return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": w}) for w in WORDS]
    out.append(chunk({}, "stop"))
    usage = dict(base, choices=[],
                 usage={"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17})
    out.append("data: " + json.dumps(usage, separators=(",", ":")) + "\n\n")
    out.append("data: [DONE]\n\n")
    return [e.encode() for e in out]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        mode = req["messages"][-1]["content"] if req.get("messages") else "fast"
        evs = events(req.get("model", "m"))
        body = b"".join(evs)
        head = ("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                "x-ratelimit-remaining-requests: 99\r\nx-ratelimit-limit-requests: 100\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        if mode == "late":
            time.sleep(0.4)
        if mode != "slow":
            self.wfile.write(head + body)  # one write
            return
        self.wfile.write(head)
        for e in evs:
            time.sleep(GAP)
            self.wfile.write(e)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
