/* Unit tests for daemon/api: a real server on a unix socket (and on 127.0.0.1) in a loop thread,
 * driven by blocking clients from the test thread. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/api.h"
#include "daemon/dashboard.h"
#include "util/http1.h"

#define TOKEN "s3cret-token"

struct fixture {
	char dir[64];
	char sock[128];
	uv_loop_t loop;
	uv_async_t stop;
	struct api *api;
	pthread_t thread;
	int port;
	atomic_int closed_hang; /* on_close of /v1/hang fired */
	atomic_int closed_sse;  /* on_close of /v1/events fired */
	struct api_req *pending; /* /v1/async request waiting for its timer */
	uv_timer_t async_timer;
};

/* ---- handlers (run on the loop thread) ---- */

static void h_service(struct api_req *req, void *ctx)
{
	(void)ctx;
	const char *after = api_query(req, "after");
	api_reply_json(req, 200,
		       json_pack("{s:s, s:s?, s:s?, s:s}", "name", api_param(req, "name"), "after", after,
				 "x", api_query(req, "x"), "path", api_req_path(req)));
}

static void h_pause(struct api_req *req, void *ctx)
{
	(void)ctx;
	char text[128];
	snprintf(text, sizeof text, "paused %s\n", api_param(req, "name"));
	api_reply_text(req, 200, "text/plain", text);
}

static void h_echo(struct api_req *req, void *ctx)
{
	(void)ctx;
	size_t n;
	const char *body = api_req_body(req, &n);
	if (body[n] != '\0') {
		api_reply_error(req, 500, "body not NUL-terminated");
		return;
	}
	api_reply_json(req, 200, json_pack("{s:s%, s:i, s:s?}", "body", body, n, "len", (int)n, "ua",
					   api_header(req, "user-agent")));
}

/* The length and FNV-1a hash of the body: for bodies too big to echo. */
static void h_digest(struct api_req *req, void *ctx)
{
	(void)ctx;
	size_t n;
	const unsigned char *body = (const unsigned char *)api_req_body(req, &n);
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ body[i]) * 16777619u;
	api_reply_json(req, 200, json_pack("{s:I, s:I, s:s}", "len", (json_int_t)n, "hash", (json_int_t)h,
					   "method", api_req_method(req)));
}

static void h_fail(struct api_req *req, void *ctx)
{
	(void)ctx;
	api_reply_error(req, 404, "no service '%s'", api_param(req, "name"));
}

static void h_big(struct api_req *req, void *ctx)
{
	(void)ctx;
	static char big[256 * 1024 + 1];
	if (big[0] == '\0')
		memset(big, 'b', sizeof big - 1);
	api_reply_text(req, 200, "text/plain", big);
}

static void async_fire(uv_timer_t *t)
{
	struct fixture *f = t->data;
	api_reply_json(f->pending, 202, json_pack("{s:b}", "later", 1));
	f->pending = NULL;
}

static void h_async(struct api_req *req, void *ctx)
{
	struct fixture *f = ctx;
	f->pending = req;
	uv_timer_start(&f->async_timer, async_fire, 50, 0);
}

static void hang_closed(struct api_req *req, void *arg)
{
	struct fixture *f = arg;
	/* no cmocka asserts on the loop thread: record the outcome for the test thread */
	bool ok = api_req_closed(req);
	ok = api_reply_error(req, 500, "too late") == -EPIPE && ok;
	atomic_store(&f->closed_hang, ok ? 1 : 2);
}

static void h_hang(struct api_req *req, void *ctx)
{
	api_req_on_close(req, hang_closed, ctx);
}

static void sse_closed(struct api_req *req, void *arg)
{
	struct fixture *f = arg;
	bool ok = api_req_closed(req) && api_sse_send(req, 3, "late", "x") == -EPIPE;
	api_sse_end(req);
	atomic_store(&f->closed_sse, ok ? 1 : 2);
}

