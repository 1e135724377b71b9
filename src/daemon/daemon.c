/* The daemon's environment and event loop: one daemon per data directory, the store, the drivers,
 * the API; services are loaded and their instances re-adopted at start. */
#include "daemon/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/api.h"
#include "daemon/health.h"
#include "daemon/monitor.h"
#include "daemon/notify.h"
#include "driver/driver.h"
#include "lb/lb.h"
#include "store/store.h"
#include "util/log.h"
#include "util/sdnotify.h"
#include "util/xmalloc.h"

/* A safety net only: steps happen on observations and at the engine's next deadline. */
#define TICK_MS 1000
/* How long a write waits for another connection's lock: the loop must not stall on the store, a
 * busy store is a failed write retried by the probe. */
#define STORE_BUSY_MS 20
/* While the store takes no writes, a probe write this often. */
#define STORE_RETRY_MS 1000
/* The WAL is truncated after each rollout (svc.c) and every this many ticks. */
#define CKPT_TICKS 300

int64_t daemon_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct svc *daemon_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_svcs; i++)
		if (strcmp(d->svcs[i]->name, name) == 0)
			return d->svcs[i];
	return NULL;
}

const struct daemon_unloaded *daemon_find_unloaded(const struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_unloaded; i++)
		if (strcmp(d->unloaded[i].name, name) == 0)
			return &d->unloaded[i];
	return NULL;
}

void daemon_drop_unloaded(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_unloaded; i++) {
		if (strcmp(d->unloaded[i].name, name) == 0) {
			free(d->unloaded[i].name);
			free(d->unloaded[i].why);
			d->unloaded[i] = d->unloaded[--d->n_unloaded];
			return;
		}
	}
}

static void idle_cb(uv_idle_t *h)
{
	struct daemon *d = h->data;
	uv_idle_stop(h);
	/* A step may mark services dirty again (its own observations): they run next iteration. */
	for (size_t i = 0; i < d->n_svcs; i++)
		if (d->svcs[i]->dirty)
			svc_step(d->svcs[i]);
}

void daemon_dirty(struct svc *s)
{
	s->dirty = true;
	if (!s->d->stopping)
		uv_idle_start(&s->d->idle, idle_cb);
}

static void tick_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	for (size_t i = 0; i < d->n_svcs; i++)
		svc_step(d->svcs[i]);
	if (++d->ckpt_ticks >= CKPT_TICKS && !daemon_store_down(d)) {
		d->ckpt_ticks = 0;
		if (store_checkpoint(d->store) < 0)
			log_debug("store", "msg=\"checkpoint not finished\" err=\"%s\"",
				  store_errmsg(d->store));
	}
}

/* ---- the store's health ----------------------------------------------------------------------- */

bool daemon_store_down(const struct daemon *d) { return d->store_down_since != 0; }

json_t *daemon_store_json(const struct daemon *d)
{
	if (!daemon_store_down(d))
		return NULL;
	return json_pack("{s:I,s:s}", "since", (json_int_t)d->store_down_since, "error", d->store_error);
}

static void store_retry_cb(uv_timer_t *t);

void daemon_store_failed(struct daemon *d, const char *what)
{
	char w[sizeof d->store_what], err[sizeof d->store_error];
	snprintf(w, sizeof w, "%s", what != NULL ? what : d->store_what);
	memcpy(d->store_what, w, sizeof w);
	snprintf(err, sizeof err, "cannot %s: %s", w, store_errmsg(d->store));
	d->store_failures++;
	if (!daemon_store_down(d)) {
		d->store_down_since = daemon_now();
		d->store_failures_at_down = d->store_failures - 1;
		memcpy(d->store_first_error, err, sizeof err);
		log_error(
		    "store",
		    "msg=\"the store takes no writes: doing nothing until it does (retry every %d ms)\" "
		    "err=\"%s\"",
		    STORE_RETRY_MS, err);
		if (!d->stopping)
			uv_timer_start(&d->store_retry, store_retry_cb, STORE_RETRY_MS, STORE_RETRY_MS);
	} else if (strcmp(err, d->store_error) != 0) {
		log_warn("store", "msg=\"the store still takes no writes\" err=\"%s\"", err);
	}
	memcpy(d->store_error, err, sizeof err);
}

