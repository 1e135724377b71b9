/* A fake instance driver for tests: records every call and reports what the test (or its simple
 * defaults) decides, from the loop or from drv_fake_flush. No process is ever touched. */
#include "driver/driver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

struct fake_event {
	bool exited;
	char *service;
	uint64_t id;
	int pid;
	char *cause;
};

struct fake_inst {
	char *service;
	uint64_t id;
	int pid; /* 0 until `started` was delivered */
	uint64_t proc_start;
};

struct fake_drv {
	struct drv base;
	uv_loop_t *loop; /* may be NULL */
	uv_timer_t timer;
	bool closing;
	bool flushing; /* inside drv_fake_flush: a close without a loop frees at its end */
	bool auto_start, auto_stop;
	int fail_next;
	int next_pid;
	struct drv_fake_call *calls;
	size_t n_calls, cap_calls;
	struct fake_event *events;
	size_t n_events, cap_events;
	struct fake_inst *insts; /* known instances (starting or running) */
	size_t n_insts, cap_insts;
	struct fake_inst *procs; /* what adopt may find */
	size_t n_procs, cap_procs;
};

static const struct drv_ops fake_ops;

static struct fake_drv *fake_of(const struct drv *d)
{
	return d != NULL && d->ops == &fake_ops ? (struct fake_drv *)d : NULL;
}

static struct drv_fake_call *record(struct fake_drv *f, enum drv_fake_op op, const char *service, uint64_t id)
{
	xgrow((void **)&f->calls, &f->cap_calls, f->n_calls + 1, sizeof *f->calls);
	struct drv_fake_call *c = &f->calls[f->n_calls++];
	memset(c, 0, sizeof *c);
	c->op = op;
	c->service = xstrdup(service);
	c->id = id;
	return c;
}

static struct fake_inst *inst_find(struct fake_inst *v, size_t n, const char *service, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id && strcmp(v[i].service, service) == 0)
			return &v[i];
	return NULL;
}

static void on_timer(uv_timer_t *t)
{
	drv_fake_flush(t->data);
}

static void queue(struct fake_drv *f, bool exited, const char *service, uint64_t id, int pid, const char *cause)
{
	xgrow((void **)&f->events, &f->cap_events, f->n_events + 1, sizeof *f->events);
	struct fake_event *e = &f->events[f->n_events++];
	e->exited = exited;
	e->service = xstrdup(service);
	e->id = id;
	e->pid = pid;
	e->cause = cause != NULL ? xstrdup(cause) : NULL;
	if (f->loop != NULL && !f->closing)
		uv_timer_start(&f->timer, on_timer, 0, 0);
}

static int fake_start(struct drv *d, const struct drv_start *req)
{
	struct fake_drv *f = fake_of(d);
	if (req->service == NULL || req->tmpl == NULL)
		return -EINVAL;
	struct drv_fake_call *c = record(f, DRV_FAKE_START, req->service, req->id);
	c->revision = req->revision;
	c->port = req->port;
	if (f->fail_next != 0) {
		int err = f->fail_next;
		f->fail_next = 0;
		return err;
	}
	if (inst_find(f->insts, f->n_insts, req->service, req->id) != NULL)
		return -EEXIST;
	xgrow((void **)&f->insts, &f->cap_insts, f->n_insts + 1, sizeof *f->insts);
	f->insts[f->n_insts++] = (struct fake_inst){xstrdup(req->service), req->id, 0, 0};
	if (f->auto_start)
		queue(f, false, req->service, req->id, f->next_pid++, NULL);
	return 0;
}

static int fake_stop(struct drv *d, const char *service, uint64_t id, int signo, int64_t grace_ms)
{
	struct fake_drv *f = fake_of(d);
	struct drv_fake_call *c = record(f, DRV_FAKE_STOP, service, id);
	c->signo = signo;
	c->grace_ms = grace_ms;
	if (inst_find(f->insts, f->n_insts, service, id) == NULL)
		queue(f, true, service, id, 0, "not running");
	else if (f->auto_stop)
		queue(f, true, service, id, 0, "stopped");
	return 0;
}

static int fake_adopt(struct drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	struct fake_drv *f = fake_of(d);
	struct drv_fake_call *c = record(f, DRV_FAKE_ADOPT, service, id);
	c->pid = pid;
	c->proc_start = proc_start;
	if (inst_find(f->insts, f->n_insts, service, id) != NULL)
		return -EEXIST;
	struct fake_inst *p = inst_find(f->procs, f->n_procs, service, id);
	if (p == NULL || (pid != 0 && (p->pid != pid || p->proc_start != proc_start)))
		return -ESRCH;
	xgrow((void **)&f->insts, &f->cap_insts, f->n_insts + 1, sizeof *f->insts);
	f->insts[f->n_insts++] = (struct fake_inst){xstrdup(service), id, 0, p->proc_start};
	queue(f, false, service, id, p->pid, NULL);
	return 0;
}

