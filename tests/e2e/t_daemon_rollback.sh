#!/usr/bin/env bash
# A version that never becomes healthy is rolled back automatically within health_deadline plus
# one batch, `apply --wait` exits 1, and the old version keeps its full capacity throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strat='strategy:
  max_surge: 25%
  max_unavailable: 0
  batches: [1, 100%]
  min_ready: 300ms
  health_deadline: 3s
drain: {timeout: 2s}
stop: {grace: 1s}'
v1=$(echo "$strat" | spec api 1 4)
"$RO" apply "$v1" --wait --timeout 60s

python3 "$ROOT/tests/e2e/sampler.py" --sock "$DATA/rollout.sock" --service api --surge 25% --unavailable 0 \
	>"$T/sampler.log" 2>&1 &
SAMPLER=$!
v3=$(echo "$strat" | spec api 3 4 --fail-health)
t0=$SECONDS
set +e
"$RO" apply "$v3" --wait --timeout 60s >"$T/apply.out" 2>&1
rc=$?
set -e
took=$((SECONDS - t0))
cat "$T/apply.out"
[ $rc -eq 1 ] || fail "apply --wait of a broken version exited $rc, want 1"
[ "$(ro_state api)" = rolled_back ] || fail "state $(ro_state api)"
# health_deadline 3s, plus one batch (start + health rise + min_ready, well under 3 s here).
[ $took -le 8 ] || fail "rollback took ${took}s"
grep -qi "health_deadline\|max_failures" "$T/apply.out" || fail "apply output does not say why"
[ "$(revisions_of api)" = "1:4" ] || fail "after rollback: $(revisions_of api)"
[ "$(status_json api | jq_ "d['stable_revision']")" = 1 ] || fail "stable revision"
"$RO" events api >"$T/events.txt"
grep -q rolling_back "$T/events.txt" || fail "no rolling_back event"
grep -q rolled_back "$T/events.txt" || fail "no rolled_back event"

log "without auto_rollback the rollout halts as failed and keeps the old capacity"
v4=$(echo "$strat" | sed 's/  health_deadline: 3s/  health_deadline: 3s\n  auto_rollback: false/' | spec api 4 4 --fail-health)
set +e; "$RO" apply "$v4" --wait --timeout 60s >"$T/apply4.out" 2>&1; rc=$?; set -e
[ $rc -eq 1 ] || fail "halted apply exited $rc"
[ "$(ro_state api)" = failed ] || fail "state $(ro_state api), want failed"
sleep 1
[ "$(revisions_of api)" = "1:4" ] || fail "halted counts: $(revisions_of api)"

kill -TERM $SAMPLER; wait $SAMPLER || { cat "$T/sampler.log"; fail "sampler found violations"; }
log "ok (rolled back in ${took}s)"
