/* The rollout engine: every decision of a rolling deployment, as a pure function of the spec, the
 * recorded state and the time. See docs/engine.md for the rules in prose. */
#include "core/engine.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "util/xmalloc.h"

/* ---- names ---------------------------------------------------------------------------------- */

static const char *const inst_state_names[INST__COUNT] = {
	"pending", "started", "ready", "unhealthy", "draining", "drained", "stopping", "failed", "gone", "backoff",
};
static const char *const ro_state_names[RO__COUNT] = {
	"none", "progressing", "paused", "complete", "failed", "rolling_back", "rolled_back", "aborted",
};
static const char *const ro_kind_names[] = {"deploy", "rollback", "undo", "abort", "scale"};
static const char *const event_names[EV__COUNT] = {
	"rollout_started", "batch_started", "instance_starting", "instance_available",
	"instance_failed", "instance_draining", "instance_stopping", "paused", "resumed", "stable",
	"complete", "failed", "rolling_back", "rolled_back", "aborted", "scaled",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *engine_inst_state_name(enum engine_inst_state s)
{
	return (unsigned)s < INST__COUNT ? inst_state_names[s] : "?";
}

const char *engine_ro_state_name(enum engine_ro_state s)
{
	return (unsigned)s < RO__COUNT ? ro_state_names[s] : "?";
}

const char *engine_ro_kind_name(enum engine_ro_kind k)
{
	return (unsigned)k < NELEM(ro_kind_names) ? ro_kind_names[k] : "?";
}

const char *engine_event_name(enum engine_event_kind e)
{
	return (unsigned)e < EV__COUNT ? event_names[e] : "?";
}

const char *engine_pause_name(enum engine_pause_reason p)
{
	switch (p) {
	case PAUSE_USER:
		return "user";
	case PAUSE_CANARY:
		return "canary";
	case PAUSE_TIMED:
		return "timed";
	case PAUSE_ANALYSIS:
	case PAUSE_ANALYSIS_ZONE:
		return "analysis";
	default:
		return NULL;
	}
}

const char *engine_pause_continue(enum engine_pause_reason p)
{
	if (p == PAUSE_USER)
		return "resume";
	return engine_pause_name(p) != NULL ? "promote" : NULL;
}

bool engine_pause_needs_person(enum engine_pause_reason p)
{
	return p == PAUSE_USER || p == PAUSE_CANARY || p == PAUSE_ANALYSIS || p == PAUSE_ANALYSIS_ZONE;
}

enum engine_ro_kind engine_ro_began_as(enum engine_ro_kind k)
{
	return k == RO_KIND_ROLLBACK || k == RO_KIND_ABORT ? RO_KIND_DEPLOY : k;
}

char *engine_ro_outcome(const struct engine_rollout *ro, char *buf, size_t len)
{
	const char *pause = engine_pause_name(ro->pause);
	switch (ro->state) {
	case RO_PROGRESSING:
		snprintf(buf, len, "progressing");
		break;
	case RO_PAUSED:
		snprintf(buf, len, "paused%s%s%s", pause ? " (" : "", pause ? pause : "", pause ? ")" : "");
		break;
	case RO_ROLLING_BACK:
		if (ro->kind == RO_KIND_UNDO)
			snprintf(buf, len, "undoing to revision %d", ro->to_rev);
		else if (ro->kind == RO_KIND_ABORT)
			snprintf(buf, len, "aborted, going back to revision %d", ro->rollback_rev);
		else
			snprintf(buf, len, "failed, rolling back to revision %d", ro->rollback_rev);
		break;
	case RO_COMPLETE:
		snprintf(buf, len, "complete");
		break;
	case RO_ROLLED_BACK:
		if (ro->kind == RO_KIND_UNDO)
			snprintf(buf, len, "undone to revision %d", ro->to_rev);
		else
			snprintf(buf, len, "failed, rolled back to revision %d", ro->rollback_rev);
		break;
	case RO_ABORTED:
		if (ro->kind == RO_KIND_ABORT)
			snprintf(buf, len, "aborted, back on revision %d", ro->rollback_rev);
		else
			snprintf(buf, len, "superseded");
		break;
	case RO_FAILED:
		snprintf(buf, len, "failed, halted");
		break;
	default:
		snprintf(buf, len, "none");
		break;
	}
	return buf;
}

bool engine_ro_succeeded(const struct engine_rollout *ro)
{
	return ro->state == RO_COMPLETE || (ro->state == RO_ROLLED_BACK && ro->kind == RO_KIND_UNDO);
}

static int parse_name(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name != NULL && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

int engine_inst_state_parse(const char *name)
{
	return parse_name(inst_state_names, INST__COUNT, name);
}

int engine_ro_state_parse(const char *name)
{
	return parse_name(ro_state_names, RO__COUNT, name);
}

int engine_ro_kind_parse(const char *name)
{
	return parse_name(ro_kind_names, NELEM(ro_kind_names), name);
}

bool engine_ro_done(enum engine_ro_state s)
{
	return s != RO_PROGRESSING && s != RO_PAUSED && s != RO_ROLLING_BACK;
}

/* ---- state and buffers ---------------------------------------------------------------------- */

void engine_state_init(struct engine_state *st)
{
	memset(st, 0, sizeof *st);
	st->next_inst_id = 1;
	st->next_rollout_id = 1;
}

void engine_state_clear(struct engine_state *st)
{
	free(st->inst);
	engine_state_init(st);
}

size_t engine_inst_headroom(const struct spec *spec, const struct engine_state *st)
{
	int surge, unav;
	int r = st->replicas > spec->replicas ? st->replicas : spec->replicas;
	spec_surge_unavailable(&spec->strategy, r, &surge, &unav);
	return (size_t)r + (size_t)surge + 1;
}

size_t engine_intent_bound(const struct spec *spec, const struct engine_state *st)
{
	/* Per instance at most three intents (available event, then drain event and action), two
	 * per start, and a handful of rollout-level events. */
	return 3 * st->n + 2 * engine_inst_headroom(spec, st) + 16;
}

/* How long an instance must have been READY to count as available: min_ready, and without a
 * health check (READY as soon as it runs) at least ENGINE_NOCHECK_READY_MS of running. */
static int64_t ready_after(const struct spec *spec)
{
	int64_t t = spec->strategy.min_ready_ms;
	if (spec->health.kind == SPEC_CHECK_NONE && t < ENGINE_NOCHECK_READY_MS)
		t = ENGINE_NOCHECK_READY_MS;
	return t;
}

bool engine_inst_available(const struct spec *spec, const struct engine_inst *i, int64_t now)
{
	/* Latched once announced: a later spec with a longer min_ready does not take it back. */
	return i->state == INST_READY && (i->announced || now - i->healthy_at >= ready_after(spec));
}

/* Instances are kept in id order (new_inst appends the next id, compact and the store keep the
 * order): a binary search, as the shell observes every instance at each step (its probes'
 * results). A state out of order is still searched whole. */
static struct engine_inst *find_inst(struct engine_state *st, uint64_t id)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (st->inst[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < st->n && st->inst[lo].id == id)
		return &st->inst[lo];
	for (size_t i = 0; i < st->n; i++)
		if (st->inst[i].id == id)
			return &st->inst[i];
	return NULL;
}

/* Appends one intent; the capacity was checked on entry to every public function. */
static struct engine_intent *emit(struct engine_out *out, enum engine_intent_kind kind)
{
	assert(out->n < out->cap);
	struct engine_intent *it = &out->v[out->n++];
	memset(it, 0, sizeof *it);
	it->kind = kind;
	return it;
}

static void emit_event(struct engine_out *out, enum engine_intent_kind kind, enum engine_event_kind ev,
		       uint64_t inst_id, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void emit_event(struct engine_out *out, enum engine_intent_kind kind, enum engine_event_kind ev,
		       uint64_t inst_id, const char *fmt, ...)
{
	struct engine_intent *it = emit(out, kind);
	it->event = ev;
	it->inst_id = inst_id;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(it->text, sizeof it->text, fmt, ap);
	va_end(ap);
}

static void set_reason(struct engine_rollout *ro, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_reason(struct engine_rollout *ro, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ro->reason, sizeof ro->reason, fmt, ap);
	va_end(ap);
}

/* Formats a text for people into buf, cut to len when longer (a cut cause still says why). */
static void cut_text(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cut_text(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static bool have_room(const struct engine_out *out, size_t need)
{
	return out->cap >= out->n && out->cap - out->n >= need;
}

static bool ro_live(const struct engine_state *st)
{
	return !engine_ro_done(st->ro.state);
}

static void set_state(struct engine_inst *in, enum engine_inst_state s, int64_t now)
{
	in->state = s;
	in->changed_at = now;
}

/* An instance counts against the rollout when it is of the revision a deploy moves to, while it
 * moves forward (not while it rolls back, nor during a scale: the revision is already proven). */
static bool counts_as_failure(const struct engine_state *st, const struct engine_inst *in)
{
	return (st->ro.state == RO_PROGRESSING || st->ro.state == RO_PAUSED) && st->ro.kind == RO_KIND_DEPLOY &&
	       in->revision == st->target_rev;
}

/* A live instance failed. Its replacement (new_inst) takes over the backoff decided here. */
static void fail_inst(struct engine_state *st, struct engine_inst *in, int64_t now, const char *cause)
{
	snprintf(in->cause, sizeof in->cause, "%s", cause);
	in->restarts = backoff_next_count(in->restarts, in->created_at, now);
	in->start_at = backoff_due(in->restarts, now);
	in->owes_restart = true;
	set_state(in, INST_FAILED, now);
	in->announced = false;
	if (counts_as_failure(st, in))
		st->ro.failures++;
}

/* ---- observations --------------------------------------------------------------------------- */

int engine_observe(struct engine_state *st, uint64_t id, enum engine_obs_kind obs, int64_t now, const char *cause)
{
	struct engine_inst *in = find_inst(st, id);
	if (in == NULL)
		return -ENOENT;
	enum engine_inst_state s = in->state;
	if (s == INST_BACKOFF)
		return 0; /* no process yet: nothing a driver reports is about it */
	bool live = s == INST_PENDING || s == INST_STARTED || s == INST_READY || s == INST_UNHEALTHY;
	switch (obs) {
	case OBS_STARTED:
		if (s == INST_PENDING)
			set_state(in, INST_STARTED, now);
		break;
	case OBS_START_FAILED:
		if (s == INST_PENDING || s == INST_STARTED)
			fail_inst(st, in, now, cause ? cause : "failed to start");
		break;
	case OBS_HEALTHY:
		if (s == INST_PENDING || s == INST_STARTED || s == INST_UNHEALTHY) {
			set_state(in, INST_READY, now);
			in->healthy_at = now;
		}
		break;
	case OBS_UNHEALTHY:
		if (s == INST_READY) {
			set_state(in, INST_UNHEALTHY, now);
			in->unhealthy_at = now;
			in->announced = false;
		}
		break;
	case OBS_DRAINED:
		if (s == INST_DRAINING) {
			set_state(in, INST_DRAINED, now);
			snprintf(in->cause, sizeof in->cause, "%s", cause ? cause : "");
		}
		break;
	case OBS_EXITED:
		if (live)
			fail_inst(st, in, now, cause ? cause : "exited");
		else if (s != INST_GONE)
			set_state(in, INST_GONE, now);
		break;
	case OBS_CHECK:
		snprintf(in->check, sizeof in->check, "%s", cause ? cause : "");
		break;
	}
	return 0;
}

/* ---- the step ------------------------------------------------------------------------------- */

/* What a step sees of the instances, counted once. */
struct tally {
	int total;      /* every instance not gone: what occupies capacity */
	int avail;      /* available, any revision */
	int new_live;   /* target revision, not leaving */
	int new_avail;  /* target revision, available */
	int old_live;   /* other revisions, not leaving */
	int old_total;  /* other revisions, leaving or not */
};

static bool is_live(const struct engine_inst *in)
{
	return in->state == INST_BACKOFF || in->state == INST_PENDING || in->state == INST_STARTED || in->state == INST_READY ||
	       in->state == INST_UNHEALTHY;
}

static struct tally count(const struct spec *spec, const struct engine_state *st, int64_t now)
{
	struct tally t = {0};
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->state == INST_GONE)
			continue;
		bool isnew = st->target_rev != 0 && in->revision == st->target_rev;
		bool av = engine_inst_available(spec, in, now);
		t.total++;
		t.avail += av;
		if (isnew) {
			t.new_live += is_live(in);
			t.new_avail += av;
		} else {
			t.old_live += is_live(in);
			t.old_total++;
		}
	}
	return t;
}

/* Whether a gone instance is kept for the backoff its replacement will take over: until a cap
 * past the time that replacement may start (it starts at once after that anyway). */
static bool keep_gone(const struct engine_inst *in, int64_t now)
{
	return in->owes_restart && now < in->start_at + BACKOFF_CAP_MS;
}

/* Drops instances that are gone (but failed ones whose backoff is still to be taken over); an
 * old one leaving counts as progress. */
static void compact(struct engine_state *st, int64_t now)
{
	size_t w = 0;
	for (size_t r = 0; r < st->n; r++) {
		if (st->inst[r].state == INST_GONE && !keep_gone(&st->inst[r], now)) {
			if (st->inst[r].revision != st->target_rev &&
			    (st->ro.state == RO_PROGRESSING || st->ro.state == RO_ROLLING_BACK))
				st->ro.progress_at = now;
			continue;
		}
		st->inst[w++] = st->inst[r];
	}
	st->n = w;
}

/* A time span for people, as said of a crash: to a tenth of a second under 10 s ("1.8s"), else
 * to the second ("45s", "1m30s"). */
static const char *about(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	if (ms >= 10000)
		return amount_format_duration((ms + 500) / 1000 * 1000, buf, len);
	int64_t t = (ms + 50) / 100;
	if (t % 10 == 0)
		snprintf(buf, len, "%llds", (long long)(t / 10));
	else
		snprintf(buf, len, "%lld.%llds", (long long)(t / 10), (long long)(t % 10));
	return buf;
}

/* Until when a failure of a completed deploy's revision still counts against its rollout:
 * strategy.min_stable past the completion, or strategy.watch when longer. */
static int64_t settle_until(const struct spec *spec, const struct engine_rollout *ro)
{
	const struct spec_strategy *sg = &spec->strategy;
	return ro->ended_at + (sg->min_stable_ms > sg->watch_ms ? sg->min_stable_ms : sg->watch_ms);
}

int64_t engine_settle_until(const struct spec *spec, const struct engine_state *st)
{
	const struct engine_rollout *ro = &st->ro;
	if (ro->state != RO_COMPLETE || ro->kind != RO_KIND_DEPLOY || ro->rollback_rev == 0 ||
	    ro->rollback_rev == st->target_rev)
		return 0;
	return settle_until(spec, ro);
}

/* Looks at an instance that just failed (its failure time is changed_at). One that failed within
 * min_stable of becoming available passed its checks and still was not good: its cause says how
 * soon. A failure of a completed deploy's revision within its settle time counts against the
 * rollout here, as max_failures says (while the rollout moves, fail_inst counted it already). */
static void judge_failure(const struct spec *spec, struct engine_state *st, struct engine_inst *in)
{
	const struct spec_strategy *sg = &spec->strategy;
	int64_t up = in->changed_at - (in->healthy_at + ready_after(spec));
	if (sg->min_stable_ms > 0 && in->healthy_at > 0 && up >= 0 && up < sg->min_stable_ms) {
		char d[32], m[32], c[sizeof in->cause];
		cut_text(c, sizeof c, "failed %s after becoming available (min_stable %s): %s",
			 about(up, d, sizeof d), amount_format_duration(sg->min_stable_ms, m, sizeof m),
			 in->cause);
		memcpy(in->cause, c, sizeof c);
	}
	const struct engine_rollout *ro = &st->ro;
	if (ro->state == RO_COMPLETE && ro->kind == RO_KIND_DEPLOY && in->revision == st->target_rev &&
	    in->changed_at < settle_until(spec, ro))
		st->ro.failures++;
}

/* The cause of a missed health deadline: what, then what the last probe saw. */
static void deadline_cause(char *buf, size_t len, const char *what, const struct engine_inst *in)
{
	cut_text(buf, len, "%s%s%s", what, in->check[0] ? ": last check: " : "", in->check);
}

/* Instances that missed their health deadline fail; failed and drained ones are stopped. */
static void instance_deadlines(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	char d[32], w[64], c[sizeof st->inst[0].cause];
	int64_t hd = spec->strategy.health_deadline_ms;
	for (size_t i = 0; i < st->n; i++) {
		struct engine_inst *in = &st->inst[i];
		if ((in->state == INST_PENDING || in->state == INST_STARTED) && now - in->created_at >= hd) {
			snprintf(w, sizeof w, "not healthy within health_deadline %s",
				 amount_format_duration(hd, d, sizeof d));
			deadline_cause(c, sizeof c, w, in);
			fail_inst(st, in, now, c);
		} else if (in->state == INST_UNHEALTHY && now - in->unhealthy_at >= hd) {
			snprintf(w, sizeof w, "unhealthy for %s", amount_format_duration(hd, d, sizeof d));
			deadline_cause(c, sizeof c, w, in);
			fail_inst(st, in, now, c);
		}
		if (in->state == INST_FAILED) {
			judge_failure(spec, st, in);
			emit_event(out, INTENT_EVENT, EV_INSTANCE_FAILED, in->id, "instance %llu (revision %d) failed: %s",
				   (unsigned long long)in->id, in->revision, in->cause);
			set_state(in, INST_STOPPING, now);
			emit(out, INTENT_STOP)->inst_id = in->id;
		} else if (in->state == INST_DRAINED) {
			/* cause: how a drain that was not confirmed ended ("drain timed out with ...") */
			emit_event(out, INTENT_EVENT, EV_INSTANCE_STOPPING, in->id, "instance %llu (revision %d) %s, stopping",
				   (unsigned long long)in->id, in->revision, in->cause[0] ? in->cause : "drained");
			set_state(in, INST_STOPPING, now);
			emit(out, INTENT_STOP)->inst_id = in->id;
		}
	}
}

/* Reports instances that just became available; one of the target revision is progress. */
static void announce(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	for (size_t i = 0; i < st->n; i++) {
		struct engine_inst *in = &st->inst[i];
		if (in->announced || !engine_inst_available(spec, in, now))
			continue;
		in->announced = true;
		emit_event(out, INTENT_EVENT, EV_INSTANCE_AVAILABLE, in->id, "instance %llu (revision %d) available",
			   (unsigned long long)in->id, in->revision);
		if (in->revision == st->target_rev && (st->ro.state == RO_PROGRESSING || st->ro.state == RO_ROLLING_BACK))
			st->ro.progress_at = now;
	}
}

static void end_rollout(struct engine_state *st, enum engine_ro_state s, enum engine_event_kind ev, int64_t now,
			struct engine_out *out, const char *what)
{
	struct engine_rollout *ro = &st->ro;
	ro->state = s;
	ro->ended_at = now;
	ro->pause = PAUSE_NONE;
	if (ro->reason[0])
		emit_event(out, INTENT_ROLLOUT, ev, 0, "rollout %llu %s: %s", (unsigned long long)ro->id, what, ro->reason);
	else
		emit_event(out, INTENT_ROLLOUT, ev, 0, "rollout %llu %s", (unsigned long long)ro->id, what);
}

/* Counts new-revision instances that are not leaving: what a pause or a halt holds. */
static int live_of(const struct engine_state *st, int rev)
{
	int n = 0;
	for (size_t i = 0; i < st->n; i++)
		n += st->inst[i].revision == rev && is_live(&st->inst[i]);
	return n;
}

/* The rollout failed (reason already set): roll back to the last stable revision when allowed,
 * else halt where it stands. */
static void fail_rollout(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	struct engine_rollout *ro = &st->ro;
	if (spec->strategy.auto_rollback && ro->rollback_rev != 0 && ro->rollback_rev != st->target_rev) {
		ro->state = RO_ROLLING_BACK;
		ro->kind = RO_KIND_ROLLBACK;
		ro->fast = true;
		ro->batch = 0;
		ro->pause = PAUSE_NONE;
		ro->progress_at = now;
		st->target_rev = ro->rollback_rev;
		emit_event(out, INTENT_ROLLOUT, EV_ROLLING_BACK, 0, "rollout %llu failed, rolling back to revision %d: %s",
			   (unsigned long long)ro->id, ro->rollback_rev, ro->reason);
		return;
	}
	ro->hold = live_of(st, st->target_rev);
	end_rollout(st, RO_FAILED, EV_FAILED, now, out, "failed");
}

/* Enters a pause; hold keeps the new-revision count where it stands. */
static void enter_pause(struct engine_state *st, enum engine_pause_reason why, int64_t until, int64_t now)
{
	struct engine_rollout *ro = &st->ro;
	ro->state = RO_PAUSED;
	ro->pause = why;
	ro->pause_until = until;
	ro->paused_at = now;
	ro->hold = live_of(st, st->target_rev);
}

/* Leaves a pause; the progress clock does not run while paused. */
static void leave_pause(struct engine_state *st, int64_t now)
{
	struct engine_rollout *ro = &st->ro;
	ro->state = RO_PROGRESSING;
	ro->progress_at += now - ro->paused_at;
	if (ro->progress_at > now)
		ro->progress_at = now;
	ro->pause = PAUSE_NONE;
	ro->pause_until = 0;
	ro->reason[0] = '\0';
}

/* Zones (strategy.zones): instances are counted per zone, zone index nz standing for instances in
 * no zone of the spec (placed before zones were set, or in a zone no target has any more). Without
 * zone rules there is one pseudo-zone holding every instance, so the same code serves both. */
struct zones {
	int nz;                 /* zones of the spec; 0 without zone rules */
	int share[SPEC_ZONES_MAX + 1];
	const char *name[SPEC_ZONES_MAX + 1];
};

static void zones_init(const struct spec *spec, int replicas, struct zones *z)
{
	z->nz = (int)spec_zone_count(spec);
	z->name[0] = "";
	if (z->nz == 0) {
		z->share[0] = replicas;
		return;
	}
	spec_zone_shares(spec, replicas, z->share);
	for (int k = 0; k < z->nz; k++)
		z->name[k] = spec_zone_name(spec, (size_t)k);
	z->share[z->nz] = 0;
	z->name[z->nz] = "";
}

/* The zone index of an instance: 0 without zone rules, nz when its zone is not the spec's. */
static int zone_of(const struct zones *z, const struct engine_inst *in)
{
	int k = 0;
	while (k < z->nz && strcmp(z->name[k], in->zone) != 0)
		k++;
	return k;
}

/* Shares n new instances among zones into want[]: zone after zone in order (one_per_batch), else
 * each to the zone with the most of its share left, the first on ties. */
static void zones_split(const struct spec *spec, const struct zones *z, int n, int *want)
{
	int nb = z->nz == 0 ? 1 : z->nz;
	for (int k = 0; k <= nb; k++)
		want[k] = 0;
	if (z->nz == 0 || spec->strategy.zones.one_per_batch) {
		for (int k = 0; k < nb && n > 0; k++) {
			want[k] = n < z->share[k] ? n : z->share[k];
			n -= want[k];
		}
		return;
	}
	for (; n > 0; n--) {
		int best = -1;
		for (int k = 0; k < nb; k++)
			if (want[k] < z->share[k] && (best < 0 || z->share[k] - want[k] > z->share[best] - want[best]))
				best = k;
		if (best < 0)
			return;
		want[best]++;
	}
}

/* Zones one_per_batch: how many new instances the zones up to the current step hold; a batch goal
 * above it is cut there (so a batch changes one zone). replicas when the rule is off. */
static int zone_cap(const struct spec *spec, const struct engine_state *st)
{
	struct zones z;
	zones_init(spec, st->replicas, &z);
	if (z.nz == 0 || !spec->strategy.zones.one_per_batch)
		return st->replicas;
	int cap = 0;
	for (int k = 0; k < z.nz && k <= st->ro.zone_step; k++)
		cap += z.share[k];
	return cap;
}

static int batch_goal(const struct spec *spec, const struct engine_state *st)
{
	if (st->ro.fast || st->ro.kind == RO_KIND_SCALE || engine_ro_done(st->ro.state))
		return st->replicas;
	int g = spec_batch_goal(&spec->strategy, st->replicas, st->ro.batch);
	int cap = zone_cap(spec, st);
	return g < cap ? g : cap;
}

int engine_batch_goal(const struct spec *spec, const struct engine_state *st)
{
	return batch_goal(spec, st);
}

/* Zones one_per_batch: once `goal` new instances are in place, the zone step moves past every
 * zone they fill (zones with no share are skipped). */
static void advance_zone(const struct spec *spec, struct engine_state *st, int goal)
{
	int nz = (int)spec_zone_count(spec);
	while (spec->strategy.zones.one_per_batch && st->ro.zone_step < nz - 1 && zone_cap(spec, st) <= goal)
		st->ro.zone_step++;
}

static void start_batch(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	struct engine_rollout *ro = &st->ro;
	ro->progress_at = now;
	bool zoned = spec->strategy.zones.one_per_batch && spec_zone_count(spec) > 0;
	const char *zname = zoned ? spec_zone_name(spec, (size_t)ro->zone_step) : "";
	emit_event(out, INTENT_EVENT, EV_BATCH_STARTED, 0, "batch %d/%d started: %d of %d instances on revision %d%s%s",
		   ro->batch + 1, spec_batch_count(&spec->strategy, st->replicas), batch_goal(spec, st), st->replicas,
		   st->target_rev, zoned ? " in zone " : "", zname);
}

/* The target-revision instance that failed last (its cause explains a failed rollout), or NULL. */
static const struct engine_inst *last_failure(const struct engine_state *st)
{
	const struct engine_inst *last = NULL;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->revision == st->target_rev && in->cause[0] && (last == NULL || in->changed_at >= last->changed_at))
			last = in;
	}
	return last;
}

/* When the last available instance of the target revision became available: a verdict that
 * covers the current batch has a window starting no earlier. */
static int64_t batch_ready_at(const struct spec *spec, const struct engine_state *st)
{
	int64_t t = 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->revision == st->target_rev && in->state == INST_READY && in->healthy_at + ready_after(spec) > t)
			t = in->healthy_at + ready_after(spec);
	}
	return t;
}

