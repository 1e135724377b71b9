/* The `ssh` driver: instances on remote hosts, each a plain process that `rollout host` manages
 * there (the `process` preset), reached through the OpenSSH client with one ControlMaster
 * connection per host. Every value reaches the remote shell through drv_ssh_quote (docs/driver.md). */
#include "driver/driver.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xmalloc.h"

#define SSH_OUT_MAX	     (64 * 1024) /* bytes of a session's stdout or stderr we keep */
#define SSH_PER_HOST	     8		 /* sessions at once per host (sshd's MaxSessions is 10) */
#define SSH_TIMEOUT_MS	     30000	 /* one session, but a copy or a stop */
#define SSH_COPY_TIMEOUT_MS  120000
#define SSH_ERR_GRACE_MS     500 /* after ssh exited, wait this long for the rest of stderr */
#define SSH_POLL_MS_DEFAULT  1000
#define SSH_WATCH_SILENCE_MS 10000 /* a watch session that says nothing this long is dead */
#define SSH_SETTLE_MS	     1000  /* a snapshot may predate an instance started this recently */
#define SSH_EXEC_SLACK_MS    5000  /* an exec session may take this much more than its command */
/* The host's rollout directory; every remote command starts with it. A constant: no data in it. */
#define SSH_PRELUDE "R=\"${ROLLOUT_HOME:-$HOME/.rollout}\"; "

enum host_state { H_NEW, H_PREP, H_READY, H_LOST };
enum op_kind { OP_CHECK, OP_COPY, OP_START, OP_STOP, OP_POLL, OP_HOOK, OP_WATCH, OP_STAGE, OP_EXEC };
/* One host's part in a staging: running, then how it ended. */
enum stage_state { SG_RUNNING, SG_OK, SG_FAILED, SG_SKIPPED };

struct ssh_drv;
struct ssh_host;
struct ssh_op;

/* Pre-staging of one revision of a service: its install hook once per host (drv_ssh_stage). Kept
 * after it ended (so starts know where it passed) until a staging of another revision of the
 * service replaces it. */
struct stage_host {
	struct ssh_host *h;
	enum stage_state state;
	char *cause; /* SG_FAILED */
};

struct ssh_stage {
	struct ssh_stage *next;
	char *service;
	int revision;
	char *version;
	struct stage_host *hosts;
	size_t n_hosts;
	int pending;   /* hosts still running it */
	bool reported; /* ended, and starts waiting for it went on */
	uint64_t t0;   /* loop time it began */
	drv_stage_cb cb;
	void *ctx;
};

/* One drv_exec request. Its session holds it (op->ex) until the result; then it waits in the
 * driver's list for the loop to deliver it. Freed after delivery or when cancelled. */
struct drv_req {
	struct drv_req *next;
	struct ssh_op *op; /* while its session waits or runs */
	drv_exec_cb cb;
	void *arg;
	char *where;  /* user@host:port, for details */
	int64_t timeout_ms;
	bool cancelled; /* cancelled after its result was known: dropped at delivery */
	int status;
	char *detail;
};

/* One instance we know of. In the driver's list until its `exited` is reported; memory freed when
 * no session refers to it any more. */
struct ssh_inst {
	struct ssh_inst *next;
	struct ssh_host *h;
	char *service;
	uint64_t id;
	int pid;
	uint64_t proc_start;
	bool started;	     /* `started` reported */
	uint64_t started_ms; /* when (loop time) */
	bool adopting;	     /* after a restart: the next poll confirms it or reports it gone */
	bool dead;	     /* `exited` reported or on its way */
	bool starting;	     /* its start session runs */
	bool stopping;	     /* its stop session runs or will */
	bool stop_pending;   /* stop asked while the start ran */
	int stop_signo;
	int64_t stop_grace_ms;
	int refs;
	char *hook[SPEC_HOOK__COUNT]; /* remote command lines of the template's hooks, or NULL */
	char *start_cmd;	      /* `rollout host start ...`, run once install and start hooks passed */
	char *start_env;	      /* its stdin: NUL-separated NAME=VALUE (wiped) */
	size_t n_start_env;
	int revision;
	bool parked;	  /* its start waits for the staging of its revision */
	char *cause;	  /* why it is being stopped, when not asked (validate hook) */
	char *stop_cause; /* how the process ended, while the stop hook runs */
};

/* One ssh session: a request that completes once. Freed when its last handle is closed. */
struct ssh_op {
	struct ssh_op *next;  /* in the host's queue */
	struct ssh_op *rnext; /* in the driver's list of running sessions */
	struct ssh_host *h;
	enum op_kind kind;
	struct ssh_inst *in; /* start, stop of a known instance, hook */
	int hook;	     /* OP_HOOK: enum spec_hook */
	struct ssh_stage *sg; /* OP_STAGE: the staging and this host's index in it */
	size_t sgi;
	struct drv_req *ex; /* OP_EXEC, until its result (NULL once cancelled) */
	bool gated;	    /* counted in its host's busy (every session but the watch) */
	char *remote;	     /* the command line for the remote shell */
	char *input;	     /* stdin bytes (may hold secrets: wiped) */
	size_t n_input;
	int input_fd; /* or stdin from this file (copy), -1 */
	int64_t timeout_ms;
	uv_process_t proc;
	uv_pipe_t pin, pout, perr;
	uv_write_t wr;
	uv_timer_t tmo;
	bool pin_used;
	int open;
	char buf[4096];
	char *out, *err;
	size_t n_out, n_err;
	bool spawned, exited, out_eof, err_eof, done, timed_out;
	bool retry; /* a second try after a connection failure */
	int64_t status;
};

struct ssh_host {
	struct ssh_host *next;
	struct ssh_drv *d;
	char *user, *host;
	int port;
	bool accept_new;
	enum host_state state;
	struct ssh_op *queue, *queue_tail; /* sessions waiting for the host to be ready */
	int running;
	bool polling;
	bool watching;	 /* its `rollout host watch` session runs */
	bool lost;	 /* its last connection failed; cleared by the next check that passes */
	bool key_failed; /* ... on the host key check */
	int busy;	      /* sessions running, the watch aside: > 0 makes the host active */
	bool waiting;	      /* in the driver's queue of hosts waiting for room (parallel) */
	bool check_pending;   /* ... to run its check */
	struct ssh_host *wnext;
};

struct report {
	struct report *next;
	bool started;
	struct ssh_host *host_key; /* a host key report (service is NULL then) */
	char *service;
	uint64_t id;
	int pid;
	char *cause;
};

struct ssh_drv {
	struct drv base;
	uv_loop_t *loop;
	char *ctl_dir; /* DATA/ssh */
	char *self_exe;
	char *config;	 /* ssh -F, or NULL */
	char *want;	 /* what the check prints on a host whose binary is ours */
	char **services; /* services we ever ran: a running instance of one we do not know is an orphan */
	size_t n_services, cap_services;
	struct ssh_host *hosts;
	struct ssh_inst *insts;
	struct ssh_op *running; /* sessions whose ssh runs */
	struct report *reports, *reports_tail;
	uv_timer_t defer, poll;
	int64_t poll_ms;
	int parallel;			 /* hosts active at once at most */
	int active;			 /* hosts with busy > 0 */
	struct ssh_host *wait_head, *wait_tail; /* hosts waiting for room, in order */
	struct ssh_stage *stages;
	struct drv_req *ex_done, *ex_done_tail; /* exec results to deliver */
	bool closing;
	int open;  /* the driver's own handles */
	int n_ops; /* sessions not yet freed */
};

static void stage_free(struct ssh_stage *g)
{
	for (size_t i = 0; i < g->n_hosts; i++)
		free(g->hosts[i].cause);
	free(g->hosts);
	free(g->service);
	free(g->version);
	free(g);
}

static void req_free(struct drv_req *ex)
{
	free(ex->where);
	free(ex->detail);
	free(ex);
}

