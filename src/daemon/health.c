/* Health checks: per-instance checkers on the libuv loop, with the probe kinds (http over a
 * shared libcurl multi handle, tcp, exec) behind a small table of operations. */
#include "daemon/health.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/curluv.h"
#include "util/xmalloc.h"

extern char **environ;

struct probe;

/* One kind of probe. start begins the probe, which ends in exactly one probe_finish (never from
 * inside start). cancel ends it without a result; the probe's memory goes when libuv is done. */
struct probe_ops {
	const char *name;
	void (*start)(struct probe *p);
	void (*cancel)(struct probe *p);
};

struct health_ctx {
	uv_loop_t *loop;
	struct curluv *curl;         /* http probes' transfers */
	struct health_check *checks; /* running checks */
	uint64_t rng;
	bool freeing;
	int refs; /* probes and checks not yet freed */
};

enum health_state { H_UNKNOWN, H_HEALTHY, H_UNHEALTHY };

struct health_check {
	struct health_ctx *hc;
	struct health_check *prev, *next;
	const struct probe_ops *ops; /* NULL for kind none */
	char *host;
	int port;
	uint64_t id;
	char *url;   /* http */
	char *path;  /* http: the path, as the results name it */
	int expect;  /* http */
	char **argv; /* exec */
	size_t n_argv;
	struct health_runner runner; /* exec elsewhere, when runner.run is set */
	char *where;
	int64_t interval_ms, timeout_ms;
	int healthy_threshold, unhealthy_threshold;
	health_cb cb;
	void *ctx;
	uv_timer_t timer;
	struct probe *probe; /* in flight, or NULL */
	uint64_t probe_started;
	int ok_run, fail_run;
	uint64_t rise_ms;    /* until the first success: the current fast-probe gap, growing */
	bool ever_ok;
	enum health_state state;
	bool stopped;
	char last[HEALTH_DETAIL_MAX]; /* the last probe's result (health_last) */
};

/* One probe: a request that completes or is cancelled exactly once. */
struct probe {
	struct health_ctx *hc;
	struct health_check *chk; /* NULL once finished or cancelled */
	const struct probe_ops *ops;
	bool done;
	int open;          /* libuv handles not yet closed */
	uv_timer_t timer;  /* tcp, exec: timeout, or delivering an early failure */
	bool timer_init;
	char *fail;        /* a failure to deliver from the timer */
	int64_t timeout_ms;
	/* http */
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
	/* tcp */
	uv_tcp_t tcp;
	uv_connect_t conn;
	/* exec */
	uv_process_t proc;
	int pid;
	bool exited;
	uv_poll_t out;     /* the read end of the probe's stdout and stderr (out_fd), when open */
	int out_fd;
	bool out_open;
	char line[HEALTH_LINE_MAX]; /* the output line being read */
	size_t line_len;
	char last_line[HEALTH_LINE_MAX]; /* the last non-empty line of output */
	/* exec through a runner (a copy: the check may be gone when the probe is cancelled) */
	struct health_runner runner;
	void *rreq;
};

static void hc_unref(struct health_ctx *hc)
{
	if (--hc->refs == 0 && hc->freeing)
		free(hc);
}

static uint64_t hc_rand(struct health_ctx *hc)
{
	/* xorshift64: jitter only, no need for more */
	hc->rng ^= hc->rng << 13;
	hc->rng ^= hc->rng >> 7;
	hc->rng ^= hc->rng << 17;
	return hc->rng;
}

/* ---- results and scheduling ---- */

#define HEALTH_RISE_FIRST_MS 10

static void on_tick(uv_timer_t *t);

/* Counts a probe's result and reports a transition. The callback may stop the check or free
 * the context: nothing is touched afterwards except the check's own fields (freed only in its
 * timer's close callback). */
