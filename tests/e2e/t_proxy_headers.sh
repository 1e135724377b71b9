#!/usr/bin/env bash
# rollout proxy request rewriting: an absolute-form target goes upstream as origin-form with Host
# replaced by its authority (other schemes, userinfo: 400); every X-Forwarded-For the client sent
# is kept, in order, in one field with the client's address appended; hop-by-hop fields (the
# standard ones and those named in Connection) are dropped both ways, framing fields never.
set -u
. "$(dirname "$0")/proxy_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 is not installed"; exit 77; }

proxy_start
BP=$(free_port)
cat >"$T/fake.py" <<'PY'
# A keep-alive backend that returns the request head it got as the body (reading and dropping a
# Content-Length body), with response fields the proxy must drop.
import socket, sys, threading
def serve(c):
    data = b""
    try:
        while True:
            while b"\r\n\r\n" not in data:
                b = c.recv(65536)
                if not b:
                    return
                data += b
            head, _, data = data.partition(b"\r\n\r\n")
            for l in head.split(b"\r\n"):
                if l.lower().startswith(b"content-length:"):
                    n = int(l.split(b":")[1])
                    while len(data) < n:
                        data += c.recv(65536)
                    data = data[n:]
            c.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s3\r\nProxy-Authenticate: Basic\r\n"
                      b"Upgrade: h2c\r\nX-Kept: 1\r\nContent-Length: %d\r\n\r\n" % len(head) + head)
    except OSError:
        pass
    finally:
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
grep -q ready "$T/fake.log" || fail "the fake backend did not start"
LP=$(free_port)
[ "$(set_service hd "$LP" "1:1:$BP:active")" = 201 ] || fail "PUT"

cat >"$T/check.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
failed = []
def check(name, ok, detail=b""):
    print(("ok  " if ok else "FAIL"), name)
    if not ok:
        print("     ", detail)
        failed.append(name)
def exchange(raw, timeout=3):
    """One request; returns (status, response head lines, body = the head the backend got)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(raw)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            head, sep, body = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if sep and cl and len(body) >= int(cl[0].split(b":")[1]):
                break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        st = int(lines[0].split(b" ")[1])
    except Exception:
        st = None
    return st, lines[1:], body.split(b"\r\n")
def fields(lines, name):
    return [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(name.lower() + b":")]

# (a) absolute-form: origin-form upstream, Host from the target
st, _, up = exchange(b"GET http://backend.example:8080/p?q=1 HTTP/1.1\r\nHost: client.example\r\n\r\n")
check("absolute-form: 200", st == 200, up)
check("absolute-form: origin-form request line", up[0] == b"GET /p?q=1 HTTP/1.1", up)
check("absolute-form: Host replaced", fields(up, b"Host") == [b"backend.example:8080"], up)
st, _, up = exchange(b"GET HTTP://backend.example HTTP/1.1\r\nHost: client.example\r\n\r\n")
check("absolute-form without a path: /", st == 200 and up[0] == b"GET / HTTP/1.1" and
      fields(up, b"Host") == [b"backend.example"], up)
st, _, up = exchange(b"OPTIONS http://backend.example HTTP/1.1\r\nHost: client.example\r\n\r\n")
check("OPTIONS absolute-form without a path: *", st == 200 and up[0] == b"OPTIONS * HTTP/1.1", up)
for bad in [b"ftp://backend.example/", b"http://user:pw@backend.example/", b"http://backend.example:99999/",
            b"http:///p"]:
    st, _, _ = exchange(b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    check("absolute-form %r: 400" % bad, st == 400)
# (b) every X-Forwarded-For kept, in order, client address appended, one field
st, _, up = exchange(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nX-A: 1\r\n"
                     b"x-forwarded-for: 10.0.0.2, 10.0.0.3\r\n\r\n")
check("XFF combined", fields(up, b"X-Forwarded-For") == [b"10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"], up)
st, _, up = exchange(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
check("XFF set", fields(up, b"X-Forwarded-For") == [b"127.0.0.1"], up)
# (c) hop-by-hop fields: named in Connection, and the standard set
st, rh, up = exchange(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo ,x-bar\r\nX-Foo: 1\r\n"
                      b"X-Bar: 2\r\nConnection: X-Baz\r\nX-Baz: 3\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
                      b"Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
                      b"X-Keep: yes\r\n\r\n")
for name in [b"Connection", b"X-Foo", b"X-Bar", b"X-Baz", b"Keep-Alive", b"TE", b"Proxy-Authorization",
             b"Proxy-Connection", b"Upgrade"]:
    check("request %s not forwarded" % name.decode(), fields(up, name) == [], up)
check("request X-Keep forwarded", fields(up, b"X-Keep") == [b"yes"], up)
for name in [b"X-Secret", b"Proxy-Authenticate", b"Upgrade"]:
    check("response %s not returned" % name.decode(), fields(rh, name) == [], rh)
check("response X-Kept returned", fields(rh, b"X-Kept") == [b"1"], rh)
# framing and Host are kept even when named in Connection: the body still arrives framed
st, _, up = exchange(b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: Content-Length, Host\r\n"
                     b"Content-Length: 3\r\n\r\nabc")
check("named Content-Length kept", st == 200 and fields(up, b"Content-Length") == [b"3"] and
      fields(up, b"Host") == [b"x"], up)
st, _, up = exchange(b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
check("named Transfer-Encoding kept", st == 200 and fields(up, b"Transfer-Encoding") == [b"chunked"], up)
sys.exit(1 if failed else 0)
PY
python3 "$T/check.py" "$LP" || fail "header checks failed"
log PASS