static void drv_maybe_free(struct ssh_drv *d)
{
	if (!d->closing || d->open > 0 || d->n_ops > 0)
		return;
	for (struct ssh_host *h = d->hosts, *n; h != NULL; h = n) {
		n = h->next;
		free(h->user);
		free(h->host);
		free(h);
	}
	while (d->stages != NULL) {
		struct ssh_stage *g = d->stages;
		d->stages = g->next;
		stage_free(g);
	}
	for (size_t i = 0; i < d->n_services; i++)
		free(d->services[i]);
	free(d->services);
	free(d->ctl_dir);
	free(d->self_exe);
	free(d->config);
	free(d->want);
	free(d);
}

/* ---- quoting and command lines ---- */

char *drv_ssh_quote(const char *s)
{
	size_t n = 2;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *out = xmalloc(n + 1), *o = out;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_add(struct sbuf *b, const char *s)
{
	size_t l = strlen(s);
	xgrow((void **)&b->p, &b->cap, b->n + l + 1, 1);
	memcpy(b->p + b->n, s, l + 1);
	b->n += l;
}

/* Appends " 'word'". */
static void sb_word(struct sbuf *b, const char *w)
{
	char *q = drv_ssh_quote(w);
	sb_add(b, " ");
	sb_add(b, q);
	free(q);
}

/* arg with {version} {port} {host} {service} replaced. New string. */
static char *hook_subst(const char *arg, const char *version, const char *port, const char *host,
			const char *service)
{
	const char *keys[] = {"{version}", "{port}", "{host}", "{service}"};
	const char *vals[] = {version ? version : "", port, host, service};
	struct sbuf b = {0};
	sb_add(&b, "");
	for (const char *p = arg; *p;) {
		size_t k;
		for (k = 0; k < 4; k++)
			if (strncmp(p, keys[k], strlen(keys[k])) == 0)
				break;
		if (k < 4) {
			sb_add(&b, vals[k]);
			p += strlen(keys[k]);
		} else {
			char one[2] = {*p++, '\0'};
			sb_add(&b, one);
		}
	}
	return b.p;
}

/* The remote command line of a hook: run from the host's rollout directory, each argument one
 * quoted word. New string. */
static char *hook_cmd(char **argv, size_t n, const char *version, const char *port, const char *host,
		      const char *service)
{
	struct sbuf b = {0};
	sb_add(&b, SSH_PRELUDE "mkdir -p \"$R\" && cd \"$R\" && exec");
	for (size_t i = 0; i < n; i++) {
		char *a = hook_subst(argv[i], version, port, host, service);
		sb_word(&b, a);
		free(a);
	}
	return b.p;
}

static char *inst_name(const char *service, uint64_t id) { return xasprintf("%s.%" PRIu64, service, id); }

/* ---- reports, always from the loop ---- */

static void stages_ended(struct ssh_drv *d);

/* Delivers exec results; a callback may cancel a request whose result waits here (then it is
 * dropped) or start new ones (delivered on the next turn). */
static void deliver_execs(struct ssh_drv *d)
{
	struct drv_req *ex = d->ex_done;
	d->ex_done = d->ex_done_tail = NULL;
	while (ex != NULL) {
		struct drv_req *n = ex->next;
		ex->next = NULL;
		if (!ex->cancelled && !d->closing)
			ex->cb(ex->arg, ex->status, ex->detail ? ex->detail : "");
		req_free(ex);
		ex = n;
	}
}

static void on_defer(uv_timer_t *t)
{
	struct ssh_drv *d = t->data;
	deliver_execs(d);
	stages_ended(d);
	struct report *r = d->reports;
	d->reports = d->reports_tail = NULL;
	while (r != NULL) {
		struct report *n = r->next;
		if (!d->closing) {
			if (r->host_key != NULL) {
				if (d->base.cb.host_key != NULL)
					d->base.cb.host_key(d->base.cb.ctx, r->host_key->user,
							    r->host_key->host, r->host_key->port, r->cause);
			} else if (r->started)
				d->base.cb.started(d->base.cb.ctx, r->service, r->id, r->pid);
			else
				d->base.cb.exited(d->base.cb.ctx, r->service, r->id, r->cause);
		}
		free(r->service);
		free(r->cause);
		free(r);
		r = n;
	}
}

static void report(struct ssh_drv *d, bool started, const char *service, uint64_t id, int pid,
		   const char *cause)
{
	struct report *r = xcalloc(1, sizeof *r);
	r->started = started;
	r->service = xstrdup(service);
	r->id = id;
	r->pid = pid;
	r->cause = cause ? xstrdup(cause) : NULL;
	if (d->reports_tail != NULL)
		d->reports_tail->next = r;
	else
		d->reports = r;
	d->reports_tail = r;
	uv_timer_start(&d->defer, on_defer, 0, 0);
}

/* The host's key was found not to be the one in known_hosts: says so once per finding, from the
 * loop (hosts live as long as the driver). */
static void report_host_key(struct ssh_drv *d, struct ssh_host *h, const char *cause)
{
	struct report *r = xcalloc(1, sizeof *r);
	r->host_key = h;
	r->cause = xstrdup(cause);
	if (d->reports_tail != NULL)
		d->reports_tail->next = r;
	else
		d->reports = r;
	d->reports_tail = r;
	uv_timer_start(&d->defer, on_defer, 0, 0);
}

/* ---- instances ---- */

static void inst_unref(struct ssh_inst *in)
{
	if (in != NULL && --in->refs == 0) {
		for (int k = 0; k < SPEC_HOOK__COUNT; k++)
			free(in->hook[k]);
		if (in->start_env != NULL) {
			xwipe(in->start_env, in->n_start_env);
			free(in->start_env);
		}
		free(in->start_cmd);
		free(in->cause);
		free(in->stop_cause);
		free(in->service);
		free(in);
	}
}

static struct ssh_inst *inst_find(struct ssh_drv *d, const char *service, uint64_t id)
{
	for (struct ssh_inst *in = d->insts; in != NULL; in = in->next)
		if (in->id == id && strcmp(in->service, service) == 0)
			return in;
	return NULL;
}

static void note_service(struct ssh_drv *d, const char *service)
{
	for (size_t i = 0; i < d->n_services; i++)
		if (strcmp(d->services[i], service) == 0)
			return;
	xgrow((void **)&d->services, &d->cap_services, d->n_services + 1, sizeof *d->services);
	d->services[d->n_services++] = xstrdup(service);
}

static struct ssh_inst *inst_new(struct ssh_drv *d, struct ssh_host *h, const char *service, uint64_t id)
{
	struct ssh_inst *in = xcalloc(1, sizeof *in);
	in->h = h;
	in->service = xstrdup(service);
	in->id = id;
	in->refs = 1;
	in->next = d->insts;
	d->insts = in;
	note_service(d, service);
	return in;
}

/* Reports the instance gone with cause and forgets it. */
static void inst_dead(struct ssh_drv *d, struct ssh_inst *in, const char *cause)
{
	if (in->dead)
		return;
	in->dead = true;
	report(d, false, in->service, in->id, 0, cause);
	for (struct ssh_inst **pp = &d->insts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	inst_unref(in);
}

/* ---- hosts ---- */

static struct ssh_host *host_get(struct ssh_drv *d, const struct spec_target *t, bool accept_new, bool create)
{
	for (struct ssh_host *h = d->hosts; h != NULL; h = h->next)
		if (h->port == t->port && strcmp(h->host, t->host) == 0 && strcmp(h->user, t->user) == 0) {
			h->accept_new = h->accept_new || accept_new;
			return h;
		}
	if (!create)
		return NULL;
	struct ssh_host *h = xcalloc(1, sizeof *h);
	h->d = d;
	h->user = xstrdup(t->user);
	h->host = xstrdup(t->host);
	h->port = t->port > 0 ? t->port : 22;
	h->accept_new = accept_new;
	h->next = d->hosts;
	d->hosts = h;
	return h;
}

static void op_spawn(struct ssh_op *op);
static void op_free_now(struct ssh_op *op);
static void op_abandon(struct ssh_op *op, const char *cause);

static struct ssh_op *op_new(struct ssh_host *h, enum op_kind kind, struct ssh_inst *in, char *remote)
{
	struct ssh_op *op = xcalloc(1, sizeof *op);
	op->h = h;
	op->kind = kind;
	op->in = in;
	if (in != NULL)
		in->refs++;
	op->remote = remote;
	op->input_fd = -1;
	op->timeout_ms = SSH_TIMEOUT_MS;
	h->d->n_ops++;
	return op;
}

/* ---- the bound across hosts (drv_ssh_set_parallel) ---- */

/* Whether a session may open on h now: it is active already, or there is room for one more host. */
static bool gate_open(struct ssh_host *h)
{
	return h->busy > 0 || h->d->active < h->d->parallel;
}

/* h has a session to open but no room: it waits its turn (once in the queue). */
static void gate_wait(struct ssh_host *h)
{
	struct ssh_drv *d = h->d;
	if (h->waiting)
		return;
	h->waiting = true;
	h->wnext = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->wnext = h;
	else
		d->wait_head = h;
	d->wait_tail = h;
}

static void gate_take(struct ssh_host *h)
{
	if (h->busy++ == 0)
		h->d->active++;
}

static void host_pump(struct ssh_host *h);
static void host_check_now(struct ssh_host *h);

/* Gives the room left to waiting hosts, in order. */
static void gate_pump(struct ssh_drv *d)
{
	while (d->active < d->parallel && d->wait_head != NULL && !d->closing) {
		struct ssh_host *h = d->wait_head;
		d->wait_head = h->wnext;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		h->waiting = false;
		h->wnext = NULL;
		if (h->check_pending) {
			h->check_pending = false;
			host_check_now(h);
		} else {
			host_pump(h);
		}
	}
}

static void gate_release(struct ssh_host *h)
{
	if (--h->busy == 0) {
		h->d->active--;
		gate_pump(h->d);
	}
}

/* Starts waiting sessions while the host is ready and has room. */
static void host_pump(struct ssh_host *h)
{
	while (h->state == H_READY && h->queue != NULL && h->running < SSH_PER_HOST && !h->d->closing) {
		struct ssh_op *op = h->queue;
		if (op->kind != OP_WATCH && !gate_open(h)) {
			gate_wait(h);
			return;
		}
		h->queue = op->next;
		if (h->queue == NULL)
			h->queue_tail = NULL;
		op->next = NULL;
		op_spawn(op);
	}
}

/* Checks the host's rollout binary (and so the connection and the host key) before anything else. */
static void host_check(struct ssh_host *h)
{
	h->state = H_PREP;
	if (!gate_open(h)) {
		h->check_pending = true;
		gate_wait(h);
		return;
	}
	host_check_now(h);
}

static void host_check_now(struct ssh_host *h)
{
	char *remote =
	    xasprintf(SSH_PRELUDE "\"$R/bin/rollout\" version 2>/dev/null; cksum <\"$R/bin/rollout\" "
				  "2>/dev/null; true");
	op_spawn(op_new(h, OP_CHECK, NULL, remote));
}

/* Queues a session that needs the host ready; connects first when needed. */
static void host_enqueue(struct ssh_host *h, struct ssh_op *op)
{
	if (h->queue_tail != NULL)
		h->queue_tail->next = op;
	else
		h->queue = op;
	h->queue_tail = op;
	if (h->state == H_NEW || h->state == H_LOST)
		host_check(h);
	host_pump(h);
}

/* The host cannot be reached (or refused us): everything waiting fails and every instance on it
 * is reported gone, never to be counted available. It is tried again on the next poll. */
static void host_lost(struct ssh_host *h, const char *why)
{
	struct ssh_drv *d = h->d;
	h->state = H_LOST;
	h->lost = true;
	h->polling = false;
	h->watching = false;
	char *cause =
	    xasprintf("%s: %s@%s:%d: %s", h->key_failed ? "host key verification failed" : "host unreachable",
		      h->user, h->host, h->port, why);
	struct ssh_op *q = h->queue;
	h->queue = h->queue_tail = NULL;
	while (q != NULL) {
		struct ssh_op *n = q->next;
		if (q->in != NULL)
			inst_dead(d, q->in, cause);
		op_abandon(q, cause);
		op_free_now(q);
		q = n;
	}
	for (struct ssh_inst *in = d->insts, *n; in != NULL; in = n) {
		n = in->next;
		if (in->h == h)
			inst_dead(d, in, cause);
	}
	free(cause);
}

/* ---- exec requests and staging: their ends ---- */

/* Ends the request of an exec session with a result, delivered from the loop. */
static void exec_finish(struct ssh_op *op, int status, const char *detail)
{
	struct drv_req *ex = op->ex;
	struct ssh_drv *d = op->h->d;
	op->ex = NULL;
	ex->op = NULL;
	ex->status = status;
	ex->detail = xstrdup(detail);
	if (d->ex_done_tail != NULL)
		d->ex_done_tail->next = ex;
	else
		d->ex_done = ex;
	d->ex_done_tail = ex;
	uv_timer_start(&d->defer, on_defer, 0, 0);
}

/* A host's part of a staging ended (cause: SG_FAILED, why; else may be NULL). */
static void stage_host_end(struct ssh_op *op, enum stage_state state, const char *cause)
{
	struct ssh_stage *g = op->sg;
	op->sg = NULL;
	struct stage_host *e = &g->hosts[op->sgi];
	e->state = state;
	free(e->cause);
	e->cause = cause != NULL ? xstrdup(cause) : NULL;
	if (--g->pending == 0)
		uv_timer_start(&op->h->d->defer, on_defer, 0, 0); /* stages_ended */
}

/* A session that will not run (its host is lost): its request or staging learns why. */
static void op_abandon(struct ssh_op *op, const char *cause)
{
	if (op->kind == OP_EXEC && op->ex != NULL)
		exec_finish(op, -EHOSTUNREACH, cause);
	if (op->kind == OP_STAGE && op->sg != NULL)
		stage_host_end(op, SG_SKIPPED, cause);
}

/* ---- sessions ---- */

static void op_handle_closed(uv_handle_t *hd)
{
	struct ssh_op *op = hd->data;
	if (--op->open > 0)
		return;
	op_free_now(op);
}

/* Frees a session whose handles are closed (or were never made). */
static void op_free_now(struct ssh_op *op)
{
	struct ssh_drv *d = op->h->d;
	if (op->input != NULL) {
		xwipe(op->input, op->n_input);
		free(op->input);
	}
	if (op->input_fd >= 0)
		close(op->input_fd);
	if (op->ex != NULL) /* only when closing: requests are cancelled before the driver closes */
		req_free(op->ex);
	inst_unref(op->in);
	free(op->remote);
	free(op->out);
	free(op->err);
	free(op);
	d->n_ops--;
	drv_maybe_free(d);
}

static void op_close(struct ssh_op *op)
{
	uv_timer_stop(&op->tmo);
	uv_close((uv_handle_t *)&op->tmo, op_handle_closed);
	uv_close((uv_handle_t *)&op->proc, op_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&op->pin))
		uv_close((uv_handle_t *)&op->pin, op_handle_closed);
	uv_close((uv_handle_t *)&op->pout, op_handle_closed);
	uv_close((uv_handle_t *)&op->perr, op_handle_closed);
}

/* The first line of s (at most 200 bytes), or dflt when s is empty. New string. */
static char *first_line(const char *s, size_t n, const char *dflt)
{
	while (n > 0 && (*s == '\n' || *s == '\r' || *s == ' ')) {
		s++;
		n--;
	}
	size_t l = 0;
	while (l < n && l < 200 && s[l] != '\n' && s[l] != '\r')
		l++;
	return l == 0 ? xstrdup(dflt) : xstrndup(s, l);
}

static void op_result(struct ssh_op *op);

/* Completes a session once: ssh exited and its output was read. */
static void op_maybe_done(struct ssh_op *op)
{
	if (op->done || !op->exited || !op->out_eof || !op->err_eof)
		return;
	op->done = true;
	struct ssh_host *h = op->h;
	for (struct ssh_op **pp = &h->d->running; *pp != NULL; pp = &(*pp)->rnext)
		if (*pp == op) {
			*pp = op->rnext;
			break;
		}
	h->running--;
	if (!h->d->closing)
		op_result(op);
	bool gated = op->gated;
	op_close(op);
	if (!h->d->closing) {
		host_pump(h);
		if (gated)
			gate_release(h);
	}
}

static void on_tmo(uv_timer_t *t)
{
	struct ssh_op *op = t->data;
	if (op->exited) { /* stderr held open by something ssh left behind: do without the rest */
		op->out_eof = op->err_eof = true;
		op_maybe_done(op);
		return;
	}
	op->timed_out = true;
	uv_process_kill(&op->proc, SIGKILL);
}

static void op_on_exit(uv_process_t *p, int64_t status, int sig)
{
	struct ssh_op *op = p->data;
	op->exited = true;
	op->status = sig != 0 ? 255 : status;
	uv_timer_start(&op->tmo, on_tmo, SSH_ERR_GRACE_MS, 0);
	op_maybe_done(op);
}

static void watch_data(struct ssh_op *op);

static void on_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *buf)
{
	(void)sz;
	struct ssh_op *op = hd->data;
	*buf = uv_buf_init(op->buf, sizeof op->buf);
}

