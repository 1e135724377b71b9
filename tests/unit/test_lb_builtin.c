/* Unit tests for lb/builtin against a fake proxy admin server on a unix socket in the same loop:
 * pushes only on change (weights included), drained reports from stats (inflight 0 or unknown
 * backend), backend closes, re-push when the proxy's boot id changes, and starting the proxy when
 * nothing answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>

#include "core/analysis.h"
#include "lb/lb.h"
#include "util/http1.h"
#include "util/xmalloc.h"

struct fake {
	uv_loop_t loop;
	uv_pipe_t server;
	char dir[64], path[128];
	char boot[32];
	char stats[8192]; /* body of GET .../stats */
	int puts, deletes, stats_gets, health_gets;
	char last_put[2048];
	int posts;          /* POST requests (backend closes) */
	char last_post[300]; /* "POST <target>" */
	/* drained reports */
	uint64_t drained[16];
	int ndrained;
	/* stats answers */
	int nstats, stats_err;
	/* problem reports; the fake refuses PUTs while refuse_put is set */
	int refuse_put, nproblems;
	char problem[512];
	struct analysis_rev revs[ANALYSIS_MAX_REVS];
	size_t nrevs;
	/* the service as PUT and GET /v1/services/web answer it ("{}" when empty) */
	char svc_body[512];
	int svc_gets;
	/* listener reports */
	int nlistener;
	char listener[512];
};

struct fconn {
	uv_pipe_t pipe;
	struct fake *f;
	char buf[8192];
	size_t len;
};

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

static void freply(struct fconn *c, int status, const char *body)
{
	size_t bl = strlen(body);
	uv_write_t *w = xmalloc(sizeof *w + 256 + bl);
	char *p = (char *)(w + 1);
	int n = snprintf(p, 256 + bl, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status, bl,
			 body);
	w->data = c;
	uv_buf_t b = uv_buf_init(p, (unsigned)n);
	uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, fwritten);
}

static void falloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct fconn *c = h->data;
	(void)hint;
	*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len - 1));
}

static void fread_(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct fconn *c = s->data;
	(void)b;
	if (n < 0) {
		uv_close((uv_handle_t *)&c->pipe, fconn_closed);
		return;
	}
	c->len += (size_t)n;
	struct http1_header hs[32];
	struct http1_parser p;
	struct http1_msg m;
	http1_parser_init(&p, HTTP1_REQUEST, hs, 32);
	int hl = http1_parse(&p, c->buf, c->len, &m);
	if (hl <= 0 || c->len < (size_t)hl + m.content_length)
		return;
	uv_read_stop(s);
	struct fake *f = c->f;
	char target[256];
	snprintf(target, sizeof target, "%.*s", (int)m.target_len, m.target);
	if (strcmp(target, "/v1/health") == 0) {
		f->health_gets++;
		char body[128];
		snprintf(body, sizeof body, "{\"status\":\"ok\",\"boot_id\":\"%s\"}", f->boot);
		freply(c, 200, body);
	} else if (strncmp(m.method, "PUT", 3) == 0) {
		f->puts++;
		snprintf(f->last_put, sizeof f->last_put, "%.*s", (int)m.content_length, c->buf + hl);
		freply(c, f->refuse_put ? 422 : 200,
		       f->refuse_put ? "{\"error\":\"listen in use\"}\n" : f->svc_body[0] ? f->svc_body : "{}");
	} else if (strncmp(m.method, "DELETE", 6) == 0) {
		f->deletes++;
		freply(c, 200, "{}");
	} else if (strncmp(m.method, "POST", 4) == 0) {
		f->posts++;
		snprintf(f->last_post, sizeof f->last_post, "POST %s", target);
		freply(c, 200, "{\"closed\":2}");
	} else if (strstr(target, "/stats")) {
		f->stats_gets++;
		freply(c, 200, f->stats);
	} else if (strcmp(target, "/v1/services/web") == 0) {
		f->svc_gets++;
		freply(c, 200, f->svc_body[0] ? f->svc_body : "{}");
	} else {
		freply(c, 404, "{}");
	}
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

static void on_drained(void *ctx, const char *service, uint64_t id)
{
	struct fake *f = ctx;
	assert_string_equal(service, "web");
	f->drained[f->ndrained++] = id;
}

static void on_stats_cb(void *ctx, const char *service, int err, const struct analysis_rev *v, size_t n)
{
	struct fake *f = ctx;
	assert_string_equal(service, "web");
	f->nstats++;
	f->stats_err = err;
	f->nrevs = n;
	if (n)
		memcpy(f->revs, v, n * sizeof *v);
}

static void fake_listen(struct fake *f)
{
	uv_pipe_init(&f->loop, &f->server, 0);
	f->server.data = f;
	assert_int_equal(uv_pipe_bind(&f->server, f->path), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->server, 16, fon_conn), 0);
}

