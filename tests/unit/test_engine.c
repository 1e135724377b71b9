/* Engine scenarios against an ideal, scriptable world: each test drives whole rollouts and checks
 * the outcome and the DESIGN invariants along the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/backoff.h"
#include "core/engine.h"
#include "core/spec.h"
#include "util/xmalloc.h"

/* A world where every intent is carried out at once; revisions in `bad` never become healthy. */
struct world {
	struct spec spec;
	struct engine_state st;
	struct engine_out out;
	int64_t now;
	int bad[8];
	int min_avail_seen, max_total_seen;
	int events[EV__COUNT];
	struct engine_rollout hist[32]; /* every rollout seen, as the store would keep them (by id) */
	size_t n_hist;
};

/* Keeps rollout r as the store would (one row per id, the last state seen). */
static void hist_note(struct world *w, const struct engine_rollout *r)
{
	if (r->id == 0)
		return;
	for (size_t i = 0; i < w->n_hist; i++)
		if (w->hist[i].id == r->id) {
			w->hist[i] = *r;
			return;
		}
	assert_true(w->n_hist < 32);
	w->hist[w->n_hist++] = *r;
}

/* The history newest first, as store_list_rollouts gives it. */
static struct engine_history hist_of(struct world *w)
{
	for (size_t i = 1; i < w->n_hist; i++)
		for (size_t k = i; k > 0 && w->hist[k].id > w->hist[k - 1].id; k--) {
			struct engine_rollout t = w->hist[k];
			w->hist[k] = w->hist[k - 1];
			w->hist[k - 1] = t;
		}
	return (struct engine_history){w->hist, w->n_hist};
}

static void world_init(struct world *w, int replicas)
{
	memset(w, 0, sizeof *w);
	spec_init(&w->spec);
	w->spec.replicas = replicas;
	w->spec.health.kind = SPEC_CHECK_HTTP; /* the world reports health as a checker would */
	w->spec.strategy.health_deadline_ms = 10000;
	w->spec.strategy.progress_deadline_ms = 60000;
	engine_state_init(&w->st);
	w->out.cap = 1024;
	w->out.v = xmalloc(w->out.cap * sizeof *w->out.v); /* emit() initialises every intent */
	w->min_avail_seen = 1 << 30;
}

static void world_free(struct world *w)
{
	spec_clear(&w->spec);
	engine_state_clear(&w->st);
	free(w->out.v);
}

static bool is_bad(const struct world *w, int rev)
{
	for (size_t i = 0; i < 8; i++)
		if (w->bad[i] == rev)
			return true;
	return false;
}

static int avail(const struct world *w)
{
	int n = 0;
	for (size_t i = 0; i < w->st.n; i++)
		n += engine_inst_available(&w->spec, &w->st.inst[i], w->now);
	return n;
}

static int total(const struct world *w)
{
	int n = 0;
	for (size_t i = 0; i < w->st.n; i++)
		n += w->st.inst[i].state != INST_GONE;
	return n;
}

static int count_rev(const struct world *w, int rev)
{
	int n = 0;
	for (size_t i = 0; i < w->st.n; i++)
		n += w->st.inst[i].revision == rev && w->st.inst[i].state != INST_GONE;
	return n;
}

/* One engine step, invariant checks, then the ideal world reacts to every intent. */
static void step(struct world *w)
{
	int surge, unav;
	spec_surge_unavailable(&w->spec.strategy, w->st.replicas, &surge, &unav);
	int before = avail(w);
	xgrow((void **)&w->st.inst, &w->st.cap, w->st.n + engine_inst_headroom(&w->spec, &w->st), sizeof *w->st.inst);
	w->out.n = 0;
	assert_int_equal(engine_step(&w->spec, &w->st, w->now, &w->out), 0);
	hist_note(w, &w->st.prev);
	hist_note(w, &w->st.ro);
	int removed = 0, started = 0;
	for (size_t i = 0; i < w->out.n; i++) {
		struct engine_intent *it = &w->out.v[i];
		if (it->kind == INTENT_EVENT || it->kind == INTENT_ROLLOUT)
			w->events[it->event]++;
		if (it->kind == INTENT_DRAIN) {
			for (size_t k = 0; k < w->st.n; k++)
				if (w->st.inst[k].id == it->inst_id && w->st.inst[k].healthy_at != 0 &&
				    w->now - w->st.inst[k].healthy_at >= w->spec.strategy.min_ready_ms)
					removed++;
		}
		started += it->kind == INTENT_START;
	}
	int floor = w->st.target_rev == 0 ? 0 : w->st.replicas - unav;
	if (removed > 0)
		assert_true(before - removed >= floor || removed == 0);
	if (started > 0)
		assert_true(total(w) <= w->st.replicas + surge);
	/* The world reacts. */
	for (size_t i = 0; i < w->out.n; i++) {
		struct engine_intent *it = &w->out.v[i];
		switch (it->kind) {
		case INTENT_START:
			engine_observe(&w->st, it->inst_id, OBS_STARTED, w->now, NULL);
			if (!is_bad(w, it->revision))
				engine_observe(&w->st, it->inst_id, OBS_HEALTHY, w->now, NULL);
			break;
		case INTENT_DRAIN:
			engine_observe(&w->st, it->inst_id, OBS_DRAINED, w->now, NULL);
			break;
		case INTENT_STOP:
			engine_observe(&w->st, it->inst_id, OBS_EXITED, w->now, NULL);
			break;
		default:
			break;
		}
	}
	int a = avail(w);
	if (w->st.ro.state == RO_PROGRESSING && a < w->min_avail_seen)
		w->min_avail_seen = a;
	if (total(w) > w->max_total_seen)
		w->max_total_seen = total(w);
}

/* Steps with the clock moving `dt` ms each time until the rollout is done or `limit` steps. */
static void run(struct world *w, int64_t dt, int limit)
{
	for (int i = 0; i < limit && !engine_ro_done(w->st.ro.state); i++) {
		step(w);
		w->now += dt;
	}
	step(w);
}

/* Counts the events a command emitted (step() counts its own). */
static void tally_events(struct world *w)
{
	for (size_t i = 0; i < w->out.n; i++)
		if (w->out.v[i].kind == INTENT_EVENT || w->out.v[i].kind == INTENT_ROLLOUT)
			w->events[w->out.v[i].event]++;
}

static void apply(struct world *w, int rev)
{
	w->out.n = 0;
	assert_int_equal(engine_apply(&w->spec, &w->st, rev, w->now, &w->out), 0);
	tally_events(w);
}

static void deploy_v1(struct world *w)
{
	apply(w, 1);
	run(w, 100, 1000);
	assert_int_equal(w->st.ro.state, RO_COMPLETE);
	assert_int_equal(w->st.stable_rev, 1);
	assert_int_equal(count_rev(w, 1), w->spec.replicas);
	w->min_avail_seen = 1 << 30;
	w->max_total_seen = 0;
}

