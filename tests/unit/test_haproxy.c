/* Unit tests for lb/haproxy against a fake HAProxy Runtime API on a unix socket in the same loop
 * (one command per connection, answers as HAProxy 2.6 words them): a free slot is given an address,
 * its health check and `ready`; drains are confirmed by scur/qcur before `maint` and the report;
 * a refused command stops the cycle with nothing half done; a restart is re-synced; `add server`
 * when no slot is free and `del server` once idle; per-revision counters for analysis. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/analysis.h"
#include "lb/lb.h"
#include "util/xmalloc.h"

enum { F_READY, F_DRAIN, F_MAINT };

struct fsrv {
	char name[64], addr[64];
	int admin;
	bool down;
	int64_t scur, qcur, stot, e5;
	int weight; /* uweight */
};

struct fake {
	uv_loop_t loop;
	uv_pipe_t server;
	char dir[64], path[128];
	long pid;
	struct fsrv s[32];
	int ns;
	char log[256][96]; /* commands other than show */
	int nlog;
	char refuse_prefix[96], refuse_text[96];
	uint64_t drained[16];
	int drained_admin[16]; /* the server's state in HAProxy when the report came */
	int ndrained;
	int nstats, stats_err;
	struct analysis_rev revs[ANALYSIS_MAX_REVS];
	size_t nrevs;
	struct lb *lb;
};

struct fconn {
	uv_pipe_t pipe;
	struct fake *f;
	char buf[512];
	size_t len;
};

static struct fsrv *fsrv_find(struct fake *f, const char *name)
{
	for (int i = 0; i < f->ns; i++)
		if (strcmp(f->s[i].name, name) == 0)
			return &f->s[i];
	return NULL;
}

static void fake_slots(struct fake *f, int n)
{
	for (int i = 0; i < n; i++) {
		struct fsrv *s = &f->s[f->ns++];
		memset(s, 0, sizeof *s);
		snprintf(s->name, sizeof s->name, "s%d", i + 1);
		snprintf(s->addr, sizeof s->addr, "127.0.0.1:1");
		s->admin = F_MAINT;
		s->weight = 1;
	}
}

static void fconn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void fwritten(uv_write_t *w, int status)
{
	(void)status;
	struct fconn *c = w->data;
	free(w);
	uv_close((uv_handle_t *)&c->pipe, fconn_closed);
}

static void freply(struct fconn *c, const char *text)
{
	size_t n = strlen(text);
	uv_write_t *w = xmalloc(sizeof *w + n + 1);
	char *p = (char *)(w + 1);
	memcpy(p, text, n + 1);
	w->data = c;
	uv_buf_t b = uv_buf_init(p, (unsigned)n);
	uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, fwritten);
}

static const char *status_of(const struct fsrv *s)
{
	return s->admin == F_MAINT ? "MAINT" : s->admin == F_DRAIN ? (s->down ? "DOWN" : "DRAIN") : s->down ? "DOWN 0/2" : "UP";
}