static void append(char **p, size_t *n, const char *s, size_t l)
{
	if (*n + l > SSH_OUT_MAX)
		l = SSH_OUT_MAX - *n;
	*p = xrealloc(*p, *n + l + 1);
	memcpy(*p + *n, s, l);
	*n += l;
	(*p)[*n] = '\0';
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ssh_op *op = s->data;
	bool is_out = s == (uv_stream_t *)&op->pout;
	if (nread > 0) {
		if (is_out)
			append(&op->out, &op->n_out, buf->base, (size_t)nread);
		else
			append(&op->err, &op->n_err, buf->base, (size_t)nread);
		if (is_out && op->kind == OP_WATCH && !op->exited) {
			uv_timer_start(&op->tmo, on_tmo, (uint64_t)op->timeout_ms, 0); /* it is alive */
			watch_data(op);
		}
		return;
	}
	if (nread == 0)
		return;
	uv_read_stop(s);
	if (is_out)
		op->out_eof = true;
	else
		op->err_eof = true;
	op_maybe_done(op);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	struct ssh_op *op = w->data;
	if (!uv_is_closing((uv_handle_t *)&op->pin))
		uv_close((uv_handle_t *)&op->pin, op_handle_closed); /* EOF for the remote side */
}

/* Runs ssh for the session. A failure to run ssh completes the session as a connection failure. */
static void op_spawn(struct ssh_op *op)
{
	struct ssh_host *h = op->h;
	struct ssh_drv *d = h->d;
	h->running++;
	if (op->kind != OP_WATCH) {
		op->gated = true;
		gate_take(h);
	}
	char port[16];
	snprintf(port, sizeof port, "%d", h->port);
	char *ctl = xasprintf("ControlPath=%s/%%C", d->ctl_dir);
	const char *argv[32];
	int n = 0;
	argv[n++] = "ssh";
	if (d->config != NULL) {
		argv[n++] = "-F";
		argv[n++] = d->config;
	}
	const char *opts[] = {
	    "BatchMode=yes",
	    h->accept_new ? "StrictHostKeyChecking=accept-new" : "StrictHostKeyChecking=yes",
	    "ControlMaster=auto",
	    ctl,
	    "ControlPersist=60",
	    "ConnectTimeout=5",
	    "ServerAliveInterval=2",
	    "ServerAliveCountMax=3"};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		argv[n++] = "-o";
		argv[n++] = opts[i];
	}
	argv[n++] = "-p";
	argv[n++] = port;
	argv[n++] = "-l";
	argv[n++] = h->user;
	argv[n++] = "--";
	argv[n++] = h->host;
	argv[n++] = op->remote;
	argv[n] = NULL;

	uv_pipe_init(d->loop, &op->pin, 0);
	uv_pipe_init(d->loop, &op->pout, 0);
	uv_pipe_init(d->loop, &op->perr, 0);
	uv_timer_init(d->loop, &op->tmo);
	op->pin.data = op->pout.data = op->perr.data = op->tmo.data = op->proc.data = op;
	op->wr.data = op;
	op->open = 5;
	uv_stdio_container_t stdio[3];
	if (op->input_fd >= 0) {
		stdio[0].flags = UV_INHERIT_FD;
		stdio[0].data.fd = op->input_fd;
	} else {
		stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
		stdio[0].data.stream = (uv_stream_t *)&op->pin;
		op->pin_used = true;
	}
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&op->pout;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&op->perr;
	uv_process_options_t po;
	memset(&po, 0, sizeof po);
	po.file = "ssh";
	po.args = (char **)argv;
	po.exit_cb = op_on_exit;
	po.stdio_count = 3;
	po.stdio = stdio;
	int rc = uv_spawn(d->loop, &op->proc, &po);
	free(ctl);
	if (op->input_fd >= 0) {
		close(op->input_fd);
		op->input_fd = -1;
	}
	if (rc != 0) {
		op->exited = op->out_eof = op->err_eof = true;
		op->status = 255;
		append(&op->err, &op->n_err, "cannot run ssh: ", 16);
		append(&op->err, &op->n_err, uv_strerror(rc), strlen(uv_strerror(rc)));
		op_maybe_done(op);
		return;
	}
	op->spawned = true;
	op->rnext = d->running;
	d->running = op;
	uv_read_start((uv_stream_t *)&op->pout, on_alloc, on_read);
	uv_read_start((uv_stream_t *)&op->perr, on_alloc, on_read);
	if (op->pin_used && op->n_input > 0) {
		uv_buf_t b = uv_buf_init(op->input, (unsigned)op->n_input);
		if (uv_write(&op->wr, (uv_stream_t *)&op->pin, &b, 1, on_written) != 0)
			uv_close((uv_handle_t *)&op->pin, op_handle_closed);
	} else if (op->pin_used) {
		uv_close((uv_handle_t *)&op->pin, op_handle_closed);
	}
	uv_timer_start(&op->tmo, on_tmo, (uint64_t)op->timeout_ms, 0);
}