static void test_first_deploy_and_rollout(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(w.st.stable_rev, 2);
	assert_int_equal(count_rev(&w, 2), 4);
	assert_int_equal(count_rev(&w, 1), 0);
	assert_int_equal(w.min_avail_seen, 4); /* max_unavailable 0 */
	assert_int_equal(w.max_total_seen, 5); /* 25% of 4 rounded up */
	world_free(&w);
}

/* Issue 12.7: a rollout superseded at its canary pause leaves no third revision serving: the new
 * rollout retires the superseded canary first, under the same capacity rules; the rollout records
 * say what they were begun as, how they ended, and a scale its replicas. */
static void test_supersede_retires_canary(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	struct amount b[2] = {{false, 1}, {true, 100}};
	w.spec.strategy.batches = xmalloc(sizeof b);
	memcpy(w.spec.strategy.batches, b, sizeof b);
	w.spec.strategy.n_batches = 2;
	w.spec.strategy.pause_after = xcalloc(1, sizeof(struct spec_pause));
	w.spec.strategy.pause_after[0].batch = 1;
	w.spec.strategy.n_pause_after = 1;
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.pause, PAUSE_CANARY);
	assert_true(count_rev(&w, 1) == 3 && count_rev(&w, 2) == 1);
	apply(&w, 3); /* supersedes rollout 2 at its canary */
	char oc[200];
	assert_string_equal(engine_ro_outcome(&w.st.prev, oc, sizeof oc), "superseded");
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	/* at rollout 3's canary: revision 1 and 3 only; the superseded canary went first */
	assert_int_equal(count_rev(&w, 2), 0);
	assert_int_equal(count_rev(&w, 1), 3);
	assert_int_equal(count_rev(&w, 3), 1);
	assert_int_equal(w.min_avail_seen, 4); /* max_unavailable 0 held throughout */
	assert_int_equal(engine_ro_began_as(w.st.ro.kind), RO_KIND_DEPLOY);
	assert_string_equal(engine_ro_outcome(&w.st.ro, oc, sizeof oc), "paused (canary)");
	/* aborted: what it was begun as stays a deploy, and it says where it went */
	w.out.n = 0;
	assert_int_equal(engine_abort(&w.st, w.now, &w.out), 0);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ABORTED);
	assert_int_equal(engine_ro_began_as(w.st.ro.kind), RO_KIND_DEPLOY);
	assert_string_equal(engine_ro_outcome(&w.st.ro, oc, sizeof oc), "aborted, back on revision 1");
	assert_false(engine_ro_succeeded(&w.st.ro));
	/* a scale records its replicas */
	w.spec.replicas = 6;
	apply(&w, 1);
	assert_int_equal(w.st.ro.kind, RO_KIND_SCALE);
	assert_true(w.st.ro.from_replicas == 4 && w.st.ro.to_replicas == 6);
	run(&w, 100, 1000);
	assert_string_equal(engine_ro_outcome(&w.st.ro, oc, sizeof oc), "complete");
	assert_true(engine_ro_succeeded(&w.st.ro));
	world_free(&w);
}

static void test_batches_and_canary(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	struct amount b[3] = {{false, 1}, {true, 25}, {true, 100}};
	w.spec.strategy.batches = xmalloc(sizeof b);
	memcpy(w.spec.strategy.batches, b, sizeof b);
	w.spec.strategy.n_batches = 3;
	w.spec.strategy.pause_after = xcalloc(1, sizeof(struct spec_pause));
	w.spec.strategy.pause_after[0].batch = 1;
	w.spec.strategy.n_pause_after = 1;
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	assert_int_equal(w.st.ro.pause, PAUSE_CANARY);
	assert_int_equal(count_rev(&w, 2), 1);
	assert_int_equal(count_rev(&w, 1), 3);
	/* Paused for a long time: no progress deadline, nothing moves. */
	w.now += 10 * 60 * 1000;
	step(&w);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	assert_int_equal(engine_resume(&w.st, w.now, &w.out), ENGINE_EBADSTATE);
	w.out.n = 0;
	assert_int_equal(engine_promote(&w.st, w.now, &w.out), 0);
	tally_events(&w);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(count_rev(&w, 2), 4);
	assert_int_equal(w.events[EV_BATCH_STARTED], 3);
	world_free(&w);
}

static void test_bad_version_rolls_back(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	assert_int_equal(w.st.target_rev, 1);
	assert_int_equal(w.st.stable_rev, 1);
	assert_int_equal(count_rev(&w, 1), 4);
	assert_int_equal(count_rev(&w, 2), 0);
	assert_int_equal(w.min_avail_seen, 4);
	assert_non_null(strstr(w.st.ro.reason, "max_failures"));
	/* Rolled back within health_deadline plus a little. */
	assert_true(w.st.ro.ended_at - w.st.ro.started_at <= w.spec.strategy.health_deadline_ms + 2000);
	world_free(&w);
}

static void test_bad_version_no_auto_rollback_halts(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	w.spec.strategy.auto_rollback = false;
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_FAILED);
	for (int i = 0; i < 100; i++, w.now += 500)
		step(&w);
	/* Halted: the old capacity stays, no new instance is started again. */
	assert_int_equal(count_rev(&w, 1), 4);
	assert_int_equal(count_rev(&w, 2), 0);
	world_free(&w);
}

static void test_abort_and_undo(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 6);
	w.spec.strategy.pause_after = xcalloc(1, sizeof(struct spec_pause));
	w.spec.strategy.pause_after[0].batch = 1;
	w.spec.strategy.n_pause_after = 1;
	w.spec.strategy.batches = xcalloc(1, sizeof(struct amount));
	w.spec.strategy.batches[0] = (struct amount){false, 2};
	w.spec.strategy.n_batches = 1;
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	w.out.n = 0;
	assert_int_equal(engine_abort(&w.st, w.now, &w.out), 0);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ABORTED);
	assert_int_equal(count_rev(&w, 1), 6);
	/* An aborted rollout never rolls forward by itself. */
	for (int i = 0; i < 50; i++, w.now += 1000)
		step(&w);
	assert_int_equal(count_rev(&w, 2), 0);

	/* Roll to 3 fully, then undo goes back to 1 by the fast path (no canary pause). */
	apply(&w, 3);
	run(&w, 100, 1000);
	w.out.n = 0;
	assert_int_equal(engine_promote(&w.st, w.now, &w.out), 0);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(w.st.stable_rev, 3);
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 0, false, NULL, w.now, &w.out), 0);
	assert_int_equal(w.st.target_rev, 1);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	assert_int_equal(count_rev(&w, 1), 6);
	assert_int_equal(w.st.stable_rev, 1);
	assert_int_equal(engine_undo(&w.st, 1, false, NULL, w.now, &w.out), ENGINE_EBADSTATE);
	assert_int_equal(engine_undo(&w.st, 9, false, NULL, w.now, &w.out), ENGINE_ENOREV);
	world_free(&w);
}

