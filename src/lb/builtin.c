/* The `builtin` load balancer: the daemon's client of `rollout proxy`. Starts the proxy detached
 * when nothing answers on its admin socket, pushes each service's backend set (PUT, only when it
 * changed or the proxy restarted), and polls stats to confirm that draining backends are idle. */
#include "lb/lb.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/http1.h"
#include "util/log.h"
#include "util/xmalloc.h"

#define TICK_MS 100          /* stats polling of services with draining backends */
#define HEALTH_MS 1000       /* how often the proxy's boot id is checked */
#define SPAWN_BACKOFF_MS 2000 /* at most one start of the proxy per this long */
#define REQ_TIMEOUT_MS 3000
#define MAX_REPLY (4 * 1024 * 1024)

struct bsvc {
	struct bsvc *next;
	char *name;
	char listen[64];
	char protocol[8]; /* "http" or "tcp" */
	struct lb_backend *v;
	unsigned char *reported; /* v[i] was reported drained (while it stays draining) */
	int *inflight;           /* v[i] draining: its in-flight count at the latest poll, -1 before one */
	size_t n;
	uint64_t gen, acked;     /* set version wanted, and the last one the proxy confirmed */
	uint64_t failed_gen;     /* a push of this version was refused (logged once) */
	int pushing, polling, deleted, reading;
	bool problem;            /* a problem was reported (the next success reports it gone) */
	char unbound[300];       /* the listener is not bound: what was reported ("" when bound) */
	uint64_t listener_at;    /* while unbound: when its state was last asked for */
	int asking;              /* a GET of the service's listener state is out */
};

struct lb_builtin {
	struct lb lb;
	uv_loop_t *loop;
	char *admin_path, *exe, *log_path;
	uv_timer_t tick;
	struct bsvc *svcs;
	char boot_id[64];
	int up, health_busy, closing, nreqs, tick_closed;
	uint64_t last_health, last_spawn;
};

struct breq;
typedef void (*breq_done)(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len);

/* One admin request on its own connection (Connection: close): connect, write, read to EOF. */
struct breq {
	uv_pipe_t pipe;
	uv_connect_t conn;
	uv_write_t w;
	uv_timer_t timer;
	struct lb_builtin *b;
	char *out;
	char *in;
	size_t in_len, in_cap;
	breq_done done;
	char *svc;
	uint64_t gen;
	int handles, finished;
};

static void breq_freed(uv_handle_t *h)
{
	struct breq *r = h->data;
	if (--r->handles > 0)
		return;
	struct lb_builtin *b = r->b;
	free(r->out);
	free(r->in);
	free(r->svc);
	free(r);
	b->nreqs--;
	if (b->closing && b->nreqs == 0 && b->tick_closed) {
		free(b->admin_path);
		free(b->exe);
		free(b->log_path);
		free(b);
	}
}

/* Completes r once: status is the HTTP status, or a negative errno when there was no reply. */
static void breq_finish(struct breq *r, int status)
{
	if (r->finished)
		return;
	r->finished = 1;
	const char *body = "";
	size_t blen = 0;
	if (status == 0) {
		struct http1_header hs[64];
		struct http1_parser p;
		struct http1_msg m;
		http1_parser_init(&p, HTTP1_RESPONSE, hs, 64);
		int n = http1_parse(&p, r->in ? r->in : "", r->in_len, &m);
		if (n <= 0) {
			status = -EPROTO;
		} else {
			status = m.status;
			body = r->in + n;
			blen = r->in_len - (size_t)n;
			if (m.body == HTTP1_BODY_LENGTH && m.content_length < blen)
				blen = (size_t)m.content_length;
		}
	}
	if (!r->b->closing)
		r->done(r->b, r, status, body, blen);
	uv_close((uv_handle_t *)&r->pipe, breq_freed);
	uv_close((uv_handle_t *)&r->timer, breq_freed);
}

static void breq_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct breq *r = h->data;
	(void)hint;
	if (r->in_cap - r->in_len < 4096)
		xgrow((void **)&r->in, &r->in_cap, r->in_len + 16384, 1);
	*buf = uv_buf_init(r->in + r->in_len, (unsigned)(r->in_cap - r->in_len));
}

