#!/usr/bin/env bash
# Abort at a canary gate on real processes: the rollout ends aborted, every instance is back on
# v1 answering its version, and it stays there. A sampler sees the floor and the ceiling held
# throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web
deploy_v1 web 4

log "abort at the canary gate: back to v1, and it stays there"
v2=$(rolling_strategy 300ms "batches: [1]" "pause_after: [1]" | spec web 2 4)
"$RO" apply "$v2"
wait_until 30 state_is web paused || fail "v2 did not pause"
"$RO" abort web
wait_until 30 state_is web aborted || fail "abort did not end: $(ro_state web)"
sleep 1
[ "$(revisions_of web)" = "1:4" ] || fail "after abort: $(revisions_of web)"
answers web 1 || fail "abort answers"

check_sampler
log "ok"
