#!/usr/bin/env bash
# rollout proxy framing: every class of malformed request gets its status (400/414/431/501/505)
# and the connection closed; a fake backend's malformed responses give 502 (or a cut connection
# once the response is under way); forwarded heads carry X-Forwarded-* and no hop-by-hop fields.
set -u
. "$(dirname "$0")/proxy_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 is not installed"; exit 77; }

# short head and response timeouts (head, idle, connect, response ms) keep the timeout cases fast
export ROLLOUT_PROXY_TIMEOUTS=1000,5000,1000,1500
proxy_start
BP=$(free_port)
cat >"$T/fake.py" <<'PY'
# A backend that answers by path: /echo returns the request head it got; others misbehave.
import socket, sys, threading, time
BAD = {
    "/cl-dup": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "/fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
    "/nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "/bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "/status": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "/garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
    "/empty": b"",
    "/upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
    "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
}
def serve(c):
    try:
        n = 0
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                b = c.recv(65536)
                if not b:
                    return
                data += b
            head = data.split(b"\r\n\r\n")[0]
            path = head.split(b" ")[1].decode()
            if not path.startswith("/flaky"):
                break
            # keep-alive for one request, then close on the next without answering (the race a
            # backend's keep-alive timeout makes)
            if n > 0:
                return
            n += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if path == "/hang":
            time.sleep(5)
            return
        if path == "/echo":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\r\n" % len(head) + head)
        else:
            c.sendall(BAD[path])
    finally:
        try:
            c.shutdown(socket.SHUT_WR)
            c.recv(65536)
        except OSError:
            pass
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$T/fake.py" "$BP" >"$T/fake.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$T/fake.log" && break; sleep 0.05; done
LP=$(free_port)
[ "$(set_service fr "$LP" "1:1:$BP:active")" = 201 ] || fail "PUT"

cat >"$T/check.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
failed = []
def exchange(raw, timeout=5):
    """Sends raw, reads until the proxy closes. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    try:
        s.sendall(raw)
    except OSError:
        pass
    out = b""
    closed = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        out += b
    s.close()
    return out, closed
def status(out):
    try:
        return int(out.split(b" ", 2)[1])
    except Exception:
        return None
def expect(name, raw, want, must_close=True):
    out, closed = exchange(raw)
    st = status(out)
    ok = st == want and (closed or not must_close)
    print(("ok  " if ok else "FAIL"), name, "status", st, "closed", closed)
    if not ok:
        failed.append(name)
H = b"Host: x\r\n"
G = b"GET / HTTP/1.1\r\n"
P = b"POST / HTTP/1.1\r\n"
# request side
expect("duplicate Content-Length", P + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400)
expect("conflicting Content-Length", P + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400)
expect("Content-Length list", P + H + b"Content-Length: 3, 3\r\n\r\nabc", 400)
expect("bad Content-Length", P + H + b"Content-Length: +3\r\n\r\nabc", 400)
expect("CL + TE", P + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
expect("TE not ending in chunked", P + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400)
expect("TE unknown coding", P + H + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501)
expect("HTTP/1.0 with TE", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
expect("bad chunk size", P + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400)
expect("chunk size overflow", P + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 400)
expect("obs-fold", G + H + b"X-A: 1\r\n  2\r\n\r\n", 400)
expect("NUL in header value", G + H + b"X-A: a\x00b\r\n\r\n", 400)
expect("CR in header value", G + H + b"X-A: a\rb\r\n\r\n", 400)
expect("bare LF", b"GET / HTTP/1.1\n" + H + b"\n", 400)
expect("space before colon", G + H + b"X-A : 1\r\n\r\n", 400)
expect("no Host", G + b"\r\n", 400)
expect("two Hosts", G + H + H + b"\r\n", 400)
expect("bad version", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400)
expect("HTTP/2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505)
expect("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414)
expect("header block too large", G + H + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(90)) + b"\r\n", 431)
expect("too many headers", G + H + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431)
expect("head timeout", G + H, 408)
expect("response timeout", b"GET /hang HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 504)
# response side
for path in ["/cl-dup", "/cl-te", "/fold", "/nul", "/bare-lf", "/status", "/garbage", "/empty", "/upgrade"]:
    expect("response " + path, b"GET " + path.encode() + b" HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 502)
# a body fault: 502 while nothing was sent yet, else the response is cut, never completed
for path in ["/bad-chunk", "/short"]:
    out, closed = exchange(b"GET " + path.encode() + b" HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    body = out.partition(b"\r\n\r\n")[2]
    cut = status(out) == 200 and (len(body) < 100 if path == "/short" else not body.endswith(b"0\r\n\r\n"))
    ok = closed and (status(out) == 502 or cut)
    print("ok  " if ok else "FAIL", "response", path, "502 or cut:", closed, status(out))
    if not ok:
        failed.append(path)
# a good request: X-Forwarded-For/Proto added, hop-by-hop fields dropped both ways
out, closed = exchange(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Drop\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n", 2)
head, _, body = out.partition(b"\r\n\r\n")
checks = {
    "status 200": status(out) == 200,
    "XFF appended": b"X-Forwarded-For: 10.0.0.1, 127.0.0.1" in body,
    "XFP set": b"X-Forwarded-Proto: http\r\n" in body + b"\r\n" and b"https" not in body,
    "Connection not forwarded": b"Connection" not in body,
    "Keep-Alive not returned": b"Keep-Alive" not in head,
}
for k, v in checks.items():
    print("ok  " if v else "FAIL", "echo:", k)
    if not v:
        failed.append(k)
        print(out)
# a pooled connection closed by the backend before answering: GET is retried on a fresh
# connection (same and only backend), POST is not (502)
def ka_requests(reqs):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    out = []
    for r in reqs:
        s.sendall(r)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        st = status(data)
        head, _, body = data.partition(b"\r\n\r\n")
        cl = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        while len(body) < cl:
            body += s.recv(65536)
        out.append(st)
        time.sleep(0.1)
    s.close()
    return out
got = ka_requests([b"GET /flaky HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /flaky HTTP/1.1\r\nHost: x\r\n\r\n",
                   b"POST /flaky HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"])
print("ok  " if got == [200, 200, 502] else "FAIL", "stale pooled connection: GET retried, POST not:", got)
if got != [200, 200, 502]:
    failed.append("stale pool retry")
# keep-alive survives a good request: two requests on one connection
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
time.sleep(0.3)
s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
n = data.count(b"HTTP/1.1 200")
print("ok  " if n == 2 else "FAIL", "two requests on one connection:", n)
if n != 2:
    failed.append("keep-alive")
sys.exit(1 if failed else 0)
PY
python3 "$T/check.py" "$LP" || fail "framing checks failed"

# a refused connection is retried on another backend: no error reaches the client
DEAD=$(free_port)
[ "$(set_service fr "$LP" "7:1:$DEAD:active" "1:1:$BP:active")" = 200 ] || fail "PUT with a dead backend"
for _ in 1 2 3 4; do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LP/echo")" = 200 ] ||
		fail "a refused connection was not retried on the other backend"
done
ce=$(admin_body GET /v1/services/fr/stats | json "[b['connect_errors'] for b in d['backends'] if b['id']==7][0]")
[ "$ce" -ge 1 ] || fail "connect errors not counted: $ce"
# only a dead backend: 502
[ "$(set_service fr "$LP" "7:1:$DEAD:active")" = 200 ] || fail "PUT dead only"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$LP/echo")" = 502 ] || fail "no 502 when no backend connects"
log PASS