static void test_scale_and_crash_replacement(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 3);
	deploy_v1(&w);
	w.spec.replicas = 7;
	apply(&w, 1);
	assert_int_equal(w.st.ro.kind, RO_KIND_SCALE);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(count_rev(&w, 1), 7);
	w.spec.replicas = 2;
	apply(&w, 1);
	run(&w, 100, 1000);
	assert_int_equal(count_rev(&w, 1), 2);
	/* A crash outside a rollout is replaced. */
	uint64_t victim = w.st.inst[0].id;
	engine_observe(&w.st, victim, OBS_EXITED, w.now, "killed");
	step(&w);
	w.now += 100;
	step(&w);
	assert_int_equal(count_rev(&w, 1), 2);
	assert_int_equal(avail(&w), 2);
	world_free(&w);
}

static void test_new_revision_mid_rollout(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 8);
	w.spec.strategy.min_ready_ms = 1000;
	deploy_v1(&w);
	apply(&w, 2);
	for (int i = 0; i < 12; i++, w.now += 100)
		step(&w);
	assert_true(count_rev(&w, 2) > 0);
	apply(&w, 3);
	run(&w, 100, 5000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(count_rev(&w, 3), 8);
	assert_int_equal(total(&w), 8);
	assert_int_equal(w.min_avail_seen, 8);
	world_free(&w);
}

/* Found by the simulator (seed 85): an undo to a revision that never comes up must end. */
static void test_undo_to_bad_revision_halts(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 2, true, NULL, w.now, &w.out), 0);
	run(&w, 1000, 1000);
	assert_int_equal(w.st.ro.state, RO_FAILED);
	assert_non_null(strstr(w.st.ro.reason, "no progress"));
	assert_true(w.st.ro.ended_at - w.st.ro.started_at <= w.spec.strategy.progress_deadline_ms + 2000);
	/* surge 1, unavailable 0: the floor is 4, so revision 1 kept its whole capacity. */
	assert_int_equal(avail(&w), 4);
	assert_int_equal(count_rev(&w, 1), 4);
	world_free(&w);
}

/* Found by the simulator (seed 14): crashes during a scale do not fail it. */
/* Undo to a revision that never became stable needs force, and the refusal says how that
 * revision's rollout ended; what became stable is judged from the whole history. */
/* A failed deploy rolled back to the stable revision: a plain undo goes to the stable revision
 * before it (it said "no earlier stable revision"). */
static void test_undo_after_failed_deploy(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.strategy.auto_rollback = true;
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.stable_rev, 2);
	w.bad[0] = 3;
	apply(&w, 3);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	assert_int_equal(w.st.target_rev, 2);
	struct engine_history h = hist_of(&w);
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 0, false, &h, w.now, &w.out), 0);
	assert_int_equal(w.st.target_rev, 1);
	run(&w, 100, 1000);
	assert_int_equal(count_rev(&w, 1), 2);
	world_free(&w);
}

static void test_undo_to_unstable_needs_force(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 3);
	w.spec.strategy.auto_rollback = true;
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	for (int rev = 3; rev <= 5; rev++) {
		apply(&w, rev);
		run(&w, 100, 1000);
		assert_int_equal(w.st.ro.state, RO_COMPLETE);
	}
	struct engine_history h = hist_of(&w);
	char how[200] = "";
	assert_false(engine_rev_was_stable(&w.st, 2, &h, how, sizeof how));
	assert_non_null(strstr(how, "its rollout 2 was rolled back: "));
	assert_non_null(strstr(how, "failed"));
	for (int rev = 1; rev <= 5; rev++)
		if (rev != 2)
			assert_true(engine_rev_was_stable(&w.st, rev, &h, NULL, 0));
	/* Revision 1 shows as stable only in rollouts older than st's own two. */
	assert_false(engine_rev_was_stable(&w.st, 1, NULL, NULL, 0));

	struct engine_state copy = w.st;
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 2, false, &h, w.now, &w.out), ENGINE_EUNSTABLE);
	assert_int_equal(engine_undo(&w.st, 1, false, NULL, w.now, &w.out), ENGINE_EUNSTABLE);
	assert_int_equal(engine_undo(&w.st, 6, false, &h, w.now, &w.out), ENGINE_ENOREV);
	assert_int_equal(w.out.n, 0);
	assert_memory_equal(&copy.ro, &w.st.ro, sizeof copy.ro);
	assert_int_equal(copy.target_rev, w.st.target_rev);

	assert_int_equal(engine_undo(&w.st, 1, false, &h, w.now, &w.out), 0);
	assert_int_equal(w.st.target_rev, 1);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	h = hist_of(&w);
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 2, true, &h, w.now, &w.out), 0);
	assert_int_equal(w.st.target_rev, 2);
	world_free(&w);
}

/* A revision whose rollout failed (no automatic rollback) or was aborted never became stable, and
 * the refusal says so; one superseded after it had become stable did. */
static void test_unstable_how(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.strategy.auto_rollback = false;
	w.spec.strategy.pause_after = xcalloc(1, sizeof(struct spec_pause));
	w.spec.strategy.pause_after[0].batch = 1;
	w.spec.strategy.n_pause_after = 1;
	w.spec.strategy.batches = xcalloc(1, sizeof(struct amount));
	w.spec.strategy.batches[0] = (struct amount){false, 1};
	w.spec.strategy.n_batches = 1;
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_FAILED);

	apply(&w, 3); /* paused after its canary, then aborted: back to 1 */
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	w.out.n = 0;
	assert_int_equal(engine_abort_why(&w.st, "host key of root@h:22 changed", w.now, &w.out), 0);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ABORTED);
	assert_string_equal(w.st.ro.reason, "host key of root@h:22 changed");

	apply(&w, 4); /* paused after its canary, promoted: complete */
	run(&w, 100, 1000);
	w.out.n = 0;
	assert_int_equal(engine_promote(&w.st, w.now, &w.out), 0);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	apply(&w, 5);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);

	struct engine_history h = hist_of(&w);
	char how[200] = "";
	assert_false(engine_rev_was_stable(&w.st, 2, &h, how, sizeof how));
	assert_string_equal(
	    how, "its rollout 2 failed: 1 instance(s) of revision 2 failed, more than max_failures 0; "
		 "last: not healthy within health_deadline 10s");
	assert_false(engine_rev_was_stable(&w.st, 3, &h, how, sizeof how));
	assert_string_equal(how, "its rollout 3 was aborted: host key of root@h:22 changed");
	assert_true(engine_rev_was_stable(&w.st, 4, &h, NULL, 0));
	assert_true(engine_rev_was_stable(&w.st, 1, &h, NULL, 0));
	/* Undo from the live rollout to 5: to 3 is refused, to 4 (stable) goes. */
	w.out.n = 0;
	assert_int_equal(engine_undo(&w.st, 3, false, &h, w.now, &w.out), ENGINE_EUNSTABLE);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	assert_int_equal(engine_undo(&w.st, 4, false, &h, w.now, &w.out), 0);
	assert_int_equal(w.st.target_rev, 4);
	world_free(&w);
}

static void test_scale_survives_crashes(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 10);
	deploy_v1(&w);
	w.spec.replicas = 3;
	apply(&w, 1);
	step(&w);
	for (int k = 0; k < 3; k++)
		engine_observe(&w.st, w.st.inst[k].id, OBS_EXITED, w.now, "crash");
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(count_rev(&w, 1), 3);
	assert_int_equal(avail(&w), 3);
	world_free(&w);
}

