#!/usr/bin/env bash
# build/hello with HELLO_START_DELAY=400ms listens only after the delay.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

t0=$(now_ms)
HELLO_ENV="HELLO_START_DELAY=400ms" hello_start
[ $(($(now_ms) - t0)) -ge 400 ] || fail "--start-delay: listening after $(($(now_ms) - t0))ms"
kill "$PID"
hello_expect_exit "$PID" 0
log "ok"
