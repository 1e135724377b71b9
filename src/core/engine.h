/* The rollout engine: a pure function from (spec, observed state, now) to a new state and a list of
 * intents for the drivers. No I/O, no clock, no hidden allocation: the caller owns every buffer.
 * docs/engine.md explains the rules; DESIGN.md "The engine" is the contract. */
#ifndef ROLLOUT_CORE_ENGINE_H
#define ROLLOUT_CORE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/spec.h"

/* Project error codes, in the negative-errno space (below every errno value). */
enum {
	ENGINE_EBADSTATE = -1000, /* the command does not apply in the rollout's current state */
	ENGINE_ENOREV = -1001,    /* no such revision, or nothing to roll back to */
	ENGINE_ENOSPC = -1002,    /* the caller's instance or intent buffer is too small */
	ENGINE_EUNSTABLE = -1003, /* undo: the revision never became stable (force goes there anyway) */
};

/* Life of one instance. Transitions are made only by engine_observe (what a driver saw) and
 * engine_step (what the engine decided). */
enum engine_inst_state {
	INST_PENDING,   /* engine decided to start it; the driver has not confirmed yet */
	INST_STARTED,   /* running, not yet healthy */
	INST_READY,     /* healthy since healthy_at; available once min_ready has passed */
	INST_UNHEALTHY, /* was healthy, now failing checks (since unhealthy_at) */
	INST_DRAINING,  /* out of the load balancer, in-flight requests finishing */
	INST_DRAINED,   /* the load balancer confirmed no request in flight (or the drain timed out) */
	INST_STOPPING,  /* stop sent */
	INST_FAILED,    /* failed to start, exited, or missed its deadline; the engine will stop it */
	INST_GONE,      /* exited after a stop; removed from the state at the next step */
	INST_BACKOFF,   /* replaces a failed instance: no process yet, its START waits until start_at */
	INST__COUNT
};

/* The text of one health probe's result kept with an instance (longer ones are cut). */
#define ENGINE_CHECK_MAX 160

struct engine_inst {
	uint64_t id;      /* unique per service, allocated by the engine */
	int revision;     /* 1, 2, 3 ... */
	enum engine_inst_state state;
	int64_t created_at;   /* when the engine decided to start it */
	int64_t healthy_at;   /* READY: since when */
	int64_t unhealthy_at; /* UNHEALTHY: since when */
	int64_t changed_at;   /* last state change */
	int port;             /* set by the driver; the engine does not read it */
	bool announced;       /* the engine has reported it available (reset when it turns unhealthy) */
	char cause[224];      /* why it failed, for events */
	/* What its last health probe saw (OBS_CHECK), "" before any: a health deadline's cause says
	 * it. In memory only: after a restart of the daemon its checks report afresh. */
	char check[ENGINE_CHECK_MAX];
	char zone[SPEC_ZONE_MAX + 1]; /* strategy.zones: the zone the engine placed it in, else "" */
	/* Crash-loop backoff (core/backoff.h). restarts: failures in a row of the instances its slot
	 * had before it (0: a first start); once it failed, its own failure included. start_at:
	 * BACKOFF: when its START is due; once failed: when its replacement may start. */
	int restarts;
	int64_t start_at;
	bool owes_restart; /* failed, and no replacement has taken over restarts/start_at yet */
};

/* Without a health check an instance is ready when its process has run this long (and then
 * min_ready, when longer, as usual): a program that exits at once is never available. */
#define ENGINE_NOCHECK_READY_MS 1000

enum engine_ro_state {
	RO_NONE,        /* no rollout yet */
	RO_PROGRESSING,
	RO_PAUSED,
	RO_COMPLETE,
	RO_FAILED,
	RO_ROLLING_BACK,
	RO_ROLLED_BACK,
	RO_ABORTED,
	RO__COUNT
};

enum engine_ro_kind {
	RO_KIND_DEPLOY,   /* a new revision applied */
	RO_KIND_ROLLBACK, /* automatic rollback after a failure */
	RO_KIND_UNDO,     /* rollout undo */
	RO_KIND_ABORT,    /* rollout abort: back to the stable revision, ends as aborted */
	RO_KIND_SCALE,    /* replicas changed alone */
};