static void test_bad_commands_leave_state_alone(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	deploy_v1(&w);
	struct engine_state copy = w.st;
	assert_int_equal(engine_pause(&w.st, w.now, &w.out), ENGINE_EBADSTATE);
	assert_int_equal(engine_promote(&w.st, w.now, &w.out), ENGINE_EBADSTATE);
	assert_int_equal(engine_resume(&w.st, w.now, &w.out), ENGINE_EBADSTATE);
	assert_int_equal(engine_abort(&w.st, w.now, &w.out), ENGINE_EBADSTATE);
	assert_memory_equal(&copy.ro, &w.st.ro, sizeof copy.ro);
	assert_int_equal(copy.target_rev, w.st.target_rev);
	world_free(&w);
}

/* DESIGN's two invariants, exhaustively: for every N <= 50 and every surge and unavailable
 * count <= N (not both 0), with and without batches, a rollout never drops below the floor, never
 * exceeds the ceiling (step() checks both at every step) and completes. */
static void test_invariants_exhaustive(void **state)
{
	(void)state;
	long rollouts = 0;
	for (int n = 1; n <= 50; n++) {
		for (int su = 0; su <= n; su++) {
			for (int un = 0; un <= n; un++) {
				if (su == 0 && un == 0)
					continue;
				for (int batched = 0; batched < 2; batched++) {
					struct world w;
					world_init(&w, n);
					w.spec.strategy.max_surge = (struct amount){false, su};
					w.spec.strategy.max_unavailable = (struct amount){false, un};
					if (batched) {
						struct amount b[3] = {{false, 1}, {true, 10}, {true, 50}};
						w.spec.strategy.batches = xmalloc(sizeof b);
						memcpy(w.spec.strategy.batches, b, sizeof b);
						w.spec.strategy.n_batches = 3;
					}
					deploy_v1(&w);
					apply(&w, 2);
					run(&w, 100, 4 * n + 50);
					if (w.st.ro.state != RO_COMPLETE || count_rev(&w, 2) != n || total(&w) != n)
						fail_msg("n=%d surge=%d unavailable=%d batched=%d: %s with %d of revision 2", n, su,
							 un, batched, engine_ro_state_name(w.st.ro.state), count_rev(&w, 2));
					assert_true(w.min_avail_seen >= n - un);
					assert_true(w.max_total_seen <= n + su);
					world_free(&w);
					rollouts++;
				}
			}
		}
	}
	assert_true(rollouts > 80000);
}

static void test_next_deadline(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.strategy.min_ready_ms = 1500;
	apply(&w, 1);
	step(&w); /* starts both; the ideal world makes them healthy at once */
	assert_int_equal(engine_next_deadline(&w.spec, &w.st, w.now), w.now + 1500);
	w.now += 1500;
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(engine_next_deadline(&w.spec, &w.st, w.now), INT64_MAX);
	world_free(&w);
}

/* ---- crash loops ---- */

/* One step of a world where every running instance exits `life` ms after it started (0: runs
 * on); no health check, as the daemon does without one: healthy as soon as it runs. Returns the
 * STARTs of the step. */
static int crash_step(struct world *w, int64_t life, int64_t *started_at)
{
	xgrow((void **)&w->st.inst, &w->st.cap, w->st.n + engine_inst_headroom(&w->spec, &w->st), sizeof *w->st.inst);
	w->out.n = 0;
	assert_int_equal(engine_step(&w->spec, &w->st, w->now, &w->out), 0);
	int starts = 0;
	for (size_t i = 0; i < w->out.n; i++) {
		const struct engine_intent *it = &w->out.v[i];
		if (it->kind == INTENT_START) {
			starts++;
			engine_observe(&w->st, it->inst_id, OBS_STARTED, w->now, NULL);
			engine_observe(&w->st, it->inst_id, OBS_HEALTHY, w->now, NULL);
			started_at[it->inst_id % 64] = w->now;
		} else if (it->kind == INTENT_STOP || it->kind == INTENT_DRAIN) {
			engine_observe(&w->st, it->inst_id, it->kind == INTENT_STOP ? OBS_EXITED : OBS_DRAINED, w->now, NULL);
		}
	}
	for (size_t i = 0; life > 0 && i < w->st.n; i++) {
		const struct engine_inst *in = &w->st.inst[i];
		if ((in->state == INST_STARTED || in->state == INST_READY) && w->now - started_at[in->id % 64] >= life)
			engine_observe(&w->st, in->id, OBS_EXITED, w->now, "exit status 1");
	}
	return starts;
}

/* `command: [/bin/false]` without a health check: a program that exits at once is never
 * available, so its first deploy does not complete (it fails on the first failure here). */
static void test_exit_at_once_is_never_available(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.health.kind = SPEC_CHECK_NONE;
	int64_t started[64] = {0};
	apply(&w, 1);
	for (int i = 0; i < 200; i++, w.now += 10) {
		crash_step(&w, 5, started);
		assert_int_not_equal(w.st.ro.state, RO_COMPLETE);
		for (size_t k = 0; k < w.st.n; k++)
			assert_false(engine_inst_available(&w.spec, &w.st.inst[k], w.now));
	}
	assert_int_equal(w.st.ro.state, RO_FAILED);
	assert_int_equal(w.st.stable_rev, 0);
	/* Running on, it is available once it has run ENGINE_NOCHECK_READY_MS. */
	world_free(&w);
	world_init(&w, 2);
	w.spec.health.kind = SPEC_CHECK_NONE;
	apply(&w, 1);
	crash_step(&w, 0, started);
	w.now += ENGINE_NOCHECK_READY_MS - 1;
	crash_step(&w, 0, started);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING);
	assert_int_equal(engine_next_deadline(&w.spec, &w.st, w.now), w.now + 1);
	w.now += 1;
	crash_step(&w, 0, started);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	world_free(&w);
}

/* A completed service whose instances then crash at once: restarts back off (100 ms doubling,
 * capped), the rollout stays complete but the service reads crash-looping with 0 available, and
 * a replacement that stays up BACKOFF_STABLE_MS resets the count. */
