/* Analysis of live traffic: windows of per-revision counters and the pass / fail / inconclusive
 * verdict of strategy.analysis over them. docs/monitoring.md explains the rules. */
#include "core/analysis.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

/* ---- histograms ------------------------------------------------------------------------------- */

int analysis_hist_bucket(uint64_t us)
{
	if (us < 4)
		return (int)us;
	int msb = 63 - __builtin_clzll(us);
	int i = 4 * (msb - 1) + (int)((us >> (msb - 2)) & 3);
	return i < ANALYSIS_HIST_BUCKETS ? i : ANALYSIS_HIST_BUCKETS - 1;
}

uint64_t analysis_hist_upper_us(int i)
{
	if (i < 4)
		return (uint64_t)i;
	if (i >= ANALYSIS_HIST_BUCKETS - 1)
		return UINT64_MAX;
	int msb = i / 4 + 1, sub = i % 4;
	return ((uint64_t)(5 + sub) << (msb - 2)) - 1;
}

double analysis_quantile_ms(const struct analysis_counts *c, double q)
{
	uint64_t total = 0;
	for (int i = 0; i < ANALYSIS_HIST_BUCKETS; i++)
		total += c->lat[i];
	if (total == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)total);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (int i = 0; i < ANALYSIS_HIST_BUCKETS; i++) {
		seen += c->lat[i];
		if (seen >= rank) {
			/* The open last bucket has no upper bound: report its lower one. */
			uint64_t up = i == ANALYSIS_HIST_BUCKETS - 1 ? analysis_hist_upper_us(i - 1) + 1
								     : analysis_hist_upper_us(i) + 1;
			return (double)up / 1000.0;
		}
	}
	return 0;
}

/* ---- the ring --------------------------------------------------------------------------------- */

void analysis_ring_init(struct analysis_ring *r, int64_t window_ms)
{
	memset(r, 0, sizeof *r);
	int64_t secs = window_ms > 0 ? window_ms / 1000 : 0;
	if (secs > ANALYSIS_RING_SPAN) {
		secs = ANALYSIS_RING_SPAN;
		r->gap_ms = window_ms / ANALYSIS_RING_SPAN;
	}
	r->cap = (size_t)secs + 3; /* a window plus the sample before it, with slack */
	r->v = xcalloc(r->cap, sizeof *r->v);
}

void analysis_ring_close(struct analysis_ring *r)
{
	free(r->v);
	memset(r, 0, sizeof *r);
}

static const struct analysis_sample *at(const struct analysis_ring *r, size_t i)
{
	return &r->v[(r->head + i) % r->cap];
}

static const struct analysis_counts *find_rev(const struct analysis_sample *s, int rev)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->rev[i].revision == rev)
			return &s->rev[i].c;
	return NULL;
}

/* Whether any counter of b is below a's for the same revision (a restart between them). */
static bool went_down(const struct analysis_sample *a, const struct analysis_sample *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct analysis_counts *o = find_rev(a, b->rev[i].revision);
		if (o == NULL)
			continue;
		const struct analysis_counts *c = &b->rev[i].c;
		if (c->requests < o->requests || c->errors < o->errors)
			return true;
		for (int k = 0; k < ANALYSIS_HIST_BUCKETS; k++)
			if (c->lat[k] < o->lat[k])
				return true;
	}
	return false;
}

void analysis_ring_push(struct analysis_ring *r, const struct analysis_sample *s)
{
	if (r->cap == 0)
		return;
	const struct analysis_sample *last = analysis_ring_last(r);
	if (last != NULL && (went_down(last, s) || s->t < last->t))
		r->head = r->n = 0;
	/* The newest sample stands in until it is gap_ms past the one before: then it stays. */
	if (r->gap_ms > 0 && r->n >= 2 && at(r, r->n - 1)->t - at(r, r->n - 2)->t < r->gap_ms) {
		r->v[(r->head + r->n - 1) % r->cap] = *s;
		return;
	}
	if (r->n == r->cap) {
		r->head = (r->head + 1) % r->cap;
		r->n--;
	}
	r->v[(r->head + r->n) % r->cap] = *s;
	r->n++;
}

const struct analysis_sample *analysis_ring_last(const struct analysis_ring *r)
{
	return r->n ? at(r, r->n - 1) : NULL;
}

/* d = b - a for one revision; a revision absent from a counts from zero. */
static void add_delta(struct analysis_counts *d, const struct analysis_counts *a,
		      const struct analysis_counts *b)
{
	static const struct analysis_counts zero;
	if (a == NULL)
		a = &zero;
	d->requests += b->requests - a->requests;
	d->errors += b->errors - a->errors;
	for (int k = 0; k < ANALYSIS_HIST_BUCKETS; k++)
		d->lat[k] += b->lat[k] - a->lat[k];
}

int analysis_ring_window(const struct analysis_ring *r, int64_t window_ms, int64_t not_before, int revision,
			 struct analysis_window *w)
{
	memset(w, 0, sizeof *w);
	w->revision = revision;
	if (r->n < 2)
		return -ENOENT;
	const struct analysis_sample *last = at(r, r->n - 1);
	/* The newest sample at least window_ms old, else the oldest at or after not_before. */
	const struct analysis_sample *first = NULL;
	for (size_t i = r->n - 1; i-- > 0;) {
		const struct analysis_sample *s = at(r, i);
		if (s->t < not_before)
			break;
		first = s;
		if (last->t - s->t >= window_ms)
			break;
	}
	if (first == NULL)
		return -ENOENT;
	w->start = first->t;
	w->end = last->t;
	for (size_t i = 0; i < last->n; i++) {
		const struct analysis_rev *lr = &last->rev[i];
		add_delta(lr->revision == revision ? &w->cur : &w->base, find_rev(first, lr->revision),
			  &lr->c);
	}
	return 0;
}

