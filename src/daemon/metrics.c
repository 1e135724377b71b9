/* GET /metrics in the Prometheus text format: one HELP and TYPE per family, families contiguous,
 * label values escaped. Latency histograms fold the balancer's log-scale buckets into fixed `le`
 * bounds; a log bucket counts under the first bound at or above its upper edge. */
#include "daemon/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/analysis.h"
#include "daemon/daemon.h"
#include "daemon/monitor.h"
#include "util/xmalloc.h"

struct mbuf {
	char *p;
	size_t len, cap;
	bool full;
};

static void emit(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct mbuf *b, const char *fmt, ...)
{
	if (b->full)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		if (b->cap * 2 + (size_t)n > METRICS_MAX_BYTES) {
			b->full = true;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n;
		b->p = xrealloc(b->p, b->cap);
	}
}

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	emit(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped (names are validated, but never trust). */
static const char *esc(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

static const char *verdict_name(enum engine_verdict v)
{
	static const char *const n[] = {"none", "pass", "fail", "inconclusive"};
	return (unsigned)v < 4 ? n[v] : "none";
}

/* Histogram bounds in seconds, as Prometheus client libraries default to (plus a few). */
static const double le_s[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_LE (sizeof le_s / sizeof le_s[0])

static void state_metrics(struct daemon *d, struct mbuf *b)
{
	char n[256];
	family(
	    b, "rollout_store_up", "gauge",
	    "1 while the state store takes writes, 0 while it does not (the daemon then acts on nothing).");
	emit(b, "rollout_store_up %d\n", !daemon_store_down(d));
	family(b, "rollout_store_unavailable_since_seconds", "gauge",
	       "Unix time of the first failed write while the store takes no writes, else 0.");
	emit(b, "rollout_store_unavailable_since_seconds %.3f\n", (double)d->store_down_since / 1000);
	family(b, "rollout_store_write_failures_total", "counter",
	       "Failed writes to the state store since the daemon started.");
	emit(b, "rollout_store_write_failures_total %llu\n", (unsigned long long)d->store_failures);
	family(b, "rollout_services", "gauge", "Services known to the daemon.");
	emit(b, "rollout_services %zu\n", d->n_svcs);
	family(b, "rollout_service_unloaded", "gauge",
	       "1 for each stored service that could not be loaded at start (rollout status says why).");
	for (size_t i = 0; i < d->n_unloaded; i++)
		emit(b, "rollout_service_unloaded{service=\"%s\"} 1\n",
		     esc(d->unloaded[i].name, n, sizeof n));
	family(b, "rollout_rollout_state", "gauge",
	       "Current rollout state of each service (1 for the current state).");
	for (size_t i = 0; i < d->n_svcs; i++)
		for (int st = RO_NONE; st < RO__COUNT; st++)
			emit(b, "rollout_rollout_state{service=\"%s\",state=\"%s\"} %d\n",
			     esc(d->svcs[i]->name, n, sizeof n),
			     engine_ro_state_name((enum engine_ro_state)st),
			     d->svcs[i]->st.ro.state == (enum engine_ro_state)st);
	family(b, "rollout_revision", "gauge", "Target and stable revision of each service.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		esc(d->svcs[i]->name, n, sizeof n);
		emit(b, "rollout_revision{service=\"%s\",kind=\"target\"} %d\n", n,
		     d->svcs[i]->st.target_rev);
		emit(b, "rollout_revision{service=\"%s\",kind=\"stable\"} %d\n", n,
		     d->svcs[i]->st.stable_rev);
	}
	family(b, "rollout_rollout_batch", "gauge",
	       "Current batch of the rollout, 1-based (0 without a rollout).");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct svc *s = d->svcs[i];
		emit(b, "rollout_rollout_batch{service=\"%s\"} %d\n", esc(s->name, n, sizeof n),
		     s->st.ro.id ? s->st.ro.batch + 1 : 0);
	}
	family(b, "rollout_rollout_batches", "gauge", "Batches the current rollout takes.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct svc *s = d->svcs[i];
		int nb = s->st.ro.fast ? 1 : spec_batch_count(&s->spec.strategy, s->st.replicas);
		emit(b, "rollout_rollout_batches{service=\"%s\"} %d\n", esc(s->name, n, sizeof n), nb);
	}
	family(b, "rollout_instances", "gauge", "Instances by revision and state.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct engine_state *st = &d->svcs[i]->st;
		esc(d->svcs[i]->name, n, sizeof n);
		for (size_t k = 0; k < st->n; k++) {
			int rev = st->inst[k].revision;
			enum engine_inst_state state = st->inst[k].state;
			if (state == INST_GONE)
				continue; /* a record kept for its backoff (or dropped at the next step) */
			bool seen = false;
			for (size_t j = 0; j < k && !seen; j++)
				seen = st->inst[j].revision == rev && st->inst[j].state == state;
			if (seen)
				continue;
			int c = 0;
			for (size_t j = k; j < st->n; j++)
				c += st->inst[j].revision == rev && st->inst[j].state == state;
			emit(b, "rollout_instances{service=\"%s\",revision=\"%d\",state=\"%s\"} %d\n", n, rev,
			     engine_inst_state_name(state), c);
		}
	}
	family(b, "rollout_instance_restarts", "gauge",
	       "Restarts in a row of the revision's instance that failed most often (0: none restarted).");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct engine_state *st = &d->svcs[i]->st;
		esc(d->svcs[i]->name, n, sizeof n);
		/* the most per revision, in one pass (a service runs a few revisions at most) */
		struct rev_most {
			int rev, most;
		} per[16];
		size_t nper = 0;
		for (size_t k = 0; k < st->n; k++) {
			const struct engine_inst *in = &st->inst[k];
			if (in->state == INST_GONE)
				continue;
			size_t j = 0;
			while (j < nper && per[j].rev != in->revision)
				j++;
			if (j == nper) {
				if (nper == sizeof per / sizeof per[0])
					continue; /* more revisions at once than a rollout makes: not shown */
				per[nper++] = (struct rev_most){in->revision, in->restarts};
			} else if (in->restarts > per[j].most) {
				per[j].most = in->restarts;
			}
		}
		for (size_t j = 0; j < nper; j++)
			emit(b, "rollout_instance_restarts{service=\"%s\",revision=\"%d\"} %d\n", n, per[j].rev,
			     per[j].most);
	}
	family(b, "rollout_service_health", "gauge",
	       "1 for the service's health now: ok, degraded (fewer than replicas available), crash_looping.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct svc *s = d->svcs[i];
		emit(b, "rollout_service_health{service=\"%s\",health=\"%s\"} 1\n", esc(s->name, n, sizeof n),
		     engine_health_name(engine_health(&s->spec, &s->st, daemon_now(), NULL)));
	}
	family(b, "rollout_rollout_failures", "gauge", "Failed instances in the current rollout.");
	for (size_t i = 0; i < d->n_svcs; i++)
		emit(b, "rollout_rollout_failures{service=\"%s\"} %d\n", esc(d->svcs[i]->name, n, sizeof n),
		     d->svcs[i]->st.ro.failures);
	family(b, "rollout_health_checks_total", "counter",
	       "Health check transitions of instances since the daemon started, by result.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		struct monitor_health h = monitor_health_of(d->svcs[i]);
		esc(d->svcs[i]->name, n, sizeof n);
		emit(b, "rollout_health_checks_total{service=\"%s\",result=\"healthy\"} %llu\n", n,
		     (unsigned long long)h.healthy);
		emit(b, "rollout_health_checks_total{service=\"%s\",result=\"unhealthy\"} %llu\n", n,
		     (unsigned long long)h.unhealthy);
	}
}

static void analysis_metrics(struct daemon *d, struct mbuf *b)
{
	char n[256];
	family(b, "rollout_analysis_verdict", "gauge",
	       "The analysis verdict the engine sees (1 for the current one).");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct svc *s = d->svcs[i];
		if (!s->spec.strategy.analysis.enabled)
			continue;
		esc(s->name, n, sizeof n);
		for (int v = VERDICT_NONE; v <= VERDICT_INCONCLUSIVE; v++)
			emit(b, "rollout_analysis_verdict{service=\"%s\",verdict=\"%s\"} %d\n", n,
			     verdict_name((enum engine_verdict)v), s->st.verdict == (enum engine_verdict)v);
	}
	family(b, "rollout_analysis_requests", "gauge",
	       "Requests to the revision under analysis in the last window.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_result *r = monitor_result(d->svcs[i]);
		if (r != NULL)
			emit(b, "rollout_analysis_requests{service=\"%s\"} %llu\n",
			     esc(d->svcs[i]->name, n, sizeof n), (unsigned long long)r->requests);
	}
	family(b, "rollout_analysis_error_ratio", "gauge",
	       "Error rate of the revision under analysis in the last window.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_result *r = monitor_result(d->svcs[i]);
		if (r != NULL)
			emit(b, "rollout_analysis_error_ratio{service=\"%s\"} %.6f\n",
			     esc(d->svcs[i]->name, n, sizeof n), r->error_rate);
	}
	family(b, "rollout_analysis_p99_seconds", "gauge",
	       "99th percentile latency of the revision under analysis in the last window.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_result *r = monitor_result(d->svcs[i]);
		if (r != NULL)
			emit(b, "rollout_analysis_p99_seconds{service=\"%s\"} %.6f\n",
			     esc(d->svcs[i]->name, n, sizeof n), r->p99_ms / 1000);
	}
}