static void test_crash_loop_backs_off(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.health.kind = SPEC_CHECK_NONE;
	int64_t started[64] = {0};
	apply(&w, 1);
	for (int i = 0; i < 30; i++, w.now += 100)
		crash_step(&w, 0, started);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	int av = -1;
	assert_int_equal(engine_health(&w.spec, &w.st, w.now, &av), HEALTH_OK);
	assert_int_equal(av, 2);

	/* From now on every instance exits 20 ms after it started: two minutes of it. */
	int starts = 0;
	for (size_t k = 0; k < w.st.n; k++)
		started[w.st.inst[k].id % 64] = w.now - 20;
	int64_t t0 = w.now;
	while (w.now < t0 + 120000) {
		starts += crash_step(&w, 20, started);
		w.now += 10;
	}
	/* Per slot: 0.1+0.2+...+25.6 s = 51.1 s for 9 restarts, then one per 30 s: 11 in 2 min. */
	assert_true(starts <= 2 * 11);
	assert_true(starts >= 2 * 9);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(engine_health(&w.spec, &w.st, w.now, &av), HEALTH_CRASH_LOOPING);
	assert_int_equal(av, 0);
	int backing_off = 0;
	for (size_t k = 0; k < w.st.n; k++) {
		const struct engine_inst *in = &w.st.inst[k];
		if (in->state == INST_BACKOFF) {
			backing_off++;
			assert_true(in->restarts >= 10);
			assert_true(in->start_at - w.now <= BACKOFF_CAP_MS);
			/* the shell's timer: the engine's next deadline is no later than its start */
			assert_true(engine_next_deadline(&w.spec, &w.st, w.now) <= in->start_at);
		}
	}
	assert_true(backing_off >= 1);

	/* The program is fixed: the next ones run on, and after a stable run a crash restarts soon. */
	t0 = w.now;
	while (w.now < t0 + BACKOFF_CAP_MS + BACKOFF_STABLE_MS + 1000) {
		crash_step(&w, 0, started);
		w.now += 10;
	}
	assert_int_equal(engine_health(&w.spec, &w.st, w.now, &av), HEALTH_OK);
	uint64_t victim = w.st.inst[0].id;
	engine_observe(&w.st, victim, OBS_EXITED, w.now, "killed");
	crash_step(&w, 0, started);
	const struct engine_inst *heir = &w.st.inst[w.st.n - 1];
	assert_int_equal(heir->restarts, 1);
	assert_int_equal(heir->state, INST_BACKOFF);
	assert_int_equal(heir->start_at, w.now + BACKOFF_BASE_MS);
	assert_int_equal(engine_health(&w.spec, &w.st, w.now, &av), HEALTH_DEGRADED);

	/* Scaled down meanwhile, the waiting instance just goes: nothing to drain or stop. */
	w.spec.replicas = 1;
	apply(&w, 1);
	uint64_t waiting = heir->id;
	crash_step(&w, 0, started);
	for (size_t i = 0; i < w.out.n; i++)
		assert_false(w.out.v[i].inst_id == waiting && w.out.v[i].kind != INTENT_EVENT);
	for (size_t k = 0; k < w.st.n; k++)
		assert_false(w.st.inst[k].id == waiting && w.st.inst[k].state != INST_GONE);
	world_free(&w);
}

/* The restart count lives in the state the shell commits: a copy (what a restarted daemon
 * loads) goes on backing off, and a failed instance gone before its replacement was decided
 * still hands its count over. */
static void test_backoff_survives_a_reload(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 1);
	w.spec.health.kind = SPEC_CHECK_NONE;
	/* max_surge 0, max_unavailable 1: no room for a replacement until the failed one is gone */
	w.spec.strategy.max_surge = (struct amount){false, 0};
	w.spec.strategy.max_unavailable = (struct amount){false, 1};
	int64_t started[64] = {0};
	apply(&w, 1);
	for (int i = 0; i < 30; i++, w.now += 100)
		crash_step(&w, 0, started);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	for (int round = 1; round <= 6; round++) {
		struct engine_inst *in = &w.st.inst[w.st.n - 1];
		assert_true(in->state == INST_READY || in->state == INST_STARTED);
		engine_observe(&w.st, in->id, OBS_EXITED, w.now, "exit status 1");
		/* A reload: the state as committed, in a new buffer. */
		struct engine_state copy = w.st;
		copy.inst = xmalloc(w.st.cap * sizeof *copy.inst);
		memcpy(copy.inst, w.st.inst, w.st.n * sizeof *copy.inst);
		free(w.st.inst);
		w.st = copy;
		int64_t failed_at = w.now;
		int starts = 0;
		while (starts == 0) {
			starts = crash_step(&w, 0, started);
			if (starts == 0)
				w.now += 10;
			assert_true(w.now < failed_at + BACKOFF_CAP_MS + 1000);
		}
		int64_t delay = (int64_t)BACKOFF_BASE_MS << (round - 1); /* 100 ms, 200 ms, 400 ms ... */
		assert_true(w.now >= failed_at + delay);
		assert_true(w.now < failed_at + delay + 20);
		w.now += 50;
		crash_step(&w, 0, started);
	}
	world_free(&w);
}

static void test_names_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < INST__COUNT; i++)
		assert_int_equal(engine_inst_state_parse(engine_inst_state_name(i)), i);
	for (int i = 0; i < RO__COUNT; i++)
		assert_int_equal(engine_ro_state_parse(engine_ro_state_name(i)), i);
	for (int i = 0; i <= RO_KIND_SCALE; i++)
		assert_int_equal(engine_ro_kind_parse(engine_ro_kind_name(i)), i);
	assert_int_equal(engine_ro_state_parse("bogus"), -1);
	/* pauses: a name, the verb that continues, whether a person must act (a timed one goes on) */
	assert_null(engine_pause_name(PAUSE_NONE));
	assert_null(engine_pause_continue(PAUSE_NONE));
	assert_string_equal(engine_pause_continue(PAUSE_USER), "resume");
	assert_string_equal(engine_pause_continue(PAUSE_CANARY), "promote");
	assert_string_equal(engine_pause_name(PAUSE_ANALYSIS_ZONE), "analysis");
	assert_true(engine_pause_needs_person(PAUSE_USER) && engine_pause_needs_person(PAUSE_CANARY) &&
		    engine_pause_needs_person(PAUSE_ANALYSIS) && engine_pause_needs_person(PAUSE_ANALYSIS_ZONE));
	assert_false(engine_pause_needs_person(PAUSE_TIMED) || engine_pause_needs_person(PAUSE_NONE));
}

/* ---- zones ---- */

/* Six hosts in zones a a b b c c (shares 2 each of 6 replicas), surge 1, unavailable 0. */
static void zoned_world(struct world *w, bool one_per_batch, int min_pct)
{
	static const char *const zones[] = {"a", "a", "b", "b", "c", "c"};
	world_init(w, 6);
	struct spec *sp = &w->spec;
	sp->targets_local = false;
	sp->targets = xcalloc(6, sizeof *sp->targets);
	for (size_t i = 0; i < 6; i++) {
		struct spec_target *t = &sp->targets[sp->n_targets++];
		char b[32];
		snprintf(b, sizeof b, "ssh://u@10.0.0.%zu", i + 1);
		t->url = xstrdup(b);
		t->user = xstrdup("u");
		t->host = xstrdup(b + 8);
		t->port = 22;
		t->labels = xcalloc(1, sizeof *t->labels);
		t->labels[0] = (struct spec_kv){.name = xstrdup("zone"), .value = xstrdup(zones[i])};
		t->n_labels = 1;
	}
	sp->strategy.zones.label = xstrdup("zone");
	sp->strategy.zones.one_per_batch = one_per_batch;
	sp->strategy.zones.min_available = (struct amount){.percent = true, .value = min_pct};
	sp->strategy.max_surge = (struct amount){.percent = false, .value = 1};
}

