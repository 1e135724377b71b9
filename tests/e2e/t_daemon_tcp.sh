#!/usr/bin/env bash
# protocol: tcp through the builtin proxy: the daemon gives the proxy a TCP listener, byte streams
# reach the instances, and a rollout moves new connections to the new version.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
LPORT=$(free_port)
mk() {
	cat >"$T/tcp-v$1.yaml" <<YAML
service: tcpsvc
replicas: 2
protocol: tcp
listen: 127.0.0.1:$LPORT
template:
  version: "$1"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$1", "--threads", "1"]
health:
  tcp: {}
  interval: 100ms
  timeout: 100ms
strategy: {min_ready: 200ms}
drain: {timeout: 2s}
YAML
	echo "$T/tcp-v$1.yaml"
}
"$RO" apply "$(mk 1)" --wait --timeout 60s
[ "$(curl -s "http://127.0.0.1:$LPORT/")" = "hello from version 1" ] || fail "v1 through tcp: $(curl -s "http://127.0.0.1:$LPORT/")"
curl -s --unix-socket "$DATA/proxy.sock" http://x/v1/services/tcpsvc/stats >"$T/stats.json" || true
"$RO" apply "$(mk 2)" --wait --timeout 60s
[ "$(curl -s "http://127.0.0.1:$LPORT/")" = "hello from version 2" ] || fail "v2 through tcp"
log ok
