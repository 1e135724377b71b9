/* rollout proxy: services and backends, the admin API handlers, signals and the main loop.
 * Forwarding itself is in http.c (HTTP mode) and tcp.c (TCP mode). */
#include "proxy/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/admin.h"
#include "proxy/pick.h"
#include "util/xmalloc.h"

uint64_t proxy_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- backends ---- */

static struct proxy_rev *rev_get(struct proxy_service *svc, int revision)
{
	for (struct proxy_rev *r = svc->revs; r; r = r->next)
		if (r->revision == revision)
			return r;
	struct proxy_rev *r = xcalloc(1, sizeof *r);
	r->revision = revision;
	r->next = svc->revs;
	svc->revs = r;
	return r;
}

void proxy_record(struct proxy_backend *be, int status, uint64_t us)
{
	proxy_counters_record(&be->c, status, us);
	proxy_counters_record(&be->rev->c, status, us);
}

static struct proxy_backend *backend_new(struct proxy_service *svc, const struct proxy_backend_conf *bc)
{
	struct proxy_backend *be = xcalloc(1, sizeof *be);
	be->svc = svc;
	svc->refs++;
	be->id = bc->id;
	be->revision = bc->revision;
	memcpy(be->addr, bc->addr, sizeof be->addr);
	be->sa = bc->sa;
	be->state = bc->state;
	be->weight = bc->weight > 0 ? bc->weight : 1;
	be->rev = rev_get(svc, bc->revision);
	return be;
}

/* Frees be once it is out of the set and unreferenced: taken out of svc->be. */
static void backend_maybe_free(struct proxy_backend *be)
{
	if (be->state != PROXY_REMOVED || be->refs > 0)
		return;
	struct proxy_service *svc = be->svc;
	for (size_t i = 0; i < svc->nbe; i++)
		if (svc->be[i] == be) {
			memmove(&svc->be[i], &svc->be[i + 1], (svc->nbe - i - 1) * sizeof *svc->be);
			svc->nbe--;
			break;
		}
	free(be);
	proxy_service_unref(svc);
}

void proxy_backend_unref(struct proxy_backend *be)
{
	be->refs--;
	backend_maybe_free(be);
}

struct proxy_backend *proxy_choose(struct proxy_service *svc, const uint64_t *skip, size_t nskip)
{
	struct proxy_cand cand[PROXY_MAX_BACKENDS];
	size_t n = svc->nbe < PROXY_MAX_BACKENDS ? svc->nbe : PROXY_MAX_BACKENDS;
	if (svc->removed)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct proxy_backend *be = svc->be[i];
		cand[i].load = be->inflight;
		cand[i].ok = be->state == PROXY_ACTIVE;
		cand[i].weight = (uint32_t)be->weight;
		for (size_t k = 0; k < nskip && cand[i].ok; k++)
			if (skip[k] == be->id)
				cand[i].ok = false;
	}
	int i = proxy_pick(cand, n, &svc->rr);
	return i < 0 ? NULL : svc->be[i];
}

/* ---- services ---- */

static void service_free(struct proxy_service *svc)
{
	struct proxy_rev *r = svc->revs, *next;
	for (; r; r = next) {
		next = r->next;
		free(r);
	}
	free(svc->be);
	free(svc->name);
	free(svc);
}

void proxy_service_unref(struct proxy_service *svc)
{
	if (--svc->refs == 0)
		service_free(svc);
}

static struct proxy_service *service_find(struct proxy *px, const char *name)
{
	for (struct proxy_service *s = px->services; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static void listener_closed(uv_handle_t *h)
{
	struct proxy_service *svc = h->data;
	free(h);
	proxy_service_unref(svc);
}

static void listener_close(struct proxy_service *svc)
{
	if (svc->listener == NULL)
		return;
	svc->listener->data = svc;
	uv_close((uv_handle_t *)svc->listener, listener_closed);
	svc->listener = NULL;
}

static void on_accept(uv_stream_t *server, int status)
{
	struct proxy_service *svc = server->data;
	if (status < 0 || svc->px->stopping)
		return;
	if (svc->px->nconns >= svc->px->lim.max_conns)
		proxy_refuse(svc, server);
	else if (svc->tcp)
		proxy_tcp_accept(svc, server);
	else
		proxy_http_accept(svc, server);
}

/* Opens a listener for svc at sa. Returns the handle (owned by svc, holding a reference) or NULL
 * with *err a negative errno. */
static uv_tcp_t *listener_open(struct proxy_service *svc, const struct sockaddr_storage *sa, int *err)
{
	uv_tcp_t *h = xmalloc(sizeof *h);
	uv_tcp_init(svc->px->loop, h);
	h->data = svc;
	svc->refs++;
	int rc = uv_tcp_bind(h, (const struct sockaddr *)sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)h, 1024, on_accept);
	if (rc != 0) {
		*err = rc;
		uv_close((uv_handle_t *)h, listener_closed);
		return NULL;
	}
	return h;
}

static void on_bind_retry(uv_timer_t *t);

/* Wall clock ms: what the admin API reports as "since" (the daemon shows it as a time of day). */
static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Binds svc's configured address. Bound: the listener moves there (one on an address configured
 * before closes). Not: svc keeps serving on what it had, remembers why and since when, and the
 * bind timer tries again. Returns 0 or the bind error. */
