/* `rollout plan`: the steps a rollout of a spec would take, computed by running the real engine
 * against ideal instances (start at once, healthy at once, drain at once). Pure: no I/O. */
#ifndef ROLLOUT_CORE_PLAN_H
#define ROLLOUT_CORE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/spec.h"

/* One wave: what one engine decision starts and stops at once. */
struct plan_wave {
	int start;         /* new-revision instances started */
	int stop;          /* old-revision instances drained and stopped */
	int min_available; /* lowest available count while this wave is carried out */
	int max_total;     /* highest instance count while this wave is carried out */
	char zone[SPEC_ZONE_MAX + 1]; /* strategy.zones: the zone it changes ("" without zones) */
};

/* One batch of the rollout (a barrier follows each). */
struct plan_batch {
	int number;        /* 1-based */
	int goal;          /* new-revision instances in place at its end (cumulative) */
	int started;       /* new instances started in this batch */
	int stopped;       /* old instances stopped in this batch */
	int min_available; /* over the whole batch */
	int max_total;     /* over the whole batch */
	bool pause;        /* a pause follows (pause_after) */
	int64_t pause_ms;  /* 0: until `rollout promote` */
	struct plan_wave *waves;
	size_t n_waves;
};

struct plan {
	int replicas;
	int surge, unavailable;   /* effective counts after rounding */
	int floor, ceiling;       /* replicas - unavailable, replicas + surge */
	int max_failures;         /* effective count */
	int64_t min_ready_ms, health_deadline_ms, progress_deadline_ms, drain_timeout_ms;
	bool auto_rollback;
	bool analysis;            /* strategy.analysis present */
	int64_t watch_ms;
	struct plan_batch *batches;
	size_t n_batches;
};

/* Plans the move of `spec->replicas` instances of an old revision to a new one. Returns 0 and
 * fills *out (free with plan_clear), or a negative error (ENGINE_* codes) if the engine did not
 * converge, which is a bug. */
int plan_build(const struct spec *spec, struct plan *out);
void plan_clear(struct plan *p);

#endif
