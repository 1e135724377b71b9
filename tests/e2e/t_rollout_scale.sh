#!/usr/bin/env bash
# A change of replicas alone scales without a new revision: 4 -> 6 -> 2 instances, all of the
# revision that was running. A sampler sees the floor and the ceiling held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web
deploy_v1 web 4

log "replicas alone: scale without a new revision"
rev_before=$(status_json web | jq_ "d['target_revision']")
up=$(rolling_strategy 300ms "batches: [1, 50%]" | spec web 1 6)
"$RO" apply "$up" --wait --timeout 60s
[ "$(revisions_of web)" = "$rev_before:6" ] || fail "scale up: $(revisions_of web)"
down=$(rolling_strategy 300ms "batches: [1, 50%]" | spec web 1 2)
"$RO" apply "$down" --wait --timeout 60s
[ "$(revisions_of web)" = "$rev_before:2" ] || fail "scale down: $(revisions_of web)"

check_sampler
log "ok"