static int service_bind(struct proxy_service *svc)
{
	struct proxy *px = svc->px;
	if (svc->listener != NULL && strcmp(svc->bound, svc->listen) == 0) {
		svc->bind_err = 0;
		return 0;
	}
	int rc = 0;
	uv_tcp_t *l = listener_open(svc, &svc->listen_sa, &rc);
	if (l == NULL) {
		if (svc->bind_err == 0) {
			svc->bind_since = wall_ms();
			fprintf(stderr, "rollout proxy: service %s: listen %s: %s; trying again every %d ms\n", svc->name,
				svc->listen, uv_strerror(rc), PROXY_BIND_RETRY);
		}
		svc->bind_err = rc;
		if (!uv_is_active((uv_handle_t *)&px->bind_timer))
			uv_timer_start(&px->bind_timer, on_bind_retry, PROXY_BIND_RETRY, PROXY_BIND_RETRY);
		return rc;
	}
	if (svc->bind_err != 0)
		fprintf(stderr, "rollout proxy: service %s: listening on %s after %lld ms\n", svc->name, svc->listen,
			(long long)(wall_ms() - svc->bind_since));
	listener_close(svc);
	svc->listener = l;
	snprintf(svc->bound, sizeof svc->bound, "%s", svc->listen);
	svc->bind_err = 0;
	svc->bind_since = 0;
	return 0;
}

/* Every PROXY_BIND_RETRY while a service's address is not bound: tries each again; stops once
 * every one is bound. */
static void on_bind_retry(uv_timer_t *t)
{
	struct proxy *px = t->data;
	int left = 0;
	for (struct proxy_service *svc = px->services; svc && !px->stopping; svc = svc->next)
		if (svc->bind_err != 0)
			left += service_bind(svc) != 0;
	if (left == 0 || px->stopping)
		uv_timer_stop(t);
}

/* Leaves no new work for a backend that is not active; idle pooled connections close. */
static void backend_set_state(struct proxy_backend *be, enum proxy_state st)
{
	be->state = st;
	if (st != PROXY_ACTIVE)
		proxy_http_close_idle(be);
}

/* Makes svc's backend set exactly cfg's, atomically: backends keep their counters and pools when
 * id, address and revision are unchanged (state and weight change in place); others are removed
 * (still counted until idle). */
static void service_apply(struct proxy_service *svc, struct proxy_config *cfg)
{
	size_t old_n = svc->nbe;
	struct proxy_backend **old = svc->be;
	struct proxy_backend **nv = xcalloc(cfg->n + old_n + 1, sizeof *nv);
	size_t n = 0;
	int *kept = xcalloc(old_n + 1, sizeof *kept);
	for (size_t i = 0; i < cfg->n; i++) {
		struct proxy_backend_conf *bc = &cfg->v[i];
		struct proxy_backend *be = NULL;
		for (size_t j = 0; j < old_n; j++)
			if (!kept[j] && old[j]->state != PROXY_REMOVED && old[j]->id == bc->id &&
			    old[j]->revision == bc->revision && strcmp(old[j]->addr, bc->addr) == 0) {
				be = old[j];
				kept[j] = 1;
				break;
			}
		if (be == NULL) {
			be = backend_new(svc, bc);
		} else {
			if (be->state != bc->state)
				backend_set_state(be, bc->state);
			be->weight = bc->weight > 0 ? bc->weight : 1; /* not part of its identity */
		}
		nv[n++] = be;
	}
	/* the rest: removed, kept while connections still point at them */
	struct proxy_backend **gone = xcalloc(old_n + 1, sizeof *gone);
	size_t ngone = 0;
	for (size_t j = 0; j < old_n; j++) {
		if (kept[j])
			continue;
		nv[n++] = old[j];
		gone[ngone++] = old[j];
	}
	svc->be = nv;
	svc->nbe = n;
	svc->tcp = cfg->tcp;
	free(old);
	free(kept);
	for (size_t k = 0; k < ngone; k++) {
		backend_set_state(gone[k], PROXY_REMOVED);
		backend_maybe_free(gone[k]);
	}
	free(gone);
}

