/* `rollout-sim --bench N`: one N-instance rollout (revision 1 to 2) through the real engine with
 * ideal drivers (every intent carried out and observed at once), measured with getrusage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/engine.h"
#include "core/spec.h"
#include "sim.h"
#include "util/xmalloc.h"

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* Carries out every intent of out at once: START is observed STARTED and HEALTHY, DRAIN DRAINED,
 * STOP EXITED. */
static void ideal_drivers(struct engine_state *st, const struct engine_out *out, int64_t now)
{
	for (size_t k = 0; k < out->n; k++) {
		const struct engine_intent *it = &out->v[k];
		if (it->kind == INTENT_START) {
			engine_observe(st, it->inst_id, OBS_STARTED, now, NULL);
			engine_observe(st, it->inst_id, OBS_HEALTHY, now, NULL);
		} else if (it->kind == INTENT_DRAIN) {
			engine_observe(st, it->inst_id, OBS_DRAINED, now, NULL);
		} else if (it->kind == INTENT_STOP) {
			engine_observe(st, it->inst_id, OBS_EXITED, now, NULL);
		}
	}
}

static void grow(const struct spec *spec, struct engine_state *st, struct engine_out *out)
{
	xgrow((void **)&st->inst, &st->cap, st->n + engine_inst_headroom(spec, st), sizeof *st->inst);
	size_t ib = engine_intent_bound(spec, st);
	if (ib > out->cap) {
		out->v = xrealloc(out->v, ib * sizeof *out->v);
		out->cap = ib;
	}
}

/* Steps until the rollout is over and every instance is of the target revision and available.
 * Returns the steps taken, or -1 if it did not converge within a generous bound. */
static long drive(const struct spec *spec, struct engine_state *st, struct engine_out *out, int64_t *now,
		  size_t *max_intents)
{
	for (long steps = 1; steps < 100000; steps++) {
		grow(spec, st, out);
		out->n = 0;
		if (engine_step(spec, st, *now, out) != 0)
			return -1;
		if (out->n > *max_intents)
			*max_intents = out->n;
		ideal_drivers(st, out, *now);
		if (st->ro.state == RO_PAUSED)
			engine_promote(st, *now, out);
		bool settled = engine_ro_done(st->ro.state) && (int)st->n == spec->replicas;
		for (size_t i = 0; settled && i < st->n; i++)
			settled = st->inst[i].revision == st->target_rev &&
				  engine_inst_available(spec, &st->inst[i], *now);
		if (settled && out->n == 0)
			return steps;
		*now += spec->strategy.min_ready_ms + 1;
	}
	return -1;
}

int sim_bench(int n)
{
	struct spec spec;
	spec_init(&spec);
	spec.replicas = n;
	spec.health.kind = SPEC_CHECK_HTTP; /* the ideal drivers report health as a checker would */
	spec.strategy.max_surge = (struct amount){.percent = true, .value = 25};
	spec.strategy.max_unavailable = (struct amount){.percent = false, .value = 0};
	struct engine_state st;
	engine_state_init(&st);
	struct engine_out out = {0};
	size_t max_intents = 0;
	int64_t now = 0;
	double t0 = cpu_seconds();
	grow(&spec, &st, &out);
	int rc = engine_apply(&spec, &st, 1, now, &out);
	long boot = rc == 0 ? drive(&spec, &st, &out, &now, &max_intents) : -1;
	double t1 = cpu_seconds();
	out.n = 0;
	grow(&spec, &st, &out);
	rc = boot > 0 ? engine_apply(&spec, &st, 2, now, &out) : -1;
	long steps = rc == 0 ? drive(&spec, &st, &out, &now, &max_intents) : -1;
	double t2 = cpu_seconds();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double rss_mb = (double)ru.ru_maxrss / 1024.0;
	int status = 0;
	if (boot < 0 || steps < 0 || st.ro.state != RO_COMPLETE) {
		printf("engine bench: %d instances did not converge (rollout %s)\n", n, engine_ro_state_name(st.ro.state));
		status = 1;
	} else {
		printf("engine bench: %d instances, first deploy %ld steps %.3f s cpu, rollout 1 -> 2 %ld steps %.3f s cpu, "
		       "largest step %zu intents\n",
		       n, boot, t1 - t0, steps, t2 - t1, max_intents);
		printf("cpu %.3f s total (goal < 1 s: %s), peak rss %.1f MB (goal < 64 MB: %s)\n", t2 - t0,
		       t2 - t0 < 1.0 ? "met" : "MISSED", rss_mb, rss_mb < 64.0 ? "met" : "MISSED");
	}
	engine_state_clear(&st);
	free(out.v);
	spec_clear(&spec);
	return status;
}
