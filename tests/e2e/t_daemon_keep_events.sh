#!/usr/bin/env bash
# Event retention: after two rollouts, a daemon restarted with --keep-events 5 logs that it pruned,
# keeps the newest 5 of the events it had (new ones then displace them), and the events it writes
# from then on are pruned in their commits: never more than 5.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
start_daemon
deploy_v1 web 4
v2=$(rolling_strategy 300ms "batches: [1, 50%]" | spec web 2 4)
"$RO" apply "$v2" --wait --timeout 60s
[ "$(revisions_of web)" = "2:4" ] || fail "after v2: $(revisions_of web)"

log "event retention: a restart with --keep-events 5 leaves the newest 5 (new ones then displace them)"
ev_ids() { "$RO" events web -o json | python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["id"]) for l in sys.stdin if l.strip()))'; }
before=$(ev_ids)
[ "$(echo "$before" | wc -w)" -gt 5 ] || fail "too few events to prune"
stop_daemon
start_daemon --keep-events 5
grep -q 'msg="pruned old events"' "$T/daemon.log" || fail "no pruning logged"
max=$(echo "$before" | tr ' ' '\n' | tail -1)
kept=$(for i in $(ev_ids); do if [ "$i" -le "$max" ]; then echo "$i"; fi; done | tr '\n' ' ' | sed 's/ $//')
nk=$(echo "$kept" | wc -w)
[ "$nk" -le 5 ] && [ "$kept" = "$(echo "$before" | tr ' ' '\n' | tail -n "$nk" | tr '\n' ' ' | sed 's/ $//')" ] ||
	fail "kept $kept of $before"
# The daemon's own steps since then are pruned in their commits: never much more than 5.
[ "$(ev_ids | wc -w)" -le 5 ] || fail "$(ev_ids | wc -w) events kept with --keep-events 5: $(ev_ids)"
log "ok"