static void traffic_metrics(struct daemon *d, struct mbuf *b)
{
	static const char *const cls[4] = {"2xx", "3xx", "4xx", "5xx"};
	char n[256];
	family(b, "rollout_proxy_requests_total", "counter",
	       "Responses the load balancer sent, by revision and status class, since it started.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_sample *smp = monitor_last(d->svcs[i]);
		esc(d->svcs[i]->name, n, sizeof n);
		for (size_t r = 0; smp != NULL && r < smp->n; r++)
			for (int c = 0; c < 4; c++)
				emit(b,
				     "rollout_proxy_requests_total{service=\"%s\",revision=\"%d\",class=\"%"
				     "s\"} %llu\n",
				     n, smp->rev[r].revision, cls[c],
				     (unsigned long long)smp->rev[r].c.classes[c]);
	}
	family(b, "rollout_proxy_errors_total", "counter",
	       "Failed requests (5xx and upstream failures) by revision, since the load balancer started.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_sample *smp = monitor_last(d->svcs[i]);
		esc(d->svcs[i]->name, n, sizeof n);
		for (size_t r = 0; smp != NULL && r < smp->n; r++)
			emit(b, "rollout_proxy_errors_total{service=\"%s\",revision=\"%d\"} %llu\n", n,
			     smp->rev[r].revision, (unsigned long long)smp->rev[r].c.errors);
	}
	family(b, "rollout_proxy_request_duration_seconds", "histogram",
	       "Request latency by revision (head received to response received); _sum is estimated from "
	       "buckets.");
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct analysis_sample *smp = monitor_last(d->svcs[i]);
		esc(d->svcs[i]->name, n, sizeof n);
		for (size_t r = 0; smp != NULL && r < smp->n; r++) {
			const struct analysis_counts *c = &smp->rev[r].c;
			uint64_t under[N_LE] = {0}, count = 0;
			double sum = 0;
			for (int k = 0; k < ANALYSIS_HIST_BUCKETS; k++) {
				if (c->lat[k] == 0)
					continue;
				uint64_t up = k == ANALYSIS_HIST_BUCKETS - 1
						  ? analysis_hist_upper_us(k - 1) + 1
						  : analysis_hist_upper_us(k);
				uint64_t lo = k == 0 ? 0 : analysis_hist_upper_us(k - 1) + 1;
				count += c->lat[k];
				sum += (double)c->lat[k] * (double)(lo + up) / 2e6;
				for (size_t l = 0; l < N_LE; l++)
					if ((double)up <= le_s[l] * 1e6 && k != ANALYSIS_HIST_BUCKETS - 1)
						under[l] += c->lat[k];
			}
			int rev = smp->rev[r].revision;
			for (size_t l = 0; l < N_LE; l++)
				emit(b,
				     "rollout_proxy_request_duration_seconds_bucket{service=\"%s\",revision="
				     "\"%d\",le=\"%g\"} %llu\n",
				     n, rev, le_s[l], (unsigned long long)under[l]);
			emit(b,
			     "rollout_proxy_request_duration_seconds_bucket{service=\"%s\",revision=\"%d\","
			     "le=\"+Inf\"} %llu\n",
			     n, rev, (unsigned long long)count);
			emit(b,
			     "rollout_proxy_request_duration_seconds_sum{service=\"%s\",revision=\"%d\"} "
			     "%.6f\n",
			     n, rev, sum);
			emit(b,
			     "rollout_proxy_request_duration_seconds_count{service=\"%s\",revision=\"%d\"} "
			     "%llu\n",
			     n, rev, (unsigned long long)count);
		}
	}
}

int metrics_render(struct daemon *d, char **out, size_t *len)
{
	struct mbuf b = {.p = xmalloc(8192), .cap = 8192};
	b.p[0] = '\0';
	state_metrics(d, &b);
	analysis_metrics(d, &b);
	traffic_metrics(d, &b);
	if (b.full) {
		free(b.p);
		return -EFBIG;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