/* ---- the verdict ------------------------------------------------------------------------------ */

static double rate(uint64_t errors, uint64_t requests)
{
	return requests ? (double)errors / (double)requests : 0;
}

static void fmt_factor(char *buf, size_t len, double v) { snprintf(buf, len, "%g", v); }

void analysis_evaluate(const struct spec_analysis *a, const struct analysis_window *w,
		       struct analysis_result *res)
{
	memset(res, 0, sizeof *res);
	res->since = w->start;
	res->requests = w->cur.requests;
	res->errors = w->cur.errors;
	res->error_rate = rate(w->cur.errors, w->cur.requests);
	res->p99_ms = analysis_quantile_ms(&w->cur, 0.99);
	res->base_requests = w->base.requests;
	res->base_error_rate = rate(w->base.errors, w->base.requests);
	res->base_p99_ms = analysis_quantile_ms(&w->base, 0.99);

	uint64_t min = a->min_requests > 0 ? (uint64_t)a->min_requests : 1;
	bool enough = w->cur.requests >= min;
	bool base_enough = w->base.requests >= min;
	bool full = w->end - w->start >= a->window_ms;
	int64_t span = w->end - w->start;
	char f[32];

	if (enough && a->max_error_rate.set) {
		const struct spec_limit *l = &a->max_error_rate;
		if (!l->relative && res->error_rate > l->value) {
			res->verdict = VERDICT_FAIL;
			snprintf(
			    res->reason, sizeof res->reason,
			    "error rate %.1f%% (%llu of %llu requests in %.1fs) above max_error_rate %g%%",
			    100 * res->error_rate, (unsigned long long)res->errors,
			    (unsigned long long)res->requests, (double)span / 1000, 100 * l->value);
			return;
		}
		if (l->relative && base_enough) {
			/* A baseline without errors counts as one: "2x" of zero would fail on a single error.
			 */
			double floor = 1.0 / (double)w->base.requests;
			double limit =
			    l->value * (res->base_error_rate > floor ? res->base_error_rate : floor);
			if (res->error_rate > limit) {
				fmt_factor(f, sizeof f, l->value);
				res->verdict = VERDICT_FAIL;
				snprintf(res->reason, sizeof res->reason,
					 "error rate %.1f%% (%llu of %llu requests in %.1fs) above "
					 "max_error_rate %sx of "
					 "the old revision's %.1f%%",
					 100 * res->error_rate, (unsigned long long)res->errors,
					 (unsigned long long)res->requests, (double)span / 1000, f,
					 100 * res->base_error_rate);
				return;
			}
		}
	}
	if (enough && a->max_p99.set) {
		const struct spec_limit *l = &a->max_p99;
		if (!l->relative && res->p99_ms > l->value) {
			res->verdict = VERDICT_FAIL;
			snprintf(res->reason, sizeof res->reason,
				 "p99 latency %.0fms (%llu requests in %.1fs) above max_p99 %.0fms",
				 res->p99_ms, (unsigned long long)res->requests, (double)span / 1000,
				 l->value);
			return;
		}
		if (l->relative && base_enough && res->p99_ms > l->value * res->base_p99_ms) {
			fmt_factor(f, sizeof f, l->value);
			res->verdict = VERDICT_FAIL;
			snprintf(res->reason, sizeof res->reason,
				 "p99 latency %.0fms (%llu requests in %.1fs) above max_p99 %sx of the old "
				 "revision's %.0fms",
				 res->p99_ms, (unsigned long long)res->requests, (double)span / 1000, f,
				 res->base_p99_ms);
			return;
		}
	}
	if (!full) {
		res->verdict = VERDICT_NONE;
		snprintf(res->reason, sizeof res->reason,
			 "measuring: %llu requests in %.1fs of a %.0fs window",
			 (unsigned long long)res->requests, (double)span / 1000, (double)a->window_ms / 1000);
		return;
	}
	if (!enough) {
		res->verdict = VERDICT_INCONCLUSIVE;
		snprintf(res->reason, sizeof res->reason,
			 "%llu requests to revision %d in %.1fs, fewer than min_requests %d",
			 (unsigned long long)res->requests, w->revision, (double)span / 1000,
			 a->min_requests);
		return;
	}
	bool rel =
	    (a->max_error_rate.set && a->max_error_rate.relative) || (a->max_p99.set && a->max_p99.relative);
	if (rel && !base_enough) {
		res->verdict = VERDICT_INCONCLUSIVE;
		snprintf(res->reason, sizeof res->reason,
			 "%llu requests to the old revision(s) in %.1fs, fewer than min_requests %d to "
			 "compare with",
			 (unsigned long long)res->base_requests, (double)span / 1000, a->min_requests);
		return;
	}
	res->verdict = VERDICT_PASS;
	snprintf(res->reason, sizeof res->reason,
		 "error rate %.1f%% (%llu of %llu requests in %.1fs), p99 %.0fms", 100 * res->error_rate,
		 (unsigned long long)res->errors, (unsigned long long)res->requests, (double)span / 1000,
		 res->p99_ms);
}