static void answer(struct fake *f, struct fconn *c, const char *cmd)
{
	char name[64], a1[64], a2[64];
	static char out[16384];
	if (f->refuse_prefix[0] && strncmp(cmd, f->refuse_prefix, strlen(f->refuse_prefix)) == 0) {
		snprintf(f->log[f->nlog++ % 256], sizeof f->log[0], "%.95s", cmd);
		freply(c, f->refuse_text);
		return;
	}
	if (strcmp(cmd, "show info") == 0) {
		snprintf(out, sizeof out, "Name: HAProxy\nVersion: 2.6.12\nPid: %ld\nUptime_sec: 5\n\n", f->pid);
		freply(c, out);
		return;
	}
	if (strcmp(cmd, "show stat web 4 -1") == 0) {
		size_t o = (size_t)snprintf(out, sizeof out, "# pxname,svname,qcur,scur,stot,econ,eresp,status,sid,type,"
							   "hrsp_5xx,rtime,ttime,addr,uweight,\n");
		for (int i = 0; i < f->ns; i++) {
			const struct fsrv *s = &f->s[i];
			o += (size_t)snprintf(out + o, sizeof out - o, "web,%s,%lld,%lld,%lld,0,0,%s,%d,2,%lld,3,4,%s,%d,\n",
					      s->name, (long long)s->qcur, (long long)s->scur, (long long)s->stot,
					      status_of(s), i + 1, (long long)s->e5, s->addr, s->weight);
		}
		snprintf(out + o, sizeof out - o, "\n");
		freply(c, out);
		return;
	}
	if (strncmp(cmd, "show stat", 9) == 0) {
		freply(c, "No such proxy.\n\n");
		return;
	}
	snprintf(f->log[f->nlog++ % 256], sizeof f->log[0], "%.95s", cmd);
	struct fsrv *s;
	if (sscanf(cmd, "set server web/%63s state %63s", name, a1) == 2) {
		if ((s = fsrv_find(f, name)) == NULL)
			{
			freply(c, "No such server.\n\n");
			return;
		}
		s->admin = strcmp(a1, "ready") == 0 ? F_READY : strcmp(a1, "drain") == 0 ? F_DRAIN : F_MAINT;
		freply(c, "\n");
	} else if (sscanf(cmd, "set server web/%63s weight %63s", name, a1) == 2) {
		if ((s = fsrv_find(f, name)) == NULL) {
			freply(c, "No such server.\n\n");
			return;
		}
		s->weight = atoi(a1);
		freply(c, "\n");
	} else if (sscanf(cmd, "shutdown sessions server web/%63s", name) == 1) {
		if ((s = fsrv_find(f, name)) == NULL) {
			freply(c, "No such server.\n\n");
			return;
		}
		s->scur = 0;
		freply(c, "\n");
	} else if (sscanf(cmd, "set server web/%63s addr %63s port %63s", name, a1, a2) == 3) {
		if ((s = fsrv_find(f, name)) == NULL)
			{
			freply(c, "No such server.\n\n");
			return;
		}
		snprintf(s->addr, sizeof s->addr, "%.40s:%.20s", a1, a2);
		freply(c, "no need to change the addr, port changed from '1' to 'x' by 'stats socket command'\n\n");
	} else if (sscanf(cmd, "enable health web/%63s", name) == 1) {
		freply(c, fsrv_find(f, name) ? "\n" : "No such server.\n\n");
	} else if (sscanf(cmd, "add server web/%63s %63s", name, a1) == 2) {
		if (fsrv_find(f, name))
			{
			freply(c, "Already exists a server with the same name in backend.\n\n");
			return;
		}
		s = &f->s[f->ns++];
		memset(s, 0, sizeof *s);
		snprintf(s->name, sizeof s->name, "%s", name);
		snprintf(s->addr, sizeof s->addr, "%s", a1);
		s->admin = F_MAINT;
		s->weight = 1;
		freply(c, "New server registered.\n\n");
	} else if (sscanf(cmd, "del server web/%63s", name) == 1) {
		if ((s = fsrv_find(f, name)) == NULL)
			{
			freply(c, "No such server.\n\n");
			return;
		}
		if (s->admin != F_MAINT)
			{
			freply(c, "Only servers in maintenance mode can be deleted.\n");
			return;
		}
		*s = f->s[--f->ns];
		freply(c, "Server deleted.\n");
	} else {
		freply(c, "Unknown command, but maybe one of the following ones is a better match:\n  help\n\n");
	}
}

static void falloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct fconn *c = h->data;
	(void)hint;
	*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len - 1));
}

static void fread_(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct fconn *c = st->data;
	(void)b;
	if (n < 0) {
		uv_close((uv_handle_t *)&c->pipe, fconn_closed);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	char *nl = strchr(c->buf, '\n');
	if (nl == NULL)
		return;
	*nl = '\0';
	uv_read_stop(st);
	answer(c->f, c, c->buf);
}

static void fon_conn(uv_stream_t *server, int status)
{
	struct fake *f = server->data;
	if (status < 0)
		return;
	struct fconn *c = xcalloc(1, sizeof *c);
	c->f = f;
	uv_pipe_init(&f->loop, &c->pipe, 0);
	c->pipe.data = c;
	uv_accept(server, (uv_stream_t *)&c->pipe);
	uv_read_start((uv_stream_t *)&c->pipe, falloc, fread_);
}

static void fake_listen(struct fake *f)
{
	uv_pipe_init(&f->loop, &f->server, 0);
	f->server.data = f;
	assert_int_equal(uv_pipe_bind(&f->server, f->path), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->server, 16, fon_conn), 0);
}

/* ---- the balancer's reports ---- */

static const char *addr_server(struct fake *f, const char *addr)
{
	for (int i = 0; i < f->ns; i++)
		if (strcmp(f->s[i].addr, addr) == 0)
			return f->s[i].name;
	return NULL;
}