/* ---- what a session's result means ---- */

static void issue_stop(struct ssh_drv *d, struct ssh_host *h, struct ssh_inst *in, const char *name,
		       int signo, int64_t grace_ms)
{
	struct sbuf b = {0};
	sb_add(&b, SSH_PRELUDE "exec \"$R/bin/rollout\" host stop --name");
	sb_word(&b, name);
	char num[32];
	snprintf(num, sizeof num, "%d", signo);
	sb_add(&b, " --signal");
	sb_word(&b, num);
	snprintf(num, sizeof num, "%" PRId64, grace_ms);
	sb_add(&b, " --grace");
	sb_word(&b, num);
	struct ssh_op *op = op_new(h, OP_STOP, in, b.p);
	op->timeout_ms = SSH_TIMEOUT_MS + grace_ms;
	if (in != NULL)
		in->stopping = true;
	(void)d;
	host_enqueue(h, op);
}

static void on_copy_done(struct ssh_op *op, bool ok)
{
	struct ssh_host *h = op->h;
	if (!ok) {
		char *why = first_line(op->err, op->n_err, "cannot install rollout on the host");
		char *msg = xasprintf("cannot install rollout: %s", why);
		host_lost(h, msg);
		free(msg);
		free(why);
		return;
	}
	h->state = H_READY;
	h->lost = h->key_failed = false;
}

/* A check: the binary is ours (ready), or it is copied first. */
static void on_check_done(struct ssh_op *op)
{
	struct ssh_host *h = op->h;
	struct ssh_drv *d = h->d;
	h->lost = h->key_failed = false;
	if (op->out != NULL && strcmp(op->out, d->want) == 0) {
		h->state = H_READY;
		return;
	}
	int fd = open(d->self_exe, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		char *msg = xasprintf("cannot read %s to install it: %s", d->self_exe, strerror(errno));
		host_lost(h, msg);
		free(msg);
		return;
	}
	char *remote = xasprintf(SSH_PRELUDE
				 "mkdir -p \"$R/bin\" && cat >\"$R/bin/.rollout.$$\" && chmod 755 "
				 "\"$R/bin/.rollout.$$\" && mv -f \"$R/bin/.rollout.$$\" \"$R/bin/rollout\"");
	struct ssh_op *c = op_new(h, OP_COPY, NULL, remote);
	c->input_fd = fd;
	c->timeout_ms = SSH_COPY_TIMEOUT_MS;
	op_spawn(c);
}

