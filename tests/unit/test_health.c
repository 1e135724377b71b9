/* Tests of the health checks against a tiny HTTP server in the test (127.0.0.1), tcp ports and
 * real exec probes. Teardown frees the context (which kills any probe still running) and checks
 * that the loop closes with no handle left. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "uvtest.h"

#include "daemon/health.h"

struct server {
	uv_tcp_t listener;
	int port;
	int status;    /* what to answer */
	bool hang;     /* read requests, never answer */
	int requests;
	uint64_t first_request_ms;
	char last_line[128];
	struct conn *conns; /* open connections */
};

struct conn {
	uv_tcp_t tcp;
	struct server *srv;
	struct conn *prev, *next;
	char buf[2048];
	size_t len;
	bool answered;
	uv_write_t wr;
	char resp[256];
};

struct fixture {
	uv_loop_t loop;
	struct health_ctx *hc;
	struct server srv;
	int reports, healthy, unhealthy;
	bool last;
	char detail[512];
	int requests_at_report;
	uint64_t t_report;
	bool stop_in_cb, free_in_cb;
	struct health_check *chk;
	char dir[64];
};

/* ---- the server ---- */

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct conn *c = h->data;
	buf->base = c->buf + c->len;
	buf->len = sizeof c->buf - 1 - c->len;
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	struct conn *c = w->data;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	if (n < 0 || c->len + (size_t)n >= sizeof c->buf - 1) {
		if (!uv_is_closing((uv_handle_t *)s))
			uv_close((uv_handle_t *)s, conn_closed);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (c->answered || strstr(c->buf, "\r\n\r\n") == NULL)
		return;
	c->answered = true;
	struct server *srv = c->srv;
	if (srv->requests++ == 0)
		srv->first_request_ms = uvt_now_ms();
	size_t line = strcspn(c->buf, "\r");
	snprintf(srv->last_line, sizeof srv->last_line, "%.*s", (int)line, c->buf);
	if (srv->hang)
		return;
	int len = snprintf(c->resp, sizeof c->resp,
			   "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", srv->status);
	uv_buf_t b = uv_buf_init(c->resp, (unsigned)len);
	c->wr.data = c;
	uv_write(&c->wr, s, &b, 1, on_written);
}

