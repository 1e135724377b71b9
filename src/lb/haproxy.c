/* The `haproxy` load balancer: steers one backend of an external HAProxy (2.6 or later) through its
 * Runtime API, one command per connection. It reconciles what HAProxy shows (`show stat`) with the
 * daemon's backend set in cycles: servers are matched to instances by address, free slots (servers
 * in maintenance: `server-template` slots, or `add server` when none is left) take new instances,
 * drains are confirmed by scur and qcur reaching 0, and a restarted HAProxy is re-synced. docs/haproxy.md. */
#include "lb/lb.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "core/analysis.h"
#include "lb/hapi.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define POLL_MS 100         /* next cycle while a drain is unconfirmed */
#define IDLE_MS 1000        /* otherwise: notices restarts and changes made by hand */
#define RETRY_MS 500        /* after an error or while HAProxy does not answer */
#define REQ_TIMEOUT_MS 2000 /* one command, connect to last byte */
#define MAX_ANSWER (4 * 1024 * 1024)
#define ZERO_POLLS 2        /* polls in a row that must show a draining server idle */
#define DYN_PREFIX "rollout-"
#define MAX_REVS 16         /* revisions whose counters are kept */

/* One backend of the daemon's set, with what this balancer knows of its drain. */
struct hbe {
	struct lb_backend b;
	int zero_polls;
	bool reported;
};

/* One command of a cycle's plan. report is an id to report drained once the command succeeded. */
struct hcmd {
	char *line;
	enum hapi_cmd kind;
	uint64_t report;
};

/* The last counters seen of one server, to attribute what they gained to its instance's revision. */
struct hprev {
	char name[HAPI_NAME_MAX];
	int64_t stot, errs;
};

struct lb_haproxy {
	struct lb lb;
	uv_loop_t *loop;
	char *target;  /* unix socket path, or host:port */
	char *backend;
	bool tcp;
	struct sockaddr_storage sa;
	char *service; /* the one service steered through this backend */
	struct hbe *v;
	size_t n;
	uint64_t gen, cycle_gen; /* set version, and the one the running cycle planned from */
	uv_timer_t timer;
	bool busy, closing, timer_closed, up, ever_up, failed;
	int nreqs;
	struct hcmd *cmds;
	size_t ncmds, icmd, capcmds;
	uint64_t *rep; /* drained reports due at the end of the cycle */
	size_t nrep, caprep;
	struct hapi_info info;
	bool have_info;
	struct hapi_stat stat; /* the last one seen */
	struct hprev *prev;    /* counters per server at the last show stat */
	size_t nprev;
	bool counted;          /* prev holds a baseline */
	struct analysis_rev revs[MAX_REVS]; /* cumulative per revision, since this balancer began */
	size_t nrevs;
	bool stats_wanted;     /* a read_stats waits for its answer */
	char last_err[320];
};

struct hreq;
typedef void (*hreq_done)(struct lb_haproxy *x, int status, const char *text, size_t len);

/* One Runtime API command on its own connection: connect, write "cmd\n", read to EOF. */
struct hreq {
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	uv_connect_t conn;
	uv_write_t w;
	uv_timer_t timer;
	struct lb_haproxy *x;
	char *out, *in;
	size_t in_len, in_cap;
	hreq_done done;
	int handles;
	bool finished;
};

static void x_free(struct lb_haproxy *x)
{
	for (size_t i = 0; i < x->ncmds; i++)
		free(x->cmds[i].line);
	free(x->cmds);
	free(x->rep);
	free(x->v);
	hapi_stat_clear(&x->stat);
	free(x->prev);
	free(x->service);
	free(x->target);
	free(x->backend);
	free(x);
}

static void hreq_freed(uv_handle_t *h)
{
	struct hreq *r = h->data;
	if (--r->handles > 0)
		return;
	struct lb_haproxy *x = r->x;
	free(r->out);
	free(r->in);
	free(r);
	x->nreqs--;
	if (x->closing && x->nreqs == 0 && x->timer_closed)
		x_free(x);
}

