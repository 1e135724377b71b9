# Shared helpers for end-to-end scenarios: a daemon in a temporary data directory, cleaned up on
# exit whatever happens (daemon, instances, proxy). Source it; set -u is fine.
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RO="$ROOT/$BUILD/rollout"
HELLO="$ROOT/$BUILD/hello"
T=$(mktemp -d /tmp/rollout-e2e.XXXXXX)
DATA="$T/data"
DAEMON_PID=
export ROLLOUT_DATA="$DATA"

log() { echo "[$(date +%H:%M:%S.%3N)] $*"; }
fail() { log "FAIL: $*"; exit 1; }

# Every process whose environment carries ROLLOUT_DAEMON=<realpath of DATA>: our instances.
instance_pids() {
	local real; real=$(realpath -m "$DATA")
	# grep exits 2 when a process goes away during the scan: that is not an error here.
	# Programs that rewrite their environment (nginx, redis) are found by their claim files.
	{
		{ grep -lsa -z -x "ROLLOUT_DAEMON=$real" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3
		for c in "$DATA"/run/*.pid; do
			[ -f "$c" ] || continue
			local p; p=$(cut -d' ' -f1 "$c" 2>/dev/null)
			[ -n "$p" ] && [ -d "/proc/$p" ] && echo "$p"
		done
	} | sort -nu
}

cleanup() {
	local rc=$?
	set +e
	exec 2>/dev/null # bash's "Killed" notices for what we stop here are noise
	# The test's own background helpers (samplers, traffic loops), whatever state it stopped in.
	for j in $(jobs -p); do kill "$j"; done
	[ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
	for p in $(instance_pids); do kill -9 -- "-$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
	[ -f "$DATA/proxy.pid" ] && kill -9 "$(cat "$DATA/proxy.pid")" 2>/dev/null
	pkill -9 -f -- "--admin $DATA/proxy.sock" 2>/dev/null
	if [ $rc -ne 0 ] && [ -f "$T/daemon.log" ]; then echo "--- daemon log (tail)"; tail -40 "$T/daemon.log"; fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up

# Each test takes its own block of 200 ports below the ephemeral range (32768-), so scenarios can
# run side by side: instances get PORT_BASE..+149, listeners the test makes get free_port (+150..).
PORT_BASE=${PORT_BASE:-$((20000 + (RANDOM % 60) * 200))}

# A port of PORT_BASE+150..+199 that binds now and that this test has not handed out yet.
free_port() {
	python3 - "$PORT_BASE" "$T/ports.used" <<'PY'
import socket, sys
base, used_file = int(sys.argv[1]), sys.argv[2]
try:
    used = set(int(x) for x in open(used_file).read().split())
except OSError:
    used = set()
for p in range(base + 199, base + 149, -1):
    if p in used:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    open(used_file, "a").write(f"{p}\n")
    print(p)
    break
else:
    sys.exit(1)
PY
}

start_daemon() {
	"$RO" daemon --data "$DATA" --ports "$PORT_BASE-$((PORT_BASE + 149))" "$@" >>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 1 100); do
		[ -S "$DATA/rollout.sock" ] && "$RO" status >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
		sleep 0.05
	done
	fail "daemon did not answer"
}

stop_daemon() {
	if [ -n "$DAEMON_PID" ]; then kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null || true; fi
	DAEMON_PID=
}

kill9_daemon() {
	if [ -n "$DAEMON_PID" ]; then kill -9 "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null || true; fi
	DAEMON_PID=
}

# A spec for the hello app in $T: spec NAME VERSION REPLICAS [extra hello flags] ; extra YAML on stdin.
spec() {
	local name=$1 version=$2 replicas=$3; shift 3
	local args="" f
	for f in "$@"; do args="$args, \"$f\""; done
	local extra; extra=$(cat)
	cat >"$T/$name-v$version.yaml" <<YAML
service: $name
replicas: $replicas
lb: none
template:
  version: "$version"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$version", "--threads", "1"$args]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
$extra
YAML
	echo "$T/$name-v$version.yaml"
}

status_json() { "$RO" status "$1" -o json; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
ro_state() { status_json "$1" | jq_ "d['rollout']['state'] if d['rollout'] else 'none'"; }

# wait_until TIMEOUT_S CMD...: polls CMD every 100 ms.
wait_until() {
	local limit=$1; shift
	local end=$((SECONDS + limit))
	until "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
}

state_is() { [ "$(ro_state "$1")" = "$2" ]; }

# Counts running instances per revision as the daemon sees them: "rev:count rev:count".
revisions_of() { status_json "$1" | jq_ "' '.join(f'{k}:{v[\"total\"]}' for k,v in sorted(d['counts']['by_revision'].items()))"; }
# has_rev SERVICE REV: at least one instance of that revision exists.
has_rev() { [ "$(status_json "$1" | jq_ "sum(1 for i in d['instances'] if i['revision']==$2)")" -gt 0 ]; }