static void service_delete(struct proxy *px, struct proxy_service *svc)
{
	struct proxy_service **pp = &px->services;
	while (*pp != svc)
		pp = &(*pp)->next;
	*pp = svc->next;
	svc->removed = 1;
	listener_close(svc);
	/* a copy: freeing backends edits svc->be */
	size_t n = svc->nbe;
	struct proxy_backend **v = xcalloc(n + 1, sizeof *v);
	memcpy(v, svc->be, n * sizeof *v);
	svc->refs++;
	for (size_t i = 0; i < n; i++) {
		if (v[i]->state == PROXY_REMOVED)
			continue;
		backend_set_state(v[i], PROXY_REMOVED);
		backend_maybe_free(v[i]);
	}
	free(v);
	proxy_service_unref(svc); /* the copy's hold */
	proxy_service_unref(svc); /* configured */
}

/* ---- admin API ---- */

static json_t *err_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *err_json(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return json_pack("{s:s}", "error", msg);
}

static const char *state_name(enum proxy_state s)
{
	return s == PROXY_ACTIVE ? "active" : "draining";
}

/* {"addr":..., "bound":true} or {"addr":..., "bound":false, "error":"address already in use",
 * "since":MS[, "serving":OLD]}. */
static json_t *listener_json(const struct proxy_service *svc)
{
	json_t *o = json_pack("{s:s,s:b}", "addr", svc->listen, "bound", svc->bind_err == 0 && svc->listener != NULL);
	if (svc->bind_err != 0) {
		json_object_set_new(o, "error", json_string(uv_strerror(svc->bind_err)));
		json_object_set_new(o, "since", json_integer(svc->bind_since));
		if (svc->listener != NULL && svc->bound[0])
			json_object_set_new(o, "serving", json_string(svc->bound));
	}
	return o;
}

static json_t *service_json(struct proxy_service *svc)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "name", svc->name, "listen", svc->listen, "protocol",
			      svc->tcp ? "tcp" : "http", "listener", listener_json(svc));
	json_t *bs = json_array();
	for (size_t i = 0; i < svc->nbe; i++) {
		struct proxy_backend *be = svc->be[i];
		json_array_append_new(bs, json_pack("{s:I,s:i,s:s,s:s,s:i,s:b}", "id", (json_int_t)be->id,
						    "revision", be->revision, "addr", be->addr, "state",
						    state_name(be->state), "weight", be->weight, "removed",
						    be->state == PROXY_REMOVED));
	}
	json_object_set_new(o, "backends", bs);
	return o;
}

static json_t *stats_json(struct proxy_service *svc)
{
	json_t *bs = json_array();
	json_t *revs = json_object();
	for (struct proxy_rev *r = svc->revs; r; r = r->next) {
		json_t *ro = json_object();
		proxy_counters_json(&r->c, ro);
		json_object_set_new(ro, "inflight", json_integer(0));
		char key[16];
		snprintf(key, sizeof key, "%d", r->revision);
		json_object_set_new(revs, key, ro);
	}
	for (size_t i = 0; i < svc->nbe; i++) {
		struct proxy_backend *be = svc->be[i];
		json_t *o = json_pack("{s:I,s:i,s:s,s:s,s:i,s:b,s:i,s:i}", "id", (json_int_t)be->id, "revision",
				      be->revision, "addr", be->addr, "state", state_name(be->state), "weight",
				      be->weight, "removed", be->state == PROXY_REMOVED, "inflight", (int)be->inflight,
				      "idle", (int)be->nidle);
		proxy_counters_json(&be->c, o);
		json_array_append_new(bs, o);
		char key[16];
		snprintf(key, sizeof key, "%d", be->revision);
		json_t *ro = json_object_get(revs, key);
		json_int_t cur = json_integer_value(json_object_get(ro, "inflight"));
		json_object_set_new(ro, "inflight", json_integer(cur + be->inflight));
	}
	return json_pack("{s:s,s:o,s:o}", "service", svc->name, "backends", bs, "revisions", revs);
}

