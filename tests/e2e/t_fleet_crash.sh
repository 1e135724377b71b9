#!/usr/bin/env bash
# Fleet: an instance that dies on its host is seen within seconds through the host's watch
# session (no health check in this spec), reported exited, and replaced.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon
cat >"$T/cr.yaml" <<YAML
service: cr
replicas: 2
lb: none
template:
  version: "1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--threads", "1"]
$(fleet_targets)
YAML
"$RO" apply "$T/cr.yaml" --wait --timeout 60s >/dev/null || fail "the rollout did not complete"
pidf=$(ls "$T"/hosts/1/home/run/*.pid | head -1)
victim=$(cut -d' ' -f1 "$pidf")
t0=$SECONDS
kill -9 "$victim"
seen() { "$RO" events cr | grep -q "status unknown"; }
wait_until 10 seen || fail "the daemon did not see the instance die"
log "seen after $((SECONDS - t0))s"
all_back() { [ "$(status_json cr | jq_ "d['counts']['available']")" = 2 ]; }
wait_until 15 all_back || fail "capacity was not restored: $(status_json cr)"
log "ok"