static int fake_proc_info(struct drv *d, const char *service, uint64_t id, int *pid, uint64_t *proc_start)
{
	struct fake_drv *f = fake_of(d);
	struct fake_inst *in = inst_find(f->insts, f->n_insts, service, id);
	if (in == NULL || in->pid == 0)
		return -ENOENT;
	if (pid != NULL)
		*pid = in->pid;
	if (proc_start != NULL)
		*proc_start = in->proc_start;
	return 0;
}

static void free_all(struct fake_drv *f)
{
	for (size_t i = 0; i < f->n_calls; i++)
		free(f->calls[i].service);
	for (size_t i = 0; i < f->n_events; i++) {
		free(f->events[i].service);
		free(f->events[i].cause);
	}
	for (size_t i = 0; i < f->n_insts; i++)
		free(f->insts[i].service);
	for (size_t i = 0; i < f->n_procs; i++)
		free(f->procs[i].service);
	free(f->calls);
	free(f->events);
	free(f->insts);
	free(f->procs);
	free(f);
}

static void timer_closed(uv_handle_t *h)
{
	free_all(h->data);
}

static void fake_close(struct drv *d)
{
	struct fake_drv *f = fake_of(d);
	if (f->closing)
		return;
	f->closing = true;
	if (f->loop != NULL)
		uv_close((uv_handle_t *)&f->timer, timer_closed);
	else if (!f->flushing)
		free_all(f);
}

static const struct drv_ops fake_ops = {
	.name = "fake",
	.start = fake_start,
	.stop = fake_stop,
	.adopt = fake_adopt,
	.proc_info = fake_proc_info,
	.close = fake_close,
};

int drv_fake_new(uv_loop_t *loop, const struct drv_callbacks *cb, struct drv **out)
{
	if (cb == NULL || out == NULL)
		return -EINVAL;
	struct fake_drv *f = xcalloc(1, sizeof *f);
	f->base.ops = &fake_ops;
	f->base.cb = *cb;
	f->loop = loop;
	f->auto_start = f->auto_stop = true;
	f->next_pid = 10000;
	if (loop != NULL) {
		uv_timer_init(loop, &f->timer);
		f->timer.data = f;
	}
	*out = &f->base;
	return 0;
}

void drv_fake_set_auto(struct drv *d, bool auto_start, bool auto_stop)
{
	struct fake_drv *f = fake_of(d);
	f->auto_start = auto_start;
	f->auto_stop = auto_stop;
}

void drv_fake_fail_next_start(struct drv *d, int err)
{
	fake_of(d)->fail_next = err;
}

void drv_fake_add_process(struct drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	struct fake_drv *f = fake_of(d);
	xgrow((void **)&f->procs, &f->cap_procs, f->n_procs + 1, sizeof *f->procs);
	f->procs[f->n_procs++] = (struct fake_inst){xstrdup(service), id, pid, proc_start};
}

void drv_fake_started(struct drv *d, const char *service, uint64_t id, int pid)
{
	queue(fake_of(d), false, service, id, pid, NULL);
}

void drv_fake_exited(struct drv *d, const char *service, uint64_t id, const char *cause)
{
	queue(fake_of(d), true, service, id, 0, cause != NULL ? cause : "exited");
}

/* Delivers queued reports in order, including those queued by the callbacks themselves. The
 * callbacks may close the driver: then the rest is dropped. */
int drv_fake_flush(struct drv *d)
{
	struct fake_drv *f = fake_of(d);
	int n = 0;
	if (f->flushing)
		return 0;
	f->flushing = true;
	while (f->n_events > 0 && !f->closing) {
		struct fake_event e = f->events[0];
		memmove(f->events, f->events + 1, (f->n_events - 1) * sizeof *f->events);
		f->n_events--;
		struct fake_inst *in = inst_find(f->insts, f->n_insts, e.service, e.id);
		if (!e.exited) {
			if (in != NULL)
				in->pid = e.pid;
			if (f->base.cb.started != NULL)
				f->base.cb.started(f->base.cb.ctx, e.service, e.id, e.pid);
		} else {
			if (in != NULL) {
				free(in->service);
				*in = f->insts[--f->n_insts];
			}
			if (f->base.cb.exited != NULL)
				f->base.cb.exited(f->base.cb.ctx, e.service, e.id, e.cause);
		}
		free(e.service);
		free(e.cause);
		n++;
	}
	f->flushing = false;
	if (f->closing && f->loop == NULL)
		free_all(f); /* a callback closed the driver */
	return n;
}

size_t drv_fake_ncalls(const struct drv *d)
{
	return fake_of(d)->n_calls;
}

const struct drv_fake_call *drv_fake_call_at(const struct drv *d, size_t i)
{
	const struct fake_drv *f = fake_of(d);
	return i < f->n_calls ? &f->calls[i] : NULL;
}

size_t drv_fake_running(const struct drv *d)
{
	const struct fake_drv *f = fake_of(d);
	size_t n = 0;
	for (size_t i = 0; i < f->n_insts; i++)
		n += f->insts[i].pid != 0;
	return n;
}