/* PUT /v1/services/NAME */
static int admin_put(struct proxy *px, const char *name, const char *body, size_t len, json_t **reply)
{
	struct proxy_config cfg;
	char err[256];
	if (px->stopping) {
		*reply = err_json("the proxy is stopping");
		return 503;
	}
	if (proxy_config_parse(body, len, &cfg, err, sizeof err) != 0) {
		*reply = err_json("%s", err);
		return 400;
	}
	struct proxy_service *svc = service_find(px, name);
	int created = svc == NULL;
	if (created) {
		svc = xcalloc(1, sizeof *svc);
		svc->px = px;
		svc->name = xstrdup(name);
		svc->refs = 1;
		svc->listen[0] = '\0';
	}
	if (strcmp(svc->listen, cfg.listen) != 0) {
		/* Kept even when it cannot be bound now (another program holds it): the proxy tries
		 * again until it can, and says so in the service's "listener". */
		snprintf(svc->listen, sizeof svc->listen, "%s", cfg.listen);
		svc->listen_sa = cfg.listen_sa;
		service_bind(svc);
	}
	if (created) {
		svc->next = px->services;
		px->services = svc;
	}
	service_apply(svc, &cfg);
	proxy_config_free(&cfg);
	*reply = service_json(svc);
	return created ? 201 : 200;
}

/* Splits "/v1/services/NAME[/rest]" into name and rest; NULL when path is not under it. */
static const char *service_path(const char *path, char *name, size_t cap)
{
	const char *pre = "/v1/services/";
	if (strncmp(path, pre, strlen(pre)) != 0)
		return NULL;
	const char *s = path + strlen(pre);
	const char *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);
	if (n == 0 || n >= cap)
		return NULL;
	memcpy(name, s, n);
	name[n] = '\0';
	return e ? e : "";
}

static int admin_handle(void *ctx, const char *method, const char *path, const char *body, size_t len, json_t **reply)
{
	struct proxy *px = ctx;
	char name[256];
	if (strcmp(path, "/v1/health") == 0) {
		if (strcmp(method, "GET") != 0)
			goto bad_method;
		int n = 0, unbound = 0;
		for (struct proxy_service *s = px->services; s; s = s->next) {
			n++;
			unbound += s->bind_err != 0;
		}
		*reply = json_pack("{s:s,s:s,s:i,s:i,s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "status",
				   px->stopping ? "stopping" : "ok", "boot_id", px->boot_id, "pid", (int)getpid(),
				   "services", n, "unbound_listeners", unbound, "stopping", px->stopping, "connections", (json_int_t)px->nconns,
				   "max_connections", (json_int_t)px->lim.max_conns, "refused_connections",
				   (json_int_t)px->refused, "head_bytes", (json_int_t)px->head_bytes, "head_budget",
				   (json_int_t)px->lim.head_budget, "heads_evicted", (json_int_t)px->heads_evicted);
		return 200;
	}
	if (strcmp(path, "/v1/services") == 0) {
		if (strcmp(method, "GET") != 0)
			goto bad_method;
		json_t *a = json_array();
		for (struct proxy_service *s = px->services; s; s = s->next)
			json_array_append_new(a, service_json(s));
		*reply = json_pack("{s:o}", "services", a);
		return 200;
	}
	const char *rest = service_path(path, name, sizeof name);
	if (rest == NULL) {
		*reply = err_json("no such path: %s", path);
		return 404;
	}
	struct proxy_service *svc = service_find(px, name);
	if (rest[0] == '\0') {
		if (strcmp(method, "PUT") == 0)
			return admin_put(px, name, body, len, reply);
		if (strcmp(method, "GET") == 0 && svc) {
			*reply = service_json(svc);
			return 200;
		}
		if (strcmp(method, "DELETE") == 0) {
			if (svc)
				service_delete(px, svc);
			*reply = json_pack("{s:s}", "deleted", name);
			return svc ? 200 : 404;
		}
		if (svc == NULL)
			goto no_service;
		goto bad_method;
	}
	if (svc == NULL)
		goto no_service;
	if (strcmp(rest, "/stats") == 0) {
		if (strcmp(method, "GET") != 0)
			goto bad_method;
		*reply = stats_json(svc);
		return 200;
	}
	unsigned long long id;
	int pos = 0;
	if (sscanf(rest, "/backends/%llu/close%n", &id, &pos) == 1 && rest[pos] == '\0') {
		if (strcmp(method, "POST") != 0)
			goto bad_method;
		int closed = 0;
		for (size_t i = 0; i < svc->nbe; i++) {
			struct proxy_backend *be = svc->be[i];
			if (be->id != id)
				continue;
			closed += (int)be->inflight;
			be->refs++; /* closing may free it */
			proxy_http_close_idle(be);
			proxy_http_close_all(be);
			proxy_tcp_close_all(be);
			proxy_backend_unref(be);
			break;
		}
		*reply = json_pack("{s:i}", "closed", closed);
		return 200;
	}
	*reply = err_json("no such path: %s", path);
	return 404;
no_service:
	*reply = err_json("no such service: %s", name);
	return 404;
bad_method:
	*reply = err_json("method %s not allowed on %s", method, path);
	return 405;
}

