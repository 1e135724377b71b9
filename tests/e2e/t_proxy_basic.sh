#!/usr/bin/env bash
# rollout proxy basics: admin API, round-robin between two hello backends, draining (no new
# requests, in-flight ones finish with Connection: close, inflight counted exactly), removal, 503
# without backends, bad admin bodies change nothing, DELETE, SIGTERM finishing in-flight work.
set -u
. "$(dirname "$0")/proxy_lib.sh"

# wait_inflight SERVICE ID N: until the proxy counts N requests in flight on backend ID (3 s)
wait_inflight() {
	for _ in $(seq 60); do
		[ "$(inflight "$1" "$2")" = "$3" ] && return 0
		sleep 0.05
	done
	fail "backend $2 of $1: inflight '$(inflight "$1" "$2")', expected $3"
}

proxy_start
hello_start A; PA=$HPORT
hello_start B; PB=$HPORT
hello_start SLOW --latency 1500ms; PS=$HPORT
LP=$(free_port)
URL="http://127.0.0.1:$LP/"

[ "$(set_service web "$LP" "1:1:$PA:active" "2:2:$PB:active")" = 201 ] || fail "PUT did not create the service"
[ "$(set_service web "$LP" "1:1:$PA:active" "2:2:$PB:active")" = 200 ] || fail "a repeated PUT is not idempotent"

# requests alternate between the two backends
seq_=""
for _ in 1 2 3 4 5 6; do seq_="$seq_$(curl -s --max-time 5 "$URL" | sed 's/hello from version //')"; done
log "answers: $seq_"
case "$seq_" in ABABAB | BABABA) ;; *) fail "requests do not alternate: $seq_" ;; esac
# and on one keep-alive connection too
ka=$(curl -s --max-time 5 "$URL" "$URL" "$URL" "$URL" | sed 's/hello from version //' | tr -d '\n')
case "$ka" in ABAB | BABA) ;; *) fail "keep-alive requests do not alternate: $ka" ;; esac

# bad admin bodies: 400 with a message, nothing changes
for bad in '{' '{"listen":"nowhere"}' '{"listen":"127.0.0.1:1","backends":[{"id":1,"addr":"x"}]}' \
	'{"listen":"127.0.0.1:1","backends":[{"id":1,"addr":"127.0.0.1:2"},{"id":1,"addr":"127.0.0.1:3"}]}' \
	'{"listen":"127.0.0.1:1","backends":[{"id":1,"addr":"127.0.0.1:2","state":"gone"}]}' \
	'{"listen":"127.0.0.1:1","protocol":"udp"}' '{"listen":"127.0.0.1:1","extra":1}'; do
	out=$(admin PUT /v1/services/web "$bad")
	[ "$(echo "$out" | tail -1)" = 400 ] || fail "bad body $bad: $(echo "$out" | tail -1)"
	echo "$out" | sed '$d' | grep -q '"error"' || fail "no error message for $bad"
done
n=$(admin_body GET /v1/services/web | json "len(d['backends'])")
[ "$n" = 2 ] || fail "a bad body changed the service ($n backends)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 200 ] || fail "service broken after bad bodies"

# drain A: every new request goes to B
[ "$(set_service web "$LP" "1:1:$PA:draining" "2:2:$PB:active")" = 200 ] || fail "drain PUT"
for _ in 1 2 3 4; do
	v=$(curl -s --max-time 5 "$URL")
	[ "$v" = "hello from version B" ] || fail "a draining backend got a request: $v"
done
[ "$(inflight web 1)" = 0 ] || fail "draining backend A shows inflight $(inflight web 1)"
st=$(admin_body GET /v1/services/web/stats | json "[b['state'] for b in d['backends'] if b['id']==1][0]")
[ "$st" = draining ] || fail "backend 1 state $st"

# an in-flight request on a backend set draining: finishes, counted, gets Connection: close
[ "$(set_service web "$LP" "3:3:$PS:active")" = 200 ] || fail "PUT slow"
curl -s -D "$T/slow.head" -o "$T/slow.body" --max-time 10 "$URL" &
cpid=$!
wait_inflight web 3 1
[ "$(set_service web "$LP" "3:3:$PS:draining" "2:2:$PB:active")" = 200 ] || fail "drain slow"
[ "$(curl -s --max-time 5 "$URL")" = "hello from version B" ] || fail "new request did not go to B"
[ "$(inflight web 3)" = 1 ] || fail "in-flight request on the draining backend lost: $(inflight web 3)"
wait $cpid || fail "the in-flight request failed"
grep -q "hello from version SLOW" "$T/slow.body" || fail "slow answer: $(cat "$T/slow.body")"
grep -qi '^connection: close' "$T/slow.head" || fail "no Connection: close from a draining backend"
[ "$(inflight web 3)" = 0 ] || fail "inflight after completion: $(inflight web 3)"

