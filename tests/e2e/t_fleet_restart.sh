#!/usr/bin/env bash
# Fleet: after a kill -9 of the daemon, a new daemon re-adopts the instances on their recorded
# hosts (same processes, no duplicate) and a rollout from there replaces them.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon

fspec() {
	cat >"$T/rs-v$1.yaml" <<YAML
service: rs
replicas: 2
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/rs-v$1.yaml"
}
remote_pids() { cat "$T"/hosts/*/home/run/*.pid 2>/dev/null | cut -d' ' -f1 | sort -n | tr '\n' ' '; }
all_available() { [ "$(status_json rs | jq_ "d['counts']['available']")" = 2 ]; }

"$RO" apply "$(fspec 1)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
before=$(remote_pids)
[ "$(echo $before | wc -w)" = 2 ] || fail "want 2 remote instances, got: $before"
kill9_daemon
fleet_start_daemon
wait_until 20 all_available || fail "the restarted daemon does not count 2 available: $(status_json rs)"
[ "$(remote_pids)" = "$before" ] || fail "instances changed across the restart: $before -> $(remote_pids)"
sleep 2
[ "$(remote_pids)" = "$before" ] || fail "instances changed after the restart: $before -> $(remote_pids)"
[ "$(revisions_of rs)" = "1:2" ] || fail "after the restart: $(revisions_of rs)"

"$RO" apply "$(fspec 2)" --wait --timeout 60s >/dev/null || fail "v2 after the restart did not complete"
after=$(remote_pids)
for p in $before; do case " $after " in *" $p "*) fail "old instance $p still recorded" ;; esac; done
# (a zombie waiting for its new parent to reap it does not run)
running() { [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'; }
for p in $before; do ! running "$p" || fail "old instance $p still runs"; done
log "ok"
