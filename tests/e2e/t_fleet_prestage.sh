#!/usr/bin/env bash
# Fleet: pre-staging. When a rollout to a new version begins, the install hook runs once on every
# host, all at once, before the first instance of that version starts anywhere; the instances then
# skip it. An install that fails on a host fails the starts there with its cause.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 4
fleet_start_daemon

# fspec VERSION [FAIL_ON_HOST]: hello VERSION on 4 hosts; install (1 s, logs its window) fails on
# FAIL_ON_HOST; the start hook logs when each instance starts.
fspec() {
	cat >"$T/ps-v$1.yaml" <<YAML
service: ps
replicas: 4
lb: none
template:
  version: "$1"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
  hooks:
    install: ["/bin/sh", "-c", "echo \"\$(date +%s%N) begin \$1\" >>install.log; sleep 1; echo \"\$(date +%s%N) end \$1\" >>install.log; test \"\$2\" != \"${2:-none}\"", "sh", "{version}", "{host}"]
    start: ["/bin/sh", "-c", "echo \"\$(date +%s%N) \$1\" >>start.log", "sh", "{version}"]
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
strategy:
  batches: [1, 100%]
  max_surge: 1
  max_unavailable: 0
  health_deadline: 10s
stop: {grace: 2s}
$(fleet_targets)
YAML
	echo "$T/ps-v$1.yaml"
}

# check_staged VERSION [overlap]: on every host, exactly one install of VERSION, every one ended
# before the first start of VERSION anywhere; with "overlap", the installs ran at once (not for the
# first version: each host's first session copies the rollout binary there first, which takes
# longer on some hosts than on others).
check_staged() {
	local v=$1 i b e begins=() ends=() first
	for i in 1 2 3 4; do
		b=$(grep -c " begin $v\$" "$T/hosts/$i/home/install.log" || true)
		e=$(grep -c " end $v\$" "$T/hosts/$i/home/install.log" || true)
		[ "$b" = 1 ] && [ "$e" = 1 ] || fail "host $i ran the install of $v $b time(s) (ended $e): $(cat "$T/hosts/$i/home/install.log")"
		begins+=("$(awk -v v="$v" '$2 == "begin" && $3 == v {print $1}' "$T/hosts/$i/home/install.log")")
		ends+=("$(awk -v v="$v" '$2 == "end" && $3 == v {print $1}' "$T/hosts/$i/home/install.log")")
	done
	first=$(cat "$T"/hosts/*/home/start.log | awk -v v="$v" '$2 == v {print $1}' | sort -n | head -1)
	[ -n "$first" ] || fail "no instance of $v started"
	local last_begin first_end last_end
	last_begin=$(printf '%s\n' "${begins[@]}" | sort -n | tail -1)
	first_end=$(printf '%s\n' "${ends[@]}" | sort -n | head -1)
	last_end=$(printf '%s\n' "${ends[@]}" | sort -n | tail -1)
	[ "${2:-}" != overlap ] || [ "$last_begin" -lt "$first_end" ] || fail "the installs of $v did not run at once (last began $last_begin, first ended $first_end)"
	[ "$last_end" -lt "$first" ] || fail "an instance of $v started ($first) before every install ended ($last_end)"
	log "v$v: staged on 4 hosts in $(((last_end - ${begins[0]}) / 1000000)) ms or so, first start $(((first - last_end) / 1000000)) ms after"
}

"$RO" apply "$(fspec 1)" --wait --timeout 90s >/dev/null || fail "v1 did not complete"
check_staged 1
log "v2: staged, then batches only switch"
"$RO" apply "$(fspec 2)" --wait --timeout 90s >/dev/null || fail "v2 did not complete"
check_staged 2 overlap
[ "$(revisions_of ps)" = "2:4" ] || fail "after v2: $(revisions_of ps)"
"$RO" events ps >"$T/events.txt"
grep -q "staged v2 (revision 2) on 4 hosts in [0-9]* ms" "$T/events.txt" || { cat "$T/events.txt"; fail "no staging event"; }

log "v3: the install fails on host 2: the starts there fail with its cause"
set +e
"$RO" apply "$(fspec 3 "${FHOSTS_IP[2]}")" --wait --timeout 90s >"$T/apply3.out" 2>&1
set -e
"$RO" events ps >"$T/events.txt"
grep -q "staged v3 (revision 3) on 3 hosts in [0-9]* ms; install failed on 1: install hook failed (exit status 1)" "$T/events.txt" ||
	{ cat "$T/events.txt"; fail "no staging event with the failure"; }
for i in 1 2 3 4; do
	n=$(grep -c " begin 3\$" "$T/hosts/$i/home/install.log" || true)
	[ "$n" = 1 ] || fail "host $i ran the install of 3 $n times"
done
if grep -q "^[0-9]* 3\$" "$T/hosts/2/home/start.log"; then fail "an instance of v3 started on host 2"; fi
grep -q "revision=3 msg=\"exited\" cause=\"install hook failed (exit status 1)\"" "$T/daemon.log" ||
	fail "no start of v3 failed with the install's cause"
log "ok"
