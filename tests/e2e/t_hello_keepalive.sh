#!/usr/bin/env bash
# build/hello keeps connections alive: a second URL reuses the first connection; pipelined
# requests (one with a chunked body) are answered in order; HTTP/1.0 closes unless it asked for
# keep-alive.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --version t1 --threads 2
[ "$(curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' "$(hello_url /)" "$(hello_url /healthz)")" = "1 0 " ] ||
	fail "keep-alive: connection not reused"
ans=$(hello_raw 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
[ "$(echo "$ans" | grep -c '^HTTP/1.1 200 ')" = 4 ] || fail "pipelined: $ans"
[ "$(echo "$ans" | tr -d '\r' | grep -E '^(hello|ok)' | tr '\n' ' ')" = \
	"hello from version t1 ok hello from version t1 hello from version t1 " ] || fail "pipelined order: $ans"
hello_raw 'GET / HTTP/1.0\r\n\r\n' | grep -q $'^Connection: close\r$' || fail "HTTP/1.0 without keep-alive must close"
[ "$(curl -s -0 -H 'Connection: keep-alive' -o /dev/null -o /dev/null -w '%{num_connects} ' "$(hello_url /)" "$(hello_url /)")" = \
	"1 0 " ] || fail "HTTP/1.0 with Connection: keep-alive: connection not reused"
log "ok"
