#!/usr/bin/env bash
# A stored service that cannot be loaded never stops the daemon (issue 11.2): its spec no longer
# validates (max_surge: 1000000000% of 10 replicas, which once sized buffers of 60 GB and aborted
# every start) or its state row is corrupt. The daemon starts, serves the others, reports it
# (status, a load_failed event, 409 for the service), and an apply of a corrected spec takes it over.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
for n in good bad worse; do
	"$RO" apply "$(echo 'strategy: {max_surge: 1}' | spec $n 1 1)" --wait --timeout 30s
done
bad_pid=$(status_json bad | jq_ "d['instances'][0]['pid']")
stop_daemon

log "break two stored services behind the daemon's back"
python3 - "$DATA/state.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(y,) = db.execute("SELECT spec_yaml FROM services WHERE name = 'bad'").fetchone()
y = y.replace("replicas: 1", "replicas: 10").replace("max_surge: 1}", "max_surge: 1000000000%}")
assert "1000000000%" in y
db.execute("UPDATE services SET spec_yaml = ? WHERE name = 'bad'", (y,))
db.execute("UPDATE services SET replicas = 1099511627776 WHERE name = 'worse'")
db.commit()
PY

log "the daemon starts and serves the service it can load"
start_daemon
kill -0 "$DAEMON_PID" || fail "daemon died"
[ "$(ro_state good)" = complete ] || fail "good: $(ro_state good)"
grep -q 'service=bad msg="not loaded' "$T/daemon.log" || fail "no log line for bad"
grep -q 'service=worse msg="not loaded' "$T/daemon.log" || fail "no log line for worse"
"$RO" status >"$T/all.txt"
cat "$T/all.txt"
grep -q "^good " "$T/all.txt" || fail "good not listed"
grep -q "not loaded at start" "$T/all.txt" || fail "status does not report the unloaded services"
grep -q "  bad: stored spec:[0-9]*:[0-9]*: max_surge: 1000000000% is more than 1000%" "$T/all.txt" \
	|| fail "bad's reason"
grep -q "  worse: cannot read its state: .*replicas 1099511627776 is out of range" "$T/all.txt" || fail "worse's reason"
set +e; "$RO" status bad >/dev/null 2>"$T/bad.err"; rc=$?; set -e
[ $rc -ne 0 ] || fail "status bad succeeded"
grep -q "was not loaded at start: stored spec:.*max_surge" "$T/bad.err" || fail "status bad: $(cat "$T/bad.err")"
"$RO" events bad >"$T/events.txt" || fail "events of bad"
grep -q "load_failed" "$T/events.txt" || fail "no load_failed event: $(cat "$T/events.txt")"
kill -0 "$bad_pid" || fail "bad's instance was stopped"
curl -s --unix-socket "$DATA/rollout.sock" http://x/metrics >"$T/metrics.txt"
python3 "$ROOT/tests/e2e/promcheck.py" <"$T/metrics.txt" || fail "metrics format"
[ "$(python3 "$ROOT/tests/e2e/promcheck.py" --get 'rollout_service_unloaded{service="bad"}' <"$T/metrics.txt")" = 1 ] \
	|| fail "no unloaded metric: $(grep unloaded "$T/metrics.txt")"

log "a corrected spec takes bad over: its instance is adopted, then replaced by the new revision"
"$RO" apply "$(echo 'strategy: {max_surge: 1}' | spec bad 2 1)" --wait --timeout 30s
[ "$(ro_state bad)" = complete ] || fail "bad: $(ro_state bad)"
[ "$(revisions_of bad)" = "2:1" ] || fail "bad revisions: $(revisions_of bad)"
wait_until 10 bash -c "! kill -0 $bad_pid 2>/dev/null" || fail "the old instance of bad was not stopped"
"$RO" status >"$T/all2.txt"
! grep -q "  bad:" "$T/all2.txt" || fail "bad still reported unloaded"
grep -q "  worse:" "$T/all2.txt" || fail "worse no longer reported"

log "a corrupt state row is not taken over: 409, nothing changed"
set +e; "$RO" apply "$(echo 'strategy: {max_surge: 1}' | spec worse 2 1)" 2>"$T/worse.err"; rc=$?; set -e
[ $rc -ne 0 ] || fail "apply over a corrupt state row succeeded"
grep -q "cannot be taken over: cannot read its state" "$T/worse.err" || fail "worse: $(cat "$T/worse.err")"

log "a restart: what was taken over loads"
stop_daemon
start_daemon
[ "$(ro_state bad)" = complete ] || fail "bad after restart: $(ro_state bad)"
log ok
