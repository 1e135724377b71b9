#!/usr/bin/env bash
# build/hello --error-rate 0.5: exactly 50 of 100 requests to / answer 500; /healthz is not
# counted and stays 200.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --error-rate 0.5
[ "$(hello_status /healthz)" = 200 ] || fail "--error-rate: /healthz"
for _ in $(seq 100); do
	printf 'url = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$(hello_url /)"
done >"$T/cfg"
codes=$(curl -s -K "$T/cfg" | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
[ "$codes" = "200=50 500=50 " ] || fail "--error-rate 0.5 over 100 requests: $codes"
kill "$PID"
hello_expect_exit "$PID" 0
log "ok"
