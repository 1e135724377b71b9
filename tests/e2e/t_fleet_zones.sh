#!/usr/bin/env bash
# Fleet zones and per-host ports: 4 namespace hosts in zones a (h1 h2) and b (h3 h4), each host
# listing the two ports its instances may use. strategy.zones one_per_batch with a 50% floor per
# zone: every instance runs on one of its host's ports; a rollout starts the new revision in zone
# a before any in zone b, and never leaves a zone with less than half its share available.
set -euo pipefail
. "$(dirname "$0")/netns_lib.sh"
fleet_up 4
fleet_start_daemon
P1=$(free_port) P2=$(free_port)

fspec() {
	local v=$1 i z
	{
		cat <<YAML
service: zn
replicas: 4
lb: none
template:
  version: "$v"
  command: ["$HELLO", "--host", "0.0.0.0", "--port", "\${PORT}", "--version", "$v", "--threads", "1"]
health:
  http: {path: /healthz}
  interval: 100ms
  timeout: 100ms
strategy:
  batches: [1, 100%]
  max_surge: 1
  max_unavailable: 0
  health_deadline: 10s
  zones: {label: zone, one_per_batch: true, min_available: 50%}
stop: {grace: 2s}
targets:
YAML
		for i in 1 2 3 4; do
			z=a; [ "$i" -gt 2 ] && z=b
			echo "  - {host: ssh://root@${FHOSTS_IP[$i]}, labels: {zone: $z}, ports: [$P1, $P2]}"
		done
	} >"$T/zn-v$v.yaml"
	echo "$T/zn-v$v.yaml"
}

# placed: every instance on a listed port of its host, in its host's zone, one per host.
placed() {
	status_json zn | python3 -c '
import json, sys
d = json.load(sys.stdin)
ips = sys.argv[3].split()
zone_of = {f"root@{ip}:22": ("a" if k < 2 else "b") for k, ip in enumerate(ips)}
hosts = []
for i in d["instances"]:
    if i["state"] in ("gone",): continue
    assert i["port"] in (int(sys.argv[1]), int(sys.argv[2])), "instance %d on port %d" % (i["id"], i["port"])
    assert i.get("zone") == zone_of[i["host"]], "instance %d in zone %s on %s" % (i["id"], i.get("zone"), i["host"])
    hosts.append(i["host"])
assert sorted(hosts) == sorted(zone_of), f"hosts {sorted(hosts)}"
' "$P1" "$P2" "${FHOSTS_IP[*]:1}"
}

log "v1 to 4 hosts in 2 zones, on the hosts' ports"
"$RO" apply "$(fspec 1)" --wait --timeout 90s || fail "v1 did not complete"
placed || fail "v1 placement"
for i in 1 2 3 4; do
	fleet_ssh "$i" curl -fsS "http://127.0.0.1:$P1/healthz" >/dev/null 2>&1 ||
		fleet_ssh "$i" curl -fsS "http://127.0.0.1:$P2/healthz" >/dev/null 2>&1 ||
		fail "host $i answers on neither listed port"
done

log "v2: zone a, then zone b; each zone keeps half its share available"
( while :; do "$RO" status zn -o json 2>/dev/null | tr -d '\n'; echo; sleep 0.05; done ) >"$T/watch.jsonl" &
WATCH=$!
"$RO" apply "$(fspec 2)" --wait --timeout 120s || fail "v2 did not complete"
sleep 0.3
kill "$WATCH" 2>/dev/null || true
placed || fail "v2 placement"
"$RO" events zn >"$T/events.txt"
starts=$(grep -o "(revision 2) starting in zone [ab]" "$T/events.txt" | awk '{print $NF}' | tr -d '\n')
[ "$starts" = "aabb" ] || { cat "$T/events.txt"; fail "revision 2 started in zones '$starts', want aabb"; }
python3 - "$T/watch.jsonl" <<'PY' || fail "a zone went below its floor"
import json, sys
seen = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"): continue
    try: d = json.loads(line)
    except ValueError: continue
    avail = {"a": 0, "b": 0}
    for i in d.get("instances", []):
        if i.get("available") and i.get("zone") in avail: avail[i["zone"]] += 1
    if d.get("rollout") and d["rollout"].get("state") == "progressing":
        seen += 1
        assert min(avail.values()) >= 1, f"zone availability {avail}"
print(f"{seen} snapshots while progressing")
assert seen > 0, "no snapshot while the rollout progressed"
PY
log "ok"