static int setup(void **state)
{
	struct fake *f = xcalloc(1, sizeof *f);
	uv_loop_init(&f->loop);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_lb_builtin.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/proxy.sock", f->dir);
	snprintf(f->boot, sizeof f->boot, "boot1");
	snprintf(f->stats, sizeof f->stats, "{\"backends\":[]}");
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
	uv_walk(&f->loop, walk_close, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_loop_close(&f->loop);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int *cond_flag;
static void stop_timer(uv_timer_t *t)
{
	(void)t;
	*cond_flag = 1;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct fake *f, uint64_t ms)
{
	uv_timer_t t;
	int done = 0;
	cond_flag = &done;
	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, stop_timer, ms, 0);
	while (!done)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void on_problem(void *ctx, const char *service, const char *error)
{
	struct fake *f = ctx;
	f->nproblems++;
	snprintf(f->problem, sizeof f->problem, "%s: %s", service, error ? error : "(none)");
}

static void on_listener(void *ctx, const char *service, const char *why)
{
	struct fake *f = ctx;
	f->nlistener++;
	snprintf(f->listener, sizeof f->listener, "%s: %s", service, why ? why : "(bound)");
}

static struct lb *make(struct fake *f, const char *exe)
{
	struct lb_callbacks cb = {.ctx = f, .drained = on_drained, .stats = on_stats_cb, .problem = on_problem,
				  .listener = on_listener};
	struct lb *lb = NULL;
	assert_int_equal(lb_builtin_new(&f->loop, f->path, exe, &cb, &lb), 0);
	return lb;
}

static void close_lb(struct fake *f, struct lb *lb)
{
	lb_close(lb);
	run_for(f, 50);
}

static struct lb_backend be(uint64_t id, int rev, int port, enum lb_backend_state st)
{
	struct lb_backend b = {.id = id, .revision = rev, .state = st};
	snprintf(b.addr, sizeof b.addr, "127.0.0.1:%d", port);
	return b;
}

static void test_push_once(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	struct lb_backend v[2] = {be(1, 1, 20001, LB_ACTIVE), be(2, 2, 20002, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	json_t *j = json_loads(f->last_put, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "listen")), "127.0.0.1:8080");
	json_t *b1 = json_array_get(json_object_get(j, "backends"), 1);
	assert_int_equal(json_integer_value(json_object_get(b1, "id")), 2);
	assert_int_equal(json_integer_value(json_object_get(b1, "revision")), 2);
	assert_string_equal(json_string_value(json_object_get(b1, "addr")), "127.0.0.1:20002");
	assert_string_equal(json_string_value(json_object_get(b1, "state")), "active");
	assert_int_equal(json_integer_value(json_object_get(b1, "weight")), 1); /* 0 is taken as 1 */
	json_decref(j);
	/* the same set again: nothing to push */
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	assert_int_equal(f->stats_gets, 0); /* nothing draining: no polling */
	/* a change is pushed */
	v[1].state = LB_DRAINING;
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 150);
	assert_int_equal(f->puts, 2);
	assert_int_equal(lb_remove_service(lb, "web"), 0);
	run_for(f, 150);
	assert_int_equal(f->deletes, 1);
	close_lb(f, lb);
}

/* A refused backend set is reported once as a problem of the service; the next set the proxy
 * takes reports it gone. */
static void test_problem_reports(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	f->refuse_put = 1;
	struct lb_backend v[1] = {be(1, 1, 20001, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->nproblems, 1);
	assert_non_null(strstr(f->problem, "web: the proxy refused the backend set (HTTP 422)"));
	assert_non_null(strstr(f->problem, "listen in use"));
	assert_null(strchr(f->problem, '\n')); /* the reply's newline does not reach status */
	f->refuse_put = 0;
	v[0] = be(2, 2, 20002, LB_ACTIVE);
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->nproblems, 2);
	assert_string_equal(f->problem, "web: (none)");
	v[0] = be(3, 2, 20003, LB_ACTIVE); /* in sync: no more reports */
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->nproblems, 2);
	close_lb(f, lb);
}


