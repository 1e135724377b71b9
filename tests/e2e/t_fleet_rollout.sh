#!/usr/bin/env bash
# Fleet: hello on 4 namespace hosts over ssh, one instance per host, in 2 batches: the rollout
# completes (the rollout binary copied to each host), undo returns, a broken version rolls back.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 4
fleet_start_daemon

# fspec VERSION [hello flags]: the spec file for hello VERSION on every host.
fspec() {
	local v=$1 args="" f; shift
	for f in "$@"; do args="$args, \"$f\""; done
	cat >"$T/fl-v$v.yaml" <<YAML
service: fl
replicas: 4
lb: none
template:
  version: "$v"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$v", "--threads", "1"$args]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy:
  batches: [2, 100%]
  max_surge: 1
  max_unavailable: 0
  health_deadline: 5s
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/fl-v$v.yaml"
}

# on_hosts VERSION: every host runs exactly one hello, of VERSION.
on_hosts() {
	local i p n c
	for i in 1 2 3 4; do
		n=0
		for p in $(fleet_host_pids "$i"); do
			c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
			case "$c" in "$HELLO "*) ;; *) continue ;; esac
			case "$c" in *"--version $1 "*) ;; *) echo "host $i runs $c"; return 1 ;; esac
			n=$((n + 1))
		done
		[ $n -eq 1 ] || { echo "host $i runs $n hello"; return 1; }
	done
}

log "v1 to 4 hosts"
"$RO" apply "$(fspec 1)" --wait --timeout 90s || fail "v1 did not complete"
[ "$(revisions_of fl)" = "1:4" ] || fail "after v1: $(revisions_of fl)"
wait_until 5 on_hosts 1 || fail "after v1 the hosts do not run one v1 each"
for i in 1 2 3 4; do [ -x "$T/hosts/$i/home/bin/rollout" ] || fail "rollout not installed on host $i"; done
hosts=$(status_json fl | jq_ "' '.join(sorted(i.get('host','') for i in d['instances']))")
[ "$hosts" = "$(for i in 1 2 3 4; do echo "root@${FHOSTS_IP[$i]}:22"; done | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
	fail "instances are not spread one per host: $hosts"

log "v2 in 2 batches"
"$RO" apply "$(fspec 2)" --wait --timeout 90s || fail "v2 did not complete"
wait_until 5 on_hosts 2 || fail "after v2 the hosts do not run one v2 each"
"$RO" events fl >"$T/events.txt"
grep -q "batch 2" "$T/events.txt" || { cat "$T/events.txt"; fail "no second batch"; }

log "undo returns to v1"
"$RO" undo fl --wait --timeout 90s || fail "undo did not complete"
[ "$(revisions_of fl)" = "1:4" ] || fail "after undo: $(revisions_of fl)"
wait_until 5 on_hosts 1 || fail "after undo the hosts do not run one v1 each"

log "a broken version rolls back"
set +e
"$RO" apply "$(fspec 3 --fail-health)" --wait --timeout 90s >"$T/apply3.out" 2>&1
rc=$?
set -e
cat "$T/apply3.out"
[ $rc -eq 1 ] || fail "apply --wait of a broken version exited $rc, want 1"
[ "$(ro_state fl)" = rolled_back ] || fail "state $(ro_state fl)"
wait_until 10 on_hosts 1 || fail "after the rollback the hosts do not run one v1 each"
log "ok"
