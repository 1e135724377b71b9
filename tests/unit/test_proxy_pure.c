/* Unit tests for the proxy's pure pieces: backend choice (least load, ties round-robin), latency
 * histogram buckets and percentiles, stats JSON, and the admin API's configuration parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>

#include "proxy/config.h"
#include "proxy/pick.h"
#include "proxy/stats.h"

static void test_pick_round_robin_on_ties(void **state)
{
	(void)state;
	struct proxy_cand v[3] = {{0, true}, {0, true}, {0, true}};
	uint64_t rr = 0;
	int seq[6];
	for (int i = 0; i < 6; i++)
		seq[i] = proxy_pick(v, 3, &rr);
	int want[6] = {0, 1, 2, 0, 1, 2};
	for (int i = 0; i < 6; i++)
		assert_int_equal(seq[i], want[i]);
}

static void test_pick_least_load(void **state)
{
	(void)state;
	struct proxy_cand v[3] = {{5, true}, {2, true}, {3, true}};
	uint64_t rr = 0;
	assert_int_equal(proxy_pick(v, 3, &rr), 1);
	v[1].load = 9;
	assert_int_equal(proxy_pick(v, 3, &rr), 2);
	/* a lower load on an ineligible (draining or tried) backend does not count */
	v[0].load = 0;
	v[0].ok = false;
	assert_int_equal(proxy_pick(v, 3, &rr), 2);
}

static void test_pick_none(void **state)
{
	(void)state;
	struct proxy_cand v[2] = {{0, false}, {0, false}};
	uint64_t rr = 7;
	assert_int_equal(proxy_pick(v, 2, &rr), -1);
	assert_int_equal(rr, 7);
	assert_int_equal(proxy_pick(NULL, 0, &rr), -1);
}

/* Ties among the least loaded rotate, skipping the busier ones. */
static void test_pick_ties_among_least(void **state)
{
	(void)state;
	struct proxy_cand v[4] = {{1, true}, {4, true}, {1, true}, {1, false}};
	uint64_t rr = 0;
	assert_int_equal(proxy_pick(v, 4, &rr), 0);
	assert_int_equal(proxy_pick(v, 4, &rr), 2);
	assert_int_equal(proxy_pick(v, 4, &rr), 0);
}

/* Runs `picks` picks of work that stays outstanding (each pick adds 1 to the chosen load). */
static void pick_outstanding(struct proxy_cand *v, size_t n, int picks, uint64_t *rr)
{
	for (int k = 0; k < picks; k++) {
		int i = proxy_pick(v, n, rr);
		assert_true(i >= 0);
		v[i].load++;
	}
}

/* Weights 1 and 3: the heavy backend holds 3 times the load at every multiple of 4, and never
 * strays from its share by more than one request. */
static void test_pick_weights_distribution(void **state)
{
	(void)state;
	struct proxy_cand v[2] = {{0, true, 1}, {0, true, 3}};
	uint64_t rr = 0;
	for (int round = 1; round <= 50; round++) {
		pick_outstanding(v, 2, 4, &rr);
		assert_int_equal(v[0].load, (uint32_t)round);
		assert_int_equal(v[1].load, (uint32_t)(3 * round));
	}
	/* the order is the heavy one first: (0+1)/3 < (0+1)/1 */
	struct proxy_cand w[2] = {{0, true, 1}, {0, true, 3}};
	rr = 0;
	assert_int_equal(proxy_pick(w, 2, &rr), 1);
	/* weights 2, 3 and 5 share 100 outstanding requests 20 / 30 / 50 */
	struct proxy_cand x[3] = {{0, true, 2}, {0, true, 3}, {0, true, 5}};
	rr = 0;
	pick_outstanding(x, 3, 100, &rr);
	assert_int_equal(x[0].load, 20);
	assert_int_equal(x[1].load, 30);
	assert_int_equal(x[2].load, 50);
	/* a finished request on the light one brings it back first */
	v[0].load--;
	assert_int_equal(proxy_pick(v, 2, &rr), 0);
}

