/* The deterministic simulator: the real engine (src/core) against a fake world of instances and
 * fake drivers, on a simulated clock, with one seeded PRNG behind every choice and every fault.
 * It checks DESIGN's invariants at every step; a failing seed replays byte for byte. See
 * docs/simulator.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/engine.h"
#include "core/spec.h"
#include "sim.h"
#include "util/xmalloc.h"

#define TRACE_LINE 512
#define TRACE_KEEP 40
#define MAX_REV 8          /* revisions applied per seed at most (1 + 5 new ones) */
#define MAX_ID (1u << 22)  /* instance ids beyond this are a bug in the engine */
#define DET_EVERY 8        /* determinism re-run on every 8th step */

/* ---- the PRNG: splitmix64, the only source of choices ---- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi]. */
static int64_t rng_range(struct rng *r, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* True with probability pm per mille. */
static bool rng_pm(struct rng *r, int pm)
{
	return rng_next(r) % 1000 < (uint64_t)pm;
}

/* ---- events, in a binary heap ordered by (time, sequence) ---- */

enum ev_kind { E_TICK, E_OBS, E_WORLD, E_CMD, E_CRASH, E_PERSON };

/* What happens to a fake process on its own (the world), independent of the controller. */
enum world_kind { W_UP, W_HEALTHY, W_FLAP_DOWN, W_FLAP_UP, W_CRASH, W_CRASH_BAD, W_DRAINED, W_EXIT };

enum cmd_kind { C_APPLY, C_SCALE, C_PAUSE, C_RESUME, C_PROMOTE, C_ABORT, C_UNDO, C_RANDOM };

struct event {
	int64_t t;
	uint64_t seq;
	uint64_t id;    /* E_OBS, E_WORLD: the instance */
	uint32_t epoch; /* E_OBS: the controller incarnation that will receive it */
	uint32_t gen;   /* E_WORLD: the process incarnation it belongs to */
	int kind, sub;  /* sub: enum engine_obs_kind, world_kind or cmd_kind */
};

/* One fake process, indexed by instance id (ids are never reused; a PENDING instance started
 * again after a controller crash gets a new incarnation, gen). */
struct proc {
	uint32_t gen;
	uint32_t pending_exit; /* EXITED observations on their way to the current controller */
	uint32_t pending_drained; /* DRAINED observations, likewise */
	int rev;
	bool alive, up, healthy, flapping, draining, drained, stopping, start_fail;
	int64_t last_obs; /* observations of one instance arrive in order */
};

struct sim {
	uint64_t seed;
	struct rng rng;
	int trace_mode; /* 0 off, 1 keep the last TRACE_KEEP lines, 2 print every line */
	char ring[TRACE_KEEP][TRACE_LINE];
	uint64_t ring_n;

	struct spec spec;            /* the applied spec (replicas change with applies) */
	struct engine_state st;      /* the controller's state in memory */
	struct engine_state committed; /* the last durably committed copy */
	struct engine_state snap, det; /* scratch: command check, determinism re-run */
	struct engine_out out, out2;

	struct event *heap;
	size_t nheap, heap_cap;
	uint64_t seq;
	struct proc *procs;
	size_t procs_cap;
	uint32_t *mark; /* per id scratch, stamped with mark_gen */
	size_t mark_cap;
	uint32_t mark_gen;
	size_t alive; /* live processes */

	int64_t now, fault_end, deadline;
	uint32_t epoch;
	int latest;  /* highest revision applied (accepted by engine_apply) */
	bool bad[MAX_REV + 2];
	enum engine_verdict verdict;
	bool crash_pending, person_pending, need_step;
	int crashes_left; /* controller crashes still to come */
	int64_t last_activity; /* last observation delivered, intent issued or command accepted */
	int max_replicas;
	uint64_t steps;
	bool failed;
	char why[TRACE_LINE];
};

/* ---- trace ---- */

__attribute__((format(printf, 2, 3))) static void trace(struct sim *s, const char *fmt, ...)
{
	char line[TRACE_LINE];
	int off = snprintf(line, sizeof line, "%7" PRId64 ".%03d ", s->now / 1000, (int)(s->now % 1000));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
	va_end(ap);
	if (s->trace_mode == 2)
		puts(line);
	else
		memcpy(s->ring[s->ring_n++ % TRACE_KEEP], line, sizeof line);
}

#define TR(s, ...)                               \
	do {                                     \
		if ((s)->trace_mode)             \
			trace((s), __VA_ARGS__); \
	} while (0)

static const char *obs_name(int o)
{
	static const char *n[] = {"STARTED", "START_FAILED", "HEALTHY", "UNHEALTHY", "DRAINED", "EXITED"};
	return o >= 0 && o < 6 ? n[o] : "?";
}

static const char *inst_state(int v)
{
	return v >= 0 && v < INST__COUNT ? engine_inst_state_name((enum engine_inst_state)v) : "?";
}

static const char *ro_state(int v)
{
	return v >= 0 && v < RO__COUNT ? engine_ro_state_name((enum engine_ro_state)v) : "?";
}

__attribute__((format(printf, 2, 3))) static void violate(struct sim *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof s->why, fmt, ap);
	va_end(ap);
	TR(s, "VIOLATION %s", s->why);
}

static void trace_state(struct sim *s)
{
	if (!s->trace_mode)
		return;
	const struct engine_state *st = &s->st;
	int c[INST__COUNT] = {0}, avail = 0;
	for (size_t i = 0; i < st->n; i++) {
		if (st->inst[i].state < INST__COUNT)
			c[st->inst[i].state]++;
		avail += engine_inst_available(&s->spec, &st->inst[i], s->now);
	}
	const struct engine_rollout *ro = &st->ro;
	trace(s,
	      "  state: ro %" PRIu64 " %s %s %d->%d batch %d pause %d fail %d | target %d stable %d latest %d"
	      " replicas %d | n %zu avail %d: pend %d start %d ready %d unh %d drng %d drnd %d stop %d fail %d gone %d"
	      " backoff %d",
	      ro->id, ro->kind <= RO_KIND_SCALE ? engine_ro_kind_name(ro->kind) : "?", ro_state(ro->state),
	      ro->from_rev, ro->to_rev, ro->batch, (int)ro->pause, ro->failures, st->target_rev, st->stable_rev,
	      st->latest_rev, st->replicas, st->n, avail, c[INST_PENDING], c[INST_STARTED], c[INST_READY],
	      c[INST_UNHEALTHY], c[INST_DRAINING], c[INST_DRAINED], c[INST_STOPPING], c[INST_FAILED], c[INST_GONE],
	      c[INST_BACKOFF]);
}

static void trace_intents(struct sim *s, const struct engine_out *o, const char *who)
{
	if (!s->trace_mode)
		return;
	for (size_t k = 0; k < o->n; k++) {
		const struct engine_intent *it = &o->v[k];
		switch (it->kind) {
		case INTENT_START:
			trace(s, "  %s START #%" PRIu64 " rev %d", who, it->inst_id, it->revision);
			break;
		case INTENT_DRAIN:
			trace(s, "  %s DRAIN #%" PRIu64, who, it->inst_id);
			break;
		case INTENT_STOP:
			trace(s, "  %s STOP #%" PRIu64, who, it->inst_id);
			break;
		default:
			trace(s, "  %s %s %s: %.200s", who, it->kind == INTENT_EVENT ? "event" : "rollout",
			      it->event < EV__COUNT ? engine_event_name(it->event) : "?", it->text);
			break;
		}
	}
}

/* ---- small helpers ---- */

static void grow_zero(void **p, size_t *cap, size_t need, size_t el)
{
	size_t old = *cap;
	xgrow(p, cap, need, el);
	if (*cap > old)
		memset((char *)*p + old * el, 0, (*cap - old) * el);
}

