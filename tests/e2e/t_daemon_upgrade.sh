#!/usr/bin/env bash
# Upgrading the daemon mid-rollout: the previous commit's binary starts a rollout of 4 hello
# instances behind the builtin proxy with wrk running; it is stopped (SIGTERM, as systemctl stop
# or restart does) in the middle and the current binary, started on the same DATA, re-adopts the
# instances and the proxy and finishes the rollout the old one began: 0 failed requests.
set -u
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "skip: wrk is not installed"; exit 77; }
PREV=${UPGRADE_FROM:-$(git -C "$ROOT" rev-parse -q --verify HEAD~1 2>/dev/null)}
[ -n "$PREV" ] || { echo "skip: no previous commit to build (not a git checkout with history)"; exit 77; }

# the previous commit, built on its own (its Makefile, its own build dir)
mkdir -p "$T/prev"
git -C "$ROOT" archive "$PREV" | tar -x -C "$T/prev"
make -C "$T/prev" -j2 ROLLOUT_GIT="$(git -C "$ROOT" rev-parse --short "$PREV")" build/rollout >"$T/prev-build.log" 2>&1 || { tail -20 "$T/prev-build.log"; fail "build of $PREV"; }
OLD="$T/prev/build/rollout"
log "built $("$OLD" version) from $PREV; current: $("$RO" version)"

LP=$(free_port)
URL="http://127.0.0.1:$LP/"
for v in 1 2; do
	cat >"$T/up-v$v.yaml" <<YAML
service: up
replicas: 4
listen: 127.0.0.1:$LP
template:
  version: "$v"
  command: ["$HELLO", "--port", "\${PORT}", "--version", "$v", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
strategy: {max_surge: 1, max_unavailable: 0, min_ready: 1s}
drain: {timeout: 5s}
lb: builtin
YAML
done
RO_NEW=$RO
RO=$OLD start_daemon
"$OLD" apply "$T/up-v1.yaml" --wait --timeout 60s >/dev/null || fail "v1 with the old binary"
[ "$(curl -s --max-time 5 "$URL")" = "hello from version 1" ] || fail "no answer through the proxy"

wrk -t2 -c16 -d14s --timeout 5s "$URL" >"$T/wrk" 2>&1 &
W=$!
sleep 1
"$OLD" apply "$T/up-v2.yaml" >/dev/null || fail "apply v2 with the old binary"
# stop the old daemon once the rollout is under way: a batch done, others to go
wait_until 20 has_rev up 2 || fail "the rollout did not start"
sleep 1.2
state=$(ro_state up)
revs=$(revisions_of up)
stop_daemon
log "old daemon stopped mid-rollout (state $state, instances by revision $revs)"
[ "$state" = "progressing" ] || [ "$state" = "waiting" ] || log "note: the rollout was $state when stopped"
RO=$RO_NEW start_daemon
log "current daemon started on the same DATA"
finished() { state_is up complete && [ "$(revisions_of up)" = "2:4" ]; }
wait_until 60 finished || fail "the current binary did not finish: $(ro_state up), $(revisions_of up)"
wait $W
cat "$T/wrk"
grep -q "requests in" "$T/wrk" || fail "wrk did not run"
grep -q "Socket errors" "$T/wrk" && fail "socket errors during the upgrade"
grep -q "Non-2xx or 3xx" "$T/wrk" && fail "non-2xx responses during the upgrade"
n=$(grep -c "" <(instance_pids)) || true
[ "$n" -eq 4 ] || fail "$n instance processes after the upgrade, want 4 (an orphan or a duplicate)"
log ok
