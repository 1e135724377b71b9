#!/usr/bin/env bash
# A service's listen address held by another program (python3's http.server): the proxy keeps the
# listener and tries to bind it every second; the rollout does not complete while its traffic
# cannot reach it (`apply --wait --timeout` exits 1 and says why), status says so on one line;
# once the port is free the proxy binds within ~2 s, the rollout completes, traffic flows.
set -u
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
LP=$(free_port)
URL="http://127.0.0.1:$LP/"
mkdir -p "$T/stray"
echo "the stray server" >"$T/stray/index.html"
python3 -m http.server "$LP" --bind 127.0.0.1 --directory "$T/stray" >"$T/stray.log" 2>&1 &
STRAY=$!
wait_until 10 sh -c "curl -s --max-time 1 '$URL' | grep -q 'the stray server'" || fail "the stray server did not start"

for v in 1 2; do
	cat >"$T/web-v$v.yaml" <<YAML
service: web
replicas: 2
listen: 127.0.0.1:$LP
template:
  version: "$v"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$v", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
strategy:
  min_ready: 200ms
  progress_deadline: 3s
drain: {timeout: 2s}
lb: builtin
YAML
done
start_daemon

# 1. The port is taken: the rollout waits for its traffic, --wait times out and says why.
# progress_deadline 3s passes meanwhile: waiting for the listener does not fail the rollout.
rc=0
"$RO" apply "$T/web-v1.yaml" --wait --timeout 6s >"$T/apply1" 2>&1 || rc=$?
cat "$T/apply1"
[ "$rc" -ne 0 ] || fail "apply --wait exited 0 while the listener is not bound"
grep -q "complete" "$T/apply1" && fail "apply reported completion"
grep -q "timed out waiting after 6s.*it waits for its traffic: listener 127.0.0.1:$LP not bound: address already in use (since " \
	"$T/apply1" || fail "the timeout does not say why"
[ "$(ro_state web)" = progressing ] || fail "rollout state $(ro_state web), want progressing"

# 2. status: the reason on one line (no raw newline in any message)
"$RO" status web >"$T/status" || fail "status"
cat "$T/status"
grep -Eq "^load balancer: listener 127.0.0.1:$LP not bound: address already in use \(since [0-9T:-]+Z\): traffic cannot reach the service$" \
	"$T/status" || fail "status has no listener line"
grep -q "waiting for: its traffic: listener 127.0.0.1:$LP not bound" "$T/status" || fail "status: not waiting for traffic"
status_json web | python3 -c '
import json, sys
d = json.load(sys.stdin)
e = d.get("listener_error", "")
assert e.startswith("listener 127.0.0.1:'"$LP"' not bound: address already in use (since "), e
def walk(v):
    if isinstance(v, str): assert "\n" not in v and "\r" not in v, repr(v)
    elif isinstance(v, dict): [walk(x) for x in v.values()]
    elif isinstance(v, list): [walk(x) for x in v]
walk(d)
' || fail "status json"
curl -s --unix-socket "$DATA/proxy.sock" "http://p/v1/services/web" | python3 -c '
import json, sys
l = json.load(sys.stdin)["listener"]
assert l["bound"] is False and l["error"] == "address already in use" and l["since"] > 0, l
' || fail "the proxy's admin API does not report the unbound listener"
[ "$(curl -s --max-time 2 "$URL")" = "the stray server" ] || fail "the stray server lost its port"

# 3. The port frees up: the proxy binds within ~2 s, the rollout completes, traffic flows.
kill "$STRAY"
wait "$STRAY" 2>/dev/null
t0=$(date +%s%N)
ok=
for _ in $(seq 50); do
	if [ "$(curl -s --max-time 1 "$URL")" = "hello from version 1" ]; then ok=1; break; fi
	sleep 0.1
done
[ -n "$ok" ] || fail "the proxy did not bind the freed port within 5 s"
ms=$((($(date +%s%N) - t0) / 1000000))
log "the proxy bound the freed port after ${ms} ms"
[ "$ms" -le 2500 ] || fail "binding took ${ms} ms, want ~1 s retries"
wait_until 5 state_is web complete || fail "the rollout did not complete once bound: $(ro_state web)"
"$RO" status web | grep -q "not bound" && fail "status still says not bound"
"$RO" events web >"$T/events"
grep -q "listener_unbound" "$T/events" || fail "no listener_unbound event"
grep -q "listener_bound  listener 127.0.0.1:$LP bound" "$T/events" || fail "no listener_bound event"
grep -q "rollout 1 complete" "$T/events" || fail "no completion event"

# 4. A normal rollout after it: --wait exits 0, traffic on the new version.
"$RO" apply "$T/web-v2.yaml" --wait --timeout 30s || fail "rollout to v2"
[ "$(curl -s --max-time 2 "$URL")" = "hello from version 2" ] || fail "v2 does not answer"
log "ok"
