#!/usr/bin/env bash
# Fleet: an exec health check runs on the instance's host over ssh (in the host's rollout directory
# and network namespace, PORT and HOST set), not on the daemon's machine; a version whose exec check
# fails there rolls back.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon

# fspec VERSION FLAG: hello VERSION, healthy while the file FLAG is in the host's rollout directory.
fspec() {
	cat >"$T/eh-v$1.yaml" <<YAML
service: eh
replicas: 2
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  exec: ["/bin/sh", "-c", "echo \"\$PORT \$HOST \$(readlink /proc/self/ns/net)\" >>probes.log; test -f $2"]
  interval: 500ms
  timeout: 500ms
strategy: {health_deadline: 5s}
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/eh-v$1.yaml"
}

for i in 1 2; do touch "$T/hosts/$i/home/ready.flag"; done
"$RO" apply "$(fspec 1 ready.flag)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
[ "$(revisions_of eh)" = "1:2" ] || fail "after v1: $(revisions_of eh)"
for i in 1 2; do
	port=$(status_json eh | jq_ "[x['port'] for x in d['instances'] if '${FHOSTS_IP[$i]}:' in x.get('host','')][0]")
	ns=$(ip netns exec "${FHOSTS_NS[$i]}" readlink /proc/self/ns/net)
	grep -qxF "$port ${FHOSTS_IP[$i]} $ns" "$T/hosts/$i/home/probes.log" ||
		fail "host $i: no probe of port $port with HOST=${FHOSTS_IP[$i]} in its namespace ($ns): $(sort -u "$T/hosts/$i/home/probes.log")"
done
[ ! -e "$DATA/probes.log" ] && [ ! -e probes.log ] || fail "a probe ran on the daemon's machine"

log "a version whose exec check fails on the hosts rolls back"
set +e
"$RO" apply "$(fspec 2 v2-ready.flag)" --wait --timeout 60s >"$T/apply2.out" 2>&1
rc=$?
set -e
cat "$T/apply2.out"
[ $rc -eq 1 ] || fail "apply of a version failing its exec check exited $rc"
grep -q "msg=\"unhealthy\" detail=\"exit status 1 on root@10\.$FNET\.0\.1[12]:22\"" "$T/daemon.log" ||
	fail "the daemon does not say the check exited 1 on a host"
[ "$(revisions_of eh)" = "1:2" ] || fail "after rollback: $(revisions_of eh)"
log "ok"
