/* Unit tests of the analysis: histogram buckets (the same as the proxy's), the sample ring and its
 * windows, analysis_evaluate's rules and edge cases, and the engine's batch gate on verdicts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/analysis.h"
#include "core/engine.h"
#include "core/spec.h"
#include "proxy/stats.h"
#include "util/xmalloc.h"

/* ---- histograms ---- */

static void test_buckets_match_proxy(void **state)
{
	(void)state;
	assert_int_equal(ANALYSIS_HIST_BUCKETS, PROXY_HIST_BUCKETS);
	for (int i = 0; i < PROXY_HIST_BUCKETS; i++) {
		uint64_t lo, hi;
		proxy_hist_bounds(i, &lo, &hi);
		assert_int_equal(analysis_hist_bucket(lo), i);
		assert_int_equal(analysis_hist_bucket(hi - 1), i);
		assert_int_equal(proxy_hist_bucket(hi - 1), i);
		if (i < PROXY_HIST_BUCKETS - 1)
			assert_int_equal(analysis_hist_upper_us(i), hi - 1);
	}
}

static void add_lat(struct analysis_counts *c, uint64_t us, uint64_t n)
{
	c->lat[analysis_hist_bucket(us)] += n;
	c->requests += n;
}

static void test_quantile(void **state)
{
	(void)state;
	struct analysis_counts c;
	memset(&c, 0, sizeof c);
	assert_true(analysis_quantile_ms(&c, 0.99) == 0);
	add_lat(&c, 10000, 99); /* 10 ms */
	add_lat(&c, 200000, 1); /* 200 ms */
	/* p99 is the 99th of 100: still in the 10 ms bucket; its upper bound is within 25% above. */
	double p99 = analysis_quantile_ms(&c, 0.99);
	assert_true(p99 >= 10.0 && p99 <= 12.5);
	double p100 = analysis_quantile_ms(&c, 1.0);
	assert_true(p100 >= 200.0 && p100 <= 250.0);
	add_lat(&c, 200000, 1);
	assert_true(analysis_quantile_ms(&c, 0.99) >= 200.0);
}

/* ---- the ring ---- */

static struct analysis_sample smp(int64_t t, int rev_a, uint64_t req_a, uint64_t err_a, int rev_b,
				  uint64_t req_b, uint64_t err_b)
{
	struct analysis_sample s;
	memset(&s, 0, sizeof s);
	s.t = t;
	s.rev[0].revision = rev_a;
	s.rev[0].c.requests = req_a;
	s.rev[0].c.errors = err_a;
	s.rev[0].c.lat[analysis_hist_bucket(1000)] = req_a;
	s.n = 1;
	if (rev_b) {
		s.rev[1].revision = rev_b;
		s.rev[1].c.requests = req_b;
		s.rev[1].c.errors = err_b;
		s.rev[1].c.lat[analysis_hist_bucket(1000)] = req_b;
		s.n = 2;
	}
	return s;
}

static void test_ring_window(void **state)
{
	(void)state;
	struct analysis_ring r;
	analysis_ring_init(&r, 5000);
	struct analysis_window w;
	assert_int_equal(analysis_ring_window(&r, 5000, 0, 2, &w), -ENOENT);
	/* Revision 1 serves 10 requests a second; revision 2 appears at t=3s with 5 a second. */
	for (int s = 0; s <= 20; s++) {
		struct analysis_sample x =
		    smp(s * 1000, 1, (uint64_t)s * 10, 0, s >= 3 ? 2 : 0, s >= 3 ? (uint64_t)(s - 3) * 5 : 0,
			s >= 3 ? (uint64_t)(s - 3) : 0);
		analysis_ring_push(&r, &x);
		if (s == 1) {
			assert_int_equal(analysis_ring_window(&r, 5000, 0, 2, &w), 0);
			assert_int_equal(w.start, 0);
			assert_int_equal(w.end, 1000);
			assert_int_equal(w.base.requests, 10);
			assert_int_equal(w.cur.requests, 0);
		}
	}
	/* The ring holds a window and a bit: the newest 8 samples. */
	assert_true(r.n <= r.cap && r.cap == 8);
	assert_int_equal(analysis_ring_last(&r)->t, 20000);
	assert_int_equal(analysis_ring_window(&r, 5000, 0, 2, &w), 0);
	assert_int_equal(w.start, 15000);
	assert_int_equal(w.end, 20000);
	assert_int_equal(w.cur.requests, 25);
	assert_int_equal(w.cur.errors, 5);
	assert_int_equal(w.base.requests, 50);
	assert_int_equal(w.cur.lat[analysis_hist_bucket(1000)], 25);
	/* not_before cuts the window short. */
	assert_int_equal(analysis_ring_window(&r, 5000, 18000, 2, &w), 0);
	assert_int_equal(w.start, 18000);
	assert_int_equal(w.cur.requests, 10);
	assert_int_equal(analysis_ring_window(&r, 5000, 20001, 2, &w), -ENOENT);
	analysis_ring_close(&r);
}

