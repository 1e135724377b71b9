/* Helpers for unit tests that drive a libuv loop themselves: a clock, "run until a count is
 * reached or time is up", and "run for a while". Header-only; each test includes it. */
#ifndef ROLLOUT_TESTS_UVTEST_H
#define ROLLOUT_TESTS_UVTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include <uv.h>

static inline uint64_t uvt_now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* Runs loop until *counter reaches want or timeout_ms passes; returns whether it did. */
static inline bool uvt_run_until(uv_loop_t *loop, const int *counter, int want, int timeout_ms)
{
	uint64_t end = uvt_now_ms() + (uint64_t)timeout_ms;
	while (*counter < want && uvt_now_ms() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (*counter < want)
			usleep(1000);
	}
	return *counter >= want;
}

/* Runs loop for ms milliseconds, whatever happens. */
static inline void uvt_spin(uv_loop_t *loop, int ms)
{
	uint64_t end = uvt_now_ms() + (uint64_t)ms;
	while (uvt_now_ms() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

#endif