/* While the store is down: one write (the events that say it was), then every service's step. */
static void store_retry_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	int64_t now = daemon_now();
	char from[40], to[40], text[2 * sizeof d->store_error + 200];
	log_timestamp(d->store_down_since, true, from, sizeof from);
	log_timestamp(now, true, to, sizeof to);
	int n = snprintf(
	    text, sizeof text, "the store took no writes from %s to %s (%.1f s, %llu failed writes): %s",
	    from, to, (double)(now - d->store_down_since) / 1000,
	    (unsigned long long)(d->store_failures - d->store_failures_at_down), d->store_first_error);
	if (strcmp(d->store_first_error, d->store_error) != 0 && n > 0 && (size_t)n < sizeof text)
		snprintf(text + n, sizeof text - (size_t)n, "; last: %s", d->store_error);
	/* In each service's events, where `rollout events` shows it (daemon-wide without services). */
	int r = store_begin(d->store);
	for (size_t i = 0; r == 0 && i < d->n_svcs; i++)
		r = store_add_event(d->store, d->svcs[i]->name, now, "store_unavailable", 0, text, NULL);
	if (r == 0 && d->n_svcs == 0)
		r = store_add_event(d->store, NULL, now, "store_unavailable", 0, text, NULL);
	if (r == 0)
		r = store_commit(d->store);
	if (r < 0) {
		daemon_store_failed(d, NULL);
		store_rollback(d->store);
		return;
	}
	uv_timer_stop(t);
	d->store_down_since = 0;
	d->store_error[0] = '\0';
	log_info("store", "msg=\"the store takes writes again; resuming\" detail=\"%s\"", text);
	daemon_publish(d);
	for (size_t i = 0; i < d->n_svcs && !daemon_store_down(d); i++)
		svc_store_back(d->svcs[i]);
}

/* Event retention: all but the newest keep_events of each service go, at start and then every
 * PRUNE_MS (a failure is logged; the next round tries again). */
#define PRUNE_MS (10 * 60 * 1000)

static void prune_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	size_t n = 0;
	if (store_prune_events(d->store, (size_t)d->keep_events, &n) < 0)
		log_warn("store", "msg=\"cannot prune old events\" err=\"%s\"", store_errmsg(d->store));
	else if (n > 0)
		log_info("store", "msg=\"pruned old events\" deleted=%zu keep_per_service=%ld", n, d->keep_events);
}

/* ---- ports ------------------------------------------------------------------------------------ */

