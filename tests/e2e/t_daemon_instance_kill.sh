#!/usr/bin/env bash
# Instances killed during and after a rollout are replaced; the ceiling holds throughout (the
# floor may break for a moment: a crash is outside the engine's control) and the service heals.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 500ms
  health_deadline: 10s
  max_failures: 3
drain: {timeout: 2s}
stop: {grace: 1s}'
v1=$(echo "$strat" | spec w 1 4)
"$RO" apply "$v1" --wait --timeout 60s
python3 "$ROOT/tests/e2e/sampler.py" --sock "$DATA/rollout.sock" --service w --surge 1 --unavailable 0 --no-floor \
	>"$T/sampler.log" 2>&1 &
SAMPLER=$!

pid_of() { status_json w | jq_ "([i['pid'] for i in d['instances'] if i['revision']==$1 and i['state']=='ready'] + [0])[0]"; }
# kill_one REV: kills a ready instance of REV (retrying: the rollout may be stopping the one picked).
kill_one() {
	local p
	for _ in $(seq 1 50); do
		p=$(pid_of "$1")
		if [ "$p" != 0 ] && kill -9 "$p" 2>/dev/null; then victim=$p; return 0; fi
		sleep 0.05
	done
	return 1
}

log "kill an old instance mid-rollout"
# A slow rollout (min_ready 2s per wave, 4 waves) leaves a wide window to kill an old instance in.
v2=$(echo "$strat" | sed 's/min_ready: 500ms/min_ready: 2s/' | spec w 2 4)
"$RO" apply "$v2"
wait_until 20 has_rev w 2 || fail "v2 never started"
kill_one 1 || fail "no old instance to kill"
log "killed old pid $victim"
wait_until 60 state_is w complete || fail "rollout did not complete after a kill: $(ro_state w)"
[ "$(revisions_of w)" = "2:4" ] || fail "after rollout: $(revisions_of w)"

log "kill an instance after the rollout: replaced"
kill_one 2 || fail "no instance to kill"
gone() { [ "$(status_json w | jq_ "sum(1 for i in d['instances'] if i['pid']==$victim)")" = 0 ]; }
healed() { [ "$(status_json w | jq_ "d['counts']['available']")" = 4 ]; }
wait_until 20 gone || fail "victim still listed"
wait_until 20 healed || fail "not healed: $(revisions_of w)"
kill -0 "$victim" 2>/dev/null && fail "victim alive"
[ "$(revisions_of w)" = "2:4" ] || fail "after heal: $(revisions_of w)"
n=$(instance_pids | wc -l)
[ "$n" -eq 4 ] || fail "$n instance processes running, want 4"

kill -TERM $SAMPLER; wait $SAMPLER || { cat "$T/sampler.log"; fail "sampler found violations"; }
log ok
