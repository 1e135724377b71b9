/* Webhook notifications (spec `notify:`): a JSON POST per rollout event a hook asks for, sent with
 * libcurl multi on the daemon's loop, retried with exponential backoff; never blocks a rollout. */
#ifndef ROLLOUT_DAEMON_NOTIFY_H
#define ROLLOUT_DAEMON_NOTIFY_H

#include <stdint.h>

#include <uv.h>

#include "core/engine.h"
#include "core/spec.h"

/* Attempts per delivery, and the most deliveries waiting at once (more are dropped, logged). */
#define NOTIFY_ATTEMPTS	   5
#define NOTIFY_MAX_PENDING 256
#define NOTIFY_TIMEOUT_MS  5000

struct notify;

/* What one notification says. Strings are borrowed for the call. */
struct notify_msg {
	const char *service;
	enum spec_notify_event event;
	const char *text; /* the engine's sentence: "rollout 3 failed, rolling back to revision 1: ..." */
	uint64_t rollout;
	int from_rev, to_rev;
	const char *state;  /* the rollout's state after the step */
	const char *reason; /* may be "" */
	int64_t ts;	    /* ms since the epoch */
};

/* ---- pure parts ---- */

/* Delay before the next attempt after `failed` failed attempts (1, 2, 3 ...): 1 s, 2 s, 4 s, 8 s;
 * -1 when the delivery has had its NOTIFY_ATTEMPTS. */
int64_t notify_retry_delay_ms(int failed);
/* The notification an engine event is (rollout is the state after the step, for its kind), or -1
 * for events no hook hears of. A failing deploy rolling back is `failed`; an abort going back is
 * not (its end is `aborted`). */
int notify_event_of(enum engine_event_kind ev, const struct engine_rollout *rollout);
/* "started", "paused", "completed", "failed", "rolled_back", "aborted". */
const char *notify_event_name(enum spec_notify_event e);
/* Whether hook h wants event e (an empty filter wants every event). */
int notify_wants(const struct spec_notify *h, enum spec_notify_event e);
/* The request body for hook h: {"service","event","text","rollout","from_revision","to_revision",
 * "state","reason","ts"}, or with slack: {"text": "..."}. Caller frees. */
char *notify_body(const struct spec_notify *h, const struct notify_msg *m);

/* ---- delivery ---- */

/* A notifier on loop. Returns 0 or -EIO when libcurl cannot start. */
int notify_new(uv_loop_t *loop, struct notify **out);
/* Drops what is still pending and frees in libuv close callbacks. notify_free(NULL) is a no-op. */
void notify_free(struct notify *n);
/* Queues one POST of m to every hook of spec that wants it. Never fails the caller: a delivery
 * that cannot be queued is logged. */
void notify_send(struct notify *n, const struct spec *spec, const struct notify_msg *m);
/* The notifications of a step's intents (every INTENT_ROLLOUT a hook hears of), for service
 * with state st after the step. */
void notify_intents(struct notify *n, const struct spec *spec, const char *service,
		    const struct engine_state *st, const struct engine_out *out, int64_t now);

#endif
