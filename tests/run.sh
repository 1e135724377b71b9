#!/usr/bin/env bash
# Runs the whole suite: unit tests, simulator, end-to-end scenarios, then unit tests and the
# simulator again under ASan+UBSan (build-asan). Prints "N passed, N failed" last.
# ONLY=unit|sim|e2e|fuzz|asan restricts; LONG=1 runs long variants; E2E=name runs one scenario.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ONLY=${ONLY:-}
SIM_SEEDS=${SIM_SEEDS:-10000}
passed=0 failed=0 skipped=0
failures=()
log=$(mktemp -d /tmp/rollout-test.XXXXXX)

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# A cmocka binary: count its cases from cmocka's summary lines.
run_unit() {
	local bin=$1 tag=$2 out p f
	out="$log/$(basename "$bin").$tag.log"
	# No unit binary may hang the run: 5 minutes, then it counts as failed.
	timeout -k 5 300 "$bin" >"$out" 2>&1
	local rc=$?
	p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$out" | awk '{s+=$NF} END {print s+0}')
	f=$(grep -Eo '^\[  FAILED  \] [0-9]+' "$out" | awk '{s+=$NF} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		failures+=("$tag $(basename "$bin")"); echo "FAIL $tag $(basename "$bin") (log: $out)"; tail -30 "$out"
	else
		echo "ok   $tag $(basename "$bin") ($p)"
	fi
}

# One command counted as one test: exit 0 pass, 77 skip, else fail.
run_one() {
	local name=$1; shift
	local out="$log/$(echo "$name" | tr ' /' '__').log" t0=$SECONDS
	"$@" >"$out" 2>&1
	local rc=$?
	if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "ok   $name ($((SECONDS - t0))s)"
	elif [ $rc -eq 77 ]; then skipped=$((skipped + 1)); echo "skip $name: $(tail -1 "$out")"
	else failed=$((failed + 1)); failures+=("$name"); echo "FAIL $name (rc $rc, log: $out)"; tail -40 "$out"; fi
}

if want unit; then
	for t in "$BUILD"/tests/test_*; do [ -x "$t" ] && run_unit "$t" unit; done
fi
if want sim; then
	run_one "sim $SIM_SEEDS seeds" "$BUILD/rollout-sim" --seeds "$SIM_SEEDS"
fi
if want e2e; then
	for t in tests/e2e/t_*.sh; do
		[ -f "$t" ] || continue
		n=$(basename "$t" .sh)
		[ -n "${E2E:-}" ] && [ "$E2E" != "$n" ] && continue
		run_one "e2e $n" env BUILD="$BUILD" timeout 600 bash "$t"
	done
fi
if want fuzz && [ -d build-fuzz/fuzz ]; then
	# Each libFuzzer target for a short while (FUZZ_SECONDS, default 10): a crash or leak fails it.
	for f in build-fuzz/fuzz/fuzz_*; do
		[ -x "$f" ] || continue
		corpus=$(mktemp -d "$log/corpus.XXXXXX")
		[ -d "tests/fuzz/corpus/$(basename "$f")" ] && cp "tests/fuzz/corpus/$(basename "$f")"/* "$corpus"/ 2>/dev/null
		run_one "fuzz $(basename "$f") ${FUZZ_SECONDS:-10}s" "$f" -max_total_time="${FUZZ_SECONDS:-10}" \
			-rss_limit_mb=2048 -print_final_stats=1 "$corpus"
	done
fi
if want asan && [ -d build-asan/tests ]; then
	for t in build-asan/tests/test_*; do [ -x "$t" ] && run_unit "$t" asan; done
	run_one "asan sim 1000 seeds" build-asan/rollout-sim --seeds 1000
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
else echo "$passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]