/* Whether a live rollout has exactly the instances it wants: all of the target revision and
 * available (none at all when an abort found no stable revision to go back to). */
static bool at_end(const struct engine_state *st, const struct tally *t)
{
	const struct engine_rollout *ro = &st->ro;
	int want_total = st->target_rev == 0 ? 0 : st->replicas;
	return (ro->state == RO_PROGRESSING || ro->state == RO_ROLLING_BACK) && t->new_avail >= want_total &&
	       t->old_total == 0 && t->total == want_total;
}

/* At its end but its traffic cannot reach it: the rollout waits (a service with nothing to run
 * needs no traffic). */
static bool traffic_wait(const struct engine_state *st, const struct tally *t)
{
	return st->no_traffic && st->target_rev != 0 && st->replicas > 0 && at_end(st, t);
}

bool engine_waits_for_traffic(const struct spec *spec, const struct engine_state *st, int64_t now)
{
	struct tally t = count(spec, st, now);
	return traffic_wait(st, &t);
}

/* Rollout-level decisions: timed pauses, failure, analysis, batch gates, stability, completion. */
static void rollout_decisions(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	struct engine_rollout *ro = &st->ro;
	const struct spec_strategy *sg = &spec->strategy;
	bool analysis = sg->analysis.enabled && !ro->fast;
	char d[32];

	/* Waiting for traffic stops the progress clock, as a pause does: the revision is not at fault
	 * (another program holds the address), and rolling back would not free it. */
	bool waiting = false;
	if (st->no_traffic) { /* the tally only when the balancer says traffic cannot reach it */
		struct tally t0 = count(spec, st, now);
		waiting = traffic_wait(st, &t0);
	}
	if (waiting && st->no_traffic_since == 0) {
		st->no_traffic_since = now;
	} else if (!waiting && st->no_traffic_since != 0) {
		ro->progress_at += now - st->no_traffic_since;
		if (ro->progress_at > now)
			ro->progress_at = now;
		st->no_traffic_since = 0;
	}

	if (ro->state == RO_PAUSED && ro->pause == PAUSE_TIMED && now >= ro->pause_until) {
		leave_pause(st, now);
		ro->batch++;
		emit_event(out, INTENT_ROLLOUT, EV_RESUMED, 0, "rollout %llu resumed after its timed pause",
			   (unsigned long long)ro->id);
		start_batch(spec, st, now, out);
	}

	if ((ro->state == RO_PROGRESSING || ro->state == RO_PAUSED) && ro->kind == RO_KIND_DEPLOY) {
		int maxf = spec_max_failures(sg, st->replicas);
		if (ro->failures > maxf) {
			const struct engine_inst *last = last_failure(st);
			set_reason(ro, "%d instance(s) of revision %d failed, more than max_failures %d%s%s",
				   ro->failures, st->target_rev, maxf, last ? "; last: " : "", last ? last->cause : "");
			fail_rollout(spec, st, now, out);
		} else if (ro->state == RO_PROGRESSING && !waiting && now - ro->progress_at > sg->progress_deadline_ms) {
			set_reason(ro, "no progress for progress_deadline %s",
				   amount_format_duration(sg->progress_deadline_ms, d, sizeof d));
			fail_rollout(spec, st, now, out);
		} else if (analysis && st->verdict == VERDICT_FAIL) {
			set_reason(ro, "analysis failed: %s", st->verdict_reason);
			fail_rollout(spec, st, now, out);
		}
	} else if (ro->state == RO_ROLLING_BACK && !waiting && now - ro->progress_at > sg->progress_deadline_ms) {
		/* The revision we go back to does not come up either: halt rather than loop forever. */
		set_reason(ro, "going back to revision %d made no progress for progress_deadline %s", st->target_rev,
			   amount_format_duration(sg->progress_deadline_ms, d, sizeof d));
		ro->hold = live_of(st, st->target_rev);
		end_rollout(st, RO_FAILED, EV_FAILED, now, out, "failed");
	} else if (ro->state == RO_COMPLETE && ro->rollback_rev != 0 && ro->rollback_rev != st->target_rev &&
		   ((now < ro->watch_until && st->verdict == VERDICT_FAIL && sg->analysis.enabled) ||
		    (ro->kind == RO_KIND_DEPLOY && ro->failures > spec_max_failures(sg, st->replicas)))) {
		/* A breach while watching a completed rollout, or its instances failing within
		 * min_stable/watch of its completion (judge_failure): the new revision was not good
		 * after all. */
		if (ro->failures > spec_max_failures(sg, st->replicas)) {
			const struct engine_inst *last = last_failure(st);
			set_reason(ro,
				   "%d instance(s) of revision %d failed, more than max_failures %d, %s "
				   "after the rollout completed%s%s",
				   ro->failures, st->target_rev, spec_max_failures(sg, st->replicas),
				   about(now - ro->ended_at, d, sizeof d), last ? "; last: " : "",
				   last ? last->cause : "");
		} else {
			set_reason(ro, "analysis failed during watch: %s", st->verdict_reason);
		}
		st->stable_rev = ro->rollback_rev;
		ro->ended_at = 0;
		ro->watch_until = 0;
		ro->state = RO_PROGRESSING;
		fail_rollout(spec, st, now, out);
	}

	struct tally t = count(spec, st, now);
	if (st->target_rev != 0 && t.new_avail >= st->replicas && st->stable_rev != st->target_rev &&
	    st->replicas > 0) {
		st->stable_rev = st->target_rev;
		emit_event(out, INTENT_EVENT, EV_STABLE, 0, "revision %d is stable: %d of %d instances available",
			   st->target_rev, t.new_avail, st->replicas);
	}

	if (ro->state == RO_PROGRESSING && !ro->fast && ro->kind != RO_KIND_SCALE) {
		/* The barrier: the batch's new instances are available and its old ones are out of the
		 * balancer. Old ones still stopping hold capacity (the ceiling counts them), not the barrier. */
		int goal = batch_goal(spec, st);
		bool done = t.new_avail >= goal && t.old_live <= st->replicas - goal;
		if (done && goal < st->replicas) {
			const struct spec_pause *p = spec_pause_after(sg, ro->batch + 1);
			/* Cut short at a zone's end: the batch goes on in the next zone, after the gate. */
			bool zone_cut = goal < spec_batch_goal(sg, st->replicas, ro->batch);
			if (analysis && (st->verdict == VERDICT_NONE || st->verdict_since < batch_ready_at(spec, st))) {
				/* Wait for a verdict over traffic this batch served. */
			} else if (analysis && st->verdict == VERDICT_INCONCLUSIVE) {
				set_reason(ro, "analysis inconclusive after batch %d%s: %s; promote to continue or abort",
					   ro->batch + 1, zone_cut ? " in its zone" : "", st->verdict_reason);
				advance_zone(spec, st, goal); /* past the zones now full, as the other branches */
				enter_pause(st, zone_cut ? PAUSE_ANALYSIS_ZONE : PAUSE_ANALYSIS, 0, now);
				emit_event(out, INTENT_ROLLOUT, EV_PAUSED, 0, "rollout %llu paused: %s",
					   (unsigned long long)ro->id, ro->reason);
			} else if (zone_cut) {
				advance_zone(spec, st, goal);
				start_batch(spec, st, now, out);
			} else if (p != NULL) {
				advance_zone(spec, st, goal);
				if (p->duration_ms > 0)
					set_reason(ro, "paused after batch %d for %s", ro->batch + 1,
						   amount_format_duration(p->duration_ms, d, sizeof d));
				else
					set_reason(ro, "paused after batch %d: promote to continue", ro->batch + 1);
				enter_pause(st, p->duration_ms > 0 ? PAUSE_TIMED : PAUSE_CANARY, now + p->duration_ms, now);
				emit_event(out, INTENT_ROLLOUT, EV_PAUSED, 0, "rollout %llu %s", (unsigned long long)ro->id,
					   ro->reason);
			} else {
				advance_zone(spec, st, goal);
				ro->batch++;
				start_batch(spec, st, now, out);
			}
		}
	}

	/* Done when exactly the wanted instances run, all of the target revision and available, and
	 * traffic can reach them. */
	t = count(spec, st, now);
	if (at_end(st, &t) && !traffic_wait(st, &t)) {
		if (ro->state == RO_PROGRESSING)
			ro->reason[0] = '\0';
		if (ro->kind == RO_KIND_ABORT) {
			end_rollout(st, RO_ABORTED, EV_ABORTED, now, out, "aborted");
		} else if (ro->state == RO_ROLLING_BACK) {
			end_rollout(st, RO_ROLLED_BACK, EV_ROLLED_BACK, now, out, "rolled back");
		} else {
			if (sg->watch_ms > 0 && sg->analysis.enabled && ro->kind == RO_KIND_DEPLOY)
				ro->watch_until = now + sg->watch_ms;
			end_rollout(st, RO_COMPLETE, ro->kind == RO_KIND_SCALE ? EV_SCALED : EV_COMPLETE, now, out,
				    "complete");
		}
	}
}

