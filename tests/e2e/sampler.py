#!/usr/bin/env python3
"""Samples a service's status from the daemon every 50 ms and checks DESIGN's invariants while
rollouts move: available >= replicas - max_unavailable (unless --no-floor: faults are injected)
and total <= replicas + max_surge. Runs until killed (SIGTERM) or --seconds; prints a summary and
exits 1 on any violation."""
import argparse, http.client, json, math, signal, socket, sys, time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def amount(v, replicas, up):
    v = str(v)
    if v.endswith("%"):
        x = int(v[:-1]) * replicas / 100.0
        return math.ceil(x) if up else math.floor(x)
    return int(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sock", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--surge", default="25%")
    ap.add_argument("--unavailable", default="0")
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--seconds", type=float, default=600)
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    samples = violations = 0
    end = time.time() + a.seconds
    while not stop and time.time() < end:
        try:
            c = UnixHTTP(a.sock)
            c.request("GET", "/v1/services/" + a.service)
            r = c.getresponse()
            body = r.read()
            c.close()
        except OSError:
            time.sleep(0.05)
            continue
        if r.status != 200:
            time.sleep(0.05)
            continue
        d = json.loads(body)
        ro = d.get("rollout") or {}
        n = d["replicas"]
        surge, unav = amount(a.surge, n, True), amount(a.unavailable, n, False)
        if surge == 0 and unav == 0:
            unav = 1
        samples += 1
        total, avail = d["counts"]["total"], d["counts"]["available"]
        moving = ro.get("state") in ("progressing", "rolling_back") and ro.get("kind") != "scale"
        # A scale-down starts above the new ceiling by definition: the engine only starts nothing then.
        if total > n + surge and ro.get("kind") != "scale":
            violations += 1
            print(f"violation: total {total} > replicas {n} + surge {surge}: {ro.get('state')}", flush=True)
        if moving and not a.no_floor and ro.get("to_revision") and avail < n - unav and ro.get("from_revision"):
            violations += 1
            print(f"violation: available {avail} < replicas {n} - unavailable {unav}: {ro.get('state')}", flush=True)
        time.sleep(0.05)
    print(f"sampler: {samples} samples, {violations} violations", flush=True)
    sys.exit(1 if violations or samples == 0 else 0)


main()
