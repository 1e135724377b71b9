#!/usr/bin/env bash
# Events tell a confirmed drain from one that timed out: a python3 backend holds a request longer
# than drain.timeout during a rollout, and the old instance's event says "drain timed out after 1s
# with 1 request in flight"; the next rollout, with nothing in flight, says "drained".
set -u
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
LP=$(free_port)
URL="http://127.0.0.1:$LP"
for v in 1 2 3; do
	cat >"$T/web-v$v.yaml" <<YAML
service: web
replicas: 1
listen: 127.0.0.1:$LP
template:
  version: "$v"
  command: ["python3", "$ROOT/tests/e2e/slow_backend.py", "\${PORT}", "$v"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy:
  min_ready: 200ms
drain: {timeout: 1s}
stop: {grace: 1s}
lb: builtin
YAML
done
start_daemon
"$RO" apply "$T/web-v1.yaml" --wait --timeout 30s || fail "first apply"
[ "$(curl -s --max-time 5 "$URL/")" = "hello from version 1" ] || fail "no answer through the proxy"

# a request held for 3 s, in flight through the proxy while v1 drains
curl -s --max-time 10 "$URL/slow?s=3" >/dev/null 2>&1 &
SLOW=$!
sleep 0.5
"$RO" apply "$T/web-v2.yaml" --wait --timeout 30s || fail "rollout to v2"
"$RO" events web >"$T/events2"
grep "revision 1" "$T/events2"
grep -q "instance 1 (revision 1) drain timed out after 1s with 1 request in flight, stopping" "$T/events2" ||
	fail "the event does not say the drain timed out with 1 request in flight"
grep -q "instance 1 (revision 1) drained" "$T/events2" && fail "a timed-out drain is called drained"
grep -q 'msg="drain timed out after 1s with 1 request in flight; stopping it"' "$T/daemon.log" ||
	fail "the log does not say so"

# nothing in flight: a confirmed drain says drained. (The proxy may have sent the held GET again
# to v2 when v1's connection closed before any response byte: it is over first.)
wait "$SLOW"
"$RO" apply "$T/web-v3.yaml" --wait --timeout 30s || fail "rollout to v3"
"$RO" events web >"$T/events3"
grep "revision 2" "$T/events3"
grep -Eq "instance [0-9]+ \(revision 2\) drained, stopping" "$T/events3" || fail "a confirmed drain does not say drained"
grep -q "(revision 2) drain timed out" "$T/events3" && fail "a confirmed drain says timed out"
log "ok"
