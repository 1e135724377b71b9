#!/usr/bin/env bash
# Crash loops are bounded (issue 11.5): `/bin/false` with 2 replicas and no health check neither
# restarts in a tight loop nor reads "complete"; a completed service whose instances then exit at
# once backs off (100 ms doubling) and reads crash-looping with 0 of 2 available, and its restart
# count survives a daemon restart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

starts() { "$RO" events "$1" -o json | python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if l.strip() and json.loads(l)["kind"]=="instance_starting"))'; }
field() { status_json "$1" | jq_ "$2"; }

log "/bin/false, replicas 2, no health check"
cat >"$T/f.yaml" <<YAML
service: f
replicas: 2
lb: none
template:
  version: "1"
  command: ["/bin/false"]
stop: {grace: 1s}
YAML
"$RO" apply "$T/f.yaml"
sleep 10
n=$(starts f)
log "starts in 10 s: $n"
[ "$n" -le 10 ] || fail "$n starts in 10 s: a tight restart loop"
st=$(ro_state f)
[ "$st" != complete ] || fail "status says complete with $(field f "d['counts']['available']") available"
[ "$(field f "d['counts']['available']")" = 0 ] || fail "an instance that exits at once counted available"
[ "$(field f "d['health']")" != ok ] || fail "health ok with 0 available"
"$RO" status f | grep -q "health: .*0 of 2 available" || fail "status text: $("$RO" status f)"

log "a completed service whose instances then exit at once"
flag="$T/crash"
cat >"$T/c.yaml" <<YAML
service: c
replicas: 2
lb: none
template:
  version: "1"
  command: ["/bin/sh", "-c", "if [ -e $flag ]; then exit 1; fi; exec sleep 600"]
stop: {grace: 1s}
YAML
"$RO" apply "$T/c.yaml" --wait --timeout 30s
[ "$(ro_state c)" = complete ] || fail "not complete: $(ro_state c)"
touch "$flag"
before=$(starts c)
for p in $(status_json c | jq_ "' '.join(str(i['pid']) for i in d['instances'])"); do kill -9 "$p"; done
sleep 10
n=$(( $(starts c) - before ))
log "restarts in 10 s: $n"
# Per slot 0.1+0.2+0.4+0.8+1.6+3.2 s: 6 restarts in 6.3 s, the 7th at 12.7 s.
[ "$n" -ge 4 ] || fail "only $n restarts in 10 s: the service is not healed at all"
[ "$n" -le 16 ] || fail "$n restarts in 10 s: no backoff"
[ "$(ro_state c)" = complete ] || fail "rollout state $(ro_state c)"
[ "$(field c "d['health']")" = crash_looping ] || fail "health $(field c "d['health']") with $(field c "d['counts']['available']") available"
"$RO" status c | grep -q "health: crash-looping, 0 of 2 available" || fail "status text: $("$RO" status c)"
"$RO" status | grep -q "complete, crash-looping" || fail "services list: $("$RO" status)"
# read whole first: grep -q would close the pipe early, and curl's SIGPIPE fails it under pipefail
metrics=$(curl -s --unix-socket "$DATA/rollout.sock" http://x/metrics)
grep -q 'rollout_service_health{service="c",health="crash_looping"} 1' <<<"$metrics" ||
	fail "metrics: $(grep service_health <<<"$metrics")"

log "the restart count survives a daemon restart"
r_before=$(field c "max(i['restarts'] for i in d['instances'])")
[ "$r_before" -ge 5 ] || fail "restarts $r_before"
kill9_daemon
start_daemon
before=$(starts c)
sleep 5
r_after=$(field c "max(i['restarts'] for i in d['instances'])")
n=$(( $(starts c) - before ))
log "restarts before $r_before, after $r_after; $n restarts in 5 s after the daemon restart"
[ "$r_after" -ge "$r_before" ] || fail "restart count reset by a daemon restart: $r_before -> $r_after"
[ "$n" -le 4 ] || fail "$n restarts in 5 s after a daemon restart: the backoff was lost"
log ok