static void breq_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct breq *r = s->data;
	(void)buf;
	if (n == UV_EOF) {
		breq_finish(r, 0);
	} else if (n < 0) {
		breq_finish(r, (int)n);
	} else {
		r->in_len += (size_t)n;
		if (r->in_len > MAX_REPLY)
			breq_finish(r, -EMSGSIZE);
	}
}

static void breq_written(uv_write_t *w, int status)
{
	struct breq *r = w->data;
	if (status < 0)
		breq_finish(r, status);
}

static void breq_connected(uv_connect_t *c, int status)
{
	struct breq *r = c->data;
	if (r->finished)
		return;
	if (status < 0) {
		breq_finish(r, status);
		return;
	}
	uv_buf_t buf = uv_buf_init(r->out, (unsigned)strlen(r->out));
	r->w.data = r;
	if (uv_write(&r->w, (uv_stream_t *)&r->pipe, &buf, 1, breq_written) != 0) {
		breq_finish(r, -EPIPE);
		return;
	}
	uv_read_start((uv_stream_t *)&r->pipe, breq_alloc, breq_read);
}

static void breq_timeout(uv_timer_t *t)
{
	breq_finish(t->data, -ETIMEDOUT);
}

/* Starts method path with an optional JSON body; done runs once from the loop. */
static void breq_start(struct lb_builtin *b, const char *method, const char *path, const char *body,
		       const char *svc, uint64_t gen, breq_done done)
{
	struct breq *r = xcalloc(1, sizeof *r);
	r->b = b;
	r->done = done;
	r->svc = svc ? xstrdup(svc) : NULL;
	r->gen = gen;
	r->out = xasprintf("%s %s HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\n\r\n%s",
			   method, path, body ? strlen(body) : 0, body ? body : "");
	uv_pipe_init(b->loop, &r->pipe, 0);
	uv_timer_init(b->loop, &r->timer);
	r->pipe.data = r->timer.data = r->conn.data = r;
	r->handles = 2;
	b->nreqs++;
	uv_timer_start(&r->timer, breq_timeout, REQ_TIMEOUT_MS, 0);
	uv_pipe_connect(&r->conn, &r->pipe, b->admin_path, breq_connected);
}

/* ---- services ---- */

