#!/usr/bin/env bash
# rollout proxy limits: over --max-conns a new client gets 503 (a tcp service's: closed) while the open ones
# are still served (and once they close, new ones are again); over --head-budget the client that
# has held a partial request head longest gets 503 and is closed, the others keep going.
set -u
. "$(dirname "$0")/proxy_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 is not installed"; exit 77; }

# 8 connections; partial heads may hold 40000 bytes: two 16 KiB head buffers, not three
PROXY_CMD="$PROXY_CMD --max-conns 8 --head-budget 40000"
proxy_start
hello_start A; PA=$HPORT
LP=$(free_port)
[ "$(set_service lim "$LP" "1:1:$PA:active")" = 201 ] || fail "PUT"
TP=$(free_port) # a tcp service: its connections count against the same cap
[ "$(admin_status PUT /v1/services/limtcp "{\"listen\":\"127.0.0.1:$TP\",\"protocol\":\"tcp\",\"backends\":$(backends_json "1:1:$PA:active")}")" = 201 ] ||
	fail "PUT tcp"

cat >"$T/check.py" <<'PY'
import json, socket, subprocess, sys, time
port, admin, tport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
failed = []
def check(name, ok, detail=""):
    print(("ok  " if ok else "FAIL"), name, detail)
    if not ok:
        failed.append(name)
def health():
    out = subprocess.run(["curl", "-s", "--max-time", "5", "--unix-socket", admin, "http://proxy/v1/health"],
                         capture_output=True, text=True).stdout
    return json.loads(out)
def wait_health(key, want, timeout=3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        h = health()
        if want(h[key]):
            return h[key]
        time.sleep(0.05)
    return health()[key]
def conn():
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    return s
def read_response(s):
    """Reads one response with a Content-Length body; returns (status, bytes) or (None, what came)."""
    out = b""
    try:
        while True:
            head, sep, body = out.partition(b"\r\n\r\n")
            cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if sep and cl and len(body) >= int(cl[0].split(b":")[1]):
                return int(out.split(b" ")[1]), out
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    return None, out
def closed_after(s):
    """Does the server close s (EOF or reset) within its timeout, sending nothing more?"""
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
H = b"GET / HTTP/1.1\r\nHost: x\r\n"

# ---- the connection cap
open_ = []
for i in range(8):
    s = conn()
    s.sendall(H)  # a partial head: each holds a connection (and 4 KiB of buffer)
    open_.append(s)
check("8 connections open", wait_health("connections", lambda v: v == 8) == 8)
extra = conn()
st, out = read_response(extra)
check("the 9th is refused with 503", st == 503 and b"too many open connections" in out, repr(out[:120]))
check("and closed", closed_after(extra))
extra.close()
t = socket.create_connection(("127.0.0.1", tport))
t.settimeout(3)
check("a tcp-service connection over the cap is closed", closed_after(t))
t.close()
check("refused counted", health()["refused_connections"] == 2)
for i, s in enumerate(open_):
    s.sendall(b"\r\n")
    st, out = read_response(s)
    check("open connection %d still served" % i, st == 200 and b"hello from version A" in out, repr(out[:80]))
# and again on the same (keep-alive) connection
open_[0].sendall(H + b"\r\n")
check("keep-alive goes on", read_response(open_[0])[0] == 200)
for s in open_:
    s.close()
check("all closed", wait_health("connections", lambda v: v == 0) == 0)
for i in range(3):
    s = conn()
    s.sendall(H + b"Connection: close\r\n\r\n")
    st, _ = read_response(s)
    check("served after the cap (%d)" % i, st == 200)
    s.close()

# ---- the partial-head budget: three 12000-byte partial heads, 16 KiB of buffer each
pad = H + b"X-Pad: " + b"p" * (12000 - len(H) - 7)
heads = []
for i in range(3):
    s = conn()
    s.sendall(pad)
    heads.append(s)
    want = 16384 * min(i + 1, 2)
    got = wait_health("head_bytes", lambda v: v == want)
    check("head %d held: head_bytes %d" % (i, want), got == want, "got %d" % got)
st, out = read_response(heads[0])
check("the oldest partial head gets 503", st == 503 and b"incomplete request heads" in out, repr(out[:120]))
check("and is closed", closed_after(heads[0]))
check("eviction counted", health()["heads_evicted"] == 1)
for i in (1, 2):
    heads[i].sendall(b"\r\n\r\n")
    st, out = read_response(heads[i])
    check("newer partial head %d completes: 200" % i, st == 200, repr(out[:80]))
for s in heads:
    s.close()
check("budget released", wait_health("head_bytes", lambda v: v == 0) == 0)
s = conn()
s.sendall(H + b"Connection: close\r\n\r\n")
check("served after the budget", read_response(s)[0] == 200)
s.close()
sys.exit(1 if failed else 0)
PY
python3 "$T/check.py" "$LP" "$ADMIN" "$TP" || fail "limit checks failed"

# the flags are checked
for bad in "--max-conns 0" "--max-conns x" "--head-budget 1000" "--head-budget 1k"; do
	# shellcheck disable=SC2086
	out=$($PROXY_CMD --admin "$T/other.sock" $bad 2>&1) && fail "$bad was accepted"
	echo "$out" | grep -q -- "${bad%% *} takes" || fail "$bad: no message: $out"
done
log PASS
