#!/usr/bin/env bash
# Fleet: a secret env value reaches the remote program but never any process's command line (ssh,
# the remote shell, rollout host), the daemon's log, events or status, the host's rollout files, or
# the daemon's database (only DATA/secrets/sec, 0600, has it).
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 2
fleet_start_daemon

SECRET="hush-77-fleet-$RANDOM"
printf '%s\n' "$SECRET" >"$T/pattern" # grep -f: the sampler's own command line does not hold it
cat >"$T/sec.yaml" <<YAML
service: sec
replicas: 2
lb: none
template:
  version: "1"
  command: ["/bin/sh", "-c", "printf %s \"\$TOKEN\" >\"\$ROLLOUT_HOME/got.\$PORT\"; exec $HELLO --host 0.0.0.0 --port \$PORT --threads 1"]
  env: {TOKEN: {value: "$SECRET", secret: true}, PLAIN: visible}
health:
  http: {path: /healthz}
  interval: 200ms
  timeout: 200ms
$(fleet_targets)
YAML

# Every command line on the machine, every 20 ms, while instances start and stop.
( set +e; while :; do grep -lsa -F -f "$T/pattern" /proc/[0-9]*/cmdline >>"$T/hits" 2>/dev/null; sleep 0.02; done ) &
SAMPLER=$!
"$RO" apply "$T/sec.yaml" --wait --timeout 60s >/dev/null || { kill $SAMPLER; fail "the rollout did not complete"; }
sed 's/^replicas: 2$/replicas: 0/' "$T/sec.yaml" >"$T/sec0.yaml"
got=$(cat "$T"/hosts/*/home/got.* | tr -d '\n')
"$RO" apply "$T/sec0.yaml" --wait --timeout 60s >/dev/null || { kill $SAMPLER; fail "scale to 0 did not complete"; }
kill $SAMPLER 2>/dev/null || fail "the sampler died"; wait $SAMPLER 2>/dev/null || true

[ "$got" = "$SECRET$SECRET" ] || fail "the programs did not get the secret: '$got'"
[ ! -s "$T/hits" ] || fail "the secret was on a command line: $(sort -u "$T/hits" | head -3)"
! grep -q -F -f "$T/pattern" "$T/daemon.log" || fail "the secret is in the daemon's log"
! "$RO" events sec | grep -q -F -f "$T/pattern" || fail "the secret is in the events"
! status_json sec | grep -q -F -f "$T/pattern" || fail "the secret is in the status"
rm -f "$T"/hosts/*/home/got.*
! grep -rq -F -f "$T/pattern" "$T"/hosts/*/home/run "$T"/hosts/*/home/logs || fail "the secret is in a host's rollout files"
# The daemon's data directory: not in the database files (WAL included) nor anywhere else as
# written; the 0600 secrets file holds it, hex-encoded.
! grep -rlqa -F -f "$T/pattern" "$DATA" || fail "the secret is in the daemon's data: $(grep -rla -F -f "$T/pattern" "$DATA")"
hex=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')
grep -q "^1 TOKEN $hex$" "$DATA/secrets/sec" || fail "the secret is not in DATA/secrets/sec"
[ "$(stat -c %a "$DATA/secrets/sec")" = 600 ] || fail "DATA/secrets/sec is not 0600"
log "ok"
