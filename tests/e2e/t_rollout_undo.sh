#!/usr/bin/env bash
# Undo on real processes: after v1 and v2 of 4 hello instances, `rollout undo --wait` targets
# revision 1 and every instance answers with v1 again; a sampler sees the floor and the ceiling
# held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web

deploy_v1 web 4
v2=$(rolling_strategy 300ms "batches: [1, 50%]" | spec web 2 4)
"$RO" apply "$v2" --wait --timeout 60s
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"

log "undo: back to v1"
"$RO" undo web --wait --timeout 60s
[ "$(revisions_of web)" = "1:4" ] || fail "after undo: $(revisions_of web)"
[ "$(status_json web | jq_ "d['target_revision']")" = 1 ] || fail "undo target"
answers web 1 || fail "undo answers"

check_sampler
log "ok"