/* Equal weights (any value, 0 meaning 1) behave exactly as unweighted least-outstanding. */
static void test_pick_equal_weights_unchanged(void **state)
{
	(void)state;
	struct proxy_cand a[4] = {{1, true, 0}, {4, true, 0}, {1, true, 0}, {0, false, 0}};
	struct proxy_cand b[4] = {{1, true, 7}, {4, true, 7}, {1, true, 7}, {0, false, 7}};
	uint64_t ra = 3, rb = 3;
	for (int k = 0; k < 40; k++) {
		int i = proxy_pick(a, 4, &ra), j = proxy_pick(b, 4, &rb);
		assert_int_equal(i, j);
		assert_int_equal(ra, rb);
		a[i].load++;
		b[j].load++;
		if (k % 3 == 0) { /* some work finishes */
			a[1].load = a[1].load ? a[1].load - 1 : 0;
			b[1].load = b[1].load ? b[1].load - 1 : 0;
		}
	}
	/* a weight does not make an ineligible backend eligible */
	struct proxy_cand c[2] = {{0, false, 256}, {9, true, 1}};
	uint64_t rc = 0;
	assert_int_equal(proxy_pick(c, 2, &rc), 1);
}

static void test_hist_buckets(void **state)
{
	(void)state;
	/* every value falls inside its bucket's bounds, and buckets grow by at most 25% */
	for (uint64_t us = 0; us < 40000000; us = us < 100 ? us + 1 : us * 11 / 10) {
		int b = proxy_hist_bucket(us);
		uint64_t lo, hi;
		proxy_hist_bounds(b, &lo, &hi);
		if (b < PROXY_HIST_BUCKETS - 1) {
			assert_true(lo <= us);
			assert_true(us < hi);
		}
		if (lo >= 4)
			assert_true(hi - lo <= lo / 4);
	}
	assert_int_equal(proxy_hist_bucket(UINT64_MAX), PROXY_HIST_BUCKETS - 1);
	for (int i = 1; i < PROXY_HIST_BUCKETS; i++) {
		uint64_t plo, phi, lo, hi;
		proxy_hist_bounds(i - 1, &plo, &phi);
		proxy_hist_bounds(i, &lo, &hi);
		assert_int_equal(phi, lo); /* contiguous */
	}
}

static void test_hist_quantiles(void **state)
{
	(void)state;
	struct proxy_hist h = {0};
	assert_true(proxy_hist_quantile(&h, 0.5) == 0);
	/* 1..1000 ms uniformly: p50 ~ 500 ms, p90 ~ 900, p99 ~ 990 within a bucket (<= 12.5%) */
	for (int ms = 1; ms <= 1000; ms++)
		proxy_hist_add(&h, (uint64_t)ms * 1000);
	assert_int_equal(h.count, 1000);
	double p50 = proxy_hist_quantile(&h, 0.5), p90 = proxy_hist_quantile(&h, 0.9),
	       p99 = proxy_hist_quantile(&h, 0.99);
	assert_true(p50 > 500 * 0.875 && p50 < 500 * 1.125);
	assert_true(p90 > 900 * 0.875 && p90 < 900 * 1.125);
	assert_true(p99 > 990 * 0.875 && p99 < 990 * 1.125);
	assert_true(p50 <= p90 && p90 <= p99);
	/* one slow outlier in 100 moves p99 but not p50 */
	struct proxy_hist g = {0};
	for (int i = 0; i < 99; i++)
		proxy_hist_add(&g, 2000);
	proxy_hist_add(&g, 3000000);
	assert_true(proxy_hist_quantile(&g, 0.5) < 3);
	assert_true(proxy_hist_quantile(&g, 0.99) < 3);
	assert_true(proxy_hist_quantile(&g, 1.0) > 2500);
}

static void test_counters_json(void **state)
{
	(void)state;
	struct proxy_counters c = {0};
	proxy_counters_record(&c, 200, 1000);
	proxy_counters_record(&c, 204, 1000);
	proxy_counters_record(&c, 302, 1000);
	proxy_counters_record(&c, 404, 1000);
	proxy_counters_record(&c, 503, 1000);
	proxy_counters_record(&c, 502, 1000);
	c.connect_errors = 3;
	json_t *o = json_object();
	proxy_counters_json(&c, o);
	json_t *r = json_object_get(o, "requests");
	assert_int_equal(json_integer_value(json_object_get(r, "2xx")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "3xx")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "4xx")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "5xx")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "errors")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "connect_errors")), 3);
	double p50 = json_real_value(json_object_get(o, "p50_ms"));
	assert_true(p50 > 0.875 && p50 < 1.125);
	json_decref(o);
}

