/* The proxy's admin server: a small HTTP/1.1 server on a unix socket, parsing with util/http1,
 * dispatching every complete request to one synchronous handler and replying with JSON. */
#include "proxy/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/http1.h"
#include "util/xmalloc.h"

#define MAX_HEAD 16384
#define MAX_CONNS 64
#define IDLE_MS 60000

struct proxy_admin {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	char *path;
	proxy_admin_fn fn;
	void *ctx;
	struct aconn *conns;
	int nconns;
	int closing;
};

struct aconn {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct proxy_admin *a;
	struct aconn *prev, *next;
	char *buf;
	size_t len, cap;
	int closing, handles;
};

static void aconn_freed(uv_handle_t *h)
{
	struct aconn *c = h->data;
	if (--c->handles > 0)
		return;
	free(c->buf);
	free(c);
}

static void aconn_close(struct aconn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->a->nconns--;
	uv_close((uv_handle_t *)&c->pipe, aconn_freed);
	uv_close((uv_handle_t *)&c->timer, aconn_freed);
}

static void on_written(uv_write_t *w, int status)
{
	struct aconn *c = w->data;
	(void)status;
	free(w);
	/* A reply that asked to close: the connection goes once it was written. */
	if (c->buf == NULL)
		aconn_close(c);
}

/* Writes status + JSON; close: send Connection: close and end the connection after it. */
static void reply(struct aconn *c, int status, json_t *body, int close)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(body);
	const char *t = text ? text : "{}";
	size_t tl = strlen(t);
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
			  status, status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error", tl + 1,
			  close ? "Connection: close\r\n" : "");
	uv_write_t *w = xmalloc(sizeof *w + (size_t)hl + tl + 1);
	char *p = (char *)(w + 1);
	memcpy(p, head, (size_t)hl);
	memcpy(p + hl, t, tl);
	p[hl + tl] = '\n';
	free(text);
	w->data = c;
	if (close) {
		free(c->buf);
		c->buf = NULL;
		c->len = c->cap = 0;
		uv_read_stop((uv_stream_t *)&c->pipe);
	}
	uv_buf_t b = uv_buf_init(p, (unsigned)((size_t)hl + tl + 1));
	if (uv_write(w, (uv_stream_t *)&c->pipe, &b, 1, on_written) != 0) {
		free(w);
		aconn_close(c);
	}
}

static json_t *err_json(const char *msg)
{
	return json_pack("{s:s}", "error", msg);
}

/* Handles every complete request in the buffer. */
static void process(struct aconn *c)
{
	while (c->buf != NULL && c->len > 0) {
		struct http1_header hs[64];
		struct http1_parser p;
		struct http1_msg m;
		http1_parser_init(&p, HTTP1_REQUEST, hs, 64);
		p.max_head = MAX_HEAD;
		int n = http1_parse(&p, c->buf, c->len, &m);
		if (n == 0)
			return;
		if (n < 0) {
			reply(c, http1_status(n), err_json(http1_strerror(n)), 1);
			return;
		}
		if (m.body == HTTP1_BODY_CHUNKED) {
			reply(c, 411, err_json("a Content-Length body is required"), 1);
			return;
		}
		if (m.content_length > PROXY_ADMIN_MAX_BODY) {
			reply(c, 413, err_json("body too large"), 1);
			return;
		}
		size_t total = (size_t)n + (size_t)m.content_length;
		if (c->len < total)
			return;
		char method[16], path[512];
		if (m.method_len >= sizeof method || m.target_len >= sizeof path) {
			reply(c, 414, err_json("request target too long"), 1);
			return;
		}
		memcpy(method, m.method, m.method_len);
		method[m.method_len] = '\0';
		memcpy(path, m.target, m.target_len);
		path[m.target_len] = '\0';
		char *q = strchr(path, '?');
		if (q)
			*q = '\0';
		int keep = m.keep_alive;
		char *body = xmalloc((size_t)m.content_length + 1);
		memcpy(body, c->buf + n, (size_t)m.content_length);
		body[m.content_length] = '\0';
		memmove(c->buf, c->buf + total, c->len - total);
		c->len -= total;
		json_t *out = NULL;
		int status = c->a->fn(c->a->ctx, method, path, body, (size_t)m.content_length, &out);
		free(body);
		reply(c, status, out, !keep);
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct aconn *c = h->data;
	(void)hint;
	size_t max = MAX_HEAD + PROXY_ADMIN_MAX_BODY;
	if (c->cap - c->len < 4096 && c->cap < max) {
		c->cap = c->cap ? c->cap * 2 : 8192;
		if (c->cap > max)
			c->cap = max;
		c->buf = xrealloc(c->buf, c->cap);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_idle(uv_timer_t *t)
{
	aconn_close(t->data);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct aconn *c = s->data;
	(void)b;
	if (n < 0) {
		aconn_close(c);
		return;
	}
	if (c->buf == NULL)
		return;
	c->len += (size_t)n;
	uv_timer_start(&c->timer, on_idle, IDLE_MS, 0);
	if (c->len == c->cap && c->cap >= MAX_HEAD + PROXY_ADMIN_MAX_BODY) {
		reply(c, 413, err_json("request too large"), 1);
		return;
	}
	process(c);
}

static void on_conn(uv_stream_t *server, int status)
{
	struct proxy_admin *a = server->data;
	if (status < 0)
		return;
	struct aconn *c = xcalloc(1, sizeof *c);
	c->a = a;
	uv_pipe_init(a->loop, &c->pipe, 0);
	uv_timer_init(a->loop, &c->timer);
	c->pipe.data = c->timer.data = c;
	c->handles = 2;
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 || a->nconns > MAX_CONNS) {
		aconn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_idle, IDLE_MS, 0);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* True when something accepts connections on the unix socket at path. */
static int socket_alive(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int alive = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
	close(fd);
	return alive;
}

int proxy_admin_new(uv_loop_t *loop, const char *path, proxy_admin_fn fn, void *ctx, struct proxy_admin **out)
{
	struct sockaddr_un sun;
	if (strlen(path) >= sizeof sun.sun_path)
		return -ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (socket_alive(path))
			return -EADDRINUSE;
		unlink(path);
	}
	struct proxy_admin *a = xcalloc(1, sizeof *a);
	a->loop = loop;
	a->fn = fn;
	a->ctx = ctx;
	a->path = xstrdup(path);
	uv_pipe_init(loop, &a->pipe, 0);
	a->pipe.data = a;
	mode_t old = umask(077);
	int rc = uv_pipe_bind(&a->pipe, path);
	umask(old);
	if (rc == 0)
		rc = chmod(path, 0600) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->pipe, 64, on_conn);
	if (rc != 0) {
		a->path[0] = '\0';
		proxy_admin_close(a);
		return rc;
	}
	*out = a;
	return 0;
}

static void admin_freed(uv_handle_t *h)
{
	struct proxy_admin *a = h->data;
	free(a->path);
	free(a);
}

void proxy_admin_close(struct proxy_admin *a)
{
	if (a == NULL)
		return;
	a->closing = 1;
	while (a->conns)
		aconn_close(a->conns);
	if (a->path[0])
		unlink(a->path);
	uv_close((uv_handle_t *)&a->pipe, admin_freed);
}