static void check_result(struct health_check *chk, bool ok, const char *detail)
{
	bool report = false;
	snprintf(chk->last, sizeof chk->last, "%s", detail != NULL ? detail : "");
	if (ok) {
		chk->ok_run++;
		chk->fail_run = 0;
		if (chk->state != H_HEALTHY && chk->ok_run >= chk->healthy_threshold) {
			chk->state = H_HEALTHY;
			report = true;
		}
	} else {
		chk->fail_run++;
		chk->ok_run = 0;
		if (chk->state != H_UNHEALTHY && chk->fail_run >= chk->unhealthy_threshold) {
			chk->state = H_UNHEALTHY;
			report = true;
		}
	}
	if (report && chk->cb != NULL)
		chk->cb(chk->ctx, chk->id, ok, detail);
	if (chk->stopped)
		return;
	uint64_t elapsed = uv_now(chk->hc->loop) - chk->probe_started;
	uint64_t interval = (uint64_t)chk->interval_ms;
	/* A starting instance is probed fast, then slower (10 ms growing by half up to the interval) until
	 * its first success: a fast starter is seen at once, a slow one costs a handful of probes
	 * more, and none is seen later than with the plain interval. */
	chk->ever_ok |= ok;
	if (!chk->ever_ok && chk->rise_ms < interval) {
		interval = chk->rise_ms;
		chk->rise_ms += chk->rise_ms / 2;
	}
	uv_timer_start(&chk->timer, on_tick, elapsed < interval ? interval - elapsed : 0, 0);
}

/* The one end of a probe with a result. Returns false when it had already ended. */
static bool probe_finish(struct probe *p, bool ok, const char *detail)
{
	if (p->done)
		return false;
	p->done = true;
	struct health_check *chk = p->chk;
	p->chk = NULL;
	if (chk != NULL) {
		chk->probe = NULL;
		check_result(chk, ok, detail);
	}
	return true;
}

static struct probe *probe_new(struct health_check *chk)
{
	struct probe *p = xcalloc(1, sizeof *p);
	p->hc = chk->hc;
	p->chk = chk;
	p->ops = chk->ops;
	p->timeout_ms = chk->timeout_ms;
	p->runner = chk->runner;
	p->hc->refs++;
	return p;
}

static void probe_free(struct probe *p)
{
	struct health_ctx *hc = p->hc;
	free(p->fail);
	free(p);
	hc_unref(hc);
}

static void probe_handle_closed(uv_handle_t *h)
{
	struct probe *p = h->data;
	if (--p->open == 0)
		probe_free(p);
}

static void probe_close(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, probe_handle_closed);
}

static void probe_timer_init(struct probe *p)
{
	uv_timer_init(p->hc->loop, &p->timer);
	p->timer.data = p;
	p->timer_init = true;
	p->open++;
}

/* ---- http: libcurl transfers on the loop (util/curluv) ---- */

/* A transfer's end (curluv_done_cb): the probe's result, then the probe is freed. */
static void http_done(CURL *easy, CURLcode res, void *arg)
{
	struct probe *p = arg;
	long code = 0;
	char *url = NULL;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
	long oserr = 0;
	curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
	char detail[CURL_ERROR_SIZE + 300];
	bool ok = false;
	/* In the words of the tcp and exec probes where curl has a plain reason: the text lands in
	 * status and events, where "connection refused" says more than curl's sentence. */
	if (res == CURLE_COULDNT_CONNECT && oserr > 0)
		snprintf(detail, sizeof detail, "GET %s: %s", url ? url : "?", uv_strerror(-(int)oserr));
	else if (res == CURLE_OPERATION_TIMEDOUT)
		snprintf(detail, sizeof detail, "GET %s: timed out after %lldms", url ? url : "?",
			 (long long)p->timeout_ms);
	else if (res != CURLE_OK)
		snprintf(detail, sizeof detail, "GET %s: %s", url ? url : "?",
			 p->errbuf[0] ? p->errbuf : curl_easy_strerror(res));
	else if (p->chk != NULL && code == p->chk->expect) {
		ok = true;
		snprintf(detail, sizeof detail, "HTTP %ld", code);
	} else
		snprintf(detail, sizeof detail, "HTTP %ld from GET %s (want %d)", code,
			 p->chk ? p->chk->path : "?", p->chk ? p->chk->expect : 0);
	curl_easy_cleanup(easy);
	p->easy = NULL;
	probe_finish(p, ok, detail);
	probe_free(p);
}

static size_t curl_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static void on_fail_timer(uv_timer_t *t)
{
	struct probe *p = t->data;
	probe_finish(p, false, p->fail);
	probe_close((uv_handle_t *)&p->timer);
}

/* Delivers a failure from the loop (a probe never ends inside its start). */
static void probe_fail_later(struct probe *p, const char *why)
{
	if (!p->timer_init)
		probe_timer_init(p);
	p->fail = xstrdup(why);
	uv_timer_start(&p->timer, on_fail_timer, 0, 0);
}