static void on_connection(uv_stream_t *l, int status)
{
	if (status != 0)
		return;
	struct server *srv = l->data;
	struct conn *c = calloc(1, sizeof *c);
	c->srv = srv;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	uv_tcp_init(l->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- helpers ---- */

static void on_health(void *ctx, uint64_t id, bool healthy, const char *detail)
{
	struct fixture *f = ctx;
	assert_int_equal(id, 42);
	f->reports++;
	if (healthy)
		f->healthy++;
	else
		f->unhealthy++;
	f->last = healthy;
	snprintf(f->detail, sizeof f->detail, "%s", detail);
	f->requests_at_report = f->srv.requests;
	f->t_report = uvt_now_ms();
	if (f->stop_in_cb) {
		health_stop(f->chk);
		f->chk = NULL;
	}
	if (f->free_in_cb) {
		health_ctx_free(f->hc);
		f->hc = NULL;
		f->chk = NULL;
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (f == NULL || uv_loop_init(&f->loop) != 0 || health_ctx_new(&f->loop, &f->hc) != 0)
		return -1;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&f->loop, &f->srv.listener);
	f->srv.listener.data = &f->srv;
	f->srv.status = 200;
	if (uv_tcp_bind(&f->srv.listener, (const struct sockaddr *)&sa, 0) != 0 ||
	    uv_listen((uv_stream_t *)&f->srv.listener, 64, on_connection) != 0)
		return -1;
	int len = sizeof sa;
	uv_tcp_getsockname(&f->srv.listener, (struct sockaddr *)&sa, &len);
	f->srv.port = ntohs(sa.sin_port);
	snprintf(f->dir, sizeof f->dir, "/tmp/rollout-health.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static void listener_closed(uv_handle_t *h)
{
	(void)h;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	health_ctx_free(f->hc); /* stops every check, kills exec probes */
	uv_close((uv_handle_t *)&f->srv.listener, listener_closed);
	for (struct conn *c = f->srv.conns; c != NULL; c = c->next)
		if (!uv_is_closing((uv_handle_t *)&c->tcp))
			uv_close((uv_handle_t *)&c->tcp, conn_closed);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		rc = -1;
	free(f);
	return rc == 0 ? 0 : -1;
}

static struct spec_health spec(enum spec_check kind, int64_t interval, int64_t timeout, int hthr, int uthr)
{
	return (struct spec_health){.kind = kind, .http_status = 200, .interval_ms = interval,
				    .timeout_ms = timeout, .healthy_threshold = hthr,
				    .unhealthy_threshold = uthr};
}

static int start(struct fixture *f, const struct spec_health *h, int port)
{
	return health_start(f->hc, h, "127.0.0.1", port, 42, on_health, f, &f->chk);
}

/* ---- http ---- */

static void test_http_healthy_then_unhealthy(void **state)
{
	struct fixture *f = *state;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 30, 1000, 2, 2);
	h.http_path = "healthz";
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_int_equal(f->reports, 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "HTTP 200");
	assert_int_equal(f->requests_at_report, 2); /* the threshold, not one probe earlier */
	assert_string_equal(f->srv.last_line, "GET /healthz HTTP/1.1");

	uvt_spin(&f->loop, 100);
	assert_int_equal(f->reports, 1); /* transitions only */
	int before = f->srv.requests;
	f->srv.status = 503;
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "HTTP 503 from GET /healthz (want 200)");
	assert_int_equal(f->requests_at_report - before, 2);

	f->srv.status = 200;
	assert_true(uvt_run_until(&f->loop, &f->reports, 3, 2000));
	assert_true(f->last);
}

static void test_http_never_healthy(void **state)
{
	struct fixture *f = *state;
	f->srv.status = 503;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 20, 1000, 1, 3);
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_false(f->last);
	assert_int_equal(f->requests_at_report, 3);
	uvt_spin(&f->loop, 150);
	assert_true(f->srv.requests > 4);
	assert_int_equal(f->reports, 1);
	assert_int_equal(f->healthy, 0);
	/* every probe's result is there to ask for, not only the transition's */
	assert_string_equal(health_last(f->chk), "HTTP 503 from GET / (want 200)");
}

/* health_last follows each probe, also those that change nothing: a check that passes and
 * then sees another answer says so before any threshold is reached. */
static void test_http_last_result(void **state)
{
	struct fixture *f = *state;
	f->srv.status = 404;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 20, 1000, 1, 1000);
	h.http_path = "/healthz";
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_string_equal(health_last(f->chk), "");
	assert_true(uvt_run_until(&f->loop, &f->srv.requests, 3, 2000));
	uvt_spin(&f->loop, 5);
	assert_int_equal(f->reports, 0); /* far from the unhealthy threshold */
	assert_string_equal(health_last(f->chk), "HTTP 404 from GET /healthz (want 200)");
	f->srv.status = 200;
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_string_equal(health_last(f->chk), "HTTP 200");
	assert_string_equal(health_last(NULL), "");
}

static void test_http_expected_status_and_jitter(void **state)
{
	struct fixture *f = *state;
	f->srv.status = 503;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 2000, 1000, 1, 1);
	h.http_status = 503; /* whatever the spec says is the healthy answer */
	uint64_t t0 = uvt_now_ms();
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "HTTP 503");
	/* The first probe comes within interval/4 (500ms), not after a whole interval. */
	assert_true(f->srv.first_request_ms - t0 <= 600);
}

