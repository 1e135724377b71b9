/* Analysis of live traffic: cumulative per-revision counters sampled from the load balancer, a ring
 * of samples, and the verdict of strategy.analysis over a window of them. Pure: no I/O, no clock. */
#ifndef ROLLOUT_CORE_ANALYSIS_H
#define ROLLOUT_CORE_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/engine.h"
#include "core/spec.h"

/* Latency buckets: four per power of two of microseconds, the same log scale as the proxy's, so
 * a window's quantile comes from the difference of two cumulative histograms. */
#define ANALYSIS_HIST_BUCKETS 96
/* Revisions kept per sample (a rollout has two serving at once; a few more while things settle). */
#define ANALYSIS_MAX_REVS 6
/* A ring keeps every sample of windows up to this many seconds; longer windows keep samples at
 * least window / ANALYSIS_RING_SPAN apart (the newest one always), so memory stays bounded. */
#define ANALYSIS_RING_SPAN 100

/* Cumulative counters of one revision since the balancer started. */
struct analysis_counts {
	uint64_t requests;   /* responses to clients, any status */
	uint64_t errors;     /* 5xx, the balancer's own answers to upstream failures included */
	uint64_t classes[4]; /* responses by class 2xx, 3xx, 4xx, 5xx, when the balancer tells (metrics) */
	uint64_t lat[ANALYSIS_HIST_BUCKETS];
};

struct analysis_rev {
	int revision;
	struct analysis_counts c;
};

/* What the balancer reported at time t (ms). */
struct analysis_sample {
	int64_t t;
	size_t n;
	struct analysis_rev rev[ANALYSIS_MAX_REVS];
};

/* A bounded ring of samples, oldest first. */
struct analysis_ring {
	struct analysis_sample *v;
	size_t cap, head, n;
	int64_t gap_ms; /* least spacing kept between samples (0: keep all) */
};

/* The traffic of one window: counter differences between its first and last sample. */
struct analysis_window {
	int64_t start, end;	     /* times of the first and last sample */
	int revision;		     /* the revision under analysis */
	struct analysis_counts cur;  /* its traffic */
	struct analysis_counts base; /* every other revision's traffic: the baseline */
};

struct analysis_result {
	enum engine_verdict verdict;
	int64_t since;		   /* start of the window the verdict covers */
	uint64_t requests, errors; /* of the revision under analysis */
	double error_rate, p99_ms;
	uint64_t base_requests;
	double base_error_rate, base_p99_ms;
	char reason[160]; /* for people, with the numbers */
};

/* The bucket of a latency in microseconds, and the inclusive upper bound of bucket i. */
int analysis_hist_bucket(uint64_t us);
uint64_t analysis_hist_upper_us(int i);
/* The q-quantile (0 < q <= 1) in milliseconds, as the upper bound of the bucket holding it (an
 * over- rather than under-estimate); 0 when there is no request. */
double analysis_quantile_ms(const struct analysis_counts *c, double q);

/* A ring for windows of window_ms sampled about every second. analysis_ring_close frees it. */
void analysis_ring_init(struct analysis_ring *r, int64_t window_ms);
void analysis_ring_close(struct analysis_ring *r);
/* Appends a sample (copied); it replaces the newest one while that one is closer than gap_ms to
 * the one before. A counter that went down means the balancer restarted: what came before is
 * dropped, since differences across a restart mean nothing. */
void analysis_ring_push(struct analysis_ring *r, const struct analysis_sample *s);
/* The newest sample, or NULL. */
const struct analysis_sample *analysis_ring_last(const struct analysis_ring *r);
/* The window ending at the newest sample and starting at the newest sample at least window_ms
 * older (or the oldest one), never before not_before. Returns 0, or -ENOENT with fewer than two
 * samples in range. */
int analysis_ring_window(const struct analysis_ring *r, int64_t window_ms, int64_t not_before, int revision,
			 struct analysis_window *w);

/* The verdict of the rules a on window w:
 * - FAIL when the revision served at least min_requests and breaks a rule: an error rate above
 *   max_error_rate (absolute, or factor x the baseline's rate, the baseline rate counted as at
 *   least one error in its requests), a p99 above max_p99 (absolute, or factor x the baseline's).
 *   A failure may come from a window shorter than `window`: enough bad traffic is proof enough.
 * - otherwise, only once the window spans a full `window`: INCONCLUSIVE when the revision served
 *   fewer than min_requests, or a relative rule has a baseline of fewer than min_requests; else
 *   PASS.
 * - NONE while the window is still filling.
 * res->since is w->start; res->reason names the numbers. */
void analysis_evaluate(const struct spec_analysis *a, const struct analysis_window *w,
		       struct analysis_result *res);

#endif
