#!/usr/bin/env bash
# The data directory on a 3 MB tmpfs that fills up in the middle of a rollout: the daemon survives,
# says the store is unavailable, starts nothing, refuses an apply with a 503; restarted with the
# disk still full it starts and serves status and history; once space is freed it records how
# long writes failed and completes the rollout. state.db and its -wal/-shm are 0600.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: mounting a small tmpfs needs root"; exit 77; }
mkdir -p "$DATA"
mount -t tmpfs -o size=3m,mode=0755 tmpfs "$DATA" || { echo "skip: cannot mount a tmpfs"; exit 77; }
# Detach the mount first (lazily: the daemon and instances still have files there), then the
# usual cleanup kills them and removes $T.
trap 'rc=$?; umount -l "$DATA" 2>/dev/null; (exit $rc); cleanup' EXIT
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 0
  min_ready: 1s
drain: {timeout: 1s}
stop: {grace: 1s}'
"$RO" apply "$(echo "$strat" | spec k 1 3)" --wait --timeout 60s >/dev/null
for f in state.db state.db-wal state.db-shm; do
	[ "$(stat -c %a "$DATA/$f")" = 600 ] || fail "$f is mode $(stat -c %a "$DATA/$f"), want 600"
done
"$RO" apply "$(echo "$strat" | spec k 2 3)" >/dev/null
wait_until 10 has_rev k 2 || fail "the rollout did not start"

fill() { dd if=/dev/zero of="$DATA/fill" bs=4k 2>/dev/null || true; }
store_error() { status_json k | jq_ "d.get('store_error', {}).get('error', '')"; }
store_down() { [ -n "$(store_error)" ]; }
max_id() { status_json k | jq_ "max(i['id'] for i in d['instances'])"; }
fill
log "disk full: $(df -k "$DATA" | tail -1)"
wait_until 10 store_down || fail "status never reported the store unavailable"
log "reported: $(store_error)"
store_error | grep -q "full" || fail "the error does not say the disk is full: $(store_error)"
"$RO" status k | grep -q "store: unavailable since" || fail "rollout status text does not say so"
ids=$(max_id)
sleep 3
kill -0 "$DAEMON_PID" || fail "the daemon died on a full disk"
[ "$(max_id)" = "$ids" ] || fail "a new instance appeared while the store took no writes"
if "$RO" apply "$(echo "$strat" | spec k 3 3)" >"$T/apply.out" 2>&1; then fail "apply succeeded on a full disk"; fi
grep -q "takes no writes" "$T/apply.out" || fail "apply on a full disk says: $(cat "$T/apply.out")"

log "restart with the disk full"
stop_daemon
fill
start_daemon
"$RO" status k >/dev/null || fail "no status after a restart on a full disk"
"$RO" history k >"$T/history.out" || fail "no history after a restart on a full disk"
grep -q "progressing" "$T/history.out" || fail "history: $(cat "$T/history.out")"
wait_until 10 store_down || fail "after the restart, status never reported the store unavailable"
sleep 2
kill -0 "$DAEMON_PID" || fail "the restarted daemon died on a full disk"
[ "$(max_id)" = "$ids" ] || fail "a new instance appeared after the restart while the store took no writes"

rm -f "$DATA/fill"
log "space freed"
wait_until 30 state_is k complete || fail "the rollout did not complete after space was freed ($(ro_state k))"
[ "$(revisions_of k)" = "2:3" ] || fail "instances: $(revisions_of k)"
store_down && fail "status still reports the store unavailable"
"$RO" events k -o json | grep -q '"store_unavailable"' || fail "no store_unavailable event"
log "PASS"
