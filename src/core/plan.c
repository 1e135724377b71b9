/* `rollout plan`: the batches and waves a rollout would take, found by running the real engine
 * against ideal instances (started, healthy, drained and exited the moment it asks). Pure. */
#include "core/plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "util/xmalloc.h"

/* The run: the engine's state and buffers, and where the recording stands. */
struct run {
	const struct spec *spec;
	struct engine_state st;
	struct engine_out out;
	int64_t now;
	struct plan *plan;       /* NULL while bootstrapping revision 1 */
	int batch, wave;         /* the wave being carried out (indices), batch -1 before the first */
};

static void grow_buffers(struct run *r)
{
	size_t need = r->st.n + engine_inst_headroom(r->spec, &r->st);
	xgrow((void **)&r->st.inst, &r->st.cap, need > 0 ? need : 1, sizeof *r->st.inst);
	size_t ib = engine_intent_bound(r->spec, &r->st);
	if (ib > r->out.cap) {
		r->out.v = xrealloc(r->out.v, ib * sizeof *r->out.v);
		r->out.cap = ib;
	}
}

/* The batch at 0-based index i, growing the plan's array when the engine goes further than the
 * spec arithmetic said (it should not). */
static struct plan_batch *batch_at(struct plan *p, int i)
{
	while ((size_t)i >= p->n_batches) {
		p->batches = xrealloc(p->batches, (p->n_batches + 1) * sizeof *p->batches);
		struct plan_batch *b = &p->batches[p->n_batches];
		memset(b, 0, sizeof *b);
		b->number = (int)p->n_batches + 1;
		b->goal = p->replicas;
		b->min_available = INT_MAX;
		p->n_batches++;
	}
	return &p->batches[i];
}

/* Folds the instance counts as they stand now into the current wave and batch. */
static void snapshot(struct run *r)
{
	if (r->batch < 0)
		return;
	struct plan_batch *b = &r->plan->batches[r->batch];
	struct plan_wave *w = &b->waves[r->wave];
	int avail = 0, total = 0;
	for (size_t i = 0; i < r->st.n; i++) {
		total += r->st.inst[i].state != INST_GONE;
		avail += engine_inst_available(r->spec, &r->st.inst[i], r->now);
	}
	if (avail < w->min_available)
		w->min_available = avail;
	if (total > w->max_total)
		w->max_total = total;
	if (avail < b->min_available)
		b->min_available = avail;
	if (total > b->max_total)
		b->max_total = total;
}

/* Records the intents of one step: a step that starts or drains anything opens a wave of the
 * batch the rollout is in after the step. */
static void record(struct run *r)
{
	int start = 0, stop = 0;
	const char *zone = "";
	for (size_t k = 0; k < r->out.n; k++) {
		const struct engine_intent *it = &r->out.v[k];
		if (it->kind == INTENT_START)
			start++;
		else if (it->kind == INTENT_DRAIN)
			stop++;
		else
			continue;
		for (size_t i = 0; i < r->st.n && !*zone; i++)
			if (r->st.inst[i].id == it->inst_id)
				zone = r->st.inst[i].zone;
	}
	if (start == 0 && stop == 0)
		return;
	struct plan_batch *b = batch_at(r->plan, r->st.ro.batch);
	size_t cap = b->n_waves;
	xgrow((void **)&b->waves, &cap, b->n_waves + 1, sizeof *b->waves);
	b->waves[b->n_waves] = (struct plan_wave){.start = start, .stop = stop, .min_available = INT_MAX};
	snprintf(b->waves[b->n_waves].zone, sizeof b->waves[b->n_waves].zone, "%s", zone);
	r->wave = (int)b->n_waves++;
	r->batch = r->st.ro.batch;
	b->started += start;
	b->stopped += stop;
}

/* The ideal drivers: every intent carried out and observed at once. */
static void carry_out(struct run *r)
{
	for (size_t k = 0; k < r->out.n; k++) {
		const struct engine_intent *it = &r->out.v[k];
		switch (it->kind) {
		case INTENT_START:
			engine_observe(&r->st, it->inst_id, OBS_STARTED, r->now, NULL);
			engine_observe(&r->st, it->inst_id, OBS_HEALTHY, r->now, NULL);
			break;
		case INTENT_DRAIN:
			engine_observe(&r->st, it->inst_id, OBS_DRAINED, r->now, NULL);
			break;
		case INTENT_STOP:
			engine_observe(&r->st, it->inst_id, OBS_EXITED, r->now, NULL);
			break;
		default:
			break;
		}
	}
}

