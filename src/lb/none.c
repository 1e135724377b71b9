/* The `none` load balancer: for services that take no traffic (workers, consumers). Draining is
 * immediate: a backend set to draining is reported drained from the next loop iteration. */
#include "lb/lb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct pending {
	char *service;
	uint64_t id;
};

struct lb_none {
	struct lb lb;
	uv_loop_t *loop;
	uv_idle_t idle; /* delivers queued reports outside the caller's stack */
	struct pending *q;
	size_t n, cap;
	int closing;
};

static void deliver(uv_idle_t *h)
{
	struct lb_none *s = h->data;
	/* Reports may queue more; take the batch first. */
	struct pending *q = s->q;
	size_t n = s->n;
	s->q = NULL;
	s->n = s->cap = 0;
	uv_idle_stop(&s->idle);
	for (size_t i = 0; i < n; i++) {
		if (!s->closing && s->lb.cb.drained)
			s->lb.cb.drained(s->lb.cb.ctx, q[i].service, q[i].id);
		free(q[i].service);
	}
	free(q);
}

static int none_set_backends(struct lb *lb, const char *service, const char *listen, const char *protocol,
			     const struct lb_backend *v,
			     size_t n)
{
	struct lb_none *s = (struct lb_none *)lb;
	(void)listen;
	(void)protocol;
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != LB_DRAINING)
			continue;
		xgrow((void **)&s->q, &s->cap, s->n + 1, sizeof *s->q);
		s->q[s->n].service = xstrdup(service);
		s->q[s->n++].id = v[i].id;
	}
	if (s->n > 0)
		uv_idle_start(&s->idle, deliver);
	return 0;
}

static int none_remove_service(struct lb *lb, const char *service)
{
	(void)lb;
	(void)service;
	return 0;
}

/* Nothing goes through this balancer, so nothing is measured. */
static int none_read_stats(struct lb *lb, const char *service)
{
	(void)lb;
	(void)service;
	return -ENOTSUP;
}

static void on_closed(uv_handle_t *h)
{
	struct lb_none *s = h->data;
	for (size_t i = 0; i < s->n; i++)
		free(s->q[i].service);
	free(s->q);
	free(s);
}

static void none_close(struct lb *lb)
{
	struct lb_none *s = (struct lb_none *)lb;
	s->closing = 1;
	uv_close((uv_handle_t *)&s->idle, on_closed);
}

static const struct lb_ops none_ops = {
	.name = "none",
	.set_backends = none_set_backends,
	.remove_service = none_remove_service,
	.read_stats = none_read_stats,
	.close = none_close,
};

int lb_none_new(uv_loop_t *loop, const struct lb_callbacks *cb, struct lb **out)
{
	struct lb_none *s = xcalloc(1, sizeof *s);
	s->lb.ops = &none_ops;
	s->lb.cb = *cb;
	s->loop = loop;
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	*out = &s->lb;
	return 0;
}
