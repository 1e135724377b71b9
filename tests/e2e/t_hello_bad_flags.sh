#!/usr/bin/env bash
# build/hello with bad flags (none, unknown, a bad port, latency, thread count or error rate, an
# extra argument): usage on stderr, nothing on stdout, exit 2.
set -u
. "$(dirname "$0")/lib.sh"
need_hello

for args in "" "--port 0 --bogus" "--port x" "--port 0 --latency 5x" "--port 0 --threads 17" \
	"--port 0 --error-rate 1.5" "--port 0 extra"; do
	# shellcheck disable=SC2086
	env -u PORT "$HELLO" $args >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	[ "$rc" = 2 ] || fail "hello $args: exit $rc, want 2"
	grep -q '^usage: hello' "$T/bad.err" || fail "hello $args: no usage on stderr"
	[ -s "$T/bad.out" ] && fail "hello $args: wrote to stdout"
done
log "ok"