static int zone_count(const struct world *w, const char *zone, int rev, bool avail_only)
{
	int n = 0;
	for (size_t i = 0; i < w->st.n; i++) {
		const struct engine_inst *in = &w->st.inst[i];
		if (in->state != INST_GONE && in->revision == rev && strcmp(in->zone, zone) == 0 &&
		    (!avail_only || engine_inst_available(&w->spec, in, w->now)))
			n++;
	}
	return n;
}

/* Runs revision rev to its end, step by step, checking at every step that each zone keeps
 * min_each available instances; returns the zones of the new revision's starts, in order. */
static void run_zoned(struct world *w, int rev, int min_each, char *order, size_t len)
{
	size_t o = 0;
	for (int i = 0; i < 1000 && !engine_ro_done(w->st.ro.state); i++) {
		size_t n0 = w->st.n;
		uint64_t first_new = w->st.next_inst_id;
		step(w);
		(void)n0;
		for (size_t k = 0; k < w->st.n; k++) {
			const struct engine_inst *in = &w->st.inst[k];
			if (in->id >= first_new && in->revision == rev && o + 1 < len)
				order[o++] = in->zone[0];
		}
		for (const char *z = "abc"; *z; z++) {
			char zn[2] = {*z, 0};
			int a = zone_count(w, zn, rev, true) + zone_count(w, zn, rev - 1, true);
			assert_true(a >= min_each);
		}
		w->now += 100;
	}
	order[o] = '\0';
}

static void test_zones_one_per_batch(void **state)
{
	(void)state;
	struct world w;
	zoned_world(&w, true, 50);
	struct amount b[3] = {{false, 1}, {true, 50}, {true, 100}};
	w.spec.strategy.batches = xmalloc(sizeof b);
	memcpy(w.spec.strategy.batches, b, sizeof b);
	w.spec.strategy.n_batches = 3;
	deploy_v1(&w);
	for (const char *z = "abc"; *z; z++)
		assert_int_equal(zone_count(&w, (char[]){*z, 0}, 1, true), 2); /* spread by share */
	apply(&w, 2);
	char order[64];
	int batches0 = w.events[EV_BATCH_STARTED];
	run_zoned(&w, 2, 1, order, sizeof order);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	/* Zone after zone, never back: a, then b, then c. */
	assert_string_equal(order, "aabbcc");
	for (const char *z = "abc"; *z; z++)
		assert_int_equal(zone_count(&w, (char[]){*z, 0}, 2, true), 2);
	/* Batches 1 (1 in a), 2 cut at a's end (1 more in a), then b, then c: four batch starts
	 * after the first (which apply counted). */
	assert_int_equal(w.events[EV_BATCH_STARTED] - batches0, 3);
	assert_int_equal(w.st.ro.zone_step, 2);
	world_free(&w);
}

static void test_zones_spread_with_floor(void **state)
{
	(void)state;
	struct world w;
	zoned_world(&w, false, 100);
	deploy_v1(&w);
	apply(&w, 2);
	char order[64];
	run_zoned(&w, 2, 2, order, sizeof order); /* 100% of each share stays available */
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(strlen(order), 6);
	for (const char *z = "abc"; *z; z++)
		assert_int_equal(zone_count(&w, (char[]){*z, 0}, 2, true), 2);
	world_free(&w);
}

/* Instances from before the zone rule (no zone) are replaced by zoned ones, floor permitting. */
static void test_zones_adopt_unzoned(void **state)
{
	(void)state;
	struct world w;
	zoned_world(&w, false, 0);
	char *label = w.spec.strategy.zones.label;
	w.spec.strategy.zones.label = NULL;
	deploy_v1(&w);
	w.spec.strategy.zones.label = label;
	assert_int_equal(zone_count(&w, "", 1, true), 6);
	apply(&w, 2);
	char order[64];
	run_zoned(&w, 2, 0, order, sizeof order);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(zone_count(&w, "", 1, false), 0);
	for (const char *z = "abc"; *z; z++)
		assert_int_equal(zone_count(&w, (char[]){*z, 0}, 2, true), 2);
	assert_int_equal(w.min_avail_seen, 6);
	world_free(&w);
}

/* An inconclusive verdict where a batch ends exactly at a zone's end: one pause; promote goes on in
 * the next zone with the next batch (no second pause without anything new). */
static void test_zones_inconclusive_at_zone_end(void **state)
{
	(void)state;
	struct world w;
	zoned_world(&w, true, 0);
	struct amount b[2] = {{false, 2}, {true, 100}};
	w.spec.strategy.batches = xmalloc(sizeof b);
	memcpy(w.spec.strategy.batches, b, sizeof b);
	w.spec.strategy.n_batches = 2;
	deploy_v1(&w);
	w.spec.strategy.analysis.enabled = true;
	apply(&w, 2);
	for (int i = 0; i < 200 && w.st.ro.state != RO_PAUSED; i++) {
		w.st.verdict = VERDICT_INCONCLUSIVE;
		w.st.verdict_since = w.now;
		step(&w);
		w.now += 100;
	}
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	assert_int_equal(w.st.ro.pause, PAUSE_ANALYSIS);
	assert_int_equal(w.st.ro.zone_step, 1); /* zone a is full: the next batch starts in b */
	assert_int_equal(zone_count(&w, "a", 2, true), 2);
	w.out.n = 0;
	assert_int_equal(engine_promote(&w.st, w.now, &w.out), 0);
	assert_int_equal(w.st.ro.batch, 1);
	w.st.verdict = VERDICT_INCONCLUSIVE;
	w.st.verdict_since = w.now;
	step(&w);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING); /* no pause again before zone b changed */
	assert_int_equal(zone_count(&w, "b", 2, false), 1); /* surge 1: the first of zone b starts */
	world_free(&w);
}


/* A rollout is complete only when its traffic can reach it: with every instance up but the
 * listener not bound, it waits, past its progress deadline, then completes once bound. */
static void test_waits_for_traffic(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	deploy_v1(&w);
	w.st.no_traffic = true;
	snprintf(w.st.no_traffic_why, sizeof w.st.no_traffic_why, "listener 127.0.0.1:8080 not bound");
	apply(&w, 2);
	run(&w, 100, 200);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING);
	assert_int_equal(count_rev(&w, 2), 2);
	assert_int_equal(count_rev(&w, 1), 0);
	assert_true(engine_waits_for_traffic(&w.spec, &w.st, w.now));
	assert_int_equal(w.events[EV_COMPLETE], 1); /* v1's only */
	/* not failed by progress_deadline (60 s) while it waits, nor woken for it */
	w.now += 120000;
	run(&w, 1000, 10);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING);
	assert_int_equal(engine_next_deadline(&w.spec, &w.st, w.now), INT64_MAX);
	w.st.no_traffic = false;
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(w.events[EV_COMPLETE], 2);
	assert_false(engine_waits_for_traffic(&w.spec, &w.st, w.now));
	world_free(&w);
}

/* While it waits for traffic an instance is lost: the clock runs again from where the wait began
 * (not failed at once for the time spent waiting), and the rollout still ends only when bound. */
