#!/usr/bin/env python3
"""An HTTP backend for drain tests: `slow_backend.py PORT VERSION`. /healthz answers 200 at once;
/slow?s=N answers after N seconds (a request held in flight); anything else "hello from version V"."""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, VERSION = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/slow":
            time.sleep(float(parse_qs(u.query).get("s", ["5"])[0]))
        body = b"ok\n" if u.path == "/healthz" else f"hello from version {VERSION}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
