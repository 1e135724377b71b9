#!/usr/bin/env bash
# build/hello --fail-health: /healthz answers 503 while / still answers 200; SIGINT stops it with
# exit 0. The same settings come from the environment (PORT, HELLO_VERSION, HELLO_FAIL_HEALTH=1).
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --fail-health
[ "$(hello_status /healthz)" = 503 ] || fail "--fail-health: /healthz not 503"
[ "$(hello_status /)" = 200 ] || fail "--fail-health: / not 200"
port=$PORT
kill -INT "$PID"
hello_expect_exit "$PID" 0

PORT=$port HELLO_VERSION=fromenv HELLO_FAIL_HEALTH=1 "$HELLO" >"$T/env.out" 2>&1 &
PID=$!
PORT=$port
for _ in $(seq 100); do grep -q listening "$T/env.out" && break; sleep 0.05; done
grep -q "^hello fromenv listening on 127.0.0.1:$port\$" "$T/env.out" || fail "env settings: $(cat "$T/env.out")"
[ "$(hello_status /healthz)" = 503 ] || fail "HELLO_FAIL_HEALTH=1: /healthz not 503"
kill -TERM "$PID"
hello_expect_exit "$PID" 0
log "ok"
