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

# ---- rollouts of the hello app (t_rollout_*) ----

# rolling_strategy MIN_READY [extra strategy lines]: a max_surge 1, max_unavailable 0 strategy with
# a 10 s health deadline, a 2 s drain and a 2 s stop grace, as YAML on stdout (for spec's stdin).
rolling_strategy() {
	printf 'strategy:\n  max_surge: 1\n  max_unavailable: 0\n  min_ready: %s\n  health_deadline: 10s\n' "$1"
	shift
	for l in "$@"; do printf '  %s\n' "$l"; done
	printf 'drain: {timeout: 2s}\nstop: {signal: TERM, grace: 2s}\n'
}

# answers SERVICE VERSION: every instance of SERVICE answers GET / with that version.
answers() {
	local ports
	ports=$(status_json "$1" | jq_ "' '.join(str(i['port']) for i in d['instances'])")
	[ -n "$ports" ] || return 1
	for p in $ports; do
		[ "$(curl -fsS "http://127.0.0.1:$p/")" = "hello from version $2" ] || return 1
	done
}

# start_sampler SERVICE: tests/e2e/sampler.py watches SERVICE's floor and ceiling (max_surge 1,
# max_unavailable 0) until check_sampler, which fails the test if it saw a violation.
start_sampler() {
	python3 "$ROOT/tests/e2e/sampler.py" --sock "$DATA/rollout.sock" --service "$1" --surge 1 --unavailable 0 \
		>"$T/sampler.log" 2>&1 &
	SAMPLER=$!
}
check_sampler() {
	kill -TERM "$SAMPLER"
	wait "$SAMPLER" || { cat "$T/sampler.log"; fail "sampler found violations"; }
	cat "$T/sampler.log"
}

# deploy_v1 SERVICE REPLICAS: the first deploy of version 1 (min_ready 300ms, batches [1, 50%]),
# checked: REPLICAS instances of revision 1, each answering with version 1.
deploy_v1() {
	local v1
	v1=$(rolling_strategy 300ms "batches: [1, 50%]" | spec "$1" 1 "$2")
	"$RO" apply "$v1" --wait --timeout 60s
	[ "$(revisions_of "$1")" = "1:$2" ] || fail "after v1: $(revisions_of "$1")"
	answers "$1" 1 || fail "v1 answers"
}

# ---- the hello app on its own, no daemon (t_hello_*) ----

# need_hello: fails when build/hello is not built, skips (77) without curl.
need_hello() {
	[ -x "$HELLO" ] || fail "$HELLO is not built (make $BUILD/hello)"
	command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# hello_start [hello flags...]: runs hello on a free port (--port 0) and waits for its listening
# line; sets PID, PORT and HELLO_OUT (its stdout). HELLO_ENV="K=V ..." adds to its environment.
HELLO_N=0
hello_start() {
	HELLO_N=$((HELLO_N + 1))
	HELLO_OUT="$T/hello.out.$HELLO_N"
	local err="$T/hello.err.$HELLO_N"
	# shellcheck disable=SC2086
	env ${HELLO_ENV:-} "$HELLO" --port 0 "$@" >"$HELLO_OUT" 2>"$err" &
	PID=$!
	for _ in $(seq 100); do
		if grep -q ' listening on ' "$HELLO_OUT" 2>/dev/null; then
			PORT=$(sed -n 's/^hello .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$HELLO_OUT")
			[ -n "$PORT" ] || fail "unexpected listening line: $(cat "$HELLO_OUT")"
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || fail "hello $* exited early: $(cat "$err")"
		sleep 0.05
	done
	fail "hello $* did not print its listening line"
}
# hello_url PATH: the URL of PATH on the hello at PORT.
hello_url() { echo "http://127.0.0.1:$PORT$1"; }
# hello_status PATH [curl args...]: prints the status code.
hello_status() {
	local p=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' "$@" "$(hello_url "$p")"
}
# hello_raw REQUEST: sends bytes (printf format) on a fresh connection, prints the whole answer.
hello_raw() {
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect to $PORT"
	# shellcheck disable=SC2059
	printf "$1" >&3
	timeout 3 cat <&3
	exec 3<&-
}
# hello_expect_exit PID RC: PID exits within 2 s, with status RC.
hello_expect_exit() {
	local pid=$1 rc=$2 t0
	t0=$(now_ms)
	while kill -0 "$pid" 2>/dev/null && [ $(($(now_ms) - t0)) -lt 2000 ]; do sleep 0.05; done
	kill -0 "$pid" 2>/dev/null && fail "hello $pid still running after 2s"
	wait "$pid"
	local got=$?
	[ "$got" -eq "$rc" ] || fail "hello exited with $got, want $rc"
}