/* The failed instance of rev in zone whose backoff a new instance takes over: the one whose
 * restart is due last (the longest wait of those owed: never the shorter), or NULL. */
static struct engine_inst *debtor(struct engine_state *st, int rev, const char *zone)
{
	struct engine_inst *best = NULL;
	for (size_t i = 0; i < st->n; i++) {
		struct engine_inst *in = &st->inst[i];
		if (in->owes_restart && in->revision == rev && strcmp(in->zone, zone) == 0 &&
		    (best == NULL || in->start_at > best->start_at))
			best = in;
	}
	return best;
}

static void emit_start(struct engine_inst *in, struct engine_out *out)
{
	struct engine_intent *it = emit(out, INTENT_START);
	it->inst_id = in->id;
	it->revision = in->revision;
}

/* A new instance of rev in zone (may be ""), its event (why: "" or a reason) and START. When it
 * replaces a failed one of the same revision and zone, it takes over that one's backoff: it waits
 * in BACKOFF until start_at, and its one event says when it will start. */
static void new_inst(struct engine_state *st, int rev, const char *zone, const char *why, int *owing, int64_t now,
		     struct engine_out *out)
{
	/* owing: how many instances owe a restart (counted once a step: no search when none does) */
	struct engine_inst *prev = *owing > 0 ? debtor(st, rev, zone) : NULL;
	struct engine_inst *in = &st->inst[st->n++];
	assert(st->n <= st->cap);
	memset(in, 0, sizeof *in);
	in->id = st->next_inst_id++;
	in->revision = rev;
	in->state = INST_PENDING;
	in->created_at = in->changed_at = now;
	snprintf(in->zone, sizeof in->zone, "%s", zone);
	if (prev != NULL) {
		(*owing)--;
		prev->owes_restart = false;
		in->restarts = prev->restarts;
		in->start_at = prev->start_at;
	}
	const char *zs = *zone ? " in zone " : "";
	if (in->start_at > now) {
		char d[32];
		in->state = INST_BACKOFF;
		emit_event(out, INTENT_EVENT, EV_INSTANCE_STARTING, in->id,
			   "instance %llu (revision %d) starting in %s%s%s%s: restart %d after failures in a row",
			   (unsigned long long)in->id, in->revision, amount_format_duration(in->start_at - now, d, sizeof d),
			   why, zs, zone, in->restarts);
		return;
	}
	if (in->restarts > 0)
		emit_event(out, INTENT_EVENT, EV_INSTANCE_STARTING, in->id,
			   "instance %llu (revision %d) starting%s%s%s: restart %d after failures in a row",
			   (unsigned long long)in->id, in->revision, why, zs, zone, in->restarts);
	else
		emit_event(out, INTENT_EVENT, EV_INSTANCE_STARTING, in->id, "instance %llu (revision %d) starting%s%s%s",
			   (unsigned long long)in->id, in->revision, why, zs, zone);
	emit_start(in, out);
}