static void h_events(struct api_req *req, void *ctx)
{
	api_req_on_close(req, sse_closed, ctx);
	api_sse_start(req);
	api_sse_send(req, 1, "rollout", "{\"state\":\"progressing\"}");
	api_sse_send(req, 2, NULL, "line one\nline two");
	/* CR, CRLF and LF all end a data line; many short lines must not overflow the event */
	api_sse_send(req, -1, "x\ny", "a\rb\r\nc\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
}

/* ---- fixture ---- */

static void *loop_main(void *arg)
{
	struct fixture *f = arg;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void closed_noop(uv_handle_t *h)
{
	(void)h;
}

static void stop_cb(uv_async_t *a)
{
	struct fixture *f = a->data;
	if (f->pending) {
		api_reply_error(f->pending, 503, "stopping");
		f->pending = NULL;
	}
	api_close(f->api, NULL, NULL);
	uv_close((uv_handle_t *)&f->async_timer, closed_noop);
	uv_close((uv_handle_t *)a, closed_noop);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	strcpy(f->dir, "/tmp/test_api.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->sock, sizeof f->sock, "%s/rollout.sock", f->dir);
	uv_loop_init(&f->loop);
	uv_async_init(&f->loop, &f->stop, stop_cb);
	f->stop.data = f;
	uv_timer_init(&f->loop, &f->async_timer);
	f->async_timer.data = f;
	api_new(&f->loop, &f->api);
	api_set_timeouts(f->api, 300, 1000, 600);
	api_route(f->api, "GET", "/v1/services/{name}", h_service, f);
	api_route(f->api, "POST", "/v1/services/{name}/pause", h_pause, f);
	api_route(f->api, "POST", "/v1/echo", h_echo, f);
	api_route(f->api, "POST", "/v1/digest", h_digest, f);
	api_route(f->api, "GET", "/v1/async", h_async, f);
	api_route(f->api, "GET", "/v1/hang", h_hang, f);
	api_route(f->api, "GET", "/v1/events", h_events, f);
	api_route(f->api, "GET", "/v1/big", h_big, f);
	api_route(f->api, "GET", "/v1/fail/{name}", h_fail, f);
	dashboard_register(f->api);
	if (api_listen_unix(f->api, f->sock) != 0)
		return -1;
	if (api_listen_tcp(f->api, "127.0.0.1:0", TOKEN) != 0)
		return -1;
	f->port = api_tcp_port(f->api);
	if (f->port <= 0)
		return -1;
	pthread_create(&f->thread, NULL, loop_main, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	uv_async_send(&f->stop);
	pthread_join(f->thread, NULL);
	int rc = uv_loop_close(&f->loop);
	unlink(f->sock);
	rmdir(f->dir);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* ---- a small blocking client ---- */

struct client {
	int fd;
	char buf[600 * 1024];
	size_t len;
};

struct resp {
	int status;
	char head[8192];
	char body[300 * 1024];
	size_t body_len;
};

static void set_timeout(int fd)
{
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void client_unix(struct client *c, const char *path)
{
	c->len = 0;
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	set_timeout(c->fd);
}

static void client_tcp(struct client *c, int port)
{
	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	set_timeout(c->fd);
}

static void client_send(struct client *c, const char *data, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, data, n, MSG_NOSIGNAL);
		assert_true(k > 0);
		data += k;
		n -= (size_t)k;
	}
}

/* Reads more bytes; returns how many (0 at EOF). */
static size_t client_fill(struct client *c)
{
	assert_true(c->len < sizeof c->buf - 1);
	ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
	assert_true(k >= 0); /* -1 is the 5 s timeout: the server did not answer */
	c->len += (size_t)k;
	return (size_t)k;
}

/* Reads one response (using util/http1 on the client side too). Returns 0, or -1 at EOF before
 * any byte. */
static int client_read(struct client *c, struct resp *r)
{
	struct http1_header hdrs[32];
	struct http1_parser p;
	struct http1_msg m;
	int rc;
	http1_parser_init(&p, HTTP1_RESPONSE, hdrs, 32);
	while ((rc = http1_parse(&p, c->buf, c->len, &m)) == 0)
		if (client_fill(c) == 0) {
			if (c->len == 0)
				return -1;
			fail_msg("EOF inside a response head");
		}
	assert_true(rc > 0);
	size_t hl = (size_t)rc;
	assert_true(hl < sizeof r->head);
	memcpy(r->head, c->buf, hl);
	r->head[hl] = '\0';
	r->status = m.status;
	size_t want = m.body == HTTP1_BODY_LENGTH ? (size_t)m.content_length : 0;
	if (m.body == HTTP1_BODY_CLOSE)
		while (client_fill(c) > 0)
			;
	else
		while (c->len - hl < want)
			assert_true(client_fill(c) > 0);
	if (m.body == HTTP1_BODY_CLOSE)
		want = c->len - hl;
	assert_true(want < sizeof r->body);
	memcpy(r->body, c->buf + hl, want);
	r->body[want] = '\0';
	r->body_len = want;
	memmove(c->buf, c->buf + hl + want, c->len - hl - want);
	c->len -= hl + want;
	return 0;
}

static void request(struct client *c, const char *raw, struct resp *r)
{
	client_send(c, raw, strlen(raw));
	assert_int_equal(client_read(c, r), 0);
}

/* True when the server closes the connection (after any pending bytes). */
static bool client_sees_eof(struct client *c)
{
	char b[4096];
	for (;;) {
		ssize_t k = recv(c->fd, b, sizeof b, 0);
		if (k == 0)
			return true;
		if (k < 0)
			return errno == ECONNRESET;
	}
}

static json_t *body_json(const struct resp *r)
{
	json_error_t e;
	json_t *j = json_loads(r->body, 0, &e);
	if (j == NULL)
		fail_msg("not JSON: %s", r->body);
	return j;
}

static void assert_error_body(const struct resp *r)
{
	json_t *j = body_json(r);
	assert_true(json_is_string(json_object_get(j, "error")));
	json_decref(j);
}

/* One request on a fresh unix connection. */
static void once(struct fixture *f, const char *raw, struct resp *r)
{
	static struct client c;
	client_unix(&c, f->sock);
	request(&c, raw, r);
	close(c.fd);
}

/* ---- tests ---- */

static void test_params_query_json(void **state)
{
	struct fixture *f = *state;
	static struct resp r;
	once(f, "GET /v1/services/web%2D1?after=42&x=a+b%21 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Type: application/json\r\n"));
	json_t *j = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "web-1");
	assert_string_equal(json_string_value(json_object_get(j, "after")), "42");
	assert_string_equal(json_string_value(json_object_get(j, "x")), "a b!");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/services/web%2D1");
	json_decref(j);

	once(f, "GET /v1/services/db HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	j = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "db");
	assert_true(json_is_null(json_object_get(j, "after")));
	json_decref(j);

	once(f, "POST /v1/services/web/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Type: text/plain\r\n"));
	assert_string_equal(r.body, "paused web\n");
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	static struct resp r;

	once(f, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	assert_error_body(&r);
	once(f, "GET /v1/services/ HTTP/1.1\r\nHost: x\r\n\r\n", &r); /* empty {name} */
	assert_int_equal(r.status, 404);

	once(f, "DELETE /v1/services/web HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.head, "Allow: GET\r\n"));
	assert_error_body(&r);

	once(f, "GET /v1/services/web HTTP/1.1\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	assert_error_body(&r);
	once(f, "GET /v1/services/web HTTP/1.1\r\n\r\n", &r); /* no Host */
	assert_int_equal(r.status, 400);
	once(f, "GET /v1/services/a%zz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	once(f, "GET /v1/services/a%00 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	/* an error message carrying bytes that are not UTF-8 still gives a JSON body */
	once(f, "GET /v1/fail/a%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	json_t *j = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "no service 'a?" "?'");
	json_decref(j);
	once(f, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 505);

	once(f, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", &r);
	assert_int_equal(r.status, 413);
	assert_error_body(&r);

	static char big[20000];
	int n = snprintf(big, sizeof big, "GET /v1/services/web HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'a', 17000);
	memcpy(big + n + 17000, "\r\n\r\n", 5);
	once(f, big, &r);
	assert_int_equal(r.status, 431);
	assert_error_body(&r);
}

static void test_bodies(void **state)
{
	struct fixture *f = *state;
	static struct resp r;
	once(f, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\nContent-Length: 11\r\n\r\n"
		"hello world", &r);
	assert_int_equal(r.status, 200);
	json_t *j = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 11);
	assert_string_equal(json_string_value(json_object_get(j, "ua")), "t/1");
	json_decref(j);

	once(f, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
	json_decref(j);

	once(f, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n", &r);
	assert_int_equal(r.status, 400);

	/* Expect: 100-continue gets an interim response before the body is sent */
	static struct client c;
	client_unix(&c, f->sock);
	const char *h = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
	request(&c, h, &r);
	assert_int_equal(r.status, 100);
	request(&c, "ok", &r);
	assert_int_equal(r.status, 200);
	close(c.fd);
}

static void test_socket_mode_and_stale(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(stat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	/* a second server on its own loop: the live socket is refused, a stale one replaced */
	uv_loop_t loop;
	struct api *api;
	uv_loop_init(&loop);
	api_new(&loop, &api);
	assert_int_equal(api_listen_unix(api, f->sock), -EADDRINUSE);

	char stale[160], file[160];
	snprintf(stale, sizeof stale, "%s/stale.sock", f->dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, stale);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd); /* the file stays, nobody listens */
	snprintf(file, sizeof file, "%s/plain", f->dir);
	FILE *fp = fopen(file, "w");
	fclose(fp);
	assert_int_equal(api_listen_unix(api, file), -EEXIST);
	assert_int_equal(api_listen_unix(api, stale), 0);
	assert_int_equal(stat(stale, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	api_close(api, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(stat(stale, &st), -1); /* removed on close */
	unlink(file);
}

static void test_keep_alive(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	client_unix(&c, f->sock);
	request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_null(strstr(r.head, "Connection: close"));
	request(&c, "GET /v1/services/b HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"b\""));
	/* a 404 keeps the connection too; two pipelined requests, the second async */
	request(&c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	const char *two = "GET /v1/async HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/services/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	client_send(&c, two, strlen(two));
	assert_int_equal(client_read(&c, &r), 0);
	assert_int_equal(r.status, 202);
	assert_int_equal(client_read(&c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Connection: close\r\n"));
	assert_true(client_sees_eof(&c));
	close(c.fd);

	/* HTTP/1.0 without keep-alive closes */
	client_unix(&c, f->sock);
	request(&c, "GET /v1/services/a HTTP/1.0\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_true(client_sees_eof(&c));
	close(c.fd);
}

static void test_sse(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	client_unix(&c, f->sock);
	const char *req = "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
	client_send(&c, req, strlen(req));
	char want[512];
	int wn = snprintf(want, sizeof want, "id: 1\nevent: rollout\ndata: {\"state\":\"progressing\"}\n\n"
			  "id: 2\ndata: line one\ndata: line two\n\n"
			  "event: xy\ndata: a\ndata: b\ndata: c\n");
	for (int i = 0; i < 19; i++)
		wn += snprintf(want + wn, sizeof want - (size_t)wn, "data: \n");
	snprintf(want + wn, sizeof want - (size_t)wn, "\n");
	for (;;) {
		c.buf[c.len] = '\0';
		const char *end = strstr(c.buf, "\r\n\r\n");
		if (end && strlen(end + 4) >= strlen(want))
			break;
		assert_true(client_fill(&c) > 0);
	}
	assert_non_null(strstr(c.buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(c.buf, "Content-Type: text/event-stream\r\n"));
	assert_null(strstr(c.buf, "Content-Length"));
	assert_string_equal(strstr(c.buf, "\r\n\r\n") + 4, want);
	assert_int_equal(atomic_load(&f->closed_sse), 0);
	close(c.fd);
	for (int i = 0; i < 200 && !atomic_load(&f->closed_sse); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&f->closed_sse), 1);
}

static void test_client_gone(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	client_unix(&c, f->sock);
	const char *req = "GET /v1/hang HTTP/1.1\r\nHost: x\r\n\r\n";
	client_send(&c, req, strlen(req));
	usleep(50000);
	assert_int_equal(atomic_load(&f->closed_hang), 0);
	close(c.fd);
	for (int i = 0; i < 200 && !atomic_load(&f->closed_hang); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&f->closed_hang), 1);
}

static void test_timeouts(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	/* head timeout (300 ms here): a trickling head gets 408 and the connection closes */
	client_unix(&c, f->sock);
	client_send(&c, "GET /v1/serv", 12);
	usleep(150000);
	client_send(&c, "ices/a HT", 9); /* more bytes do not extend the head deadline */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(client_read(&c, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, 408);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	assert_true(client_sees_eof(&c));
	close(c.fd);
	/* idle (1 s here): an idle connection is closed without a response */
	client_unix(&c, f->sock);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(client_fill(&c), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 900 && ms < 3000);
	close(c.fd);
}

static void test_max_conns(void **state)
{
	struct fixture *f = *state;
	static int fds[API_MAX_CONNS];
	static struct client c;
	struct resp *r = malloc(sizeof *r);
	for (int i = 0; i < API_MAX_CONNS; i++) {
		client_unix(&c, f->sock);
		fds[i] = c.fd;
	}
	/* one too many: told it is busy (a 503, not silence: the CLI must not say "no daemon") and
	 * closed at once, long before the 1 s idle timeout */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	client_unix(&c, f->sock);
	assert_int_equal(client_read(&c, r), 0);
	assert_int_equal(r->status, 503);
	assert_non_null(strstr(r->body, "daemon busy"));
	assert_true(client_sees_eof(&c));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 800);
	close(c.fd);
	/* the first ones still work; once one leaves, a new connection is served */
	c.fd = fds[0];
	c.len = 0;
	request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", r);
	assert_int_equal(r->status, 200);
	close(fds[1]);
	usleep(50000);
	client_unix(&c, f->sock);
	fds[1] = c.fd;
	request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", r);
	assert_int_equal(r->status, 200);
	for (int i = 0; i < API_MAX_CONNS; i++)
		close(fds[i]);
	free(r);
}

/* TCP clients (no token needed to connect) filling their cap leave the unix socket's capacity
 * alone: the local CLI still gets in. */
static void test_max_conns_per_listener(void **state)
{
	struct fixture *f = *state;
	static int fds[API_MAX_CONNS + 8];
	static struct client c;
	static struct resp r;
	for (int i = 0; i < API_MAX_CONNS + 8; i++) {
		client_tcp(&c, f->port);
		fds[i] = c.fd;
	}
	usleep(100000); /* let the server accept them all */
	for (int i = 0; i < 4; i++) {
		once(f, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
		assert_int_equal(r.status, 200);
	}
	for (int i = 0; i < API_MAX_CONNS + 8; i++)
		close(fds[i]);
}

/* Sends head, then body in pieces with pauses between, so the body spans many reads after the
 * server's buffer has grown; returns the digest reply. */
static void send_split(struct client *c, const char *head, const char *body, size_t n, size_t piece)
{
	client_send(c, head, strlen(head));
	usleep(20000);
	for (size_t off = 0; off < n; off += piece) {
		client_send(c, body + off, n - off < piece ? n - off : piece);
		if ((off / piece) % 16 == 0)
			usleep(2000);
	}
}

/* Bodies that arrive after the connection's buffer grew (about 12 KiB and up) reach the handler
 * intact, and the head's fields are still right: today's bug wrote through stale pointers. */
static void test_big_bodies(void **state)
{
	struct fixture *f = *state;
	struct client *c = malloc(sizeof *c);
	struct resp *r = malloc(sizeof *r);
	size_t sizes[] = {13000, 20 * 1024, 300 * 1024, 900 * 1024, API_MAX_BODY};
	char *body = malloc(API_MAX_BODY);
	for (size_t i = 0; i < API_MAX_BODY; i++)
		body[i] = (char)('a' + (i * 7 + i / 1000) % 26);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = sizes[k];
		uint32_t h = 2166136261u;
		for (size_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)body[i]) * 16777619u;
		char head[256];
		snprintf(head, sizeof head,
			 "POST /v1/digest HTTP/1.1\r\nHost: x\r\nUser-Agent: t/2\r\nContent-Length: %zu\r\n\r\n", n);
		client_unix(c, f->sock);
		send_split(c, head, body, n, 4096);
		assert_int_equal(client_read(c, r), 0);
		assert_int_equal(r->status, 200);
		json_t *j = body_json(r);
		assert_int_equal(json_integer_value(json_object_get(j, "len")), n);
		assert_int_equal(json_integer_value(json_object_get(j, "hash")), h);
		assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
		json_decref(j);
		/* and the connection goes on */
		request(c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", r);
		assert_int_equal(r->status, 200);
		close(c->fd);
	}
	/* chunked, in many chunks */
	client_unix(c, f->sock);
	const char *chead = "POST /v1/digest HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
	client_send(c, chead, strlen(chead));
	usleep(20000);
	uint32_t h = 2166136261u;
	size_t total = 0;
	for (size_t off = 0; off < 200 * 1024; off += 1000, total += 1000) {
		char line[16];
		snprintf(line, sizeof line, "%x\r\n", 1000);
		client_send(c, line, strlen(line));
		client_send(c, body + off, 1000);
		client_send(c, "\r\n", 2);
		for (size_t i = off; i < off + 1000; i++)
			h = (h ^ (unsigned char)body[i]) * 16777619u;
	}
	client_send(c, "0\r\n\r\n", 5);
	assert_int_equal(client_read(c, r), 0);
	assert_int_equal(r->status, 200);
	json_t *j = body_json(r);
	assert_int_equal(json_integer_value(json_object_get(j, "len")), total);
	assert_int_equal(json_integer_value(json_object_get(j, "hash")), h);
	json_decref(j);
	close(c->fd);
	/* the reproduction: 1,000,000 bytes to the open route, on TCP without a token */
	client_tcp(c, f->port);
	send_split(c, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", body, 1000000, 8192);
	assert_int_equal(client_read(c, r), 0);
	assert_int_equal(r->status, 200);
	close(c->fd);
	once(f, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", r);
	assert_int_equal(r->status, 200);
	free(body);
	free(c);
	free(r);
}

/* A body dribbled a byte at a time gets 408 at the body deadline (600 ms here), although every
 * byte comes well within the idle timeout (1 s). */
static void test_body_deadline(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	client_unix(&c, f->sock);
	const char *h = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
	client_send(&c, h, strlen(h));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool answered = false;
	for (int i = 0; i < 40 && !answered; i++) {
		usleep(100000);
		if (send(c.fd, "x", 1, MSG_NOSIGNAL) != 1)
			break; /* already closed */
		char b;
		answered = recv(c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
	}
	assert_int_equal(client_read(&c, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, 408);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms < 2500); /* 40 bytes take 4 s: the deadline, not the byte count, ended it */
	assert_true(client_sees_eof(&c));
	close(c.fd);
}

/* A client that pipelines requests for big responses without reading: the server stops taking
 * requests while more than 1 MiB is unsent, then resumes; every response arrives intact. */
static void test_pipeline_backpressure(void **state)
{
	struct fixture *f = *state;
	struct client *c = malloc(sizeof *c);
	struct resp *r = malloc(sizeof *r);
	client_unix(c, f->sock);
	const char *one = "GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\n";
	for (int i = 0; i < 16; i++)
		client_send(c, one, strlen(one));
	usleep(100000);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(client_read(c, r), 0);
		assert_int_equal(r->status, 200);
		assert_int_equal(r->body_len, 256 * 1024);
		assert_int_equal(r->body[r->body_len - 1], 'b');
	}
	request(c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", r);
	assert_int_equal(r->status, 200);
	close(c->fd);
	free(c);
	free(r);
}

static void test_head_method(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	/* HEAD gets the head a GET would get and no body, and the connection stays usable: the next
	 * bytes on it are the next response's */
	const char *heads[] = {"HEAD /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n",
			       "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"};
	int want[] = {405, 404};
	for (int i = 0; i < 2; i++) {
		client_unix(&c, f->sock);
		client_send(&c, heads[i], strlen(heads[i]));
		request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
		/* request() read the HEAD answer as a response with a body: it must be the GET's */
		assert_int_equal(r.status, want[i]);
		assert_non_null(strstr(r.head, "Content-Length: "));
		assert_true(r.body_len > 0);
		assert_int_equal(r.body[0], 'H'); /* the body it read is the next response's head */
		close(c.fd);
	}
}

static void test_tcp_token(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	const char *reqs[] = {
		"GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/services/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n",
		"GET /v1/services/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "x\r\n\r\n",
		"GET /v1/services/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
		"GET /v1/services/a HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " TOKEN "\r\n\r\n",
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", /* 401 before routing */
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		client_tcp(&c, f->port);
		request(&c, reqs[i], &r);
		assert_int_equal(r.status, 401);
		assert_non_null(strstr(r.head, "WWW-Authenticate: Bearer\r\n"));
		close(c.fd);
	}
	client_tcp(&c, f->port);
	request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\nAuthorization: bearer " TOKEN "\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	request(&c, "GET /v1/services/b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN "\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	close(c.fd);
	/* the unix socket needs no token */
	once(f, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
}

/* GET / (an open route) answers over TCP without the token; nothing else does, however spelled. */
static void test_open_route_dashboard(void **state)
{
	struct fixture *f = *state;
	static struct client c;
	static struct resp r;
	size_t n;
	const char *page = dashboard_page(&n);
	client_tcp(&c, f->port);
	request(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.head, "Content-Type: text/html; charset=utf-8\r\n"));
	assert_non_null(strstr(r.head, "X-Content-Type-Options: nosniff\r\n"));
	assert_non_null(strstr(r.head, "Cache-Control: no-store\r\n"));
	assert_non_null(strstr(r.head, "Content-Security-Policy: default-src 'none'; "));
	assert_int_equal(r.body_len, n);
	assert_memory_equal(r.body, page, n);
	/* keep-alive goes on, and each request is checked on its own */
	request(&c, "GET /?service=a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	request(&c, "GET /v1/services/a HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 401);
	close(c.fd);
	const char *reqs[] = {
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET // HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /%2F HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/services/a?/ HTTP/1.1\r\nHost: x\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		client_tcp(&c, f->port);
		request(&c, reqs[i], &r);
		assert_int_equal(r.status, 401);
		close(c.fd);
	}
	once(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	/* the page builds no markup from strings and loads nothing from elsewhere */
	assert_int_equal(strlen(page), n);
	assert_null(strstr(page, "innerHTML"));
	assert_null(strstr(page, "outerHTML"));
	assert_null(strstr(page, "insertAdjacentHTML"));
	assert_null(strstr(page, "document.write"));
	assert_null(strstr(page, "://"));
}

static void test_listen_args(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct api *api;
	uv_loop_init(&loop);
	api_new(&loop, &api);
	assert_int_equal(api_tcp_port(api), -ENOTCONN);
	assert_int_equal(api_listen_tcp(api, "127.0.0.1:0", ""), -EINVAL);
	assert_int_equal(api_listen_tcp(api, "127.0.0.1", "t"), -EINVAL);
	assert_int_equal(api_listen_tcp(api, "127.0.0.1:99999", "t"), -EINVAL);
	assert_int_equal(api_listen_tcp(api, "nohost:80", "t"), -EINVAL);
	api_close(api, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_params_query_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_mode_and_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_conns_per_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_route_dashboard, setup, teardown),
		cmocka_unit_test(test_listen_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