/* Completes r once: status 0 with the whole answer, or a negative errno. */
static void hreq_finish(struct hreq *r, int status)
{
	if (r->finished)
		return;
	r->finished = true;
	if (!r->x->closing)
		r->done(r->x, status, r->in ? r->in : "", status == 0 ? r->in_len : 0);
	uv_close((uv_handle_t *)&r->h, hreq_freed);
	uv_close((uv_handle_t *)&r->timer, hreq_freed);
}

static void hreq_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct hreq *r = h->data;
	(void)hint;
	if (r->in_cap - r->in_len < 4096)
		xgrow((void **)&r->in, &r->in_cap, r->in_len + 16384, 1);
	*buf = uv_buf_init(r->in + r->in_len, (unsigned)(r->in_cap - r->in_len - 1));
}

static void hreq_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hreq *r = s->data;
	(void)buf;
	if (n == UV_EOF) {
		hreq_finish(r, 0);
	} else if (n < 0) {
		hreq_finish(r, (int)n);
	} else {
		r->in_len += (size_t)n;
		r->in[r->in_len] = '\0';
		if (r->in_len > MAX_ANSWER)
			hreq_finish(r, -EMSGSIZE);
	}
}

static void hreq_written(uv_write_t *w, int status)
{
	struct hreq *r = w->data;
	if (status < 0)
		hreq_finish(r, status);
}

static void hreq_connected(uv_connect_t *c, int status)
{
	struct hreq *r = c->data;
	if (r->finished)
		return;
	if (status < 0) {
		hreq_finish(r, status);
		return;
	}
	uv_buf_t buf = uv_buf_init(r->out, (unsigned)strlen(r->out));
	r->w.data = r;
	if (uv_write(&r->w, (uv_stream_t *)&r->h, &buf, 1, hreq_written) != 0) {
		hreq_finish(r, -EPIPE);
		return;
	}
	uv_read_start((uv_stream_t *)&r->h, hreq_alloc, hreq_read);
}

static void hreq_timeout(uv_timer_t *t)
{
	hreq_finish(t->data, -ETIMEDOUT);
}

/* Sends one command line (without its newline); done runs once, from the loop. */
static void hreq_start(struct lb_haproxy *x, const char *line, hreq_done done)
{
	struct hreq *r = xcalloc(1, sizeof *r);
	r->x = x;
	r->done = done;
	r->out = xasprintf("%s\n", line);
	if (x->tcp)
		uv_tcp_init(x->loop, &r->h.tcp);
	else
		uv_pipe_init(x->loop, &r->h.pipe, 0);
	uv_timer_init(x->loop, &r->timer);
	r->h.pipe.data = r->timer.data = r->conn.data = r;
	r->handles = 2;
	x->nreqs++;
	uv_timer_start(&r->timer, hreq_timeout, REQ_TIMEOUT_MS, 0);
	if (x->tcp) {
		/* on failure no callback comes: the timer, due at once, finishes it from the loop */
		if (uv_tcp_connect(&r->conn, &r->h.tcp, (const struct sockaddr *)&x->sa, hreq_connected) < 0)
			uv_timer_start(&r->timer, hreq_timeout, 0, 0);
	} else {
		uv_pipe_connect(&r->conn, &r->h.pipe, x->target, hreq_connected);
	}
}

/* ---- cycles ---- */

static void cycle_start(struct lb_haproxy *x);

static void on_timer(uv_timer_t *t)
{
	cycle_start(t->data);
}

static void schedule(struct lb_haproxy *x, uint64_t ms)
{
	if (!x->closing)
		uv_timer_start(&x->timer, on_timer, ms, 0);
}

static bool drains_pending(const struct lb_haproxy *x)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].b.state == LB_DRAINING && !x->v[i].reported)
			return true;
	return false;
}

static void cmds_reset(struct lb_haproxy *x)
{
	for (size_t i = 0; i < x->ncmds; i++)
		free(x->cmds[i].line);
	x->ncmds = x->icmd = 0;
	x->nrep = 0;
}

/* Ends the running cycle and plans the next: at once when the set changed meanwhile. */
static void cycle_end(struct lb_haproxy *x, bool error)
{
	x->busy = false;
	cmds_reset(x);
	if (x->gen != x->cycle_gen)
		schedule(x, 0);
	else if (error)
		schedule(x, RETRY_MS);
	else
		schedule(x, drains_pending(x) ? POLL_MS : IDLE_MS);
}

