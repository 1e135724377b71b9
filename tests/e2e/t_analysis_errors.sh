#!/usr/bin/env bash
# A version that passes health checks but answers 500 to 30% of requests, under steady traffic, is
# rolled back on analysis within one window of its first instance serving, and the reason names
# the measured error rate. The old version keeps serving throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon

strat='strategy:
  batches: [1, 100%]
  min_ready: 300ms
  analysis: {max_error_rate: 5%, window: 5s, min_requests: 20}'
v1=$(echo "$strat" | aspec api 1 4)
"$RO" apply "$v1" --wait --timeout 60s >/dev/null
traffic_start 60 20 4
sleep 2
grep -q . "$T/traffic.log" && fail "traffic ended early: $(cat "$T/traffic.log")"

v3=$(echo "$strat" | aspec api 3 4 --error-rate 0.3)
"$RO" events api --follow >"$T/follow.txt" 2>&1 &
FOLLOW=$!
t0=$SECONDS
set +e
"$RO" apply "$v3" --wait --timeout 60s >"$T/apply.out" 2>&1
rc=$?
set -e
took=$((SECONDS - t0))
cat "$T/apply.out"
[ $rc -eq 1 ] || fail "apply --wait of an erroring version exited $rc, want 1"
[ "$(ro_state api)" = rolled_back ] || fail "state $(ro_state api), want rolled_back"
# Start + health + min_ready (about 1 s), then at most one 5 s window, then the rollback itself.
[ $took -le 12 ] || fail "rollback took ${took}s, want within one window"
reason=$(ro_reason api)
log "reason: $reason"
rate=$(echo "$reason" | sed -n 's/.*error rate \([0-9.]*\)%.*/\1/p')
[ -n "$rate" ] || fail "the reason does not name the error rate: $reason"
python3 -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 15 <= r <= 50 else 1)" "$rate" ||
	fail "measured rate $rate% is far from 30%"
echo "$reason" | grep -q "max_error_rate 5%" || fail "the reason does not name the rule: $reason"
[ "$(revisions_of api)" = "1:4" ] || fail "after rollback: $(revisions_of api)"

"$RO" events api >"$T/events.txt"
grep -q "analysis of revision 2: fail: error rate" "$T/events.txt" || { cat "$T/events.txt"; fail "no analysis event with numbers"; }
grep -q "rolling_back" "$T/events.txt" || fail "no rolling_back event"
grep "rolling_back" "$T/events.txt" | grep -q "error rate" || fail "the rolling_back event does not say why"

# `events --follow` saw the analysis and the rollback as they happened.
wait_until 5 grep -q "rolled_back" "$T/follow.txt" || { cat "$T/follow.txt"; fail "events --follow missed the rollback"; }
grep -q "analysis of revision 2: fail" "$T/follow.txt" || fail "events --follow missed the analysis result"
kill "$FOLLOW" 2>/dev/null || true
wait "$FOLLOW" 2>/dev/null || true

# The old version kept serving: after the rollback, every answer is version 1 and succeeds.
ok=0
for _ in $(seq 1 20); do
	body=$(curl -s "http://127.0.0.1:$LISTEN_PORT/")
	[ "$body" = "hello from version 1" ] && ok=$((ok + 1))
done
[ $ok -eq 20 ] || fail "after the rollback only $ok of 20 answers were from version 1"
traffic_stop
cat "$T/traffic.log"
log "ok (rolled back in ${took}s at a measured $rate%)"
