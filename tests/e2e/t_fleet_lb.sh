#!/usr/bin/env bash
# Fleet: the builtin load balancer gets host:port backends of the namespace hosts: requests through
# it are answered by the remote instances, also while a rollout replaces them (none fails).
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon
LP=$((PORT_BASE + 199))
fspec() {
	cat >"$T/lb-v$1.yaml" <<YAML
service: flb
replicas: 2
listen: 127.0.0.1:$LP
lb: builtin
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy: {max_surge: 1, max_unavailable: 0}
drain: {timeout: 2s}
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/lb-v$1.yaml"
}
get() { ip netns exec "$FCTL" curl -s -m 2 "http://127.0.0.1:$LP/"; }

"$RO" apply "$(fspec 1)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
wait_until 10 sh -c "ip netns exec $FCTL curl -sf -m 1 http://127.0.0.1:$LP/ >/dev/null" || fail "no answer through the proxy"
get | grep -qx "hello from version 1" || fail "the answer is not from version 1: $(get)"
backends=$(status_json flb | jq_ "' '.join(sorted(i['host'] for i in d['instances']))")
[ "$backends" = "root@${FHOSTS_IP[1]}:22 root@${FHOSTS_IP[2]}:22" ] || fail "instances: $backends"

# Traffic during the rollout: every request must be answered.
( set +e; n=0; bad=0
  while [ ! -f "$T/stop" ]; do
	code=$(ip netns exec "$FCTL" curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$LP/")
	n=$((n + 1)); [ "$code" = 200 ] || bad=$((bad + 1))
  done
  echo "$n $bad" >"$T/traffic" ) &
TRAFFIC=$!
"$RO" apply "$(fspec 2)" --wait --timeout 60s >/dev/null || fail "v2 did not complete"
touch "$T/stop"; wait $TRAFFIC
read -r n bad <"$T/traffic"
log "$n requests during the rollout, $bad failed"
[ "$n" -gt 10 ] || fail "too few requests: $n"
[ "$bad" -eq 0 ] || fail "$bad of $n requests failed"
get | grep -qx "hello from version 2" || fail "the answer is not from version 2: $(get)"
log "ok"
