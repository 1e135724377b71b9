#!/usr/bin/env bash
# Webhooks: JSON POSTs reach a local receiver on rollout started, completed, failed and rolled back,
# filtered per hook, retried with backoff when the receiver fails at first; a Slack-style hook gets
# {"text": ...}; a hook that never answers does not slow a rollout; neither the URL (a secret) nor
# a secret env value appears in the logs (JSON lines here), events or status.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon --log-json

DEAD=$(free_port) # nothing listens there
python3 "$ROOT/tests/e2e/receiver.py" --out "$T/hooks" --fail-first 2 >"$T/receiver.log" 2>&1 &
RECEIVER_PID=$!
wait_until 5 grep -q listening "$T/receiver.log" || { cat "$T/receiver.log"; fail "receiver did not start"; }
RPORT=$(awk '{print $2}' "$T/receiver.log")

extra="strategy:
  min_ready: 200ms
  health_deadline: 2s
notify:
  - {url: \"http://127.0.0.1:$RPORT/hook?token=s3cr3t-token\", events: [started, completed, failed, rolled_back]}
  - {url: \"http://127.0.0.1:$RPORT/slack\", slack: true, events: [completed]}
  - {url: \"http://127.0.0.1:$DEAD/never\"}"
v1=$(echo "$extra" | spec api 1 2)
sed -i 's|^  command: .*|&\n  env: {TOKEN: {value: hush-42-secret, secret: true}}|' "$v1"
grep -q hush-42 "$v1" || fail "no secret env in the spec"
t0=$SECONDS
"$RO" apply "$v1" --wait --timeout 30s >/dev/null
[ $((SECONDS - t0)) -le 5 ] || fail "a rollout with an unreachable hook took $((SECONDS - t0))s"

v2=$(echo "$extra" | spec api 2 2 --fail-health)
set +e; "$RO" apply "$v2" --wait --timeout 30s >/dev/null 2>&1; rc=$?; set -e
[ $rc -eq 1 ] || fail "broken v2 exited $rc"

# 6 deliveries: hook started/completed (v1), started/failed/rolled_back (v2), slack completed.
count() { [ -f "$T/hooks" ] && [ "$(wc -l <"$T/hooks")" -ge "$1" ]; }
wait_until 20 count 6 || { cat "$T/hooks" "$T/hooks.attempts" 2>/dev/null; fail "not every notification arrived"; }
sleep 1
cat "$T/hooks"
[ "$(wc -l <"$T/hooks")" -eq 6 ] || fail "more deliveries than events: $(cat "$T/hooks")"
ev() { python3 -c "
import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d['path'].startswith('/hook'):
        b=d['body']; print(b['event'], b['to_revision'], b['service'], b['state'])
" "$T/hooks" | sort; }
got=$(ev)
want=$(printf '%s\n' "completed 1 api complete" "failed 2 api rolling_back" "rolled_back 2 api rolled_back" \
	"started 1 api progressing" "started 2 api progressing" | sort)
[ "$got" = "$want" ] || fail "hook events: $got"
python3 -c "
import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if d['path']=='/hook?token=s3cr3t-token' and d['body']['event']=='failed':
        assert 'health_deadline' in d['body']['reason'] or 'failed' in d['body']['text'], d
    if d['path']=='/slack':
        assert list(d['body'])==['text'] and 'completed' in d['body']['text'], d
" "$T/hooks" || fail "bodies"
[ "$(grep -c '^500' "$T/hooks.attempts")" -eq 2 ] || fail "the receiver should have refused 2 attempts"
grep -q "application/json" "$T/hooks.attempts" || fail "no JSON content type"
grep -q 'retrying in 1000ms' "$T/daemon.log" || fail "no retry logged"
grep -q "host=127.0.0.1:$DEAD" "$T/daemon.log" || fail "no failure logged for the dead hook"
! grep -q "s3cr3t" "$T/daemon.log" || fail "the hook URL's token was logged"
grep -q '^{"ts"' "$T/daemon.log" || grep -q '^{' "$T/daemon.log" || fail "--log-json lines are not JSON"
for out in "$T/daemon.log" <("$RO" events api) <("$RO" status api -o json) <("$RO" history api); do
	! grep -q "hush-42" "$out" || fail "a secret env value leaked"
done
log "ok"
