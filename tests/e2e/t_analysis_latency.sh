#!/usr/bin/env bash
# A version three times slower than the one it replaces is rolled back on a relative p99 rule
# (max_p99: 1.5x), and the reason names both percentiles.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon

strat='strategy:
  batches: [1, 100%]
  min_ready: 300ms
  analysis: {max_p99: 1.5x, window: 5s, min_requests: 20}'
v1=$(echo "$strat" | aspec api 1 4 --latency 20ms)
"$RO" apply "$v1" --wait --timeout 60s >/dev/null
traffic_start 60 15 4
sleep 2

v2=$(echo "$strat" | aspec api 2 4 --latency 60ms)
t0=$SECONDS
set +e
"$RO" apply "$v2" --wait --timeout 60s >"$T/apply.out" 2>&1
rc=$?
set -e
took=$((SECONDS - t0))
cat "$T/apply.out"
[ $rc -eq 1 ] || fail "apply --wait of a slow version exited $rc, want 1"
[ "$(ro_state api)" = rolled_back ] || fail "state $(ro_state api), want rolled_back"
[ $took -le 12 ] || fail "rollback took ${took}s, want within one window"
reason=$(ro_reason api)
log "reason: $reason"
new=$(echo "$reason" | sed -n 's/.*p99 latency \([0-9]*\)ms.*/\1/p')
old=$(echo "$reason" | sed -n "s/.*old revision's \([0-9]*\)ms.*/\1/p")
[ -n "$new" ] && [ -n "$old" ] || fail "the reason does not name both p99s: $reason"
echo "$reason" | grep -q "max_p99 1.5x" || fail "the reason does not name the rule: $reason"
[ "$new" -ge 60 ] && [ "$new" -le 150 ] || fail "new p99 ${new}ms, want about 60-70ms"
[ "$old" -ge 20 ] && [ "$old" -le 50 ] || fail "old p99 ${old}ms, want about 20-25ms"
[ "$(revisions_of api)" = "1:4" ] || fail "after rollback: $(revisions_of api)"
traffic_stop
cat "$T/traffic.log"
log "ok (rolled back in ${took}s: p99 ${new}ms vs ${old}ms)"