static struct bsvc *svc_find(struct lb_builtin *b, const char *name)
{
	for (struct bsvc *s = b->svcs; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static void svc_free(struct bsvc *s)
{
	free(s->name);
	free(s->v);
	free(s->reported);
	free(s->inflight);
	free(s);
}

static void svc_unlink(struct lb_builtin *b, struct bsvc *s)
{
	struct bsvc **pp = &b->svcs;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	svc_free(s);
}

/* "/v1/services/NAME" with NAME percent-escaped. Caller frees. */
static char *svc_path(const char *name, const char *suffix)
{
	size_t n = strlen(name);
	char *esc = xmalloc(3 * n + 1), *p = esc;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.')
			*p++ = (char)ch;
		else
			p += sprintf(p, "%%%02X", ch);
	}
	*p = '\0';
	char *path = xasprintf("/v1/services/%s%s", esc, suffix);
	free(esc);
	return path;
}

static char *set_json(const struct bsvc *s)
{
	json_t *bs = json_array();
	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(bs, json_pack("{s:I,s:i,s:s,s:s,s:i}", "id", (json_int_t)s->v[i].id, "revision",
						    s->v[i].revision, "addr", s->v[i].addr, "state",
						    s->v[i].state == LB_DRAINING ? "draining" : "active", "weight",
						    s->v[i].weight));
	json_t *o = json_pack("{s:s,s:s,s:o}", "listen", s->listen, "protocol", s->protocol, "backends", bs);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static void step(struct lb_builtin *b);

/* Reports a problem of service s (error) or its end (NULL), on changes only. */
static void report_problem(struct lb_builtin *b, struct bsvc *s, const char *error)
{
	if (error == NULL && !s->problem)
		return;
	s->problem = error != NULL;
	if (b->lb.cb.problem != NULL)
		b->lb.cb.problem(b->lb.cb.ctx, s->name, error);
}

/* Reports the service's listener state from a reply carrying the service (PUT, GET), on
 * changes only. A reply without "listener" (a proxy older than it) counts as bound: such a proxy
 * refuses an address it cannot bind. */
static void listener_state(struct lb_builtin *b, struct bsvc *s, const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	json_t *l = json_object_get(root, "listener");
	char why[sizeof s->unbound] = "";
	if (json_is_object(l) && json_is_false(json_object_get(l, "bound"))) {
		char since[40] = "?", err[128];
		json_int_t ms = json_integer_value(json_object_get(l, "since"));
		if (ms > 0)
			log_timestamp(ms, false, since, sizeof since);
		const char *e = json_string_value(json_object_get(l, "error"));
		const char *serving = json_string_value(json_object_get(l, "serving"));
		log_one_line(e ? e : "cannot bind", 100, err, sizeof err);
		snprintf(why, sizeof why, "listener %s not bound: %s (since %s)%s%s", s->listen, err, since,
			 serving ? "; still serving on " : "", serving ? serving : "");
	}
	json_decref(root);
	if (strcmp(why, s->unbound) == 0)
		return;
	char q[4 * sizeof why];
	if (why[0])
		log_warn("lb", "service=%s msg=\"%s\"", s->name, log_quote(why, sizeof why, q, sizeof q));
	else
		log_info("lb", "service=%s msg=\"listener bound\" listen=%s", s->name, s->listen);
	snprintf(s->unbound, sizeof s->unbound, "%s", why);
	s->listener_at = uv_now(b->loop);
	if (b->lb.cb.listener != NULL && !b->closing) {
		char *name = xstrdup(s->name);
		b->lb.cb.listener(b->lb.cb.ctx, name, why[0] ? why : NULL);
		free(name);
	}
}

static void on_listener(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	struct bsvc *s = svc_find(b, r->svc);
	if (s == NULL)
		return;
	s->asking = 0;
	if (status == 200 && !s->deleted && s->acked == s->gen && r->gen == s->gen)
		listener_state(b, s, body, len);
}

static void on_put(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	struct bsvc *s = svc_find(b, r->svc);
	if (s == NULL)
		return;
	s->pushing = 0;
	if (status >= 200 && status < 300) {
		s->acked = r->gen;
		report_problem(b, s, NULL);
		if (r->gen == s->gen)
			listener_state(b, s, body, len);
		step(b);
	} else if (status >= 400 && status < 500) {
		if (s->failed_gen != r->gen) {
			char reply[256], q[512];
			log_one_line(body, len > 200 ? 200 : len, reply, sizeof reply);
			log_error("lb", "service=%s msg=\"the proxy refused the backend set\" status=%d reply=\"%s\"",
				  s->name, status, log_quote(body, len > 200 ? 200 : len, q, sizeof q));
			char why[300];
			snprintf(why, sizeof why, "the proxy refused the backend set (HTTP %d): %s", status, reply);
			report_problem(b, s, why);
		}
		s->failed_gen = r->gen;
		s->acked = r->gen; /* retrying the same set cannot help; the next change is pushed */
	} else {
		b->up = 0; /* no reply: the health check restarts the proxy */
	}
}

static void on_delete(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	(void)body;
	(void)len;
	struct bsvc *s = svc_find(b, r->svc);
	if (s == NULL || !s->deleted)
		return;
	s->pushing = 0;
	if (status == 200 || status == 404 || (status > 0 && !b->up))
		svc_unlink(b, s);
}

/* Reports every draining backend of s that the proxy has nothing in flight for, or does not know. */
static void on_stats(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	struct bsvc *s = svc_find(b, r->svc);
	if (s == NULL)
		return;
	s->polling = 0;
	if (s->deleted || s->gen != r->gen || s->acked != r->gen)
		return;
	json_t *root = NULL;
	if (status == 200)
		root = json_loadb(body, len, 0, NULL);
	else if (status != 404)
		return;
	json_t *bs = json_object_get(root, "backends");
	/* ids first: a report may change s */
	size_t nrep = 0;
	uint64_t *rep = xcalloc(s->n + 1, sizeof *rep);
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].state != LB_DRAINING || s->reported[i])
			continue;
		int idle = 1;
		size_t k;
		json_t *e;
		s->inflight[i] = 0; /* unknown to the proxy: nothing in flight */
		json_array_foreach(bs, k, e)
		{
			if ((uint64_t)json_integer_value(json_object_get(e, "id")) != s->v[i].id)
				continue;
			json_int_t inf = json_integer_value(json_object_get(e, "inflight"));
			if (inf > 0) {
				idle = 0;
				s->inflight[i] = inf > INT_MAX ? INT_MAX : (int)inf;
			}
		}
		if (idle) {
			s->reported[i] = 1;
			rep[nrep++] = s->v[i].id;
		}
	}
	json_decref(root);
	char *name = xstrdup(s->name);
	for (size_t i = 0; i < nrep && !b->closing; i++)
		if (b->lb.cb.drained)
			b->lb.cb.drained(b->lb.cb.ctx, name, rep[i]);
	free(name);
	free(rep);
}