static void on_drained(void *ctx, const char *service, uint64_t id)
{
	struct fake *f = ctx;
	assert_string_equal(service, "web");
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", 5000 + (int)id);
	const char *n = addr_server(f, addr);
	f->drained_admin[f->ndrained] = n ? fsrv_find(f, n)->admin : -1;
	f->drained[f->ndrained++] = id;
}

static void on_stats(void *ctx, const char *service, int err, const struct analysis_rev *v, size_t n)
{
	struct fake *f = ctx;
	assert_string_equal(service, "web");
	f->nstats++;
	f->stats_err = err;
	f->nrevs = n;
	if (n)
		memcpy(f->revs, v, n * sizeof *v);
}

static bool run_until(struct fake *f, bool (*pred)(struct fake *), int ms);

static int setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof *f);
	uv_loop_init(&f->loop);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_haproxy.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/admin.sock", f->dir);
	f->pid = 100;
	struct lb_callbacks cb = {.ctx = f, .drained = on_drained, .stats = on_stats};
	assert_int_equal(lb_haproxy_new(&f->loop, f->path, "web", &cb, &f->lb), 0);
	*state = f;
	return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int teardown(void **state)
{
	struct fake *f = *state;
	lb_close(f->lb);
	run_until(f, NULL, 100); /* the balancer's requests end */
	uv_walk(&f->loop, walk_close, NULL);
	/* Bounded: after a failed assertion the loop may hold a request that never ends. */
	run_until(f, NULL, 500);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Runs the loop until pred holds or ms passed; returns whether it holds. */
static bool run_until(struct fake *f, bool (*pred)(struct fake *), int ms)
{
	uv_update_time(&f->loop);
	uint64_t end = uv_now(&f->loop) + (uint64_t)ms;
	while (!(pred && pred(f))) {
		if (uv_now(&f->loop) >= end)
			return pred == NULL;
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(1000);
		uv_update_time(&f->loop);
	}
	return true;
}

static struct lb_backend be(uint64_t id, int rev, enum lb_backend_state st)
{
	struct lb_backend b = {.id = id, .revision = rev, .state = st};
	snprintf(b.addr, sizeof b.addr, "127.0.0.1:%d", 5000 + (int)id);
	return b;
}

static int logged(struct fake *f, const char *cmd)
{
	for (int i = 0; i < f->nlog && i < 256; i++)
		if (strcmp(f->log[i], cmd) == 0)
			return i;
	return -1;
}

static int n_state(struct fake *f, const char *addr, int admin)
{
	int n = 0;
	for (int i = 0; i < f->ns; i++)
		n += strcmp(f->s[i].addr, addr) == 0 && f->s[i].admin == admin;
	return n;
}

static bool b1_ready(struct fake *f)
{
	return n_state(f, "127.0.0.1:5001", F_READY) == 1;
}

static bool b2_ready(struct fake *f)
{
	return n_state(f, "127.0.0.1:5002", F_READY) == 1;
}

static bool one_drained(struct fake *f)
{
	return f->ndrained == 1;
}

static void test_enable_slot(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	assert_true(run_until(f, b1_ready, 6000));
	int a = logged(f, "set server web/s1 addr 127.0.0.1 port 5001");
	int h = logged(f, "enable health web/s1");
	int r = logged(f, "set server web/s1 state ready");
	assert_true(a >= 0 && h > a && r > h);
	assert_int_equal(f->s[1].admin, F_MAINT);
	assert_int_equal(f->s[2].admin, F_MAINT);
	/* a steady state sends nothing more */
	int n = f->nlog;
	run_until(f, NULL, 1300);
	assert_int_equal(f->nlog, n);
	/* bad input is refused before anything happens */
	struct lb_backend bad = be(2, 1, LB_ACTIVE);
	snprintf(bad.addr, sizeof bad.addr, "127.0.0.1;x");
	assert_int_equal(lb_set_backends(f->lb, "web", "127.0.0.1:8080", "http", &bad, 1), -EINVAL);
	assert_int_equal(lb_set_backends(f->lb, "other", "127.0.0.1:8080", "http", v, 1), -EBUSY);
}

static void test_drain_confirmed(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(2, 2, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	assert_true(run_until(f, b2_ready, 6000));
	assert_true(b1_ready(f));
	struct fsrv *s1 = fsrv_find(f, addr_server(f, "127.0.0.1:5001"));
	s1->scur = 3; /* requests in flight */
	v[0].state = LB_DRAINING;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	run_until(f, NULL, 800);
	assert_int_equal(s1->admin, F_DRAIN);
	assert_int_equal(f->ndrained, 0);
	s1->scur = 0;
	s1->qcur = 1; /* queued counts too */
	run_until(f, NULL, 500);
	assert_int_equal(f->ndrained, 0);
	s1->qcur = 0;
	assert_true(run_until(f, one_drained, 6000));
	assert_int_equal(f->drained[0], 1);
	assert_int_equal(f->drained_admin[0], F_MAINT); /* maint first, then the report */
	assert_true(b2_ready(f));
	/* reported once; then removed from the set: the server stays in maintenance */
	run_until(f, NULL, 500);
	assert_int_equal(f->ndrained, 1);
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v + 1, 1), 0);
	run_until(f, NULL, 500);
	assert_int_equal(s1->admin, F_MAINT);
	assert_true(b2_ready(f));
}