static void ensure_ids(struct sim *s, uint64_t n)
{
	grow_zero((void **)&s->procs, &s->procs_cap, (size_t)n, sizeof *s->procs);
	grow_zero((void **)&s->mark, &s->mark_cap, (size_t)n, sizeof *s->mark);
}

/* Copies src into dst, deep, reusing dst's instance buffer (grown to src's capacity). */
static void state_copy(struct engine_state *dst, const struct engine_state *src)
{
	struct engine_inst *buf = dst->inst;
	size_t cap = dst->cap;
	memcpy(dst, src, sizeof *dst);
	dst->inst = buf;
	dst->cap = cap;
	xgrow((void **)&dst->inst, &dst->cap, src->cap > 0 ? src->cap : 1, sizeof *dst->inst);
	if (src->n > 0)
		memcpy(dst->inst, src->inst, src->n * sizeof *src->inst);
}

/* Byte equality of everything but the buffer pointer and capacity. */
static bool state_bytes_equal(const struct engine_state *a, const struct engine_state *b)
{
	struct engine_state x, y;
	memcpy(&x, a, sizeof x);
	memcpy(&y, b, sizeof y);
	x.inst = y.inst = NULL;
	x.cap = y.cap = 0;
	if (memcmp(&x, &y, sizeof x) != 0 || a->n != b->n)
		return false;
	return a->n == 0 || memcmp(a->inst, b->inst, a->n * sizeof *a->inst) == 0;
}

/* Field equality (strings up to their NUL), for the determinism check: two runs may leave
 * different padding, but must not differ in any value. */
static bool ro_equal(const struct engine_rollout *p, const struct engine_rollout *q)
{
	return p->id == q->id && p->kind == q->kind && p->state == q->state && p->from_rev == q->from_rev &&
	       p->to_rev == q->to_rev && p->rollback_rev == q->rollback_rev && p->batch == q->batch &&
	       p->fast == q->fast && p->failures == q->failures && p->hold == q->hold && p->pause == q->pause &&
	       p->pause_until == q->pause_until && p->paused_at == q->paused_at && p->progress_at == q->progress_at &&
	       p->started_at == q->started_at && p->ended_at == q->ended_at && p->watch_until == q->watch_until &&
	       p->zone_step == q->zone_step && strncmp(p->reason, q->reason, sizeof p->reason) == 0;
}

static bool state_equal(const struct engine_state *a, const struct engine_state *b)
{
	if (!ro_equal(&a->ro, &b->ro) || !ro_equal(&a->prev, &b->prev))
		return false;
	if (a->target_rev != b->target_rev || a->stable_rev != b->stable_rev || a->latest_rev != b->latest_rev ||
	    a->replicas != b->replicas || a->next_inst_id != b->next_inst_id ||
	    a->next_rollout_id != b->next_rollout_id || a->verdict != b->verdict || a->n != b->n ||
	    strncmp(a->verdict_reason, b->verdict_reason, sizeof a->verdict_reason) != 0)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct engine_inst *x = &a->inst[i], *y = &b->inst[i];
		if (x->id != y->id || x->revision != y->revision || x->state != y->state ||
		    x->created_at != y->created_at || x->healthy_at != y->healthy_at ||
		    x->unhealthy_at != y->unhealthy_at || x->changed_at != y->changed_at || x->port != y->port || x->announced != y->announced ||
		    x->restarts != y->restarts || x->start_at != y->start_at || x->owes_restart != y->owes_restart ||
		    strncmp(x->cause, y->cause, sizeof x->cause) != 0 || strncmp(x->zone, y->zone, sizeof x->zone) != 0)
			return false;
	}
	return true;
}

/* The fields an intent of its kind must set; the second run's buffer is pre-filled with a
 * pattern, so a field the engine forgot to set shows up here. */
static bool intent_equal(const struct engine_intent *a, const struct engine_intent *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case INTENT_START:
		return a->inst_id == b->inst_id && a->revision == b->revision;
	case INTENT_DRAIN:
	case INTENT_STOP:
		return a->inst_id == b->inst_id;
	default:
		return a->event == b->event && strncmp(a->text, b->text, sizeof a->text) == 0;
	}
}

static const struct engine_inst *find_inst(const struct engine_state *st, uint64_t id)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->inst[i].id == id)
			return &st->inst[i];
	return NULL;
}

/* Grows the instance array and both intent buffers to what the engine says a call may need. */
static void ensure_cap(struct sim *s, const struct spec *spec)
{
	size_t need = s->st.n + engine_inst_headroom(spec, &s->st);
	xgrow((void **)&s->st.inst, &s->st.cap, need > 0 ? need : 1, sizeof *s->st.inst);
	size_t ib = engine_intent_bound(spec, &s->st);
	if (ib < 16)
		ib = 16;
	if (ib > s->out.cap) {
		s->out.v = xrealloc(s->out.v, ib * sizeof *s->out.v);
		s->out2.v = xrealloc(s->out2.v, ib * sizeof *s->out2.v);
		s->out.cap = s->out2.cap = ib;
	}
}

/* ---- the event queue ---- */

static bool ev_before(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(struct sim *s, struct event e)
{
	e.seq = s->seq++;
	xgrow((void **)&s->heap, &s->heap_cap, s->nheap + 1, sizeof *s->heap);
	size_t i = s->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!ev_before(&e, &s->heap[p]))
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = e;
}

static struct event pop(struct sim *s)
{
	struct event top = s->heap[0];
	struct event last = s->heap[--s->nheap];
	size_t i = 0, n = s->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && ev_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n > 0)
		s->heap[i] = last;
	return top;
}

static void push_at(struct sim *s, int64_t t, int kind, int sub, uint64_t id, uint32_t gen)
{
	push(s, (struct event){.t = t, .kind = kind, .sub = sub, .id = id, .epoch = s->epoch, .gen = gen});
}

/* ---- the fake world and the fake drivers ---- */

static bool faults_on(const struct sim *s)
{
	return s->now < s->fault_end;
}

/* A driver or checker reports obs about instance id to the current controller, after 0..300 ms,
 * in order per instance. */
static void observe_later(struct sim *s, uint64_t id, int obs)
{
	struct proc *p = &s->procs[id];
	int64_t t = s->now + rng_range(&s->rng, 0, 300);
	if (t < p->last_obs)
		t = p->last_obs;
	p->last_obs = t;
	push_at(s, t, E_OBS, obs, id, 0);
	if (obs == OBS_EXITED)
		p->pending_exit++;
	if (obs == OBS_DRAINED)
		p->pending_drained++;
}

static void proc_kill(struct sim *s, struct proc *p)
{
	/* draining and stopping stay: the load balancer and the stop timer still act. */
	p->alive = p->up = p->healthy = p->flapping = p->drained = false;
	s->alive--;
}

/* Spawns a process for instance id of revision rev, its future drawn now: start delay, start
 * failure, time to healthy (or never), crash, flap. A bad revision never becomes healthy. */