/* An error this cycle: logged when it differs from the last one, so a lasting fault logs once. */
static void cycle_fail(struct lb_haproxy *x, bool unreachable, const char *text)
{
	char msg[sizeof x->last_err];
	snprintf(msg, sizeof msg, "%s", text);
	for (char *q = msg; (q = strchr(q, '"')) != NULL;)
		*q = '\''; /* keeps the logfmt value one quoted string */
	if (unreachable && x->up)
		log_warn("lb", "service=%s haproxy=%s msg=\"HAProxy does not answer; retrying\" err=\"%s\"",
			 x->service ? x->service : "", x->target, msg);
	else if (!unreachable && strcmp(msg, x->last_err) != 0)
		log_error("lb", "service=%s haproxy=%s backend=%s msg=\"HAProxy refused a command or answered unexpectedly\" err=\"%s\"",
			  x->service ? x->service : "", x->target, x->backend, msg);
	bool changed = !x->failed || strcmp(msg, x->last_err) != 0;
	snprintf(x->last_err, sizeof x->last_err, "%s", msg);
	if (unreachable)
		x->up = false;
	x->failed = true;
	if (changed && x->lb.cb.problem && !x->closing && x->service != NULL) {
		char why[sizeof msg + 64];
		snprintf(why, sizeof why, "HAProxy %s: %s", unreachable ? "does not answer" : "refused", msg);
		x->lb.cb.problem(x->lb.cb.ctx, x->service, why);
	}
	if (x->stats_wanted) {
		x->stats_wanted = false;
		if (x->lb.cb.stats && !x->closing)
			x->lb.cb.stats(x->lb.cb.ctx, x->service, unreachable ? -ECONNREFUSED : -EPROTO, NULL, 0);
	}
	cycle_end(x, true);
}

static struct hbe *be_of(struct lb_haproxy *x, uint64_t id)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].b.id == id)
			return &x->v[i];
	return NULL;
}

static void deliver_reports(struct lb_haproxy *x)
{
	/* ids first: a report may call back into set_backends */
	size_t n = x->nrep;
	uint64_t *ids = xcalloc(n + 1, sizeof *ids);
	if (n > 0)
		memcpy(ids, x->rep, n * sizeof *ids);
	x->nrep = 0;
	for (size_t i = 0; i < n; i++) {
		struct hbe *e = be_of(x, ids[i]);
		if (e == NULL || e->b.state != LB_DRAINING || e->reported)
			continue;
		e->reported = true;
		if (x->lb.cb.drained && !x->closing)
			x->lb.cb.drained(x->lb.cb.ctx, x->service, ids[i]);
	}
	free(ids);
}

static void run_next(struct lb_haproxy *x);

static void on_cmd(struct lb_haproxy *x, int status, const char *text, size_t len)
{
	struct hcmd *c = &x->cmds[x->icmd];
	char err[300];
	if (status < 0) {
		snprintf(err, sizeof err, "%s: %s", c->line, uv_strerror(status));
		cycle_fail(x, true, err);
		return;
	}
	if (hapi_check_reply(c->kind, text, len, err, sizeof err) < 0) {
		char msg[sizeof x->last_err];
		snprintf(msg, sizeof msg, "%s: %s", c->line, err);
		if (c->kind == HAPI_CMD_DEL) {
			/* a deleted server that still has connections goes next time; not a failure */
			log_debug("lb", "backend=%s msg=\"cannot delete a server yet\" err=\"%s\"", x->backend, msg);
		} else {
			cycle_fail(x, false, msg);
			return;
		}
	}
	if (c->report) {
		xgrow((void **)&x->rep, &x->caprep, x->nrep + 1, sizeof *x->rep);
		x->rep[x->nrep++] = c->report;
	}
	x->icmd++;
	run_next(x);
}

/* Sends the next planned command; stops when the set changed since the plan was made, so nothing
 * planned from an old set (an enable, above all) goes out after the daemon changed its mind. */
