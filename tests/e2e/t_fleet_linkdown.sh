#!/usr/bin/env bash
# Fleet: a host's link goes down mid-rollout: its instance is reported gone ("host unreachable")
# and never counted available; capacity is restored elsewhere. The link comes back: the host's
# leftover instance is stopped (no duplicate), and the rollout completes with one instance per host.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 4
fleet_start_daemon

fspec() {
	cat >"$T/ld-v$1.yaml" <<YAML
service: ld
replicas: 4
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
  unhealthy_threshold: 100
strategy:
  batches: [1, 100%]
  pause_after: [1]
  max_surge: 1
  health_deadline: 10s
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/ld-v$1.yaml"
}
# hellos I: the hello processes running on host I, one "version" per line.
hellos() {
	local p c
	for p in $(fleet_host_pids "$1"); do
		c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
		case "$c" in "$HELLO "*) echo "$c" | sed 's/.*--version \([^ ]*\).*/\1/' ;; esac
	done
}
one_v2_each() {
	local i
	for i in 1 2 3 4; do [ "$(hellos "$i")" = 2 ] || return 1; done
}
lost_reported() {
	status_json ld | jq_ "any('host unreachable' in (i['cause'] or '') and '${FHOSTS_IP[2]}' in i.get('host','') for i in d['instances'])" | grep -q True ||
		"$RO" events ld | grep -q "host unreachable: root@${FHOSTS_IP[2]}"
}

"$RO" apply "$(fspec 1)" --wait --timeout 90s || fail "v1 did not complete"
"$RO" apply "$(fspec 2)" >/dev/null
wait_until 30 state_is ld paused || fail "no canary pause: $(ro_state ld)"

log "host 2's link goes down"
ip -n "$FCTL" link set v2 down
wait_until 40 lost_reported || fail "host 2's instance was not reported unreachable"
# Never counted available: the daemon's available instances are all on other hosts.
on2=$(status_json ld | jq_ "sum(1 for i in d['instances'] if i['available'] and '${FHOSTS_IP[2]}:' in i.get('host',''))")
[ "$on2" = 0 ] || fail "$on2 instance(s) on the lost host counted available"
[ "$(hellos 2)" = 1 ] || fail "host 2's process should still run, cut off: $(hellos 2)"

log "the link comes back"
ip -n "$FCTL" link set v2 up
wait_until 30 sh -c "[ -z \"\$(ls $T/hosts/2/home/run 2>/dev/null)\" ]" || fail "host 2's leftover instance was not stopped"
"$RO" promote ld >/dev/null
wait_until 90 state_is ld complete || fail "the rollout did not complete: $(ro_state ld)"
wait_until 10 one_v2_each || { for i in 1 2 3 4; do echo "host $i: $(hellos $i | tr '\n' ' ')"; done; fail "not one v2 per host"; }
log "ok"
