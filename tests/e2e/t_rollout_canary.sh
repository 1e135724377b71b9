#!/usr/bin/env bash
# A canary gate (pause_after: [1]) on real processes: `apply --wait` returns at the pause with exit
# 4, naming `rollout promote` (issue 12.4); one of 4 instances runs the new revision; `resume` is
# refused at the gate (exit 2, hinting promote) and nothing moves; `promote` completes it. A
# sampler sees the floor and the ceiling held throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
start_sampler web
deploy_v1 web 4

log "canary: pause_after [1], resume refused at the gate, promote continues"
v2=$(rolling_strategy 300ms "batches: [1, 50%]" "pause_after: [1]" | spec web 2 4)
set +e; timeout 60 "$RO" apply "$v2" --wait --timeout 50s >"$T/canary.out" 2>&1; rc=$?; set -e
[ $rc -eq 4 ] || fail "apply --wait at a canary pause exited $rc: $(cat "$T/canary.out")"
grep -q "paused (canary) at batch 1/3: continue with \`rollout promote web\`" "$T/canary.out" ||
	fail "apply --wait at a canary pause: $(cat "$T/canary.out")"
wait_until 30 state_is web paused || fail "v2 did not pause: $(ro_state web)"
[ "$(revisions_of web)" = "1:3 2:1" ] || fail "canary counts: $(revisions_of web)"
set +e; "$RO" resume web 2>"$T/resume.err"; rc=$?; set -e
[ $rc -eq 2 ] || fail "resume at a gate exited $rc"
grep -q promote "$T/resume.err" || fail "resume refusal does not hint promote: $(cat "$T/resume.err")"
sleep 1
[ "$(revisions_of web)" = "1:3 2:1" ] || fail "paused rollout moved: $(revisions_of web)"
"$RO" promote web
wait_until 60 state_is web complete || fail "v2 did not complete: $(ro_state web)"
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"

check_sampler
log "ok"