# removal while in flight: the request finishes, counted under draining until done, then forgotten
[ "$(set_service web "$LP" "3:3:$PS:active")" = 200 ] || fail "re-activate 3"
curl -s -o "$T/slow2.body" --max-time 10 "$URL" &
cpid=$!
wait_inflight web 3 1
[ "$(set_service web "$LP" "2:2:$PB:active")" = 200 ] || fail "remove 3"
[ "$(inflight web 3)" = 1 ] || fail "removed backend with a request in flight: inflight '$(inflight web 3)'"
st=$(admin_body GET /v1/services/web/stats | json "[b['state'] for b in d['backends'] if b['id']==3][0]")
[ "$st" = draining ] || fail "removed busy backend shows state $st"
wait $cpid || fail "a request on a removed backend failed"
grep -q SLOW "$T/slow2.body" || fail "answer from the removed backend: $(cat "$T/slow2.body")"
for _ in $(seq 40); do [ -z "$(inflight web 3)" ] && break; sleep 0.05; done
[ -z "$(inflight web 3)" ] || fail "removed backend still listed after its last request"

# no backend: 503
[ "$(set_service web "$LP")" = 200 ] || fail "empty set"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL")" = 503 ] || fail "no 503 without backends"

# health carries a boot id
bid=$(admin_body GET /v1/health | json "d['boot_id']")
[ ${#bid} -ge 16 ] || fail "boot id: $bid"

# DELETE closes the listener
[ "$(admin_status DELETE /v1/services/web)" = 200 ] || fail "DELETE"
sleep 0.1
curl -s -o /dev/null --max-time 2 "$URL" && fail "listener still open after DELETE"
[ "$(admin_status GET /v1/services/web/stats)" = 404 ] || fail "stats of a deleted service"

# TCP mode: byte streams, least connections, draining, and `close` of a backend's connections
LT=$(free_port)
[ "$(admin_status PUT /v1/services/tcp "{\"listen\":\"127.0.0.1:$LT\",\"protocol\":\"tcp\",\"backends\":$(backends_json "1:1:$PA:active" "2:2:$PB:active")}")" = 201 ] || fail "PUT tcp"
tseq=""
for _ in 1 2 3 4; do tseq="$tseq$(curl -s --max-time 5 "http://127.0.0.1:$LT/" | sed 's/hello from version //')"; done
case "$tseq" in ABAB | BABA) ;; *) fail "tcp connections do not alternate: $tseq" ;; esac
[ "$(admin_status PUT /v1/services/tcp "{\"listen\":\"127.0.0.1:$LT\",\"protocol\":\"tcp\",\"backends\":$(backends_json "1:1:$PA:draining" "2:2:$PB:active")}")" = 200 ] || fail "drain tcp"
for _ in 1 2 3; do
	[ "$(curl -s --max-time 5 "http://127.0.0.1:$LT/")" = "hello from version B" ] || fail "tcp: a draining backend got a connection"
done
# a held connection counts as in flight until the admin closes it
python3 - "$LT" "$ADMIN" <<'PY' || fail "tcp close command"
import socket, sys, time, subprocess, json
port, admin = int(sys.argv[1]), sys.argv[2]
def stats():
    out = subprocess.run(["curl", "-s", "--unix-socket", admin, "http://p/v1/services/tcp/stats"], capture_output=True).stdout
    return {b["id"]: b["inflight"] for b in json.loads(out)["backends"]}
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
s.settimeout(5)
assert b"version B" in s.recv(4096)
assert stats()[2] == 1, stats()
subprocess.run(["curl", "-s", "-X", "POST", "--unix-socket", admin, "http://p/v1/services/tcp/backends/2/close"], check=True, capture_output=True)
assert s.recv(4096) == b"", "connection not closed"
time.sleep(0.1)
assert stats()[2] == 0, stats()
PY
[ "$(admin_status DELETE /v1/services/tcp)" = 200 ] || fail "DELETE tcp"

# SIGTERM: stop accepting, finish in-flight, exit
LP2=$(free_port)
[ "$(set_service web2 "$LP2" "3:3:$PS:active")" = 201 ] || fail "web2"
curl -s -o "$T/slow3.body" --max-time 10 "http://127.0.0.1:$LP2/" &
cpid=$!
wait_inflight web2 3 1
kill -TERM "$PROXY_PID"
sleep 0.2
curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$LP2/" && fail "still accepting after SIGTERM"
wait $cpid || fail "in-flight request cut by SIGTERM"
grep -q SLOW "$T/slow3.body" || fail "in-flight answer after SIGTERM: $(cat "$T/slow3.body")"
for _ in $(seq 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PROXY_PID" 2>/dev/null && fail "the proxy did not exit after SIGTERM"
wait "$PROXY_PID"
rc=$?
[ $rc = 0 ] || fail "the proxy exited with status $rc after SIGTERM: $(tail -5 "$T/proxy.log")"
log "PASS"