/* A listen address the proxy cannot bind is reported once, on one line with since when; the
 * client asks every second until the proxy says it is bound, and reports that once. */
static void test_listener_reports(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	snprintf(f->svc_body, sizeof f->svc_body,
		 "{\"name\":\"web\",\"listener\":{\"addr\":\"127.0.0.1:8080\",\"bound\":false,"
		 "\"error\":\"address already in use\\n\",\"since\":1764744601000}}");
	struct lb *lb = make(f, "/bin/false");
	struct lb_backend v[1] = {be(1, 1, 20001, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	assert_int_equal(f->nlistener, 1);
	assert_string_equal(f->listener, "web: listener 127.0.0.1:8080 not bound: address already in use "
					 "(since 2025-12-03T06:50:01Z)");
	assert_int_equal(f->nproblems, 0); /* the set was taken */
	run_for(f, 2300);
	assert_true(f->svc_gets >= 2 && f->svc_gets <= 3); /* about once a second */
	assert_int_equal(f->nlistener, 1);                /* no change, no report */
	snprintf(f->svc_body, sizeof f->svc_body,
		 "{\"name\":\"web\",\"listener\":{\"addr\":\"127.0.0.1:8080\",\"bound\":true}}");
	run_for(f, 1200);
	assert_int_equal(f->nlistener, 2);
	assert_string_equal(f->listener, "web: (bound)");
	int gets = f->svc_gets;
	run_for(f, 1200);
	assert_int_equal(f->svc_gets, gets); /* bound: no more asking */
	close_lb(f, lb);
}

static void test_drained_when_idle(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	snprintf(f->stats, sizeof f->stats,
		 "{\"backends\":[{\"id\":1,\"inflight\":0},{\"id\":2,\"inflight\":3}]}");
	struct lb_backend v[3] = {be(1, 1, 20001, LB_ACTIVE), be(2, 1, 20002, LB_DRAINING),
				  be(3, 1, 20003, LB_DRAINING)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 3), 0);
	run_for(f, 400);
	/* 3 is unknown to the proxy: drained at once; 2 still has requests in flight */
	assert_int_equal(f->ndrained, 1);
	assert_int_equal(f->drained[0], 3);
	assert_true(f->stats_gets >= 2); /* polled every 100 ms */
	/* what the last poll saw in flight, for a drain that times out */
	assert_int_equal(lb_inflight(lb, "web", 2), 3);
	assert_int_equal(lb_inflight(lb, "web", 1), -ENOENT); /* not draining */
	assert_int_equal(lb_inflight(lb, "api", 2), -ENOENT);
	snprintf(f->stats, sizeof f->stats,
		 "{\"backends\":[{\"id\":1,\"inflight\":0},{\"id\":2,\"inflight\":0}]}");
	run_for(f, 300);
	assert_int_equal(f->ndrained, 2);
	assert_int_equal(f->drained[1], 2);
	/* reported once; polling stops */
	int gets = f->stats_gets;
	run_for(f, 300);
	assert_int_equal(f->ndrained, 2);
	assert_int_equal(f->stats_gets, gets);
	close_lb(f, lb);
}

/* Weights go to the proxy with every backend; a change of weight alone is pushed, and a weight
 * out of 0..256 is refused with nothing changed. */
static void test_weights_pushed(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	struct lb_backend v[2] = {be(1, 1, 20001, LB_ACTIVE), be(2, 1, 20002, LB_ACTIVE)};
	v[1].weight = 3;
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	json_t *j = json_loads(f->last_put, 0, NULL);
	json_t *bs = json_object_get(j, "backends");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 0), "weight")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 1), "weight")), 3);
	json_decref(j);
	/* weight 0 means 1: the same set, nothing pushed */
	v[0].weight = 1;
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 200);
	assert_int_equal(f->puts, 1);
	v[1].weight = 5;
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 200);
	assert_int_equal(f->puts, 2);
	j = json_loads(f->last_put, 0, NULL);
	bs = json_object_get(j, "backends");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 1), "weight")), 5);
	json_decref(j);
	v[1].weight = 257;
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), -EINVAL);
	run_for(f, 200);
	assert_int_equal(f->puts, 2);
	close_lb(f, lb);
}

/* close_backend: POST .../backends/ID/close to the proxy, for a service it serves; nothing for
 * an unknown service. */