static int n_logged(struct fake *f, const char *cmd)
{
	int n = 0;
	for (int i = 0; i < f->nlog && i < 256; i++)
		n += strcmp(f->log[i], cmd) == 0;
	return n;
}

/* Weights: a slot gets the backend's weight before it is made ready (only when it differs), a
 * change of weight alone is sent once, and a weight changed by hand is set back. */
static void test_weights(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(2, 1, LB_ACTIVE)};
	v[0].weight = 3;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	assert_true(run_until(f, b2_ready, 6000));
	assert_true(b1_ready(f));
	struct fsrv *s1 = fsrv_find(f, addr_server(f, "127.0.0.1:5001"));
	struct fsrv *s2 = fsrv_find(f, addr_server(f, "127.0.0.1:5002"));
	assert_int_equal(s1->weight, 3);
	assert_int_equal(s2->weight, 1);
	char cmd[96], ready[96];
	snprintf(cmd, sizeof cmd, "set server web/%s weight 3", s1->name);
	snprintf(ready, sizeof ready, "set server web/%s state ready", s1->name);
	assert_true(logged(f, cmd) >= 0 && logged(f, ready) > logged(f, cmd));
	snprintf(cmd, sizeof cmd, "set server web/%s weight 1", s2->name);
	assert_int_equal(logged(f, cmd), -1); /* already 1 */
	/* steady: nothing more */
	int n = f->nlog;
	run_until(f, NULL, 1300);
	assert_int_equal(f->nlog, n);
	/* a change of weight alone */
	v[1].weight = 7;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	run_until(f, NULL, 500);
	assert_int_equal(s2->weight, 7);
	snprintf(cmd, sizeof cmd, "set server web/%s weight 7", s2->name);
	assert_int_equal(n_logged(f, cmd), 1);
	/* changed by hand: set back at the next cycle */
	s1->weight = 50;
	run_until(f, NULL, 1300);
	assert_int_equal(s1->weight, 3);
	/* a weight HAProxy refuses (a static algorithm) fails the cycle: retried, nothing else sent */
	snprintf(f->refuse_prefix, sizeof f->refuse_prefix, "set server web/%s weight", s1->name);
	snprintf(f->refuse_text, sizeof f->refuse_text,
		 "Backend is using a static LB algorithm and only accepts weights '0%%' and '100%%'.\n\n");
	v[0].weight = 2;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	run_until(f, NULL, 1200);
	assert_int_equal(s1->weight, 3);
	snprintf(cmd, sizeof cmd, "set server web/%s weight 2", s1->name);
	assert_true(n_logged(f, cmd) >= 2);
	assert_true(b1_ready(f) && b2_ready(f));
	/* out of range: refused before anything happens */
	v[0].weight = 300;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), -EINVAL);
}

/* close_backend: `shutdown sessions server` for the server holding the backend's address; nothing
 * for an unknown backend or service. */