static void run_next(struct lb_haproxy *x)
{
	if (x->gen != x->cycle_gen) {
		cycle_end(x, false);
		return;
	}
	if (x->icmd < x->ncmds) {
		hreq_start(x, x->cmds[x->icmd].line, on_cmd);
		return;
	}
	deliver_reports(x);
	if (x->failed && x->last_err[0]) {
		log_info("lb", "service=%s haproxy=%s backend=%s msg=\"in sync again\"", x->service ? x->service : "",
			 x->target, x->backend);
		if (x->lb.cb.problem && !x->closing && x->service != NULL)
			x->lb.cb.problem(x->lb.cb.ctx, x->service, NULL);
	}
	x->failed = false;
	x->last_err[0] = '\0';
	cycle_end(x, false);
}

static void add_cmd(struct lb_haproxy *x, enum hapi_cmd kind, uint64_t report, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add_cmd(struct lb_haproxy *x, enum hapi_cmd kind, uint64_t report, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *line = NULL;
	if (vasprintf(&line, fmt, ap) < 0)
		abort();
	va_end(ap);
	xgrow((void **)&x->cmds, &x->capcmds, x->ncmds + 1, sizeof *x->cmds);
	x->cmds[x->ncmds++] = (struct hcmd){.line = line, .kind = kind, .report = report};
}

static void add_report(struct lb_haproxy *x, uint64_t id)
{
	xgrow((void **)&x->rep, &x->caprep, x->nrep + 1, sizeof *x->rep);
	x->rep[x->nrep++] = id;
}

/* Splits "ip:port" or "[ip6]:port" into host and port for `set server ... addr H port P`. */
static int split_addr(const char *addr, char *host, size_t hlen, int *port)
{
	const char *c = strrchr(addr, ':');
	if (c == NULL || c == addr)
		return -EINVAL;
	const char *h = addr;
	size_t n = (size_t)(c - addr);
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return -EINVAL;
		h++;
		n -= 2;
	}
	if (n >= hlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF.:", h[i]))
			return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	char *end;
	long p = strtol(c + 1, &end, 10);
	if (*end != '\0' || c[1] == '\0' || p < 1 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

static int want_weight(const struct lb_backend *b)
{
	return b->weight > 0 ? b->weight : 1;
}

/* Decides this cycle's commands from what HAProxy shows (st) and the daemon's set, in an order
 * that never lowers capacity first: enable new instances, then drain, then retire what is unlisted. */
/* Matches servers to the set's backends by address: owner[j] is 1 + the index of the backend that
 * holds server j (0: none), match[i] 1 + the index of backend i's server. Of several servers with
 * one address, one not in maintenance wins. */
static void match_servers(const struct lb_haproxy *x, const struct hapi_stat *st, size_t *owner, size_t *match)
{
	size_t ns = st->n;
	for (size_t i = 0; i < x->n; i++) {
		const char *want = x->v[i].b.addr; /* as `show stat` prints it: ip:port */
		size_t best = 0;
		for (size_t j = 0; j < ns; j++) {
			if (owner[j] || strcmp(st->v[j].addr, want) != 0)
				continue;
			if (best == 0 || (st->v[best - 1].admin == HAPI_MAINT && st->v[j].admin != HAPI_MAINT))
				best = j + 1;
		}
		if (best) {
			owner[best - 1] = i + 1;
			match[i] = best;
		}
	}
}

static void plan(struct lb_haproxy *x, const struct hapi_stat *st)
{
	const char *B = x->backend;
	size_t ns = st->n;
	size_t *owner = xcalloc(ns + 1, sizeof *owner);
	size_t *match = xcalloc(x->n + 1, sizeof *match);
	match_servers(x, st, owner, match);
	/* 1. active: enabled, in a free slot or a new server when it has none */
	for (size_t i = 0; i < x->n; i++) {
		const struct lb_backend *b = &x->v[i].b;
		if (b->state != LB_ACTIVE)
			continue;
		int w = want_weight(b);
		if (match[i]) {
			const struct hapi_server *sv = &st->v[match[i] - 1];
			if (sv->weight >= 0 && sv->weight != w)
				add_cmd(x, HAPI_CMD_WEIGHT, 0, "set server %s/%s weight %d", B, sv->name, w);
			if (sv->admin != HAPI_READY)
				add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state ready", B, sv->name);
			continue;
		}
		char host[64];
		int port;
		if (split_addr(b->addr, host, sizeof host, &port) < 0) {
			log_error("lb", "backend=%s msg=\"cannot steer an address HAProxy would not take\" addr=%s", B,
				  b->addr);
			continue;
		}
		/* a free slot: in maintenance, held by no instance; an idle one first */
		size_t slot = 0;
		for (int pass = 0; pass < 2 && !slot; pass++)
			for (size_t j = 0; j < ns && !slot; j++)
				if (!owner[j] && st->v[j].admin == HAPI_MAINT &&
				    (pass == 1 || (st->v[j].scur == 0 && st->v[j].qcur == 0)))
					slot = j + 1;
		if (slot) {
			const char *S = st->v[slot - 1].name;
			owner[slot - 1] = i + 1;
			add_cmd(x, HAPI_CMD_ADDR, 0, "set server %s/%s addr %s port %d", B, S, host, port);
			add_cmd(x, HAPI_CMD_HEALTH, 0, "enable health %s/%s", B, S);
			if (st->v[slot - 1].weight >= 0 && st->v[slot - 1].weight != w)
				add_cmd(x, HAPI_CMD_WEIGHT, 0, "set server %s/%s weight %d", B, S, w);
			add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state ready", B, S);
			continue;
		}
		char name[HAPI_NAME_MAX];
		snprintf(name, sizeof name, DYN_PREFIX "%" PRIu64, b->id);
		bool exists = false;
		for (size_t j = 0; j < ns; j++)
			exists |= strcmp(st->v[j].name, name) == 0;
		if (exists)
			continue; /* retired below; reused next cycle */
		add_cmd(x, HAPI_CMD_ADD, 0, "add server %s/%s %s%s%s:%d", B, name, strchr(host, ':') ? "[" : "", host,
			strchr(host, ':') ? "]" : "", port);
		if (w != 1) /* a new server's weight is 1 */
			add_cmd(x, HAPI_CMD_WEIGHT, 0, "set server %s/%s weight %d", B, name, w);
		add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state ready", B, name);
	}
	/* 2. draining: drain, then maint once idle for ZERO_POLLS polls in a row, then report */
	for (size_t i = 0; i < x->n; i++) {
		struct hbe *e = &x->v[i];
		if (e->b.state != LB_DRAINING || e->reported)
			continue;
		const struct hapi_server *sv = match[i] ? &st->v[match[i] - 1] : NULL;
		if (sv == NULL || sv->admin == HAPI_MAINT) {
			add_report(x, e->b.id);
		} else if (sv->admin == HAPI_READY && !sv->down) {
			e->zero_polls = 0;
			add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state drain", B, sv->name);
		} else {
			/* DRAIN, or DOWN (which `show stat` shows over DRAIN): takes no new request. A DOWN
			 * one is set to drain again (idempotent) so that it stays out if it comes up. */
			if (sv->down)
				add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state drain", B, sv->name);
			if (sv->scur != 0 || sv->qcur != 0)
				e->zero_polls = 0;
			else if (++e->zero_polls >= ZERO_POLLS)
				add_cmd(x, HAPI_CMD_STATE, e->b.id, "set server %s/%s state maint", B, sv->name);
		}
	}
	/* 3. servers no backend holds: out of traffic; our own dynamic ones deleted once idle */
	for (size_t j = 0; j < ns; j++) {
		const struct hapi_server *sv = &st->v[j];
		if (owner[j])
			continue;
		if (sv->admin != HAPI_MAINT)
			add_cmd(x, HAPI_CMD_STATE, 0, "set server %s/%s state maint", B, sv->name);
		else if (strncmp(sv->name, DYN_PREFIX, strlen(DYN_PREFIX)) == 0 && sv->scur == 0 && sv->qcur == 0)
			add_cmd(x, HAPI_CMD_DEL, 0, "del server %s/%s", B, sv->name);
	}
	free(owner);
	free(match);
}

static bool in_set(const struct lb_haproxy *x, int revision)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].b.revision == revision)
			return true;
	return false;
}