static void test_http_refused_and_timeout(void **state)
{
	struct fixture *f = *state;
	f->srv.hang = true;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 50, 150, 1, 1);
	uint64_t t0 = uvt_now_ms();
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_false(f->last);
	assert_non_null(strstr(f->detail, ": timed out after 150ms"));
	assert_true(uvt_now_ms() - t0 >= 150 && uvt_now_ms() - t0 < 1000);

	/* A closed port. */
	health_stop(f->chk);
	uv_tcp_t tmp;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&f->loop, &tmp);
	uv_tcp_bind(&tmp, (const struct sockaddr *)&sa, 0);
	int len = sizeof sa;
	uv_tcp_getsockname(&tmp, (struct sockaddr *)&sa, &len);
	uv_close((uv_handle_t *)&tmp, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(start(f, &h, ntohs(sa.sin_port)), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
	assert_non_null(strstr(f->detail, "GET http://127.0.0.1:"));
	assert_non_null(strstr(f->detail, "/: connection refused"));
}

static void test_http_stop_in_flight(void **state)
{
	struct fixture *f = *state;
	f->srv.hang = true;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 10, 5000, 1, 1);
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->srv.requests, 1, 2000));
	health_stop(f->chk);
	f->chk = NULL;
	uvt_spin(&f->loop, 50);
	assert_int_equal(f->reports, 0);
	assert_int_equal(f->srv.requests, 1);
}

static int many_healthy;

static void on_many(void *ctx, uint64_t id, bool healthy, const char *detail)
{
	(void)ctx;
	(void)detail;
	assert_true(id >= 100 && id < 120);
	many_healthy += healthy ? 1 : -1000;
}

/* Twenty checks share one curl multi handle (and its sockets) on one loop. */
static void test_http_many_checks(void **state)
{
	struct fixture *f = *state;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 10, 1000, 3, 1);
	struct health_check *c[20];
	many_healthy = 0;
	for (int i = 0; i < 20; i++)
		assert_int_equal(health_start(f->hc, &h, "127.0.0.1", f->srv.port, 100 + (uint64_t)i,
					      on_many, f, &c[i]), 0);
	assert_true(uvt_run_until(&f->loop, &many_healthy, 20, 3000));
	uvt_spin(&f->loop, 50);
	assert_int_equal(many_healthy, 20);
	assert_true(f->srv.requests >= 60);
	for (int i = 0; i < 20; i += 2)
		health_stop(c[i]); /* the rest are stopped by the context free in teardown */
	uvt_spin(&f->loop, 30);
}

/* ---- tcp ---- */

static void test_tcp(void **state)
{
	struct fixture *f = *state;
	struct spec_health h = spec(SPEC_CHECK_TCP, 20, 500, 1, 1);
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "connected");
	health_stop(f->chk);

	/* A port nobody listens on: bind one, learn its number, close it. */
	uv_tcp_t tmp;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&f->loop, &tmp);
	uv_tcp_bind(&tmp, (const struct sockaddr *)&sa, 0);
	int len = sizeof sa;
	uv_tcp_getsockname(&tmp, (struct sockaddr *)&sa, &len);
	uv_close((uv_handle_t *)&tmp, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(start(f, &h, ntohs(sa.sin_port)), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
	assert_non_null(strstr(f->detail, "connection refused"));

	health_stop(f->chk);
	assert_int_equal(health_start(f->hc, &h, "localhost.invalid", 80, 42, on_health, f, &f->chk), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 3, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "tcp: localhost.invalid is not a numeric address");
	health_stop(f->chk);
	assert_int_equal(health_start(f->hc, &h, "127.0.0.1", 0, 42, on_health, f, &f->chk), -EINVAL);
}

/* ---- exec ---- */

static void test_exec_true_false(void **state)
{
	struct fixture *f = *state;
	char *yes[] = {"true", NULL}, *no[] = {"false", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 1000, 1, 1);
	h.exec = yes;
	h.n_exec = 1;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "exit status 0");
	health_stop(f->chk);

	h.exec = no;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "exit status 1");
	health_stop(f->chk);

	char *missing[] = {"./no-such-check-xyz", NULL};
	h.exec = missing;
	f->last = true;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 3, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "exec ./no-such-check-xyz: no such file or directory");
}

/* Open file descriptors of this process. */
static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* An exec probe's result ends with the last line it printed, stdout or stderr, whichever came
 * last; blank lines, a missing final newline and control characters do not hide it. */
