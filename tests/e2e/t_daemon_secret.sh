#!/usr/bin/env bash
# Secret env values stay out of the database: after applies, kill -9 and a normal stop, undo to an
# older revision and back, the values are in no database file (state.db, -wal, -shm, nor its SQL
# dump) and nowhere else in the data directory as written; the 0600 secrets file holds them (hex),
# and each instance, started before or after a restart, still gets its revision's value. A
# missing secrets file is a clear error at load, not an empty value.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon

S1="hush-41-one-$RANDOM$RANDOM"
S2="hush-41-two-$RANDOM$RANDOM"
printf '%s\n%s\n' "$S1" "$S2" >"$T/pattern" # grep -f: the secrets are on no command line of ours

# v1: flow style; v2: block style, a comment, a quoted value.
f1=$(spec sec 1 2 <<YAML
strategy: {min_ready: 100ms}
YAML
)
sed -i "s|^  command: .*|&\n  env: {PLAIN: visible, TOKEN: {value: $S1, secret: true}}|" "$f1"
f2=$(spec sec 2 2 <<YAML
strategy: {min_ready: 100ms}
YAML
)
sed -i "s|^  command: .*|&\n  env:\n    PLAIN: visible # not secret\n    TOKEN:\n      secret: true\n      value: \"$S2\"|" "$f2"
grep -q -F "$S1" "$f1" && grep -q -F "$S2" "$f2" || fail "no secret in the specs"

# Every instance's environment has TOKEN=<want>; instances are those the daemon reports.
env_is() {
	local want=$1 pids
	pids=$(status_json sec | jq_ "' '.join(str(i['pid']) for i in d['instances'])")
	[ -n "$pids" ] || return 1
	for p in $pids; do
		tr '\0' '\n' <"/proc/$p/environ" | grep -qx "TOKEN=$want" || return 1
	done
}
# The secrets are nowhere in the data directory as written (binary files included), nor in the
# database's SQL dump; the stored spec text reads "(secret)".
no_leak() {
	local where=$1
	! grep -rla -F -f "$T/pattern" "$DATA" >"$T/hits" || fail "$where: a secret is in $(cat "$T/hits")"
	for f in "$DATA"/state.db*; do
		! grep -qa -F -f "$T/pattern" "$f" || fail "$where: a secret is in $f"
	done
	python3 - "$DATA/state.db" >"$T/dump.sql" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for line in c.iterdump():
    print(line)
PY
	grep -q "(secret)" "$T/dump.sql" || fail "$where: no redacted spec in the dump"
	! grep -q -F -f "$T/pattern" "$T/dump.sql" || fail "$where: a secret is in the database's dump"
}
done_ok() { case "$(ro_state sec)" in complete|rolled_back) env_is "$1";; *) return 1;; esac; }

"$RO" apply "$f1" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
env_is "$S1" || fail "v1 instances lack the secret"
"$RO" apply "$f2" --wait --timeout 60s >/dev/null || fail "v2 did not complete"
env_is "$S2" || fail "v2 instances lack the secret"
no_leak "after two applies"

sf="$DATA/secrets/sec"
[ "$(stat -c %a "$DATA/secrets")" = 700 ] || fail "secrets dir mode $(stat -c %a "$DATA/secrets")"
[ "$(stat -c %a "$sf")" = 600 ] || fail "secrets file mode $(stat -c %a "$sf")"
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
grep -q "^1 TOKEN $(hex "$S1")$" "$sf" && grep -q "^2 TOKEN $(hex "$S2")$" "$sf" || fail "secrets file: $(cut -c1-20 "$sf")"

# kill -9: the instances are adopted, the same spec is unchanged (same revision hash), undo to 1
# starts instances that get revision 1's secret.
kill9_daemon
start_daemon
wait_until 20 done_ok "$S2" || fail "after kill -9: $(ro_state sec), instances without the secret"
out=$("$RO" apply "$f2")
echo "$out" | grep -q "unchanged (revision 2)" || fail "re-apply after kill -9 made a change: $out"
"$RO" undo sec --to-revision 1 --wait --timeout 60s >/dev/null || fail "undo to 1 failed"
wait_until 20 done_ok "$S1" || fail "after undo to 1: instances without revision 1's secret"
no_leak "after kill -9 and undo"

# A normal stop: undo back to 2 from the loaded state.
stop_daemon
start_daemon
wait_until 20 done_ok "$S1" || fail "after stop: $(ro_state sec), instances without the secret"
"$RO" undo sec --to-revision 2 --wait --timeout 60s >/dev/null || fail "undo to 2 failed"
wait_until 20 done_ok "$S2" || fail "after undo to 2: instances without revision 2's secret"
out=$("$RO" apply "$f2")
echo "$out" | grep -q "unchanged (revision 2)" || fail "re-apply after restart made a change: $out"
! grep -q -F -f "$T/pattern" "$T/daemon.log" || fail "a secret is in the daemon's log"
! "$RO" events sec | grep -q -F -f "$T/pattern" || fail "a secret is in the events"
no_leak "after stop and undo"

# Without its secrets file the service does not load, and the log says why.
stop_daemon
mv "$sf" "$T/secrets.saved"
start_daemon
grep -q "secrets file DATA/secrets/sec has none" "$T/daemon.log" || fail "no clear error for a missing secrets file"
! "$RO" status sec >/dev/null 2>&1 || fail "the service loaded without its secrets"
stop_daemon
mv "$T/secrets.saved" "$sf"
start_daemon
wait_until 20 done_ok "$S2" || fail "with the file back: $(ro_state sec)"
log "ok"