static void test_traffic_wait_then_crash(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	w.spec.strategy.max_failures.value = 1; /* the crash is not what fails it */
	w.st.no_traffic = true;
	apply(&w, 1);
	run(&w, 100, 100);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING);
	w.now += 300000; /* five progress deadlines */
	step(&w);
	uint64_t id = w.st.inst[0].id;
	engine_observe(&w.st, id, OBS_EXITED, w.now, "killed");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING); /* not "no progress for 1m" */
	run(&w, 100, 100);
	assert_int_equal(w.st.ro.state, RO_PROGRESSING);
	w.st.no_traffic = false;
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	world_free(&w);
}

/* A drain that timed out says so in the stopping event; a confirmed one says drained. */
static void test_drain_timeout_event(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 1);
	deploy_v1(&w);
	apply(&w, 2);
	/* by hand: the drain of the v1 instance times out with a request in flight */
	char text[2][sizeof w.out.v[0].text] = {"", ""};
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 50 && text[k][0] == '\0'; i++) {
			xgrow((void **)&w.st.inst, &w.st.cap, w.st.n + engine_inst_headroom(&w.spec, &w.st),
			      sizeof *w.st.inst);
			w.out.n = 0;
			assert_int_equal(engine_step(&w.spec, &w.st, w.now, &w.out), 0);
			for (size_t j = 0; j < w.out.n; j++) {
				struct engine_intent *it = &w.out.v[j];
				if (it->kind == INTENT_START) {
					engine_observe(&w.st, it->inst_id, OBS_STARTED, w.now, NULL);
					engine_observe(&w.st, it->inst_id, OBS_HEALTHY, w.now, NULL);
				} else if (it->kind == INTENT_DRAIN) {
					engine_observe(&w.st, it->inst_id, OBS_DRAINED, w.now,
						       k == 0 ? "drain timed out with 1 request in flight" : NULL);
				} else if (it->kind == INTENT_STOP) {
					engine_observe(&w.st, it->inst_id, OBS_EXITED, w.now, NULL);
				} else if (it->kind == INTENT_EVENT && it->event == EV_INSTANCE_STOPPING) {
					snprintf(text[k], sizeof text[k], "%s", it->text);
				}
			}
			w.now += 100;
		}
		if (k == 0) {
			run(&w, 100, 100);
			assert_int_equal(w.st.ro.state, RO_COMPLETE);
			apply(&w, 3);
		}
	}
	assert_string_equal(text[0], "instance 1 (revision 1) drain timed out with 1 request in flight, stopping");
	assert_string_equal(text[1], "instance 2 (revision 2) drained, stopping");
	world_free(&w);
}

/* Whether the last step emitted an event of kind ev whose text has needle. */
static bool emitted(const struct world *w, enum engine_event_kind ev, const char *needle)
{
	for (size_t i = 0; i < w->out.n; i++)
		if ((w->out.v[i].kind == INTENT_EVENT || w->out.v[i].kind == INTENT_ROLLOUT) && w->out.v[i].event == ev &&
		    strstr(w->out.v[i].text, needle) != NULL)
			return true;
	return false;
}

/* Reports the same probe result for every instance that runs (the shell's report_checks). */
static void report_check(struct world *w, const char *text)
{
	for (size_t i = 0; i < w->st.n; i++)
		engine_observe(&w->st, w->st.inst[i].id, OBS_CHECK, w->now, text);
}

/* A health deadline names what the last probe saw, in the instance's cause, its failed event
 * and the failed rollout's reason; the probe's text alone changes no state. */
static void test_deadline_says_last_check(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 2);
	deploy_v1(&w);
	w.bad[0] = 2;
	apply(&w, 2);
	step(&w);
	struct engine_state before = w.st;
	struct engine_inst copy[64];
	memcpy(copy, w.st.inst, w.st.n * sizeof *copy);
	report_check(&w, "HTTP 404 from GET /healthz (want 200)");
	assert_int_equal(w.st.ro.state, before.ro.state);
	for (size_t i = 0; i < w.st.n; i++) {
		assert_int_equal(w.st.inst[i].state, copy[i].state);
		assert_int_equal(w.st.inst[i].changed_at, copy[i].changed_at);
		assert_string_equal(w.st.inst[i].check, "HTTP 404 from GET /healthz (want 200)");
	}
	bool seen = false;
	for (int i = 0; i < 200 && w.st.ro.state == RO_PROGRESSING; i++) {
		w.now += 500;
		report_check(&w, "HTTP 404 from GET /healthz (want 200)");
		step(&w);
		seen |= emitted(&w, EV_INSTANCE_FAILED,
				"failed: not healthy within health_deadline 10s: last check: HTTP 404 from GET /healthz (want 200)");
	}
	assert_true(seen);
	assert_int_equal(w.st.ro.state, RO_ROLLING_BACK);
	assert_non_null(strstr(w.st.ro.reason, "; last: not healthy within health_deadline 10s: last check: HTTP 404 from "
					       "GET /healthz (want 200)"));
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	assert_non_null(strstr(w.st.ro.reason, "last check: HTTP 404"));

	/* Unhealthy for the deadline: the same, with the probe that failed last. */
	uint64_t id = w.st.inst[0].id;
	engine_observe(&w.st, id, OBS_UNHEALTHY, w.now, "HTTP 503 from GET /healthz (want 200)");
	engine_observe(&w.st, id, OBS_CHECK, w.now, "GET http://127.0.0.1:5000/healthz: connection refused");
	w.now += 10000;
	step(&w);
	assert_true(emitted(&w, EV_INSTANCE_FAILED, "failed: unhealthy for 10s: last check: GET "
						    "http://127.0.0.1:5000/healthz: connection refused"));
	/* Without any probe result the cause is as it was. */
	world_free(&w);
	world_init(&w, 1);
	w.bad[0] = 1;
	apply(&w, 1);
	run(&w, 500, 1000);
	assert_int_equal(w.st.ro.state, RO_FAILED);
	assert_non_null(strstr(w.st.ro.reason, "last: not healthy within health_deadline 10s"));
	assert_null(strstr(w.st.ro.reason, "last check"));
	world_free(&w);
}

/* The v2 instance with the most recent healthy_at (the last to become available). */
static struct engine_inst *youngest(struct world *w, int rev)
{
	struct engine_inst *best = NULL;
	for (size_t i = 0; i < w->st.n; i++)
		if (w->st.inst[i].revision == rev && w->st.inst[i].state == INST_READY &&
		    (best == NULL || w->st.inst[i].healthy_at > best->healthy_at))
			best = &w->st.inst[i];
	return best;
}

/* Deploys v2 over v1 to completion; returns the time it completed. */
static int64_t deploy_v2(struct world *w)
{
	deploy_v1(w);
	apply(w, 2);
	run(w, 100, 1000);
	assert_int_equal(w->st.ro.state, RO_COMPLETE);
	assert_int_equal(w->st.stable_rev, 2);
	return w->st.ro.ended_at;
}

/* A new revision that passes its checks and then crashes within min_stable of becoming available
 * fails its rollout, after completion too: back to the previous stable revision, with the reason
 * saying how soon it crashed. */
