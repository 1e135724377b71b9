#!/usr/bin/env bash
# Fleet: a host whose key changes while it is down (its sshd stopped, seen unreachable, then
# restarted with a new key; known_hosts keeps the old one) is reported as such, not as merely unreachable: an `apply --wait`
# made right away does not complete as if nothing happened, the events and the log name the
# changed key of that host, and the next apply is refused for it, not as an invalid spec.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 3
fleet_start_daemon

fspec() {
	cat >"$T/hd-v$1.yaml" <<YAML
service: hd
replicas: 3
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy:
  max_surge: 1
  health_deadline: 5s
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/hd-v$1.yaml"
}

"$RO" apply "$(fspec 1)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
h3="${FHOSTS_IP[3]}"

log "host 3's sshd restarts with a new key; known_hosts keeps the old one"
for p in $(ip netns pids "${FHOSTS_NS[3]}"); do
	grep -qsa "sshd" "/proc/$p/cmdline" && kill -9 "$p" 2>/dev/null
done
wait "${FSSHD_PIDS[3]}" 2>/dev/null || true
# The daemon sees it down first: its instance there is gone as "host unreachable".
unreachable() { "$RO" events hd | grep -q "host unreachable: root@$h3"; }
wait_until 15 unreachable || fail "host 3 was not seen unreachable"
rm -f "$T/hosts/3/hostkey" "$T/hosts/3/hostkey.pub"
ssh-keygen -q -t ed25519 -N "" -C "host3-new" -f "$T/hosts/3/hostkey"
fleet_sshd_start 3

set +e
"$RO" apply "$(fspec 2)" --wait --timeout 60s >"$T/apply2.out" 2>&1
rc=$?
set -e
cat "$T/apply2.out"
"$RO" events hd >"$T/events.txt"
grep "host key" "$T/events.txt" || true
[ $rc -ne 0 ] || { cat "$T/events.txt"; fail "apply v2 --wait completed (exit 0) although host 3's key changed"; }
grep -q "host key.*$h3\|$h3.*host key" "$T/events.txt" ||
	{ cat "$T/events.txt"; fail "no event names the changed host key of $h3"; }
grep -q "host key.*$h3\|$h3.*host key" "$T/daemon.log" || fail "the log does not name the changed host key of $h3"
state=$(ro_state hd)
[ "$state" != complete ] || fail "the rollout is complete"
status_json hd | grep -q "host_key_changed.*$h3" || fail "status does not name the changed host key: $(status_json hd)"
"$RO" status hd | grep -q "host key of .*$h3 changed" || fail "status text does not name it: $("$RO" status hd)"

log "the next apply is refused for the host key, not as an invalid spec"
set +e
"$RO" apply "$(fspec 3)" >"$T/apply3.out" 2>&1
rc=$?
set -e
cat "$T/apply3.out"
[ $rc -eq 2 ] || fail "apply with a changed host key exited $rc, want 2"
grep -q "host key of .*$h3.* changed" "$T/apply3.out" || fail "the refusal does not say the host key of $h3 changed"
! grep -q "invalid spec" "$T/apply3.out" || fail "the refusal is headed 'invalid spec'"
log "ok"