/* The counters of revision rev, made (evicting a revision out of the set) when new; NULL if full. */
static struct analysis_counts *rev_counts(struct lb_haproxy *x, int rev)
{
	for (size_t i = 0; i < x->nrevs; i++)
		if (x->revs[i].revision == rev)
			return &x->revs[i].c;
	size_t k = x->nrevs;
	if (k == MAX_REVS) {
		for (size_t i = 0; i < x->nrevs; i++)
			if (!in_set(x, x->revs[i].revision) && (k == MAX_REVS || x->revs[i].revision < x->revs[k].revision))
				k = i;
		if (k == MAX_REVS)
			return NULL;
	} else {
		x->nrevs++;
	}
	memset(&x->revs[k], 0, sizeof x->revs[k]);
	x->revs[k].revision = rev;
	return &x->revs[k].c;
}

static uint64_t gain(int64_t now, int64_t before)
{
	/* a counter that went down belongs to a new process (or server): all of it is new */
	return (uint64_t)(now >= before ? now - before : now);
}

/* Adds what each server's counters gained since the last show stat to the revision of the
 * instance it holds now: requests (stot), errors (hrsp_5xx + eresp + econ), and the requests in
 * the latency bucket of the server's average response time (rtime: HAProxy keeps no histogram).
 * The first answer is only a baseline: the counters' past belongs to no known revision. */
