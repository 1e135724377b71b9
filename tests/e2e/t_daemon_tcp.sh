#!/usr/bin/env bash
# protocol: tcp through the builtin proxy: the daemon gives the proxy a TCP listener, byte streams
# reach the instances, and a rollout moves new connections to the new version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
LPORT=$(free_port)
mk() {
	cat >"$T/tcp-v$1.yaml" <<YAML
service: tcpsvc
replicas: 2
protocol: tcp
listen: 127.0.0.1:$LPORT
template:
  version: "$1"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  tcp: {}
  interval: 100ms
  timeout: 100ms
strategy: {min_ready: 200ms}
drain: {timeout: 2s}
YAML
	echo "$T/tcp-v$1.yaml"
}
"$RO" apply "$(mk 1)" --wait --timeout 60s
[ "$(curl -s "http://127.0.0.1:$LPORT/")" = "hello from version 1" ] || fail "v1 through tcp: $(curl -s "http://127.0.0.1:$LPORT/")"
curl -s --unix-socket "$DATA/proxy.sock" http://x/v1/services/tcpsvc/stats >"$T/stats.json" || true
"$RO" apply "$(mk 2)" --wait --timeout 60s
[ "$(curl -s "http://127.0.0.1:$LPORT/")" = "hello from version 2" ] || fail "v2 through tcp"
log ok

# drain.timeout in tcp mode: a connection held open to an old instance is cut by the proxy when
# the drain times out, not held until the instance is killed (its stop signal is HUP, which it
# ignores here: only the SIGKILL after stop.grace would end it).
DPORT=$(free_port)
mkd() {
	cat >"$T/drain-v$1.yaml" <<YAML
service: tcpdrain
replicas: 1
protocol: tcp
listen: 127.0.0.1:$DPORT
template:
  version: "$1"
  command: ["sh", "-c", "trap '' HUP; exec \"\$0\" --port \"\$PORT\" --version $1 --threads 1", "$HELLO"]
health:
  tcp: {}
  interval: 100ms
  timeout: 100ms
strategy: {min_ready: 200ms}
drain: {timeout: 1s}
stop: {signal: HUP, grace: 20s}
YAML
	echo "$T/drain-v$1.yaml"
}
others=" $(instance_pids | tr '\n' ' ')"
"$RO" apply "$(mkd 1)" --wait --timeout 60s
before=$(for p in $(instance_pids); do case "$others" in *" $p "*) ;; *) echo "$p" ;; esac; done)
[ -n "$before" ] || fail "no process of tcpdrain v1"
python3 - "$DPORT" "$RO" "$(mkd 2)" "$before" <<'PY' || fail "a tcp connection to a drained instance was not cut at drain.timeout"
import os, socket, subprocess, sys, time
port, ro, spec, before = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(30)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
assert b"hello from version 1" in s.recv(4096)
t0 = time.monotonic()
subprocess.run([ro, "apply", spec], check=True, stdout=subprocess.DEVNULL)
data = s.recv(4096)  # blocks until the connection ends
took = time.monotonic() - t0
def running(pid):  # a zombie is gone already
    try:
        return open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
alive = [p for p in before if running(p)]
print("held connection closed after %.1fs (%r); old instance alive: %s" % (took, data, alive))
assert data == b"", data
# the new instance starts (< 1 s), then 1 s of drain: far below the 20 s of stop.grace
assert took < 8, took
assert alive, "the old instance was already gone: not the proxy's doing"
PY
"$RO" events tcpdrain | grep -q "(revision 1) drain timed out after 1s with 1 connection open (cut), stopping" ||
	fail "the event does not say the drain timed out with the connection cut"
log "drain timeout cut the held tcp connection"
