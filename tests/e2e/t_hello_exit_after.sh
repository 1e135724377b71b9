#!/usr/bin/env bash
# build/hello --exit-after 300ms: serves at first, then exits 1 on its own.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --exit-after 300ms
[ "$(hello_status /)" = 200 ] || fail "--exit-after: not serving at first"
hello_expect_exit "$PID" 1
log "ok"
