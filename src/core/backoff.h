/* Crash-loop backoff: when an instance that failed may be started again, as a pure rule of its
 * restart count and its last start and failure times (systemd's Restart=, Kubernetes'
 * CrashLoopBackOff). The engine asks it; docs/engine.md "Restarts" says it in prose. */
#ifndef ROLLOUT_CORE_BACKOFF_H
#define ROLLOUT_CORE_BACKOFF_H

#include <stdint.h>

/* The delay before restart n is BACKOFF_BASE_MS * 2^(n-1), at most BACKOFF_CAP_MS. */
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS	30000
/* An instance that stayed up this long before it failed was not crash-looping: its replacement
 * counts as a first restart again. */
#define BACKOFF_STABLE_MS 10000

/* The restart count of the replacement of an instance that had `restarts` restarts before it,
 * started at `started_at` and failed at `failed_at`: restarts + 1, or 1 when it stayed up for
 * BACKOFF_STABLE_MS. Saturates at BACKOFF_MAX_COUNT. */
#define BACKOFF_MAX_COUNT 1000000
int backoff_next_count(int restarts, int64_t started_at, int64_t failed_at);

/* The delay before restart number `restarts` (0 for restarts <= 0: a first start waits for
 * nothing). */
int64_t backoff_delay_ms(int restarts);

/* When restart number `restarts` of an instance that failed at `failed_at` is due. */
int64_t backoff_due(int restarts, int64_t failed_at);

#endif