static void test_exec_output(void **state)
{
	struct fixture *f = *state;
	int fds = open_fds();
	char *boom[] = {"sh", "-c", "echo starting; echo boom; exit 3", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 1000, 1, 1);
	h.exec = boom;
	h.n_exec = 3;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "exit status 3: boom");
	assert_string_equal(health_last(f->chk), "exit status 3: boom");
	health_stop(f->chk);

	char *err[] = {"sh", "-c", "echo out; printf ' no\\033[2J db \\n\\n' >&2; exit 1", NULL};
	h.exec = err;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_string_equal(f->detail, "exit status 1: no?[2J db");
	health_stop(f->chk);

	char *partial[] = {"sh", "-c", "printf 'ok so far'", NULL};
	h.exec = partial;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 3, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "exit status 0: ok so far");
	health_stop(f->chk);

	/* a long line keeps its start; a hung probe says what it printed before the timeout */
	char *hang[] = {"sh", "-c", "printf '%0300d\\n' 7; echo waiting for db; exec sleep 5", NULL};
	h.exec = hang;
	h.timeout_ms = 300;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 4, 3000));
	assert_string_equal(f->detail, "timed out after 300ms: waiting for db");
	char *longl[] = {"sh", "-c", "printf '%0300d\\n' 7; exit 2", NULL};
	health_stop(f->chk);
	h.exec = longl;
	h.timeout_ms = 1000;
	f->last = true;
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 5, 3000));
	assert_int_equal(strlen(f->detail), strlen("exit status 2: ") + HEALTH_LINE_MAX - 1);
	assert_int_equal(strncmp(f->detail, "exit status 2: 0000", 19), 0);
	health_stop(f->chk);
	f->chk = NULL;
	uvt_spin(&f->loop, 50);
	assert_int_equal(open_fds(), fds); /* every probe's pipe closed */
}

