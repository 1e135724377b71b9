#!/usr/bin/env bash
# Rollouts on real processes: v1 -> v2 completes, undo returns to v1, pause/resume/promote/abort
# do what DESIGN says, a third revision applied mid-rollout rolls over, a replicas change scales.
# A sampler checks the floor and the ceiling throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strategy() { # strategy MIN_READY [extra strategy lines]
	printf 'strategy:\n  max_surge: 1\n  max_unavailable: 0\n  min_ready: %s\n  health_deadline: 10s\n' "$1"
	shift
	for l in "$@"; do printf '  %s\n' "$l"; done
	printf 'drain: {timeout: 2s}\nstop: {signal: TERM, grace: 2s}\n'
}

answers() { # answers SERVICE VERSION: every instance answers with that version
	local ports
	ports=$(status_json "$1" | jq_ "' '.join(str(i['port']) for i in d['instances'])")
	[ -n "$ports" ] || return 1
	for p in $ports; do
		[ "$(curl -fsS "http://127.0.0.1:$p/")" = "hello from version $2" ] || return 1
	done
}

python3 "$ROOT/tests/e2e/sampler.py" --sock "$DATA/rollout.sock" --service web --surge 1 --unavailable 0 \
	>"$T/sampler.log" 2>&1 &
SAMPLER=$!

log "v1: first deploy"
v1=$(strategy 300ms "batches: [1, 50%]" | spec web 1 4)
"$RO" apply "$v1" --wait --timeout 60s
[ "$(revisions_of web)" = "1:4" ] || fail "after v1: $(revisions_of web)"
answers web 1 || fail "v1 answers"

log "v2: rolling update in batches"
v2=$(strategy 300ms "batches: [1, 50%]" | spec web 2 4)
"$RO" apply "$v2" --wait --timeout 60s
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"
answers web 2 || fail "v2 answers"
[ "$(status_json web | jq_ "d['stable_revision']")" = 2 ] || fail "v2 not stable"

log "undo: back to v1"
"$RO" undo web --wait --timeout 60s
[ "$(revisions_of web)" = "1:4" ] || fail "after undo: $(revisions_of web)"
[ "$(status_json web | jq_ "d['target_revision']")" = 1 ] || fail "undo target"
answers web 1 || fail "undo answers"

log "canary: pause_after [1], resume refused at the gate, promote continues"
v3=$(strategy 300ms "batches: [1, 50%]" "pause_after: [1]" | spec web 3 4)
# --wait returns at the canary pause (exit 4), naming the command that continues (issue 12.4)
set +e; timeout 60 "$RO" apply "$v3" --wait --timeout 50s >"$T/canary.out" 2>&1; rc=$?; set -e
[ $rc -eq 4 ] || fail "apply --wait at a canary pause exited $rc: $(cat "$T/canary.out")"
grep -q "paused (canary) at batch 1/3: continue with \`rollout promote web\`" "$T/canary.out" ||
	fail "apply --wait at a canary pause: $(cat "$T/canary.out")"
wait_until 30 state_is web paused || fail "v3 did not pause: $(ro_state web)"
[ "$(revisions_of web)" = "1:3 3:1" ] || fail "canary counts: $(revisions_of web)"
set +e; "$RO" resume web 2>"$T/resume.err"; rc=$?; set -e
[ $rc -eq 2 ] || fail "resume at a gate exited $rc"
grep -q promote "$T/resume.err" || fail "resume refusal does not hint promote: $(cat "$T/resume.err")"
sleep 1
[ "$(revisions_of web)" = "1:3 3:1" ] || fail "paused rollout moved: $(revisions_of web)"
"$RO" promote web
wait_until 60 state_is web complete || fail "v3 did not complete: $(ro_state web)"
[ "$(revisions_of web)" = "3:4" ] || fail "after v3: $(revisions_of web)"

log "pause by user mid-batch, resume"
v4=$(strategy 1500ms | spec web 4 4)
"$RO" apply "$v4"
"$RO" pause web
[ "$(ro_state web)" = paused ] || fail "pause"
before=$(revisions_of web)
sleep 2
[ "$(revisions_of web)" = "$before" ] || fail "moved while paused: $before -> $(revisions_of web)"
"$RO" resume web
wait_until 60 state_is web complete || fail "v4 did not complete"
[ "$(revisions_of web)" = "4:4" ] || fail "after v4: $(revisions_of web)"

log "abort at the canary gate: back to v4, and it stays there"
v5=$(strategy 300ms "batches: [1]" "pause_after: [1]" | spec web 5 4)
"$RO" apply "$v5"
wait_until 30 state_is web paused || fail "v5 did not pause"
"$RO" abort web
wait_until 30 state_is web aborted || fail "abort did not end: $(ro_state web)"
sleep 1
[ "$(revisions_of web)" = "4:4" ] || fail "after abort: $(revisions_of web)"
answers web 4 || fail "abort answers"

log "a third revision mid-rollout rolls over"
v6=$(strategy 2s | spec web 6 4)
v7=$(strategy 300ms | spec web 7 4)
"$RO" apply "$v6"
wait_until 20 has_rev web 6 || fail "v6 never started"
"$RO" apply "$v7" --wait --timeout 60s
[ "$(revisions_of web)" = "7:4" ] || fail "after v7: $(revisions_of web)"
"$RO" history web >"$T/history.txt"
grep -q superseded "$T/history.txt" || { cat "$T/history.txt"; fail "history does not show the superseded rollout"; }

log "replicas alone: scale without a new revision"
v7b=$(strategy 300ms | spec web 7 6)
rev_before=$(status_json web | jq_ "d['target_revision']")
"$RO" apply "$v7b" --wait --timeout 60s
[ "$(revisions_of web)" = "$rev_before:6" ] || fail "scale up: $(revisions_of web)"
v7c=$(strategy 300ms | spec web 7 2)
"$RO" apply "$v7c" --wait --timeout 60s
[ "$(revisions_of web)" = "$rev_before:2" ] || fail "scale down: $(revisions_of web)"

kill -TERM $SAMPLER; wait $SAMPLER || { cat "$T/sampler.log"; fail "sampler found violations"; }
cat "$T/sampler.log"

log "event retention: a restart with --keep-events 5 leaves the newest 5 (new ones then displace them)"
ev_ids() { "$RO" events web -o json | python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["id"]) for l in sys.stdin if l.strip()))'; }
before=$(ev_ids)
[ "$(echo "$before" | wc -w)" -gt 5 ] || fail "too few events to prune"
stop_daemon
start_daemon --keep-events 5
grep -q 'msg="pruned old events"' "$T/daemon.log" || fail "no pruning logged"
max=$(echo "$before" | tr ' ' '\n' | tail -1)
kept=$(for i in $(ev_ids); do if [ "$i" -le "$max" ]; then echo "$i"; fi; done | tr '\n' ' ' | sed 's/ $//')
nk=$(echo "$kept" | wc -w)
[ "$nk" -le 5 ] && [ "$kept" = "$(echo "$before" | tr ' ' '\n' | tail -n "$nk" | tr '\n' ' ' | sed 's/ $//')" ] ||
	fail "kept $kept of $before"
# The daemon's own steps since then are pruned in their commits: never much more than 5.
[ "$(ev_ids | wc -w)" -le 5 ] || fail "$(ev_ids | wc -w) events kept with --keep-events 5: $(ev_ids)"
log "ok"
