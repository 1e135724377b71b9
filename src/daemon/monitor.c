/* Monitoring of live traffic: a one-second timer asks each service's balancer for its counters;
 * each answer becomes a sample in the service's ring and, while a rollout or its watch is live, the
 * verdict of strategy.analysis over the latest window (analysis_evaluate does the judging). */
#include "daemon/monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "lb/lb.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xmalloc.h"

struct monitor {
	struct daemon *d;
	uv_timer_t timer;
};

struct monitor_svc {
	struct analysis_ring ring;
	int64_t window_ms;	   /* the ring was sized for this window */
	enum engine_verdict shown; /* the last verdict recorded as an event */
	int shown_rev;		   /* ... and of which revision */
	int64_t shown_at;
	bool unmeasured_shown; /* the "nothing measured" event was recorded for this rollout */
	uint64_t unmeasured_ro;
	struct analysis_result last; /* the latest verdict computed */
	bool have_last;
	struct monitor_health health;
};

static const char *verdict_word(enum engine_verdict v)
{
	switch (v) {
	case VERDICT_PASS:
		return "pass";
	case VERDICT_FAIL:
		return "fail";
	case VERDICT_INCONCLUSIVE:
		return "inconclusive";
	default:
		return "none";
	}
}

static struct monitor_svc *mon_of(struct svc *s)
{
	const struct spec_analysis *a = &s->spec.strategy.analysis;
	int64_t window = a->enabled ? a->window_ms : 0;
	if (s->mon != NULL && s->mon->window_ms != window) {
		/* The window changed with a new spec: start over with a ring of the right size. */
		analysis_ring_close(&s->mon->ring);
		analysis_ring_init(&s->mon->ring, window);
		s->mon->window_ms = window;
	}
	if (s->mon == NULL) {
		s->mon = xcalloc(1, sizeof *s->mon);
		s->mon->window_ms = window;
		analysis_ring_init(&s->mon->ring, window);
	}
	return s->mon;
}

void monitor_svc_free(struct monitor_svc *ms)
{
	if (ms == NULL)
		return;
	analysis_ring_close(&ms->ring);
	free(ms);
}

const struct analysis_sample *monitor_last(const struct svc *s)
{
	return s->mon != NULL ? analysis_ring_last(&s->mon->ring) : NULL;
}

const struct analysis_result *monitor_result(const struct svc *s)
{
	return s->mon != NULL && s->mon->have_last ? &s->mon->last : NULL;
}

void monitor_health_result(struct svc *s, bool healthy)
{
	struct monitor_svc *ms = mon_of(s);
	if (healthy)
		ms->health.healthy++;
	else
		ms->health.unhealthy++;
}

struct monitor_health monitor_health_of(const struct svc *s)
{
	struct monitor_health none = {0, 0};
	return s->mon != NULL ? s->mon->health : none;
}

/* Whether the service's traffic is under analysis now: a live forward rollout (not a fast one: a
 * rollback or undo waits for no analysis), or a completed one inside its watch. */
static bool analysing(const struct svc *s, int64_t now)
{
	const struct engine_rollout *ro = &s->st.ro;
	if (!s->spec.strategy.analysis.enabled || s->st.target_rev == 0)
		return false;
	if ((ro->state == RO_PROGRESSING || ro->state == RO_PAUSED) && ro->kind == RO_KIND_DEPLOY &&
	    !ro->fast)
		return true;
	return ro->state == RO_COMPLETE && now < ro->watch_until;
}

static void record_event(struct svc *s, int64_t now, const char *kind, const char *text)
{
	if (store_add_event(s->d->store, s->name, now, kind, 0, text, NULL) < 0)
		daemon_store_failed(s->d, "record an event");
	log_info("monitor", "service=%s event=%s msg=\"%s\"", s->name, kind, text);
	daemon_publish(s->d);
}

/* Sets the engine's verdict inputs; a step follows when they changed or a gate may be waiting. */
static void set_verdict(struct svc *s, enum engine_verdict v, int64_t since, const char *reason)
{
	struct engine_state *st = &s->st;
	bool changed = st->verdict != v || st->verdict_since != since ||
		       strncmp(st->verdict_reason, reason, sizeof st->verdict_reason) != 0;
	st->verdict = v;
	st->verdict_since = since;
	snprintf(st->verdict_reason, sizeof st->verdict_reason, "%s", reason);
	if (changed)
		daemon_dirty(s);
}

