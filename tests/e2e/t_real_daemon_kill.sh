#!/usr/bin/env bash
# Issue 12: programs nobody here wrote, and a daemon stopped at random points of rollouts.
# nginx (a master that forks workers and rewrites its process title over its environment) and
# redis-server (which sets its title the same way): for each, ROUNDS rollouts (15; LONG=1: 30),
# each applied and then the daemon killed (-9 or SIGTERM, at random) at a random moment, and a new
# daemon started. After each: the rollout completes (no false failure), and every process that
# listens on an instance port belongs to an instance the daemon tracks, one per replica (no
# orphan, no duplicate).
set -u
. "$(dirname "$0")/lib.sh"
command -v nginx >/dev/null || { echo "skip: nginx is not installed (nginx-light, scripts/deps.sh --test)"; exit 77; }
command -v redis-server >/dev/null || { echo "skip: redis-server is not installed (scripts/deps.sh --test)"; exit 77; }
ROUNDS=${ROUNDS:-$([ -n "${LONG:-}" ] && echo 30 || echo 15)}
REPLICAS=3
mkdir -p "$T/nginx"
chmod 755 "$T" "$T/nginx"

# nginx reads its port from a file: the instance writes its own config from this one
cat >"$T/nginx/conf.in" <<CONF
daemon off;
worker_processes 2;
pid $T/nginx/@PORT@.pid;
error_log stderr warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body-@PORT@;
    proxy_temp_path $T/nginx/proxy-@PORT@;
    server {
        listen 127.0.0.1:@PORT@;
        location / { return 200 "version @V@\n"; }
    }
}
CONF

mk() { # PROGRAM VERSION -> spec path
	local prog=$1 v=$2 f="$T/$1-v$2.yaml"
	case $prog in
	nginx)
		cat >"$f" <<YAML
service: nginx
replicas: $REPLICAS
lb: none
template:
  version: "$v"
  command: ["sh", "-c", "sed -e s/@PORT@/\$PORT/g -e s/@V@/$v/g $T/nginx/conf.in >$T/nginx/\$PORT.conf && exec nginx -e stderr -c $T/nginx/\$PORT.conf"]
health: {http: {path: /}, interval: 100ms, timeout: 100ms}
strategy: {max_surge: 1, max_unavailable: 0, min_ready: 200ms}
stop: {signal: QUIT, grace: 5s}
YAML
		;;
	redis)
		cat >"$f" <<YAML
service: redis
replicas: $REPLICAS
lb: none
template:
  version: "$v"
  command: ["redis-server", "--port", "\${PORT}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--dir", "$T"]
health: {tcp: {}, interval: 100ms, timeout: 100ms}
strategy: {max_surge: 1, max_unavailable: 0, min_ready: 200ms}
YAML
		;;
	esac
	echo "$f"
}

# The sessions (session id = the instance's pid: instances lead their own) of every process that
# listens on a port of this test's instance range, and the pids status reports for the service.
listening_sessions() {
	python3 - "$PORT_BASE" <<'PY'
import re, subprocess, sys
base = int(sys.argv[1])
out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
sids = set()
for line in out.splitlines():
    cols = line.split()
    port = int(cols[3].rsplit(":", 1)[1])
    if not base <= port < base + 150:
        continue
    for pid in re.findall(r"pid=(\d+)", line):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        sids.add(int(stat[stat.rindex(")") + 2:].split()[3]))
print(" ".join(str(s) for s in sorted(sids)))
PY
}
tracked() { status_json "$1" | jq_ "' '.join(str(p) for p in sorted(i['pid'] for i in d['instances'] if i['state'] in ('available', 'ready', 'starting')))"; }

start_daemon
kills=0 terms=0
for prog in nginx redis; do
	"$RO" apply "$(mk $prog 1)" --wait --timeout 60s >/dev/null || fail "$prog v1"
	for round in $(seq 2 $((ROUNDS + 1))); do
		"$RO" apply "$(mk $prog "$round")" >/dev/null || fail "$prog: apply v$round"
		sleep "$(python3 -c 'import random; print(round(random.uniform(0, 1.5), 2))')"
		if [ $((RANDOM % 2)) -eq 0 ]; then kill9_daemon; kills=$((kills + 1)); how=KILL
		else stop_daemon; terms=$((terms + 1)); how=TERM; fi
		start_daemon
		done_ok() { state_is "$prog" complete && [ "$(revisions_of "$prog")" = "$round:$REPLICAS" ]; }
		if ! wait_until 60 done_ok; then
			"$RO" status "$prog" >&2
			"$RO" history "$prog" >&2
			fail "$prog round $round (daemon $how): not complete on revision $round: $(ro_state "$prog"), $(revisions_of "$prog")"
		fi
		# what serves is what is tracked: no orphan, no duplicate (the other service's too)
		sleep 0.3
		want=$( { tracked nginx 2>/dev/null; tracked redis 2>/dev/null; } | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')
		have=$(listening_sessions | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')
		[ "$want" = "$have" ] || fail "$prog round $round (daemon $how): listening sessions '$have', tracked instances '$want'"
		[ "$(tracked "$prog" | wc -w)" -eq $REPLICAS ] || fail "$prog round $round: $(tracked "$prog" | wc -w) instances, want $REPLICAS"
	done
	bad=$("$RO" history "$prog" -o json | jq_ "sum(1 for r in d['rollouts'] if r['state'] != 'complete')")
	[ "$bad" -eq 0 ] || { "$RO" history "$prog" >&2; fail "$prog: $bad rollouts did not complete (a false failure)"; }
	log "$prog: $ROUNDS rollouts with the daemon killed mid-way: all complete, no orphan, no duplicate"
done
log "daemon stopped $kills times with SIGKILL, $terms with SIGTERM"
log ok