/* Instances whose backoff is over start now (their event was emitted when they were decided),
 * unless the instances not gone are over the ceiling meanwhile (old ones still draining after an
 * undo or a scale down): each holds its slot, and starts once the others have gone. */
static void start_due(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	size_t due = 0;
	for (size_t i = 0; i < st->n; i++)
		due += st->inst[i].state == INST_BACKOFF && now >= st->inst[i].start_at;
	if (due == 0)
		return; /* the usual step: no tally */
	int surge, unav;
	spec_surge_unavailable(&spec->strategy, st->replicas, &surge, &unav);
	if (count(spec, st, now).total > st->replicas + surge)
		return;
	for (size_t i = 0; i < st->n; i++) {
		struct engine_inst *in = &st->inst[i];
		if (in->state != INST_BACKOFF || now < in->start_at)
			continue;
		set_state(in, INST_PENDING, now);
		in->created_at = now; /* the health deadline and the uptime count from the real start */
		emit_start(in, out);
	}
}

/* Reconciles instance counts toward what the rollout wants now, within the floor and the ceiling
 * (and, with zones, toward each zone's share within its own floor). */
static void reconcile(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	struct engine_rollout *ro = &st->ro;
	int r = st->replicas;
	int surge, unav;
	spec_surge_unavailable(&spec->strategy, r, &surge, &unav);
	struct tally t = count(spec, st, now);

	bool may_start_new = true, may_remove = true;
	int want_new;
	if (st->target_rev == 0) {
		want_new = 0;
	} else if (ro->state == RO_PAUSED) {
		want_new = ro->hold;
		/* a hold counted before the shares changed (replicas scaled) stays in the zones up to
		 * the step: never a new instance in a later zone */
		if (ro->kind == RO_KIND_DEPLOY && !ro->fast && want_new > zone_cap(spec, st))
			want_new = zone_cap(spec, st);
		may_remove = false;
	} else if (ro->state == RO_FAILED) {
		/* Halted: no new-revision instance starts; what is beyond the wanted counts (surplus after
		 * a scale, old capacity the rollout had already replaced) may still go, floor permitting. */
		if (st->target_rev == st->stable_rev) {
			/* ...unless the revision had proven itself (stable): then it just heals. */
			want_new = r;
		} else {
			if (t.new_live < ro->hold)
				ro->hold = t.new_live;
			want_new = ro->hold;
			may_start_new = false;
		}
	} else {
		want_new = batch_goal(spec, st);
	}
	if (want_new > r)
		want_new = r;
	/* Old capacity that crashed is replaced with the last stable revision, when there is one. */
	int old_rev = st->stable_rev != 0 && st->stable_rev != st->target_rev ? st->stable_rev : 0;
	int floor = st->target_rev == 0 ? 0 : r - unav;

	/* Per zone: what is wanted, what lives, what serves. */
	struct zones z;
	zones_init(spec, r, &z);
	int nb = z.nz == 0 ? 1 : z.nz + 1;
	int want_n[SPEC_ZONES_MAX + 1], want_o[SPEC_ZONES_MAX + 1];
	int new_l[SPEC_ZONES_MAX + 1] = {0}, old_l[SPEC_ZONES_MAX + 1] = {0}, av[SPEC_ZONES_MAX + 1] = {0};
	zones_split(spec, &z, want_new, want_n);
	for (int k = 0; k < nb; k++)
		want_o[k] = st->target_rev == 0 ? 0 : z.share[k] - want_n[k];
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->state == INST_GONE)
			continue;
		int k = zone_of(&z, in);
		bool isnew = st->target_rev != 0 && in->revision == st->target_rev;
		if (is_live(in))
			(isnew ? new_l : old_l)[k]++;
		av[k] += engine_inst_available(spec, in, now);
	}

	int room = r + surge - t.total, owing = 0;
	for (size_t i = 0; i < st->n; i++)
		owing += st->inst[i].owes_restart;
	for (int k = 0; k < nb; k++) {
		const char *zname = z.name[k];
		for (; may_start_new && st->target_rev != 0 && room > 0 && new_l[k] < want_n[k]; room--, new_l[k]++)
			new_inst(st, st->target_rev, zname, "", &owing, now, out);
	}
	for (int k = 0; k < nb && old_rev != 0; k++) {
		const char *zname = z.name[k];
		for (; room > 0 && old_l[k] < want_o[k]; room--, old_l[k]++)
			new_inst(st, old_rev, zname, " to restore capacity", &owing, now, out);
	}

	if (!may_remove)
		return;
	int budget = t.avail - floor;
	int excess_old[SPEC_ZONES_MAX + 1], excess_new[SPEC_ZONES_MAX + 1], zbudget[SPEC_ZONES_MAX + 1];
	for (int k = 0; k < nb; k++) {
		excess_old[k] = old_l[k] - want_o[k];
		excess_new[k] = new_l[k] - want_n[k];
		int zfloor = z.nz == 0 || k == z.nz || st->target_rev == 0
				 ? 0
				 : amount_ceil(spec->strategy.zones.min_available, z.share[k]);
		zbudget[k] = av[k] - zfloor;
	}
	/* Two passes: first what serves nothing (free to remove: unhealthy, starting), then available
	 * instances within the budgets. In each pass a superseded revision's instances (a canary of a
	 * rollout replaced by this one: neither the target nor the stable revision) go before the
	 * stable one's, so no third revision keeps serving; then the oldest instance goes first. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t j = 0; j < 2 * st->n; j++) {
			size_t i = j % st->n;
			struct engine_inst *in = &st->inst[i];
			if (!is_live(in) || (int)engine_inst_available(spec, in, now) != pass)
				continue;
			int k = zone_of(&z, in);
			bool isnew = st->target_rev != 0 && in->revision == st->target_rev;
			bool superseded = !isnew && in->revision != st->stable_rev;
			if (superseded != (j < st->n))
				continue;
			int *excess = isnew ? &excess_new[k] : &excess_old[k];
			if (*excess <= 0)
				continue;
			if (pass == 1) {
				if (budget <= 0)
					return;
				if (zbudget[k] <= 0)
					continue;
				budget--;
				zbudget[k]--;
			}
			(*excess)--;
			if (in->state == INST_BACKOFF) {
				set_state(in, INST_GONE, now); /* never started: nothing to drain or stop */
				continue;
			}
			set_state(in, INST_DRAINING, now);
			emit_event(out, INTENT_EVENT, EV_INSTANCE_DRAINING, in->id, "instance %llu (revision %d) draining",
				   (unsigned long long)in->id, in->revision);
			emit(out, INTENT_DRAIN)->inst_id = in->id;
		}
	}
}

