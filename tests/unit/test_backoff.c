/* The crash-loop backoff rule (src/core/backoff.c): delays, the cap, the reset after a stable run. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/backoff.h"

static void test_delays_double_to_the_cap(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay_ms(0), 0); /* a first start waits for nothing */
	assert_int_equal(backoff_delay_ms(-3), 0);
	assert_int_equal(backoff_delay_ms(1), BACKOFF_BASE_MS);
	assert_int_equal(backoff_delay_ms(2), 2 * BACKOFF_BASE_MS);
	assert_int_equal(backoff_delay_ms(3), 4 * BACKOFF_BASE_MS);
	assert_int_equal(backoff_delay_ms(9), 256 * BACKOFF_BASE_MS);
	assert_int_equal(backoff_delay_ms(10), BACKOFF_CAP_MS); /* 51.2 s capped */
	assert_int_equal(backoff_delay_ms(BACKOFF_MAX_COUNT), BACKOFF_CAP_MS);
	assert_int_equal(backoff_delay_ms(INT_MAX), BACKOFF_CAP_MS);
	for (int n = 1; n < 64; n++)
		assert_true(backoff_delay_ms(n + 1) >= backoff_delay_ms(n));
}

static void test_count_grows_and_resets_after_a_stable_run(void **state)
{
	(void)state;
	assert_int_equal(backoff_next_count(0, 1000, 1050), 1);
	assert_int_equal(backoff_next_count(1, 1000, 1050), 2);
	assert_int_equal(backoff_next_count(7, 0, BACKOFF_STABLE_MS - 1), 8);
	assert_int_equal(backoff_next_count(7, 0, BACKOFF_STABLE_MS), 1); /* it had stayed up */
	assert_int_equal(backoff_next_count(7, 5000, 5000 + 3600000), 1);
	assert_int_equal(backoff_next_count(BACKOFF_MAX_COUNT, 0, 1), BACKOFF_MAX_COUNT);
	assert_int_equal(backoff_next_count(-1, 0, 1), 1);
}

static void test_due(void **state)
{
	(void)state;
	assert_int_equal(backoff_due(0, 5000), 5000);
	assert_int_equal(backoff_due(1, 5000), 5000 + BACKOFF_BASE_MS);
	assert_int_equal(backoff_due(4, 5000), 5000 + 8 * BACKOFF_BASE_MS);
	assert_int_equal(backoff_due(100, 5000), 5000 + BACKOFF_CAP_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delays_double_to_the_cap),
	    cmocka_unit_test(test_count_grows_and_resets_after_a_stable_run),
	    cmocka_unit_test(test_due),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
