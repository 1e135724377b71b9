#!/usr/bin/env python3
"""Steady, light HTTP traffic for analysis scenarios: --conns keep-alive connections to --url, each
sending GET at most --rate requests a second, for --seconds (or until SIGTERM). Prints
"requests N status:count ..." at the end. Connection errors are counted, never fatal."""
import argparse, http.client, signal, sys, threading, time, urllib.parse

stop = threading.Event()


def worker(host, port, path, rate, end, counts, lock):
    conn = None
    gap = 1.0 / rate
    nxt = time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            key = str(r.status)
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception:
            key = "error"
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            counts[key] = counts.get(key, 0) + 1
        nxt += gap
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, default=25)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts, lock = {}, threading.Lock()
    end = time.monotonic() + a.seconds
    ts = [threading.Thread(target=worker, args=(u.hostname, u.port, u.path or "/", a.rate, end, counts, lock))
          for _ in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        while t.is_alive():
            t.join(0.2)
    print("requests", sum(counts.values()), " ".join(f"{k}:{v}" for k, v in sorted(counts.items())))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