static void http_start(struct probe *p)
{
	CURL *e = curl_easy_init();
	if (e == NULL) {
		probe_fail_later(p, "curl_easy_init failed");
		return;
	}
	long t = (long)p->timeout_ms;
	curl_easy_setopt(e, CURLOPT_URL, p->chk->url);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*"); /* never through an http_proxy from the env */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L); /* each probe tests a fresh connection */
	curl_easy_setopt(e, CURLOPT_USERAGENT, "rollout-health");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_discard);
	p->easy = e;
	int rc = curluv_add(p->hc->curl, e, http_done, p);
	if (rc != 0) {
		curl_easy_cleanup(e);
		p->easy = NULL;
		char why[300];
		snprintf(why, sizeof why, "curl_multi_add_handle: %s", strerror(-rc));
		probe_fail_later(p, why);
	}
}

static void http_cancel(struct probe *p)
{
	if (p->easy != NULL) {
		curluv_cancel(p->hc->curl, p->easy);
		curl_easy_cleanup(p->easy);
		p->easy = NULL;
		probe_free(p);
	} else if (p->timer_init) {
		probe_close((uv_handle_t *)&p->timer);
	}
}

static const struct probe_ops http_ops = {"http", http_start, http_cancel};

/* ---- tcp ---- */

static void tcp_end(struct probe *p)
{
	probe_close((uv_handle_t *)&p->tcp);
	probe_close((uv_handle_t *)&p->timer);
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
	struct probe *p = req->data;
	if (status == UV_ECANCELED)
		return; /* closed by a timeout or a cancel, which ended the probe */
	char detail[300];
	if (status == 0)
		snprintf(detail, sizeof detail, "connected");
	else
		snprintf(detail, sizeof detail, "connect %s:%d: %s", p->chk ? p->chk->host : "?",
			 p->chk ? p->chk->port : 0, uv_strerror(status));
	probe_finish(p, status == 0, detail);
	tcp_end(p);
}

static void on_tcp_timeout(uv_timer_t *t)
{
	struct probe *p = t->data;
	char detail[64];
	snprintf(detail, sizeof detail, "connect timed out after %lldms", (long long)p->timeout_ms);
	probe_finish(p, false, detail);
	tcp_end(p);
}

static void tcp_start(struct probe *p)
{
	struct health_check *chk = p->chk;
	struct sockaddr_storage ss;
	if (uv_ip4_addr(chk->host, chk->port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(chk->host, chk->port, (struct sockaddr_in6 *)&ss) != 0) {
		char why[300];
		snprintf(why, sizeof why, "tcp: %s is not a numeric address", chk->host);
		probe_fail_later(p, why);
		return;
	}
	probe_timer_init(p);
	uv_tcp_init(p->hc->loop, &p->tcp);
	p->tcp.data = p;
	p->open++;
	p->conn.data = p;
	int rc = uv_tcp_connect(&p->conn, &p->tcp, (const struct sockaddr *)&ss, on_tcp_connect);
	if (rc != 0) {
		char why[300];
		snprintf(why, sizeof why, "connect %s:%d: %s", chk->host, chk->port, uv_strerror(rc));
		probe_close((uv_handle_t *)&p->tcp);
		p->fail = xstrdup(why);
		uv_timer_start(&p->timer, on_fail_timer, 0, 0);
		return;
	}
	uv_timer_start(&p->timer, on_tcp_timeout, (uint64_t)p->timeout_ms, 0);
}

static void tcp_cancel(struct probe *p)
{
	tcp_end(p);
}

static const struct probe_ops tcp_ops = {"tcp", tcp_start, tcp_cancel};

/* ---- exec ---- */

/* The line being read ends: kept as the last line when it says anything. Output is shown to
 * people (status, events, JSON), so only printable ASCII is kept, the rest becomes '?'. */
static void exec_line_end(struct probe *p)
{
	size_t n = p->line_len;
	while (n > 0 && (p->line[n - 1] == ' ' || p->line[n - 1] == '\t' || p->line[n - 1] == '\r'))
		n--;
	size_t b = 0;
	while (b < n && (p->line[b] == ' ' || p->line[b] == '\t'))
		b++;
	if (b < n) {
		for (size_t i = b; i < n; i++) {
			unsigned char c = (unsigned char)p->line[i];
			p->last_line[i - b] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		p->last_line[n - b] = '\0';
	}
	p->line_len = 0;
}

/* Reads what the probe wrote so far, without blocking; a line longer than the buffer keeps its
 * start. Stops watching at end of file or on an error. */
static void exec_read_out(struct probe *p)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(p->out_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN)
				uv_poll_stop(&p->out);
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n')
				exec_line_end(p);
			else if (p->line_len < sizeof p->line - 1)
				p->line[p->line_len++] = buf[i];
		}
	}
}