/* Sums "requests" by class of one revision's stats object. */
static uint64_t class_sum(json_t *req)
{
	uint64_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(req, k, v)
	{
		(void)k;
		if (json_integer_value(v) > 0)
			n += (uint64_t)json_integer_value(v);
	}
	return n;
}

/* How much a revision (a stats key) matters to the daemon: in the current set beats newer. */
static long long rev_rank(const struct bsvc *s, const char *key)
{
	int rev = atoi(key);
	int in_set = 0;
	for (size_t i = 0; s != NULL && i < s->n; i++)
		in_set |= s->v[i].revision == rev;
	return (long long)in_set << 40 | (long long)(rev > 0 ? rev : 0);
}

/* Answers lb_read_stats from GET .../stats: per revision, requests, 5xx and latency buckets. */
static void on_rstats(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	struct bsvc *s = svc_find(b, r->svc);
	if (s != NULL)
		s->reading = 0;
	if (b->closing || b->lb.cb.stats == NULL)
		return;
	json_t *root = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *revs = json_object_get(root, "revisions");
	if (!json_is_object(revs)) {
		json_decref(root);
		b->lb.cb.stats(b->lb.cb.ctx, r->svc, status < 0 ? status : -EIO, NULL, 0);
		return;
	}
	/* The proxy keeps every revision a service ever had; the ones reported are those with a
	 * backend in the current set first, then the newest. */
	const char *keys[64];
	size_t nk = 0;
	const char *key;
	json_t *ro;
	json_object_foreach(revs, key, ro)
	{
		if (nk < sizeof keys / sizeof keys[0])
			keys[nk++] = key;
	}
	for (size_t i = 1; i < nk; i++)
		for (size_t j = i; j > 0 && rev_rank(s, keys[j]) > rev_rank(s, keys[j - 1]); j--) {
			const char *t = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = t;
		}
	struct analysis_rev v[ANALYSIS_MAX_REVS];
	size_t n = 0;
	for (size_t ki = 0; ki < nk && n < ANALYSIS_MAX_REVS; ki++) {
		key = keys[ki];
		ro = json_object_get(revs, key);
		struct analysis_rev *a = &v[n];
		memset(a, 0, sizeof *a);
		a->revision = atoi(key);
		if (a->revision <= 0)
			continue;
		json_t *req = json_object_get(ro, "requests");
		a->c.requests = class_sum(req);
		static const char *const cls[4] = {"2xx", "3xx", "4xx", "5xx"};
		for (int c = 0; c < 4; c++) {
			json_int_t k = json_integer_value(json_object_get(req, cls[c]));
			a->c.classes[c] = k > 0 ? (uint64_t)k : 0;
		}
		json_int_t e = json_integer_value(json_object_get(ro, "errors"));
		a->c.errors = e > 0 ? (uint64_t)e : 0;
		size_t k;
		json_t *pair;
		json_array_foreach(json_object_get(ro, "latency_buckets"), k, pair)
		{
			json_int_t le = json_integer_value(json_array_get(pair, 0));
			json_int_t cnt = json_integer_value(json_array_get(pair, 1));
			if (le >= 0 && cnt > 0)
				a->c.lat[analysis_hist_bucket((uint64_t)le)] += (uint64_t)cnt;
		}
		n++;
	}
	json_decref(root);
	b->lb.cb.stats(b->lb.cb.ctx, r->svc, 0, v, n);
}