/* Runs what comes next in an instance's start, from stage `from`: the install hook, the start
 * hook, then the process. */
static void start_from(struct ssh_host *h, struct ssh_inst *in, int from)
{
	for (int k = from; k <= SPEC_HOOK_START; k++) {
		if (in->hook[k] != NULL) {
			struct ssh_op *op = op_new(h, OP_HOOK, in, xstrdup(in->hook[k]));
			op->hook = k;
			host_enqueue(h, op);
			return;
		}
	}
	struct ssh_op *op = op_new(h, OP_START, in, in->start_cmd);
	in->start_cmd = NULL;
	op->input = in->start_env;
	op->n_input = in->n_start_env;
	in->start_env = NULL;
	in->n_start_env = 0;
	host_enqueue(h, op);
}

/* The process runs and validate passed (or there is none): the instance is started. */
static void inst_started(struct ssh_drv *d, struct ssh_host *h, struct ssh_inst *in)
{
	in->starting = false;
	in->started = true;
	in->started_ms = uv_now(d->loop);
	report(d, true, in->service, in->id, in->pid, NULL);
	if (in->stop_pending) {
		char *name = inst_name(in->service, in->id);
		issue_stop(d, h, in, name, in->stop_signo, in->stop_grace_ms);
		free(name);
	}
}

static void on_hook_done(struct ssh_op *op)
{
	struct ssh_host *h = op->h;
	struct ssh_drv *d = h->d;
	struct ssh_inst *in = op->in;
	static const char *const names[] = {"install", "start", "validate", "stop"};
	if (in->dead)
		return;
	char *why = NULL;
	if (op->status != 0) {
		char *line = first_line(op->err, op->n_err, "");
		why = xasprintf("%s hook failed (exit status %d)%s%s", names[op->hook], (int)op->status,
				line[0] ? ": " : "", line);
		free(line);
	}
	switch (op->hook) {
	case SPEC_HOOK_INSTALL:
	case SPEC_HOOK_START:
		if (why != NULL) {
			in->starting = false;
			inst_dead(d, in, why);
		} else if (in->stop_pending) {
			in->starting = false;
			inst_dead(d, in, "stopped before it started");
		} else {
			start_from(h, in, op->hook + 1);
		}
		break;
	case SPEC_HOOK_VALIDATE:
		if (why == NULL) {
			inst_started(d, h, in);
		} else {
			/* Not a good instance: stopped, and its cause says why. */
			in->starting = false;
			in->cause = xstrdup(why);
			char *name = inst_name(in->service, in->id);
			issue_stop(d, h, in, name, SIGTERM, 10000);
			free(name);
		}
		break;
	case SPEC_HOOK_STOP: {
		char *cause = why == NULL
				  ? xstrdup(in->stop_cause ? in->stop_cause : "stopped")
				  : xasprintf("%s; %s", in->stop_cause ? in->stop_cause : "stopped", why);
		inst_dead(d, in, cause);
		free(cause);
		break;
	}
	}
	free(why);
}

static void on_start_done(struct ssh_op *op)
{
	struct ssh_drv *d = op->h->d;
	struct ssh_inst *in = op->in;
	in->starting = false;
	if (in->dead)
		return;
	int pid = 0;
	uint64_t start = 0;
	if (op->status != 0 || op->out == NULL || sscanf(op->out, "%d %" SCNu64, &pid, &start) != 2 ||
	    pid <= 0) {
		char *why = first_line(op->err, op->n_err, "rollout host start failed");
		inst_dead(d, in, why);
		free(why);
		return;
	}
	in->pid = pid;
	in->proc_start = start;
	if (in->hook[SPEC_HOOK_VALIDATE] != NULL && !in->stop_pending) {
		in->starting = true; /* until validate passed */
		struct ssh_op *v = op_new(op->h, OP_HOOK, in, xstrdup(in->hook[SPEC_HOOK_VALIDATE]));
		v->hook = SPEC_HOOK_VALIDATE;
		host_enqueue(op->h, v);
		return;
	}
	inst_started(d, op->h, in);
}

static void on_stop_done(struct ssh_op *op)
{
	struct ssh_drv *d = op->h->d;
	if (op->in == NULL || op->in->dead)
		return;
	struct ssh_inst *in = op->in;
	char *why = op->status == 0 ? first_line(op->out, op->n_out, "stopped")
				    : first_line(op->err, op->n_err, "rollout host stop failed");
	if (in->cause != NULL) { /* stopped by us (validate failed): that is the cause */
		free(why);
		why = xstrdup(in->cause);
	}
	if (in->hook[SPEC_HOOK_STOP] != NULL) {
		in->stop_cause = why;
		struct ssh_op *h = op_new(op->h, OP_HOOK, in, xstrdup(in->hook[SPEC_HOOK_STOP]));
		h->hook = SPEC_HOOK_STOP;
		host_enqueue(op->h, h);
		return;
	}
	inst_dead(d, in, why);
	free(why);
}

/* A host's install hook of a staging ended. */
static void on_stage_done(struct ssh_op *op)
{
	if (op->sg == NULL)
		return;
	if (op->status == 0) {
		stage_host_end(op, SG_OK, NULL);
		return;
	}
	char *line = first_line(op->err, op->n_err, "");
	char *why = xasprintf("install hook failed (exit status %d)%s%s", (int)op->status, line[0] ? ": " : "", line);
	stage_host_end(op, SG_FAILED, why);
	free(why);
	free(line);
}

/* An exec session ended: its request's result. A session that failed (ssh's own 255) makes the
 * host checked again: when that fails too, the host is lost. */
static void exec_result(struct ssh_op *op)
{
	struct ssh_host *h = op->h;
	struct drv_req *ex = op->ex;
	if (ex == NULL)
		return; /* cancelled */
	char *detail;
	int status;
	if (op->timed_out) {
		status = -ETIMEDOUT;
		detail = xasprintf("timed out after %lldms on %s (ssh session killed)", (long long)ex->timeout_ms,
				   ex->where);
	} else if (op->status == 255) {
		char *why = first_line(op->err, op->n_err, "ssh failed");
		status = -EHOSTUNREACH;
		detail = xasprintf("ssh %s: %s", ex->where, why);
		free(why);
		if (h->state == H_READY)
			host_check(h);
	} else if (op->status == 124) { /* timeout(1) on the host */
		status = -ETIMEDOUT;
		detail = xasprintf("timed out after %lldms on %s", (long long)ex->timeout_ms, ex->where);
	} else {
		status = (int)op->status;
		detail = xasprintf("exit status %d on %s", status, ex->where);
	}
	exec_finish(op, status, detail);
	free(detail);
}

static struct stage_host *stage_entry(struct ssh_stage *g, struct ssh_host *h)
{
	for (size_t i = 0; g != NULL && i < g->n_hosts; i++)
		if (g->hosts[i].h == h)
			return &g->hosts[i];
	return NULL;
}

static struct ssh_stage *stage_find(struct ssh_drv *d, const char *service, int revision)
{
	for (struct ssh_stage *g = d->stages; g != NULL; g = g->next)
		if (g->revision == revision && strcmp(g->service, service) == 0)
			return g;
	return NULL;
}

/* An instance's start once the staging of its revision (g, may be NULL) is over: without the
 * install hook where it passed on the host, failed where it failed, with it anywhere else. */
static void start_staged(struct ssh_drv *d, struct ssh_inst *in, struct ssh_stage *g)
{
	struct stage_host *e = stage_entry(g, in->h);
	if (in->stop_pending) {
		in->starting = false;
		inst_dead(d, in, "stopped before it started");
	} else if (e != NULL && e->state == SG_FAILED) {
		in->starting = false;
		inst_dead(d, in, e->cause);
	} else {
		start_from(in->h, in, e != NULL && e->state == SG_OK ? SPEC_HOOK_INSTALL + 1 : SPEC_HOOK_INSTALL);
	}
}