enum engine_pause_reason {
	PAUSE_NONE,
	PAUSE_USER,        /* rollout pause; rollout resume continues */
	PAUSE_CANARY,      /* pause_after without duration; rollout promote continues */
	PAUSE_TIMED,       /* pause_after with duration; continues at pause_until (or promote) */
	PAUSE_ANALYSIS,    /* analysis inconclusive; promote continues, abort goes back */
	PAUSE_ANALYSIS_ZONE, /* the same at a zone's end inside a batch (zones one_per_batch) */
};

/* What the data plane's analysis says of the target revision (computed by the shell). */
enum engine_verdict { VERDICT_NONE, VERDICT_PASS, VERDICT_FAIL, VERDICT_INCONCLUSIVE };

/* The current rollout of a service. Persisted as one row per rollout id. */
struct engine_rollout {
	uint64_t id;          /* 0 when state is RO_NONE */
	enum engine_ro_kind kind;
	enum engine_ro_state state;
	int from_rev;         /* revision before the rollout (0 if none) */
	int to_rev;           /* the revision this rollout moves to (0: none, stop everything) */
	int rollback_rev;     /* where an automatic rollback goes (last stable), 0 if none */
	int from_replicas;    /* replicas before the rollout (a scale changes them) */
	int to_replicas;      /* replicas it moves to */
	int batch;            /* current batch, 0-based */
	bool fast;            /* fast path: one batch, no pause, no analysis wait */
	int failures;         /* failed instances of to_rev during this rollout */
	int hold;             /* while paused or halted: the new-revision count to hold */
	enum engine_pause_reason pause;
	int64_t pause_until;  /* PAUSE_TIMED */
	int64_t paused_at;    /* when the current pause began */
	int64_t progress_at;  /* last progress; the progress deadline counts from here */
	int64_t started_at;
	int64_t ended_at;     /* 0 while the rollout is live */
	int64_t watch_until;  /* complete with strategy.watch: analysis continues until here */
	char reason[320];     /* why it paused, failed, rolled back, was aborted */
	int zone_step;        /* zones one_per_batch: index of the zone the current batch changes */
};

/* All the engine knows of one service. The shell persists it whole after every step. */
struct engine_state {
	int target_rev;       /* desired revision: to_rev of the current rollout, or the steady one */
	int stable_rev;       /* last revision every instance of which was available at once */
	int latest_rev;       /* highest revision number recorded */
	int replicas;         /* from the latest applied spec */
	uint64_t next_inst_id;
	uint64_t next_rollout_id;
	struct engine_rollout ro;
	struct engine_rollout prev; /* the rollout that the last command replaced, as it ended (history) */
	enum engine_verdict verdict; /* set by the shell before a step; NONE without analysis */
	char verdict_reason[160];
	/* Start of the traffic window the verdict was computed over. A batch gate passes (or pauses
	 * on INCONCLUSIVE) only with a verdict whose window began once the batch's last new instance
	 * was available: no stale verdict from before the batch. Not persisted: 0 covers nothing. */
	int64_t verdict_since;
	/* Set by the shell before a step: the load balancer cannot bring traffic to the service (its
	 * listener is not bound), and why, on one line. A rollout is complete only when its traffic
	 * can reach it: one that has every instance it wants waits (does not end) while this is set,
	 * its progress clock stopped as in a pause. Not persisted: the shell sets it from the
	 * balancer's report. */
	bool no_traffic;
	char no_traffic_why[256];
	int64_t no_traffic_since; /* engine-kept: when the current wait for traffic began, else 0 */
	struct engine_inst *inst; /* n instances; capacity cap (the caller grows it) */
	size_t n, cap;
};

enum engine_intent_kind {
	INTENT_START,   /* start instance `id` of `revision` */
	INTENT_DRAIN,   /* take `id` out of the load balancer; report DRAINED when confirmed */
	INTENT_STOP,    /* stop `id` (signal, then SIGKILL after the grace); report EXITED */
	INTENT_EVENT,   /* record and show an event */
	INTENT_ROLLOUT, /* the rollout changed state (a notification point); see event text */
};

enum engine_event_kind {
	EV_ROLLOUT_STARTED,
	EV_BATCH_STARTED,
	EV_INSTANCE_STARTING,
	EV_INSTANCE_AVAILABLE,
	EV_INSTANCE_FAILED,
	EV_INSTANCE_DRAINING,
	EV_INSTANCE_STOPPING,
	EV_PAUSED,
	EV_RESUMED,
	EV_STABLE,
	EV_COMPLETE,
	EV_FAILED,
	EV_ROLLING_BACK,
	EV_ROLLED_BACK,
	EV_ABORTED,
	EV_SCALED,
	EV__COUNT
};

