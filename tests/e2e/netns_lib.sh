# The fleet test bench (t_fleet_*.sh): lib.sh, plus N "hosts", each a network namespace with its own
# address on a private bridge and its own sshd, all made for the run and removed on exit whatever
# happens. Source it after `set -u`, then call `fleet_up N`.
#
# Layout: a control namespace $FCTL holds the bridge (10.$FNET.0.1/24); host i is namespace
# ${FHOSTS_NS[i]} with address ${FHOSTS_IP[i]} on a veth to the bridge, and nothing else: no
# default route, so what runs in a host reaches the bridge and nothing more. The daemon runs in
# $FCTL (fleet_start_daemon), the CLI in the test's own namespace (it only uses the unix socket).
# Namespaces share the filesystem: host i's sshd sets ROLLOUT_HOME=$T/hosts/i/home for its
# sessions, which the ssh driver uses as the host's rollout directory.
# Client side: $FSSH/config (user root, the run's key, $FSSH/known_hosts only), exported to the
# daemon as ROLLOUT_SSH_CONFIG.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "skip: network namespaces need root"; exit 77; }
command -v ip >/dev/null || { echo "skip: ip (iproute2) is not installed"; exit 77; }
[ -x /usr/sbin/sshd ] || { echo "skip: sshd is not installed (openssh-server, scripts/deps.sh)"; exit 77; }
command -v ssh >/dev/null || { echo "skip: ssh is not installed"; exit 77; }

FTAG="rf$$r$RANDOM"
FNET=$((100 + RANDOM % 150))
FCTL=
FHOSTS_NS=()
FHOSTS_IP=()
FSSHD_PIDS=()
FSSH="$T/ssh"
export ROLLOUT_SSH_CONFIG="$FSSH/config"