static void test_close_backend(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 2);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(2, 1, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "tcp", v, 2), 0);
	assert_true(run_until(f, b2_ready, 6000));
	run_until(f, NULL, 300); /* a show stat with both servers placed */
	struct fsrv *s2 = fsrv_find(f, addr_server(f, "127.0.0.1:5002"));
	s2->scur = 4;
	v[1].state = LB_DRAINING;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "tcp", v, 2), 0);
	run_until(f, NULL, 400);
	assert_int_equal(s2->admin, F_DRAIN);
	assert_int_equal(lb_close_backend(f->lb, "other", 2), 0);
	assert_int_equal(lb_close_backend(f->lb, "web", 99), 0);
	run_until(f, NULL, 100);
	assert_int_equal(s2->scur, 4);
	assert_int_equal(lb_close_backend(f->lb, "web", 2), 0);
	run_until(f, NULL, 100);
	char cmd[96];
	snprintf(cmd, sizeof cmd, "shutdown sessions server web/%s", s2->name);
	assert_int_equal(n_logged(f, cmd), 1);
	assert_int_equal(s2->scur, 0);
	/* the drain then completes as usual */
	assert_true(run_until(f, one_drained, 6000));
	assert_int_equal(f->drained[0], 2);
}

static void test_drain_down(void **state)
{
	/* a draining server whose checks fail shows DOWN, not DRAIN: it is still confirmed */
	struct fake *f = *state;
	fake_slots(f, 2);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 1), 0);
	assert_true(run_until(f, b1_ready, 6000));
	fsrv_find(f, "s1")->down = true;
	v[0].state = LB_DRAINING;
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 1), 0);
	assert_true(run_until(f, one_drained, 6000));
	assert_int_equal(f->drained_admin[0], F_MAINT);
}

static void test_refused(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fake_listen(f);
	snprintf(f->refuse_prefix, sizeof f->refuse_prefix, "set server web/s1 state ready");
	snprintf(f->refuse_text, sizeof f->refuse_text, "Permission denied\n\n");
	/* one to enable, one unknown to HAProxy that is draining */
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(9, 1, LB_DRAINING)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	run_until(f, NULL, 1500);
	/* the slot got its address but stayed in maintenance; nothing after the refusal went out */
	struct fsrv *s1 = fsrv_find(f, "s1");
	assert_string_equal(s1->addr, "127.0.0.1:5001");
	assert_int_equal(s1->admin, F_MAINT);
	for (int i = 0; i < f->nlog; i++)
		assert_null(strstr(f->log[i], "web/s2"));
	assert_int_equal(f->ndrained, 0);
	/* HAProxy takes it again: the same slot is enabled, the unknown one reported */
	f->refuse_prefix[0] = '\0';
	assert_true(run_until(f, b1_ready, 6000));
	assert_true(run_until(f, one_drained, 3000));
	assert_int_equal(f->drained[0], 9);
	assert_int_equal(fsrv_find(f, "s2")->admin, F_MAINT);
}

static void test_unlisted_and_never_early(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	struct fsrv *s2 = fsrv_find(f, "s2");
	s2->admin = F_READY; /* left over: an instance the daemon no longer lists */
	snprintf(s2->addr, sizeof s2->addr, "127.0.0.1:5077");
	fake_listen(f);
	/* nothing active: nothing is enabled, the leftover goes to maintenance */
	struct lb_backend v[] = {be(1, 1, LB_DRAINING)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 1), 0);
	run_until(f, NULL, 1200);
	assert_int_equal(s2->admin, F_MAINT);
	for (int i = 0; i < f->nlog; i++)
		assert_null(strstr(f->log[i], "state ready"));
	assert_int_equal(f->ndrained, 1); /* unknown to HAProxy */
}

static bool all_maint(struct fake *f)
{
	return n_state(f, "127.0.0.1:1", F_MAINT) == f->ns;
}

static void test_restart(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(2, 1, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	assert_true(run_until(f, b2_ready, 2000) && b1_ready(f));
	/* a new process from the config file: every slot disabled again */
	f->pid = 200;
	for (int i = 0; i < f->ns; i++) {
		f->s[i].admin = F_MAINT;
		snprintf(f->s[i].addr, sizeof f->s[i].addr, "127.0.0.1:1");
	}
	assert_true(all_maint(f));
	assert_true(run_until(f, b2_ready, 7500));
	assert_true(b1_ready(f));
}

static bool dyn_ready(struct fake *f)
{
	struct fsrv *s = fsrv_find(f, "rollout-7");
	return s != NULL && s->admin == F_READY;
}

static bool dyn_gone(struct fake *f)
{
	return fsrv_find(f, "rollout-7") == NULL;
}

static void test_dynamic(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 1);
	fake_listen(f);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(7, 1, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	assert_true(run_until(f, dyn_ready, 6000));
	assert_true(b1_ready(f));
	int a = logged(f, "add server web/rollout-7 127.0.0.1:5007");
	assert_true(a >= 0);
	assert_true(logged(f, "set server web/rollout-7 state ready") > a);
	/* no longer listed: maintenance, then deleted */
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 1), 0);
	assert_true(run_until(f, dyn_gone, 7500));
	assert_true(logged(f, "set server web/rollout-7 state maint") >= 0);
	assert_true(b1_ready(f));
}

