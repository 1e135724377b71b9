#!/usr/bin/env bash
# What a crash loop writes is bounded (issue 11.5): with --keep-events 100, 20 instances that
# exit soon after each start, and `/bin/false` x 2, keep recording failures and restarts, yet
# each service's events stay near 100
# while the daemon runs (pruned inside the step's commit, not only at start and every 10
# minutes), and state.db gives pruned pages back (incremental auto_vacuum).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon --keep-events 100

count() {
	python3 - "$DATA/state.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT count(*) FROM events WHERE service = ?", (sys.argv[2],)).fetchone()[0])
PY
}
pragma() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA $1').fetchone()[0])" "$DATA/state.db"; }

flag="$T/crash"
cat >"$T/c.yaml" <<YAML
service: c
replicas: 20
lb: none
template:
  version: "1"
  command: ["/bin/sh", "-c", "if [ -e $flag ]; then sleep 1.2; exit 1; fi; exec sleep 600"]
strategy: {max_surge: 100%}
stop: {grace: 1s}
YAML
"$RO" apply "$T/c.yaml" --wait --timeout 30s
cat >"$T/f.yaml" <<YAML
service: f
replicas: 2
lb: none
template:
  version: "1"
  command: ["/bin/false"]
stop: {grace: 1s}
YAML
"$RO" apply "$T/f.yaml" # the issue's own: before the fix, a tight loop of three events a start
touch "$flag"
for p in $(status_json c | jq_ "' '.join(str(i['pid']) for i in d['instances'])"); do kill -9 "$p"; done

# Each instance of c now runs 1.2 s (available after 1 s), then exits: three events a round
# (starting, available, failed) for 20 slots, 5 rounds in 10 s with the backoff.
max_c=0 max_f=0
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ]; do
	n=$(count c); [ "$n" -gt "$max_c" ] && max_c=$n
	n=$(count f); [ "$n" -gt "$max_f" ] && max_f=$n
	sleep 0.2
done
last=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT seq FROM sqlite_sequence WHERE name = \\'events\\'').fetchone()[0])" "$DATA/state.db")
log "events kept at most: c $max_c, f $max_f; $last written"
# keep 100, a prune once 10 more accrued, plus at most one step's worth (2 per instance) on top
bound=$((100 + 10 + 2 * 20 + 10))
[ "$max_c" -le $bound ] || fail "$max_c events of service c kept with --keep-events 100"
[ "$max_f" -le $bound ] || fail "$max_f events of service f kept with --keep-events 100"
[ "$last" -gt 200 ] || fail "only $last events written: the scenario did not loop"
[ "$(pragma auto_vacuum)" = 2 ] || fail "auto_vacuum is $(pragma auto_vacuum), not incremental"
[ "$(pragma freelist_count)" -le 8 ] || fail "$(pragma freelist_count) free pages kept in the file"
log ok