/* Starts the proxy, detached (its own session; it outlives the daemon). */
static void spawn_proxy(struct lb_builtin *b)
{
	uv_process_t *p = xcalloc(1, sizeof *p);
	char *args[] = {b->exe, "proxy", "--admin", b->admin_path, NULL};
	int fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
				      {.flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = fd},
				      {.flags = fd >= 0 ? UV_INHERIT_FD : UV_IGNORE, .data.fd = fd}};
	uv_process_options_t o = {.file = b->exe, .args = args, .flags = UV_PROCESS_DETACHED, .stdio_count = 3,
				  .stdio = io};
	int rc = uv_spawn(b->loop, p, &o);
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		log_error("lb", "msg=\"cannot start the proxy\" exe=%s err=\"%s\"", b->exe, uv_strerror(rc));
		free(p);
		return;
	}
	log_info("lb", "msg=\"started the proxy\" pid=%d admin=%s", p->pid, b->admin_path);
	uv_unref((uv_handle_t *)p);
	uv_close((uv_handle_t *)p, (uv_close_cb)free);
}

static void on_health(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	(void)r;
	b->health_busy = 0;
	if (status != 200) {
		if (b->up) {
			log_warn("lb", "msg=\"the proxy does not answer\" admin=%s status=%d", b->admin_path, status);
			char why[300];
			snprintf(why, sizeof why, "the proxy does not answer on %s (%s)", b->admin_path,
				 status < 0 ? uv_strerror(status) : "bad status");
			for (struct bsvc *s = b->svcs; s; s = s->next)
				report_problem(b, s, why);
		}
		b->up = 0;
		uint64_t now = uv_now(b->loop);
		if (status == UV_ECONNREFUSED || status == UV_ENOENT || status == -ECONNREFUSED || status == -ENOENT) {
			if (b->last_spawn == 0 || now - b->last_spawn >= SPAWN_BACKOFF_MS) {
				b->last_spawn = now;
				spawn_proxy(b);
			}
		}
		b->last_health = 0; /* check again at the next tick */
		return;
	}
	json_t *root = json_loadb(body, len, 0, NULL);
	const char *boot = json_string_value(json_object_get(root, "boot_id"));
	if (boot && strcmp(boot, b->boot_id) != 0) {
		if (b->boot_id[0])
			log_info("lb", "msg=\"the proxy restarted: pushing every service again\" boot=%s", boot);
		snprintf(b->boot_id, sizeof b->boot_id, "%s", boot);
		for (struct bsvc *s = b->svcs; s; s = s->next)
			s->acked = 0;
	}
	json_decref(root);
	if (!b->up)
		for (struct bsvc *s = b->svcs; s; s = s->next)
			s->acked = 0;
	b->up = 1;
	step(b);
}