static void test_ring_long_window(void **state)
{
	(void)state;
	struct analysis_ring r;
	analysis_ring_init(&r, 3600000);
	assert_int_equal(r.cap, ANALYSIS_RING_SPAN + 3);
	for (int s = 0; s < 5000; s++) {
		struct analysis_sample x = smp(s * 1000, 2, (uint64_t)s * 10, (uint64_t)s, 0, 0, 0);
		analysis_ring_push(&r, &x);
	}
	/* Bounded memory, the newest sample kept, and the window still about an hour. */
	assert_true(r.n <= r.cap);
	assert_int_equal(analysis_ring_last(&r)->t, 4999000);
	struct analysis_window w;
	assert_int_equal(analysis_ring_window(&r, 3600000, 0, 2, &w), 0);
	assert_true(w.end - w.start >= 3600000);
	assert_true(w.end - w.start <= 3600000 + 2 * 36000);
	assert_int_equal(w.cur.requests, (uint64_t)(w.end - w.start) / 100);
	analysis_ring_close(&r);
}

static void test_ring_restart(void **state)
{
	(void)state;
	struct analysis_ring r;
	analysis_ring_init(&r, 10000);
	for (int s = 0; s < 5; s++) {
		struct analysis_sample x = smp(s * 1000, 2, 100 + (uint64_t)s * 10, 0, 0, 0, 0);
		analysis_ring_push(&r, &x);
	}
	/* The balancer restarted: counters start over; a difference across it would wrap around. */
	struct analysis_sample x = smp(5000, 2, 3, 0, 0, 0, 0);
	analysis_ring_push(&r, &x);
	assert_int_equal(r.n, 1);
	x = smp(6000, 2, 13, 1, 0, 0, 0);
	analysis_ring_push(&r, &x);
	struct analysis_window w;
	assert_int_equal(analysis_ring_window(&r, 10000, 0, 2, &w), 0);
	assert_int_equal(w.cur.requests, 10);
	assert_int_equal(w.cur.errors, 1);
	analysis_ring_close(&r);
}

/* ---- evaluate ---- */

static struct spec_analysis rules(void)
{
	struct spec_analysis a;
	memset(&a, 0, sizeof a);
	a.enabled = true;
	a.window_ms = 10000;
	a.min_requests = 50;
	return a;
}

static struct analysis_window win(int64_t span, uint64_t req, uint64_t err, uint64_t lat_us,
				  uint64_t base_req, uint64_t base_err, uint64_t base_lat_us)
{
	struct analysis_window w;
	memset(&w, 0, sizeof w);
	w.start = 100000;
	w.end = 100000 + span;
	w.revision = 3;
	w.cur.requests = req;
	w.cur.errors = err;
	w.cur.lat[analysis_hist_bucket(lat_us)] = req;
	w.base.requests = base_req;
	w.base.errors = base_err;
	w.base.lat[analysis_hist_bucket(base_lat_us)] = base_req;
	return w;
}