static void test_close_backend(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	struct lb_backend v[1] = {be(7, 1, 20007, LB_DRAINING)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "tcp", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	assert_int_equal(lb_close_backend(lb, "other", 7), 0);
	run_for(f, 100);
	assert_int_equal(f->posts, 0);
	assert_int_equal(lb_close_backend(lb, "web", 7), 0);
	run_for(f, 200);
	assert_int_equal(f->posts, 1);
	assert_string_equal(f->last_post, "POST /v1/services/web/backends/7/close");
	close_lb(f, lb);
}

static void test_repush_on_restart(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	struct lb_backend v[1] = {be(1, 1, 20001, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	run_for(f, 300);
	assert_int_equal(f->puts, 1);
	snprintf(f->boot, sizeof f->boot, "boot2");
	run_for(f, 1500);
	assert_int_equal(f->puts, 2);
	close_lb(f, lb);
}

static void test_spawns_proxy(void **state)
{
	struct fake *f = *state;
	char exe[256], marker[256];
	snprintf(exe, sizeof exe, "%s/fake-rollout", f->dir);
	snprintf(marker, sizeof marker, "%s/started", f->dir);
	FILE *s = fopen(exe, "w");
	assert_non_null(s);
	fprintf(s, "#!/bin/sh\necho \"$@\" >> %s\n", marker);
	fclose(s);
	chmod(exe, 0700);
	struct lb *lb = make(f, exe);
	run_for(f, 500);
	FILE *m = fopen(marker, "r");
	assert_non_null(m);
	char line[512] = "";
	assert_non_null(fgets(line, sizeof line, m));
	fclose(m);
	char want[512];
	snprintf(want, sizeof want, "proxy --admin %s\n", f->path);
	assert_string_equal(line, want);
	/* the proxy then comes up: the service is pushed to it */
	struct lb_backend v[1] = {be(1, 1, 20001, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 1), 0);
	fake_listen(f);
	run_for(f, 600);
	assert_int_equal(f->puts, 1);
	close_lb(f, lb);
}

/* read_stats: per-revision counters from the proxy's stats, the revisions of the current set
 * first when the proxy knows more than ANALYSIS_MAX_REVS. */
static void test_read_stats(void **state)
{
	struct fake *f = *state;
	fake_listen(f);
	struct lb *lb = make(f, "/bin/false");
	assert_int_equal(lb_read_stats(lb, "web"), -ENOENT); /* not served yet */
	struct lb_backend v[2] = {be(1, 1, 20001, LB_ACTIVE), be(9, 9, 20009, LB_ACTIVE)};
	assert_int_equal(lb_set_backends(lb, "web", "127.0.0.1:8080", "http", v, 2), 0);
	run_for(f, 300);
	char *p = f->stats;
	p += sprintf(p, "{\"backends\":[],\"revisions\":{");
	for (int r = 1; r <= 9; r++)
		p += sprintf(p, "%s\"%d\":{\"requests\":{\"2xx\":%d,\"3xx\":0,\"4xx\":1,\"5xx\":2},\"errors\":2,"
			     "\"latency_buckets\":[[999,3],[1999,%d]]}",
			     r > 1 ? "," : "", r, 10 * r, r);
	sprintf(p, "}}");
	assert_int_equal(lb_read_stats(lb, "web"), 0);
	assert_int_equal(lb_read_stats(lb, "web"), -EBUSY);
	assert_int_equal(f->nstats, 0); /* never from inside the call */
	run_for(f, 200);
	assert_int_equal(f->nstats, 1);
	assert_int_equal(f->stats_err, 0);
	assert_int_equal(f->nrevs, ANALYSIS_MAX_REVS);
	int seen1 = 0, seen9 = 0;
	for (size_t i = 0; i < f->nrevs; i++) {
		const struct analysis_rev *a = &f->revs[i];
		assert_true(a->revision >= 4 || a->revision == 1); /* in the set, then the newest */
		assert_int_equal(a->c.requests, (uint64_t)(10 * a->revision + 3));
		assert_int_equal(a->c.errors, 2);
		assert_int_equal(a->c.lat[analysis_hist_bucket(999)], 3);
		assert_int_equal(a->c.lat[analysis_hist_bucket(1999)], (uint64_t)a->revision);
		seen1 |= a->revision == 1;
		seen9 |= a->revision == 9;
	}
	assert_true(seen1 && seen9);
	close_lb(f, lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drained_when_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_problem_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listener_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weights_pushed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repush_on_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawns_proxy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_stats, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