/* Starts whatever requests are due: health, pushes, deletes, stats polls. */
static void step(struct lb_builtin *b)
{
	if (b->closing)
		return;
	uint64_t now = uv_now(b->loop);
	if (!b->health_busy && (b->last_health == 0 || now - b->last_health >= HEALTH_MS)) {
		b->health_busy = 1;
		b->last_health = now ? now : 1;
		breq_start(b, "GET", "/v1/health", NULL, NULL, 0, on_health);
	}
	if (!b->up)
		return;
	for (struct bsvc *s = b->svcs; s; s = s->next) {
		if (s->pushing)
			continue;
		if (s->deleted) {
			char *path = svc_path(s->name, "");
			s->pushing = 1;
			breq_start(b, "DELETE", path, NULL, s->name, 0, on_delete);
			free(path);
			continue;
		}
		if (s->acked != s->gen) {
			char *path = svc_path(s->name, ""), *body = set_json(s);
			s->pushing = 1;
			breq_start(b, "PUT", path, body, s->name, s->gen, on_put);
			free(path);
			free(body);
			continue;
		}
		if (s->unbound[0] && !s->asking && now - s->listener_at >= HEALTH_MS) {
			/* the proxy tries to bind every second: ask as often whether it managed */
			char *path = svc_path(s->name, "");
			s->asking = 1;
			s->listener_at = now;
			breq_start(b, "GET", path, NULL, s->name, s->gen, on_listener);
			free(path);
		}
		int want = 0;
		for (size_t i = 0; i < s->n; i++)
			want |= s->v[i].state == LB_DRAINING && !s->reported[i];
		if (want && !s->polling) {
			char *path = svc_path(s->name, "/stats");
			s->polling = 1;
			breq_start(b, "GET", path, NULL, s->name, s->gen, on_stats);
			free(path);
		}
	}
}

static void on_tick(uv_timer_t *t)
{
	step(t->data);
}

/* ---- lb_ops ---- */

static int same_set(const struct bsvc *s, const char *listen, const char *protocol, const struct lb_backend *v,
		    size_t n)
{
	if (s->n != n || strcmp(s->listen, listen) != 0 || strcmp(s->protocol, protocol) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s->v[i].id != v[i].id || s->v[i].revision != v[i].revision || s->v[i].state != v[i].state ||
		    s->v[i].weight != (v[i].weight > 0 ? v[i].weight : 1) || strcmp(s->v[i].addr, v[i].addr) != 0)
			return 0;
	return 1;
}

static int builtin_set_backends(struct lb *lb, const char *service, const char *listen, const char *protocol,
				const struct lb_backend *v, size_t n)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	if (listen == NULL || strlen(listen) >= sizeof ((struct bsvc *)0)->listen)
		return -EINVAL;
	if (protocol == NULL)
		protocol = "http";
	if (strcmp(protocol, "http") != 0 && strcmp(protocol, "tcp") != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (strnlen(v[i].addr, sizeof v[i].addr) >= sizeof v[i].addr || v[i].weight < 0 ||
		    v[i].weight > 256)
			return -EINVAL;
	struct bsvc *s = svc_find(b, service);
	if (s != NULL && s->deleted) {
		/* deleted and set again before the DELETE went out: start over */
		s->deleted = 0;
		s->acked = 0;
	}
	if (s != NULL && same_set(s, listen, protocol, v, n))
		return 0;
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->name = xstrdup(service);
		s->next = b->svcs;
		b->svcs = s;
	}
	unsigned char *rep = xcalloc(n + 1, 1);
	int *inf = xcalloc(n + 1, sizeof *inf);
	for (size_t i = 0; i < n; i++) {
		inf[i] = -1;
		for (size_t j = 0; j < s->n; j++)
			if (s->v[j].id == v[i].id && s->v[j].state == LB_DRAINING && v[i].state == LB_DRAINING) {
				rep[i] = s->reported[j];
				inf[i] = s->inflight[j];
			}
	}
	free(s->v);
	free(s->reported);
	free(s->inflight);
	s->inflight = inf;
	s->v = xcalloc(n + 1, sizeof *s->v);
	memcpy(s->v, v, n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		if (s->v[i].weight == 0)
			s->v[i].weight = 1;
	s->reported = rep;
	s->n = n;
	snprintf(s->listen, sizeof s->listen, "%s", listen);
	snprintf(s->protocol, sizeof s->protocol, "%s", protocol);
	s->gen++;
	step(b);
	return 0;
}

static int builtin_remove_service(struct lb *lb, const char *service)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	struct bsvc *s = svc_find(b, service);
	if (s == NULL)
		return 0;
	s->deleted = 1;
	step(b);
	return 0;
}

