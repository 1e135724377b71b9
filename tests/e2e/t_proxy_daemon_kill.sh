#!/usr/bin/env bash
# The builtin proxy under the real daemon: rollouts of 2 hello instances behind `lb: builtin` with
# wrk running, the daemon killed -9 and restarted in the middle, one more rollout: 0 socket errors
# and 0 non-2xx. Then the proxy itself is killed -9: the daemon starts a new one and re-pushes the
# service, so traffic comes back without any apply.
set -u
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "skip: wrk is not installed"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl is not installed"; exit 77; }
LP=$(free_port)
URL="http://127.0.0.1:$LP/"
start_daemon
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
  min_ready: 500ms
drain: {timeout: 5s}
lb: builtin
YAML
done
"$RO" apply "$T/web-v1.yaml" --wait --timeout 30s || fail "first apply"
[ "$(curl -s --max-time 5 "$URL")" = "hello from version 1" ] || fail "no answer through the proxy"

wrk -t2 -c32 -d12s --timeout 5s "$URL" >"$T/wrk" 2>&1 &
W=$!
sleep 1
"$RO" apply "$T/web-v2.yaml" --wait --timeout 30s || fail "rollout to v2"
kill9_daemon
log "daemon killed"
sleep 1
start_daemon
log "daemon restarted"
sleep 1
"$RO" apply "$T/web-v1.yaml" --wait --timeout 30s || fail "rollout back to v1 after the restart"
wait $W
cat "$T/wrk"
grep -q "requests in" "$T/wrk" || fail "wrk did not run"
grep -q "Socket errors" "$T/wrk" && fail "socket errors"
grep -q "Non-2xx or 3xx" "$T/wrk" && fail "non-2xx responses"

# the proxy dies: the daemon notices, starts another and pushes the service again
pid=$(curl -s --unix-socket "$DATA/proxy.sock" http://p/v1/health | jq_ "d['pid']")
[ -n "$pid" ] || fail "no proxy pid"
kill -9 "$pid"
log "proxy $pid killed"
ok=
for _ in $(seq 100); do
	if [ "$(curl -s --max-time 1 "$URL")" = "hello from version 1" ]; then ok=1; break; fi
	sleep 0.1
done
[ -n "$ok" ] || fail "traffic did not come back after the proxy was killed"
npid=$(curl -s --unix-socket "$DATA/proxy.sock" http://p/v1/health | jq_ "d['pid']")
[ "$npid" != "$pid" ] || fail "the same proxy pid answers"
log "PASS (new proxy $npid)"