static bool stats_in(struct fake *f)
{
	return f->nstats > 0;
}

static const struct analysis_rev *rev_of(struct fake *f, int rev)
{
	for (size_t i = 0; i < f->nrevs; i++)
		if (f->revs[i].revision == rev)
			return &f->revs[i];
	return NULL;
}

static void test_read_stats(void **state)
{
	struct fake *f = *state;
	fake_slots(f, 3);
	fsrv_find(f, "s1")->stot = 1000; /* history from before: no revision's */
	fake_listen(f);
	assert_int_equal(lb_read_stats(f->lb, "web"), -ENOENT);
	struct lb_backend v[] = {be(1, 1, LB_ACTIVE), be(2, 2, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 2), 0);
	assert_true(run_until(f, b2_ready, 2000) && b1_ready(f));
	struct fsrv *s1 = fsrv_find(f, addr_server(f, "127.0.0.1:5001"));
	struct fsrv *s2 = fsrv_find(f, addr_server(f, "127.0.0.1:5002"));
	s1->stot += 10;
	s2->stot += 20;
	s2->e5 += 5;
	assert_int_equal(lb_read_stats(f->lb, "web"), 0);
	assert_int_equal(lb_read_stats(f->lb, "web"), -EBUSY);
	assert_true(run_until(f, stats_in, 6000));
	assert_int_equal(f->stats_err, 0);
	const struct analysis_rev *r1 = rev_of(f, 1), *r2 = rev_of(f, 2);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_int_equal(r1->c.requests, 10);
	assert_int_equal(r1->c.errors, 0);
	assert_int_equal(r2->c.requests, 20);
	assert_int_equal(r2->c.errors, 5);
	uint64_t lat = 0;
	for (int i = 0; i < ANALYSIS_HIST_BUCKETS; i++)
		lat += r2->c.lat[i];
	assert_int_equal(lat, 20);
	/* a restarted HAProxy starts its counters again: what they show now is all new */
	f->pid = 300;
	s2->stot = 4;
	f->nstats = 0;
	assert_int_equal(lb_read_stats(f->lb, "web"), 0);
	assert_true(run_until(f, stats_in, 6000));
	assert_int_equal(rev_of(f, 2)->c.requests, 24);
	assert_int_equal(rev_of(f, 1)->c.requests, 10);
}

static void test_unreachable(void **state)
{
	struct fake *f = *state;
	/* nothing listens: a drain cannot be confirmed, so it is not reported */
	struct lb_backend v[] = {be(1, 1, LB_DRAINING)};
	assert_int_equal(lb_set_backends(f->lb, "web", "l", "http", v, 1), 0);
	run_until(f, NULL, 1200);
	assert_int_equal(f->ndrained, 0);
	assert_int_equal(lb_read_stats(f->lb, "web"), -ENOENT);
	/* HAProxy comes up: the unknown backend is reported */
	fake_slots(f, 1);
	fake_listen(f);
	assert_true(run_until(f, one_drained, 6000));
}

static void test_new_checks(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct lb_callbacks cb = {0};
	struct lb *lb = NULL;
	assert_int_equal(lb_haproxy_new(&loop, "/run/x.sock", "bad name", &cb, &lb), -EINVAL);
	assert_int_equal(lb_haproxy_new(&loop, "/run/x.sock", "a;b", &cb, &lb), -EINVAL);
	assert_int_equal(lb_haproxy_new(&loop, "haproxy.local:9999", "web", &cb, &lb), -EINVAL);
	assert_int_equal(lb_haproxy_new(&loop, "", "web", &cb, &lb), -EINVAL);
	assert_int_equal(lb_haproxy_new(&loop, "127.0.0.1:9999", "web", &cb, &lb), 0);
	lb_close(lb);
	assert_int_equal(lb_haproxy_new(&loop, "[::1]:9999", "web", &cb, &lb), 0);
	lb_close(lb);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_enable_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_confirmed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weights, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlisted_and_never_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dynamic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
		cmocka_unit_test(test_new_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