static void account(struct lb_haproxy *x, const struct hapi_stat *st)
{
	size_t *owner = xcalloc(st->n + 1, sizeof *owner);
	size_t *match = xcalloc(x->n + 1, sizeof *match);
	match_servers(x, st, owner, match);
	struct hprev *np = xcalloc(st->n + 1, sizeof *np);
	for (size_t j = 0; j < st->n; j++) {
		const struct hapi_server *sv = &st->v[j];
		snprintf(np[j].name, sizeof np[j].name, "%s", sv->name);
		np[j].stot = sv->stot;
		np[j].errs = sv->hrsp_5xx + sv->eresp + sv->econ;
		const struct hprev *p = NULL;
		for (size_t k = 0; k < x->nprev && p == NULL; k++)
			if (strcmp(x->prev[k].name, sv->name) == 0)
				p = &x->prev[k];
		if (!x->counted || owner[j] == 0)
			continue;
		uint64_t dreq = gain(np[j].stot, p ? p->stot : 0), derr = gain(np[j].errs, p ? p->errs : 0);
		if (dreq == 0 && derr == 0)
			continue;
		struct analysis_counts *c = rev_counts(x, x->v[owner[j] - 1].b.revision);
		if (c == NULL)
			continue;
		c->requests += dreq;
		c->errors += derr;
		c->lat[analysis_hist_bucket((uint64_t)sv->rtime * 1000)] += dreq;
	}
	free(x->prev);
	x->prev = np;
	x->nprev = st->n;
	x->counted = true;
	free(owner);
	free(match);
}

/* Answers a pending read_stats: revisions of the set first, at most ANALYSIS_MAX_REVS. */
static void answer_stats(struct lb_haproxy *x)
{
	if (!x->stats_wanted)
		return;
	x->stats_wanted = false;
	struct analysis_rev v[ANALYSIS_MAX_REVS];
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < x->nrevs && n < ANALYSIS_MAX_REVS; i++)
			if (in_set(x, x->revs[i].revision) == (pass == 0))
				v[n++] = x->revs[i];
	if (x->lb.cb.stats && !x->closing)
		x->lb.cb.stats(x->lb.cb.ctx, x->service, 0, v, n);
}

static void on_stat(struct lb_haproxy *x, int status, const char *text, size_t len)
{
	char err[300];
	if (status < 0) {
		snprintf(err, sizeof err, "show stat: %s", uv_strerror(status));
		cycle_fail(x, true, err);
		return;
	}
	struct hapi_stat st;
	if (hapi_parse_stat(text, len, x->backend, &st, err, sizeof err) < 0) {
		cycle_fail(x, false, err);
		return;
	}
	hapi_stat_clear(&x->stat);
	x->stat = st;
	account(x, &x->stat);
	answer_stats(x);
	if (x->gen != x->cycle_gen) {
		cycle_end(x, false);
		return;
	}
	cmds_reset(x);
	plan(x, &x->stat);
	run_next(x);
}

