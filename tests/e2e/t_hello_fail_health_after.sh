#!/usr/bin/env bash
# build/hello --fail-health-after 700ms: /healthz answers 200 at first and 503 a second later.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --fail-health-after 700ms
[ "$(hello_status /healthz)" = 200 ] || fail "--fail-health-after: not healthy at first"
sleep 1
[ "$(hello_status /healthz)" = 503 ] || fail "--fail-health-after: still healthy after 1s"
kill "$PID"
hello_expect_exit "$PID" 0
log "ok"