int engine_step(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out)
{
	if (!have_room(out, engine_intent_bound(spec, st)) || st->cap < st->n + engine_inst_headroom(spec, st))
		return ENGINE_ENOSPC;
	compact(st, now);
	instance_deadlines(spec, st, now, out);
	announce(spec, st, now, out);
	rollout_decisions(spec, st, now, out);
	reconcile(spec, st, now, out);
	start_due(spec, st, now, out);
	return 0;
}

/* ---- commands ------------------------------------------------------------------------------- */

static void begin_rollout(struct engine_state *st, enum engine_ro_kind kind, enum engine_ro_state s, int to_rev,
			  int64_t now)
{
	struct engine_rollout *ro = &st->ro;
	int from = st->target_rev;
	if (ro->id != 0)
		st->prev = *ro;
	memset(ro, 0, sizeof *ro);
	ro->id = st->next_rollout_id++;
	ro->kind = kind;
	ro->state = s;
	ro->from_rev = from;
	ro->to_rev = to_rev;
	ro->rollback_rev = st->stable_rev != to_rev ? st->stable_rev : 0;
	ro->from_replicas = ro->to_replicas = st->replicas; /* engine_apply sets where it came from */
	ro->started_at = now;
	ro->progress_at = now;
	st->target_rev = to_rev;
	/* A verdict was of the revision before: the shell measures the new one afresh. */
	st->verdict = VERDICT_NONE;
	st->verdict_reason[0] = '\0';
	st->verdict_since = 0;
}

