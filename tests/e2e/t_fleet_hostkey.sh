#!/usr/bin/env bash
# Fleet: a host whose key changes (known_hosts holds another one) during a rollout aborts the
# rollout, and nothing is changed on that host; a new apply is refused while the key is wrong.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 4
fleet_start_daemon

# Host 1 listed last: the canary batch lands on host 4.
targets() { local i; echo "targets:"; for i in 4 3 2 1; do echo "  - ssh://root@${FHOSTS_IP[$i]}"; done; }
fspec() {
	cat >"$T/hk-v$1.yaml" <<YAML
service: hk
replicas: 4
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy:
  batches: [1, 100%]
  pause_after: [1]
  max_surge: 1
  health_deadline: 5s
stop: {grace: 2s}
$(targets)
YAML
	echo "$T/hk-v$1.yaml"
}
# What host 1 holds: its instance files and the pids they name.
host1_state() { (cd "$T/hosts/1/home" && ls -R run logs && cat run/*.pid) 2>&1; }

"$RO" apply "$(fspec 1)" --wait --timeout 90s || fail "v1 did not complete"
before=$(host1_state)
echo "$before" | grep -q "hk.*pid" || fail "host 1 runs nothing: $before"

log "v2: canary on host 4, then host 1's key changes"
"$RO" apply "$(fspec 2)" >/dev/null
wait_until 30 state_is hk paused || fail "no canary pause: $(ro_state hk)"
[ "$(host1_state)" = "$before" ] || fail "host 1 changed before its key did"
bogus="$T/bogus"
ssh-keygen -q -t ed25519 -N "" -f "$bogus"
grep -v "^${FHOSTS_IP[1]} " "$FSSH/known_hosts" >"$FSSH/kh.new"
echo "${FHOSTS_IP[1]} $(cut -d' ' -f1,2 "$bogus.pub")" >>"$FSSH/kh.new"
mv "$FSSH/kh.new" "$FSSH/known_hosts"
# The open ControlMaster connection was verified with the old key: close it, as a reconnect would.
ip netns exec "$FCTL" ssh -F "$FSSH/config" -o ControlPath="$DATA/ssh/%C" -O exit "${FHOSTS_IP[1]}" 2>/dev/null || true

wait_until 20 state_is hk aborted || fail "the rollout was not aborted: $(ro_state hk)"
"$RO" events hk >"$T/events.txt"
grep -q "host key verification failed" "$T/events.txt" || { cat "$T/events.txt"; fail "no host key event"; }
sleep 2 # the daemon keeps trying the host: still nothing may change there
[ "$(host1_state)" = "$before" ] || fail "host 1 changed: before: $before; now: $(host1_state)"

log "a new apply is refused while the key is wrong"
set +e
"$RO" apply "$(fspec 3)" >"$T/apply3.out" 2>&1
rc=$?
set -e
cat "$T/apply3.out"
[ $rc -eq 2 ] || fail "apply with a bad host key exited $rc, want 2"
grep -q "host key" "$T/apply3.out" || fail "the refusal does not say why"
[ "$(host1_state)" = "$before" ] || fail "host 1 changed after the refused apply"
log "ok"