struct engine_intent {
	enum engine_intent_kind kind;
	uint64_t inst_id;        /* START, DRAIN, STOP, and instance events */
	int revision;            /* START */
	enum engine_event_kind event; /* EVENT, ROLLOUT */
	char text[400];          /* EVENT, ROLLOUT: for people */
};

/* Intents of one step, in a buffer the caller owns (cap entries). */
struct engine_out {
	struct engine_intent *v;
	size_t n, cap;
};

/* What a driver or checker saw happen to an instance. */
enum engine_obs_kind {
	OBS_STARTED,      /* process is running */
	OBS_START_FAILED, /* could not start; cause given */
	OBS_HEALTHY,      /* passed healthy_threshold checks */
	OBS_UNHEALTHY,    /* failed unhealthy_threshold checks */
	OBS_DRAINED,      /* no request in flight, or the drain timed out: cause says so ("drain timed out
			   * with 1 request in flight"), NULL for a confirmed drain */
	OBS_EXITED,       /* the process is gone */
	OBS_CHECK,        /* a health probe's result (cause: its text), whether or not it changed
			   * anything: kept in check, it changes no state */
};

/* The new-revision count the current batch aims at: cumulative, capped at replicas (all of them
 * on the fast path, for a scale, outside a rollout) and, with zones one_per_batch, at the end of
 * the zone the batch is in. What status shows as the batch goal. */
int engine_batch_goal(const struct spec *spec, const struct engine_state *st);

/* Fills a fresh state for a service with no revision yet. */
void engine_state_init(struct engine_state *st);
/* Frees the instance array. */
void engine_state_clear(struct engine_state *st);
/* Instances + intents a step may need at most: the caller grows st->inst to n + this and gives
 * an intent buffer of at least engine_intent_bound(). */
size_t engine_inst_headroom(const struct spec *spec, const struct engine_state *st);
size_t engine_intent_bound(const struct spec *spec, const struct engine_state *st);

/* Applies what a driver saw to instance `id`. Returns 0, or -ENOENT for an unknown id. An
 * observation that no longer applies (HEALTHY for a STOPPING instance) is ignored, returns 0. */
int engine_observe(struct engine_state *st, uint64_t id, enum engine_obs_kind obs, int64_t now,
		   const char *cause);

/* The one decision function: moves st forward and appends intents to out. The caller commits st
 * durably, then carries the intents out. Returns 0 or ENGINE_ENOSPC. */
int engine_step(const struct spec *spec, struct engine_state *st, int64_t now, struct engine_out *out);

/* Commands from people. Each changes st (and may append events to out) or returns an error with
 * st unchanged: ENGINE_EBADSTATE (e.g. promote when not paused), ENGINE_ENOREV, ENGINE_EUNSTABLE. */
/* A new spec was applied: rev is its revision (a new number when the template changed, else the
 * current target) and spec->replicas may have changed. */
int engine_apply(const struct spec *spec, struct engine_state *st, int rev, int64_t now, struct engine_out *out);
int engine_pause(struct engine_state *st, int64_t now, struct engine_out *out);
int engine_resume(struct engine_state *st, int64_t now, struct engine_out *out);
int engine_promote(struct engine_state *st, int64_t now, struct engine_out *out);
int engine_abort(struct engine_state *st, int64_t now, struct engine_out *out);
/* engine_abort with why (a short reason, copied) instead of "aborted by user": the daemon's own
 * aborts (a host whose key changed). */
int engine_abort_why(struct engine_state *st, const char *why, int64_t now, struct engine_out *out);

/* The service's past rollouts, newest first as the store lists them (st->ro and st->prev may be
 * among them or not). Borrowed for the call. */
struct engine_history {
	const struct engine_rollout *v;
	size_t n;
};

/* Whether revision rev ever became stable (every instance available at once): it is the stable
 * revision, a rollout completed to it, an undo to it ended, or a rollout began with it as the
 * stable one to go back to. A revision that became stable and then failed its watch did not.
 * When it never did and how is not NULL, how (len bytes) says how its last rollout ended:
 * "its rollout 3 failed: ...", "... was rolled back: ...", "... was aborted: ...". */