/* ---- lifecycle ---- */

static void stop_now(struct proxy *px)
{
	proxy_admin_close(px->admin);
	px->admin = NULL;
	uv_stop(px->loop);
}

void proxy_conn_gone(struct proxy *px)
{
	px->nconns--;
	if (px->stopping && px->nconns == 0)
		stop_now(px);
}

static void on_stop_timeout(uv_timer_t *t)
{
	stop_now(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct proxy *px = s->data;
	(void)signum;
	if (px->stopping)
		return;
	fprintf(stderr, "rollout proxy: stopping: %llu connections to finish\n", (unsigned long long)px->nconns);
	px->stopping = 1;
	uv_timer_stop(&px->bind_timer);
	for (struct proxy_service *svc = px->services; svc; svc = svc->next) {
		listener_close(svc);
		for (size_t i = 0; i < svc->nbe; i++)
			proxy_http_close_idle(svc->be[i]);
	}
	proxy_http_stop(px);
	uv_timer_start(&px->stop_timer, on_stop_timeout, PROXY_STOP_GRACE, 0);
	if (px->nconns == 0)
		stop_now(px);
}

static void make_boot_id(char *out, size_t cap)
{
	unsigned char r[16] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) {
		uint64_t t = proxy_now_us() ^ ((uint64_t)getpid() << 32);
		memcpy(r, &t, sizeof t);
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < sizeof r && 2 * i + 2 < cap; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

int proxy_main(const char *admin_path, const struct proxy_limits *lim)
{
	struct proxy px = {0};
	px.lim = *lim;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	px.loop = uv_default_loop();
	px.t_head = PROXY_HEAD_TIMEOUT;
	px.t_idle = PROXY_IDLE_TIMEOUT;
	px.t_connect = PROXY_CONNECT_TIMEOUT;
	px.t_response = PROXY_RESPONSE_TIMEOUT;
	const char *tv = getenv("ROLLOUT_PROXY_TIMEOUTS");
	unsigned long long th, ti, tc, tr;
	if (tv && sscanf(tv, "%llu,%llu,%llu,%llu", &th, &ti, &tc, &tr) == 4 && th && ti && tc && tr) {
		px.t_head = th;
		px.t_idle = ti;
		px.t_connect = tc;
		px.t_response = tr;
	}
	make_boot_id(px.boot_id, sizeof px.boot_id);
	int rc = proxy_admin_new(px.loop, admin_path, admin_handle, &px, &px.admin);
	if (rc != 0) {
		fprintf(stderr, "rollout proxy: admin socket %s: %s%s\n", admin_path, uv_strerror(rc),
			rc == -EADDRINUSE ? " (another proxy answers there)" : "");
		return 1;
	}
	uv_signal_init(px.loop, &px.sigterm);
	uv_signal_init(px.loop, &px.sigint);
	px.sigterm.data = px.sigint.data = &px;
	uv_signal_start(&px.sigterm, on_signal, SIGTERM);
	uv_signal_start(&px.sigint, on_signal, SIGINT);
	uv_timer_init(px.loop, &px.stop_timer);
	px.stop_timer.data = &px;
	uv_unref((uv_handle_t *)&px.stop_timer);
	uv_timer_init(px.loop, &px.bind_timer);
	px.bind_timer.data = &px;
	fprintf(stderr, "rollout proxy: admin on %s (pid %d, boot %s)\n", admin_path, (int)getpid(), px.boot_id);
	uv_run(px.loop, UV_RUN_DEFAULT);
	if (px.nconns == 0) {
		/* free what is left, so leak checkers see a clean exit */
		while (px.services)
			service_delete(&px, px.services);
		uv_close((uv_handle_t *)&px.sigterm, NULL);
		uv_close((uv_handle_t *)&px.sigint, NULL);
		uv_close((uv_handle_t *)&px.stop_timer, NULL);
		uv_close((uv_handle_t *)&px.bind_timer, NULL);
		uv_run(px.loop, UV_RUN_DEFAULT);
		uv_loop_close(px.loop);
	}
	fprintf(stderr, "rollout proxy: stopped\n");
	return 0;
}
