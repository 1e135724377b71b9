#!/usr/bin/env bash
# An error-rate breach seen only in HAProxy's counters rolls back: with lb: haproxy the daemon's
# analysis reads `show stat` (per server hrsp_5xx, eresp, econ, summed per revision), so a version
# that passes health checks but answers 500 to 30% of requests is rolled back, the reason naming
# the measured rate, and HAProxy is left serving only the old version.
set -euo pipefail
. "$(dirname "$0")/haproxy_lib.sh"
TP=
trap 'rc=$?; [ -n "$TP" ] && kill "$TP" 2>/dev/null; stop_haproxy; (exit $rc); cleanup' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up

start_haproxy
start_daemon

strat='strategy:
  batches: [1, 100%]
  min_ready: 300ms
  analysis: {max_error_rate: 5%, window: 5s, min_requests: 20}
drain: {timeout: 5s}
stop: {grace: 1s}'
"$RO" apply "$(echo "$strat" | haproxy_spec api 1 4)" --wait --timeout 60s >/dev/null
python3 "$ROOT/tests/e2e/traffic.py" --url "$HURL" --seconds 60 --rate 20 --conns 4 >"$T/traffic.log" 2>&1 &
TP=$!
sleep 2

t0=$SECONDS
set +e
"$RO" apply "$(echo "$strat" | haproxy_spec api 2 4 --error-rate 0.3)" --wait --timeout 60s >"$T/apply.out" 2>&1
rc=$?
set -e
took=$((SECONDS - t0))
cat "$T/apply.out"
[ $rc -eq 1 ] || fail "apply --wait of an erroring version exited $rc, want 1"
[ "$(ro_state api)" = rolled_back ] || fail "state $(ro_state api), want rolled_back"
[ $took -le 20 ] || fail "rollback took ${took}s"
reason=$(status_json api | jq_ "d['rollout']['reason']")
log "reason: $reason"
rate=$(echo "$reason" | sed -n 's/.*error rate \([0-9.]*\)%.*/\1/p')
[ -n "$rate" ] || fail "the reason does not name the error rate: $reason"
python3 -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 10 <= r <= 60 else 1)" "$rate" ||
	fail "measured rate $rate% is far from 30%"
[ "$(revisions_of api)" = "1:4" ] || fail "after rollback: $(revisions_of api)"

# HAProxy serves version 1 only again.
ok=0
for _ in $(seq 1 20); do
	[ "$(curl -s "$HURL")" = "hello from version 1" ] && ok=$((ok + 1))
done
[ $ok -eq 20 ] || { servers; fail "after the rollback only $ok of 20 answers through HAProxy were from version 1"; }
log "ok (rolled back in ${took}s at a measured $rate%)"
