#!/usr/bin/env bash
# A third revision applied mid-rollout rolls over: v3 applied while v2 is still rolling out
# completes with every instance on v3, and the history shows v2's rollout superseded. A sampler
# sees the floor and the ceiling held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web
deploy_v1 web 4

log "a third revision mid-rollout rolls over"
v2=$(rolling_strategy 2s | spec web 2 4)
v3=$(rolling_strategy 300ms | spec web 3 4)
"$RO" apply "$v2"
wait_until 20 has_rev web 2 || fail "v2 never started"
"$RO" apply "$v3" --wait --timeout 60s
[ "$(revisions_of web)" = "3:4" ] || fail "after v3: $(revisions_of web)"
"$RO" history web >"$T/history.txt"
grep -q superseded "$T/history.txt" || { cat "$T/history.txt"; fail "history does not show the superseded rollout"; }

check_sampler
log "ok"
