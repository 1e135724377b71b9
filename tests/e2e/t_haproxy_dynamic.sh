#!/usr/bin/env bash
# With fewer server-template slots than instances, rollout adds servers (`add server
# hello/rollout-<id>`, enabled from the maintenance 2.6 starts them in) and deletes them once their
# instance is drained and gone: a rollout of 3 instances over a backend of 1 slot, under traffic,
# with no failed request, and no server of a stopped instance left behind.
set -u
. "$(dirname "$0")/haproxy_lib.sh"
command -v wrk >/dev/null || { echo "skip: wrk is not installed"; exit 77; }
write_haproxy_cfg 1
start_haproxy
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 300ms
drain: {timeout: 10s}
stop: {grace: 1s}'

# enabled servers: exactly 3, each an instance answering version $1; no server left in maintenance
# but the template slot
settled() {
	local n=0 addr
	for addr in $(servers | awk '$2 !~ /^MAINT/ {print $3}'); do
		[ "$(curl -fsS "http://$addr/")" = "hello from version $1" ] || return 1
		n=$((n + 1))
	done
	[ $n -eq 3 ] && [ "$(servers | grep -c MAINT)" -le 1 ]
}

"$RO" apply "$(echo "$strat" | haproxy_spec hello 1 3)" --wait --timeout 60s >/dev/null || fail "v1 apply"
wait_until 10 settled 1 || { servers; fail "v1 not served by 3 servers"; }
servers | grep -q '^rollout-' || { servers; fail "no server was added"; }

wrk -t2 -c16 -d60s --timeout 5s "$HURL" >"$T/wrk.out" 2>&1 &
WRK=$!
sleep 1
"$RO" apply "$(echo "$strat" | haproxy_spec hello 2 3)" --wait --timeout 60s >/dev/null || fail "v2 apply"
wait_until 10 settled 2 || { servers; fail "v2 not served by 3 servers, or servers left behind"; }
kill -INT $WRK
wait $WRK
cat "$T/wrk.out"
grep -q "requests in" "$T/wrk.out" || fail "wrk did not run"
grep -q "Socket errors" "$T/wrk.out" && fail "socket errors"
grep -q "Non-2xx or 3xx" "$T/wrk.out" && fail "non-2xx responses"
grep -q "HAProxy refused" "$T/daemon.log" && { grep "mod=lb" "$T/daemon.log"; fail "HAProxy refused a command"; }
servers
log "ok"
