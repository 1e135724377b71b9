# Helpers for the analysis and notification scenarios, on top of lib.sh: hello behind the builtin
# proxy, steady light traffic, and a daemon whose instance ports leave room for listen ports.
# Source after lib.sh.
TRAFFIC_PID=

LISTEN_PORT=$(free_port) || { echo "no free listen port near $PORT_BASE"; exit 1; }

# aspec NAME VERSION REPLICAS [hello flags...]: a spec on the builtin proxy at LISTEN_PORT; the
# strategy (and anything else) on stdin. Prints the file's path.
aspec() {
	local name=$1 version=$2 replicas=$3; shift 3
	local args="" f
	for f in "$@"; do args="$args, \"$f\""; done
	local extra; extra=$(cat)
	cat >"$T/$name-v$version.yaml" <<YAML
service: $name
replicas: $replicas
listen: 127.0.0.1:$LISTEN_PORT
lb: builtin
template:
  version: "$version"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$version", "--threads", "1"$args]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
drain: {timeout: 2s}
stop: {grace: 1s}
$extra
YAML
	echo "$T/$name-v$version.yaml"
}

# traffic_start SECONDS [RATE_PER_CONN] [CONNS]: GET / on the listen address in the background.
traffic_start() {
	python3 "$ROOT/tests/e2e/traffic.py" --url "http://127.0.0.1:$LISTEN_PORT/" --seconds "$1" \
		--rate "${2:-20}" --conns "${3:-4}" >"$T/traffic.log" 2>&1 &
	TRAFFIC_PID=$!
}

traffic_stop() {
	if [ -n "$TRAFFIC_PID" ]; then kill -TERM "$TRAFFIC_PID" 2>/dev/null || true; wait "$TRAFFIC_PID" 2>/dev/null || true; fi
	TRAFFIC_PID=
}

# The rollout's reason, and its state.
ro_reason() { status_json "$1" | jq_ "d['rollout']['reason'] if d['rollout'] else ''"; }

# Stops what these helpers started, then lib.sh's cleanup (which keeps the exit status).
cleanup_a() {
	local rc=$?
	set +e
	traffic_stop
	if [ -n "${RECEIVER_PID:-}" ]; then kill -TERM "$RECEIVER_PID" 2>/dev/null || true; fi
	(exit $rc)
	cleanup
}
trap cleanup_a EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up