static void spawn(struct sim *s, uint64_t id, int rev)
{
	struct proc *p = &s->procs[id];
	struct rng *r = &s->rng;
	const struct spec_strategy *sg = &s->spec.strategy;
	p->gen++;
	p->alive = true;
	p->up = p->healthy = p->flapping = p->draining = p->drained = p->stopping = false;
	p->start_fail = false;
	p->rev = rev;
	s->alive++;
	int64_t up = s->now + rng_range(r, 0, 2000);
	bool faults = faults_on(s);
	if (rev >= 1 && rev <= MAX_REV && s->bad[rev]) {
		switch (rng_next(r) % 3) {
		case 0: /* hangs: never healthy */
			break;
		case 1:
			p->start_fail = true;
			break;
		default: /* crash loop: up, then exits before it is ever healthy */
			push_at(s, up + rng_range(r, 200, 5000), E_WORLD, W_CRASH_BAD, id, p->gen);
			break;
		}
		push_at(s, up, E_WORLD, W_UP, id, p->gen);
		TR(s, "  world: #%" PRIu64 " rev %d spawned (bad revision)", id, rev);
		return;
	}
	p->start_fail = faults && rng_pm(r, 30);
	push_at(s, up, E_WORLD, W_UP, id, p->gen);
	if (p->start_fail) {
		TR(s, "  world: #%" PRIu64 " rev %d spawned, will fail to start", id, rev);
		return;
	}
	int64_t hd_max = sg->health_deadline_ms / 2 < 5000 ? sg->health_deadline_ms / 2 : 5000;
	bool slow = faults && rng_pm(r, 40);
	int64_t healthy = up + (slow ? sg->health_deadline_ms + rng_range(r, 1, 10000) : rng_range(r, 0, hd_max));
	push_at(s, healthy, E_WORLD, W_HEALTHY, id, p->gen);
	if (faults && rng_pm(r, 40))
		push_at(s, healthy + rng_range(r, 0, 60000), E_WORLD, W_CRASH, id, p->gen);
	if (faults && rng_pm(r, 50)) {
		int64_t down = healthy + rng_range(r, 1000, 30000);
		push_at(s, down, E_WORLD, W_FLAP_DOWN, id, p->gen);
		push_at(s, down + rng_range(r, 1000, 10000), E_WORLD, W_FLAP_UP, id, p->gen);
	}
	TR(s, "  world: #%" PRIu64 " rev %d spawned%s", id, rev, slow ? " (slow start)" : "");
}

static void world_event(struct sim *s, const struct event *e)
{
	struct proc *p = &s->procs[e->id];
	if (p->gen != e->gen)
		return;
	if (!p->alive) {
		/* A drain or a stop under way completes even when the process died meanwhile (say it
		 * failed to start, which the engine ignores for a leaving instance): report the exit. */
		if ((e->sub == W_DRAINED && p->draining) || (e->sub == W_EXIT && p->stopping)) {
			p->draining = p->stopping = false;
			TR(s, "world: #%" PRIu64 " %s, the process is gone", e->id,
			   e->sub == W_DRAINED ? "drained" : "stopped");
			observe_later(s, e->id, OBS_EXITED);
		}
		return;
	}
	switch (e->sub) {
	case W_UP:
		if (p->start_fail) {
			proc_kill(s, p);
			TR(s, "world: #%" PRIu64 " failed to start", e->id);
			observe_later(s, e->id, OBS_START_FAILED);
		} else {
			p->up = true;
			TR(s, "world: #%" PRIu64 " running", e->id);
			observe_later(s, e->id, OBS_STARTED);
		}
		break;
	case W_HEALTHY:
		if (p->up && !p->healthy && !p->flapping) {
			p->healthy = true;
			TR(s, "world: #%" PRIu64 " healthy", e->id);
			observe_later(s, e->id, OBS_HEALTHY);
		}
		break;
	case W_FLAP_DOWN:
		if (s->now <= s->fault_end && p->healthy) {
			p->healthy = false;
			p->flapping = true;
			TR(s, "world: #%" PRIu64 " failing checks (flap)", e->id);
			observe_later(s, e->id, OBS_UNHEALTHY);
		}
		break;
	case W_FLAP_UP:
		if (p->flapping) {
			p->flapping = false;
			p->healthy = true;
			TR(s, "world: #%" PRIu64 " healthy again", e->id);
			observe_later(s, e->id, OBS_HEALTHY);
		}
		break;
	case W_CRASH:
	case W_CRASH_BAD:
		if (e->sub == W_CRASH && s->now > s->fault_end)
			break;
		proc_kill(s, p);
		TR(s, "world: #%" PRIu64 " crashed", e->id);
		observe_later(s, e->id, OBS_EXITED);
		break;
	case W_DRAINED:
		p->draining = false;
		p->drained = true;
		TR(s, "world: #%" PRIu64 " drained", e->id);
		observe_later(s, e->id, OBS_DRAINED);
		break;
	case W_EXIT:
		proc_kill(s, p);
		p->stopping = false;
		TR(s, "world: #%" PRIu64 " exited", e->id);
		observe_later(s, e->id, OBS_EXITED);
		break;
	}
}

/* The drivers carry out a list of intents (the first `limit`). START of an instance whose process
 * already runs adopts it (a restarted controller re-sends the START of a PENDING instance). */
static void carry_out(struct sim *s, const struct engine_out *o, size_t limit)
{
	for (size_t k = 0; k < limit && !s->failed; k++) {
		const struct engine_intent *it = &o->v[k];
		if (it->kind != INTENT_START && it->kind != INTENT_DRAIN && it->kind != INTENT_STOP)
			continue;
		if (it->inst_id == 0 || it->inst_id >= MAX_ID) {
			violate(s, "(f) intent for instance id %" PRIu64 " out of range", it->inst_id);
			return;
		}
		ensure_ids(s, it->inst_id + 1);
		struct proc *p = &s->procs[it->inst_id];
		switch (it->kind) {
		case INTENT_START:
			if (it->revision < 1 || it->revision > s->latest) {
				violate(s, "(c) START #%" PRIu64 " of revision %d, latest applied is %d", it->inst_id,
					it->revision, s->latest);
				return;
			}
			if (p->alive) {
				TR(s, "  driver: #%" PRIu64 " already running, adopted", it->inst_id);
				if (p->up)
					observe_later(s, it->inst_id, OBS_STARTED);
				if (p->healthy)
					observe_later(s, it->inst_id, OBS_HEALTHY);
			} else {
				spawn(s, it->inst_id, it->revision);
			}
			break;
		case INTENT_DRAIN:
			if (!p->alive && p->draining)
				break; /* the drain under way reports */
			if (!p->alive)
				observe_later(s, it->inst_id, OBS_EXITED);
			else if (p->drained)
				observe_later(s, it->inst_id, OBS_DRAINED);
			else if (!p->draining) {
				p->draining = true;
				push_at(s, s->now + rng_range(&s->rng, 0, s->spec.drain_timeout_ms), E_WORLD, W_DRAINED,
					it->inst_id, p->gen);
			}
			break;
		default: /* INTENT_STOP */
			if (!p->alive && p->stopping)
				break; /* the stop under way reports */
			if (!p->alive)
				observe_later(s, it->inst_id, OBS_EXITED);
			else if (!p->stopping) {
				p->stopping = true;
				push_at(s, s->now + rng_range(&s->rng, 0, s->spec.stop_grace_ms), E_WORLD, W_EXIT,
					it->inst_id, p->gen);
			}
			break;
		}
	}
}

/* ---- invariants ---- */

/* Counts the instances available at now and stamps their ids in s->mark. */
static int mark_available(struct sim *s)
{
	int n = 0;
	uint32_t g = ++s->mark_gen;
	ensure_ids(s, s->st.next_inst_id + 1 < MAX_ID ? s->st.next_inst_id + 1 : MAX_ID);
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		if (in->id < s->mark_cap && engine_inst_available(&s->spec, in, s->now)) {
			s->mark[in->id] = g;
			n++;
		}
	}
	return n;
}

/* (g) zones, for the intents of one engine call (state before it in s->snap): a drain never takes
 * a zone below its floor (min_available of its share; only counting what was available), and
 * with one_per_batch a deploy in batches never starts the new revision, nor takes a zone after
 * the one its batch is in below its share (surplus may go). */
