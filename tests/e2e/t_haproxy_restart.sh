#!/usr/bin/env bash
# HAProxy restarted from its config file (every slot back to disabled) is re-synced: killed during
# a rollout and started again 2 s later, the rollout waits (its drains cannot be confirmed while
# HAProxy is away), re-syncs and completes long before drain.timeout; restarted at once while
# idle, the new process (new Pid) is noticed and given the service's servers again. A restarted
# daemon finds its servers by address and leaves them as they are.
set -euo pipefail
. "$(dirname "$0")/haproxy_lib.sh"

start_haproxy
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 1s
drain: {timeout: 30s}
stop: {grace: 1s}'

# serving VERSION: 4 enabled servers, every one an instance answering that version
serving() {
	local n=0 addr
	for addr in $(servers | awk '$2 !~ /^MAINT/ {print $3}'); do
		[ "$(curl -fsS "http://$addr/")" = "hello from version $1" ] || return 1
		n=$((n + 1))
	done
	[ $n -eq 4 ] && [ "$(curl -fsS "$HURL")" = "hello from version $1" ]
}

"$RO" apply "$(echo "$strat" | haproxy_spec hello 1 4)" --wait --timeout 60s >/dev/null
wait_until 10 serving 1 || { servers; fail "v1 not served through HAProxy"; }

log "v2 applied; HAProxy killed mid-rollout"
"$RO" apply "$(echo "$strat" | haproxy_spec hello 2 4)" >/dev/null
t0=$SECONDS
wait_until 10 has_rev hello 2 || fail "no v2 instance started"
stop_haproxy
sleep 2
[ "$(ro_state hello)" = progressing ] || fail "state $(ro_state hello) while HAProxy is away, want progressing"
# The outage shows in status (text and JSON) and as an event, not only in the daemon's log.
"$RO" status hello | grep -q "^load balancer: HAProxy does not answer" || { "$RO" status hello; fail "status shows no outage"; }
[ "$(status_json hello | jq_ "d['lb_error']['text'][:24]")" = "HAProxy does not answer:" ] || fail "status JSON lb_error"
"$RO" events hello | grep -q "load balancer: HAProxy does not answer" || fail "no lb_problem event"
log "HAProxy started again from its config file"
start_haproxy
wait_until 40 state_is hello complete || { servers; fail "rollout did not complete: $(ro_state hello)"; }
took=$((SECONDS - t0))
[ $took -lt 25 ] || fail "the rollout took ${took}s: it waited for drain.timeout instead of re-syncing"
grep -q "drain timeout" "$T/daemon.log" && fail "a drain ended by timeout"
grep -q "HAProxy does not answer" "$T/daemon.log" || fail "the outage was not noticed"
grep -q "HAProxy answers again\|HAProxy restarted" "$T/daemon.log" || fail "the return was not noticed"
wait_until 10 serving 2 || { servers; fail "v2 not served by 4 servers after the re-sync"; }
wait_until 5 eval '"$RO" events hello | grep -q "load balancer in sync again"' || fail "no lb_ok event"
[ "$(status_json hello | jq_ "'lb_error' in d")" = False ] || fail "status still shows an lb error"

log "HAProxy restarted at once while idle: the new Pid is noticed"
noticed() { grep -c "HAProxy restarted\|HAProxy answers again" "$T/daemon.log"; }
before=$(noticed)
stop_haproxy
start_haproxy
wait_until 10 serving 2 || { servers; fail "v2 not served again after a quick restart"; }
[ "$(noticed)" -gt "$before" ] || fail "the restart was not noticed"

log "the daemon killed and started again: it finds its servers by address and changes nothing"
# HAProxy's own check may show a transition ("UP 1/3") at any moment: compare the states alone.
settled() { servers | sed 's|_[0-9]*/[0-9]*||'; }
before=$(settled)
kill9_daemon
start_daemon
sleep 2.5
[ "$(settled)" = "$before" ] || { echo "$before"; servers; fail "the daemon's restart changed HAProxy's servers"; }
serving 2 || fail "v2 not served after the daemon's restart"
grep 'mod=lb' "$T/daemon.log"
log "ok (rollout completed ${took}s after apply, across a HAProxy restart)"
