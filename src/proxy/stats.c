/* Proxy statistics: counters by status class and a log-scale latency histogram. */
#include "proxy/stats.h"

#include <math.h>

int proxy_hist_bucket(uint64_t us)
{
	if (us < 4)
		return (int)us;
	int msb = 63 - __builtin_clzll(us);
	int i = 4 * (msb - 1) + (int)((us >> (msb - 2)) & 3);
	return i < PROXY_HIST_BUCKETS ? i : PROXY_HIST_BUCKETS - 1;
}

void proxy_hist_bounds(int i, uint64_t *lo, uint64_t *hi)
{
	if (i < 4) {
		*lo = (uint64_t)i;
		*hi = (uint64_t)i + 1;
		return;
	}
	int msb = i / 4 + 1, sub = i % 4;
	*lo = (uint64_t)(4 + sub) << (msb - 2);
	*hi = (uint64_t)(5 + sub) << (msb - 2);
}

void proxy_hist_add(struct proxy_hist *h, uint64_t us)
{
	h->b[proxy_hist_bucket(us)]++;
	h->count++;
}

double proxy_hist_quantile(const struct proxy_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	/* The rank of the quantile, 1-based, as in nearest-rank percentiles. */
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (int i = 0; i < PROXY_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t lo, hi;
			proxy_hist_bounds(i, &lo, &hi);
			double mid = lo == 0 ? 0.5 : sqrt((double)lo * (double)hi);
			return mid / 1000.0;
		}
	}
	return 0;
}

void proxy_counters_record(struct proxy_counters *c, int status, uint64_t us)
{
	if (status >= 200 && status < 600)
		c->req[status / 100 - 2]++;
	proxy_hist_add(&c->lat, us);
}

/* Rounds to microseconds so JSON stays short. */
static json_t *ms(double v)
{
	return json_real(round(v * 1000.0) / 1000.0);
}

void proxy_counters_json(const struct proxy_counters *c, json_t *obj)
{
	json_object_set_new(obj, "requests",
			    json_pack("{s:I,s:I,s:I,s:I}", "2xx", (json_int_t)c->req[0], "3xx", (json_int_t)c->req[1],
				      "4xx", (json_int_t)c->req[2], "5xx", (json_int_t)c->req[3]));
	json_object_set_new(obj, "errors", json_integer((json_int_t)c->req[3]));
	json_object_set_new(obj, "connect_errors", json_integer((json_int_t)c->connect_errors));
	json_object_set_new(obj, "upstream_errors", json_integer((json_int_t)c->upstream_errors));
	json_object_set_new(obj, "retries", json_integer((json_int_t)c->retries));
	json_object_set_new(obj, "p50_ms", ms(proxy_hist_quantile(&c->lat, 0.50)));
	json_object_set_new(obj, "p90_ms", ms(proxy_hist_quantile(&c->lat, 0.90)));
	json_object_set_new(obj, "p99_ms", ms(proxy_hist_quantile(&c->lat, 0.99)));
	/* Cumulative per bucket, so a reader can take the difference of two readings (a window). */
	json_t *hb = json_array();
	for (int i = 0; i < PROXY_HIST_BUCKETS; i++) {
		if (c->lat.b[i] == 0)
			continue;
		uint64_t lo, hi;
		proxy_hist_bounds(i, &lo, &hi);
		json_array_append_new(hb, json_pack("[I,I]", (json_int_t)(hi - 1), (json_int_t)c->lat.b[i]));
	}
	json_object_set_new(obj, "latency_buckets", hb);
}