/* A live rollout replaced by another one ends as aborted, with the reason saying by what. */
static void supersede(struct engine_state *st, int64_t now, struct engine_out *out, const char *why)
{
	if (!ro_live(st))
		return;
	snprintf(st->ro.reason, sizeof st->ro.reason, "%s", why);
	end_rollout(st, RO_ABORTED, EV_ABORTED, now, out, "superseded");
}

int engine_apply(const struct spec *spec, struct engine_state *st, int rev, int64_t now, struct engine_out *out)
{
	if (!have_room(out, 8))
		return ENGINE_ENOSPC;
	if (rev < 1 || rev > st->latest_rev + 1)
		return ENGINE_ENOREV;
	if (rev > st->latest_rev)
		st->latest_rev = rev;
	int old_replicas = st->replicas;
	st->replicas = spec->replicas;

	if (rev == st->target_rev) {
		if (old_replicas == st->replicas || ro_live(st) || st->ro.state == RO_FAILED)
			return 0;
		begin_rollout(st, RO_KIND_SCALE, RO_PROGRESSING, rev, now);
		st->ro.from_replicas = old_replicas;
		st->ro.fast = true;
		emit_event(out, INTENT_ROLLOUT, EV_ROLLOUT_STARTED, 0, "rollout %llu started: scale from %d to %d instances",
			   (unsigned long long)st->ro.id, old_replicas, st->replicas);
		return 0;
	}
	char why[64];
	snprintf(why, sizeof why, "superseded by revision %d", rev);
	supersede(st, now, out, why);
	bool first = st->stable_rev == 0 && st->n == 0;
	begin_rollout(st, RO_KIND_DEPLOY, RO_PROGRESSING, rev, now);
	st->ro.from_replicas = first ? 0 : old_replicas;
	/* A first deploy has no capacity to protect: one batch, no pause. */
	st->ro.fast = first;
	emit_event(out, INTENT_ROLLOUT, EV_ROLLOUT_STARTED, 0, "rollout %llu started: revision %d to %d, %d instances",
		   (unsigned long long)st->ro.id, st->ro.from_rev, rev, st->replicas);
	if (!first)
		start_batch(spec, st, now, out);
	return 0;
}

