#!/usr/bin/env bash
# Fleet: lifecycle hooks run on the host around each instance with {version} {port} {host}
# {service} replaced (install, start before the process; validate after; stop after it stopped);
# a failing validate hook fails the instance and the rollout rolls back.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon

# fspec VERSION VALIDATE_EXIT
fspec() {
	local rec='["/bin/sh", "-c", "echo \"$*\" >>hooks.log", "sh"'
	cat >"$T/hk-v$1.yaml" <<YAML
service: hooked
replicas: 2
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
  hooks:
    install: $rec, "install", "{service}", "{version}", "{port}", "{host}"]
    start: $rec, "start", "{version}"]
    validate: ["/bin/sh", "-c", "echo validate \$1 >>hooks.log; exit $2", "sh", "{version}"]
    stop: $rec, "stop", "{version}", "{port}"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy: {health_deadline: 10s}
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/hk-v$1.yaml"
}
hooklog() { cat "$T/hosts/$1/home/hooks.log" 2>/dev/null; }

"$RO" apply "$(fspec 1 0)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
for i in 1 2; do
	port=$(status_json hooked | jq_ "[x['port'] for x in d['instances'] if '${FHOSTS_IP[$i]}:' in x.get('host','')][0]")
	want="install hooked 1 $port ${FHOSTS_IP[$i]}
start 1
validate 1"
	[ "$(hooklog $i)" = "$want" ] || fail "host $i hooks: $(hooklog $i); want: $want"
done

log "a version whose validate hook fails rolls back"
set +e
"$RO" apply "$(fspec 2 3)" --wait --timeout 60s >"$T/apply2.out" 2>&1
rc=$?
set -e
cat "$T/apply2.out"
[ $rc -eq 1 ] || fail "apply of a version failing validate exited $rc"
grep -q "validate hook failed (exit status 3)" "$T/apply2.out" || "$RO" events hooked | grep -q "validate hook failed" ||
	fail "the failure does not say the validate hook failed"
[ "$(revisions_of hooked)" = "1:2" ] || fail "after rollback: $(revisions_of hooked)"
# the failed instance is stopped over ssh while the rollback goes on: its stop hook may come just
# after the rollout ended
stop_hook_ran() { grep -qs "^stop 2 " "$T"/hosts/*/home/hooks.log; }
wait_until 10 stop_hook_ran || fail "the stop hook did not run for the failed instance"
log "ok"
