#!/usr/bin/env bash
# The example app build/hello answers: its listening line, GET / with the version in the body and
# in X-Version, any path, /healthz, HEAD; SIGTERM then stops it promptly with exit 0.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --version t1 --threads 2
[ "$(cat "$HELLO_OUT")" = "hello t1 listening on 127.0.0.1:$PORT" ] || fail "listening line: $(cat "$HELLO_OUT")"
[ "$(curl -s "$(hello_url /)")" = "hello from version t1" ] || fail "GET / body"
[ "$(curl -s "$(hello_url /some/path?x=1)")" = "hello from version t1" ] || fail "GET /some/path body"
curl -s -D "$T/h" -o /dev/null "$(hello_url /)"
grep -q $'^X-Version: t1\r$' "$T/h" || fail "no X-Version header: $(cat "$T/h")"
grep -q '^HTTP/1.1 200 ' "$T/h" || fail "GET / status: $(head -1 "$T/h")"
[ "$(curl -s "$(hello_url /healthz)")" = "ok" ] || fail "/healthz body"
[ "$(hello_status /healthz)" = 200 ] || fail "/healthz status"
[ "$(curl -s -I "$(hello_url /)" | grep -c '^X-Version: t1')" = 1 ] || fail "HEAD /"

kill -TERM "$PID"
hello_expect_exit "$PID" 0
log "ok"
