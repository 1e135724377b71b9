#!/usr/bin/env bash
# rollout proxy: a listen address another program holds (python3's http.server) is kept, not
# refused: the PUT succeeds, the service's "listener" says "address already in use" since when,
# /v1/health counts it, and the proxy binds it within ~1 s of the port being freed. A service
# moved to a busy address keeps serving on its old one until the new one binds.
set -u
. "$(dirname "$0")/proxy_lib.sh"

# stray PORT: python3's http.server holding 127.0.0.1:PORT; sets SPID
stray() {
	mkdir -p "$T/stray"
	echo "the stray server" >"$T/stray/index.html"
	python3 -m http.server "$1" --bind 127.0.0.1 --directory "$T/stray" >>"$T/stray.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	for _ in $(seq 100); do
		curl -s --max-time 1 "http://127.0.0.1:$1/" | grep -q "the stray server" && return 0
		sleep 0.05
	done
	fail "the stray server did not start on $1"
}
listener() { admin_body GET "/v1/services/$1" | json "d['listener']$2"; }
# answers_within MS URL TEXT: polls until URL answers TEXT; prints the ms it took
answers_within() {
	local t0; t0=$(date +%s%N)
	for _ in $(seq $(($1 / 50))); do
		if [ "$(curl -s --max-time 1 "$2")" = "$3" ]; then echo $((($(date +%s%N) - t0) / 1000000)); return 0; fi
		sleep 0.05
	done
	return 1
}

proxy_start
hello_start A; PA=$HPORT
L1=$(free_port)
stray "$L1"; S1=$SPID

# 1. a new service on a busy address: taken (201), not bound, retried
[ "$(set_service web "$L1" "1:1:$PA:active")" = 201 ] || fail "a busy listen address was refused"
[ "$(listener web "['bound']")" = False ] || fail "listener reported bound"
[ "$(listener web "['error']")" = "address already in use" ] || fail "listener error: $(listener web "")"
since=$(listener web "['since']")
now=$(date +%s%3N)
[ "$since" -gt $((now - 10000)) ] && [ "$since" -le "$now" ] || fail "since $since is not about now ($now)"
[ "$(admin_body GET /v1/health | json "d['unbound_listeners']")" = 1 ] || fail "health does not count it"
sleep 1.5 # retries meanwhile do not change since
[ "$(listener web "['since']")" = "$since" ] || fail "since moved"
[ "$(curl -s --max-time 1 "http://127.0.0.1:$L1/")" = "the stray server" ] || fail "stray lost its port"
grep -q "service web: listen 127.0.0.1:$L1: address already in use; trying again every 1000 ms" "$T/proxy.log" ||
	fail "the proxy log does not say so"

kill "$S1"
ms=$(answers_within 3000 "http://127.0.0.1:$L1/" "hello from version A") || fail "not bound 3 s after the port was freed"
log "bound $ms ms after the port was freed"
[ "$ms" -le 1500 ] || fail "took $ms ms, want the 1 s retry"
[ "$(listener web "['bound']")" = True ] || fail "listener not reported bound"
[ "$(admin_body GET /v1/health | json "d['unbound_listeners']")" = 0 ] || fail "health still counts it"

# 2. moved to a busy address: the old one serves until the new one binds
L2=$(free_port)
stray "$L2"; S2=$SPID
[ "$(set_service web "$L2" "1:1:$PA:active")" = 200 ] || fail "moving to a busy address was refused"
[ "$(listener web "['serving']")" = "127.0.0.1:$L1" ] || fail "not said to serve on the old address"
[ "$(curl -s --max-time 2 "http://127.0.0.1:$L1/")" = "hello from version A" ] || fail "the old address stopped serving"
kill "$S2"
answers_within 3000 "http://127.0.0.1:$L2/" "hello from version A" >/dev/null || fail "the new address did not bind"
[ "$(listener web "['bound']")" = True ] || fail "not bound after the move"
curl -s --max-time 1 "http://127.0.0.1:$L1/" >/dev/null && fail "the old address still answers"

# 3. DELETE of a service still waiting to bind: nothing keeps retrying it
L3=$(free_port)
stray "$L3"; S3=$SPID
[ "$(set_service api "$L3" "2:1:$PA:active")" = 201 ] || fail "api"
[ "$(admin_status DELETE /v1/services/api)" = 200 ] || fail "DELETE"
kill "$S3"
sleep 1.5
curl -s --max-time 1 "http://127.0.0.1:$L3/" >/dev/null && fail "a deleted service bound its address"
[ "$(admin_body GET /v1/health | json "d['unbound_listeners']")" = 0 ] || fail "health counts a deleted service"
log "ok"