fleet_teardown() {
	local ns p
	[ -n "$DAEMON_PID" ] && kill -9 "$DAEMON_PID" 2>/dev/null
	# Whatever runs in our namespaces (sshd, instances, sessions) is ours. Sessions first get a
	# moment to end by themselves: a shell killed in the middle of its rc files can leave stale
	# locks behind in the (shared) home directory.
	for ns in "${FHOSTS_NS[@]}" $FCTL; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			grep -qsa "ROLLOUT_INSTANCE=" "/proc/$p/environ" && kill -9 -- "-$p" "$p" 2>/dev/null
		done
	done
	for p in "${FSSHD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 1 30); do
		[ -z "$(for ns in "${FHOSTS_NS[@]}" $FCTL; do ip netns pids "$ns" 2>/dev/null; done)" ] && break
		sleep 0.1
	done
	for ns in "${FHOSTS_NS[@]}" $FCTL; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	for p in "${FSSHD_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	# ssh ControlMaster processes of this run (ControlPath under $T) live in the control namespace
	# and went above; catch any started from elsewhere by their command line.
	for p in $(grep -lsa -F "$T/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		[ "$p" != "$$" ] && grep -qsa "^ssh" "/proc/$p/cmdline" && kill -9 "$p" 2>/dev/null
	done
	for ns in "${FHOSTS_NS[@]}" $FCTL; do ip netns del "$ns" 2>/dev/null; done
}

fleet_cleanup() {
	local rc=$?
	set +e
	fleet_teardown 2>/dev/null
	(exit $rc)
	cleanup
}
trap fleet_cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up

# fleet_up N: N hosts with sshd answering, known_hosts filled, ssh config written.
fleet_up() {
	local n=$1 i
	FCTL="$FTAG-c"
	ip netns add "$FCTL" || { echo "skip: cannot create network namespaces"; exit 77; }
	ip -n "$FCTL" link set lo up
	ip -n "$FCTL" link add rb0 type bridge
	ip -n "$FCTL" addr add "10.$FNET.0.1/24" dev rb0
	ip -n "$FCTL" link set rb0 up
	mkdir -p "$FSSH" /run/sshd
	chmod 700 "$FSSH"
	ssh-keygen -q -t ed25519 -N "" -C "rollout-e2e" -f "$FSSH/id_ed25519"
	cp "$FSSH/id_ed25519.pub" "$FSSH/authorized_keys"
	: >"$FSSH/known_hosts"
	cat >"$FSSH/config" <<CFG
Host *
  User root
  IdentityFile $FSSH/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $FSSH/known_hosts
  GlobalKnownHostsFile /dev/null
  ConnectTimeout 3
  ServerAliveInterval 1
  ServerAliveCountMax 3
  LogLevel ERROR
CFG
	for i in $(seq 1 "$n"); do
		local ns="$FTAG-h$i" ip="10.$FNET.0.$((10 + i))" dir="$T/hosts/$i"
		ip netns add "$ns"
		FHOSTS_NS[$i]=$ns
		FHOSTS_IP[$i]=$ip
		ip -n "$FCTL" link add "v$i" type veth peer name eth0 netns "$ns"
		ip -n "$FCTL" link set "v$i" master rb0 up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr add "$ip/24" dev eth0
		ip -n "$ns" link set eth0 up
		mkdir -p "$dir/home"
		fleet_hostkey_new "$i"
		fleet_sshd_start "$i"
	done
	for i in $(seq 1 "$n"); do
		wait_until 10 fleet_ssh "$i" true || fail "sshd of host $i does not answer"
	done
	log "fleet: $n hosts on 10.$FNET.0.0/24 (namespaces $FTAG-*)"
}

# fleet_hostkey_new I: a new host key for host I, and known_hosts says so (replacing the old line).
fleet_hostkey_new() {
	local i=$1 dir="$T/hosts/$1"
	rm -f "$dir/hostkey" "$dir/hostkey.pub"
	ssh-keygen -q -t ed25519 -N "" -C "host$i" -f "$dir/hostkey"
	grep -v "^${FHOSTS_IP[$i]} " "$FSSH/known_hosts" >"$FSSH/known_hosts.new" || true
	echo "${FHOSTS_IP[$i]} $(cut -d' ' -f1,2 "$dir/hostkey.pub")" >>"$FSSH/known_hosts.new"
	mv "$FSSH/known_hosts.new" "$FSSH/known_hosts"
}

# fleet_sshd_start I: host I's sshd (foreground mode, in the background). Sessions get HOME=the
# host's directory: namespaces share the file system, and this machine's own /root dotfiles (a
# .bashrc that runs pyenv init, ~0.25 s) would otherwise run in every session, which a fresh host
# does not. A scenario may define fleet_setenv I to print more NAME=value words (SetEnv).
fleet_sshd_start() {
	local i=$1 dir="$T/hosts/$1"
	cat >"$dir/sshd_config" <<CFG
ListenAddress ${FHOSTS_IP[$i]}:22
HostKey $dir/hostkey
PidFile $dir/sshd.pid
AuthorizedKeysFile $FSSH/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 100
MaxStartups 100
SetEnv HOME=$dir ROLLOUT_HOME=$dir/home$(declare -F fleet_setenv >/dev/null && echo " $(fleet_setenv "$i")")
CFG
	ip netns exec "${FHOSTS_NS[$i]}" /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
	FSSHD_PIDS[$i]=$!
}

fleet_sshd_stop() {
	local i=$1
	kill -9 "${FSSHD_PIDS[$i]}" 2>/dev/null
	wait "${FSSHD_PIDS[$i]}" 2>/dev/null || true
}

# fleet_ssh I CMD...: runs CMD on host I (from the control namespace, no multiplexing).
fleet_ssh() {
	local i=$1; shift
	ip netns exec "$FCTL" ssh -F "$FSSH/config" -o BatchMode=yes -o ControlPath=none "${FHOSTS_IP[$i]}" "$@"
}

# fleet_targets: the YAML targets list of every host.
fleet_targets() {
	local i out="targets:"
	for i in $(seq 1 $((${#FHOSTS_IP[@]}))); do out="$out
  - ssh://root@${FHOSTS_IP[$i]}"; done
	echo "$out"
}

fleet_start_daemon() {
	ip netns exec "$FCTL" "$RO" daemon --data "$DATA" --ports "$PORT_BASE-$((PORT_BASE + 199))" "$@" \
		>>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 1 100); do
		[ -S "$DATA/rollout.sock" ] && "$RO" status >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon exited at start"
		sleep 0.05
	done
	fail "daemon did not answer"
}

# fleet_pids I: pids of the processes running in host I's namespace, but its sshd's.
fleet_host_pids() {
	local i=$1 p
	for p in $(ip netns pids "${FHOSTS_NS[$i]}"); do
		grep -qsa "sshd" "/proc/$p/cmdline" || echo "$p"
	done
}