static void on_exec_out(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct probe *p = h->data;
	if (status < 0)
		uv_poll_stop(h);
	else
		exec_read_out(p);
}

/* Reads the rest of the output (a process that exited has written all it will; a child it left
 * behind holding the pipe is not waited for) and closes the pipe. */
static void exec_out_close(struct probe *p)
{
	if (!p->out_open)
		return;
	exec_read_out(p);
	exec_line_end(p); /* a last line without its newline */
	p->out_open = false;
	probe_close((uv_handle_t *)&p->out);
	close(p->out_fd); /* the poll handle is stopped by its close: the fd is ours again */
	p->out_fd = -1;
}

/* "what: last line of output", or what alone when the probe printed nothing. */
static void exec_detail(const struct probe *p, char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s%s%s", what, p->last_line[0] ? ": " : "", p->last_line);
}

static void on_exec_exit(uv_process_t *proc, int64_t status, int term_signal)
{
	struct probe *p = proc->data;
	p->exited = true;
	exec_out_close(p);
	char what[64], detail[66 + HEALTH_LINE_MAX];
	if (term_signal != 0)
		snprintf(what, sizeof what, "killed by signal %d", term_signal);
	else
		snprintf(what, sizeof what, "exit status %lld", (long long)status);
	exec_detail(p, detail, sizeof detail, what);
	probe_finish(p, status == 0 && term_signal == 0, detail);
	probe_close((uv_handle_t *)&p->proc);
	probe_close((uv_handle_t *)&p->timer);
}

/* Kills the check's whole process group; its exit is still awaited (and reaped) by libuv. */
static void exec_kill(struct probe *p)
{
	if (!p->exited && p->pid > 0)
		kill(-p->pid, SIGKILL);
}

static void on_exec_timeout(uv_timer_t *t)
{
	struct probe *p = t->data;
	char what[64], detail[66 + HEALTH_LINE_MAX];
	snprintf(what, sizeof what, "timed out after %lldms", (long long)p->timeout_ms);
	if (p->out_open)
		exec_read_out(p);
	exec_detail(p, detail, sizeof detail, what);
	exec_kill(p);
	probe_finish(p, false, detail);
}

static bool env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static void exec_start(struct probe *p)
{
	struct health_check *chk = p->chk;
	size_t n = 0;
	while (environ != NULL && environ[n] != NULL)
		n++;
	char **env = xcalloc(n + 3, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!env_is(environ[i], "PORT") && !env_is(environ[i], "HOST"))
			env[k++] = environ[i];
	char *port = xasprintf("PORT=%d", chk->port), *host = xasprintf("HOST=%s", chk->host);
	env[k++] = port;
	env[k++] = host;

	/* stdout and stderr into one pipe, in the order written: the last line says why a check
	 * failed. Without a pipe the probe still runs, its output unseen. */
	uv_stdio_container_t stdio[3];
	for (int i = 0; i < 3; i++)
		stdio[i].flags = UV_IGNORE;
	uv_file fds[2] = {-1, -1};
	if (uv_pipe(fds, UV_NONBLOCK_PIPE, 0) == 0) {
		for (int i = 1; i < 3; i++) {
			stdio[i].flags = UV_INHERIT_FD;
			stdio[i].data.fd = fds[1];
		}
	}
	uv_process_options_t o;
	memset(&o, 0, sizeof o);
	o.file = chk->argv[0];
	o.args = chk->argv;
	o.env = env;
	o.cwd = chk->where; /* the instance's workdir (NULL: the daemon's) */
	o.flags = UV_PROCESS_DETACHED; /* its own group, so a timeout kills what it started too */
	o.stdio_count = 3;
	o.stdio = stdio;
	o.exit_cb = on_exec_exit;
	probe_timer_init(p);
	p->proc.data = p;
	int rc = uv_spawn(p->hc->loop, &p->proc, &o);
	p->open++; /* the process handle is initialised even when uv_spawn failed */
	free(port);
	free(host);
	free(env);
	if (fds[1] >= 0)
		close(fds[1]); /* the child has its copy */
	if (fds[0] >= 0 && rc == 0 && uv_poll_init(p->hc->loop, &p->out, fds[0]) == 0) {
		p->out.data = p;
		p->out_fd = fds[0];
		p->out_open = true;
		p->open++;
		uv_poll_start(&p->out, UV_READABLE, on_exec_out);
	} else if (fds[0] >= 0) {
		close(fds[0]);
	}
	if (rc != 0) {
		char why[300];
		snprintf(why, sizeof why, "exec %s: %s", chk->argv[0], uv_strerror(rc));
		p->exited = true;
		probe_close((uv_handle_t *)&p->proc);
		p->fail = xstrdup(why);
		uv_timer_start(&p->timer, on_fail_timer, 0, 0);
		return;
	}
	p->pid = p->proc.pid;
	uv_timer_start(&p->timer, on_exec_timeout, (uint64_t)p->timeout_ms, 0);
}

