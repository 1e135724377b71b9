#!/usr/bin/env bash
# `make demo`: a live rolling deploy of examples/hello on the embedded default (local processes
# behind `rollout proxy` on 127.0.0.1:8080), with a client looping requests the whole time:
# v1 (4 instances), a rolling update to v2, then a broken v3 that is rolled back by itself, then a
# v4 that is healthy but fails 30% of its requests: analysis of live traffic rolls it back.
# Everything it starts is stopped at the end, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RO="$BUILD/rollout"
DEMO=$(mktemp -d /tmp/rollout-demo.XXXXXX)
export ROLLOUT_DATA="$DEMO/data"
DAEMON=
CLIENT=

bold() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

cleanup() {
	set +e
	[ -n "$CLIENT" ] && kill "$CLIENT" 2>/dev/null
	[ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
	# Instances and the proxy outlive the daemon by design: stop them too.
	real=$(realpath -m "$ROLLOUT_DATA")
	for p in $({ grep -lsa -z -x "ROLLOUT_DAEMON=$real" /proc/[0-9]*/environ 2>/dev/null || true; } | cut -d/ -f3); do
		kill -TERM -- "-$p" 2>/dev/null
	done
	pkill -TERM -f -- "--admin $ROLLOUT_DATA/proxy.sock" 2>/dev/null
	sleep 0.5
	rm -rf "$DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up

# The example specs name build/hello; a BUILD other than build gets its own copies.
for v in hello hello-v2 hello-v3-broken hello-v4-errors; do sed "s#\"build/hello\"#\"$BUILD/hello\"#" "examples/$v.yaml" >"$DEMO/$v.yaml"; done

if curl -s -o /dev/null --max-time 1 http://127.0.0.1:8080/; then
	echo "demo: something already answers on 127.0.0.1:8080; stop it first" >&2
	exit 1
fi

bold "starting the daemon (data in $ROLLOUT_DATA)"
"$RO" daemon >"$DEMO/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 1 50); do "$RO" status >/dev/null 2>&1 && break; sleep 0.1; done

bold "the plan for hello v1 (nothing runs yet)"
"$RO" plan "$DEMO/hello.yaml"

bold "deploying hello v1: 4 instances behind the proxy on 127.0.0.1:8080"
"$RO" apply "$DEMO/hello.yaml" --wait
"$RO" status hello
echo "curl http://127.0.0.1:8080/ -> $(curl -s http://127.0.0.1:8080/)"

# A client that loops requests through the proxy and counts what it gets; stop_client reads the
# counts into $ok and $bad.
start_client() {
	(
		ok=0 bad=0
		trap 'echo "$ok $bad" >"$DEMO/client.count"; exit 0' TERM
		while :; do
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:8080/ || true)
			if [ "$code" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
		done
	) &
	CLIENT=$!
}
stop_client() {
	kill -TERM "$CLIENT"; wait "$CLIENT" 2>/dev/null || true; CLIENT=
	read -r ok bad <"$DEMO/client.count"
}
start_client

bold "rolling update to v2 (batches 1, 25%, 100%; surge 1; never below 4 available)"
"$RO" apply "$DEMO/hello-v2.yaml" --wait
echo "curl http://127.0.0.1:8080/ -> $(curl -s http://127.0.0.1:8080/)"

bold "v3 never becomes healthy: rolled back automatically"
if "$RO" apply "$DEMO/hello-v3-broken.yaml" --wait; then
	echo "demo: v3 was expected to be rolled back" >&2
	exit 1
fi
echo "curl http://127.0.0.1:8080/ -> $(curl -s http://127.0.0.1:8080/)"

stop_client
bold "a client looped requests through v1, v2 and v3: $ok answered 200, $bad failed"
[ "$bad" -eq 0 ]

bold "v4 is healthy but answers 500 to 30% of requests: analysis of its traffic rolls it back"
# The same client again; this time some answers are v4's 500s until the rollback.
start_client
if "$RO" apply "$DEMO/hello-v4-errors.yaml" --wait; then
	echo "demo: v4 was expected to be rolled back" >&2
	exit 1
fi
stop_client
echo "curl http://127.0.0.1:8080/ -> $(curl -s http://127.0.0.1:8080/)"
echo "during v4's rollout and rollback: $ok answered 200, $bad failed (v4's errors, until it was rolled back)"
"$RO" events hello | grep -E "analysis|rolling_back" | tail -3

bold "history and the last events"
"$RO" history hello
"$RO" events hello | tail -8
