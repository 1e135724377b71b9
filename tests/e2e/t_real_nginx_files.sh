#!/usr/bin/env bash
# Issue 12.10: a program that reads its port from a config file, with no shell in between. nginx
# runs as `nginx -p ${INSTANCE_DIR} -c ${INSTANCE_DIR}/nginx.conf`, the config a `template.files`
# entry rendered per instance (${PORT}, ${INSTANCE}, ${VERSION}, ${INSTANCE_DIR}), behind the
# builtin proxy with 2 replicas. A v2 that changes only the file's content is a new revision; once
# it is rolled out, every request through the proxy answers the new content, and the directories
# of the v1 instances are gone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v nginx >/dev/null || { echo "skip: nginx is not installed (nginx-light, scripts/deps.sh --test)"; exit 77; }
start_daemon
LP=$(free_port)

mk() { # GREETING -> spec path
	local f="$T/nginx-$1.yaml"
	cat >"$f" <<YAML
service: web
replicas: 2
listen: 127.0.0.1:$LP
template:
  version: "1"
  command: ["nginx", "-p", "\${INSTANCE_DIR}", "-c", "\${INSTANCE_DIR}/nginx.conf", "-e", "stderr", "-g", "daemon off;"]
  files:
    - path: nginx.conf
      content: |
        user root;
        worker_processes 1;
        pid \${INSTANCE_DIR}/nginx.pid;
        error_log stderr warn;
        events { worker_connections 64; }
        http {
            access_log off;
            client_body_temp_path \${INSTANCE_DIR}/body;
            proxy_temp_path \${INSTANCE_DIR}/proxy;
            server {
                listen 127.0.0.1:\${PORT};
                location /healthz { return 200 "ok\n"; }
                location / { return 200 "$1 from \${INSTANCE}, \$request_method\n"; }
            }
        }
health: {http: {path: /healthz}, interval: 100ms, timeout: 100ms}
strategy: {max_surge: 1, max_unavailable: 0}
stop: {signal: QUIT, grace: 5s}
YAML
	echo "$f"
}

# answers N: N requests through the proxy, the distinct answers sorted
answers() {
	for _ in $(seq 1 "$1"); do curl -s --max-time 2 "http://127.0.0.1:$LP/" || echo "(no answer)"; done | sed 's/ from web-[0-9]*,/ from web-N,/' | sort -u
}
ids() { status_json web | jq_ "' '.join(str(i['id']) for i in sorted(d['instances'], key=lambda i: i['id']))"; }

log "v1: nginx configured by a rendered file"
"$RO" apply "$(mk hello)" --wait --timeout 60s >/dev/null || fail "v1 did not complete"
[ "$(answers 10)" = "hello from web-N, GET" ] || fail "v1 answers: $(answers 10)"
v1_ids=$(ids)
for id in $v1_ids; do
	d="$DATA/instances/web-$id"
	[ "$(stat -c %a "$d/nginx.conf")" = 600 ] || fail "$d/nginx.conf mode $(stat -c %a "$d/nginx.conf")"
	grep -q "listen 127.0.0.1:[0-9]*;" "$d/nginx.conf" || fail "no port rendered: $(cat "$d/nginx.conf")"
	grep -q "pid $(realpath "$DATA")/instances/web-$id/nginx.pid;" "$d/nginx.conf" || fail "INSTANCE_DIR: $(head -3 "$d/nginx.conf")"
	grep -q 'hello from web-'"$id"', $request_method' "$d/nginx.conf" || fail "INSTANCE or \$var: $(grep return "$d/nginx.conf")"
done
# the ${INSTANCE} in each answer names the instance that answered: both answer
seen=$(for _ in $(seq 1 20); do curl -s --max-time 2 "http://127.0.0.1:$LP/"; done | sort -u | wc -l)
[ "$seen" = 2 ] || fail "$seen distinct instances answered, want 2"

log "v2: only the file's content changes: a new revision, rolled out"
"$RO" apply "$(mk bonjour)" --wait --timeout 60s >/dev/null || fail "v2 did not complete"
[ "$(status_json web | jq_ "sorted(set(i['revision'] for i in d['instances']))")" = "[2]" ] ||
	fail "revisions after v2: $(revisions_of web)"
[ "$(answers 20)" = "bonjour from web-N, GET" ] || fail "v2 answers: $(answers 20)"
for id in $v1_ids; do
	[ ! -e "$DATA/instances/web-$id" ] || fail "the directory of v1 instance $id is left: $(ls "$DATA/instances")"
done
[ "$(ls "$DATA/instances" | wc -l)" = 2 ] || fail "instance directories: $(ls "$DATA/instances")"
log "ok"
