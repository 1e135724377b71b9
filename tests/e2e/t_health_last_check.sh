#!/usr/bin/env bash
# A failing health check says why (issue 12.3): what the last probe saw is in the status while the
# instance starts (last_check, the CAUSE column), then in the cause of its failed event and the
# rollout's reason when it misses health_deadline. Three real checks: an http server answering
# 404 for the path, a tcp check of a port nobody listens on, an exec check that prints and exits 3.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
mkdir -p "$T/empty" # http.server serves this: /healthz is 404

# mk NAME HEALTH COMMAND: a first deploy of one instance that never becomes healthy.
mk() {
	cat >"$T/$1.yaml" <<YAML
service: $1
replicas: 1
lb: none
template:
  version: "1"
  command: $3
health:
  $2
  interval: 300ms
  timeout: 300ms
strategy: {health_deadline: 4s}
stop: {grace: 1s}
YAML
	echo "$T/$1.yaml"
}

# check NAME WANT...: the status shows the last probe, the rollout fails, and its reason, the
# instance_failed event and the CLI's status all carry it.
check() {
	local name=$1 want=$2
	"$RO" apply "$3"
	# While it starts: the JSON's last_check and the CAUSE column of the human status.
	seen() { status_json "$name" | jq_ "any('$want' in i.get('last_check', '') for i in d['instances'])" | grep -q True; }
	wait_until 4 seen || fail "$name: no last_check with '$want': $(status_json "$name")"
	"$RO" status "$name" >"$T/$name.status"
	grep -q "last check: .*$want" "$T/$name.status" || { cat "$T/$name.status"; fail "$name: CAUSE without the last check"; }
	wait_until 15 state_is "$name" failed || fail "$name: rollout $(ro_state "$name"), want failed"
	local reason
	reason=$(status_json "$name" | jq_ "d['rollout']['reason']")
	log "$name: $reason"
	case "$reason" in
	*"not healthy within health_deadline 4s: last check: "*"$want"*) ;;
	*) fail "$name: reason without the last check: $reason" ;;
	esac
	"$RO" events "$name" >"$T/$name.events"
	grep "instance_failed" "$T/$name.events" | grep -q "not healthy within health_deadline 4s: last check: .*$want" ||
		{ cat "$T/$name.events"; fail "$name: instance_failed event without the last check"; }
	"$RO" history "$name" | grep -q "$want" || fail "$name: history: $("$RO" history "$name")"
}

log "http: a server answering 404 for the health path"
check h404 "HTTP 404 from GET /healthz (want 200)" \
	"$(mk h404 'http: {path: /healthz}' "[\"python3\", \"-m\", \"http.server\", \"\${PORT}\", \"--bind\", \"127.0.0.1\", \"--directory\", \"$T/empty\"]")"

log "tcp: nobody listens on the port"
check tcpc "connection refused" "$(mk tcpc 'tcp: {}' '["sleep", "600"]')"

log "exec: a check that prints and exits 3"
check ex "exit status 3: boom" "$(mk ex "exec: [\"sh\", \"-c\", \"echo starting; echo boom >&2; exit 3\"]" '["sleep", "600"]')"
log ok