static void forget_drains(struct lb_haproxy *x)
{
	for (size_t i = 0; i < x->n; i++)
		x->v[i].zero_polls = 0;
}

static void on_info(struct lb_haproxy *x, int status, const char *text, size_t len)
{
	char err[300];
	if (status < 0) {
		snprintf(err, sizeof err, "show info: %s", uv_strerror(status));
		cycle_fail(x, true, err);
		return;
	}
	struct hapi_info in;
	if (hapi_parse_info(text, len, &in, err, sizeof err) < 0) {
		cycle_fail(x, false, err);
		return;
	}
	if (x->have_info && (in.pid != x->info.pid || in.uptime_sec < x->info.uptime_sec)) {
		log_info("lb", "service=%s haproxy=%s msg=\"HAProxy restarted: re-syncing backend %s\" pid=%ld old_pid=%ld",
			 x->service ? x->service : "", x->target, x->backend, in.pid, x->info.pid);
		forget_drains(x);
	} else if (!x->up && x->ever_up) {
		log_info("lb", "service=%s haproxy=%s msg=\"HAProxy answers again: re-syncing backend %s\"",
			 x->service ? x->service : "", x->target, x->backend);
		forget_drains(x);
	}
	x->info = in;
	x->have_info = true;
	x->up = x->ever_up = true;
	char *cmd = xasprintf("show stat %s 4 -1", x->backend);
	hreq_start(x, cmd, on_stat);
	free(cmd);
}

/* Starts a cycle unless one runs (it notices a changed set by itself). */
static void cycle_start(struct lb_haproxy *x)
{
	if (x->busy || x->closing || x->service == NULL)
		return;
	uv_timer_stop(&x->timer);
	x->busy = true;
	x->cycle_gen = x->gen;
	hreq_start(x, "show info", on_info);
}

/* ---- lb_ops ---- */

static int haproxy_set_backends(struct lb *lb, const char *service, const char *listen, const char *protocol,
				const struct lb_backend *v,
				size_t n)
{
	struct lb_haproxy *x = (struct lb_haproxy *)lb;
	(void)listen;
	(void)protocol; /* haproxy.cfg decides its frontend mode */
	if (x->service != NULL && strcmp(x->service, service) != 0)
		return -EBUSY; /* one backend, one service */
	for (size_t i = 0; i < n; i++) {
		char host[64];
		int port;
		if (strnlen(v[i].addr, sizeof v[i].addr) >= sizeof v[i].addr ||
		    split_addr(v[i].addr, host, sizeof host, &port) < 0 || v[i].weight < 0 || v[i].weight > 256)
			return -EINVAL;
	}
	if (x->service == NULL)
		x->service = xstrdup(service);
	struct hbe *nv = xcalloc(n + 1, sizeof *nv);
	bool same = n == x->n;
	for (size_t i = 0; i < n; i++) {
		nv[i].b = v[i];
		struct hbe *old = be_of(x, v[i].id);
		if (old != NULL && old->b.state == v[i].state && strcmp(old->b.addr, v[i].addr) == 0) {
			nv[i].zero_polls = old->zero_polls;
			nv[i].reported = old->reported;
		}
		same = same && old != NULL && old->b.state == v[i].state && strcmp(old->b.addr, v[i].addr) == 0 &&
		       want_weight(&old->b) == want_weight(&v[i]);
	}
	free(x->v);
	x->v = nv;
	x->n = n;
	if (same)
		return 0;
	x->gen++;
	if (!x->busy)
		schedule(x, 0); /* from the loop, not from the caller's stack */
	return 0;
}

static int haproxy_remove_service(struct lb *lb, const char *service)
{
	struct lb_haproxy *x = (struct lb_haproxy *)lb;
	if (x->service == NULL || strcmp(x->service, service) != 0)
		return 0;
	/* an empty set: every server goes to maintenance */
	return haproxy_set_backends(lb, service, NULL, NULL, NULL, 0);
}

static int haproxy_read_stats(struct lb *lb, const char *service)
{
	struct lb_haproxy *x = (struct lb_haproxy *)lb;
	if (x->service == NULL || strcmp(x->service, service) != 0 || !x->counted)
		return -ENOENT;
	if (x->stats_wanted)
		return -EBUSY;
	x->stats_wanted = true;
	if (!x->busy)
		schedule(x, 0);
	return 0;
}

