#!/usr/bin/env bash
# A user's pause mid-batch on real processes: `rollout pause` right after an apply stops the
# rollout where it is (no instance changes for 2 s), `rollout resume` carries it to completion. A
# sampler sees the floor and the ceiling held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web
deploy_v1 web 4

log "pause by user mid-batch, resume"
v2=$(rolling_strategy 1500ms | spec web 2 4)
"$RO" apply "$v2"
"$RO" pause web
[ "$(ro_state web)" = paused ] || fail "pause"
before=$(revisions_of web)
sleep 2
[ "$(revisions_of web)" = "$before" ] || fail "moved while paused: $before -> $(revisions_of web)"
"$RO" resume web
wait_until 60 state_is web complete || fail "v2 did not complete"
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"

check_sampler
log "ok"