static void exec_cancel(struct probe *p)
{
	if (p->exited) {
		probe_close((uv_handle_t *)&p->timer);
		return;
	}
	uv_timer_stop(&p->timer);
	exec_kill(p); /* on_exec_exit closes the handles */
}

static const struct probe_ops exec_ops = {"exec", exec_start, exec_cancel};

/* ---- exec through a runner (on the instance's host) ---- */

static void remote_done(void *arg, int status, const char *detail)
{
	struct probe *p = arg;
	p->rreq = NULL;
	probe_finish(p, status == 0, detail);
	probe_free(p);
}

static void remote_start(struct probe *p)
{
	struct health_check *chk = p->chk;
	int rc = chk->runner.run(chk->runner.ctx, chk->where, chk->argv, chk->n_argv, chk->host, chk->port,
				 p->timeout_ms, remote_done, p, &p->rreq);
	if (rc < 0) {
		char why[300];
		snprintf(why, sizeof why, "exec on %s: %s", chk->where, strerror(-rc));
		p->rreq = NULL;
		probe_fail_later(p, why);
	}
}

static void remote_cancel(struct probe *p)
{
	if (p->rreq != NULL) {
		p->runner.cancel(p->runner.ctx, p->rreq);
		p->rreq = NULL;
		probe_free(p);
	} else if (p->timer_init) {
		probe_close((uv_handle_t *)&p->timer);
	}
}

static const struct probe_ops remote_ops = {"exec", remote_start, remote_cancel};

/* ---- checks ---- */

static void on_none(uv_timer_t *t)
{
	struct health_check *chk = t->data;
	chk->state = H_HEALTHY;
	if (chk->cb != NULL)
		chk->cb(chk->ctx, chk->id, true, "no check");
}

static void on_tick(uv_timer_t *t)
{
	struct health_check *chk = t->data;
	if (chk->probe != NULL)
		return;
	chk->probe_started = uv_now(chk->hc->loop);
	chk->probe = probe_new(chk);
	chk->ops->start(chk->probe);
}

static void check_closed(uv_handle_t *h)
{
	struct health_check *chk = h->data;
	struct health_ctx *hc = chk->hc;
	free(chk->host);
	free(chk->url);
	free(chk->path);
	if (chk->argv != NULL)
		for (size_t i = 0; chk->argv[i] != NULL; i++)
			free(chk->argv[i]);
	free(chk->argv);
	free(chk->where);
	free(chk);
	hc_unref(hc);
}

int health_start(struct health_ctx *hc, const struct spec_health *h, const char *host, int port,
		 uint64_t id, health_cb cb, void *ctx, struct health_check **out)
{
	return health_start_on(hc, h, host, port, id, NULL, NULL, cb, ctx, out);
}

