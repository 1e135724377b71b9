# Shared helpers for the rollout proxy scenarios (t_proxy_*.sh): a proxy on a temporary admin
# socket, hello backends on free ports, admin calls; every process is killed on exit. Source it.
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RO="$ROOT/$BUILD/rollout"
HELLO="$ROOT/$BUILD/hello"
T=$(mktemp -d /tmp/rollout-proxy.XXXXXX)
ADMIN="$T/proxy.sock"
PIDS=()
PROXY_PID=

log() { echo "[$(date +%H:%M:%S.%3N)] $*"; }
fail() {
	log "FAIL: $*"
	exit 1
}

proxy_cleanup() {
	local rc=$?
	set +e
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ $rc -ne 0 ] && [ -f "$T/proxy.log" ]; then echo "--- proxy log (tail)"; tail -20 "$T/proxy.log"; fi
	rm -rf "$T"
	exit $rc
}
trap proxy_cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up

[ -x "$RO" ] || fail "$RO is not built"
[ -x "$HELLO" ] || fail "$HELLO is not built"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
# PROXY_CMD overrides how the proxy is started (for a binary without the verb yet).
if [ -z "${PROXY_CMD:-}" ]; then
	if "$RO" help proxy 2>&1 | grep -q "rollout proxy"; then PROXY_CMD="$RO proxy"
	else echo "skip: this build/rollout has no 'proxy' verb (src/cli/main.c table)"; exit 77; fi
fi

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# admin METHOD PATH [BODY]: prints the body, then the status on the last line.
admin() {
	curl -s --max-time 5 --unix-socket "$ADMIN" -X "$1" ${3:+-d "$3"} -w '\n%{http_code}' "http://proxy$2"
}
admin_status() { admin "$@" | tail -1; }
admin_body() { admin "$@" | sed '$d'; }
# json EXPR: evaluates a Python expression on the JSON read from stdin (as d).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

proxy_start() {
	$PROXY_CMD --admin "$ADMIN" >>"$T/proxy.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	for _ in $(seq 100); do
		[ "$(admin_status GET /v1/health 2>/dev/null)" = 200 ] && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || fail "the proxy exited at start: $(cat "$T/proxy.log")"
		sleep 0.05
	done
	fail "the proxy did not answer on $ADMIN"
}

# hello_start VERSION [flags]: a hello backend on a free port; sets HPID and HPORT.
nh=0
hello_start() {
	nh=$((nh + 1))
	local v=$1 out="$T/hello.$nh"
	shift
	: >"$out"
	"$HELLO" --port 0 --version "$v" --threads 1 "$@" >"$out" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
	for _ in $(seq 100); do
		HPORT=$(sed -n 's/^hello .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
		[ -n "$HPORT" ] && return 0
		kill -0 "$HPID" 2>/dev/null || fail "hello $v exited: $(cat "$out")"
		sleep 0.05
	done
	fail "hello $v did not start"
}

# backends_json "id:rev:port:state" ...: the backends array.
backends_json() {
	local out="" b id rev port st
	for b in "$@"; do
		IFS=: read -r id rev port st <<<"$b"
		out="$out${out:+,}{\"id\":$id,\"revision\":$rev,\"addr\":\"127.0.0.1:$port\",\"state\":\"$st\"}"
	done
	echo "[$out]"
}

# set_service NAME LISTEN_PORT backend...: PUT; prints the status.
set_service() {
	local name=$1 port=$2
	shift 2
	admin_status PUT "/v1/services/$name" "{\"listen\":\"127.0.0.1:$port\",\"backends\":$(backends_json "$@")}"
}

# inflight NAME ID: the proxy's in-flight count for backend ID (empty when unknown).
inflight() {
	admin_body GET "/v1/services/$1/stats" | json "[b['inflight'] for b in d['backends'] if b['id']==$2][0] if [b for b in d['backends'] if b['id']==$2] else ''"
}