int engine_pause(struct engine_state *st, int64_t now, struct engine_out *out)
{
	if (!have_room(out, 1))
		return ENGINE_ENOSPC;
	if (st->ro.state != RO_PROGRESSING || st->ro.kind == RO_KIND_SCALE)
		return ENGINE_EBADSTATE;
	set_reason(&st->ro, "paused by user: resume to continue");
	enter_pause(st, PAUSE_USER, 0, now);
	emit_event(out, INTENT_ROLLOUT, EV_PAUSED, 0, "rollout %llu paused by user", (unsigned long long)st->ro.id);
	return 0;
}

int engine_resume(struct engine_state *st, int64_t now, struct engine_out *out)
{
	if (!have_room(out, 1))
		return ENGINE_ENOSPC;
	if (st->ro.state != RO_PAUSED || st->ro.pause != PAUSE_USER)
		return ENGINE_EBADSTATE;
	leave_pause(st, now);
	emit_event(out, INTENT_ROLLOUT, EV_RESUMED, 0, "rollout %llu resumed", (unsigned long long)st->ro.id);
	return 0;
}

int engine_promote(struct engine_state *st, int64_t now, struct engine_out *out)
{
	if (!have_room(out, 2))
		return ENGINE_ENOSPC;
	if (st->ro.state != RO_PAUSED)
		return ENGINE_EBADSTATE;
	bool gate = st->ro.pause != PAUSE_USER;
	bool zone = st->ro.pause == PAUSE_ANALYSIS_ZONE; /* the batch goes on in its next zone */
	leave_pause(st, now);
	emit_event(out, INTENT_ROLLOUT, EV_RESUMED, 0, "rollout %llu promoted", (unsigned long long)st->ro.id);
	if (gate) {
		st->ro.batch += !zone;
		emit_event(out, INTENT_EVENT, EV_BATCH_STARTED, 0, "batch %d %s", st->ro.batch + 1,
			   zone ? "goes on in its next zone" : "started");
	}
	return 0;
}

int engine_abort(struct engine_state *st, int64_t now, struct engine_out *out)
{
	return engine_abort_why(st, "aborted by user", now, out);
}

int engine_abort_why(struct engine_state *st, const char *why, int64_t now, struct engine_out *out)
{
	if (!have_room(out, 2))
		return ENGINE_ENOSPC;
	struct engine_rollout *ro = &st->ro;
	if (ro->state != RO_PROGRESSING && ro->state != RO_PAUSED)
		return ENGINE_EBADSTATE;
	/* Back to the stable revision of the rollout's start, or one that became stable since. */
	int back = ro->rollback_rev ? ro->rollback_rev : st->stable_rev;
	if (back == 0 || back == st->target_rev)
		return ENGINE_ENOREV;
	ro->rollback_rev = back;
	ro->state = RO_ROLLING_BACK;
	ro->kind = RO_KIND_ABORT;
	ro->fast = true;
	ro->pause = PAUSE_NONE;
	ro->progress_at = now;
	st->target_rev = ro->rollback_rev;
	set_reason(ro, "%s", why);
	emit_event(out, INTENT_ROLLOUT, EV_ROLLING_BACK, 0, "rollout %llu aborted, going back to revision %d",
		   (unsigned long long)ro->id, st->target_rev);
	return 0;
}