static bool settled(const struct run *r)
{
	const struct engine_state *st = &r->st;
	if (!engine_ro_done(st->ro.state) || (int)st->n != (st->target_rev == 0 ? 0 : r->spec->replicas))
		return false;
	for (size_t i = 0; i < st->n; i++)
		if (st->inst[i].revision != st->target_rev || !engine_inst_available(r->spec, &st->inst[i], r->now))
			return false;
	return true;
}

/* Steps the engine until the rollout is over and the instances settled, promoting every pause
 * (and recording it as the pause after the batch it follows). Returns 0, or ENGINE_EBADSTATE
 * when the engine did not converge within a generous bound or the rollout did not complete. */
static int drive(struct run *r)
{
	int64_t tick = r->spec->strategy.min_ready_ms > 0 ? r->spec->strategy.min_ready_ms : 1;
	long limit = 100000 + 50L * (r->spec->replicas > 0 ? r->spec->replicas : 0);
	for (long steps = 0; steps < limit; steps++) {
		grow_buffers(r);
		r->out.n = 0;
		/* A plan assumes every analysis passes, over the traffic of the current batch. */
		r->st.verdict = r->spec->strategy.analysis.enabled ? VERDICT_PASS : VERDICT_NONE;
		r->st.verdict_since = r->now;
		int rc = engine_step(r->spec, &r->st, r->now, &r->out);
		if (rc != 0)
			return rc;
		if (r->plan != NULL) {
			record(r);
			snapshot(r);
		}
		bool quiet = r->out.n == 0;
		carry_out(r);
		if (r->plan != NULL)
			snapshot(r);
		if (r->st.ro.state == RO_PAUSED) {
			if (r->plan != NULL) {
				struct plan_batch *b = batch_at(r->plan, r->st.ro.batch);
				b->pause = true;
				b->pause_ms = r->st.ro.pause == PAUSE_TIMED ? r->st.ro.pause_until - r->st.ro.paused_at : 0;
			}
			r->out.n = 0;
			rc = engine_promote(&r->st, r->now, &r->out);
			if (rc != 0)
				return rc;
			quiet = false;
		}
		if (quiet && settled(r))
			return r->st.ro.state == RO_COMPLETE ? 0 : ENGINE_EBADSTATE;
		r->now += tick;
	}
	return ENGINE_EBADSTATE;
}

int plan_build(const struct spec *spec, struct plan *out)
{
	memset(out, 0, sizeof *out);
	const struct spec_strategy *sg = &spec->strategy;
	int replicas = spec->replicas > 0 ? spec->replicas : 0;
	out->replicas = replicas;
	spec_surge_unavailable(sg, replicas, &out->surge, &out->unavailable);
	out->floor = replicas - out->unavailable;
	out->ceiling = replicas + out->surge;
	out->max_failures = spec_max_failures(sg, replicas);
	out->min_ready_ms = sg->min_ready_ms;
	out->health_deadline_ms = sg->health_deadline_ms;
	out->progress_deadline_ms = sg->progress_deadline_ms;
	out->drain_timeout_ms = spec->drain_timeout_ms;
	out->auto_rollback = sg->auto_rollback;
	out->analysis = sg->analysis.enabled;
	out->watch_ms = sg->watch_ms;
	int n = spec_batch_count(sg, replicas);
	for (int i = 0; i < n; i++)
		batch_at(out, i)->goal = spec_batch_goal(sg, replicas, i);

	struct run r = {.spec = spec, .batch = -1};
	engine_state_init(&r.st);
	grow_buffers(&r);
	/* Revision 1 first, through the engine too, so the starting state is one it made: replicas
	 * available instances of a stable revision. */
	int rc = engine_apply(spec, &r.st, 1, r.now, &r.out);
	if (rc == 0) {
		rc = drive(&r);
		r.now += 1;
	}
	if (rc == 0) {
		r.plan = out;
		r.out.n = 0;
		grow_buffers(&r);
		rc = engine_apply(spec, &r.st, 2, r.now, &r.out);
	}
	if (rc == 0)
		rc = drive(&r);
	engine_state_clear(&r.st);
	free(r.out.v);
	for (size_t i = 0; i < out->n_batches; i++) {
		struct plan_batch *b = &out->batches[i];
		if (b->min_available == INT_MAX)
			b->min_available = replicas;
		if (b->max_total == 0)
			b->max_total = replicas;
	}
	if (rc != 0)
		plan_clear(out);
	return rc;
}

void plan_clear(struct plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_batches; i++)
		free(p->batches[i].waves);
	free(p->batches);
	memset(p, 0, sizeof *p);
}
