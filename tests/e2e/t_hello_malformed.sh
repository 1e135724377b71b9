#!/usr/bin/env bash
# build/hello refuses malformed requests: each answered 400 with Connection: close and the
# connection closed at once (bare LF, double space, folding, space before colon, two
# Content-Lengths, Content-Length with chunked, a bad chunk size, no Host, garbage); a head over
# 16 KiB gets 431; it still serves afterwards.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --version t1 --threads 2
# hello_raw returns at once only if the server closes
for req in 'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\nHost: a\n\n' 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n' \
	'GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n' 'GET / HTTP/1.1\r\nHost : a\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' \
	'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' 'BAD\r\n\r\n'; do
	t0=$(now_ms)
	ans=$(hello_raw "$req")
	echo "$ans" | head -1 | grep -q '^HTTP/1.1 400 ' || fail "malformed request not 400: $req -> $ans"
	echo "$ans" | grep -q $'^Connection: close\r$' || fail "400 without Connection: close: $req"
	[ $(($(now_ms) - t0)) -lt 2000 ] || fail "connection not closed after 400: $req"
done
# a head larger than 16 KiB
{ printf 'GET /'; head -c 20000 /dev/zero | tr '\0' a; } >"$T/big"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$T/big" >&3
timeout 3 head -1 <&3 | grep -q '^HTTP/1.1 431 ' || fail "oversized head not 431"
exec 3<&-
[ "$(curl -s "$(hello_url /)")" = "hello from version t1" ] || fail "still serving after bad requests"
log "ok"