bool engine_rev_was_stable(const struct engine_state *st, int rev, const struct engine_history *h, char *how,
			   size_t len);

/* Goes to revision rev (0: the last stable revision other than the current target; ENGINE_ENOREV
 * when there is none). A revision that never became stable (engine_rev_was_stable, judged from h,
 * which may be NULL for none) is ENGINE_EUNSTABLE unless force. ENGINE_ENOREV for no such
 * revision, ENGINE_EBADSTATE for the current target. */
int engine_undo(struct engine_state *st, int rev, bool force, const struct engine_history *h, int64_t now,
		struct engine_out *out);

/* After a controller restart: the intents that were decided but perhaps not carried out
 * (PENDING -> START, DRAINING -> DRAIN, STOPPING/FAILED -> STOP). */
int engine_resume_intents(const struct engine_state *st, struct engine_out *out);

/* The earliest time after `now` at which engine_step could decide something new without any
 * observation (min_ready passing, a deadline, a timed pause ending), or INT64_MAX. The shell
 * sets a timer for it, so steps happen exactly when needed rather than on a polling tick. */
int64_t engine_next_deadline(const struct spec *spec, const struct engine_state *st, int64_t now);

/* Until when a failure of the revision a completed deploy moved to still counts against it, and
 * rolls it back past max_failures: strategy.min_stable (or watch, when longer) past its
 * completion. 0 when no such rule applies (no completed deploy, or no revision to go back to). */
int64_t engine_settle_until(const struct spec *spec, const struct engine_state *st);

/* Whether instance i counts as available at `now`: READY for at least min_ready, or already
 * announced available (and not unhealthy since). */
bool engine_inst_available(const struct spec *spec, const struct engine_inst *i, int64_t now);
/* What a service's instances amount to, whatever its rollout says (status and the dashboard). */
enum engine_health {
	HEALTH_OK,            /* replicas available (or none wanted) */
	HEALTH_DEGRADED,      /* fewer available than replicas */
	HEALTH_CRASH_LOOPING, /* fewer available, and an instance failed twice or more in a row */
};
enum engine_health engine_health(const struct spec *spec, const struct engine_state *st, int64_t now,
				 int *available);
const char *engine_health_name(enum engine_health h);

/* Whether the live rollout has every instance it wants and waits only for its traffic to reach
 * it (st->no_traffic): what status shows as what it waits for. */
bool engine_waits_for_traffic(const struct spec *spec, const struct engine_state *st, int64_t now);
/* Whether the rollout state is terminal (complete, failed, rolled back, aborted, none). */
bool engine_ro_done(enum engine_ro_state s);

const char *engine_inst_state_name(enum engine_inst_state s);
const char *engine_ro_state_name(enum engine_ro_state s);
const char *engine_ro_kind_name(enum engine_ro_kind k);
const char *engine_event_name(enum engine_event_kind e);
/* A pause's name ("user", "canary", "timed", "analysis"; NULL for PAUSE_NONE), the command that
 * continues it ("resume", "promote"; NULL for none), and whether it waits for a person (a timed
 * pause goes on by itself). */
const char *engine_pause_name(enum engine_pause_reason p);
const char *engine_pause_continue(enum engine_pause_reason p);
bool engine_pause_needs_person(enum engine_pause_reason p);
/* What a rollout was begun as: an automatic rollback and an abort are what became of a deploy
 * (kind tells what it is doing now). */
enum engine_ro_kind engine_ro_began_as(enum engine_ro_kind k);
/* How a rollout ended, or where it stands, in words for its history line: "complete", "failed,
 * rolled back to revision 2", "aborted, back on revision 3", "superseded", "undone to revision 1",
 * "rolling back to revision 2", "paused (canary)". Returns buf. */
char *engine_ro_outcome(const struct engine_rollout *ro, char *buf, size_t len);
/* Whether a rollout that ended did what it was begun for (a deploy or scale that completed, an
 * undo that reached its revision). */
bool engine_ro_succeeded(const struct engine_rollout *ro);
/* Parses a name back (for the store). Returns the value or -1. */
int engine_inst_state_parse(const char *name);
int engine_ro_state_parse(const char *name);
int engine_ro_kind_parse(const char *name);

#endif
