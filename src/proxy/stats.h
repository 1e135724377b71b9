/* Proxy statistics: request counters by status class and a log-scale latency histogram with
 * percentiles, kept per backend and per revision; rendered as JSON for the admin API. */
#ifndef ROLLOUT_PROXY_STATS_H
#define ROLLOUT_PROXY_STATS_H

#include <jansson.h>
#include <stdint.h>

/* Four buckets per power of two of microseconds, up to 2^25 us (33 s); the last one is open. */
#define PROXY_HIST_BUCKETS 96

struct proxy_hist {
	uint64_t count;
	uint64_t b[PROXY_HIST_BUCKETS];
};

struct proxy_counters {
	uint64_t req[4];          /* responses sent to clients: 2xx, 3xx, 4xx, 5xx */
	uint64_t connect_errors;  /* connection attempts to the backend that failed or timed out */
	uint64_t upstream_errors; /* upstream faults after connecting: resets, bad responses, timeouts */
	uint64_t retries;         /* requests moved to another connection or backend */
	struct proxy_hist lat;    /* request latency: head received to response fully received */
};

/* The bucket index of a latency in microseconds. */
int proxy_hist_bucket(uint64_t us);
/* The lower and upper bounds in microseconds of bucket i. */
void proxy_hist_bounds(int i, uint64_t *lo, uint64_t *hi);
void proxy_hist_add(struct proxy_hist *h, uint64_t us);
/* The q-quantile (0 < q <= 1) in milliseconds: the geometric middle of the bucket holding it;
 * 0 when the histogram is empty. */
double proxy_hist_quantile(const struct proxy_hist *h, double q);

/* Counts a response with HTTP status and its latency. */
void proxy_counters_record(struct proxy_counters *c, int status, uint64_t us);
/* Adds {"requests":{"2xx":..,"3xx":..,"4xx":..,"5xx":..},"errors":N,"connect_errors":N,
 * "upstream_errors":N,"retries":N,"p50_ms":..,"p90_ms":..,"p99_ms":..,"latency_buckets":[[LE_US,N],..]}
 * to obj. errors counts 5xx. latency_buckets lists the non-empty histogram buckets, each as its
 * inclusive upper bound in microseconds (the last bucket also holds everything slower) and its
 * count, cumulative since the proxy started. */
void proxy_counters_json(const struct proxy_counters *c, json_t *obj);

#endif