static void check_zones(struct sim *s, const char *what)
{
	const struct spec *sp = &s->spec;
	int nz = (int)spec_zone_count(sp);
	if (nz == 0)
		return;
	int share[SPEC_ZONES_MAX], avail[SPEC_ZONES_MAX] = {0};
	spec_zone_shares(sp, sp->replicas, share);
	for (size_t i = 0; i < s->snap.n; i++) {
		int z = spec_zone_index(sp, s->snap.inst[i].zone);
		if (z >= 0 && engine_inst_available(sp, &s->snap.inst[i], s->now))
			avail[z]++;
	}
	const struct engine_rollout *ro = &s->st.ro;
	bool ordered = sp->strategy.zones.one_per_batch && ro->kind == RO_KIND_DEPLOY && !ro->fast &&
		       (ro->state == RO_PROGRESSING || ro->state == RO_PAUSED);
	for (size_t k = 0; k < s->out.n; k++) {
		const struct engine_intent *it = &s->out.v[k];
		const struct engine_inst *now_in = find_inst(&s->st, it->inst_id);
		const struct engine_inst *was = find_inst(&s->snap, it->inst_id);
		if (now_in == NULL)
			continue;
		int z = spec_zone_index(sp, now_in->zone);
		if (it->kind == INTENT_START && z < 0)
			violate(s, "(g) %s starts #%" PRIu64 " in no zone of the spec ('%s')", what, it->inst_id, now_in->zone);
		if (z < 0)
			continue;
		if (ordered && it->kind == INTENT_START && it->revision == s->st.target_rev && z > ro->zone_step)
			violate(s, "(g) %s starts #%" PRIu64 " of revision %d in zone %d, after the batch's zone %d", what,
				it->inst_id, it->revision, z, ro->zone_step);
		if (it->kind != INTENT_DRAIN || was == NULL || !engine_inst_available(sp, was, s->now))
			continue;
		avail[z]--;
		if (ordered && was->revision != s->st.target_rev && z > ro->zone_step && avail[z] < share[z])
			violate(s, "(g) %s drains available #%" PRIu64 " in zone %d (%d left of its share %d), after the "
				   "batch's zone %d", what, it->inst_id, z, avail[z], share[z], ro->zone_step);
		int floor = s->st.target_rev == 0 ? 0 : amount_ceil(sp->strategy.zones.min_available, share[z]);
		if (avail[z] < floor)
			violate(s, "(g) %s drains #%" PRIu64 " leaving zone %d with %d available < its floor %d (share %d)",
				what, it->inst_id, z, avail[z], floor, share[z]);
	}
}

/* (a) floor, (b) ceiling, for the intents of one engine call; avail_before from mark_available. */
static void check_intents(struct sim *s, int avail_before, const char *what)
{
	int surge, unav;
	spec_surge_unavailable(&s->spec.strategy, s->spec.replicas, &surge, &unav);
	int floor = s->spec.replicas - unav;
	if (s->st.target_rev == 0 || s->st.ro.to_rev == 0)
		floor = 0;
	uint32_t g = s->mark_gen;
	int removed = 0;
	bool starts = false;
	for (size_t k = 0; k < s->out.n; k++) {
		const struct engine_intent *it = &s->out.v[k];
		if (it->kind == INTENT_START)
			starts = true;
		if ((it->kind == INTENT_DRAIN || it->kind == INTENT_STOP) && it->inst_id < s->mark_cap &&
		    s->mark[it->inst_id] == g) {
			s->mark[it->inst_id] = 0;
			removed++;
			if (avail_before - removed < floor) {
				violate(s, "(a) floor: %s %s #%" PRIu64 " leaves %d available < %d (replicas %d - unavailable %d)",
					what, it->kind == INTENT_DRAIN ? "DRAIN" : "STOP", it->inst_id,
					avail_before - removed, floor, s->spec.replicas, unav);
				return;
			}
		}
	}
	check_zones(s, what);
	if (starts) {
		int total = 0;
		for (size_t i = 0; i < s->st.n; i++)
			total += s->st.inst[i].state != INST_GONE;
		if (total > s->spec.replicas + surge)
			violate(s, "(b) ceiling: %s starts instances and leaves %d not gone > %d (replicas %d + surge %d)",
				what, total, s->spec.replicas + surge, s->spec.replicas, surge);
	}
}

/* (h) backoff, for one engine call (state before it in s->snap): a START of an instance that
 * replaces failed ones (restarts r >= 1) comes no sooner than its start_at; a new instance with
 * r >= 1 took over a failed instance of its revision and zone that owed its restart, with the same
 * r and start_at (the count never resets into a tight loop, controller crashes included), and a
 * due time at least backoff_delay_ms(r) after that failure when the failure is in the state. */
static void check_backoff(struct sim *s, const char *what)
{
	for (size_t k = 0; k < s->out.n; k++) {
		const struct engine_intent *it = &s->out.v[k];
		const struct engine_inst *in = find_inst(&s->st, it->inst_id);
		if (it->kind == INTENT_START && in != NULL && in->restarts > 0 && s->now < in->start_at)
			violate(s, "(h) %s starts #%" PRIu64 " (restart %d) at %" PRId64 ", before its backoff ends at %" PRId64,
				what, it->inst_id, in->restarts, s->now, in->start_at);
	}
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		if (in->restarts == 0 || in->owes_restart || find_inst(&s->snap, in->id) != NULL)
			continue;
		const struct engine_inst *pred = NULL, *was = NULL;
		for (size_t j = 0; j < s->snap.n && pred == NULL; j++) {
			const struct engine_inst *p = &s->snap.inst[j];
			const struct engine_inst *p_now = find_inst(&s->st, p->id);
			bool could = p->owes_restart || p->state == INST_PENDING || p->state == INST_STARTED ||
				     p->state == INST_READY || p->state == INST_UNHEALTHY;
			if (could && p_now != NULL && !p_now->owes_restart && p_now->revision == in->revision &&
			    strcmp(p_now->zone, in->zone) == 0 && p_now->restarts == in->restarts &&
			    p_now->start_at == in->start_at) {
				pred = p_now;
				was = p;
			}
		}
		if (pred == NULL) {
			violate(s, "(h) %s: new #%" PRIu64 " has restarts %d (due %" PRId64 ") but took them over from no "
				   "failed instance of revision %d", what, in->id, in->restarts, in->start_at, in->revision);
			return;
		}
		if (was->state == INST_FAILED && in->start_at < was->changed_at + backoff_delay_ms(in->restarts))
			violate(s, "(h) %s: #%" PRIu64 " (restart %d) due at %" PRId64 ", sooner than %" PRId64 " ms after #%" PRIu64
				   " failed at %" PRId64, what, in->id, in->restarts, in->start_at,
				backoff_delay_ms(in->restarts), pred->id, was->changed_at);
	}
}

/* (f) the state is internally consistent; every instance an intent names exists. */
static void check_consistency(struct sim *s, const char *what)
{
	const struct engine_state *st = &s->st;
	if (st->n > st->cap) {
		violate(s, "(f) %s: n %zu > cap %zu", what, st->n, st->cap);
		return;
	}
	if (st->next_inst_id >= MAX_ID) {
		violate(s, "(f) %s: next_inst_id %" PRIu64 " out of range", what, st->next_inst_id);
		return;
	}
	if (st->ro.state >= RO__COUNT) {
		violate(s, "(f) %s: rollout state %d invalid", what, (int)st->ro.state);
		return;
	}
	ensure_ids(s, st->next_inst_id + 1);
	uint32_t g = ++s->mark_gen;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->id == 0 || in->id >= st->next_inst_id) {
			violate(s, "(f) %s: instance id %" PRIu64 " outside 1..next_inst_id %" PRIu64, what, in->id,
				st->next_inst_id);
			return;
		}
		if (s->mark[in->id] == g) {
			violate(s, "(f) %s: instance id %" PRIu64 " appears twice", what, in->id);
			return;
		}
		s->mark[in->id] = g;
		if (in->state >= INST__COUNT || in->revision < 1 || in->revision > s->latest) {
			violate(s, "(f) %s: instance #%" PRIu64 " has state %d revision %d (latest %d)", what, in->id,
				(int)in->state, in->revision, s->latest);
			return;
		}
	}
	for (size_t k = 0; k < s->out.n; k++) {
		const struct engine_intent *it = &s->out.v[k];
		if ((it->kind == INTENT_START || it->kind == INTENT_DRAIN || it->kind == INTENT_STOP) &&
		    (it->inst_id >= s->mark_cap || s->mark[it->inst_id] != g)) {
			violate(s, "(f) %s: intent %d names instance #%" PRIu64 " that is not in the state", what,
				(int)it->kind, it->inst_id);
			return;
		}
	}
}

