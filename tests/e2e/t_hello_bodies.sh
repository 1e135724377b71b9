#!/usr/bin/env bash
# build/hello reads request bodies: a 300 KB POST with Content-Length (large, so curl also tries
# Expect: 100-continue) and the same body as a chunked PUT are both answered.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

hello_start --version t1 --threads 2
head -c 300000 /dev/urandom >"$T/body"
[ "$(curl -s --data-binary @"$T/body" "$(hello_url /upload)")" = "hello from version t1" ] || fail "POST body"
[ "$(curl -s -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$T/body" "$(hello_url /)")" = \
	"hello from version t1" ] || fail "chunked PUT"
log "ok"
