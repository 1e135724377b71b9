#!/usr/bin/env bash
# The API rejects bad input with a clear error and changes nothing; one daemon per data dir;
# the socket is private; no daemon -> exit 3.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
set +e; "$RO" status >/dev/null 2>"$T/nod.err"; rc=$?; set -e
[ $rc -eq 3 ] || fail "status without a daemon exited $rc"
grep -q "rollout daemon" "$T/nod.err" || fail "no hint: $(cat "$T/nod.err")"
start_daemon
[ "$(stat -c %a "$DATA/rollout.sock")" = 600 ] || fail "socket mode $(stat -c %a "$DATA/rollout.sock")"
set +e; "$RO" daemon --data "$DATA" 2>"$T/second.err"; rc=$?; set -e
[ $rc -eq 2 ] || fail "second daemon exited $rc"
grep -q "already runs" "$T/second.err" || fail "second daemon message: $(cat "$T/second.err")"

S="$DATA/rollout.sock"
code() { curl -s -o "$T/body" -w '%{http_code}' --unix-socket "$S" "$@"; }
[ "$(code http://x/v1/nope)" = 404 ] || fail "404"
[ "$(code -X DELETE http://x/v1/services)" = 405 ] || fail "405"
[ "$(code -X POST -d 'not json' http://x/v1/apply)" = 400 ] || fail "400 not json"
grep -q "not JSON" "$T/body" || fail "400 message: $(cat "$T/body")"
[ "$(code -X POST -d '{"spec": 5}' http://x/v1/apply)" = 400 ] || fail "400 wrong type"
head -c 2000000 /dev/zero | tr '\0' a >"$T/big"
[ "$(code -X POST --data-binary @"$T/big" http://x/v1/apply)" = 413 ] || fail "413"
[ "$(code -X POST -d '{"revision": "x"}' http://x/v1/services/nope/undo)" = 404 ] || fail "undo unknown"

printf 'service: bad\nreplicas: many\ntemplate:\n  command: ["x"]\n  version: "1"\nstrategy:\n  max_surge: 125x\n  max_unavailble: 1\nlb: none\n' >"$T/bad.yaml"
set +e; "$RO" apply "$T/bad.yaml" 2>"$T/bad.err"; rc=$?; set -e
[ $rc -eq 2 ] || fail "invalid spec exited $rc"
[ "$(grep -c "bad.yaml:[0-9]*:[0-9]*:" "$T/bad.err")" -eq 3 ] || { cat "$T/bad.err"; fail "want three positioned errors"; }
grep -q "did you mean" "$T/bad.err" || fail "no did-you-mean"
[ "$(curl -s --unix-socket "$S" http://x/v1/services)" = '{"services": []}' ] || fail "invalid spec changed something"

log "a good apply, then bad input changes nothing"
f=$(echo 'strategy: {min_ready: 100ms}' | spec ok 1 2)
"$RO" apply "$f" --wait --timeout 30s
before=$(curl -s --unix-socket "$S" http://x/v1/services/ok/rollouts)
[ "$(code -X POST -d '{"spec": "service: ok\nreplicas: -1\n"}' http://x/v1/apply)" = 422 ] || fail "422"
[ "$(code -X POST http://x/v1/services/ok/promote)" = 409 ] || fail "promote when not paused"
[ "$(curl -s --unix-socket "$S" http://x/v1/services/ok/rollouts)" = "$before" ] || fail "state changed"
metrics=$(curl -s --unix-socket "$S" http://x/metrics) # whole: grep -q would SIGPIPE curl under pipefail
grep -q 'rollout_instances{service="ok",revision="1",state="ready"} 2' <<<"$metrics" || fail "metrics: $(head -20 <<<"$metrics")"

log "an apply that changes only fields outside the template says which (issue 11.8)"
f=$(printf 'strategy: {min_ready: 100ms}\nstop: {grace: 3s}\ndrain: {timeout: 5s}\n' | spec ok 1 2)
out=$("$RO" apply "$f")
[ "$out" = "ok: no new revision; updated: drain.timeout, stop.grace (revision 1)" ] || fail "apply said: $out"
python3 -c 'import json,sys; print(json.dumps({"spec": open(sys.argv[1]).read().replace("grace: 3s", "grace: 4s")}))' "$f" >"$T/req.json"
[ "$(code -X POST --data-binary @"$T/req.json" http://x/v1/apply)" = 200 ] || fail "apply: $(cat "$T/body")"
jq_ "(d['changed'], d['updated'], d['message'])" <"$T/body" >"$T/got"
[ "$(cat "$T/got")" = "(False, ['stop.grace'], 'no new revision; updated: stop.grace')" ] || fail "answer: $(cat "$T/body")"
out=$("$RO" apply "$f")
[ "$out" = "ok: no new revision; updated: stop.grace (revision 1)" ] || fail "apply back said: $out"
out=$("$RO" apply "$f")
[ "$out" = "ok: unchanged (revision 1)" ] || fail "the same apply said: $out"
log ok
