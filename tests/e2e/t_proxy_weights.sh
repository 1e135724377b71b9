#!/usr/bin/env bash
# rollout proxy weights: two slow hello backends with weights 1 and 3 set through the admin API;
# concurrent requests that stay outstanding split about 1:3 (HTTP: requests counted by the
# proxy's per-backend stats; TCP: open connections). Bad weights are refused with nothing changed;
# a change of weight alone keeps the backend's counters.
set -u
. "$(dirname "$0")/proxy_lib.sh"

proxy_start
hello_start LIGHT --latency 1500ms; PL=$HPORT
hello_start HEAVY --latency 1500ms; PH=$HPORT
LP=$(free_port)
URL="http://127.0.0.1:$LP/"

# put_weights PROTOCOL LISTEN_PORT W1 W2: PUT service "w" (or "wt" for tcp); prints the status.
put_weights() {
	local name=w
	[ "$1" = tcp ] && name=wt
	admin_status PUT "/v1/services/$name" "{\"listen\":\"127.0.0.1:$2\",\"protocol\":\"$1\",\"backends\":[
		{\"id\":1,\"revision\":1,\"addr\":\"127.0.0.1:$PL\",\"weight\":$3},
		{\"id\":2,\"revision\":1,\"addr\":\"127.0.0.1:$PH\",\"weight\":$4}]}"
}
# ratio_ok LIGHT HEAVY: the heavy backend got between 2x and 4.5x the light one (exact is 3x)
ratio_ok() { [ "$1" -gt 0 ] && [ $(($2 * 10)) -ge $(($1 * 20)) ] && [ $(($2 * 10)) -le $(($1 * 45)) ]; }

[ "$(put_weights http "$LP" 1 3)" = 201 ] || fail "PUT with weights"
w=$(admin_body GET /v1/services/w | json "[b['weight'] for b in d['backends']]")
[ "$w" = "[1, 3]" ] || fail "weights shown: $w"

# bad weights: 400 naming the field, nothing changed
for bad in 0 257 -1 '"3"' 1.5 null; do
	out=$(admin PUT /v1/services/w "{\"listen\":\"127.0.0.1:$LP\",\"backends\":[{\"id\":2,\"addr\":\"127.0.0.1:$PH\",\"weight\":$bad}]}")
	[ "$(echo "$out" | tail -1)" = 400 ] || fail "weight $bad: status $(echo "$out" | tail -1)"
	echo "$out" | grep -q 'backends\[0\].weight: an integer from 1 to 256 is required' || fail "weight $bad: $out"
done
w=$(admin_body GET /v1/services/w | json "[b['weight'] for b in d['backends']]")
[ "$w" = "[1, 3]" ] || fail "a bad weight changed the service: $w"

# HTTP: 40 concurrent requests, each outstanding for 1.5 s
pids=()
for i in $(seq 40); do
	curl -s -o "$T/r.$i" --max-time 20 "$URL" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a request failed"; done
counts=$(admin_body GET /v1/services/w/stats | json "' '.join(str(b['requests']['2xx']) for b in sorted(d['backends'], key=lambda b: b['id']))")
read -r nl nh <<<"$counts"
log "http: light $nl, heavy $nh"
[ $((nl + nh)) = 40 ] || fail "http: $nl + $nh requests counted, want 40"
ratio_ok "$nl" "$nh" || fail "http: the split $nl:$nh is not about 1:3"
[ "$(grep -l HEAVY "$T"/r.* | wc -l)" = "$nh" ] || fail "answers from HEAVY do not match the stats"

# a change of weight alone keeps the backends (and their counters)
[ "$(put_weights http "$LP" 2 2)" = 200 ] || fail "PUT new weights"
c=$(admin_body GET /v1/services/w/stats | json "' '.join(str(b['requests']['2xx']) + ':' + str(b['weight']) for b in sorted(d['backends'], key=lambda b: b['id']))")
[ "$c" = "$nl:2 $nh:2" ] || fail "after a weight change: $c (want $nl:2 $nh:2)"

# TCP: 40 connections held open split by open-connection count
LT=$(free_port)
[ "$(put_weights tcp "$LT" 1 3)" = 201 ] || fail "PUT tcp with weights"
python3 - "$LT" "$ADMIN" <<'PY' || fail "tcp weights"
import json, socket, subprocess, sys, time
port, admin = int(sys.argv[1]), sys.argv[2]
def inflight():
    out = subprocess.run(["curl", "-s", "--unix-socket", admin, "http://p/v1/services/wt/stats"],
                         capture_output=True).stdout
    return {b["id"]: b["inflight"] for b in json.loads(out)["backends"]}
socks = []
for _ in range(40):
    socks.append(socket.create_connection(("127.0.0.1", port)))
for _ in range(100):
    f = inflight()
    if f.get(1, 0) + f.get(2, 0) == 40:
        break
    time.sleep(0.05)
light, heavy = f.get(1, 0), f.get(2, 0)
print("tcp: light %d, heavy %d" % (light, heavy))
assert light + heavy == 40, f
assert light > 0 and 2 * light <= heavy <= 4.5 * light, f
for s in socks:
    s.close()
PY
log "PASS"
