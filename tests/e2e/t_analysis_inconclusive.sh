#!/usr/bin/env bash
# Without traffic the analysis is inconclusive: the rollout pauses at the batch gate with the
# reason (how many requests against min_requests), after a full window of the batch, and
# `rollout promote` continues it to completion.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon

strat='strategy:
  batches: [1, 100%]
  min_ready: 300ms
  analysis: {max_error_rate: 1%, window: 3s, min_requests: 20}'
v1=$(echo "$strat" | aspec api 1 4)
"$RO" apply "$v1" --wait --timeout 60s >/dev/null

v2=$(echo "$strat" | aspec api 2 4)
t0=$(date +%s.%N)
"$RO" apply "$v2" >/dev/null
paused() { [ "$(status_json api | jq_ "d['rollout']['state'] + ':' + str(d['rollout'].get('pause'))")" = "paused:analysis" ]; }
wait_until 20 paused || fail "not paused on analysis: $(status_json api)"
t1=$(date +%s.%N)
reason=$(ro_reason api)
log "reason: $reason"
echo "$reason" | grep -q "inconclusive after batch 1" || fail "reason: $reason"
echo "$reason" | grep -q "0 requests to revision 2 in [0-9.]*s, fewer than min_requests 20" || fail "reason: $reason"
# The verdict covers the batch: a full 3 s window after the first new instance was available.
python3 -c "import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) >= 3.0 else 1)" "$t0" "$t1" ||
	fail "paused before a full window had passed"
[ "$(revisions_of api)" = "1:3 2:1" ] || fail "while paused: $(revisions_of api)"
"$RO" status api | grep -q "inconclusive" || fail "status does not show what it waits for"
sleep 1
[ "$(ro_state api)" = paused ] || fail "did not stay paused"

"$RO" promote api >/dev/null
wait_until 30 state_is api complete || fail "not complete after promote: $(status_json api)"
[ "$(revisions_of api)" = "2:4" ] || fail "after promote: $(revisions_of api)"
"$RO" events api >"$T/events.txt"
grep -q "analysis of revision 2: inconclusive" "$T/events.txt" || { cat "$T/events.txt"; fail "no analysis event"; }
grep "paused" "$T/events.txt" | grep -q "min_requests" || fail "no pause event with the reason"
log "ok"
