#!/usr/bin/env bash
# A version that crashes after passing its checks (issue 12.6): v2 answers its health check and
# exits 2 s later. Within strategy.min_stable (10 s) of becoming available that fails its rollout,
# also when the rollout completed already: rolled back to v1, v1 serving, and the status and the
# history say it failed 2 s after becoming available. With min_stable 0 it only restarts, and the
# restart count is in the status, the CLI and /metrics.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strat='strategy:
  min_ready: 200ms
  health_deadline: 5s
  min_stable: 10s
drain: {timeout: 1s}
stop: {grace: 1s}'
"$RO" apply "$(echo "$strat" | spec w 1 2)" --wait --timeout 30s
[ "$(ro_state w)" = complete ] || fail "v1: $(ro_state w)"

log "v2 passes its checks, then exits 2 s later"
t0=$SECONDS
# --wait returns at completion (as with strategy.watch); the min_stable window follows it.
"$RO" apply "$(echo "$strat" | spec w 2 2 --exit-after 2s)" --wait --timeout 60s
[ "$(ro_state w)" = complete ] || fail "v2: $(ro_state w)"
status_json w | jq_ "d['waiting_for']" | grep -q "revision 2 failing in the next .*s rolls it back (min_stable)" ||
	fail "waiting_for: $(status_json w | jq_ "d['waiting_for']")"
wait_until 15 state_is w rolled_back || fail "state $(ro_state w), want rolled_back"
log "rolled back after $((SECONDS - t0)) s"
"$RO" events w >"$T/events.txt"
grep -q "instance_available.*revision 2" "$T/events.txt" || { cat "$T/events.txt"; fail "v2 never became available: not the case under test"; }
reason=$(status_json w | jq_ "d['rollout']['reason']")
log "reason: $reason"
echo "$reason" | grep -Eq "failed [0-9.]+s after becoming available \(min_stable 10s\): exited with status 1" ||
	fail "the reason does not say it crashed after becoming available: $reason"
"$RO" history w >"$T/history.txt"
grep -q "failed, rolled back to revision 1" "$T/history.txt" && grep -q "after becoming available" "$T/history.txt" ||
	{ cat "$T/history.txt"; fail "history does not say why"; }
grep -Eq "instance_failed.*failed [0-9.]+s after becoming available" "$T/events.txt" ||
	{ cat "$T/events.txt"; fail "no instance_failed event saying when it crashed"; }
[ "$(status_json w | jq_ "d['stable_revision']")" = 1 ] || fail "stable revision $(status_json w | jq_ "d['stable_revision']")"
healed() { [ "$(revisions_of w)" = "1:2" ] && [ "$(status_json w | jq_ "d['counts']['available']")" = 2 ]; }
wait_until 10 healed || fail "after the rollback: $(revisions_of w)"
for p in $(status_json w | jq_ "' '.join(str(i['port']) for i in d['instances'])"); do
	[ "$(curl -s "http://127.0.0.1:$p/")" = "hello from version 1" ] || fail "port $p: $(curl -s "http://127.0.0.1:$p/")"
done

log "min_stable 0: the crash only restarts; the restart count shows"
"$RO" apply "$(echo "$strat" | sed 's/min_stable: 10s/min_stable: 0s/' | spec w 3 1 --exit-after 2s)" --wait --timeout 30s
[ "$(ro_state w)" = complete ] || fail "v3: $(ro_state w)"
restarted() { [ "$(status_json w | jq_ "max([i['restarts'] for i in d['instances']] + [0])")" -ge 2 ]; }
wait_until 20 restarted || fail "no restarts counted: $(status_json w)"
[ "$(ro_state w)" = complete ] || fail "v3 with min_stable 0: $(ro_state w)"
"$RO" status w | grep -Eq "^ID .* RESTARTS +CAUSE" || fail "no RESTARTS column: $("$RO" status w)"
curl -s --unix-socket "$DATA/rollout.sock" http://x/metrics >"$T/metrics.txt"
grep -Eq '^rollout_instance_restarts\{service="w",revision="3"\} [1-9]' "$T/metrics.txt" ||
	{ grep restarts "$T/metrics.txt"; fail "metrics: no restart count"; }
log ok