/* (d) no leaked instance: every live process has a record, and every record past PENDING (but
 * FAILED, which the engine stops, and GONE) has a process or an exit on its way. */
static void check_leaks(struct sim *s)
{
	const struct engine_state *st = &s->st;
	size_t with_proc = 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		const struct proc *p = in->id < s->procs_cap ? &s->procs[in->id] : NULL;
		if (p && p->alive)
			with_proc++;
		if (in->state == INST_PENDING || in->state == INST_FAILED || in->state == INST_GONE ||
		    in->state == INST_BACKOFF)
			continue;
		if (!p || (!p->alive && p->pending_exit == 0 && !(in->state == INST_DRAINING && (p->draining || p->pending_drained)) &&
			   !(in->state == INST_STOPPING && p->stopping))) {
			violate(s, "(d) instance #%" PRIu64 " is %s but has no process and no exit on its way", in->id,
				inst_state(in->state));
			return;
		}
	}
	if (with_proc != s->alive) {
		for (size_t id = 0; id < s->procs_cap; id++) {
			if (s->procs[id].alive && !find_inst(st, id)) {
				violate(s, "(d) process #%zu (rev %d) has no record in the committed state", id,
					s->procs[id].rev);
				return;
			}
		}
		violate(s, "(d) %zu live processes, %zu of them with a record", s->alive, with_proc);
	}
}

/* (e) settled: a terminal rollout, and every instance available, of the target revision,
 * replicas of them (after a failure without rollback: every remaining instance available, and
 * replicas of them when there is a stable revision to fill up with), one process per record. */
static bool settled(struct sim *s)
{
	const struct engine_state *st = &s->st;
	/* Gone instances kept for their backoff (engine.c keep_gone) are records, not instances. */
	size_t n = 0;
	for (size_t i = 0; i < st->n; i++)
		n += st->inst[i].state != INST_GONE;
	if (!engine_ro_done(st->ro.state) || n != s->alive)
		return false;
	bool failed = st->ro.state == RO_FAILED;
	if (st->target_rev == 0 && n != 0)
		return false; /* revision 0 means no instance, however the rollout ended */
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->state == INST_GONE)
			continue;
		if (in->state != INST_READY || !engine_inst_available(&s->spec, in, s->now))
			return false;
		if (!failed && in->revision != st->target_rev)
			return false;
		if (in->id >= s->procs_cap || !s->procs[in->id].alive)
			return false;
	}
	/* A failed rollout holds its new instances and keeps the rest on the stable revision. */
	if (failed)
		return st->stable_rev == 0 || (int)n == s->spec.replicas;
	return (int)n == (st->target_rev == 0 ? 0 : s->spec.replicas);
}

/* (e) The settle bound, counted from the end of faults. One wave (a set of instances replaced
 * at once) takes at most: a start (2 s), health (up to health_deadline: a slower instance has
 * failed by then), min_ready, a drain (drain.timeout), a stop (grace), plus a tick (1 s) and an
 * observation (0.3 s) at each of those 5 hops. A rollout has at most R + B waves (R the largest
 * replicas seen, B its batches: the worst case replaces one instance at a time); a stuck one
 * fails within progress_deadline; a person answers a pause within 10 s. The rollout under way
 * when faults stop may fail, roll back, and that may need as much again: so
 * 3 * (progress_deadline + (R + B + 2) * wave + (pauses + 2) * 10 s) + 10 min of slack. */
static int64_t settle_bound(const struct sim *s)
{
	const struct spec_strategy *sg = &s->spec.strategy;
	int64_t wave = 2000 + sg->health_deadline_ms + sg->min_ready_ms + ENGINE_NOCHECK_READY_MS +
		       BACKOFF_CAP_MS + s->spec.drain_timeout_ms + s->spec.stop_grace_ms + 5 * 1300;
	int64_t r = s->max_replicas, b = spec_batch_count(sg, s->max_replicas);
	int64_t pauses = (int64_t)sg->n_pause_after + 2;
	return 3 * (sg->progress_deadline_ms + (r + b + 2) * wave + pauses * 10000) + 600000;
}

/* (e) Once faults stopped, the world only changes when the engine asks, and the engine's own
 * timers are progress_deadline, health_deadline, min_ready and timed pauses (which the person
 * promotes within 10 s): a state where nothing happened for longer than all of them together will
 * never change again. */
static int64_t quiet_limit(const struct sim *s)
{
	const struct spec_strategy *sg = &s->spec.strategy;
	return sg->progress_deadline_ms + sg->health_deadline_ms + sg->min_ready_ms + ENGINE_NOCHECK_READY_MS +
	       2 * BACKOFF_CAP_MS + s->spec.drain_timeout_ms + s->spec.stop_grace_ms + 60000;
}

/* ---- the controller: commit, then carry out ---- */

static void crash(struct sim *s);

/* Commits the state durably, then carries out the intents; a pending controller crash happens
 * here, between the commit and the end of carrying out (a random prefix of intents survives). */
static void commit_and_carry(struct sim *s)
{
	/* Only a controller crash reads the committed copy: skip the copy once none can come. */
	if (s->crashes_left > 0 || s->crash_pending)
		state_copy(&s->committed, &s->st);
	if (s->crash_pending) {
		size_t k = (size_t)rng_range(&s->rng, 0, (int64_t)s->out.n);
		carry_out(s, &s->out, k);
		TR(s, "CRASH after commit, %zu of %zu intents carried out", k, s->out.n);
		crash(s);
		return;
	}
	carry_out(s, &s->out, s->out.n);
}

/* A controller restart: the in-memory state is the last commit, observations on their way are
 * lost, the world goes on. The new controller re-sends the intents of engine_resume_intents and
 * its checkers report what they see now of every instance the state knows. */
static void crash(struct sim *s)
{
	s->epoch++;
	s->crash_pending = false;
	for (size_t id = 0; id < s->procs_cap; id++)
		s->procs[id].pending_exit = s->procs[id].pending_drained = 0;
	state_copy(&s->st, &s->committed);
	TR(s, "controller restarted from the last commit (epoch %u)", s->epoch);
	trace_state(s);
	ensure_cap(s, &s->spec);
	s->out.n = 0;
	int rc = engine_resume_intents(&s->st, &s->out);
	if (rc != 0) {
		violate(s, "engine_resume_intents returned %d", rc);
		return;
	}
	trace_intents(s, &s->out, "resume");
	carry_out(s, &s->out, s->out.n);
	for (size_t i = 0; i < s->st.n; i++) {
		const struct engine_inst *in = &s->st.inst[i];
		if (in->state != INST_STARTED && in->state != INST_READY && in->state != INST_UNHEALTHY &&
		    in->state != INST_DRAINED)
			continue; /* PENDING, DRAINING, STOPPING, FAILED: resume intents; GONE: nothing */
		ensure_ids(s, in->id + 1);
		const struct proc *p = &s->procs[in->id];
		if (!p->alive)
			observe_later(s, in->id, OBS_EXITED);
		else if (p->healthy && (in->state == INST_STARTED || in->state == INST_UNHEALTHY))
			observe_later(s, in->id, OBS_HEALTHY);
		else if (!p->healthy && in->state == INST_READY)
			observe_later(s, in->id, OBS_UNHEALTHY);
	}
	s->need_step = true;
}