/* Judges the latest window of s and records a result event when the verdict changed, or once a
 * window while it holds. */
static void judge(struct svc *s, int64_t now)
{
	struct monitor_svc *ms = mon_of(s);
	const struct spec_analysis *a = &s->spec.strategy.analysis;
	if (!analysing(s, now)) {
		if (s->st.verdict != VERDICT_NONE)
			set_verdict(s, VERDICT_NONE, 0, "");
		ms->shown = VERDICT_NONE;
		return;
	}
	struct analysis_window w;
	struct analysis_result res;
	/* Only traffic since the rollout began: samples from before say nothing of this rollout. */
	int64_t not_before = s->st.ro.started_at - MONITOR_INTERVAL_MS;
	if (analysis_ring_window(&ms->ring, a->window_ms, not_before, s->st.target_rev, &w) < 0) {
		set_verdict(s, VERDICT_NONE, 0, "measuring: no sample yet");
		return;
	}
	analysis_evaluate(a, &w, &res);
	ms->last = res;
	ms->have_last = true;
	set_verdict(s, res.verdict, res.since, res.reason);
	if (res.verdict == VERDICT_NONE)
		return;
	if (res.verdict != ms->shown || s->st.target_rev != ms->shown_rev ||
	    now - ms->shown_at >= a->window_ms) {
		char text[200];
		snprintf(text, sizeof text, "analysis of revision %d: %s: %s", s->st.target_rev,
			 verdict_word(res.verdict), res.reason);
		record_event(s, now, "analysis", text);
		ms->shown = res.verdict;
		ms->shown_rev = s->st.target_rev;
		ms->shown_at = now;
	}
}

void monitor_on_stats(void *ctx, const char *service, int err, const struct analysis_rev *v, size_t n)
{
	struct daemon *d = ctx;
	struct svc *s = daemon_find(d, service);
	if (s == NULL || d->stopping)
		return;
	int64_t now = daemon_now();
	if (err == 0) {
		struct analysis_sample smp;
		memset(&smp, 0, sizeof smp);
		smp.t = now;
		smp.n = n < ANALYSIS_MAX_REVS ? n : ANALYSIS_MAX_REVS;
		memcpy(smp.rev, v, smp.n * sizeof *v);
		analysis_ring_push(&mon_of(s)->ring, &smp);
	}
	judge(s, now);
}

/* A balancer that measures nothing cannot pass an analysis: inconclusive, said once a rollout. */
static void unmeasured(struct svc *s, int64_t now)
{
	struct monitor_svc *ms = mon_of(s);
	if (!analysing(s, now)) {
		if (s->st.verdict != VERDICT_NONE)
			set_verdict(s, VERDICT_NONE, 0, "");
		return;
	}
	set_verdict(s, VERDICT_INCONCLUSIVE, now, "the load balancer measures no traffic (lb: none)");
	if (!ms->unmeasured_shown || ms->unmeasured_ro != s->st.ro.id) {
		ms->unmeasured_shown = true;
		ms->unmeasured_ro = s->st.ro.id;
		record_event(s, now, "analysis",
			     "analysis: inconclusive: the load balancer measures no traffic");
	}
}

static void tick(uv_timer_t *t)
{
	struct monitor *m = t->data;
	struct daemon *d = m->d;
	int64_t now = daemon_now();
	for (size_t i = 0; i < d->n_svcs; i++) {
		struct svc *s = d->svcs[i];
		/* Every service is sampled (for /metrics too), analysed or not, on its own balancer. */
		int r = lb_read_stats(svc_lb(s), s->name);
		if (r == -ENOTSUP)
			unmeasured(s, now);
		else if (r == -ENOENT)
			judge(s, now); /* no traffic can have been served: keeps the verdict honest */
	}
}

int monitor_new(struct daemon *d, struct monitor **out)
{
	struct monitor *m = xcalloc(1, sizeof *m);
	m->d = d;
	uv_timer_init(d->loop, &m->timer);
	m->timer.data = m;
	uv_timer_start(&m->timer, tick, MONITOR_INTERVAL_MS, MONITOR_INTERVAL_MS);
	*out = m;
	return 0;
}

static void closed(uv_handle_t *h) { free(h->data); }

void monitor_close(struct monitor *m)
{
	if (m == NULL)
		return;
	uv_timer_stop(&m->timer);
	uv_close((uv_handle_t *)&m->timer, closed);
}
