#!/usr/bin/env bash
# kill -9 of the daemon at random points of rollouts (50; 200 with LONG=1), restart, converge:
# every instance on the expected revision and answering with its version, no orphan process, no
# duplicate, no port clash, no instance of an unrecorded revision.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-$([ "${LONG:-0}" = 1 ] && echo 200 || echo 50)}
SEED=${SEED:-$RANDOM}
RANDOM=$SEED
log "rounds $ROUNDS, seed $SEED (SEED=$SEED to replay the same kill points)"
start_daemon

strat='strategy:
  max_surge: 1
  max_unavailable: 1
  batches: [1, 100%]
  min_ready: 100ms
  health_deadline: 4s
drain: {timeout: 1s}
stop: {grace: 1s}'

check_converged() {
	local round=$1
	python3 - "$DATA/rollout.sock" "$(realpath "$DATA")" "$round" <<'PY'
import http.client, json, os, socket, sys, urllib.request
sock, data, rnd = sys.argv[1], sys.argv[2], sys.argv[3]
class U(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sock)
def get(p):
    c = U("localhost", timeout=5); c.request("GET", p); r = c.getresponse(); return json.loads(r.read())
d = get("/v1/services/k")
revs = {r["revision"]: r["version"] for r in get("/v1/services/k/revisions")["revisions"]}
bad = []
inst = d["instances"]
if len(inst) != d["replicas"]: bad.append(f"{len(inst)} instances, want {d['replicas']}")
ids = [i["id"] for i in inst]; ports = [i["port"] for i in inst]; pids = [i["pid"] for i in inst]
if len(set(ids)) != len(ids): bad.append(f"duplicate ids {ids}")
if len(set(ports)) != len(ports): bad.append(f"port clash {ports}")
if len(set(pids)) != len(pids) or 0 in pids: bad.append(f"pids {pids}")
for i in inst:
    if i["revision"] not in revs: bad.append(f"instance {i['id']} of unrecorded revision {i['revision']}")
    if i["revision"] != d["target_revision"]: bad.append(f"instance {i['id']} on revision {i['revision']}, target {d['target_revision']}")
    if not i["available"]: bad.append(f"instance {i['id']} not available ({i['state']})")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{i['port']}/", timeout=2).read().decode()
        want = f"hello from version {revs.get(i['revision'])}\n"
        if body != want: bad.append(f"instance {i['id']} port {i['port']} answers {body!r}, want {want!r}")
    except Exception as e:
        bad.append(f"instance {i['id']} port {i['port']}: {e}")
# Processes carrying our marker: exactly the recorded ones (process group leaders).
running = set()
for p in os.listdir("/proc"):
    if not p.isdigit(): continue
    try:
        env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
    except OSError:
        continue
    if f"ROLLOUT_DAEMON={data}".encode() in env:
        running.add(int(p))
if running != set(pids): bad.append(f"processes {sorted(running)} != recorded {sorted(pids)}")
if bad:
    print(f"round {rnd}: " + "; ".join(bad)); sys.exit(1)
PY
}

done_state() { case "$(ro_state k)" in complete|rolled_back|failed|aborted) return 0;; *) return 1;; esac; }

v=1
"$RO" apply "$(echo "$strat" | spec k $v 3)" --wait --timeout 60s
for round in $(seq 1 "$ROUNDS"); do
	v=$((v + 1))
	extra=()
	[ $((round % 9)) -eq 0 ] && extra=(--fail-health)
	f=$(echo "$strat" | spec k $v 3 "${extra[@]}")
	if [ $((round % 11)) -eq 0 ]; then "$RO" undo k >/dev/null 2>&1 || true; else "$RO" apply "$f" >/dev/null; fi
	# A random point of the rollout: 0 to 1.5 s in.
	sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.3f", (r % 1500) / 1000}')"
	kill9_daemon
	start_daemon
	wait_until 60 done_state || fail "round $round: not converged: $(ro_state k)"
	# A finished rollback still replaces what failed; let instances settle to available.
	wait_until 20 check_converged "$round" >/dev/null 2>&1 || check_converged "$round" || fail "round $round (seed $SEED)"
	[ $((round % 10)) -eq 0 ] && log "round $round ok ($(ro_state k), $(revisions_of k))"
done
log "ok: $ROUNDS kill -9 rounds"