static void do_step(struct sim *s)
{
	ensure_cap(s, &s->spec);
	s->st.verdict = s->spec.strategy.analysis.enabled ? s->verdict : VERDICT_NONE;
	s->st.verdict_since = s->now; /* the simulated analysis always covers the current batch */
	int avail = mark_available(s);
	bool sample = s->steps % DET_EVERY == 0;
	if (sample)
		state_copy(&s->det, &s->st);
	state_copy(&s->snap, &s->st); /* check_zones and check_backoff compare with the state before */
	s->out.n = 0;
	int rc = engine_step(&s->spec, &s->st, s->now, &s->out);
	s->steps++;
	if (rc != 0) {
		violate(s, "engine_step returned %d", rc);
		return;
	}
	if (sample) {
		/* out holds whatever earlier steps left, out2 a fill pattern: a field the engine
		 * forgot to set differs. */
		size_t fill = s->out.n + 8 < s->out2.cap ? s->out.n + 8 : s->out2.cap;
		memset(s->out2.v, 0xaa, fill * sizeof *s->out2.v);
		s->out2.n = 0;
		int rc2 = engine_step(&s->spec, &s->det, s->now, &s->out2);
		bool same = rc2 == rc && s->out2.n == s->out.n && state_equal(&s->st, &s->det);
		for (size_t k = 0; same && k < s->out.n; k++)
			same = intent_equal(&s->out.v[k], &s->out2.v[k]);
		if (!same) {
			violate(s, "(f) engine_step is not deterministic: the same step on a copy gave %zu intents "
				   "(%zu the first time) or a different state", s->out2.n, s->out.n);
			return;
		}
	}
	if (s->out.n > 0)
		s->last_activity = s->now;
	TR(s, "step");
	trace_intents(s, &s->out, "->");
	trace_state(s);
	check_intents(s, avail, "step");
	check_backoff(s, "step");
	check_consistency(s, "step");
	if (s->failed)
		return;
	commit_and_carry(s);
}

/* A command from a person: on error the state must be byte-identical. Returns the engine's rc. */
static int do_cmd(struct sim *s, int cmd, int arg)
{
	struct spec ns = s->spec; /* shallow: only replicas differs */
	const char *name = "?";
	if (cmd == C_APPLY || cmd == C_SCALE)
		ns.replicas = arg;
	ensure_cap(s, &ns);
	state_copy(&s->snap, &s->st);
	int avail = mark_available(s);
	int rev = 0, rc = 0, old_latest = s->latest;
	s->out.n = 0;
	switch (cmd) {
	case C_APPLY:
		name = "apply";
		rev = s->latest + 1;
		s->latest = rev; /* so that a START of it is legal */
		rc = engine_apply(&ns, &s->st, rev, s->now, &s->out);
		break;
	case C_SCALE:
		name = "apply (replicas only)";
		rev = s->st.target_rev;
		rc = engine_apply(&ns, &s->st, rev, s->now, &s->out);
		break;
	case C_PAUSE:
		name = "pause";
		rc = engine_pause(&s->st, s->now, &s->out);
		break;
	case C_RESUME:
		name = "resume";
		rc = engine_resume(&s->st, s->now, &s->out);
		break;
	case C_PROMOTE:
		name = "promote";
		rc = engine_promote(&s->st, s->now, &s->out);
		break;
	case C_ABORT:
		name = "abort";
		rc = engine_abort(&s->st, s->now, &s->out);
		break;
	default:
		name = "undo";
		rev = arg;
		rc = engine_undo(&s->st, arg, true, NULL, s->now, &s->out); /* forced: any revision */
		break;
	}
	TR(s, "cmd %s%s rev %d replicas %d -> %s", name, cmd == C_APPLY ? (s->bad[rev] ? " (bad)" : "") : "", rev,
	   ns.replicas,
	   rc == 0 ? "ok" : rc == ENGINE_EBADSTATE ? "EBADSTATE" : rc == ENGINE_ENOREV ? "ENOREV" : "error");
	if (rc != 0) {
		s->latest = old_latest;
		if (!state_bytes_equal(&s->snap, &s->st))
			violate(s, "(f) %s returned %d but changed the state", name, rc);
		else if (rc != ENGINE_EBADSTATE && rc != ENGINE_ENOREV)
			violate(s, "%s returned unexpected %d", name, rc);
		return rc;
	}
	s->spec.replicas = ns.replicas;
	s->last_activity = s->now;
	if (ns.replicas > s->max_replicas)
		s->max_replicas = ns.replicas;
	trace_intents(s, &s->out, "->");
	trace_state(s);
	check_intents(s, avail, name);
	check_consistency(s, name);
	if (!s->failed)
		commit_and_carry(s);
	s->need_step = true;
	return rc;
}

static int gen_replicas(struct rng *r)
{
	uint64_t k = rng_next(r) % 100;
	if (k < 50)
		return (int)rng_range(r, 1, 10);
	if (k < 85)
		return (int)rng_range(r, 11, 50);
	return (int)rng_range(r, 51, 200);
}

/* A command at a random moment (before faults end). */
static void random_cmd(struct sim *s)
{
	struct rng *r = &s->rng;
	uint64_t k = rng_next(r) % 100;
	if (k < 18 && s->latest < MAX_REV) {
		s->bad[s->latest + 1] = rng_pm(r, 250);
		do_cmd(s, C_APPLY, rng_pm(r, 250) ? gen_replicas(r) : s->spec.replicas);
	} else if (k < 28) {
		if (s->st.target_rev > 0)
			do_cmd(s, C_SCALE, gen_replicas(r));
	} else if (k < 43) {
		do_cmd(s, C_PAUSE, 0);
	} else if (k < 55) {
		do_cmd(s, C_RESUME, 0);
	} else if (k < 70) {
		do_cmd(s, C_PROMOTE, 0);
	} else if (k < 78) {
		do_cmd(s, C_ABORT, 0);
	} else if (k < 86) {
		do_cmd(s, C_UNDO, rng_pm(r, 500) ? 0 : (int)rng_range(r, 1, s->latest + 1));
	} else if (s->spec.strategy.analysis.enabled) {
		static const enum engine_verdict v[] = {VERDICT_PASS, VERDICT_PASS, VERDICT_FAIL, VERDICT_INCONCLUSIVE,
							VERDICT_NONE};
		s->verdict = v[rng_next(r) % 5];
		TR(s, "analysis verdict now %d", (int)s->verdict);
	} else {
		do_cmd(s, C_PROMOTE, 0);
	}
}

