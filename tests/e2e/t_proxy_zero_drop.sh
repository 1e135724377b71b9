#!/usr/bin/env bash
# Zero dropped requests: wrk with 64 connections through rollout proxy while backends are replaced
# one by one (start a new hello, add it, drain an old one, wait until the proxy reports it idle,
# stop it). No socket error and no non-2xx, with keep-alive clients, `Connection: close` clients and
# POST requests with bodies. DURATION (default 10) sets the seconds of each wrk run.
set -u
. "$(dirname "$0")/proxy_lib.sh"
command -v wrk >/dev/null || { echo "skip: wrk is not installed"; exit 77; }
DURATION=${DURATION:-10}

proxy_start
LP=$(free_port)
URL="http://127.0.0.1:$LP/"
# the live set: "id:rev:port:state" per backend, and the pid of each id's hello
declare -A HP
set_=()
next_id=1
add_backend() {
	hello_start "v$next_id"
	HP[$next_id]=$HPID
	set_+=("$next_id:$next_id:$HPORT:active")
	next_id=$((next_id + 1))
}
push() { [ "$(set_service z "$LP" "${set_[@]}")" -lt 300 ] || fail "PUT ${set_[*]}"; }

# replace the oldest backend: new one in, old one drained, confirmed idle, stopped, removed
replace_oldest() {
	add_backend
	push
	local old=${set_[0]} id
	id=${old%%:*}
	set_[0]="${old%:*}:draining"
	push
	local t0=$SECONDS
	while [ "$(inflight z "$id")" != 0 ]; do
		[ $((SECONDS - t0)) -lt 10 ] || fail "backend $id never drained"
		sleep 0.05
	done
	kill -TERM "${HP[$id]}"
	set_=("${set_[@]:1}")
	push
	log "replaced backend $id"
}

run() {
	local name=$1
	shift
	local out="$T/wrk.$name"
	wrk -t2 -c64 -d"${DURATION}s" --timeout 5s "$@" "$URL" >"$out" 2>&1 &
	local wpid=$!
	sleep 1
	local n=0
	while kill -0 "$wpid" 2>/dev/null && [ $n -lt 4 ]; do
		replace_oldest
		n=$((n + 1))
		sleep 1
	done
	wait "$wpid"
	cat "$out"
	[ $n -ge 2 ] || fail "$name: only $n replacements happened during the run"
	grep -q "requests in" "$out" || fail "$name: wrk did not run"
	grep -q "Socket errors" "$out" && fail "$name: socket errors"
	grep -q "Non-2xx or 3xx" "$out" && fail "$name: non-2xx responses"
	local total
	total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$out")
	[ "${total:-0}" -gt 1000 ] || fail "$name: only ${total:-0} requests"
	log "$name: $total requests, no error, $n backend replacements"
}

add_backend
add_backend
push
run keepalive
run close -H 'Connection: close'
run post -s "$ROOT/tests/e2e/post.lua"
s5=$(admin_body GET /v1/services/z/stats | json "sum(r['requests']['5xx'] for r in d['revisions'].values())")
[ "$s5" = 0 ] || fail "the proxy counted $s5 5xx responses"
log PASS
