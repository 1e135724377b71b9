#!/usr/bin/env bash
# Fleet, the systemd preset (ssh: {preset: systemd}) on 2 namespace hosts. This machine runs no
# systemd, so each host's sessions find tests/e2e/fake_systemctl first in PATH: it starts the
# template unit's ExecStart as systemd would (bare environment, own session, output appended).
# What is checked is rollout's side: the template unit on each host (systemd-analyze verify passes
# it), one service per instance running `rollout host run`, the secret only in the 0600 spec file,
# a rollout and an undo through it, and the daemon re-adopting the services after kill -9.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
mkdir -p "$T/fakebin"
ln -s "$ROOT/tests/e2e/fake_systemctl" "$T/fakebin/systemctl"
fleet_setenv() {
	mkdir -p "$T/hosts/$1/units"
	echo "PATH=$T/fakebin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"ROLLOUT_SYSTEMD_DIR=$T/hosts/$1/units FAKE_SYSTEMD_STATE=$T/hosts/$1/systemd"
}
fleet_up 2
fleet_start_daemon
SECRET="sd-secret-$RANDOM$RANDOM"

fspec() {
	cat >"$T/sd-v$1.yaml" <<YAML
service: sd
replicas: 2
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
  env: {TOKEN: {value: "$SECRET", secret: true}}
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
strategy:
  max_surge: 1
  max_unavailable: 0
  health_deadline: 10s
stop: {grace: 2s}
ssh: {preset: systemd}
$(fleet_targets)
YAML
	echo "$T/sd-v$1.yaml"
}

# services_run VERSION: each host runs one hello of VERSION, started by the fake systemd (its
# parent chain has no sshd) from `rollout host run`, with the secret in its environment.
services_run() {
	local i p n c
	for i in 1 2; do
		n=0
		for p in $(fleet_host_pids "$i"); do
			c=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
			case "$c" in "$HELLO "*) ;; *) continue ;; esac
			case "$c" in *"--version $1 "*) ;; *) echo "host $i runs $c"; return 1 ;; esac
			tr '\0' '\n' <"/proc/$p/environ" | grep -qx "TOKEN=$SECRET" || { echo "no TOKEN in $p"; return 1; }
			tr '\0' '\n' <"/proc/$p/environ" | grep -q "^SSH_CONNECTION=" && { echo "$p has an ssh session env"; return 1; }
			n=$((n + 1))
		done
		[ $n -eq 1 ] || { echo "host $i runs $n hello"; return 1; }
	done
}

log "v1 through systemd units on 2 hosts"
"$RO" apply "$(fspec 1)" --wait --timeout 90s || fail "v1 did not complete"
wait_until 5 services_run 1 || fail "after v1"
for i in 1 2; do
	u=$(ls "$T/hosts/$i/units/")
	case "$u" in rollout-*@.service) ;; *) fail "host $i: unit dir holds '$u'" ;; esac
	grep -q "^ExecStart=$T/hosts/$i/home/bin/rollout host run --dir $T/hosts/$i/home --name %i\$" \
		"$T/hosts/$i/units/$u" || { cat "$T/hosts/$i/units/$u"; fail "host $i: ExecStart"; }
	cp "$T/hosts/$i/units/$u" "$T/verify@x.service"
	v=$(systemd-analyze verify --man=no "$T/verify@x.service" 2>&1) || fail "systemd-analyze verify: $v"
	[ -z "$v" ] || fail "systemd-analyze verify: $v"
	grep -Eq "^start ${u%@.service}@sd\\.[0-9]+\\.service\$" "$T/hosts/$i/systemd/calls" ||
		{ cat "$T/hosts/$i/systemd/calls"; fail "host $i: no systemctl start"; }
	for f in "$T/hosts/$i/home/run/"*.spec; do
		[ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600"
	done
done
grep -rqs "$SECRET" "$T"/hosts/*/units "$T"/hosts/*/systemd && fail "the secret is in a unit or the fake's state"

log "v2, then undo"
"$RO" apply "$(fspec 2)" --wait --timeout 90s || fail "v2 did not complete"
wait_until 5 services_run 2 || fail "after v2"
grep -q "^kill --signal=15 " "$T/hosts/1/systemd/calls" || fail "no systemctl kill on stop"
"$RO" undo sd --wait --timeout 90s || fail "undo did not complete"
wait_until 5 services_run 1 || fail "after undo"

log "kill -9 of the daemon: the services are re-adopted, not started again"
before=$(status_json sd | jq_ "' '.join(sorted(str(i['pid']) for i in d['instances']))")
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
fleet_start_daemon
wait_until 10 eval '[ "$(status_json sd | jq_ "sum(1 for i in d[\"instances\"] if i[\"available\"])")" = 2 ]' ||
	fail "not available again after restart"
pids_now() { status_json sd | jq_ "' '.join(sorted(str(i['pid']) for i in d['instances']))"; }
wait_until 10 eval '[ "$(pids_now)" = "$before" ]' || fail "pids changed across the restart: $before -> $(pids_now)"
services_run 1 || fail "after restart"
log "ok"