/* Whether rollout r shows that rev was stable at some point. rollback_rev is only ever the stable
 * revision of the time (taken when the rollout began, or by an abort); a rollout ends complete, and
 * an undo rolled back, only once every instance of its revision was available. */
static bool ro_shows_stable(const struct engine_rollout *r, int rev)
{
	if (r->id == 0)
		return false;
	if (r->rollback_rev == rev)
		return true;
	return r->to_rev == rev && engine_ro_succeeded(r);
}

static void ro_ending(const struct engine_rollout *r, char *buf, size_t len)
{
	const char *how;
	switch (r->state) {
	case RO_FAILED:
		how = "failed";
		break;
	case RO_ROLLED_BACK:
		how = "was rolled back";
		break;
	case RO_ABORTED:
		how = "was aborted";
		break;
	case RO_ROLLING_BACK:
		how = "is being rolled back";
		break;
	default:
		how = engine_ro_state_name(r->state);
		break;
	}
	snprintf(buf, len, "its rollout %llu %s%s%s", (unsigned long long)r->id, how,
		 r->reason[0] ? ": " : "", r->reason);
}

bool engine_rev_was_stable(const struct engine_state *st, int rev, const struct engine_history *h, char *how,
			   size_t len)
{
	if (rev == 0)
		return false;
	if (st->stable_rev == rev || ro_shows_stable(&st->ro, rev) || ro_shows_stable(&st->prev, rev))
		return true;
	/* The newest rollout to rev (st's own rollouts are at least as new as their stored rows). */
	const struct engine_rollout *last = NULL;
	const struct engine_rollout *mine[2] = {&st->ro, &st->prev};
	for (size_t i = 0; i < 2; i++)
		if (mine[i]->id != 0 && mine[i]->to_rev == rev && (last == NULL || mine[i]->id > last->id))
			last = mine[i];
	for (size_t i = 0; h != NULL && i < h->n; i++) {
		if (ro_shows_stable(&h->v[i], rev))
			return true;
		if (h->v[i].to_rev == rev && (last == NULL || h->v[i].id > last->id))
			last = &h->v[i];
	}
	if (how != NULL && len > 0) {
		if (last != NULL)
			ro_ending(last, how, len);
		else
			snprintf(how, len, "it was never rolled out");
	}
	return false;
}

int engine_undo(struct engine_state *st, int rev, bool force, const struct engine_history *h, int64_t now,
		struct engine_out *out)
{
	if (!have_room(out, 4))
		return ENGINE_ENOSPC;
	if (rev == 0) {
		if (st->stable_rev != 0 && st->stable_rev != st->target_rev)
			rev = st->stable_rev;
		else if (st->ro.rollback_rev != 0 && st->ro.rollback_rev != st->target_rev)
			rev = st->ro.rollback_rev;
		else /* the current revision is the stable one: the newest stable one before it */
			for (int r = st->latest_rev; r >= 1 && rev == 0; r--)
				if (r != st->target_rev && engine_rev_was_stable(st, r, h, NULL, 0))
					rev = r;
		if (rev == 0)
			return ENGINE_ENOREV;
	}
	if (rev < 1 || rev > st->latest_rev)
		return ENGINE_ENOREV;
	if (rev == st->target_rev)
		return ENGINE_EBADSTATE;
	if (!force && !engine_rev_was_stable(st, rev, h, NULL, 0))
		return ENGINE_EUNSTABLE;
	char why[64];
	snprintf(why, sizeof why, "undone to revision %d", rev);
	supersede(st, now, out, why);
	begin_rollout(st, RO_KIND_UNDO, RO_ROLLING_BACK, rev, now);
	st->ro.fast = true;
	st->ro.rollback_rev = 0;
	emit_event(out, INTENT_ROLLOUT, EV_ROLLOUT_STARTED, 0, "rollout %llu started: undo from revision %d to %d",
		   (unsigned long long)st->ro.id, st->ro.from_rev, rev);
	return 0;
}

static void earliest(int64_t *best, int64_t t, int64_t now)
{
	if (t > now && t < *best)
		*best = t;
}

int64_t engine_next_deadline(const struct spec *spec, const struct engine_state *st, int64_t now)
{
	const struct spec_strategy *sg = &spec->strategy;
	const struct engine_rollout *ro = &st->ro;
	int64_t best = INT64_MAX;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->state == INST_READY && !in->announced)
			earliest(&best, in->healthy_at + ready_after(spec), now);
		else if (in->state == INST_BACKOFF)
			earliest(&best, in->start_at, now);
		else if (in->state == INST_GONE && in->owes_restart)
			earliest(&best, in->start_at + BACKOFF_CAP_MS, now);
		else if (in->state == INST_PENDING || in->state == INST_STARTED)
			earliest(&best, in->created_at + sg->health_deadline_ms, now);
		else if (in->state == INST_UNHEALTHY)
			earliest(&best, in->unhealthy_at + sg->health_deadline_ms, now);
	}
	if ((ro->state == RO_PROGRESSING || ro->state == RO_ROLLING_BACK) && st->no_traffic_since == 0)
		earliest(&best, ro->progress_at + sg->progress_deadline_ms + 1, now);
	if (ro->state == RO_PAUSED && ro->pause == PAUSE_TIMED)
		earliest(&best, ro->pause_until, now);
	if (ro->state == RO_COMPLETE && ro->watch_until > now)
		earliest(&best, ro->watch_until, now);
	return best;
}

int engine_resume_intents(const struct engine_state *st, struct engine_out *out)
{
	if (!have_room(out, st->n))
		return ENGINE_ENOSPC;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		struct engine_intent *it;
		switch (in->state) {
		case INST_PENDING:
			it = emit(out, INTENT_START);
			it->inst_id = in->id;
			it->revision = in->revision;
			break;
		case INST_DRAINING:
			emit(out, INTENT_DRAIN)->inst_id = in->id;
			break;
		case INST_STOPPING:
			emit(out, INTENT_STOP)->inst_id = in->id;
			break;
		default:
			break;
		}
	}
	return 0;
}

const char *engine_health_name(enum engine_health h)
{
	return h == HEALTH_OK ? "ok" : h == HEALTH_DEGRADED ? "degraded" : "crash_looping";
}

enum engine_health engine_health(const struct spec *spec, const struct engine_state *st, int64_t now, int *available)
{
	int av = 0;
	bool looping = false;
	for (size_t i = 0; i < st->n; i++) {
		const struct engine_inst *in = &st->inst[i];
		if (in->state == INST_GONE)
			continue;
		bool a = engine_inst_available(spec, in, now);
		av += a;
		/* restarts stays on an instance that then ran fine: only one that does not serve counts */
		looping |= !a && in->restarts >= 2 && in->state != INST_DRAINING && in->state != INST_DRAINED;
	}
	if (available != NULL)
		*available = av;
	int want = st->target_rev == 0 ? 0 : st->replicas;
	if (av >= want)
		return HEALTH_OK;
	return looping ? HEALTH_CRASH_LOOPING : HEALTH_DEGRADED;
}