static int parse(const char *s, struct proxy_config *c, char *err)
{
	return proxy_config_parse(s, strlen(s), c, err, 256);
}

static void test_config_good(void **state)
{
	(void)state;
	struct proxy_config c;
	char err[256];
	assert_int_equal(parse("{\"listen\":\"127.0.0.1:8080\",\"protocol\":\"tcp\",\"backends\":["
			       "{\"id\":1,\"revision\":2,\"addr\":\"127.0.0.1:20001\",\"state\":\"active\"},"
			       "{\"id\":7,\"revision\":3,\"addr\":\"[::1]:20002\",\"state\":\"draining\",\"weight\":256}]}",
			       &c, err),
			 0);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_int_equal(c.tcp, 1);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.v[0].id, 1);
	assert_int_equal(c.v[0].revision, 2);
	assert_int_equal(c.v[0].state, PROXY_ACTIVE);
	assert_int_equal(c.v[1].state, PROXY_DRAINING);
	assert_int_equal(c.v[1].sa.ss_family, AF_INET6);
	assert_int_equal(c.v[0].weight, 1); /* the default */
	assert_int_equal(c.v[1].weight, 256);
	proxy_config_free(&c);
	assert_int_equal(parse("{\"listen\":\"127.0.0.1:0\"}", &c, err), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.tcp, 0);
	proxy_config_free(&c);
}

static void test_config_bad(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		"[]",
		"{",
		"{\"listen\":\"localhost:80\"}",
		"{\"listen\":\"127.0.0.1\"}",
		"{\"listen\":\"127.0.0.1:65536\"}",
		"{\"listen\":\"127.0.0.1:-1\"}",
		"{\"listen\":\"127.0.0.1:80\",\"protocol\":\"udp\"}",
		"{\"listen\":\"127.0.0.1:80\",\"other\":1}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":{}}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[1]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"addr\":\"127.0.0.1:1\"}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":-1,\"addr\":\"127.0.0.1:1\"}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"state\":\"x\"}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":0}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":257}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":-3}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":\"3\"}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":1.5}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"weight\":null}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\",\"wieght\":2}]}",
		"{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\"},"
		"{\"id\":1,\"addr\":\"127.0.0.1:2\"}]}",
		"{\"listen\":\"127.0.0.1:80\",\"listen\":\"127.0.0.1:81\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct proxy_config c;
		char err[256] = "";
		assert_int_equal(parse(bad[i], &c, err), -EINVAL);
		assert_true(err[0] != '\0');
		assert_null(c.v);
		assert_int_equal(c.n, 0);
	}
}

/* A bad weight is named in the message, with the range. */
static void test_config_weight_message(void **state)
{
	(void)state;
	struct proxy_config c;
	char err[256] = "";
	assert_int_equal(parse("{\"listen\":\"127.0.0.1:80\",\"backends\":[{\"id\":1,\"addr\":\"127.0.0.1:1\"},"
			       "{\"id\":2,\"addr\":\"127.0.0.1:2\",\"weight\":300}]}",
			       &c, err),
			 -EINVAL);
	assert_string_equal(err, "backends[1].weight: an integer from 1 to 256 is required");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_round_robin_on_ties),
		cmocka_unit_test(test_pick_least_load),
		cmocka_unit_test(test_pick_none),
		cmocka_unit_test(test_pick_ties_among_least),
		cmocka_unit_test(test_pick_weights_distribution),
		cmocka_unit_test(test_pick_equal_weights_unchanged),
		cmocka_unit_test(test_hist_buckets),
		cmocka_unit_test(test_hist_quantiles),
		cmocka_unit_test(test_counters_json),
		cmocka_unit_test(test_config_good),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_config_weight_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
