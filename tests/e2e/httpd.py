#!/usr/bin/python3
"""Tiny HTTP server for the e2e self-test (stands in for gopxe's HTTP side).

usage: httpd.py BIND_ADDR PORT ROOT

GET  serves files under ROOT (no directory listing outside ROOT).
POST /done (or any path ending in /done) answers 200 and logs "DONE <path>".
Every request is logged to stderr with a timestamp, one line each, so the
harness can show the last HTTP step seen when a boot fails.
"""
import http.server
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%.3f http %s %s\n" % (time.time(), self.client_address[0], fmt % args))
        sys.stderr.flush()

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.path.rstrip("/").endswith("/done"):
            body = b'{"state":"installed"}\n'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            sys.stderr.write("%.3f http DONE %s\n" % (time.time(), self.path))
        else:
            self.send_error(404)


def main():
    bind, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def handler(*a, **kw):
        return Handler(*a, directory=root, **kw)

    srv = http.server.ThreadingHTTPServer((bind, port), handler)
    sys.stderr.write("%.3f http listening on %s:%d root=%s\n" % (time.time(), bind, port, root))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
