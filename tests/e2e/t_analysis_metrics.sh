#!/usr/bin/env bash
# GET /metrics: rollout state, instances, health check results, the proxy's requests by revision
# and class and latency histograms, the analysis verdict; valid Prometheus text (promtool check
# metrics when installed, and a strict checker of our own always).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/analysis_lib.sh"
start_daemon

strat='strategy:
  min_ready: 200ms
  watch: 1m
  analysis: {max_error_rate: 50%, window: 3s, min_requests: 10}'
v1=$(echo "$strat" | aspec api 1 2)
"$RO" apply "$v1" --wait --timeout 30s >/dev/null
v2=$(echo "$strat" | aspec api 2 2 --error-rate 0.2 --latency 5ms)
"$RO" apply "$v2" --wait --timeout 30s >/dev/null
traffic_start 4 20 2
wait_until 10 grep -q requests "$T/traffic.log" || fail "traffic did not end"
sleep 1.5
metrics() { curl -sf --unix-socket "$DATA/rollout.sock" http://rollout/metrics; }
metrics >"$T/metrics.txt" || fail "GET /metrics failed"
get() { python3 "$ROOT/tests/e2e/promcheck.py" --get "$1" <"$T/metrics.txt" 2>/dev/null || true; }

python3 "$ROOT/tests/e2e/promcheck.py" <"$T/metrics.txt" || { cat "$T/metrics.txt"; fail "strict format check"; }
if command -v promtool >/dev/null; then
	promtool check metrics <"$T/metrics.txt" || { cat "$T/metrics.txt"; fail "promtool check metrics"; }
else
	log "promtool not installed (Debian package prometheus): strict checker only"
fi

cat "$T/traffic.log"
sent=$(awk '{print $2}' "$T/traffic.log")
ok=$(get 'rollout_proxy_requests_total{service="api",revision="2",class="2xx"}')
bad=$(get 'rollout_proxy_requests_total{service="api",revision="2",class="5xx"}')
errors=$(get 'rollout_proxy_errors_total{service="api",revision="2"}')
count=$(get 'rollout_proxy_request_duration_seconds_count{service="api",revision="2"}')
fast=$(get 'rollout_proxy_request_duration_seconds_bucket{service="api",revision="2",le="0.001"}')
log "sent $sent: 2xx $ok 5xx $bad errors $errors count $count under 1ms $fast"
[ "$ok" != missing ] && [ "$bad" != missing ] || fail "no requests by class"
[ $((ok + bad)) -eq "$sent" ] || fail "2xx + 5xx = $((ok + bad)), sent $sent"
[ "$bad" -gt 0 ] && [ "$errors" -eq "$bad" ] || fail "5xx $bad, errors $errors"
[ "$count" -eq "$sent" ] || fail "histogram count $count, sent $sent"
[ "$fast" -eq 0 ] || fail "$fast requests faster than 1ms with --latency 5ms"
[ "$(get 'rollout_rollout_state{service="api",state="complete"}')" = 1 ] || fail "rollout state"
[ "$(get 'rollout_instances{service="api",revision="2",state="ready"}')" = 2 ] || fail "instances"
[ "$(get 'rollout_health_checks_total{service="api",result="healthy"}')" -ge 4 ] || fail "health checks"
[ "$(get 'rollout_analysis_verdict{service="api",verdict="pass"}')" = 1 ] || fail "verdict: $(grep verdict "$T/metrics.txt")"
ratio=$(get 'rollout_analysis_error_ratio{service="api"}')
python3 -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 0.05 < r < 0.45 else 1)" "$ratio" || fail "error ratio $ratio"
log "ok"