static void on_shutdown(struct lb_haproxy *x, int status, const char *text, size_t len)
{
	char err[300];
	if (status < 0)
		log_warn("lb", "haproxy=%s backend=%s msg=\"cannot shut down a drained server's sessions\" err=\"%s\"",
			 x->target, x->backend, uv_strerror(status));
	else if (hapi_check_reply(HAPI_CMD_SHUTDOWN, text, len, err, sizeof err) < 0)
		log_warn("lb", "haproxy=%s backend=%s msg=\"cannot shut down a drained server's sessions\" err=\"%s\"",
			 x->target, x->backend, err);
}

/* `shutdown sessions server B/S` for the server that holds backend id's address in the last
 * `show stat` (none known: nothing to cut). Outside the cycles: it changes no state they plan. */
static int haproxy_close_backend(struct lb *lb, const char *service, uint64_t id)
{
	struct lb_haproxy *x = (struct lb_haproxy *)lb;
	if (x->service == NULL || strcmp(x->service, service) != 0 || x->closing)
		return 0;
	const struct hbe *e = be_of(x, id);
	if (e == NULL)
		return 0;
	for (size_t j = 0; j < x->stat.n; j++) {
		if (strcmp(x->stat.v[j].addr, e->b.addr) != 0)
			continue;
		char *cmd = xasprintf("shutdown sessions server %s/%s", x->backend, x->stat.v[j].name);
		log_info("lb", "service=%s backend=%llu msg=\"drain timeout: %s\"", service, (unsigned long long)id, cmd);
		hreq_start(x, cmd, on_shutdown);
		free(cmd);
		break;
	}
	return 0;
}

static void timer_closed(uv_handle_t *h)
{
	struct lb_haproxy *x = h->data;
	x->timer_closed = true;
	if (x->nreqs == 0)
		x_free(x);
}

static void haproxy_close(struct lb *lb)
{
	struct lb_haproxy *x = (struct lb_haproxy *)lb;
	x->closing = true;
	uv_close((uv_handle_t *)&x->timer, timer_closed);
}

static const struct lb_ops haproxy_ops = {
	.name = "haproxy",
	.set_backends = haproxy_set_backends,
	.remove_service = haproxy_remove_service,
	.read_stats = haproxy_read_stats,
	.close_backend = haproxy_close_backend,
	.close = haproxy_close,
};

/* host:port with a literal IPv4 or [IPv6] address (no name lookup: it would block the loop). */
static int parse_tcp(const char *t, struct sockaddr_storage *sa)
{
	char host[64];
	int port;
	if (split_addr(t, host, sizeof host, &port) < 0)
		return -EINVAL;
	if (strchr(host, ':'))
		return uv_ip6_addr(host, port, (struct sockaddr_in6 *)sa) == 0 ? 0 : -EINVAL;
	return uv_ip4_addr(host, port, (struct sockaddr_in *)sa) == 0 ? 0 : -EINVAL;
}

int lb_haproxy_new(uv_loop_t *loop, const char *socket, const char *backend, const struct lb_callbacks *cb,
		   struct lb **out)
{
	if (socket == NULL || socket[0] == '\0' || !hapi_name_ok(backend))
		return -EINVAL;
	struct sockaddr_storage sa;
	memset(&sa, 0, sizeof sa);
	bool tcp = strchr(socket, '/') == NULL;
	if (tcp && parse_tcp(socket, &sa) < 0)
		return -EINVAL;
	if (!tcp && strlen(socket) >= sizeof ((struct sockaddr_un *)0)->sun_path)
		return -ENAMETOOLONG;
	struct lb_haproxy *x = xcalloc(1, sizeof *x);
	x->lb.ops = &haproxy_ops;
	x->lb.cb = *cb;
	x->loop = loop;
	x->target = xstrdup(socket);
	x->backend = xstrdup(backend);
	x->tcp = tcp;
	x->sa = sa;
	x->up = true; /* so that a first failure is logged */
	uv_timer_init(loop, &x->timer);
	x->timer.data = x;
	*out = &x->lb;
	return 0;
}
