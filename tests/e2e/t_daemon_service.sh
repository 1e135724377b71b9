#!/usr/bin/env bash
# The daemon as a system service: the unit verifies; the sd_notify protocol (READY=1 only once the
# API answers, WATCHDOG=1 pings at half of WatchdogSec, STOPPING=1); SIGTERM leaves the instances
# serving and the next daemon re-adopts them; --socket-group opens the socket to one group only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# -- the unit, as make install writes it, passes systemd-analyze verify
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (scripts/deps.sh installs systemd)"
sed "s|@BINDIR@|$ROOT/$BUILD|" "$ROOT/dist/rollout.service.in" >"$T/rollout.service"
(cd "$T" && systemd-analyze verify --man=no "$T/rollout.service") >"$T/verify.out" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$T/verify.out")"
[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify warns: $(cat "$T/verify.out")"
grep -q '^Type=notify' "$T/rollout.service" && grep -q '^KillMode=process' "$T/rollout.service" ||
	fail "the unit is not Type=notify with KillMode=process"
log "unit verifies"

# -- notifications: a datagram socket that records what arrives, and checks at READY=1 that the
# API answers already
python3 - "$T/notify.sock" "$DATA/rollout.sock" "$T/notify.log" <<'PY' &
import os, socket, sys, time
path, api, out = sys.argv[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
with open(out, "a", buffering=1) as f:
    while True:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            break
        line = " ".join(msg.split("\n"))
        if "READY=1" in msg:
            c = socket.socket(socket.AF_UNIX)
            try:
                c.connect(api)
                c.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                ok = c.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                ok = False
            line += " api=" + ("answers" if ok else "silent")
        f.write(f"{time.monotonic():.3f} {line}\n")
        if "STOPPING=1" in msg:
            break
PY
NOTIFY=$!
wait_until 5 test -S "$T/notify.sock" || fail "no notify socket"
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=200000 start_daemon
"$RO" apply "$(spec svc 1 2 <<<"strategy: {min_ready: 100ms}")" --wait --timeout 60s >/dev/null
sleep 1
grep -q "READY=1 STATUS=serving 0 services on $DATA MAINPID=$DAEMON_PID api=answers" "$T/notify.log" ||
	fail "READY=1 with the API answering: $(cat "$T/notify.log")"
pings=$(grep -c "WATCHDOG=1" "$T/notify.log" || true)
# 100 ms apart over more than a second (the apply included)
[ "$pings" -ge 8 ] || fail "WATCHDOG=1 pings: $pings, want >= 8 at half of 200 ms"
before=$(instance_pids | sort | tr '\n' ' ')
[ -n "$before" ] || fail "no instances"
stop_daemon
wait "$NOTIFY" 2>/dev/null || true
grep -q "STOPPING=1" "$T/notify.log" || fail "no STOPPING=1: $(tail -3 "$T/notify.log")"
log "READY=1 (API answering), $pings watchdog pings, STOPPING=1"

# -- SIGTERM left the instances serving; the next daemon re-adopts them, starts none
after=$(instance_pids | sort | tr '\n' ' ')
[ "$before" = "$after" ] || fail "instances after SIGTERM: '$after', before '$before'"
for p in $before; do kill -0 "$p" || fail "instance $p died with the daemon"; done
start_daemon
wait_until 10 state_is svc complete || fail "after restart: $(ro_state svc)"
[ "$(instance_pids | sort | tr '\n' ' ')" = "$before" ] || fail "the restarted daemon did not re-adopt: $(instance_pids | tr '\n' ' ')"
stop_daemon
log "SIGTERM: instances kept ($before), re-adopted by the next daemon"

# -- --socket-group: 0660 with the group, DATA searchable by it; members in, others out
rc=0
"$RO" daemon --data "$DATA" --socket-group no-such-group-rollout >"$T/grp.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "no group 'no-such-group-rollout'" "$T/grp.out" || fail "unknown group: rc $rc $(cat "$T/grp.out")"
if [ "$(id -u)" -ne 0 ]; then log "not root: --socket-group membership part skipped"; log ok; exit 0; fi
GRP=rotest$$
groupadd "$GRP"
trap 'groupdel "$GRP" 2>/dev/null || true; cleanup' EXIT
GID=$(getent group "$GRP" | cut -d: -f3)
chmod 0711 "$T" # the test dir is mktemp's 0700: let the group reach DATA
chmod 0700 "$DATA"
start_daemon --socket-group "$GRP"
[ "$(stat -c '%a %G' "$DATA/rollout.sock")" = "660 $GRP" ] || fail "socket: $(stat -c '%a %G' "$DATA/rollout.sock")"
[ $(( 0$(stat -c '%a' "$DATA") & 010 )) -ne 0 ] || fail "DATA not searchable by the group: $(stat -c '%a %G' "$DATA")"
as() { # GIDS: connect as nobody with these supplementary groups; prints the status line or the error
	python3 - "$DATA/rollout.sock" "$@" <<'PY'
import os, socket, sys
path, groups = sys.argv[1], [int(g) for g in sys.argv[2:]]
os.setgroups(groups)
os.setgid(65534)
os.setuid(65534)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print(s.recv(64).split(b"\r\n")[0].decode())
except OSError as e:
    print(e.strerror)
PY
}
[ "$(as "$GID")" = "HTTP/1.1 200 OK" ] || fail "a member of $GRP: $(as "$GID")"
[ "$(as)" = "Permission denied" ] || fail "a non-member: $(as)"
log "--socket-group $GRP: member 200, non-member refused"
log ok
