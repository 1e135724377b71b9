#!/usr/bin/env bash
# Another connection holds the store's write lock for 7 s in the middle of a rollout: the daemon
# keeps answering `rollout status` within 1 s, says the store is unavailable (status text and
# JSON, /metrics), starts nothing meanwhile, and once the lock is gone records how long writes
# failed and completes the rollout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 1s
drain: {timeout: 1s}
stop: {grace: 1s}'
"$RO" apply "$(echo "$strat" | spec k 1 3)" --wait --timeout 60s >/dev/null
"$RO" apply "$(echo "$strat" | spec k 2 3)" >/dev/null
wait_until 10 has_rev k 2 || fail "the rollout did not start"

max_id() { status_json k | jq_ "max(i['id'] for i in d['instances'])"; }
metric() { curl -sf --unix-socket "$DATA/rollout.sock" http://rollout/metrics | awk -v m="$1" '$1 == m {print $2}'; }

python3 - "$DATA/state.db" "$T/locked" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(7)
c.execute("ROLLBACK")
c.close()
PY
LOCKER=$!
wait_until 5 test -f "$T/locked" || fail "could not take the lock"
log "store locked"
ids_at_lock=$(max_id)
saw_text=0 saw_json=0 saw_metric=0 slow=0 polls=0
end=$((SECONDS + 6))
while [ $SECONDS -lt $end ]; do
	t0=$(date +%s%N)
	out=$(timeout 5 "$RO" status k) || fail "rollout status failed while the store was locked"
	ms=$((($(date +%s%N) - t0) / 1000000))
	polls=$((polls + 1))
	[ "$ms" -lt 1000 ] || { slow=$((slow + 1)); log "status took $ms ms"; }
	case "$out" in *"store: unavailable since"*) saw_text=1 ;; esac
	j=$(timeout 5 "$RO" status -o json)
	case "$j" in *'"store_error"'*) saw_json=1 ;; esac
	[ "$(metric rollout_store_up)" = 0 ] && saw_metric=1
	# Nothing decided while it cannot be recorded: no new instance.
	[ "$(max_id)" = "$ids_at_lock" ] || fail "a new instance appeared while the store was locked"
	sleep 0.3
done
log "polls $polls, slow $slow; text $saw_text json $saw_json metric $saw_metric"
[ $slow -eq 0 ] || fail "$slow of $polls status calls took 1 s or more"
[ $saw_text = 1 ] || fail "rollout status never said the store is unavailable"
[ $saw_json = 1 ] || fail "GET /v1/services never had store_error"
[ $saw_metric = 1 ] || fail "/metrics never had rollout_store_up 0"
status_json k | jq_ "d['store_error']['error']" | grep -q "database is locked" || fail "the error does not say the database is locked"
# A command is refused while the store takes no writes, with a 503 and a reason.
code=$(curl -s -o "$T/pause.json" -w '%{http_code}' --unix-socket "$DATA/rollout.sock" -X POST http://rollout/v1/services/k/pause)
[ "$code" = 503 ] || fail "pause while the store is locked: HTTP $code, want 503"
grep -q "takes no writes" "$T/pause.json" || fail "pause refusal says: $(cat "$T/pause.json")"
wait "$LOCKER"
log "lock released"

wait_until 30 state_is k complete || fail "the rollout did not complete after the lock was released ($(ro_state k))"
[ "$(revisions_of k)" = "2:3" ] || fail "instances: $(revisions_of k)"
status_json k | jq_ "'store_error' in d" | grep -qx False || fail "status still reports the store unavailable"
[ "$(metric rollout_store_up)" = 1 ] || fail "/metrics: rollout_store_up is not 1"
"$RO" events k -o json >"$T/events.json"
grep -q '"store_unavailable"' "$T/events.json" || fail "no store_unavailable event"
python3 - "$T/events.json" <<'PY' || fail "the store_unavailable event does not say from when to when"
import json, re, sys
raw = open(sys.argv[1]).read()
evs = [json.loads(l) for l in raw.splitlines() if l.strip()] if not raw.lstrip().startswith("[") else json.loads(raw)
if isinstance(evs, dict): evs = evs["events"]
e = [x for x in evs if x.get("kind") == "store_unavailable"]
assert len(e) == 1, e
t = e[0]["text"]
m = re.search(r"from (\S+) to (\S+) \(([0-9.]+) s", t)
assert m and 5 <= float(m.group(3)) <= 9, t
print(t)
PY
grep -q "the store takes writes again" "$T/daemon.log" || fail "no recovery line in the log"
log "PASS"
