# Helpers for the haproxy scenarios (t_haproxy_*.sh): lib.sh, plus one HAProxy started from a config
# file in $T (Runtime API on $HSOCK, frontend on $HLP, backend "hello" of server-template slots),
# stopped on exit whatever happens. Source it after `set -u`; after netns_lib.sh for the fleet bench
# (lib.sh is then already there, the fleet's cleanup runs after ours, and HEXEC="ip netns exec NS"
# runs HAProxy in a namespace).
declare -F cleanup >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v haproxy >/dev/null || { echo "skip: haproxy is not installed (scripts/deps.sh)"; exit 77; }

HSOCK="$T/haproxy.sock"
HCFG="$T/haproxy.cfg"
# The frontend: a listener port of this test's block (lib.sh).
HLP=$(free_port || true)
[ -n "$HLP" ] || { echo "no free port for HAProxy's frontend near $PORT_BASE"; exit 1; }
HPID=
HEXEC=
HURL="http://127.0.0.1:$HLP/"

# write_haproxy_cfg [SLOTS]: the config a user would write (docs/haproxy.md).
write_haproxy_cfg() {
	cat >"$HCFG" <<CFG
global
    stats socket $HSOCK mode 600 level admin
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe
    bind 127.0.0.1:$HLP
    default_backend hello

backend hello
    balance roundrobin
    server-template s 1-${1:-12} 127.0.0.1:1 disabled check inter 500ms
CFG
}

# hcmd CMD: one Runtime API command; prints HAProxy's answer.
hcmd() {
	python3 - "$HSOCK" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
PY
}

start_haproxy() {
	$HEXEC haproxy -f "$HCFG" -db >>"$T/haproxy.log" 2>&1 &
	HPID=$!
	for _ in $(seq 1 100); do
		hcmd "show info" 2>/dev/null | grep -q '^Pid:' && return 0
		kill -0 "$HPID" 2>/dev/null || { cat "$T/haproxy.log"; fail "haproxy exited at start"; }
		sleep 0.05
	done
	fail "haproxy did not answer on $HSOCK"
}

stop_haproxy() {
	if [ -n "$HPID" ]; then kill -9 "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null || true; fi
	HPID=
}

# servers: "name status addr scur" per server of backend hello, one a line.
servers() {
	hcmd "show stat hello 4 -1" | python3 -c '
import sys
lines = sys.stdin.read().split("\n")
h = lines[0][2:].split(",")
for l in lines[1:]:
    if l:
        f = dict(zip(h, l.split(",")))
        print(f["svname"], f["status"].replace(" ", "_"), f["addr"], f["scur"])'
}

# haproxy_spec NAME VERSION REPLICAS [hello flags]: like spec, steered through this HAProxy.
haproxy_spec() {
	local f
	f=$(spec "$@")
	sed -i "s|^lb: none\$|lb: {haproxy: {socket: $HSOCK, backend: hello}}\nlisten: 127.0.0.1:$HLP|" "$f"
	echo "$f"
}

HNEXT=cleanup
declare -F fleet_cleanup >/dev/null && HNEXT=fleet_cleanup
trap 'rc=$?; stop_haproxy; (exit $rc); $HNEXT' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up
write_haproxy_cfg