/* Stagings whose every host is done: the starts waiting for them go on, then cb says how it went. */
static void stages_ended(struct ssh_drv *d)
{
again:
	for (struct ssh_stage *g = d->stages; g != NULL && !d->closing; g = g->next) {
		if (g->reported || g->pending > 0)
			continue;
		g->reported = true;
		for (;;) { /* a start may end others (a lost host): look again each time */
			struct ssh_inst *in = d->insts;
			while (in != NULL && !(in->parked && in->revision == g->revision && strcmp(in->service, g->service) == 0))
				in = in->next;
			if (in == NULL)
				break;
			in->parked = false;
			start_staged(d, in, g);
		}
		int n[SG_SKIPPED + 1] = {0};
		const char *first = NULL;
		for (size_t i = 0; i < g->n_hosts; i++) {
			n[g->hosts[i].state]++;
			if (first == NULL && g->hosts[i].state == SG_FAILED)
				first = g->hosts[i].cause;
		}
		if (g->cb != NULL)
			g->cb(g->ctx, g->service, g->revision, g->version, n[SG_OK], n[SG_FAILED], n[SG_SKIPPED],
			      (int64_t)(uv_now(d->loop) - g->t0), first);
		goto again; /* cb may have changed the list */
	}
}

static bool service_known(struct ssh_drv *d, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot == NULL)
		return false;
	for (size_t i = 0; i < d->n_services; i++)
		if (strlen(d->services[i]) == (size_t)(dot - name) &&
		    strncmp(d->services[i], name, (size_t)(dot - name)) == 0)
			return true;
	return false;
}

/* A poll: "NAME PID START running|exited" per line. Instances of ours that do not run any more
 * are reported gone; running instances of our services that we do not know (left from before the
 * host was lost) are stopped, so a host that comes back never holds a duplicate. */
static void poll_text(struct ssh_host *h, const char *text)
{
	struct ssh_drv *d = h->d;
	for (struct ssh_inst *in = d->insts, *n; in != NULL; in = n) {
		n = in->next;
		if (in->h != h || in->dead || in->starting || in->stopping || (!in->started && !in->adopting))
			continue;
		if (in->started && uv_now(d->loop) - in->started_ms < SSH_SETTLE_MS)
			continue;
		char *name = inst_name(in->service, in->id);
		char *want = xasprintf("%s %d %" PRIu64 " running\n", name, in->pid, in->proc_start);
		bool alive = false;
		for (const char *p = text; *p;) {
			const char *e = strchr(p, '\n');
			size_t l = e ? (size_t)(e - p + 1) : strlen(p);
			if (l == strlen(want) && strncmp(p, want, l) == 0)
				alive = true;
			p += l;
		}
		if (alive && in->adopting) {
			in->adopting = false;
			in->started = true;
			report(d, true, in->service, in->id, in->pid, NULL);
		} else if (!alive) {
			char *cause =
			    in->adopting
				? xstrdup("gone while the daemon was down")
				: xasprintf("exited (status unknown; rollout host logs --name %s)", name);
			inst_dead(d, in, cause);
			free(cause);
		}
		free(want);
		free(name);
	}
	for (const char *p = text; *p;) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p + 1) : strlen(p);
		char name[256], state[16];
		int pid;
		uint64_t start;
		char *line = xstrndup(p, l);
		if (sscanf(line, "%255s %d %" SCNu64 " %15s", name, &pid, &start, state) == 4 &&
		    strcmp(state, "running") == 0 && service_known(d, name)) {
			bool ours = false;
			for (struct ssh_inst *in = d->insts; in != NULL && !ours; in = in->next) {
				char *nm = inst_name(in->service, in->id);
				ours = in->h == h && strcmp(nm, name) == 0;
				free(nm);
			}
			if (!ours)
				issue_stop(d, h, NULL, name, SIGTERM, 10000);
		}
		free(line);
		p += l;
	}
}

static void on_poll_done(struct ssh_op *op)
{
	op->h->polling = false;
	poll_text(op->h, op->out ? op->out : "");
}

/* A watch session's output so far: each complete snapshot (lines, then "end") is a poll. */
static void watch_data(struct ssh_op *op)
{
	for (;;) {
		char *end = op->out == NULL ? NULL : strstr(op->out, "end\n");
		while (end != NULL && end != op->out && end[-1] != '\n')
			end = strstr(end + 1, "end\n");
		if (end == NULL)
			return;
		size_t n = (size_t)(end - op->out);
		char *block = xstrndup(op->out, n);
		n += 4;
		memmove(op->out, op->out + n, op->n_out - n + 1);
		op->n_out -= n;
		if (!op->h->d->closing)
			poll_text(op->h, block);
		free(block);
	}
}

static void exec_result(struct ssh_op *op);

static void op_result(struct ssh_op *op)
{
	struct ssh_host *h = op->h;
	if (op->kind == OP_EXEC) {
		exec_result(op);
		return;
	}
	bool conn_fail = op->timed_out || op->status == 255;
	if (op->kind == OP_POLL)
		h->polling = conn_fail ? false : h->polling;
	if (op->kind == OP_WATCH) {
		h->watching = false;
		if (!conn_fail)
			return; /* ended (a new binary?): the next tick starts another */
	}
	if (conn_fail && !op->retry && h->state != H_LOST &&
	    (op->kind == OP_START || op->kind == OP_STOP || op->kind == OP_POLL || op->kind == OP_HOOK ||
	     op->kind == OP_WATCH || op->kind == OP_STAGE)) {
		/* One failed session (a ControlMaster that went away) does not make a host lost: a fresh
		 * connection decides, then the session runs again (start and stop are idempotent). */
		struct ssh_op *again = op_new(h, op->kind, op->in, xstrdup(op->remote));
		again->retry = true;
		again->timeout_ms = op->timeout_ms;
		again->hook = op->hook;
		again->sg = op->sg;
		again->sgi = op->sgi;
		op->sg = NULL;
		if (op->kind == OP_WATCH)
			h->watching = true;
		if (op->input != NULL) {
			again->input = xmalloc(op->n_input);
			memcpy(again->input, op->input, op->n_input);
			again->n_input = op->n_input;
		}
		again->next = h->queue;
		h->queue = again;
		if (h->queue_tail == NULL)
			h->queue_tail = again;
		if (h->state == H_READY)
			host_check(h);
		return;
	}
	if (conn_fail) {
		bool key =
		    op->err != NULL && (strstr(op->err, "Host key verification failed") != NULL ||
					strstr(op->err, "REMOTE HOST IDENTIFICATION HAS CHANGED") != NULL);
		bool was = h->key_failed;
		h->key_failed = key || (h->key_failed && op->kind == OP_CHECK && h->lost);
		char *why = op->timed_out ? xstrdup("ssh timed out")
			    : key	  ? xstrdup("the host's key is not the one in known_hosts")
					  : first_line(op->err, op->n_err, "ssh failed");
		/* Found whenever it is: also on the re-check of a host already lost as unreachable,
		 * whose instances were reported gone before and so carry no such cause. */
		if (key && !was)
			report_host_key(h->d, h, why);
		if ((op->kind == OP_START || op->kind == OP_HOOK) && op->in != NULL)
			op->in->starting = false;
		host_lost(h, why);
		op_abandon(op, why);
		if (op->in != NULL && !op->in->dead) {
			char *cause = xasprintf("%s: %s@%s:%d: %s",
						key ? "host key verification failed" : "host unreachable",
						h->user, h->host, h->port, why);
			inst_dead(h->d, op->in, cause);
			free(cause);
		}
		free(why);
		return;
	}
	switch (op->kind) {
	case OP_CHECK:
		on_check_done(op);
		break;
	case OP_COPY:
		on_copy_done(op, op->status == 0);
		break;
	case OP_START:
		on_start_done(op);
		break;
	case OP_STOP:
		on_stop_done(op);
		break;
	case OP_POLL:
		on_poll_done(op);
		break;
	case OP_HOOK:
		on_hook_done(op);
		break;
	case OP_STAGE:
		on_stage_done(op);
		break;
	case OP_WATCH:
	case OP_EXEC:
		break;
	}
}

/* ---- the poll timer ---- */

