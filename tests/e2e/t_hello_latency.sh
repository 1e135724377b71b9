#!/usr/bin/env bash
# build/hello --latency 500ms on one thread: /healthz is not delayed; 8 parallel requests to / are
# each delayed without blocking the others (all done within 2.5 s); SIGTERM with a request in
# flight still answers it, then exits 0.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --latency 500ms --threads 1
t0=$(now_ms)
[ "$(hello_status /healthz)" = 200 ] || fail "--latency: /healthz"
[ $(($(now_ms) - t0)) -lt 400 ] || fail "--latency delayed /healthz"
t0=$(now_ms)
cpids=()
for i in $(seq 8); do
	hello_status / >"$T/lat.$i" &
	cpids+=($!)
done
wait "${cpids[@]}"
el=$(($(now_ms) - t0))
[ "$(cat "$T"/lat.* | tr -d '\n')" = 200200200200200200200200 ] || fail "--latency answers: $(cat "$T"/lat.*)"
[ "$el" -ge 500 ] && [ "$el" -lt 2500 ] || fail "--latency: 8 parallel 500ms requests took ${el}ms"

hello_status / >"$T/inflight" &
cpid=$!
sleep 0.2
kill -TERM "$PID"
wait "$cpid"
[ "$(cat "$T/inflight")" = 200 ] || fail "in-flight request during SIGTERM: $(cat "$T/inflight")"
hello_expect_exit "$PID" 0
log "ok"
