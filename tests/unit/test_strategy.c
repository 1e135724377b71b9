/* Unit tests of the strategy arithmetic the engine leans on: surge/unavailable rounding, batch
 * goals, durations and amounts (src/core/spec.c, src/core/amount.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/amount.h"
#include "core/spec.h"

static struct amount cnt(int v)
{
	return (struct amount){.percent = false, .value = v};
}

static struct amount pct(int v)
{
	return (struct amount){.percent = true, .value = v};
}

static void su(struct amount surge, struct amount unav, int replicas, int want_surge, int want_unav)
{
	struct spec_strategy st = {.max_surge = surge, .max_unavailable = unav};
	int s = -1, u = -1;
	spec_surge_unavailable(&st, replicas, &s, &u);
	assert_int_equal(s, want_surge);
	assert_int_equal(u, want_unav);
}

/* Kubernetes' rounding: surge up, unavailable down, both 0 makes unavailable 1. */
static void test_surge_unavailable(void **state)
{
	(void)state;
	su(pct(25), pct(25), 10, 3, 2);
	su(pct(25), cnt(0), 4, 1, 0);
	su(pct(0), pct(0), 1, 0, 1);
	su(cnt(0), pct(10), 5, 0, 1); /* 10% of 5 floors to 0 */
	su(pct(10), pct(10), 7, 1, 0);
	su(pct(50), pct(50), 3, 2, 1);
	su(cnt(0), pct(10), 100, 0, 10);
	su(cnt(2), cnt(5), 3, 2, 3); /* unavailable never above replicas */
	su(pct(100), pct(100), 8, 8, 8);
	su(pct(25), cnt(0), 0, 0, 1);
	su(pct(1), cnt(0), 1, 1, 0); /* any positive percent rounds surge up to 1 */
}

static void test_batches_absent(void **state)
{
	(void)state;
	struct spec_strategy st = {0};
	for (int n = 0; n <= 20; n++) {
		assert_int_equal(spec_batch_count(&st, n), 1);
		assert_int_equal(spec_batch_goal(&st, n, 0), n);
		assert_int_equal(spec_batch_goal(&st, n, 5), n);
	}
}

/* [1, "10%", "50%"] at N = 1..50: goals strictly increase to N, every batch has at least one
 * instance, and the last entry repeats. */
static void test_batches_ansible(void **state)
{
	(void)state;
	struct amount b[] = {cnt(1), pct(10), pct(50)};
	struct spec_strategy st = {.batches = b, .n_batches = 3};
	for (int n = 1; n <= 50; n++) {
		int count = spec_batch_count(&st, n);
		assert_true(count >= 1);
		int prev = 0;
		for (int i = 0; i < count; i++) {
			int g = spec_batch_goal(&st, n, i);
			assert_true(g > prev);
			assert_true(g <= n);
			int size = g - prev;
			int want = i == 0 ? 1 : i == 1 ? (n / 10 > 0 ? n / 10 : 1) : (n / 2 > 0 ? n / 2 : 1);
			if (g < n)
				assert_int_equal(size, want); /* only the last batch is cut short */
			else
				assert_true(size <= want);
			prev = g;
		}
		assert_int_equal(prev, n);
		assert_int_equal(spec_batch_goal(&st, n, count + 3), n);
	}
	/* N = 50: 1, then 5, then 25 and 25 again (cut to 19): goals 1, 6, 31, 50. */
	assert_int_equal(spec_batch_count(&st, 50), 4);
	assert_int_equal(spec_batch_goal(&st, 50, 0), 1);
	assert_int_equal(spec_batch_goal(&st, 50, 1), 6);
	assert_int_equal(spec_batch_goal(&st, 50, 2), 31);
	assert_int_equal(spec_batch_goal(&st, 50, 3), 50);
	/* N = 1: one batch of the one instance. */
	assert_int_equal(spec_batch_count(&st, 1), 1);
	/* N = 3: 1, then 10% floors to 0 so 1, then 50% floors to 1: three batches. */
	assert_int_equal(spec_batch_count(&st, 3), 3);
}

static void test_batches_counts_repeat(void **state)
{
	(void)state;
	struct amount b[] = {cnt(2)};
	struct spec_strategy st = {.batches = b, .n_batches = 1};
	assert_int_equal(spec_batch_count(&st, 7), 4);
	assert_int_equal(spec_batch_goal(&st, 7, 0), 2);
	assert_int_equal(spec_batch_goal(&st, 7, 2), 6);
	assert_int_equal(spec_batch_goal(&st, 7, 3), 7);
	struct amount big[] = {cnt(100)};
	st.batches = big;
	assert_int_equal(spec_batch_count(&st, 7), 1);
	assert_int_equal(spec_batch_goal(&st, 7, 0), 7);
}

