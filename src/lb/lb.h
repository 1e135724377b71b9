/* Load balancers: how traffic reaches instances. A table of operations (struct lb_ops); `none`
 * (none.c) steers nothing; the builtin proxy and HAProxy plug in the same way. */
#ifndef ROLLOUT_LB_LB_H
#define ROLLOUT_LB_LB_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/analysis.h"

enum lb_backend_state {
	LB_ACTIVE,   /* receives new requests */
	LB_DRAINING, /* no new request; in-flight ones finish */
};

/* One backend of a service as the daemon wants it. Backends not listed are removed. */
struct lb_backend {
	uint64_t id;
	int revision;
	char addr[64]; /* host:port */
	enum lb_backend_state state;
	int weight; /* 1..256: its share of new work, relative to the others (0 is taken as 1) */
};

struct lb;

/* Reports, always from the event loop (never from inside the call that caused them). */
struct lb_callbacks {
	void *ctx;
	/* A draining backend has no request in flight any more (or was unknown to the balancer). */
	void (*drained)(void *ctx, const char *service, uint64_t id);
	/* Answer to lb_read_stats: the service's cumulative counters per revision (v[0..n), valid
	 * during the call), or err < 0 when they could not be read. */
	void (*stats)(void *ctx, const char *service, int err, const struct analysis_rev *v, size_t n);
	/* The balancer cannot do what the service needs (error: what went wrong, valid during the
	 * call), or, error NULL, it is in sync again. On changes only; may be NULL. */
	void (*problem)(void *ctx, const char *service, const char *error);
	/* The service's listener cannot be bound: traffic cannot reach the service (why: one line,
	 * e.g. "listener 127.0.0.1:8080 not bound: address already in use (since T)", valid during
	 * the call); or, why NULL, it is bound now. On changes only; may be NULL. */
	void (*listener)(void *ctx, const char *service, const char *why);
};

struct lb_ops {
	const char *name;
	/* Makes the service's backend set exactly v[0..n), atomically and idempotently. Every backend
	 * newly or still DRAINING gets a `drained` report once it has nothing in flight. */
	int (*set_backends)(struct lb *, const char *service, const char *listen, const char *protocol,
			    const struct lb_backend *v,
			    size_t n);
	/* Forgets a service (its listener closes). */
	int (*remove_service)(struct lb *, const char *service);
	/* Asks for the service's per-revision counters; the answer comes once through cb.stats.
	 * Returns -EBUSY while an earlier read of it is unanswered, -ENOTSUP when the balancer
	 * measures nothing, -ENOENT for a service it does not serve yet (then no answer comes). */
	int (*read_stats)(struct lb *, const char *service);
	/* Cuts every connection still open to backend id of the service now (its drain timed out:
	 * long-lived tcp connections would otherwise last until the instance is killed). Best effort;
	 * no report. NULL: nothing to cut. */
	int (*close_backend)(struct lb *, const char *service, uint64_t id);
	/* How many requests (tcp: connections) backend id of the service had in flight at the
	 * balancer's latest reading since it was set draining, at once, without I/O; a negative errno
	 * when there is none (-ENOTSUP: the balancer cannot tell). NULL: cannot tell. */
	int (*inflight)(struct lb *, const char *service, uint64_t id);
	/* Frees the balancer in libuv close callbacks; no report after this. */
	void (*close)(struct lb *);
};

/* The common head of every balancer; implementations embed it first. */
struct lb {
	const struct lb_ops *ops;
	struct lb_callbacks cb;
};

/* protocol: "http" or "tcp" (how the balancer's listener for the service speaks). */
int lb_set_backends(struct lb *lb, const char *service, const char *listen, const char *protocol,
		    const struct lb_backend *v, size_t n);
int lb_remove_service(struct lb *lb, const char *service);
/* -ENOTSUP when the balancer has no read_stats. */
int lb_read_stats(struct lb *lb, const char *service);
/* 0 when the balancer has no close_backend (nothing to cut). */
int lb_close_backend(struct lb *lb, const char *service, uint64_t id);
/* -ENOTSUP when the balancer has no inflight. */
int lb_inflight(struct lb *lb, const char *service, uint64_t id);
/* lb_close(NULL) is a no-op. */
void lb_close(struct lb *lb);

/* `none`: nothing to steer; every draining backend is reported drained at once. */
int lb_none_new(uv_loop_t *loop, const struct lb_callbacks *cb, struct lb **out);
/* `builtin`: drives `rollout proxy` on admin_path, starting rollout_exe detached when nothing answers. */
int lb_builtin_new(uv_loop_t *loop, const char *admin_path, const char *rollout_exe, const struct lb_callbacks *cb,
		   struct lb **out);
/* `haproxy`: steers `backend` of the HAProxy whose Runtime API is at socket (a path, or ip:port). */
int lb_haproxy_new(uv_loop_t *loop, const char *socket, const char *backend, const struct lb_callbacks *cb,
		   struct lb **out);

#endif