static void on_poll_tick(uv_timer_t *t)
{
	struct ssh_drv *d = t->data;
	for (struct ssh_host *h = d->hosts; h != NULL; h = h->next) {
		bool has = false;
		for (struct ssh_inst *in = d->insts; in != NULL && !has; in = in->next)
			has = in->h == h;
		if (h->state == H_LOST) {
			host_check(h); /* back? then the next poll converges it */
			continue;
		}
		/* One long session per host streams its state (rollout host watch). */
		if (h->state == H_READY && !h->watching) {
			h->watching = true;
			struct ssh_op *w = op_new(h, OP_WATCH, NULL,
						  xstrdup(SSH_PRELUDE "exec \"$R/bin/rollout\" host watch"));
			w->timeout_ms = SSH_WATCH_SILENCE_MS;
			host_enqueue(h, w);
		}
		(void)has;
	}
}

/* ---- the table ---- */

static int ssh_start(struct drv *base, const struct drv_start *req)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return -EBADF;
	if (req->service == NULL || req->tmpl == NULL || req->tmpl->n_command == 0 || req->target == NULL)
		return -EINVAL;
	if (inst_find(d, req->service, req->id) != NULL)
		return -EEXIST;
	struct ssh_host *h = host_get(d, req->target, req->ssh_accept_new, true);
	struct ssh_inst *in = inst_new(d, h, req->service, req->id);
	in->revision = req->revision;
	const struct spec_template *t = req->tmpl;
	char *name = inst_name(req->service, req->id);
	char port[16];
	snprintf(port, sizeof port, "%d", req->port);
	struct sbuf b = {0};
	sb_add(&b, SSH_PRELUDE "exec \"$R/bin/rollout\" host start --name");
	sb_word(&b, name);
	sb_add(&b, " --port");
	sb_word(&b, port);
	if (t->workdir != NULL) {
		sb_add(&b, " --workdir");
		sb_word(&b, t->workdir);
	}
	sb_add(&b, req->systemd ? " --env-stdin --systemd --" : " --env-stdin --");
	for (size_t i = 0; i < t->n_command; i++)
		sb_word(&b, t->command[i]);
	free(name);
	in->start_cmd = b.p;
	for (int k = 0; k < SPEC_HOOK__COUNT; k++)
		if (t->n_hooks[k] > 0)
			in->hook[k] = hook_cmd(t->hooks[k], t->n_hooks[k], t->version, port,
					       req->target->host, req->service);
	/* The environment goes over stdin, never on a command line: values may be secrets. */
	struct sbuf env = {0};
	for (size_t i = 0; i < t->n_env; i++) {
		sb_add(&env, t->env[i].name);
		sb_add(&env, "=");
		sb_add(&env, t->env[i].value ? t->env[i].value : "");
		env.n++; /* keep the NUL as the separator */
	}
	if (env.n > 0) {
		in->start_env = env.p;
		in->n_start_env = env.n;
	} else {
		free(env.p);
	}
	in->starting = true;
	struct ssh_stage *g = stage_find(d, req->service, req->revision);
	if (g != NULL && !g->reported) {
		in->parked = true; /* stages_ended goes on with it */
		return 0;
	}
	start_staged(d, in, g);
	return 0;
}

static int ssh_stop(struct drv *base, const char *service, uint64_t id, int signo, int64_t grace_ms)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return -EBADF;
	struct ssh_inst *in = inst_find(d, service, id);
	if (in == NULL) {
		report(d, false, service, id, 0, "not running");
		return 0;
	}
	if (in->stopping || in->stop_pending)
		return 0;
	if (in->parked) {
		in->parked = false;
		in->starting = false;
		inst_dead(d, in, "stopped before it started");
		return 0;
	}
	if (in->starting) {
		in->stop_pending = true;
		in->stop_signo = signo;
		in->stop_grace_ms = grace_ms;
		return 0;
	}
	char *name = inst_name(service, id);
	issue_stop(d, in->h, in, name, signo, grace_ms);
	free(name);
	return 0;
}

static int ssh_adopt(struct drv *base, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	(void)base, (void)service, (void)id, (void)pid, (void)proc_start;
	return -ESRCH; /* the host is needed: drv_ssh_adopt_on */
}

int drv_ssh_adopt_on(struct drv *base, const struct spec_target *t, const char *service, uint64_t id, int pid,
		     uint64_t proc_start)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return -EBADF;
	if (t == NULL || pid <= 0)
		return -ESRCH;
	if (inst_find(d, service, id) != NULL)
		return -EEXIST;
	struct ssh_host *h = host_get(d, t, false, true);
	struct ssh_inst *in = inst_new(d, h, service, id);
	in->pid = pid;
	in->proc_start = proc_start;
	in->adopting = true;
	if (!h->polling) {
		h->polling = true;
		host_enqueue(
		    h, op_new(h, OP_POLL, NULL, xstrdup(SSH_PRELUDE "exec \"$R/bin/rollout\" host status")));
	}
	return 0;
}

/* Runs req->argv on the host from its rollout directory, with PORT and HOST set, under timeout(1)
 * when the host has it; the session itself is killed SSH_EXEC_SLACK_MS after the timeout. */
static int ssh_exec(struct drv *base, const struct drv_exec *req, drv_exec_cb cb, void *arg, struct drv_req **out)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return -EBADF;
	if (req == NULL || req->target == NULL || req->argv == NULL || req->n_argv == 0 || req->argv[0] == NULL ||
	    cb == NULL || out == NULL)
		return -EINVAL;
	struct ssh_host *h = host_get(d, req->target, req->ssh_accept_new, true);
	struct drv_req *ex = xcalloc(1, sizeof *ex);
	ex->cb = cb;
	ex->arg = arg;
	ex->where = xasprintf("%s@%s:%d", h->user, h->host, h->port);
	ex->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 1000;
	char num[32];
	struct sbuf b = {0};
	sb_add(&b, SSH_PRELUDE "mkdir -p \"$R\" && cd \"$R\" && PORT=");
	snprintf(num, sizeof num, "%d", req->port);
	char *q = drv_ssh_quote(num);
	sb_add(&b, q);
	free(q);
	sb_add(&b, " HOST=");
	q = drv_ssh_quote(req->host != NULL ? req->host : h->host);
	sb_add(&b, q);
	free(q);
	sb_add(&b, " && export PORT HOST && if command -v timeout >/dev/null 2>&1; then exec timeout -k 1");
	snprintf(num, sizeof num, "%lld.%03lld", (long long)(ex->timeout_ms / 1000), (long long)(ex->timeout_ms % 1000));
	sb_word(&b, num);
	for (size_t i = 0; i < req->n_argv && req->argv[i] != NULL; i++)
		sb_word(&b, req->argv[i]);
	sb_add(&b, "; else exec");
	for (size_t i = 0; i < req->n_argv && req->argv[i] != NULL; i++)
		sb_word(&b, req->argv[i]);
	sb_add(&b, "; fi");
	struct ssh_op *op = op_new(h, OP_EXEC, NULL, b.p);
	op->timeout_ms = ex->timeout_ms + SSH_EXEC_SLACK_MS;
	op->ex = ex;
	ex->op = op;
	*out = ex;
	if (h->lost) { /* a lost host fails at once: a probe never waits for it to come back */
		char *why = xasprintf("host unreachable: %s", ex->where);
		exec_finish(op, -EHOSTUNREACH, why);
		free(why);
		op_free_now(op);
		return 0;
	}
	host_enqueue(h, op);
	return 0;
}

static void ssh_cancel(struct drv *base, struct drv_req *ex)
{
	(void)base;
	struct ssh_op *op = ex->op;
	if (op == NULL) { /* its result waits for delivery, which frees it */
		ex->cancelled = true;
		return;
	}
	op->ex = NULL;
	req_free(ex);
	if (op->spawned) {
		if (!op->exited)
			uv_process_kill(&op->proc, SIGKILL);
		return;
	}
	struct ssh_host *h = op->h; /* still in its host's queue */
	struct ssh_op *prev = NULL;
	for (struct ssh_op *o = h->queue; o != NULL; prev = o, o = o->next) {
		if (o != op)
			continue;
		if (prev != NULL)
			prev->next = o->next;
		else
			h->queue = o->next;
		if (h->queue_tail == o)
			h->queue_tail = prev;
		op_free_now(op);
		break;
	}
}

static int ssh_proc_info(struct drv *base, const char *service, uint64_t id, int *pid, uint64_t *proc_start)
{
	struct ssh_inst *in = inst_find((struct ssh_drv *)base, service, id);
	if (in == NULL || in->dead || !in->started)
		return -ENOENT;
	if (pid != NULL)
		*pid = in->pid;
	if (proc_start != NULL)
		*proc_start = in->proc_start;
	return 0;
}

