#!/usr/bin/env bash
# Zero dropped requests through HAProxy on the fleet bench: HAProxy and wrk (64 keep-alive
# connections) in the control namespace, 4 hello instances on 2 namespace hosts over ssh, steered
# through the Runtime API during three rollouts and one automatic rollback (a version that never
# becomes healthy). No socket error, no non-2xx; afterwards every enabled server is a stable one.
set -u
. "$(dirname "$0")/netns_lib.sh"
. "$(dirname "$0")/haproxy_lib.sh"
command -v wrk >/dev/null || { echo "skip: wrk is not installed"; exit 77; }

fleet_up 2
HEXEC="ip netns exec $FCTL"
start_haproxy
fleet_start_daemon

extra="strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 300ms
  health_deadline: 5s
drain: {timeout: 10s}
stop: {grace: 2s}
$(fleet_targets)"
# fspec VERSION [hello flags]: the hello spec on the fleet hosts, steered through this HAProxy.
fspec() { local v=$1; shift; echo "$extra" | haproxy_spec hello "$v" 4 --host 0.0.0.0 "$@"; }
fcurl() { ip netns exec "$FCTL" curl -fsS -m 2 "$@"; }

# "ok" when the 4 enabled servers are all on the fleet hosts and answer version $1.
fleet_version() {
	local n=0 addr
	for addr in $(servers | awk '$2 !~ /^MAINT/ {print $3}'); do
		case $addr in "10.$FNET.0."*) ;; *) return 1 ;; esac
		[ "$(fcurl "http://$addr/")" = "hello from version $1" ] || return 1
		n=$((n + 1))
	done
	[ $n -eq 4 ]
}

log "v1: first deploy on the fleet through HAProxy"
"$RO" apply "$(fspec 1)" --wait --timeout 60s || fail "v1 apply"
wait_until 10 fleet_version 1 || { servers; fail "HAProxy does not serve v1 from 4 fleet servers"; }
[ "$(fcurl "$HURL")" = "hello from version 1" ] || fail "no answer through HAProxy"

ip netns exec "$FCTL" wrk -t2 -c64 -d120s --timeout 5s "$HURL" >"$T/wrk.out" 2>&1 &
WRK=$!
sleep 1
for v in 2 3 4; do
	log "v$v: rollout under load"
	"$RO" apply "$(fspec "$v")" --wait --timeout 60s || fail "v$v apply"
	[ "$(revisions_of hello)" = "$v:4" ] || fail "after v$v: $(revisions_of hello)"
done
log "v5: never healthy, rolled back automatically under load"
"$RO" apply "$(fspec 5 --fail-health)" --wait --timeout 60s >"$T/apply5.out" 2>&1
rc=$?
cat "$T/apply5.out"
[ $rc -eq 1 ] || fail "apply of a broken version exited $rc, want 1"
[ "$(ro_state hello)" = rolled_back ] || fail "state $(ro_state hello)"
sleep 1
kill -INT $WRK
wait $WRK
cat "$T/wrk.out"
grep -q "requests in" "$T/wrk.out" || fail "wrk did not run"
grep -q "Socket errors" "$T/wrk.out" && fail "socket errors"
grep -q "Non-2xx or 3xx" "$T/wrk.out" && fail "non-2xx responses"
total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$T/wrk.out")
[ "${total:-0}" -gt 1000 ] || fail "only ${total:-0} requests"
wait_until 10 fleet_version 4 || { servers; fail "after the rollback HAProxy does not serve v4 only"; }
servers
log "PASS: $total requests, no error, through 3 rollouts and a rollback on the fleet"
