/* Unit tests of plan_build: the batches and waves of a rollout, from the real engine with ideal
 * instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/plan.h"
#include "core/spec.h"
#include "util/xmalloc.h"

static struct amount cnt(int v)
{
	return (struct amount){.percent = false, .value = v};
}

static struct amount pct(int v)
{
	return (struct amount){.percent = true, .value = v};
}

static void set_batches(struct spec *s, const struct amount *b, size_t n)
{
	free(s->strategy.batches);
	s->strategy.batches = xcalloc(n, sizeof *b);
	for (size_t i = 0; i < n; i++)
		s->strategy.batches[i] = b[i];
	s->strategy.n_batches = n;
}

/* What every plan must satisfy: goals increase to replicas, each batch starts and stops exactly
 * its share, the floor and the ceiling hold in every wave. */
static void check_plan(const struct spec *s, const struct plan *p)
{
	assert_int_equal(p->replicas, s->replicas);
	assert_int_equal(p->n_batches, (size_t)spec_batch_count(&s->strategy, s->replicas));
	int prev = 0, started = 0, stopped = 0;
	for (size_t i = 0; i < p->n_batches; i++) {
		const struct plan_batch *b = &p->batches[i];
		assert_int_equal(b->number, (int)i + 1);
		assert_true(b->goal > prev);
		assert_int_equal(b->goal, spec_batch_goal(&s->strategy, s->replicas, (int)i));
		assert_int_equal(b->started, b->goal - prev);
		assert_int_equal(b->stopped, b->goal - prev);
		assert_true(b->min_available >= p->floor);
		assert_true(b->max_total <= p->ceiling);
		assert_true(b->n_waves >= 1);
		int ws = 0, wt = 0;
		for (size_t w = 0; w < b->n_waves; w++) {
			ws += b->waves[w].start;
			wt += b->waves[w].stop;
			assert_true(b->waves[w].min_available >= p->floor);
			assert_true(b->waves[w].max_total <= p->ceiling);
			assert_true(b->waves[w].min_available >= b->min_available);
			assert_true(b->waves[w].max_total <= b->max_total);
		}
		assert_int_equal(ws, b->started);
		assert_int_equal(wt, b->stopped);
		prev = b->goal;
		started += b->started;
		stopped += b->stopped;
	}
	assert_int_equal(prev, s->replicas);
	assert_int_equal(started, s->replicas);
	assert_int_equal(stopped, s->replicas);
}

static void test_canary_batches(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 4;
	s.strategy.max_surge = pct(25);
	s.strategy.max_unavailable = cnt(0);
	const struct amount b[] = {cnt(1), pct(25), pct(100)};
	set_batches(&s, b, 3);
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.surge, 1);
	assert_int_equal(p.unavailable, 0);
	assert_int_equal(p.floor, 4);
	assert_int_equal(p.ceiling, 5);
	assert_int_equal(p.n_batches, 3);
	assert_int_equal(p.batches[0].goal, 1);
	assert_int_equal(p.batches[1].goal, 2);
	assert_int_equal(p.batches[2].goal, 4);
	for (size_t i = 0; i < p.n_batches; i++) {
		assert_true(p.batches[i].min_available >= 4);
		assert_true(p.batches[i].max_total <= 5);
		assert_false(p.batches[i].pause);
	}
	/* With surge 1 the ceiling is actually reached: one extra instance at a time. */
	assert_int_equal(p.batches[0].max_total, 5);
	check_plan(&s, &p);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_unavailable_only(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 10;
	s.strategy.max_surge = cnt(0);
	s.strategy.max_unavailable = cnt(2);
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.floor, 8);
	assert_int_equal(p.ceiling, 10);
	assert_int_equal(p.n_batches, 1);
	assert_int_equal(p.batches[0].min_available, 8); /* it uses the budget, never more */
	assert_int_equal(p.batches[0].max_total, 10);
	assert_true(p.batches[0].n_waves >= 5); /* 10 replaced two at a time */
	check_plan(&s, &p);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_pauses(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 6;
	const struct amount b[] = {cnt(1), cnt(2)};
	set_batches(&s, b, 2);
	s.strategy.pause_after = xcalloc(2, sizeof *s.strategy.pause_after);
	s.strategy.pause_after[0] = (struct spec_pause){.batch = 1, .duration_ms = 0};
	s.strategy.pause_after[1] = (struct spec_pause){.batch = 2, .duration_ms = 30000};
	s.strategy.n_pause_after = 2;
	s.strategy.min_ready_ms = 2000;
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.n_batches, 4); /* goals 1, 3, 5, 6: the last entry repeats */
	assert_int_equal(p.batches[2].goal, 5);
	assert_int_equal(p.batches[3].goal, 6);
	check_plan(&s, &p);
	assert_true(p.batches[0].pause);
	assert_int_equal(p.batches[0].pause_ms, 0);
	assert_true(p.batches[1].pause);
	assert_int_equal(p.batches[1].pause_ms, 30000);
	assert_false(p.batches[2].pause);
	assert_false(p.batches[3].pause);
	assert_int_equal(p.min_ready_ms, 2000);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_single_replica_zero_percents(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 1;
	s.strategy.max_surge = pct(0);
	s.strategy.max_unavailable = pct(0);
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.surge, 0);
	assert_int_equal(p.unavailable, 1); /* both round to 0: unavailable becomes 1 */
	assert_int_equal(p.floor, 0);
	assert_int_equal(p.ceiling, 1);
	assert_int_equal(p.batches[0].min_available, 0);
	assert_int_equal(p.batches[0].max_total, 1);
	check_plan(&s, &p);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_many_shapes(void **state)
{
	(void)state;
	const struct amount surges[] = {pct(25), cnt(0), cnt(1), pct(100), pct(10)};
	const struct amount unavs[] = {cnt(0), pct(25), cnt(1), cnt(0), pct(50)};
	const struct amount b[] = {cnt(1), pct(10), pct(50)};
	for (int r = 1; r <= 30; r++) {
		for (size_t k = 0; k < 5; k++) {
			for (int withb = 0; withb < 2; withb++) {
				struct spec s;
				spec_init(&s);
				s.replicas = r;
				s.strategy.max_surge = surges[k];
				s.strategy.max_unavailable = unavs[k];
				if (withb)
					set_batches(&s, b, 3);
				struct plan p;
				assert_int_equal(plan_build(&s, &p), 0);
				check_plan(&s, &p);
				plan_clear(&p);
				spec_clear(&s);
			}
		}
	}
}