static void test_pause_and_failures(void **state)
{
	(void)state;
	struct spec_pause p[] = {{.batch = 1, .duration_ms = 0}, {.batch = 3, .duration_ms = 60000}};
	struct spec_strategy st = {.pause_after = p, .n_pause_after = 2, .max_failures = pct(50)};
	assert_ptr_equal(spec_pause_after(&st, 1), &p[0]);
	assert_null(spec_pause_after(&st, 2));
	assert_int_equal(spec_pause_after(&st, 3)->duration_ms, 60000);
	assert_int_equal(spec_max_failures(&st, 5), 2);
	st.max_failures = cnt(3);
	assert_int_equal(spec_max_failures(&st, 100), 3);
}

static void dur_ok(const char *s, int64_t want)
{
	int64_t ms = -1;
	assert_int_equal(amount_parse_duration(s, &ms), 0);
	assert_int_equal(ms, want);
}

static void test_durations(void **state)
{
	(void)state;
	dur_ok("500ms", 500);
	dur_ok("2s", 2000);
	dur_ok("1m30s", 90000);
	dur_ok("1h", 3600000);
	dur_ok("1d", 86400000);
	dur_ok("0", 0);
	dur_ok("0s", 0);
	dur_ok("1h2m3s4ms", 3723004);
	const char *bad[] = {"", "5", "1x", "1s1m", "-1s", "s", "1.5s", "1 s", " 1s", "1s ", "1ss", "1s1s", "ms", "0x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 42;
		assert_int_equal(amount_parse_duration(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 42); /* untouched on error */
	}
	assert_int_equal(amount_parse_duration(NULL, &(int64_t){0}), -EINVAL);
	assert_int_equal(amount_parse_duration("99999999999999999999s", &(int64_t){0}), -ERANGE);
}

static void test_duration_format_round_trip(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(amount_format_duration(90000, buf, sizeof buf), "1m30s");
	assert_string_equal(amount_format_duration(500, buf, sizeof buf), "500ms");
	assert_string_equal(amount_format_duration(0, buf, sizeof buf), "0s");
	assert_string_equal(amount_format_duration(3723004, buf, sizeof buf), "1h2m3s4ms");
	assert_string_equal(amount_format_duration(86400000, buf, sizeof buf), "24h");
	const int64_t vals[] = {0, 1, 999, 1000, 1001, 59999, 60000, 61000, 3599999, 3600000, 86400001, 7 * 86400000LL};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		int64_t back = -1;
		amount_format_duration(vals[i], buf, sizeof buf);
		assert_int_equal(amount_parse_duration(buf, &back), 0);
		assert_int_equal(back, vals[i]);
	}
	/* A buffer too small is cut, still NUL-terminated. */
	char tiny[4];
	amount_format_duration(3723004, tiny, sizeof tiny);
	assert_true(strlen(tiny) < sizeof tiny);
}

static void test_amounts(void **state)
{
	(void)state;
	struct amount a = {0};
	assert_int_equal(amount_parse("3", &a), 0);
	assert_false(a.percent);
	assert_int_equal(a.value, 3);
	assert_int_equal(amount_parse("25%", &a), 0);
	assert_true(a.percent);
	assert_int_equal(a.value, 25);
	assert_int_equal(amount_parse("0", &a), 0);
	assert_int_equal(a.value, 0);
	const char *bad[] = {"", "-1", "1.5", "25 %", "%", "x", "3%%", " 3", "3 ", "+3", "0x10"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(amount_parse(bad[i], &a), -EINVAL);
	assert_int_equal(amount_parse(NULL, &a), -EINVAL);
	assert_int_equal(amount_parse("99999999999", &a), -ERANGE);

	assert_int_equal(amount_floor(pct(25), 10), 2);
	assert_int_equal(amount_ceil(pct(25), 10), 3);
	assert_int_equal(amount_floor(pct(33), 3), 0);
	assert_int_equal(amount_ceil(pct(33), 3), 1);
	assert_int_equal(amount_floor(pct(100), 7), 7);
	assert_int_equal(amount_ceil(pct(100), 7), 7);
	assert_int_equal(amount_floor(cnt(4), 10), 4);
	assert_int_equal(amount_ceil(cnt(4), 10), 4);
	assert_int_equal(amount_ceil(pct(1), 1000000000), 10000000); /* no overflow */

	char buf[16];
	const struct amount rt[] = {cnt(0), cnt(3), pct(0), pct(25), pct(100)};
	for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
		struct amount back = {0};
		assert_int_equal(amount_parse(amount_format(rt[i], buf, sizeof buf), &back), 0);
		assert_int_equal(back.percent, rt[i].percent);
		assert_int_equal(back.value, rt[i].value);
	}
	assert_string_equal(amount_format(pct(25), buf, sizeof buf), "25%");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_surge_unavailable),
		cmocka_unit_test(test_batches_absent),
		cmocka_unit_test(test_batches_ansible),
		cmocka_unit_test(test_batches_counts_repeat),
		cmocka_unit_test(test_pause_and_failures),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_duration_format_round_trip),
		cmocka_unit_test(test_amounts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
