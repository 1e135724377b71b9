#!/usr/bin/env bash
# rollout proxy and CONNECT: it is a reverse proxy, so CONNECT is answered 501 and never reaches a
# backend (a backend that made the connection a tunnel would otherwise have it pooled and handed
# to the next client); a CONNECT target that is not host:port is 400; an upstream connection that
# answered 101 is closed, never reused.
set -u
. "$(dirname "$0")/proxy_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 is not installed"; exit 77; }

proxy_start
BP=$(free_port)
cat >"$T/fake.py" <<'PY'
# A keep-alive backend that logs "<connection number> <request line>" to argv[2]. GET /echo
# returns the request head. CONNECT and GET /upgrade switch the connection to a tunnel (200 with
# an empty body for CONNECT, as some servers send, or 101) that answers every later read with
# garbage, as a tunnel to somewhere else would.
import itertools, socket, sys, threading
log = open(sys.argv[2], "a", buffering=1)
ids = itertools.count(1)
def serve(c, cid):
    data = b""
    try:
        while True:
            while b"\r\n\r\n" not in data:
                b = c.recv(65536)
                if not b:
                    return
                data += b
            head, _, data = data.partition(b"\r\n\r\n")
            line = head.split(b"\r\n")[0]
            log.write("%d %s\n" % (cid, line.decode()))
            method, path = line.split(b" ")[:2]
            if method == b"CONNECT" or path == b"/upgrade":
                if method == b"CONNECT":
                    c.sendall(b"HTTP/1.1 200 Connection established\r\nContent-Length: 0\r\n\r\n")
                else:
                    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
                while True:
                    b = c.recv(65536)
                    if not b:
                        return
                    log.write("%d tunnel %d bytes\n" % (cid, len(b)))
                    c.sendall(b"\x16\x03\x01 tunnel bytes from elsewhere\r\n\r\n")
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(head) + head)
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
    threading.Thread(target=serve, args=(c, next(ids)), daemon=True).start()
PY
python3 "$T/fake.py" "$BP" "$T/requests.log" >"$T/fake.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$T/fake.log" && break; sleep 0.05; done
grep -q ready "$T/fake.log" || fail "the fake backend did not start"
LP=$(free_port)
[ "$(set_service cn "$LP" "1:1:$BP:active")" = 201 ] || fail "PUT"

cat >"$T/check.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
failed = []
def check(name, ok, detail=""):
    print(("ok  " if ok else "FAIL"), name, detail)
    if not ok:
        failed.append(name)
def exchange(raw, timeout=3):
    """Sends raw, reads until the proxy closes or timeout. Returns (bytes, closed)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(raw)
    out, closed = b"", False
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
        if b"\r\n\r\n" in out and not raw.startswith(b"CONNECT"):
            head, _, body = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if cl and len(body) >= int(cl[0].split(b":")[1]):
                break
    s.close()
    return out, closed
def status(out):
    try:
        return int(out.split(b" ", 2)[1])
    except Exception:
        return None
# a well-formed CONNECT: 501 with a reason, connection closed, the bytes after it never forwarded
out, closed = exchange(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n\x16\x03\x01hello")
check("CONNECT is 501", status(out) == 501 and closed, repr(out[:120]))
check("501 says why", b"CONNECT is not supported" in out, repr(out))
# the next client on a new connection is served by the backend, not by a tunnel
for i in range(3):
    out, _ = exchange(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    check("GET after CONNECT #%d is its own echo" % i, status(out) == 200 and b"GET /echo HTTP/1.1" in out,
          repr(out[:160]))
# CONNECT takes host:port only
for raw in [b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", b"CONNECT host: HTTP/1.1\r\nHost: x\r\n\r\n",
            b"CONNECT host HTTP/1.1\r\nHost: x\r\n\r\n", b"CONNECT :443 HTTP/1.1\r\nHost: x\r\n\r\n"]:
    out, closed = exchange(raw)
    check("%r is 400" % raw.split(b"\r\n")[0], status(out) == 400 and closed, repr(out[:80]))
# 101 from a backend: 502, and that connection is not reused for the next request
out, closed = exchange(b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check("101 gives 502", status(out) == 502, repr(out[:80]))
time.sleep(0.2)
for i in range(2):
    out, _ = exchange(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    check("GET after 101 #%d is its own echo" % i, status(out) == 200 and b"GET /echo HTTP/1.1" in out,
          repr(out[:160]))
sys.exit(1 if failed else 0)
PY
python3 "$T/check.py" "$LP" || { cat "$T/requests.log"; fail "CONNECT checks failed"; }
# the backend never saw a CONNECT, and no request went into the 101 connection after it
grep -q CONNECT "$T/requests.log" && { cat "$T/requests.log"; fail "a CONNECT reached the backend"; }
grep -q tunnel "$T/requests.log" && { cat "$T/requests.log"; fail "bytes went into a tunnel connection"; }
log PASS