static void test_exec_env(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"sh", "-c", "test \"$PORT\" = 4321 && test \"$HOST\" = 127.0.0.1", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 1000, 1, 1);
	h.exec = argv;
	h.n_exec = 3;
	assert_int_equal(start(f, &h, 4321), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	health_stop(f->chk);
	assert_int_equal(start(f, &h, 4322), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
}

/* A local exec probe runs in the directory given as `where` (the instance's workdir): a relative
 * check script found there; without it, in the daemon's directory, not found. */
static void test_exec_workdir(void **state)
{
	struct fixture *f = *state;
	char path[300];
	snprintf(path, sizeof path, "%s/check.sh", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("#!/bin/sh\ntest -f ./check.sh\n", fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0755), 0);
	char *argv[] = {"./check.sh", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 1000, 1, 1);
	h.exec = argv;
	h.n_exec = 1;
	assert_int_equal(health_start_on(f->hc, &h, "127.0.0.1", 1, 42, NULL, f->dir, on_health, f, &f->chk), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	health_stop(f->chk);
	f->last = true;
	assert_int_equal(health_start_on(f->hc, &h, "127.0.0.1", 1, 42, NULL, NULL, on_health, f, &f->chk), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
}

/* The pid the probe's shell wrote, or 0. */
static int read_pid(const char *path)
{
	FILE *fp = fopen(path, "r");
	int pid = 0;
	if (fp != NULL) {
		if (fscanf(fp, "%d", &pid) != 1)
			pid = 0;
		fclose(fp);
	}
	return pid;
}

/* Whether pid is gone or a zombie (an orphan's zombie waits for init, which may never come in a
 * container). */
static bool dead(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return true;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static bool gone(struct fixture *f, int pid)
{
	for (int i = 0; i < 200; i++) {
		if (dead(pid))
			return true;
		uvt_spin(&f->loop, 5);
	}
	return false;
}

static void test_exec_timeout_kills(void **state)
{
	struct fixture *f = *state;
	char script[512], pidfile[128];
	snprintf(pidfile, sizeof pidfile, "%s/pid", f->dir);
	/* the shell forks sleep and waits: the kill must reach the whole group, sleep included */
	snprintf(script, sizeof script, "sleep 5 & echo $! > %s.tmp; mv %s.tmp %s; wait", pidfile, pidfile,
		 pidfile);
	char *argv[] = {"sh", "-c", script, NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 5000, 200, 1, 1);
	h.exec = argv;
	h.n_exec = 3;
	uint64_t t0 = uvt_now_ms();
	assert_int_equal(start(f, &h, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 3000));
	assert_false(f->last);
	assert_string_equal(f->detail, "timed out after 200ms");
	assert_true(f->t_report - t0 >= 200 && f->t_report - t0 < 1500);
	int pid = read_pid(pidfile);
	assert_true(pid > 0);
	assert_true(gone(f, pid)); /* killed and reaped */
}

static void test_exec_stop_in_flight(void **state)
{
	struct fixture *f = *state;
	char script[512], pidfile[128];
	snprintf(pidfile, sizeof pidfile, "%s/pid", f->dir);
	snprintf(script, sizeof script, "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 5", pidfile, pidfile, pidfile);
	char *argv[] = {"sh", "-c", script, NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 10, 10000, 1, 1);
	h.exec = argv;
	h.n_exec = 3;
	assert_int_equal(start(f, &h, 1), 0);
	int pid = 0;
	for (int i = 0; i < 1000 && pid == 0; i++) {
		uvt_spin(&f->loop, 2);
		pid = read_pid(pidfile);
	}
	assert_true(pid > 0);
	health_stop(f->chk);
	f->chk = NULL;
	assert_true(gone(f, pid));
	assert_int_equal(f->reports, 0);
}

/* ---- exec through a runner (ssh targets: on the instance's host), with a fake ---- */

/* The fake runner: records each run; the test ends a probe with fake_end (from outside run, as a
 * real runner would from the loop) or leaves it pending. */
struct fake_runner {
	int runs, cancels;
	int fail_run; /* run returns this (negative errno) when set */
	char where[64], host[64], argv0[64];
	size_t n;
	int port;
	int64_t timeout_ms;
	void (*done)(void *arg, int status, const char *detail);
	void *arg;
	int token; /* the request */
	bool pending;
};

static int fake_run(void *ctx, const char *where, char *const *argv, size_t n, const char *host, int port,
		    int64_t timeout_ms, void (*done)(void *arg, int status, const char *detail), void *arg, void **req)
{
	struct fake_runner *r = ctx;
	r->runs++;
	if (r->fail_run != 0)
		return r->fail_run;
	assert_false(r->pending); /* a probe never overlaps the next */
	snprintf(r->where, sizeof r->where, "%s", where);
	snprintf(r->host, sizeof r->host, "%s", host);
	snprintf(r->argv0, sizeof r->argv0, "%s", argv[0]);
	r->n = n;
	r->port = port;
	r->timeout_ms = timeout_ms;
	r->done = done;
	r->arg = arg;
	r->pending = true;
	*req = &r->token;
	return 0;
}

static void fake_cancel(void *ctx, void *req)
{
	struct fake_runner *r = ctx;
	assert_ptr_equal(req, &r->token);
	assert_true(r->pending);
	r->pending = false;
	r->cancels++;
}

static void fake_end(struct fake_runner *r, int status, const char *detail)
{
	assert_true(r->pending);
	r->pending = false;
	r->done(r->arg, status, detail);
}

/* Runs the loop until the fake has a pending probe. */
static bool fake_wait(struct fixture *f, struct fake_runner *r)
{
	for (int i = 0; i < 2000 && !r->pending; i++)
		uvt_spin(&f->loop, 1);
	return r->pending;
}

static void test_exec_runner(void **state)
{
	struct fixture *f = *state;
	struct fake_runner fr = {0};
	struct health_runner runner = {&fr, fake_run, fake_cancel};
	char *argv[] = {"test", "-f", "ready", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 300, 1, 2);
	h.exec = argv;
	h.n_exec = 3;
	assert_int_equal(health_start_on(f->hc, &h, "10.0.0.5", 8080, 42, &runner, "root@10.0.0.5:22", on_health, f,
					 &f->chk),
			 0);
	assert_true(fake_wait(f, &fr));
	assert_string_equal(fr.where, "root@10.0.0.5:22");
	assert_string_equal(fr.host, "10.0.0.5");
	assert_string_equal(fr.argv0, "test");
	assert_int_equal(fr.n, 3);
	assert_int_equal(fr.port, 8080);
	assert_int_equal(fr.timeout_ms, 300);
	fake_end(&fr, 0, "exit status 0 on root@10.0.0.5:22");
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_true(f->last);
	assert_string_equal(f->detail, "exit status 0 on root@10.0.0.5:22");

	/* two failures (threshold 2): unhealthy, with the runner's words */
	assert_true(fake_wait(f, &fr));
	fake_end(&fr, 1, "exit status 1 on root@10.0.0.5:22");
	assert_true(fake_wait(f, &fr));
	assert_int_equal(f->reports, 1);
	fake_end(&fr, -110, "timed out after 300ms on root@10.0.0.5:22");
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "timed out after 300ms on root@10.0.0.5:22");

	/* stop while a probe runs on the host: cancelled, no callback after */
	assert_true(fake_wait(f, &fr));
	health_stop(f->chk);
	f->chk = NULL;
	assert_int_equal(fr.cancels, 1);
	assert_false(fr.pending);
	uvt_spin(&f->loop, 50);
	assert_int_equal(f->reports, 2);
}

static void test_exec_runner_refuses(void **state)
{
	struct fixture *f = *state;
	struct fake_runner fr = {.fail_run = -ENOENT};
	struct health_runner runner = {&fr, fake_run, fake_cancel};
	char *argv[] = {"true", NULL};
	struct spec_health h = spec(SPEC_CHECK_EXEC, 20, 300, 1, 1);
	h.exec = argv;
	h.n_exec = 1;
	f->last = true;
	assert_int_equal(health_start_on(f->hc, &h, "h", 1, 42, &runner, "u@h:22", on_health, f, &f->chk), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	assert_false(f->last);
	assert_string_equal(f->detail, "exec on u@h:22: No such file or directory");
	assert_int_equal(fr.cancels, 0);
	/* a runner without cancel, or without where, is refused */
	struct health_runner half = {&fr, fake_run, NULL};
	struct health_check *c = NULL;
	assert_int_equal(health_start_on(f->hc, &h, "h", 1, 43, &half, "u@h:22", on_health, f, &c), -EINVAL);
	assert_int_equal(health_start_on(f->hc, &h, "h", 1, 43, &runner, NULL, on_health, f, &c), -EINVAL);
}

/* ---- none, and callbacks that stop or free ---- */

static void test_none(void **state)
{
	struct fixture *f = *state;
	struct spec_health h = spec(SPEC_CHECK_NONE, 10000, 1000, 3, 3);
	assert_int_equal(start(f, &h, 0), 0);
	assert_int_equal(f->reports, 0); /* from the loop, not from inside health_start */
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 200));
	assert_true(f->last);
	uvt_spin(&f->loop, 50);
	assert_int_equal(f->reports, 1);
}

static void test_stop_and_free_in_callback(void **state)
{
	struct fixture *f = *state;
	struct spec_health h = spec(SPEC_CHECK_HTTP, 10, 1000, 1, 1);
	f->stop_in_cb = true;
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 1, 2000));
	int req = f->srv.requests;
	uvt_spin(&f->loop, 80);
	assert_int_equal(f->srv.requests, req); /* no probe after the stop */
	assert_int_equal(f->reports, 1);

	f->stop_in_cb = false;
	f->free_in_cb = true;
	struct health_check *other;
	assert_int_equal(start(f, &h, f->srv.port), 0);
	assert_int_equal(health_start(f->hc, &h, "127.0.0.1", f->srv.port, 42, on_health, f, &other), 0);
	assert_true(uvt_run_until(&f->loop, &f->reports, 2, 2000));
	uvt_spin(&f->loop, 80);
	assert_int_equal(f->reports, 2); /* the other check was stopped by the free */
	assert_null(f->hc);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_http_healthy_then_unhealthy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_never_healthy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_expected_status_and_jitter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_last_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_refused_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_stop_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_http_many_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_true_false, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_workdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_timeout_kills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_stop_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_runner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_runner_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_and_free_in_callback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