int health_start_on(struct health_ctx *hc, const struct spec_health *h, const char *host, int port, uint64_t id,
		    const struct health_runner *runner, const char *where, health_cb cb, void *ctx,
		    struct health_check **out)
{
	if (hc == NULL || hc->freeing || h == NULL || host == NULL || out == NULL)
		return -EINVAL;
	bool remote = runner != NULL && runner->run != NULL;
	if (remote && (runner->cancel == NULL || where == NULL))
		return -EINVAL;
	const struct probe_ops *ops = NULL;
	switch (h->kind) {
	case SPEC_CHECK_NONE:
		break;
	case SPEC_CHECK_HTTP:
		ops = &http_ops;
		break;
	case SPEC_CHECK_TCP:
		ops = &tcp_ops;
		break;
	case SPEC_CHECK_EXEC:
		ops = remote ? &remote_ops : &exec_ops;
		if (h->exec == NULL || h->n_exec == 0 || h->exec[0] == NULL)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if ((h->kind == SPEC_CHECK_HTTP || h->kind == SPEC_CHECK_TCP) && (port <= 0 || port > 65535))
		return -EINVAL;

	struct health_check *chk = xcalloc(1, sizeof *chk);
	chk->hc = hc;
	chk->ops = ops;
	chk->host = xstrdup(host);
	chk->port = port;
	chk->id = id;
	chk->cb = cb;
	chk->ctx = ctx;
	chk->interval_ms = h->interval_ms > 0 ? h->interval_ms : 1000;
	chk->timeout_ms = h->timeout_ms > 0 ? h->timeout_ms : 1000;
	chk->healthy_threshold = h->healthy_threshold > 0 ? h->healthy_threshold : 1;
	chk->unhealthy_threshold = h->unhealthy_threshold > 0 ? h->unhealthy_threshold : 1;
	if (h->kind == SPEC_CHECK_HTTP) {
		const char *path = h->http_path != NULL ? h->http_path : "/";
		bool v6 = strchr(host, ':') != NULL;
		chk->url = xasprintf("http://%s%s%s:%d%s%s", v6 ? "[" : "", host, v6 ? "]" : "", port,
				     path[0] == '/' ? "" : "/", path);
		chk->path = xasprintf("%s%s", path[0] == '/' ? "" : "/", path);
		chk->expect = h->http_status > 0 ? h->http_status : 200;
	}
	if (h->kind == SPEC_CHECK_EXEC) {
		chk->argv = xcalloc(h->n_exec + 1, sizeof *chk->argv);
		for (size_t i = 0; i < h->n_exec && h->exec[i] != NULL; i++)
			chk->argv[chk->n_argv++] = xstrdup(h->exec[i]);
		if (remote)
			chk->runner = *runner;
		if (where != NULL)
			chk->where = xstrdup(where); /* the runner's place, or the local probe's directory */
	}
	uv_timer_init(hc->loop, &chk->timer);
	chk->timer.data = chk;
	hc->refs++;
	chk->next = hc->checks;
	if (hc->checks != NULL)
		hc->checks->prev = chk;
	hc->checks = chk;
	if (ops == NULL) {
		uv_timer_start(&chk->timer, on_none, 0, 0);
	} else {
		/* A jittered first probe spreads many starts; fast probing follows (check_result). */
		chk->rise_ms = HEALTH_RISE_FIRST_MS;
		uint64_t spread = (uint64_t)chk->interval_ms / 4 < HEALTH_RISE_FIRST_MS ? (uint64_t)chk->interval_ms / 4
											 : HEALTH_RISE_FIRST_MS;
		uv_timer_start(&chk->timer, on_tick, hc_rand(hc) % (spread + 1), 0);
	}
	*out = chk;
	return 0;
}

const char *health_last(const struct health_check *chk)
{
	return chk != NULL ? chk->last : "";
}

void health_stop(struct health_check *chk)
{
	if (chk == NULL || chk->stopped)
		return;
	chk->stopped = true;
	struct health_ctx *hc = chk->hc;
	if (chk->prev != NULL)
		chk->prev->next = chk->next;
	else
		hc->checks = chk->next;
	if (chk->next != NULL)
		chk->next->prev = chk->prev;
	struct probe *p = chk->probe;
	if (p != NULL) {
		chk->probe = NULL;
		p->chk = NULL;
		p->done = true;
		p->ops->cancel(p);
	}
	uv_close((uv_handle_t *)&chk->timer, check_closed);
}

/* ---- context ---- */

int health_ctx_new(uv_loop_t *loop, struct health_ctx **out)
{
	if (loop == NULL || out == NULL)
		return -EINVAL;
	struct health_ctx *hc = xcalloc(1, sizeof *hc);
	int rc = curluv_new(loop, &hc->curl);
	if (rc != 0) {
		free(hc);
		return rc;
	}
	hc->loop = loop;
	hc->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)hc;
	if (hc->rng == 0)
		hc->rng = 1;
	*out = hc;
	return 0;
}

void health_ctx_free(struct health_ctx *hc)
{
	if (hc == NULL || hc->freeing)
		return;
	while (hc->checks != NULL)
		health_stop(hc->checks);
	/* Every transfer was cancelled by the stops; curluv frees itself in close callbacks. */
	curluv_free(hc->curl);
	hc->curl = NULL;
	hc->freeing = true;
	/* Probes and checks still closing hold references (one is on the stack when this runs
	 * from a callback); with none, nothing can touch hc any more. */
	if (hc->refs == 0)
		free(hc);
}
