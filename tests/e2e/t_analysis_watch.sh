#!/usr/bin/env bash
# strategy.watch keeps analysing after completion: a version that completes (no traffic during its
# rollout) and then fails 30% of requests inside the watch is rolled back to the previous one.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon

strat='strategy:
  min_ready: 300ms
  watch: 30s
  analysis: {max_error_rate: 5%, window: 5s, min_requests: 20}'
v1=$(echo "$strat" | aspec api 1 2)
"$RO" apply "$v1" --wait --timeout 60s >/dev/null
v2=$(echo "$strat" | aspec api 2 2 --error-rate 0.3)
"$RO" apply "$v2" --wait --timeout 60s >/dev/null || fail "v2 did not complete"
[ "$(ro_state api)" = complete ] || fail "state $(ro_state api)"
[ "$(status_json api | jq_ "d['stable_revision']")" = 2 ] || fail "v2 not stable"

t0=$SECONDS
traffic_start 30 20 2
wait_until 15 state_is api rolled_back || fail "not rolled back during watch: $(status_json api)"
took=$((SECONDS - t0))
reason=$(ro_reason api)
log "reason: $reason"
echo "$reason" | grep -q "analysis failed during watch: error rate [0-9.]*%" || fail "reason: $reason"
[ "$(revisions_of api)" = "1:2" ] || fail "after rollback: $(revisions_of api)"
[ "$(status_json api | jq_ "d['stable_revision']")" = 1 ] || fail "stable revision not back to 1"
traffic_stop; cat "$T/traffic.log"; "$RO" events api | tail -12

log "a breach after the watch ended changes nothing"
v3=$(echo "$strat" | sed 's/watch: 30s/watch: 1s/' | aspec api 3 2 --error-rate 0.3)
"$RO" apply "$v3" --wait --timeout 60s >/dev/null || fail "v3 did not complete"
sleep 2
traffic_start 4 20 2
sleep 5
[ "$(ro_state api)" = complete ] || fail "rolled back after the watch: $(ro_reason api)"
log "ok (rolled back ${took}s after traffic began)"
