#!/usr/bin/env bash
# Benchmark: the same two hello backends behind rollout proxy, HAProxy and nginx (one thread or
# worker each), wrk on loopback, keep-alive and `Connection: close`, runs interleaved; prints the
# median req/s and p99 of each, the ratios to rollout proxy, and each proxy's RSS per 10k idle
# client connections. Not a test: it prints figures. ROUNDS (3), SECONDS_ (5), CONNS (64).
# PROXY_CMD overrides how rollout proxy is started.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
DUR=${SECONDS_:-5}
CONNS=${CONNS:-64}
PROXY_CMD=${PROXY_CMD:-$BUILD/rollout proxy}
for c in wrk haproxy nginx python3 curl; do
	command -v $c >/dev/null || { echo "bench: $c is missing (bash scripts/deps.sh --bench)"; exit 1; }
done
D=$(mktemp -d /tmp/rollout-bench.XXXXXX)
PIDS=()
cleanup() {
	exec 2>/dev/null # bash's "Killed" notices for what we stop here are noise
	# nginx's master stops its workers on TERM; a KILL would leave them running. So TERM first.
	if [ -f "$D/nginx.pid" ]; then
		kill -TERM "$(cat "$D/nginx.pid")" 2>/dev/null
		sleep 1
	fi
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	pkill -9 -P "$$" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM # a signal fails the run; EXIT cleans up
ulimit -n "$(ulimit -Hn)"
# idle connections opened for the RSS figure (scaled to 10k): below the fd limits of the configs
IDLE=${IDLE:-8000}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# hello VERSION VAR: starts a backend in this shell (so cleanup knows its pid) and sets VAR to its port.
hello() {
	local out="$D/hello.$1"
	: >"$out"
	"$BUILD/hello" --port 0 --version "$1" --threads 1 >"$out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		local p; p=$(sed -n 's/^hello .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
		[ -n "$p" ] && { printf -v "$2" '%s' "$p"; return; }
		sleep 0.05
	done
	echo "bench: hello did not start" >&2; exit 1
}
hello a B1; hello b B2
PR=$(free_port); PH=$(free_port); PN=$(free_port)
fill() { sed -e "s|@DIR@|$D|g" -e "s|@PORT@|$2|g" -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" "$1" >"$3"; }

$PROXY_CMD --admin "$D/proxy.sock" 2>"$D/proxy.log" &
RPID=$!
PIDS+=($RPID)
for _ in $(seq 100); do curl -s --unix-socket "$D/proxy.sock" http://p/v1/health >/dev/null && break; sleep 0.05; done
curl -s --unix-socket "$D/proxy.sock" -X PUT http://p/v1/services/hello -d \
	"{\"listen\":\"127.0.0.1:$PR\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:$B1\"},{\"id\":2,\"addr\":\"127.0.0.1:$B2\"}]}" >/dev/null
fill bench/haproxy.cfg "$PH" "$D/haproxy.cfg"
haproxy -f "$D/haproxy.cfg" -db >"$D/haproxy.log" 2>&1 &
HPID=$!
PIDS+=($HPID)
fill bench/nginx.conf "$PN" "$D/nginx.conf"
mkdir -p "$D/nginx-body"
nginx -c "$D/nginx.conf" -p "$D" >"$D/nginx.log" 2>&1 &
NPID=$!
PIDS+=($NPID)
sleep 1
for p in $PR $PH $PN; do
	[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$p/")" = 200 ] || { echo "bench: port $p does not answer"; cat "$D"/*.log "$D"/nginx.err 2>/dev/null; exit 1; }
done

# wrk_run PORT MODE: prints "req/s p99_ms errors"
wrk_run() {
	local args=()
	[ "$2" = close ] && args=(-H 'Connection: close')
	local out
	out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "${args[@]}" "http://127.0.0.1:$1/" 2>&1)
	local rps p99 err
	rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p')
	p99=$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) sub("ms","",v); else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}')
	err=$(echo "$out" | grep -c "Socket errors\|Non-2xx")
	echo "$rps $p99 $err"
}
declare -A R
names=(rollout haproxy nginx)
declare -A PORT=([rollout]=$PR [haproxy]=$PH [nginx]=$PN)
for mode in keepalive close; do
	for r in $(seq "$ROUNDS"); do
		for n in "${names[@]}"; do
			res=$(wrk_run "${PORT[$n]}" "$mode")
			R[$n.$mode]="${R[$n.$mode]:-} $res"
			echo "round $r $mode $n: req/s p99_ms errors = $res"
		done
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { echo "$1" | awk -v c="$2" '{for (i=c; i<=NF; i+=3) printf "%s ", $i}'; }
echo
printf '%-9s %-9s %10s %8s %14s\n' mode proxy "req/s" "p99 ms" "rollout/this"
for mode in keepalive close; do
	base=$(col "${R[rollout.$mode]}" 1 | median)
	for n in "${names[@]}"; do
		rps=$(col "${R[$n.$mode]}" 1 | median)
		p99=$(col "${R[$n.$mode]}" 2 | median)
		printf '%-9s %-9s %10.0f %8.2f %14.2f\n' "$mode" "$n" "$rps" "$p99" "$(echo "$base / $rps" | bc -l)"
	done
done

# RSS per 10k idle client connections
cat >"$D/idle.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    socks.append(s)
print("open", flush=True)
time.sleep(float(sys.argv[3]))
PY
rss_kb() { # total RSS of a pid and its children
	local t=0 p
	for p in $1 $(pgrep -P "$1"); do t=$((t + $(awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0))); done
	echo $t
}
echo
printf '%-9s %12s %12s %14s\n' proxy "RSS idle KB" "RSS +$IDLE KB" "KB per 10k"
for n in "${names[@]}"; do
	pid=$RPID; [ $n = haproxy ] && pid=$HPID; [ $n = nginx ] && pid=$NPID
	before=$(rss_kb $pid)
	python3 "$D/idle.py" "${PORT[$n]}" "$IDLE" 4 >"$D/idle.out" 2>&1 &
	ip=$!
	for _ in $(seq 100); do grep -q open "$D/idle.out" && break; sleep 0.1; done
	sleep 1
	after=$(rss_kb $pid)
	wait $ip
	printf '%-9s %12d %12d %14d\n' "$n" "$before" "$after" $(((after - before) * 10000 / IDLE))
done