/* Issue 11.2: a surge of 1000000000% of 10 replicas sized the engine's buffers by 10^9 instances
 * and aborted (out of memory). The parser refuses it now; the arithmetic caps surge at replicas
 * as well, so a spec made by hand plans like 100%. */
static void test_surge_past_replicas(void **state)
{
	(void)state;
	const struct amount surges[] = {pct(1000000000), cnt(1000000000)};
	for (size_t k = 0; k < 2; k++) {
		struct spec s;
		spec_init(&s);
		s.replicas = 10;
		s.strategy.max_surge = surges[k];
		struct plan p;
		assert_int_equal(plan_build(&s, &p), 0);
		assert_int_equal(p.surge, 10);
		assert_int_equal(p.ceiling, 20);
		check_plan(&s, &p);
		plan_clear(&p);
		spec_clear(&s);
	}
}

/* The largest spec the parser takes plans in bounded memory and time. */
static void test_largest_spec(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = SPEC_REPLICAS_MAX;
	s.strategy.max_surge = pct(100);
	const struct amount b[] = {pct(10)};
	set_batches(&s, b, 1);
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.ceiling, 2 * SPEC_REPLICAS_MAX);
	check_plan(&s, &p);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_zero_replicas(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 0;
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.n_batches, 1);
	assert_int_equal(p.batches[0].goal, 0);
	assert_int_equal(p.batches[0].n_waves, 0);
	assert_int_equal(p.batches[0].started, 0);
	plan_clear(&p);
	spec_clear(&s);
}

static void test_fields_and_clear(void **state)
{
	(void)state;
	struct spec s;
	spec_init(&s);
	s.replicas = 3;
	s.strategy.max_failures = pct(50);
	s.strategy.auto_rollback = false;
	s.drain_timeout_ms = 7000;
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	assert_int_equal(p.max_failures, 1);
	assert_false(p.auto_rollback);
	assert_int_equal(p.drain_timeout_ms, 7000);
	assert_int_equal(p.progress_deadline_ms, 600000);
	plan_clear(&p);
	assert_null(p.batches);
	assert_int_equal(p.n_batches, 0);
	plan_clear(&p);
	plan_clear(NULL);
	spec_clear(&s);
}

/* Zones one_per_batch: every wave changes one zone, zones in order, and the plan keeps each batch's
 * goal (a zone's end cuts a batch into steps inside it, not into more batches). */
static void test_zones(void **state)
{
	(void)state;
	static const char *const zones[] = {"a", "a", "b", "b", "c", "c"};
	struct spec s;
	spec_init(&s);
	s.replicas = 6;
	s.strategy.max_surge = cnt(1);
	struct amount b[] = {cnt(1), pct(50), pct(100)};
	set_batches(&s, b, 3);
	s.targets_local = false;
	s.targets = xcalloc(6, sizeof *s.targets);
	for (size_t i = 0; i < 6; i++) {
		struct spec_target *t = &s.targets[s.n_targets++];
		t->url = xasprintf("ssh://u@10.0.0.%zu", i + 1);
		t->user = xstrdup("u");
		t->host = xasprintf("10.0.0.%zu", i + 1);
		t->port = 22;
		t->labels = xcalloc(1, sizeof *t->labels);
		t->labels[0] = (struct spec_kv){.name = xstrdup("zone"), .value = xstrdup(zones[i])};
		t->n_labels = 1;
	}
	s.strategy.zones.label = xstrdup("zone");
	s.strategy.zones.one_per_batch = true;
	struct plan p;
	assert_int_equal(plan_build(&s, &p), 0);
	check_plan(&s, &p);
	char order[64] = "";
	for (size_t i = 0; i < p.n_batches; i++)
		for (size_t w = 0; w < p.batches[i].n_waves; w++)
			if (p.batches[i].waves[w].start > 0)
				strcat(order, p.batches[i].waves[w].zone);
	assert_string_equal(order, "aabbcc");
	plan_clear(&p);
	spec_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary_batches),
		cmocka_unit_test(test_unavailable_only),
		cmocka_unit_test(test_pauses),
		cmocka_unit_test(test_single_replica_zero_percents),
		cmocka_unit_test(test_many_shapes),
		cmocka_unit_test(test_surge_past_replicas),
		cmocka_unit_test(test_largest_spec),
		cmocka_unit_test(test_zero_replicas),
		cmocka_unit_test(test_fields_and_clear),
		cmocka_unit_test(test_zones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
