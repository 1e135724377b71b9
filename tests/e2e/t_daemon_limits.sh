#!/usr/bin/env bash
# The API under bad input and load (issue 11): token files that are refused, not cut; TCP floods
# that cannot lock the local CLI out; a full unix listener that reads as busy, not as "no daemon";
# big requests (the 1 MB GET / that crashed the daemon, a 20 KB and a 900 KB spec).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
APORT=$(free_port)

# -- token files
head -c 48 /dev/urandom | base64 -w0 >"$T/token"
chmod 644 "$T/token"
rc=0
"$RO" daemon --data "$DATA" --api "127.0.0.1:$APORT" --token-file "$T/token" >"$T/tok.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a 0644 token file: exit $rc, want 2"
grep -q "readable by others (mode 0644)" "$T/tok.out" || fail "0644 token: $(cat "$T/tok.out")"
python3 -c 'import sys; sys.stdout.write("t" * 1025 + "\n")' >"$T/token"
chmod 600 "$T/token"
rc=0
"$RO" daemon --data "$DATA" --api "127.0.0.1:$APORT" --token-file "$T/token" >"$T/tok.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "longer than 1024 bytes" "$T/tok.out" || fail "a 1025-byte token: rc $rc $(cat "$T/tok.out")"
log "token files refused: 0644, 1025 bytes"

# a 1024-byte token works whole: its first 255 bytes (what used to authenticate) do not
TOKEN=$(python3 -c 'import random; r = random.Random(7); print("".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1024)))')
printf '%s\n' "$TOKEN" >"$T/token"
start_daemon --api "127.0.0.1:$APORT" --token-file "$T/token"
code() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "http://127.0.0.1:$APORT/v1/services"; }
[ "$(code "$TOKEN")" = 200 ] || fail "the whole 1024-byte token is refused"
[ "$(code "${TOKEN:0:255}")" = 401 ] || fail "the token's first 255 bytes authenticate"
log "a 1024-byte token: whole 200, first 255 bytes 401"

# -- the issue's crash: 1,000,000 bytes to the open route, without a token
head -c 1000000 /dev/zero | tr '\0' a >"$T/big"
curl -s -o /dev/null -X GET --data-binary @"$T/big" "http://127.0.0.1:$APORT/" || true
kill -0 "$DAEMON_PID" || fail "the daemon died of a 1 MB GET /"
"$RO" status >/dev/null || fail "status after the 1 MB GET /"

# -- specs of 20 KB and 900 KB (a long comment: the spec itself is small)
big_spec() { # NAME BYTES
	spec "$1" 1 1 >/dev/null <<'YAML'
strategy: {min_ready: 100ms}
YAML
	python3 - "$T/$1-v1.yaml" "$2" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
s = open(path).read()
line = "# " + "x" * 97 + "\n"
open(path, "w").write(s + line * ((n - len(s)) // len(line) + 1))
PY
}
big_spec small 20000
"$RO" apply "$T/small-v1.yaml" --wait --timeout 60s >"$T/apply.out" 2>&1 || fail "apply of a 20 KB spec: $(cat "$T/apply.out")"
big_spec large 900000
rc=0
"$RO" apply "$T/large-v1.yaml" >"$T/apply.out" 2>&1 || rc=$?
kill -0 "$DAEMON_PID" || fail "the daemon died of a 900 KB spec"
# the spec parser may refuse a file this big; it must say so and the daemon must stay up
[ "$rc" -eq 0 ] || grep -q "rollout: " "$T/apply.out" || fail "900 KB spec: rc $rc without a message"
log "20 KB spec applied; 900 KB spec: rc $rc, daemon up"

# -- 1000 idle TCP connections and 260 dribbling bodies: the unix socket still answers
python3 - "$APORT" "$T/flood.ready" >"$T/flood.log" 2>&1 <<'PY' &
import socket, sys, time
port, ready = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(1000):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    socks.append(s)
for s in socks[:260]:
    try:
        s.sendall(b"POST /v1/services/x/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    except OSError:
        pass
open(ready, "w").write("ok")
end = time.time() + 30
while time.time() < end:
    for s in socks[:260]:
        try:
            s.send(b"a")
        except OSError:
            pass
    time.sleep(1)
PY
FLOOD=$!
wait_until 10 test -f "$T/flood.ready" || fail "the flood did not start"
for i in 1 2 3; do
	timeout 5 "$RO" status >/dev/null 2>"$T/st.err" || fail "status under a TCP flood: $(cat "$T/st.err")"
	sleep 0.5
done
kill "$FLOOD" 2>/dev/null; wait "$FLOOD" 2>/dev/null || true
log "1000 idle TCP connections and 260 dribblers: status on the unix socket answers"

# -- a full unix listener: busy, not "no daemon"
python3 - "$DATA/rollout.sock" "$T/unix.ready" >"$T/unix.log" 2>&1 <<'PY' &
import socket, sys, time
path, ready = sys.argv[1], sys.argv[2]
socks = []
for i in range(300):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    socks.append(s)
open(ready, "w").write("ok")
time.sleep(20)
PY
UNIX=$!
wait_until 10 test -f "$T/unix.ready" || fail "the unix flood did not start"
sleep 0.3
rc=0
"$RO" status >/dev/null 2>"$T/st.err" || rc=$?
[ "$rc" -eq 3 ] || fail "status with a full unix listener: exit $rc, $(cat "$T/st.err")"
grep -q "daemon busy" "$T/st.err" || fail "a full listener reads as: $(cat "$T/st.err")"
if grep -q "no daemon answers" "$T/st.err"; then fail "a full listener reads as no daemon"; fi
kill "$UNIX" 2>/dev/null; wait "$UNIX" 2>/dev/null || true
wait_until 5 "$RO" status >/dev/null 2>&1 || fail "status after the unix flood"
log "a full unix listener: exit 3, $(cat "$T/st.err")"
log ok