static void handle(struct sim *s, const struct event *e)
{
	struct rng *r = &s->rng;
	switch (e->kind) {
	case E_TICK:
		s->need_step = true;
		push_at(s, s->now + rng_range(r, 100, 1000), E_TICK, 0, 0, 0);
		break;
	case E_OBS: {
		if (e->epoch != s->epoch) {
			TR(s, "obs #%" PRIu64 " %s lost with the old controller", e->id, obs_name(e->sub));
			break;
		}
		if (e->sub == OBS_EXITED && s->procs[e->id].pending_exit > 0)
			s->procs[e->id].pending_exit--;
		if (e->sub == OBS_DRAINED && s->procs[e->id].pending_drained > 0)
			s->procs[e->id].pending_drained--;
		static const char *cause[] = {"", "exec: no such file", "", "health check failed", "", "exit status 1"};
		int rc = engine_observe(&s->st, e->id, (enum engine_obs_kind)e->sub, s->now, cause[e->sub]);
		s->last_activity = s->now;
		TR(s, "obs #%" PRIu64 " %s%s", e->id, obs_name(e->sub), rc == -ENOENT ? " (unknown id, dropped)" : "");
		if (rc != 0 && rc != -ENOENT)
			violate(s, "engine_observe #%" PRIu64 " %s returned %d", e->id, obs_name(e->sub), rc);
		s->need_step = true;
		break;
	}
	case E_WORLD:
		world_event(s, e);
		break;
	case E_CMD:
		if (e->sub == C_APPLY) {
			do_cmd(s, C_APPLY, s->spec.replicas);
		} else if (faults_on(s)) {
			random_cmd(s);
		}
		if (s->now + 3000 < s->fault_end)
			push_at(s, s->now + rng_range(r, 3000, 90000), E_CMD, C_RANDOM, 0, 0);
		break;
	case E_CRASH:
		s->crashes_left--;
		if (rng_pm(r, 500)) {
			TR(s, "CRASH now (uncommitted observations lost)");
			crash(s);
		} else {
			s->crash_pending = true;
		}
		break;
	case E_PERSON:
		s->person_pending = false;
		if (s->st.ro.state == RO_PAUSED && do_cmd(s, C_PROMOTE, 0) == ENGINE_EBADSTATE)
			do_cmd(s, C_RESUME, 0);
		break;
	}
}

static struct amount gen_amount(struct rng *r, int max_count, int zero_pm)
{
	static const int pcts[] = {5, 10, 20, 25, 33, 50, 100};
	if (rng_pm(r, zero_pm))
		return (struct amount){.percent = rng_pm(r, 500), .value = 0};
	if (rng_pm(r, 500))
		return (struct amount){.percent = false, .value = (int)rng_range(r, 1, max_count)};
	if (rng_pm(r, 500))
		return (struct amount){.percent = true, .value = pcts[rng_next(r) % 7]};
	return (struct amount){.percent = true, .value = (int)rng_range(r, 1, 100)};
}

/* Zone rules over 2..6 made-up ssh targets in 1..4 zones (the engine never reaches a host; it
 * only reads the labels). A zone floor needs surge room (as the parser requires). */
static void gen_zones(struct rng *r, struct spec *sp)
{
	struct spec_zones *z = &sp->strategy.zones;
	int nh = (int)rng_range(r, 2, 6), nz = (int)rng_range(r, 1, 4);
	sp->targets_local = false;
	sp->targets = xcalloc((size_t)nh, sizeof *sp->targets);
	for (int i = 0; i < nh; i++) {
		struct spec_target *t = &sp->targets[sp->n_targets++];
		char b[64];
		snprintf(b, sizeof b, "ssh://sim@10.9.0.%d", i + 1);
		t->url = xstrdup(b);
		t->user = xstrdup("sim");
		t->host = xstrdup(b + 10);
		t->port = 22;
		t->labels = xcalloc(1, sizeof *t->labels);
		snprintf(b, sizeof b, "z%d", (int)rng_range(r, 0, nz - 1));
		t->labels[0] = (struct spec_kv){.name = xstrdup("zone"), .value = xstrdup(b)};
		t->n_labels = 1;
	}
	z->label = xstrdup("zone");
	z->one_per_batch = rng_pm(r, 600);
	bool surge = sp->strategy.max_surge.value > 0;
	z->min_available = surge && rng_pm(r, 600) ? (struct amount){.percent = true, .value = (int)rng_range(r, 1, 100)}
						     : (struct amount){.percent = false, .value = 0};
}

/* The spec of one seed (see docs/simulator.md for the ranges). */
static void gen_spec(struct sim *s)
{
	struct rng *r = &s->rng;
	struct spec *sp = &s->spec;
	struct spec_strategy *sg = &sp->strategy;
	spec_init(sp);
	sp->replicas = gen_replicas(r);
	sg->max_surge = gen_amount(r, 3, 250);
	sg->max_unavailable = gen_amount(r, 3, 500);
	if (!sg->max_surge.percent && sg->max_surge.value == 0 && !sg->max_unavailable.percent &&
	    sg->max_unavailable.value == 0)
		sg->max_surge.value = 1; /* both literally 0 is a spec error */
	if (rng_pm(r, 600)) {
		sg->n_batches = (size_t)rng_range(r, 1, 4);
		sg->batches = xcalloc(sg->n_batches, sizeof *sg->batches);
		for (size_t i = 0; i < sg->n_batches; i++)
			sg->batches[i] = rng_pm(r, 500) ? (struct amount){.percent = false, .value = (int)rng_range(r, 1, 5)}
							: (struct amount){.percent = true, .value = (int)rng_range(r, 1, 100)};
	}
	if (rng_pm(r, 300)) {
		int nb = spec_batch_count(sg, sp->replicas);
		size_t want = (size_t)rng_range(r, 1, 2);
		sg->pause_after = xcalloc(want, sizeof *sg->pause_after);
		for (size_t i = 0; i < want; i++) {
			int b = (int)rng_range(r, 1, nb);
			if (spec_pause_after(sg, b))
				continue;
			sg->pause_after[sg->n_pause_after++] = (struct spec_pause){
				.batch = b, .duration_ms = rng_pm(r, 500) ? 0 : rng_range(r, 1, 60) * 1000};
		}
	}
	sg->min_ready_ms = rng_pm(r, 300) ? 0 : rng_range(r, 1, 5000);
	sg->health_deadline_ms = rng_range(r, 5, 60) * 1000;
	sg->progress_deadline_ms = rng_range(r, 60, 600) * 1000;
	sg->max_failures = rng_pm(r, 500) ? (struct amount){.percent = false, .value = (int)rng_range(r, 0, 3)}
					   : (struct amount){.percent = true, .value = (int)rng_range(r, 0, 50)};
	sg->auto_rollback = rng_pm(r, 750);
	/* min_stable: off, or up to 2 min (crashes after completion then roll back) */
	sg->min_stable_ms = rng_pm(r, 200) ? 0 : rng_range(r, 1, 120) * 1000;
	sg->analysis.enabled = rng_pm(r, 150);
	if (rng_pm(r, 300))
		gen_zones(r, sp);
	sp->drain_timeout_ms = rng_range(r, 1, 30) * 1000;
	sp->stop_grace_ms = rng_range(r, 1, 10) * 1000;
	/* The world's checker reports health; a quarter of the seeds have none (ready once running,
	 * available after ENGINE_NOCHECK_READY_MS). */
	sp->health.kind = rng_pm(r, 250) ? SPEC_CHECK_NONE : SPEC_CHECK_HTTP;
}

