#!/usr/bin/env bash
# The example app build/hello: answers, health, keep-alive, bodies, malformed requests, and every
# misbehaviour knob (--fail-health, --error-rate, --latency, --exit-after, signals). Exit 0 = pass.
set -u
cd "$(dirname "$0")/../.."
HELLO=${BUILD:-build}/hello
[ -x "$HELLO" ] || { echo "FAIL: $HELLO is not built (make build/hello)"; exit 1; }
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }

dir=$(mktemp -d /tmp/t_hello.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start NAME [hello flags...]: runs hello on a free port (--port 0) and waits for its listening
# line; sets PID and PORT. Environment for hello can be given as `env K=V` prefix via START_ENV.
n=0
start() {
	n=$((n + 1))
	local out="$dir/out.$n"
	env ${START_ENV:-} "$HELLO" --port 0 "$@" >"$out" 2>"$dir/err.$n" &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 100); do
		if grep -q ' listening on ' "$out" 2>/dev/null; then
			PORT=$(sed -n 's/^hello .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
			[ -n "$PORT" ] || fail "unexpected listening line: $(cat "$out")"
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || fail "hello $* exited early: $(cat "$dir/err.$n")"
		sleep 0.05
	done
	fail "hello $* did not print its listening line"
}
url() { echo "http://127.0.0.1:$PORT$1"; }
# status PATH [curl args...]: prints the status code
status() {
	local p=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' "$@" "$(url "$p")"
}
# raw REQUEST: sends bytes (printf format) on a fresh connection, prints the whole answer
raw() {
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect to $PORT"
	printf "$1" >&3
	timeout 3 cat <&3
	exec 3<&-
}
# stops PID with signal SIG and checks it exits with status RC within 2s
expect_exit() {
	local pid=$1 rc=$2 t0
	t0=$(now_ms)
	while kill -0 "$pid" 2>/dev/null && [ $(($(now_ms) - t0)) -lt 2000 ]; do sleep 0.05; done
	kill -0 "$pid" 2>/dev/null && fail "hello $pid still running after 2s"
	wait "$pid"
	local got=$?
	[ "$got" -eq "$rc" ] || fail "hello exited with $got, want $rc"
}

# --- answers, health, headers, line printed ---
start --version t1 --threads 2
[ "$(cat "$dir/out.$n")" = "hello t1 listening on 127.0.0.1:$PORT" ] || fail "listening line: $(cat "$dir/out.$n")"
[ "$(curl -s "$(url /)")" = "hello from version t1" ] || fail "GET / body"
[ "$(curl -s "$(url /some/path?x=1)")" = "hello from version t1" ] || fail "GET /some/path body"
curl -s -D "$dir/h" -o /dev/null "$(url /)"
grep -q $'^X-Version: t1\r$' "$dir/h" || fail "no X-Version header: $(cat "$dir/h")"
grep -q '^HTTP/1.1 200 ' "$dir/h" || fail "GET / status: $(head -1 "$dir/h")"
[ "$(curl -s "$(url /healthz)")" = "ok" ] || fail "/healthz body"
[ "$(status /healthz)" = 200 ] || fail "/healthz status"
[ "$(curl -s -I "$(url /)" | grep -c '^X-Version: t1')" = 1 ] || fail "HEAD /"

# --- bodies: Content-Length (large, so curl also tries Expect: 100-continue) and chunked ---
head -c 300000 /dev/urandom >"$dir/body"
[ "$(curl -s --data-binary @"$dir/body" "$(url /upload)")" = "hello from version t1" ] || fail "POST body"
[ "$(curl -s -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$dir/body" "$(url /)")" = \
	"hello from version t1" ] || fail "chunked PUT"

# --- keep-alive: the second URL reuses the first connection; pipelined requests answered in order ---
[ "$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "$(url /)" "$(url /healthz)")" = "1 0 " ] ||
	fail "keep-alive: connection not reused"
ans=$(raw 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
[ "$(echo "$ans" | grep -c '^HTTP/1.1 200 ')" = 4 ] || fail "pipelined: $ans"
[ "$(echo "$ans" | tr -d '\r' | grep -E '^(hello|ok)' | tr '\n' ' ')" = \
	"hello from version t1 ok hello from version t1 hello from version t1 " ] || fail "pipelined order: $ans"
raw 'GET / HTTP/1.0\r\n\r\n' | grep -q $'^Connection: close\r$' || fail "HTTP/1.0 without keep-alive must close"
[ "$(curl -s -0 -H 'Connection: keep-alive' -o /dev/null -o /dev/null -w '%{num_connects} ' "$(url /)" "$(url /)")" = \
	"1 0 " ] || fail "HTTP/1.0 with Connection: keep-alive: connection not reused"

# --- malformed requests: 400 and close (raw returns at once only if the server closes) ---
for req in 'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\nHost: a\n\n' 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n' \
	'GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n' 'GET / HTTP/1.1\r\nHost : a\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' 'BAD\r\n\r\n'; do
	t0=$(now_ms)
	ans=$(raw "$req")
	echo "$ans" | head -1 | grep -q '^HTTP/1.1 400 ' || fail "malformed request not 400: $req -> $ans"
	echo "$ans" | grep -q $'^Connection: close\r$' || fail "400 without Connection: close: $req"
	[ $(($(now_ms) - t0)) -lt 2000 ] || fail "connection not closed after 400: $req"
done
# a head larger than 16 KiB
{ printf 'GET /'; head -c 20000 /dev/zero | tr '\0' a; } >"$dir/big"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$dir/big" >&3
timeout 3 head -1 <&3 | grep -q '^HTTP/1.1 431 ' || fail "oversized head not 431"
exec 3<&-
[ "$(curl -s "$(url /)")" = "hello from version t1" ] || fail "still serving after bad requests"

# --- SIGTERM: exits 0 promptly ---
kill -TERM "$PID"
expect_exit "$PID" 0

# --- --fail-health; settings through HELLO_* and $PORT ---
start --fail-health
[ "$(status /healthz)" = 503 ] || fail "--fail-health: /healthz not 503"
[ "$(status /)" = 200 ] || fail "--fail-health: / not 200"
free_port=$PORT
kill -INT "$PID"
expect_exit "$PID" 0
PORT=$free_port HELLO_VERSION=fromenv HELLO_FAIL_HEALTH=1 "$HELLO" >"$dir/env.out" 2>&1 &
PID=$!
pids+=("$PID")
PORT=$free_port
for _ in $(seq 100); do grep -q listening "$dir/env.out" && break; sleep 0.05; done
grep -q "^hello fromenv listening on 127.0.0.1:$free_port\$" "$dir/env.out" || fail "env settings: $(cat "$dir/env.out")"
[ "$(status /healthz)" = 503 ] || fail "HELLO_FAIL_HEALTH=1: /healthz not 503"
kill -TERM "$PID"
expect_exit "$PID" 0

# --- --fail-health-after ---
start --fail-health-after 700ms
[ "$(status /healthz)" = 200 ] || fail "--fail-health-after: not healthy at first"
sleep 1
[ "$(status /healthz)" = 503 ] || fail "--fail-health-after: still healthy after 1s"
kill "$PID"
expect_exit "$PID" 0

# --- --error-rate 0.5: exactly 50 of 100 requests to / answer 500 (health not counted) ---
start --error-rate 0.5
[ "$(status /healthz)" = 200 ] || fail "--error-rate: /healthz"
for _ in $(seq 100); do
	printf 'url = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$(url /)"
done >"$dir/cfg"
codes=$(curl -s -K "$dir/cfg" | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
[ "$codes" = "200=50 500=50 " ] || fail "--error-rate 0.5 over 100 requests: $codes"
kill "$PID"
expect_exit "$PID" 0

# --- --latency: delays answers without blocking other connections (one thread) ---
start --latency 500ms --threads 1
t0=$(now_ms)
[ "$(status /healthz)" = 200 ] || fail "--latency: /healthz"
[ $(($(now_ms) - t0)) -lt 400 ] || fail "--latency delayed /healthz"
t0=$(now_ms)
cpids=()
for i in $(seq 8); do
	status / >"$dir/lat.$i" &
	cpids+=($!)
done
wait "${cpids[@]}"
el=$(($(now_ms) - t0))
[ "$(cat "$dir"/lat.* | tr -d '\n')" = 200200200200200200200200 ] || fail "--latency answers: $(cat "$dir"/lat.*)"
[ "$el" -ge 500 ] && [ "$el" -lt 2500 ] || fail "--latency: 8 parallel 500ms requests took ${el}ms"
# SIGTERM with a request in flight: the answer still comes, then exit 0
status / >"$dir/inflight" &
cpid=$!
sleep 0.2
kill -TERM "$PID"
wait "$cpid"
[ "$(cat "$dir/inflight")" = 200 ] || fail "in-flight request during SIGTERM: $(cat "$dir/inflight")"
expect_exit "$PID" 0

# --- --exit-after: exits 1 on its own ---
start --exit-after 300ms
[ "$(status /)" = 200 ] || fail "--exit-after: not serving at first"
expect_exit "$PID" 1

# --- --start-delay: listens only after the delay ---
t0=$(now_ms)
START_ENV="HELLO_START_DELAY=400ms" start
[ $(($(now_ms) - t0)) -ge 400 ] || fail "--start-delay: listening after $(($(now_ms) - t0))ms"
kill "$PID"
expect_exit "$PID" 0

# --- bad flags: usage on stderr, exit 2 ---
for args in "" "--port 0 --bogus" "--port x" "--port 0 --latency 5x" "--port 0 --threads 17" \
	"--port 0 --error-rate 1.5" "--port 0 extra"; do
	# shellcheck disable=SC2086
	env -u PORT "$HELLO" $args >"$dir/bad.out" 2>"$dir/bad.err"
	rc=$?
	[ "$rc" = 2 ] || fail "hello $args: exit $rc, want 2"
	grep -q '^usage: hello' "$dir/bad.err" || fail "hello $args: no usage on stderr"
	[ -s "$dir/bad.out" ] && fail "hello $args: wrote to stdout"
done
echo "ok: t_hello"