static void test_absolute_error_rate(void **state)
{
	(void)state;
	struct spec_analysis a = rules();
	a.max_error_rate = (struct spec_limit){.set = true, .value = 0.01};
	struct analysis_result res;
	struct analysis_window w = win(10000, 1000, 300, 2000, 3000, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	assert_int_equal(res.since, 100000);
	assert_non_null(
	    strstr(res.reason, "error rate 30.0% (300 of 1000 requests in 10.0s) above max_error_rate 1%"));
	/* Exactly at the limit passes. */
	w = win(10000, 1000, 10, 2000, 3000, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
	assert_non_null(strstr(res.reason, "error rate 1.0% (10 of 1000 requests"));
	w = win(10000, 1000, 11, 2000, 3000, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
}

static void test_relative_error_rate(void **state)
{
	(void)state;
	struct spec_analysis a = rules();
	a.max_error_rate = (struct spec_limit){.set = true, .relative = true, .value = 2};
	struct analysis_result res;
	/* Old 2%, new 3%: within 2x. */
	struct analysis_window w = win(10000, 1000, 30, 2000, 1000, 20, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
	/* Old 2%, new 5%: above 2x. */
	w = win(10000, 1000, 50, 2000, 1000, 20, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	assert_non_null(strstr(res.reason, "above max_error_rate 2x of the old revision's 2.0%"));
	/* A clean baseline counts as one error in its requests: one error in 1000 is not a breach. */
	w = win(10000, 1000, 1, 2000, 1000, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
	w = win(10000, 1000, 3, 2000, 1000, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	/* No baseline to compare with: inconclusive, not pass. */
	w = win(10000, 1000, 0, 2000, 10, 0, 2000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_INCONCLUSIVE);
	assert_non_null(strstr(res.reason, "10 requests to the old revision"));
}

static void test_p99(void **state)
{
	(void)state;
	struct spec_analysis a = rules();
	a.max_p99 = (struct spec_limit){.set = true, .value = 500};
	struct analysis_result res;
	struct analysis_window w = win(10000, 1000, 0, 300000, 1000, 0, 100000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
	w = win(10000, 1000, 0, 700000, 1000, 0, 100000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	assert_non_null(strstr(res.reason, "above max_p99 500ms"));
	/* Relative: 3x slower fails 1.5x; 1.2x slower passes. */
	a.max_p99 = (struct spec_limit){.set = true, .relative = true, .value = 1.5};
	w = win(10000, 1000, 0, 300000, 1000, 0, 100000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	assert_non_null(strstr(res.reason, "above max_p99 1.5x of the old revision's"));
	assert_true(res.p99_ms > 2.5 * res.base_p99_ms);
	w = win(10000, 1000, 0, 120000, 1000, 0, 100000);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
}

static void test_inconclusive_and_partial(void **state)
{
	(void)state;
	struct spec_analysis a = rules();
	a.max_error_rate = (struct spec_limit){.set = true, .value = 0.01};
	struct analysis_result res;
	/* Full window, too few requests: inconclusive, saying how many. */
	struct analysis_window w = win(10000, 49, 0, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_INCONCLUSIVE);
	assert_non_null(strstr(res.reason, "49 requests to revision 3 in 10.0s, fewer than min_requests 50"));
	/* Too few requests are never a failure, however bad. */
	w = win(10000, 49, 49, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_INCONCLUSIVE);
	/* A window still filling: no verdict, unless the traffic already proves a failure. */
	w = win(9999, 1000, 0, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_NONE);
	w = win(2000, 49, 0, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_NONE);
	w = win(2000, 60, 20, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_FAIL);
	assert_non_null(strstr(res.reason, "in 2.0s"));
	/* Exactly min_requests over a full window is judged. */
	w = win(10000, 50, 0, 2000, 0, 0, 0);
	analysis_evaluate(&a, &w, &res);
	assert_int_equal(res.verdict, VERDICT_PASS);
}

/* ---- the engine's batch gate ---- */

struct gw {
	struct spec spec;
	struct engine_state st;
	struct engine_out out;
	int64_t now;
};

/* One step in an ideal world: every start is healthy at once, every drain and stop immediate. */
static void gstep(struct gw *g)
{
	xgrow((void **)&g->st.inst, &g->st.cap, g->st.n + engine_inst_headroom(&g->spec, &g->st),
	      sizeof *g->st.inst);
	g->out.n = 0;
	assert_int_equal(engine_step(&g->spec, &g->st, g->now, &g->out), 0);
	for (size_t i = 0; i < g->out.n; i++) {
		const struct engine_intent *it = &g->out.v[i];
		if (it->kind == INTENT_START) {
			engine_observe(&g->st, it->inst_id, OBS_STARTED, g->now, NULL);
			engine_observe(&g->st, it->inst_id, OBS_HEALTHY, g->now, NULL);
		} else if (it->kind == INTENT_DRAIN) {
			engine_observe(&g->st, it->inst_id, OBS_DRAINED, g->now, NULL);
		} else if (it->kind == INTENT_STOP) {
			engine_observe(&g->st, it->inst_id, OBS_EXITED, g->now, NULL);
		}
	}
}

static void gsteps(struct gw *g, int n)
{
	for (int i = 0; i < n; i++) {
		g->now += 100;
		gstep(g);
	}
}

static int new_count(const struct gw *g)
{
	int n = 0;
	for (size_t i = 0; i < g->st.n; i++)
		n += g->st.inst[i].revision == g->st.target_rev && g->st.inst[i].state != INST_GONE;
	return n;
}

static void gw_init(struct gw *g)
{
	memset(g, 0, sizeof *g);
	spec_init(&g->spec);
	g->spec.replicas = 4;
	g->spec.health.kind = SPEC_CHECK_TCP; /* gstep reports each start healthy, as a checker would */
	g->spec.strategy.min_ready_ms = 500;
	g->spec.strategy.batches = xcalloc(2, sizeof *g->spec.strategy.batches);
	g->spec.strategy.batches[0] = (struct amount){.percent = false, .value = 1};
	g->spec.strategy.batches[1] = (struct amount){.percent = true, .value = 100};
	g->spec.strategy.n_batches = 2;
	g->spec.strategy.analysis = rules();
	g->spec.strategy.analysis.max_error_rate = (struct spec_limit){.set = true, .value = 0.01};
	engine_state_init(&g->st);
	g->out.cap = 1024;
	g->out.v = xcalloc(g->out.cap, sizeof *g->out.v);
	g->now = 1000;
	g->out.n = 0;
	assert_int_equal(engine_apply(&g->spec, &g->st, 1, g->now, &g->out), 0);
	gsteps(g, 20);
	assert_int_equal(g->st.ro.state, RO_COMPLETE);
	g->out.n = 0;
	assert_int_equal(engine_apply(&g->spec, &g->st, 2, g->now, &g->out), 0);
}

static void gw_free(struct gw *g)
{
	spec_clear(&g->spec);
	engine_state_clear(&g->st);
	free(g->out.v);
}

static void test_gate_waits_for_covering_verdict(void **state)
{
	(void)state;
	struct gw g;
	gw_init(&g);
	/* The first batch is in place and available, but no verdict: the gate holds. */
	gsteps(&g, 20);
	assert_int_equal(g.st.ro.state, RO_PROGRESSING);
	assert_int_equal(g.st.ro.batch, 0);
	assert_int_equal(new_count(&g), 1);
	int64_t ready = 0;
	for (size_t i = 0; i < g.st.n; i++)
		if (g.st.inst[i].revision == 2)
			ready = g.st.inst[i].healthy_at + g.spec.strategy.min_ready_ms;
	/* A PASS whose window began before the batch was available is stale: still held. */
	g.st.verdict = VERDICT_PASS;
	g.st.verdict_since = ready - 1;
	gsteps(&g, 5);
	assert_int_equal(g.st.ro.batch, 0);
	/* A stale INCONCLUSIVE does not pause either. */
	g.st.verdict = VERDICT_INCONCLUSIVE;
	gsteps(&g, 5);
	assert_int_equal(g.st.ro.state, RO_PROGRESSING);
	/* A PASS over the batch's own traffic opens the gate. */
	g.st.verdict = VERDICT_PASS;
	g.st.verdict_since = ready;
	gsteps(&g, 30);
	assert_int_equal(g.st.ro.state, RO_COMPLETE);
	assert_int_equal(new_count(&g), 4);
	gw_free(&g);
}

static void test_gate_inconclusive_pauses_and_fail_rolls_back(void **state)
{
	(void)state;
	struct gw g;
	gw_init(&g);
	/* A verdict of the previous rollout was cleared by the apply. */
	assert_int_equal(g.st.verdict, VERDICT_NONE);
	gsteps(&g, 20);
	g.st.verdict = VERDICT_INCONCLUSIVE;
	g.st.verdict_since = g.now;
	snprintf(g.st.verdict_reason, sizeof g.st.verdict_reason, "3 requests to revision 2 in 10.0s");
	gsteps(&g, 1);
	assert_int_equal(g.st.ro.state, RO_PAUSED);
	assert_int_equal(g.st.ro.pause, PAUSE_ANALYSIS);
	assert_non_null(strstr(g.st.ro.reason, "3 requests to revision 2"));
	g.out.n = 0;
	assert_int_equal(engine_promote(&g.st, g.now, &g.out), 0);
	gsteps(&g, 30);
	assert_int_equal(g.st.ro.state, RO_COMPLETE);
	gw_free(&g);

	gw_init(&g);
	gsteps(&g, 3);
	/* A failure needs no covering window: bad traffic is bad whenever it was served. */
	g.st.verdict = VERDICT_FAIL;
	g.st.verdict_since = 0;
	snprintf(g.st.verdict_reason, sizeof g.st.verdict_reason, "error rate 30.0%%");
	gsteps(&g, 1);
	assert_int_equal(g.st.ro.state, RO_ROLLING_BACK);
	assert_non_null(strstr(g.st.ro.reason, "analysis failed: error rate 30.0%"));
	g.st.verdict = VERDICT_NONE;
	gsteps(&g, 30);
	assert_int_equal(g.st.ro.state, RO_ROLLED_BACK);
	assert_int_equal(g.st.target_rev, 1);
	gw_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buckets_match_proxy),
	    cmocka_unit_test(test_quantile),
	    cmocka_unit_test(test_ring_window),
	    cmocka_unit_test(test_ring_long_window),
	    cmocka_unit_test(test_ring_restart),
	    cmocka_unit_test(test_absolute_error_rate),
	    cmocka_unit_test(test_relative_error_rate),
	    cmocka_unit_test(test_p99),
	    cmocka_unit_test(test_inconclusive_and_partial),
	    cmocka_unit_test(test_gate_waits_for_covering_verdict),
	    cmocka_unit_test(test_gate_inconclusive_pauses_and_fail_rolls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
