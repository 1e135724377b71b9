#!/usr/bin/env bash
# A rolling update on real processes: v1 then v2 of 4 hello instances, in batches [1, 50%]; each
# apply --wait completes with every instance on the new revision answering its version, v2 is
# stable, and a sampler sees the floor and the ceiling held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web

log "v1: first deploy"
deploy_v1 web 4

log "v2: rolling update in batches"
v2=$(rolling_strategy 300ms "batches: [1, 50%]" | spec web 2 4)
"$RO" apply "$v2" --wait --timeout 60s
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"
answers web 2 || fail "v2 answers"
[ "$(status_json web | jq_ "d['stable_revision']")" = 2 ] || fail "v2 not stable"

check_sampler
log "ok"
