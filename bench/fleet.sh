#!/usr/bin/env bash
# The same rollout of hello to N (default 16) namespace hosts over ssh, by rollout and by Ansible
# (bench/fleet.yml, serial 50%): both in 2 batches, one instance per host, each waiting for
# /healthz. Prints both wall times of the second deployment (the first installs) and the ratio.
# Needs root (namespaces), sshd and ansible-playbook (Debian's ansible-core). A figure, not a test.
set -euo pipefail
N=${N:-16}
. "$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/netns_lib.sh"
command -v ansible-playbook >/dev/null || { echo "skip: ansible-playbook is not installed (apt install ansible-core)"; exit 77; }
[ -x "$RO" ] || { echo "build $RO first"; exit 1; }
fleet_up "$N"
fleet_start_daemon
now_ms() { date +%s%3N; }

fspec() {
	cat >"$T/fleet-v$1.yaml" <<YAML
service: fleet
replicas: $N
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
strategy:
  batches: [50%, 100%]
  max_surge: 50%
  max_unavailable: 0
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/fleet-v$1.yaml"
}

"$RO" apply "$(fspec 1)" --wait --timeout 300s >/dev/null
t0=$(now_ms)
"$RO" apply "$(fspec 2)" --wait --timeout 300s >/dev/null
t_ro=$(( $(now_ms) - t0 ))
sed "s/^replicas: $N\$/replicas: 0/" "$T/fleet-v2.yaml" >"$T/fleet-0.yaml"
"$RO" apply "$T/fleet-0.yaml" --wait --timeout 300s >/dev/null

# Ansible: same hosts, same ssh config and keys, its own ControlPersist connections.
{
	echo "[fleet]"
	for i in $(seq 1 "$N"); do echo "h$i ansible_host=${FHOSTS_IP[$i]}"; done
	echo "[fleet:vars]"
	echo "ansible_user=root"
	echo "ansible_python_interpreter=/usr/bin/python3"
	echo "ansible_ssh_common_args='-F $FSSH/config'"
} >"$T/inventory"
cat >"$T/ansible.cfg" <<CFG
[defaults]
forks = $N
host_key_checking = True
interpreter_python = /usr/bin/python3
local_tmp = $T/ansible-local
remote_tmp = /tmp/.ansible-\${USER}
[ssh_connection]
pipelining = True
control_path_dir = $T/ansible-cp
CFG
export ANSIBLE_CONFIG="$T/ansible.cfg" FLEET_DIR="$T/ansible-hosts"
play() {
	ip netns exec "$FCTL" env ANSIBLE_CONFIG="$ANSIBLE_CONFIG" FLEET_DIR="$FLEET_DIR" \
		ansible-playbook -i "$T/inventory" "$(dirname "$0")/fleet.yml" \
		-e "hello=$HELLO port=18080 version=$1" >"$T/ansible-$1.log" 2>&1 ||
		{ tail -30 "$T/ansible-$1.log"; exit 1; }
}
play 1
t0=$(now_ms)
play 2
t_an=$(( $(now_ms) - t0 ))
for i in $(seq 1 "$N"); do [ -f "$FLEET_DIR/h$i/hello.pid" ] && kill "$(cat "$FLEET_DIR/h$i/hello.pid")" 2>/dev/null; done

echo "fleet of $N hosts, 2 batches, one hello per host, second deployment:"
printf '  rollout: %6d ms\n  ansible: %6d ms\n  ratio:   %6.1fx\n' "$t_ro" "$t_an" "$(echo "$t_an / $t_ro" | bc -l)"