static void test_crash_within_min_stable_rolls_back(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	assert_int_equal(w.spec.strategy.min_stable_ms, 30000); /* the default */
	int64_t done = deploy_v2(&w);
	struct engine_inst *v = youngest(&w, 2);
	w.now = v->healthy_at + 2340; /* available at once: min_ready 0 */
	assert_true(w.now > done);
	engine_observe(&w.st, v->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	const char *want = "failed 2.3s after becoming available (min_stable 30s): exited with status 1";
	assert_true(emitted(&w, EV_INSTANCE_FAILED, want));
	assert_true(emitted(&w, EV_ROLLING_BACK, "rolling back to revision 1"));
	assert_int_equal(w.st.ro.state, RO_ROLLING_BACK);
	assert_int_equal(w.st.target_rev, 1);
	assert_int_equal(w.st.stable_rev, 1);
	assert_non_null(strstr(w.st.ro.reason, "1 instance(s) of revision 2 failed, more than max_failures 0, "));
	assert_non_null(strstr(w.st.ro.reason, "s after the rollout completed; last: failed 2.3s after becoming"));
	assert_non_null(strstr(w.st.ro.reason, want));
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_ROLLED_BACK);
	assert_int_equal(count_rev(&w, 1), 4);
	assert_int_equal(count_rev(&w, 2), 0);
	assert_non_null(strstr(w.st.ro.reason, want));
	world_free(&w);

	/* max_failures applies: one crash is allowed, the second rolls back. */
	world_init(&w, 4);
	w.spec.strategy.max_failures = (struct amount){false, 1};
	done = deploy_v2(&w);
	w.now = done + 1000;
	engine_observe(&w.st, youngest(&w, 2)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_int_equal(w.st.ro.failures, 1);
	w.now += 100;
	step(&w); /* the replacement */
	w.now = done + 5000;
	engine_observe(&w.st, youngest(&w, 2)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_ROLLING_BACK);
	assert_non_null(strstr(w.st.ro.reason, "2 instance(s) of revision 2 failed, more than max_failures 1"));
	world_free(&w);
}

/* Outside the window nothing changes: a crash after min_stable is only restarted, so is one of a
 * first deploy (nothing to go back to), and min_stable 0 turns the rule off; strategy.watch
 * widens the window, analysis or not. */
static void test_crash_after_min_stable_restarts(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	int64_t done = deploy_v2(&w);
	w.now = done + 30000;
	engine_observe(&w.st, youngest(&w, 2)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_false(emitted(&w, EV_INSTANCE_FAILED, "after becoming available"));
	w.now += 200;
	step(&w);
	assert_int_equal(count_rev(&w, 2), 4);
	assert_int_equal(w.st.stable_rev, 2);
	world_free(&w);

	world_init(&w, 4);
	w.spec.strategy.min_stable_ms = 0;
	done = deploy_v2(&w);
	w.now = done + 1000;
	engine_observe(&w.st, youngest(&w, 2)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_true(emitted(&w, EV_INSTANCE_FAILED, "failed: exited with status 1"));
	world_free(&w);

	world_init(&w, 4);
	w.spec.strategy.min_stable_ms = 0;
	w.spec.strategy.watch_ms = 60000;
	done = deploy_v2(&w);
	w.now = done + 45000;
	engine_observe(&w.st, youngest(&w, 2)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_ROLLING_BACK);
	assert_non_null(strstr(w.st.ro.reason, "45s after the rollout completed; last: exited with status 1"));
	world_free(&w);

	world_init(&w, 2);
	w.now = 1000; /* healthy_at 0 reads as never healthy */
	apply(&w, 1);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	w.now += 1000;
	engine_observe(&w.st, youngest(&w, 1)->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_COMPLETE);
	assert_true(emitted(&w, EV_INSTANCE_FAILED, "after becoming available (min_stable 30s)"));
	w.now += 200;
	step(&w);
	assert_int_equal(count_rev(&w, 1), 2);
	world_free(&w);
}

/* While the rollout moves, a crash soon after becoming available counted already; its cause now
 * says how soon. */
static void test_crash_during_rollout_says_when(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, 4);
	w.spec.strategy.batches = xcalloc(1, sizeof(struct amount));
	w.spec.strategy.batches[0] = (struct amount){false, 1};
	w.spec.strategy.n_batches = 1;
	w.spec.strategy.pause_after = xcalloc(1, sizeof(struct spec_pause));
	w.spec.strategy.pause_after[0].batch = 1;
	w.spec.strategy.n_pause_after = 1;
	deploy_v1(&w);
	apply(&w, 2);
	run(&w, 100, 1000);
	assert_int_equal(w.st.ro.state, RO_PAUSED);
	struct engine_inst *v = youngest(&w, 2);
	w.now = v->healthy_at + 3000;
	engine_observe(&w.st, v->id, OBS_EXITED, w.now, "exited with status 1");
	step(&w);
	assert_int_equal(w.st.ro.state, RO_ROLLING_BACK);
	assert_non_null(strstr(w.st.ro.reason, "more than max_failures 0; last: failed 3s after becoming available "
					       "(min_stable 30s): exited with status 1"));
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_deploy_and_rollout),
		cmocka_unit_test(test_batches_and_canary),
		cmocka_unit_test(test_bad_version_rolls_back),
		cmocka_unit_test(test_bad_version_no_auto_rollback_halts),
		cmocka_unit_test(test_abort_and_undo),
		cmocka_unit_test(test_scale_and_crash_replacement),
		cmocka_unit_test(test_new_revision_mid_rollout),
		cmocka_unit_test(test_undo_to_bad_revision_halts),
		cmocka_unit_test(test_undo_to_unstable_needs_force),
		cmocka_unit_test(test_unstable_how),
		cmocka_unit_test(test_scale_survives_crashes),
		cmocka_unit_test(test_bad_commands_leave_state_alone),
		cmocka_unit_test(test_invariants_exhaustive),
		cmocka_unit_test(test_next_deadline),
		cmocka_unit_test(test_names_round_trip),
		cmocka_unit_test(test_supersede_retires_canary),
		cmocka_unit_test(test_undo_after_failed_deploy),
		cmocka_unit_test(test_exit_at_once_is_never_available),
		cmocka_unit_test(test_crash_loop_backs_off),
		cmocka_unit_test(test_backoff_survives_a_reload),
		cmocka_unit_test(test_deadline_says_last_check),
		cmocka_unit_test(test_crash_within_min_stable_rolls_back),
		cmocka_unit_test(test_crash_after_min_stable_restarts),
		cmocka_unit_test(test_crash_during_rollout_says_when),
		cmocka_unit_test(test_zones_one_per_batch),
		cmocka_unit_test(test_zones_spread_with_floor),
		cmocka_unit_test(test_zones_adopt_unzoned),
		cmocka_unit_test(test_zones_inconclusive_at_zone_end),
		cmocka_unit_test(test_waits_for_traffic),
		cmocka_unit_test(test_traffic_wait_then_crash),
		cmocka_unit_test(test_drain_timeout_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
