#!/usr/bin/env python3
"""A webhook receiver for notification scenarios: answers 500 to the first --fail-first POSTs, then
200; appends each accepted POST as one JSON line {"path":..,"body":..} to --out, and every attempt's
status to --out.attempts. Serves on 127.0.0.1:--port (0: any free port) until SIGTERM; prints
"listening PORT" once ready."""
import argparse, http.server, json, signal, sys, threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fail-first", type=int, default=0)
    a = ap.parse_args()
    state = {"seen": 0}
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n).decode()
            with lock:
                state["seen"] += 1
                code = 500 if state["seen"] <= a.fail_first else 200
                with open(a.out + ".attempts", "a") as f:
                    f.write(f"{code} {self.path} {self.headers.get('Content-Type')}\n")
                if code == 200:
                    with open(a.out, "a") as f:
                        f.write(json.dumps({"path": self.path, "body": json.loads(body)}) + "\n")
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("listening", srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