static int builtin_read_stats(struct lb *lb, const char *service)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	struct bsvc *s = svc_find(b, service);
	if (s == NULL || s->deleted || !b->up || s->acked == 0)
		return -ENOENT;
	if (s->reading)
		return -EBUSY;
	s->reading = 1;
	char *path = svc_path(s->name, "/stats");
	breq_start(b, "GET", path, NULL, s->name, s->gen, on_rstats);
	free(path);
	return 0;
}

/* The in-flight count of the draining backend at the latest stats poll (at most TICK_MS old
 * while the proxy answers). */
static int builtin_inflight(struct lb *lb, const char *service, uint64_t id)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	struct bsvc *s = svc_find(b, service);
	for (size_t i = 0; s != NULL && i < s->n; i++)
		if (s->v[i].id == id && s->v[i].state == LB_DRAINING)
			return s->inflight[i] >= 0 ? s->inflight[i] : -ENOENT;
	return -ENOENT;
}

static void on_close_backend(struct lb_builtin *b, struct breq *r, int status, const char *body, size_t len)
{
	(void)b;
	char q[512];
	if (status == 200)
		log_info("lb", "service=%s backend=%llu msg=\"closed its connections\" reply=\"%s\"", r->svc,
			 (unsigned long long)r->gen, log_quote(body, len > 100 ? 100 : len, q, sizeof q));
	else
		log_warn("lb", "service=%s backend=%llu msg=\"cannot close its connections\" status=%d", r->svc,
			 (unsigned long long)r->gen, status);
}

/* POST .../backends/ID/close: the proxy cuts every connection to the backend at once. Nothing to
 * do while the proxy is down (a restarted proxy holds no connection) or the service is unknown. */
static int builtin_close_backend(struct lb *lb, const char *service, uint64_t id)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	struct bsvc *s = svc_find(b, service);
	if (s == NULL || s->deleted || !b->up)
		return 0;
	char suffix[64];
	snprintf(suffix, sizeof suffix, "/backends/%llu/close", (unsigned long long)id);
	char *path = svc_path(s->name, suffix);
	breq_start(b, "POST", path, NULL, s->name, id, on_close_backend);
	free(path);
	return 0;
}

static void tick_closed(uv_handle_t *h)
{
	struct lb_builtin *b = h->data;
	b->tick_closed = 1;
	if (b->nreqs == 0) {
		free(b->admin_path);
		free(b->exe);
		free(b->log_path);
		free(b);
	}
}

static void builtin_close(struct lb *lb)
{
	struct lb_builtin *b = (struct lb_builtin *)lb;
	b->closing = 1;
	while (b->svcs) {
		struct bsvc *s = b->svcs;
		b->svcs = s->next;
		svc_free(s);
	}
	uv_close((uv_handle_t *)&b->tick, tick_closed);
}

static const struct lb_ops builtin_ops = {
	.name = "builtin",
	.set_backends = builtin_set_backends,
	.remove_service = builtin_remove_service,
	.read_stats = builtin_read_stats,
	.close_backend = builtin_close_backend,
	.inflight = builtin_inflight,
	.close = builtin_close,
};

int lb_builtin_new(uv_loop_t *loop, const char *admin_path, const char *rollout_exe, const struct lb_callbacks *cb,
		   struct lb **out)
{
	if (admin_path == NULL || rollout_exe == NULL)
		return -EINVAL;
	struct lb_builtin *b = xcalloc(1, sizeof *b);
	b->lb.ops = &builtin_ops;
	b->lb.cb = *cb;
	b->loop = loop;
	b->admin_path = xstrdup(admin_path);
	b->exe = xstrdup(rollout_exe);
	const char *slash = strrchr(admin_path, '/');
	b->log_path = slash ? xasprintf("%.*s/proxy.log", (int)(slash - admin_path), admin_path) : xstrdup("proxy.log");
	uv_timer_init(loop, &b->tick);
	b->tick.data = b;
	uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
	step(b);
	*out = &b->lb;
	return 0;
}
