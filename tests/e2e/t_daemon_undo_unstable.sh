#!/usr/bin/env bash
# Undo refusals say which they are: no such revision N; revision N never became stable (how its
# rollout ended), unless --force; no earlier stable revision. A refusal changes nothing; a stable
# revision and a forced one are gone to.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

strat='strategy:
  max_surge: 1
  health_deadline: 2s
stop: {grace: 1s}'
# undo_out SERVICE ARGS...: runs `rollout undo`, its output in $T/undo.out, its exit status in $urc.
undo_out() { set +e; "$RO" undo "$@" >"$T/undo.out" 2>&1; urc=$?; set -e; cat "$T/undo.out"; }
target_of() { status_json "$1" | jq_ "d['target_revision']"; }

"$RO" apply "$(echo "$strat" | spec un 1 2)" --wait --timeout 30s >/dev/null || fail "v1 did not complete"
undo_out un
[ $urc -eq 2 ] || fail "undo with nothing stable before exited $urc, want 2"
grep -q "no earlier stable revision than the current one (1)" "$T/undo.out" || fail "undo without an earlier stable revision"

log "v2 never becomes healthy: rolled back; v3 completes"
set +e
"$RO" apply "$(echo "$strat" | spec un 2 2 --fail-health)" --wait --timeout 30s >/dev/null 2>&1
set -e
[ "$(ro_state un)" = rolled_back ] || fail "v2: $(ro_state un)"
"$RO" apply "$(echo "$strat" | spec un 3 2)" --wait --timeout 30s >/dev/null || fail "v3 did not complete"

undo_out un --to-revision 9
[ $urc -eq 2 ] || fail "undo to revision 9 exited $urc, want 2"
grep -q "no such revision 9" "$T/undo.out" || fail "undo to a missing revision does not say so"

undo_out un --to-revision 2
[ $urc -eq 2 ] || fail "undo to the rolled back revision 2 exited $urc, want 2"
grep -q "revision 2 never became stable (its rollout 2 was rolled back: " "$T/undo.out" ||
	fail "the refusal does not say how revision 2 ended"
grep -q "rollout undo un --to-revision 2 --force" "$T/undo.out" || fail "the refusal does not name --force"
! grep -q "no such revision" "$T/undo.out" || fail "the refusal says no such revision"
[ "$(target_of un)" = 3 ] || fail "a refused undo changed the target: $(target_of un)"
[ "$(ro_state un)" = complete ] || fail "a refused undo changed the rollout: $(ro_state un)"

log "the API says the same; force must be a boolean"
api_undo() { curl -s --unix-socket "$DATA/rollout.sock" -X POST -d "$1" -o "$T/api.out" -w '%{http_code}' \
	http://localhost/v1/services/un/undo; }
code=$(api_undo '{"revision": 2}')
cat "$T/api.out"
[ "$code" = 409 ] && grep -q "never became stable" "$T/api.out" || fail "API undo to revision 2: $code"
code=$(api_undo '{"revision": 2, "force": "yes"}')
[ "$code" = 400 ] || fail "force: \"yes\" was not refused: $code $(cat "$T/api.out")"

log "to revision 1 (stable once): goes; to revision 2 with --force: goes"
"$RO" undo un --to-revision 1 --wait --timeout 30s >/dev/null || fail "undo to the stable revision 1 failed"
[ "$(revisions_of un)" = "1:2" ] || fail "after undo to 1: $(revisions_of un)"
undo_out un --to-revision 2 --force
[ $urc -eq 0 ] || fail "undo --force to revision 2 exited $urc"
[ "$(target_of un)" = 2 ] || fail "undo --force did not go to revision 2: $(target_of un)"
log "ok"