static void trace_spec(struct sim *s)
{
	if (!s->trace_mode)
		return;
	const struct spec_strategy *sg = &s->spec.strategy;
	char su[16], un[16], mf[16], b[96] = "", p[96] = "";
	for (size_t i = 0; i < sg->n_batches; i++) {
		char a[16];
		size_t l = strlen(b);
		snprintf(b + l, sizeof b - l, "%s%s", i ? "," : "", amount_format(sg->batches[i], a, sizeof a));
	}
	for (size_t i = 0; i < sg->n_pause_after; i++) {
		size_t l = strlen(p);
		snprintf(p + l, sizeof p - l, "%s%d/%llds", i ? "," : "", sg->pause_after[i].batch,
			 (long long)(sg->pause_after[i].duration_ms / 1000));
	}
	trace(s,
	      "seed %" PRIu64 ": replicas %d surge %s unavailable %s batches [%s] pause_after [%s] min_ready %lldms "
	      "health_deadline %llds progress_deadline %llds max_failures %s auto_rollback %d analysis %d drain %llds "
	      "grace %llds, faults until %.3fs, revision 1 %s",
	      s->seed, s->spec.replicas, amount_format(sg->max_surge, su, sizeof su),
	      amount_format(sg->max_unavailable, un, sizeof un), b, p, (long long)sg->min_ready_ms,
	      (long long)sg->health_deadline_ms / 1000, (long long)sg->progress_deadline_ms / 1000,
	      amount_format(sg->max_failures, mf, sizeof mf), sg->auto_rollback, sg->analysis.enabled,
	      (long long)s->spec.drain_timeout_ms / 1000, (long long)s->spec.stop_grace_ms / 1000,
	      (double)s->fault_end / 1000, s->bad[1] ? "bad" : "good");
	if (spec_zone_count(&s->spec) > 0) {
		char h[160] = "", ma[16];
		for (size_t i = 0; i < s->spec.n_targets; i++) {
			size_t l = strlen(h);
			snprintf(h + l, sizeof h - l, "%s%s", i ? "," : "", spec_target_zone(&s->spec, &s->spec.targets[i]));
		}
		trace(s, "  zones: hosts [%s] one_per_batch %d min_available %s", h, sg->zones.one_per_batch,
		      amount_format(sg->zones.min_available, ma, sizeof ma));
	}
}

/* Runs one seed to its end: settled after the faults stopped, a violation, or the bound passed. */
static void sim_run(struct sim *s)
{
	struct rng *r = &s->rng;
	s->rng.s = s->seed;
	gen_spec(s);
	engine_state_init(&s->st);
	s->max_replicas = s->spec.replicas;
	s->fault_end = rng_range(r, 10, 480) * 1000;
	s->bad[1] = rng_pm(r, 50);
	s->verdict = VERDICT_PASS;
	trace_spec(s);
	push_at(s, 0, E_CMD, C_APPLY, 0, 0);
	push_at(s, rng_range(r, 100, 1000), E_TICK, 0, 0, 0);
	if (rng_pm(r, 350)) {
		int n = (int)rng_range(r, 1, 3);
		for (int i = 0; i < n; i++)
			push_at(s, rng_range(r, 1, s->fault_end), E_CRASH, 0, 0, 0);
		s->crashes_left = n;
	}
	while (s->nheap > 0 && !s->failed) {
		int64_t t = s->heap[0].t;
		s->now = t;
		if (t > s->fault_end) {
			if (s->deadline == 0) {
				s->deadline = s->fault_end + settle_bound(s);
				if (s->spec.strategy.analysis.enabled)
					s->verdict = VERDICT_PASS;
				TR(s, "faults and commands stop; must settle by %.3fs", (double)s->deadline / 1000);
			}
			if (t - s->last_activity > quiet_limit(s) && t - s->fault_end > quiet_limit(s)) {
				violate(s, "(e) not settled, and nothing happened for %.1f min (no observation, intent "
					   "or command): stuck", (double)(t - s->last_activity) / 60000);
				break;
			}
			if (t > s->deadline) {
				violate(s, "(e) not settled %.1f min after the faults stopped (bound from the spec)",
					(double)(t - s->fault_end) / 60000);
				break;
			}
		}
		while (s->nheap > 0 && s->heap[0].t == t && !s->failed) {
			struct event e = pop(s);
			handle(s, &e);
		}
		if (!s->failed && s->need_step) {
			s->need_step = false;
			do_step(s);
		}
		if (s->failed)
			break;
		check_leaks(s);
		if (t > s->fault_end && !s->failed) {
			if (settled(s)) {
				TR(s, "settled: %s, %zu instances of revision %d", ro_state(s->st.ro.state), s->st.n,
				   s->st.target_rev);
				break;
			}
			if (s->st.ro.state == RO_PAUSED && !s->person_pending) {
				s->person_pending = true;
				push_at(s, t + rng_range(r, 1000, 10000), E_PERSON, 0, 0, 0);
			}
		}
	}
}

static struct sim *sim_new(uint64_t seed, int trace_mode)
{
	struct sim *s = xcalloc(1, sizeof *s);
	s->seed = seed;
	s->trace_mode = trace_mode;
	return s;
}

static void sim_free(struct sim *s)
{
	if (s == NULL)
		return;
	engine_state_clear(&s->st);
	free(s->committed.inst);
	free(s->snap.inst);
	free(s->det.inst);
	free(s->out.v);
	free(s->out2.v);
	free(s->heap);
	free(s->procs);
	free(s->mark);
	spec_clear(&s->spec);
	free(s);
}

static void print_ring(const struct sim *s)
{
	uint64_t first = s->ring_n > TRACE_KEEP ? s->ring_n - TRACE_KEEP : 0;
	printf("last %d trace lines:\n", (int)(s->ring_n - first));
	for (uint64_t i = first; i < s->ring_n; i++)
		puts(s->ring[i % TRACE_KEEP]);
}

static int usage(void)
{
	fprintf(stderr, "usage: rollout-sim --seeds N [--start S] [-v]\n"
			"       rollout-sim --seed S [--trace]\n"
			"       rollout-sim --bench N\n");
	return 2;
}

static bool parse_u64(const char *a, uint64_t *v)
{
	char *end;
	if (a == NULL || *a < '0' || *a > '9')
		return false;
	errno = 0;
	*v = strtoull(a, &end, 10);
	return errno == 0 && *end == '\0';
}

int main(int argc, char **argv)
{
	uint64_t nseeds = 0, start = 1, one = 0, bench = 0;
	bool have_seeds = false, have_one = false, verbose = false, full = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--seeds") == 0 && parse_u64(v, &nseeds))
			have_seeds = true, i++;
		else if (strcmp(a, "--start") == 0 && parse_u64(v, &start))
			i++;
		else if (strcmp(a, "--seed") == 0 && parse_u64(v, &one))
			have_one = true, i++;
		else if (strcmp(a, "--bench") == 0 && parse_u64(v, &bench) && bench > 0 && bench <= 1000000)
			i++;
		else if (strcmp(a, "-v") == 0)
			verbose = true;
		else if (strcmp(a, "--trace") == 0)
			full = true;
		else
			return usage();
	}
	if (bench > 0)
		return sim_bench((int)bench);
	if (have_one == have_seeds)
		return usage();
	if (have_one) {
		start = one;
		nseeds = 1;
	}
	uint64_t steps = 0, violations = 0, first_bad = 0;
	double hours = 0;
	for (uint64_t seed = start; seed < start + nseeds; seed++) {
		struct sim *s = sim_new(seed, have_one ? (full ? 2 : 1) : 0);
		sim_run(s);
		steps += s->steps;
		hours += (double)s->now / 3600000.0;
		if (verbose)
			printf("seed %" PRIu64 ": replicas %d revisions %d steps %" PRIu64 " simulated %.1f min: %s%s\n",
			       seed, s->spec.replicas, s->latest, s->steps, (double)s->now / 60000,
			       s->failed ? "VIOLATION " : ro_state(s->st.ro.state), s->failed ? s->why : "");
		if (s->failed && violations++ == 0)
			first_bad = seed;
		if (s->failed && have_one && !full) {
			printf("seed %" PRIu64 ": %s\n", seed, s->why);
			print_ring(s);
		}
		sim_free(s);
	}
	if (violations > 0 && !have_one) {
		struct sim *s = sim_new(first_bad, 1); /* replay the first failure, keeping its trace */
		sim_run(s);
		printf("first failing seed: %" PRIu64 ": %s\n", first_bad, s->why);
		print_ring(s);
		printf("replay: rollout-sim --seed %" PRIu64 " --trace\n", first_bad);
		sim_free(s);
	}
	printf("seeds: %" PRIu64 ", steps: %" PRIu64 ", violations: %" PRIu64 ", simulated hours: %.1f\n", nseeds,
	       steps, violations, hours);
	return violations > 0 ? 1 : 0;
}