static void drv_handle_closed(uv_handle_t *hd)
{
	struct ssh_drv *d = hd->data;
	d->open--;
	drv_maybe_free(d);
}

/* Stops watching (remote instances keep running); running sessions are killed. */
static void ssh_close(struct drv *base)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return;
	d->closing = true;
	for (struct report *r = d->reports, *n; r != NULL; r = n) {
		n = r->next;
		free(r->service);
		free(r->cause);
		free(r);
	}
	d->reports = d->reports_tail = NULL;
	for (struct drv_req *ex = d->ex_done, *n; ex != NULL; ex = n) {
		n = ex->next;
		req_free(ex);
	}
	d->ex_done = d->ex_done_tail = NULL;
	d->wait_head = d->wait_tail = NULL;
	for (struct ssh_host *h = d->hosts; h != NULL; h = h->next) {
		struct ssh_op *q = h->queue;
		h->queue = h->queue_tail = NULL;
		while (q != NULL) {
			struct ssh_op *n = q->next;
			op_free_now(q);
			q = n;
		}
	}
	while (d->insts != NULL) {
		struct ssh_inst *in = d->insts;
		d->insts = in->next;
		in->dead = true;
		inst_unref(in);
	}
	/* Running sessions: ssh is killed; their handles close as they complete. */
	for (struct ssh_op *op = d->running; op != NULL; op = op->rnext)
		uv_process_kill(&op->proc, SIGKILL);
	uv_close((uv_handle_t *)&d->defer, drv_handle_closed);
	uv_close((uv_handle_t *)&d->poll, drv_handle_closed);
}

static const struct drv_ops ssh_ops = {
    .name = "ssh",
    .start = ssh_start,
    .stop = ssh_stop,
    .adopt = ssh_adopt,
    .proc_info = ssh_proc_info,
    .close = ssh_close,
    .exec = ssh_exec,
    .cancel = ssh_cancel,
};

bool drv_ssh_host_lost(struct drv *base, const struct spec_target *t)
{
	if (base == NULL || base->ops != &ssh_ops || t == NULL)
		return false;
	struct ssh_host *h = host_get((struct ssh_drv *)base, t, false, false);
	return h != NULL && h->lost;
}

bool drv_ssh_host_key_failed(struct drv *base, const struct spec_target *t)
{
	if (base == NULL || base->ops != &ssh_ops || t == NULL)
		return false;
	struct ssh_host *h = host_get((struct ssh_drv *)base, t, false, false);
	return h != NULL && h->lost && h->key_failed;
}

void drv_ssh_check_lost(struct drv *base, const struct spec_target *t)
{
	if (base == NULL || base->ops != &ssh_ops || t == NULL || ((struct ssh_drv *)base)->closing)
		return;
	struct ssh_host *h = host_get((struct ssh_drv *)base, t, false, false);
	if (h != NULL && h->state == H_LOST)
		host_check(h);
}

void drv_ssh_set_poll_ms(struct drv *base, int64_t ms)
{
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (base->ops == &ssh_ops && ms > 0) {
		d->poll_ms = ms;
		uv_timer_start(&d->poll, on_poll_tick, (uint64_t)ms, (uint64_t)ms);
	}
}

void drv_ssh_set_parallel(struct drv *base, int n)
{
	if (base == NULL || base->ops != &ssh_ops || n <= 0)
		return;
	struct ssh_drv *d = (struct ssh_drv *)base;
	d->parallel = n;
	gate_pump(d);
}

int drv_ssh_stage(struct drv *base, const char *service, int revision, const struct spec_template *tmpl,
		  const struct spec_target *targets, size_t n_targets, bool accept_new, drv_stage_cb cb, void *ctx)
{
	if (base == NULL || base->ops != &ssh_ops || service == NULL || tmpl == NULL)
		return -EINVAL;
	struct ssh_drv *d = (struct ssh_drv *)base;
	if (d->closing)
		return -EBADF;
	size_t n = tmpl->n_hooks[SPEC_HOOK_INSTALL];
	char **argv = tmpl->hooks[SPEC_HOOK_INSTALL];
	if (n == 0 || n_targets == 0 || stage_find(d, service, revision) != NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strstr(argv[i], "{port}") != NULL)
			return 0; /* it is about one instance: it stays per instance */
	/* The stagings of other revisions of this service that ended are of no use any more. */
	for (struct ssh_stage **pp = &d->stages; *pp != NULL;) {
		struct ssh_stage *g = *pp;
		if (g->reported && strcmp(g->service, service) == 0) {
			*pp = g->next;
			stage_free(g);
		} else {
			pp = &g->next;
		}
	}
	struct ssh_stage *g = xcalloc(1, sizeof *g);
	g->service = xstrdup(service);
	g->revision = revision;
	g->version = xstrdup(tmpl->version != NULL ? tmpl->version : "");
	g->hosts = xcalloc(n_targets, sizeof *g->hosts);
	g->t0 = uv_now(d->loop);
	g->cb = cb;
	g->ctx = ctx;
	g->next = d->stages;
	d->stages = g;
	g->pending = 1; /* held until every session is queued: nothing ends inside this call */
	for (size_t i = 0; i < n_targets; i++) {
		struct ssh_host *h = host_get(d, &targets[i], accept_new, true);
		if (stage_entry(g, h) != NULL)
			continue; /* listed twice */
		size_t k = g->n_hosts++;
		g->hosts[k].h = h;
		if (h->lost) {
			g->hosts[k].state = SG_SKIPPED;
			continue;
		}
		g->hosts[k].state = SG_RUNNING;
		g->pending++;
		struct ssh_op *op = op_new(h, OP_STAGE, NULL, hook_cmd(argv, n, tmpl->version, "", h->host, service));
		op->sg = g;
		op->sgi = k;
		host_enqueue(h, op);
	}
	if (--g->pending == 0)
		uv_timer_start(&d->defer, on_defer, 0, 0);
	return 1;
}

/* What the host check prints for this very binary: its version line and its cksum. */
static char *local_want(const char *exe)
{
	char *q = drv_ssh_quote(exe);
	char *cmd = xasprintf("%s version 2>/dev/null; cksum <%s 2>/dev/null; true", q, q);
	free(q);
	FILE *p = popen(cmd, "r");
	free(cmd);
	if (p == NULL)
		return NULL;
	char *out = NULL;
	size_t n = 0;
	char buf[512];
	size_t r;
	while ((r = fread(buf, 1, sizeof buf, p)) > 0)
		append(&out, &n, buf, r);
	pclose(p);
	return out;
}

int drv_ssh_new(uv_loop_t *loop, const char *data_dir, const char *self_exe, const struct drv_callbacks *cb,
		struct drv **out)
{
	if (loop == NULL || data_dir == NULL || self_exe == NULL || cb == NULL || out == NULL)
		return -EINVAL;
	char *want = local_want(self_exe);
	if (want == NULL || strchr(want, '\n') == NULL) {
		free(want);
		return -ENOEXEC;
	}
	struct ssh_drv *d = xcalloc(1, sizeof *d);
	d->base.ops = &ssh_ops;
	d->base.cb = *cb;
	d->loop = loop;
	d->ctl_dir = xasprintf("%s/ssh", data_dir);
	mkdir(d->ctl_dir, 0700);
	d->self_exe = xstrdup(self_exe);
	const char *cfg = getenv("ROLLOUT_SSH_CONFIG");
	d->config = cfg != NULL && cfg[0] != '\0' ? xstrdup(cfg) : NULL;
	d->want = want;
	d->poll_ms = SSH_POLL_MS_DEFAULT;
	d->parallel = DRV_SSH_PARALLEL_DEFAULT;
	uv_timer_init(loop, &d->defer);
	uv_timer_init(loop, &d->poll);
	d->defer.data = d->poll.data = d;
	d->open = 2;
	uv_timer_start(&d->poll, on_poll_tick, (uint64_t)d->poll_ms, (uint64_t)d->poll_ms);
	*out = &d->base;
	return 0;
}
