#!/usr/bin/env bash
# Engine benchmark: one rollout of N instances (default 10,000) through the real engine with ideal
# simulated drivers (build/rollout-sim --bench N). Prints CPU seconds and peak RSS against the
# goal (< 1 s, < 64 MB). A benchmark, not a test: it prints figures and exits 0 unless the engine
# did not converge.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${1:-10000}
make -s -j2 "$BUILD/rollout-sim" >/dev/null
exec "$BUILD/rollout-sim" --bench "$N"
