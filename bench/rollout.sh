#!/usr/bin/env bash
# One rollout of N (default 100) local hello instances through the real daemon, in 4 batches of
# 25%. Prints the wall time against the physical limit, batches x (start + health rise + min_ready),
# where start + health rise is measured on this machine for one batch of hellos started at once
# (exec until every /healthz answers), and the daemon's peak RSS. A figure, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${N:-100}
MIN_READY_MS=${MIN_READY_MS:-1000}
INTERVAL_MS=${INTERVAL_MS:-100}
RO="$PWD/$BUILD/rollout"
HELLO="$PWD/$BUILD/hello"
T=$(mktemp -d /tmp/rollout-bench.XXXXXX)
export ROLLOUT_DATA="$T/data"
DAEMON=
cleanup() {
	set +e
	[ -n "$DAEMON" ] && kill -9 "$DAEMON" 2>/dev/null
	real=$(realpath -m "$ROLLOUT_DATA")
	for p in $({ grep -lsa -z -x "ROLLOUT_DAEMON=$real" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3); do
		kill -9 -- "-$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up
[ -n "${KEEP_LOG:-}" ] && trap 'cp "$T/daemon.log" "$KEEP_LOG"; cleanup' EXIT
[ -x "$RO" ] || make -s BUILD="$BUILD" >/dev/null

now_ms() { date +%s%3N; }

# Start + health rise of one batch on this machine, median of 3: exec BATCH hellos at once (as the
# daemon does) until every /healthz answers 200. The physical limit of a batch is this plus min_ready.
BATCH=$(( (N + 3) / 4 ))
measure_start() {
	python3 - "$HELLO" "$BATCH" <<'PY'
import http.client, socket, subprocess, sys, time
hello, n = sys.argv[1], int(sys.argv[2])
ss = [socket.socket() for _ in range(n)]
for s in ss:
    s.bind(("127.0.0.1", 0))
ports = [s.getsockname()[1] for s in ss]
for s in ss:
    s.close()
t0 = time.monotonic()
procs = [subprocess.Popen([hello, "--port", str(p), "--version", "x", "--threads", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
pending = set(ports)
while pending and time.monotonic() - t0 < 10:
    for p in list(pending):
        try:
            c = http.client.HTTPConnection("127.0.0.1", p, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                pending.discard(p)
            c.close()
        except OSError:
            pass
    time.sleep(0.001)
t1 = time.monotonic()
for pr in procs:
    pr.terminate()
for pr in procs:
    pr.wait()
print(int((t1 - t0) * 1000) if not pending else 10**6)
PY
}
starts=$(for _ in 1 2 3; do measure_start; done | sort -n)
start_ms=$(echo "$starts" | sed -n 2p)

spec() {
	cat >"$T/v$1.yaml" <<YAML
service: bench
replicas: $N
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: ${INTERVAL_MS}ms
  timeout: ${INTERVAL_MS}ms
strategy:
  max_surge: 100%
  max_unavailable: 0
  batches: [25%]
  min_ready: ${MIN_READY_MS}ms
  health_deadline: 60s
drain: {timeout: 5s}
stop: {grace: 5s}
YAML
	echo "$T/v$1.yaml"
}

"$RO" daemon --ports 40000-40999 ${DAEMON_FLAGS:-} >"$T/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 1 100); do "$RO" status >/dev/null 2>&1 && break; sleep 0.05; done
"$RO" apply "$(spec 1)" --wait --timeout 10m >/dev/null
batches=$("$RO" plan "$(spec 2)" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["batches"]))')
t0=$(now_ms)
"$RO" apply "$(spec 2)" --wait --timeout 10m >/dev/null
t1=$(now_ms)
# The rollout's own duration (first decision to completion, as recorded); the CLI's polling adds
# up to 200 ms on top, shown apart.
wall=$("$RO" status bench -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rollout"]["elapsed_ms"])')
limit=$((batches * (start_ms + MIN_READY_MS)))
rss=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON/status")
echo "rollout of $N instances in $batches batches (surge 100% within each 25% batch, min_ready ${MIN_READY_MS}ms, health interval ${INTERVAL_MS}ms)"
echo "  wall time        ${wall} ms (apply --wait returned after $((t1 - t0)) ms)"
echo "  physical limit   ${limit} ms = $batches x (start+health of $BATCH at once ${start_ms} ms + min_ready ${MIN_READY_MS} ms)"
python3 -c "print(f'  ratio            {$wall / $limit:.3f}x  (goal <= 1.05x)')"
echo "  daemon peak RSS  $((rss / 1024)) MiB"