static bool port_taken(struct daemon *d, int port)
{
	for (size_t i = 0; i < d->n_svcs; i++) {
		const struct engine_state *st = &d->svcs[i]->st;
		for (size_t k = 0; k < st->n; k++)
			if (st->inst[k].port == port && st->inst[k].state != INST_GONE)
				return true;
	}
	/* Something else on the machine may hold it: try to bind. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int r = bind(fd, (struct sockaddr *)&a, sizeof a);
	close(fd);
	return r != 0;
}

int daemon_alloc_port(struct daemon *d)
{
	int span = d->port_hi - d->port_lo + 1;
	for (int i = 0; i < span; i++) {
		int p = d->port_lo + (d->port_next - d->port_lo + i) % span;
		if (!port_taken(d, p)) {
			d->port_next = p + 1 > d->port_hi ? d->port_lo : p + 1;
			return p;
		}
	}
	return -EADDRINUSE;
}

/* ---- events to subscribers -------------------------------------------------------------------- */

struct pub_ctx {
	struct daemon *d;
};

static json_t *event_json(int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst,
			  const char *text)
{
	return json_pack("{s:I,s:I,s:s?,s:s,s:I,s:s}", "id", (json_int_t)id, "ts", (json_int_t)ts, "service", service,
			 "kind", kind, "instance", (json_int_t)inst, "text", text);
}

static int publish_one(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst,
		       const char *text)
{
	struct daemon *d = ctx;
	d->published = id;
	json_t *j = event_json(id, service, ts, kind, inst, text);
	char *data = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	for (size_t i = 0; i < d->n_subs;) {
		struct api_req *req = d->subs[i];
		const char *want = api_req_data(req);
		if (want != NULL && (service == NULL || strcmp(want, service) != 0)) {
			i++;
			continue;
		}
		if (api_sse_send(req, id, kind, data) < 0) {
			api_sse_end(req);
			d->subs[i] = d->subs[--d->n_subs];
			continue;
		}
		i++;
	}
	free(data);
	return 0;
}

static int mark_cb(void *ctx, int64_t id, const char *service, int64_t ts, const char *kind, uint64_t inst,
		   const char *text)
{
	(void)service, (void)ts, (void)kind, (void)inst, (void)text;
	*(int64_t *)ctx = id;
	return 0;
}

/* Moves the published mark past every recorded event without sending any. */
static void skip_backlog(struct daemon *d)
{
	int64_t before;
	do {
		before = d->published;
		store_events(d->store, NULL, d->published, STORE_EVENTS_MAX, mark_cb, &d->published);
	} while (d->published != before);
}

void daemon_publish(struct daemon *d)
{
	if (d->n_subs == 0) {
		skip_backlog(d);
		return;
	}
	int64_t before;
	do {
		before = d->published;
		store_events(d->store, NULL, d->published, STORE_EVENTS_MAX, publish_one, d);
	} while (d->published != before);
}

/* ---- driver and balancer callbacks ------------------------------------------------------------ */

static void on_started(void *ctx, const char *service, uint64_t id, int pid)
{
	struct svc *s = daemon_find(ctx, service);
	if (s != NULL)
		svc_on_started(s, id, pid);
}

static void on_exited(void *ctx, const char *service, uint64_t id, const char *cause)
{
	struct svc *s = daemon_find(ctx, service);
	if (s != NULL)
		svc_on_exited(s, id, cause);
}

static void on_host_key(void *ctx, const char *user, const char *host, int port, const char *detail)
{
	struct daemon *d = ctx;
	log_error("driver", "host=%s@%s:%d msg=\"host key changed\" detail=\"%s\"", user, host, port,
		  detail ? detail : "");
	for (size_t i = 0; i < d->n_svcs; i++)
		svc_on_host_key(d->svcs[i], user, host, port, detail);
}

static void on_lb_problem(void *ctx, const char *service, const char *error)
{
	struct daemon *d = ctx;
	struct svc *s = daemon_find(d, service);
	if (s != NULL)
		svc_on_lb_problem(s, error);
}

static void on_lb_listener(void *ctx, const char *service, const char *why)
{
	struct svc *s = daemon_find(ctx, service);
	if (s != NULL)
		svc_on_lb_listener(s, why);
}

static void on_drained(void *ctx, const char *service, uint64_t id)
{
	struct svc *s = daemon_find(ctx, service);
	if (s != NULL)
		svc_on_drained(s, id);
}

struct drv *daemon_drv_ssh(struct daemon *d)
{
	if (d->drv_ssh == NULL && !d->stopping) {
		struct drv_callbacks dcb = {
		    .ctx = d, .started = on_started, .exited = on_exited, .host_key = on_host_key};
		int r = drv_ssh_new(d->loop, d->data, d->self_exe, &dcb, &d->drv_ssh);
		if (r < 0)
			log_error("driver", "msg=\"cannot make the ssh driver\" err=%d", r);
	}
	return d->drv_ssh;
}

struct lb *daemon_lb_builtin(struct daemon *d)
{
	if (d->lb_builtin == NULL && !d->stopping) {
		char *admin = xasprintf("%s/proxy.sock", d->data);
		struct lb_callbacks lcb = {.ctx = d, .drained = on_drained, .stats = monitor_on_stats,
				  .problem = on_lb_problem, .listener = on_lb_listener};
		int r = lb_builtin_new(d->loop, admin, d->self_exe, &lcb, &d->lb_builtin);
		if (r < 0) {
			log_error("lb", "msg=\"cannot start the builtin balancer\" err=%d", r);
			d->lb_builtin = NULL;
		}
		free(admin);
	}
	return d->lb_builtin;
}

struct lb *daemon_lb_haproxy(struct daemon *d, const char *socket, const char *backend)
{
	if (socket == NULL || backend == NULL || d->stopping)
		return NULL;
	for (size_t i = 0; i < d->n_lbh; i++)
		if (strcmp(d->lbh[i].socket, socket) == 0 && strcmp(d->lbh[i].backend, backend) == 0)
			return d->lbh[i].lb;
	struct lb_callbacks lcb = {.ctx = d, .drained = on_drained, .stats = monitor_on_stats,
				  .problem = on_lb_problem};
	struct lb *lb = NULL;
	int r = lb_haproxy_new(d->loop, socket, backend, &lcb, &lb);
	if (r < 0) {
		log_error("lb", "msg=\"cannot make the haproxy balancer\" socket=%s backend=%s err=%d", socket, backend, r);
		return NULL;
	}
	xgrow((void **)&d->lbh, &d->cap_lbh, d->n_lbh + 1, sizeof *d->lbh);
	d->lbh[d->n_lbh++] = (struct daemon_lbh){.socket = xstrdup(socket), .backend = xstrdup(backend), .lb = lb};
	return lb;
}

/* ---- start and stop --------------------------------------------------------------------------- */

static void shutdown_done(void *arg)
{
	(void)arg;
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void begin_shutdown(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_info("daemon", "msg=\"stopping; instances keep running\"");
	sdnotify_send("STOPPING=1");
	uv_timer_stop(&d->watchdog);
	uv_timer_stop(&d->tick);
	uv_timer_stop(&d->store_retry);
	uv_idle_stop(&d->idle);
	monitor_close(d->monitor);
	d->monitor = NULL;
	notify_free(d->notify);
	d->notify = NULL;
	for (size_t i = 0; i < d->n_subs; i++)
		api_sse_end(d->subs[i]);
	d->n_subs = 0;
	for (size_t i = 0; i < d->n_svcs; i++)
		svc_detach(d->svcs[i]);
	api_close(d->api, shutdown_done, NULL);
	d->api = NULL;
	drv_close(d->drv);
	d->drv = NULL;
	drv_close(d->drv_ssh);
	d->drv_ssh = NULL;
	lb_close(d->lb_none);
	d->lb_none = NULL;
	lb_close(d->lb_builtin);
	d->lb_builtin = NULL;
	for (size_t i = 0; i < d->n_lbh; i++) {
		lb_close(d->lbh[i].lb);
		free(d->lbh[i].socket);
		free(d->lbh[i].backend);
	}
	free(d->lbh);
	d->lbh = NULL;
	d->n_lbh = d->cap_lbh = 0;
	health_ctx_free(d->health);
	d->health = NULL;
	uv_close((uv_handle_t *)&d->tick, NULL);
	uv_close((uv_handle_t *)&d->prune, NULL);
	uv_close((uv_handle_t *)&d->store_retry, NULL);
	uv_close((uv_handle_t *)&d->idle, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void watchdog_cb(uv_timer_t *t)
{
	(void)t;
	sdnotify_send("WATCHDOG=1");
}

static void signal_cb(uv_signal_t *h, int signo)
{
	(void)signo;
	begin_shutdown(h->data);
}

/* One daemon per data directory: an exclusive lock on DATA/daemon.lock holding our pid. */
static int take_lock(struct daemon *d)
{
	char *path = xasprintf("%s/daemon.lock", d->data);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		fprintf(stderr,
			"rollout: cannot open %s: %s (the data directory must be writable by the daemon)\n",
			path, strerror(e));
		free(path);
		return -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		free(path);
		char buf[32] = {0};
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		(void)n;
		fprintf(stderr, "rollout: another daemon (pid %s) already runs on %s\n", buf[0] ? buf : "?", d->data);
		close(fd);
		return -EEXIST;
	}
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) < 0) {
		int e = errno;
		fprintf(stderr, "rollout: cannot write %s: %s\n", path, strerror(e));
		free(path);
		close(fd);
		return -e;
	}
	free(path);
	d->lock_fd = fd;
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* --socket-group: the socket becomes 0660 with that group, and DATA searchable by it (group
 * x bit, and the group, when DATA lacks it) so its members can reach the socket; nothing else in
 * DATA opens to them. */
static int share_socket(const char *data, const char *sock, const char *group)
{
	struct group *g = getgrnam(group);
	if (g == NULL) {
		fprintf(stderr, "rollout: --socket-group: no group '%s'\n", group);
		return -ENOENT;
	}
	struct stat st;
	const char *what = sock;
	int err = 0;
	if (chown(sock, (uid_t)-1, g->gr_gid) < 0 || chmod(sock, 0660) < 0 || stat(data, &st) < 0)
		err = errno;
	else if (st.st_gid != g->gr_gid && (st.st_mode & 0001) == 0 && chown(data, (uid_t)-1, g->gr_gid) < 0)
		err = errno, what = data;
	else if ((st.st_mode & 0010) == 0 && chmod(data, (st.st_mode & 07777) | 0010) < 0)
		err = errno, what = data;
	if (err != 0) { /* saved before fprintf can change errno */
		fprintf(stderr, "rollout: --socket-group %s: %s: %s\n", group, what, strerror(err));
		return -err;
	}
	return 0;
}

#define TOKEN_MAX 1024 /* bytes of a bearer token; a longer file is refused, never cut */

/* The bearer token: the first line of path, which only its owner may read. Returns it (the
 * caller wipes and frees it), or NULL with why in err. */
static char *read_token(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
			 S_ISREG(st.st_mode) ? "token file %s is readable by others (mode %04o): chmod 600 it"
					     : "token file %s is not a regular file",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	char buf[TOKEN_MAX + 2];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof buf && (k = read(fd, buf + n, sizeof buf - n)) > 0)
		n += (size_t)k;
	close(fd);
	size_t len = 0;
	while (len < n && buf[len] != '\n' && buf[len] != '\r')
		len++;
	char *t = NULL;
	if (len > TOKEN_MAX)
		snprintf(err, errlen, "the token in %s is longer than %d bytes", path, TOKEN_MAX);
	else if (len == 0)
		snprintf(err, errlen, "token file %s: the first line is empty", path);
	else {
		size_t bad = 0;
		while (bad < len && buf[bad] > ' ' && buf[bad] < 0x7f)
			bad++;
		if (bad < len)
			snprintf(err, errlen, "the token in %s holds a space or a control or non-ASCII byte",
				 path);
		else
			t = xstrndup(buf, len);
	}
	xwipe(buf, sizeof buf);
	return t;
}

/* Records a stored service that could not be loaded: logged, kept for the status, and an event
 * (load_failed) of the service. */
static void report_unloaded(struct daemon *d, const char *name, int err, const char *why)
{
	char quoted[600];
	snprintf(quoted, sizeof quoted, "%s", why);
	for (char *p = quoted; *p; p++)
		if (*p == '"' || *p == '\\')
			*p = '\'';
	log_error("daemon",
		  "service=%s msg=\"not loaded; the other services are. Apply a corrected spec to take it "
		  "over\" err=%d why=\"%s\"",
		  name, err, quoted);
	int64_t now = daemon_now();
	xgrow((void **)&d->unloaded, &d->cap_unloaded, d->n_unloaded + 1, sizeof *d->unloaded);
	d->unloaded[d->n_unloaded++] =
	    (struct daemon_unloaded){.name = xstrdup(name), .why = xstrdup(why), .since = now};
	char *text = xasprintf("not loaded at start: %s; apply a corrected spec to take it over", why);
	if (store_add_event(d->store, name, now, "load_failed", 0, text, NULL) < 0)
		log_warn("store", "service=%s msg=\"cannot record the load_failed event\" err=\"%s\"", name,
			 store_errmsg(d->store));
	free(text);
}

static int load_services(struct daemon *d)
{
	char **names = NULL;
	size_t n = 0;
	int r = store_list_services(d->store, &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct svc *s = NULL;
		char why[600] = "";
		r = svc_load(d, names[i], NULL, &s, why, sizeof why);
		if (r < 0) {
			/* One service that cannot be loaded never keeps the others (or the API) from
			 * starting: it is reported, and an apply of a corrected spec takes it over. */
			report_unloaded(d, names[i], r, why);
			continue;
		}
		xgrow((void **)&d->svcs, &d->cap_svcs, d->n_svcs + 1, sizeof *d->svcs);
		d->svcs[d->n_svcs++] = s;
		log_info("daemon", "service=%s msg=\"loaded\" instances=%zu revision=%d", s->name, s->st.n,
			 s->st.target_rev);
		daemon_dirty(s);
	}
	store_names_free(names, n);
	return 0;
}

int daemon_run(const struct daemon_opts *o)
{
	struct daemon env;
	struct daemon *d = &env;
	memset(d, 0, sizeof *d);
	d->lock_fd = -1;
	d->port_lo = o->port_lo;
	d->port_hi = o->port_hi;
	/* Start somewhere in the range, so that daemons on one machine rarely reach for the same port. */
	d->port_next = o->port_lo + (int)((unsigned)getpid() * 2654435761u % (unsigned)(o->port_hi - o->port_lo + 1));
	int r = mkdir_p(o->data_dir);
	if (r < 0) {
		fprintf(stderr, "rollout: cannot create %s: %s\n", o->data_dir, strerror(-r));
		return 2;
	}
	char real[PATH_MAX];
	if (realpath(o->data_dir, real) == NULL) {
		fprintf(stderr, "rollout: %s: %s\n", o->data_dir, strerror(errno));
		return 2;
	}
	d->data = xstrdup(real);
	d->self_exe = xstrdup(o->self_exe ? o->self_exe : "rollout");
	d->log_dir = xasprintf("%s/logs", d->data);
	mkdir_p(d->log_dir);
	if (take_lock(d) < 0) {
		free(d->data);
		free(d->log_dir);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	char *dbpath = xasprintf("%s/state.db", d->data);
	r = store_open(dbpath, &d->store);
	free(dbpath);
	if (r < 0) {
		fprintf(stderr, "rollout: cannot open the state: %s\n", store_errmsg(d->store));
		store_free(d->store);
		return 1;
	}
	store_set_busy_timeout(d->store, STORE_BUSY_MS);
	d->loop = xmalloc(sizeof *d->loop);
	uv_loop_init(d->loop);
	struct drv_callbacks dcb = {.ctx = d, .started = on_started, .exited = on_exited};
	drv_local_new(d->loop, d->data, &dcb, &d->drv);
	struct lb_callbacks lcb = {.ctx = d, .drained = on_drained, .stats = monitor_on_stats,
				  .problem = on_lb_problem};
	lb_none_new(d->loop, &lcb, &d->lb_none);
	health_ctx_new(d->loop, &d->health);
	if (notify_new(d->loop, &d->notify) < 0)
		log_warn("notify", "msg=\"cannot start libcurl: no webhook will be sent\"");
	uv_idle_init(d->loop, &d->idle);
	d->idle.data = d;
	uv_timer_init(d->loop, &d->tick);
	d->tick.data = d;
	uv_timer_init(d->loop, &d->prune);
	uv_timer_init(d->loop, &d->watchdog);
	d->prune.data = d;
	uv_timer_init(d->loop, &d->store_retry);
	d->store_retry.data = d;
	d->keep_events = o->keep_events;

	api_new(d->loop, &d->api);
	routes_register(d);
	char *sock = xasprintf("%s/rollout.sock", d->data);
	r = api_listen_unix(d->api, sock);
	if (r < 0) {
		fprintf(stderr, "rollout: cannot listen on %s: %s\n", sock, strerror(-r));
		free(sock);
		return 1;
	}
	if (o->socket_group != NULL && share_socket(d->data, sock, o->socket_group) < 0) {
		free(sock);
		return 2;
	}
	if (o->api_tcp != NULL) {
		char why[PATH_MAX + 128] = "--api needs a token: --token-file FILE with one line";
		char *tok = o->token_file ? read_token(o->token_file, why, sizeof why) : NULL;
		if (tok == NULL) {
			fprintf(stderr, "rollout: %s\n", why);
			return 2;
		}
		r = api_listen_tcp(d->api, o->api_tcp, tok);
		xwipe(tok, strlen(tok));
		free(tok);
		if (r < 0) {
			fprintf(stderr, "rollout: cannot listen on %s: %s\n", o->api_tcp, strerror(-r));
			return 1;
		}
	}
	skip_backlog(d);
	load_services(d);
	uv_signal_init(d->loop, &d->sigterm);
	d->sigterm.data = d;
	uv_signal_start(&d->sigterm, signal_cb, SIGTERM);
	uv_signal_init(d->loop, &d->sigint);
	d->sigint.data = d;
	uv_signal_start(&d->sigint, signal_cb, SIGINT);
	uv_timer_start(&d->tick, tick_cb, TICK_MS, TICK_MS);
	if (d->keep_events > 0)
		uv_timer_start(&d->prune, prune_cb, 0, PRUNE_MS);
	monitor_new(d, &d->monitor);
	log_info("daemon", "msg=\"ready\" data=%s socket=%s pid=%d", d->data, sock, (int)getpid());
	free(sock);
	/* systemd (Type=notify): ready once the store is open, services loaded and the API listens */
	char *st = xasprintf("READY=1\nSTATUS=serving %zu services on %s\nMAINPID=%d", d->n_svcs,
			     d->data, (int)getpid());
	sdnotify_send(st);
	free(st);
	uint64_t wd = sdnotify_watchdog_ms();
	if (wd > 0) /* pinged from the loop: a loop that blocks misses them */
		uv_timer_start(&d->watchdog, watchdog_cb, 0, wd / 2 > 0 ? wd / 2 : 1);

	uv_run(d->loop, UV_RUN_DEFAULT);
	uv_walk(d->loop, walk_close, NULL);
	uv_run(d->loop, UV_RUN_DEFAULT);
	uv_loop_close(d->loop);
	free(d->loop);
	for (size_t i = 0; i < d->n_svcs; i++)
		svc_free(d->svcs[i]);
	free(d->svcs);
	while (d->n_unloaded > 0)
		daemon_drop_unloaded(d, d->unloaded[0].name);
	free(d->unloaded);
	free(d->subs);
	store_free(d->store);
	close(d->lock_fd);
	free(d->data);
	free(d->log_dir);
	free(d->self_exe);
	return d->exit_code;
}
