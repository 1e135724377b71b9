/* Crash-loop backoff: exponential delays between restarts of a failing instance, reset by a
 * stable run. Pure: no clock, the caller passes every time. */
#include "core/backoff.h"

int backoff_next_count(int restarts, int64_t started_at, int64_t failed_at)
{
	if (failed_at - started_at >= BACKOFF_STABLE_MS || restarts < 0)
		return 1;
	return restarts >= BACKOFF_MAX_COUNT ? BACKOFF_MAX_COUNT : restarts + 1;
}

int64_t backoff_delay_ms(int restarts)
{
	if (restarts <= 0)
		return 0;
	int64_t d = BACKOFF_BASE_MS;
	/* Doubling stops at the cap, so no shift can overflow whatever the count. */
	for (int i = 1; i < restarts && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	return d < BACKOFF_CAP_MS ? d : BACKOFF_CAP_MS;
}

int64_t backoff_due(int restarts, int64_t failed_at) { return failed_at + backoff_delay_ms(restarts); }
