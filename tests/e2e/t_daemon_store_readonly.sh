#!/usr/bin/env bash
# A read-only data directory (empty, or holding a stopped daemon's state): the daemon exits 2
# with a message naming the file it could not open and why, instead of silently.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skip: mounting a tmpfs needs root"; exit 77; }
mkdir -p "$DATA"
mount -t tmpfs -o size=8m,mode=0755 tmpfs "$DATA" || { echo "skip: cannot mount a tmpfs"; exit 77; }
trap 'rc=$?; umount -l "$DATA" 2>/dev/null; (exit $rc); cleanup' EXIT

expect_refusal() {
	local rc=0
	"$RO" daemon --data "$DATA" --ports "$PORT_BASE-$((PORT_BASE + 149))" >"$T/ro.out" 2>&1 || rc=$?
	[ $rc -eq 2 ] || fail "$1: exit $rc, want 2 ($(cat "$T/ro.out"))"
	grep -q "$DATA/daemon.lock: Read-only file system" "$T/ro.out" || fail "$1: the message is: $(cat "$T/ro.out")"
	log "$1: $(cat "$T/ro.out")"
}

mount -o remount,ro "$DATA"
expect_refusal "empty read-only directory"

mount -o remount,rw "$DATA"
start_daemon
"$RO" apply "$(spec k 1 1)" --wait --timeout 30s >/dev/null
stop_daemon
for p in $(instance_pids); do kill -9 -- "-$p" 2>/dev/null || kill -9 "$p"; done
mount -o remount,ro "$DATA"
expect_refusal "a stopped daemon's state, read-only"
log "PASS"
