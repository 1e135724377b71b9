/* The daemon's HTTP/1.1 + JSON server: connections, limits and timeouts, routing, replies and
 * server-sent events. Heads are parsed by util/http1; nothing reaches a handler unless complete. */
#include "daemon/api.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/http1.h"
#include "util/xmalloc.h"

#define MAX_HEADERS 64
#define MAX_SEGS API_MAX_SEGS
#define MAX_QUERY 32
#define BUF_MAX (API_MAX_HEAD + API_MAX_BODY + 4096)
#define SSE_MAX_QUEUE (4 * 1024 * 1024) /* unsent bytes before a slow SSE client is dropped */
#define WQ_MAX (1024 * 1024) /* unsent response bytes before pipelined requests wait */
#define API_MAX_REFUSING 64 /* clients over a listener's cap that are told 503 rather than cut */
#define REFUSE_MS 1000      /* how long such a client has to read it */

struct route {
	char *method;
	char *segs[MAX_SEGS];
	int nsegs;
	api_handler fn;
	void *ctx;
	bool open; /* answers on TCP without the bearer token (api_route_open) */
};

enum conn_state { C_HEAD, C_BODY, C_HANDLER, C_SSE, C_CLOSING };

struct conn {
	struct api *api;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_timer_t timer;
	int open_handles;
	struct conn *prev, *next;
	enum conn_state state;
	bool need_auth;
	bool unauth;     /* the current request came without the token: only an open route may take it */
	bool eof;        /* read side ended: no further request will come */
	bool in_process; /* conn_process() is on the stack */
	bool head_timer; /* the head timer runs for the current request */
	bool reading;
	bool shutting; /* conn_finish() ran */
	bool paused;   /* the client does not read its responses: stop taking requests */
	bool tcp;      /* accepted on the TCP listener (counted against its own cap) */
	bool head_req; /* the current request is HEAD: responses carry no body */
	bool refused;  /* over its listener's cap: told 503, closed when the client is done */
	bool shut;     /* the write side is shut (shutdown_cb ran) */
	char *buf;
	size_t len, cap;
	struct http1_parser parser;
	struct http1_header hdrs[MAX_HEADERS];
	struct http1_msg msg;
	size_t head_len;
	/* request body: plain, or chunked decoded in place at buf[head_len..) */
	bool chunked;
	struct http1_chunked dec;
	size_t raw_off, body_len;
	struct api_req *req; /* given to a handler, not yet finished */
};

struct api_req {
	struct conn *conn; /* NULL once the connection is gone */
	char *mem;         /* head copy with NULs written in, then the body */
	size_t mem_len;    /* wiped on free: a body may hold secret env values, a head the token */
	const char *method, *path, *body;
	size_t body_len;
	char *names[MAX_SEGS + MAX_QUERY], *values[MAX_SEGS + MAX_QUERY];
	int nparams, nquery; /* params first, then query pairs */
	const char *hname[MAX_HEADERS], *hvalue[MAX_HEADERS];
	int nheaders;
	bool keep_alive, closed, sse;
	void (*on_close)(struct api_req *, void *);
	void *on_close_arg;
	void *data;
};

struct api {
	uv_loop_t *loop;
	uv_pipe_t *unix_ln;
	uv_tcp_t *tcp_ln;
	char *unix_path;
	char *token;
	size_t token_len;
	struct route *routes;
	size_t nroutes, cap_routes;
	struct conn *conns;
	int nconns;
	int nconns_tcp; /* of nconns: the TCP listener's, so TCP clients cannot fill the unix socket's */
	int pending; /* handles being closed by api_close() */
	bool closing;
	void (*done)(void *);
	void *done_arg;
	uint64_t head_ms, idle_ms, body_ms;
	char scratch[4096];
};

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void timeout_cb(uv_timer_t *t);

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 422: return "Unprocessable Content";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

int api_new(uv_loop_t *loop, struct api **out)
{
	struct api *api = xcalloc(1, sizeof *api);
	api->loop = loop;
	api->head_ms = 10000;
	api->idle_ms = 30000;
	api->body_ms = 60000;
	*out = api;
	return 0;
}

void api_set_timeouts(struct api *api, uint64_t head_ms, uint64_t idle_ms, uint64_t body_ms)
{
	api->head_ms = head_ms;
	api->idle_ms = idle_ms;
	api->body_ms = body_ms;
}

/* ---- routing ---- */

int api_split_path(char *path, char **segs)
{
	int n = 0;
	char *s = path + 1;
	for (;;) {
		if (n == MAX_SEGS)
			return -1;
		segs[n++] = s;
		char *slash = strchr(s, '/');
		if (slash == NULL)
			return n;
		*slash = '\0';
		s = slash + 1;
	}
}

void api_route(struct api *api, const char *method, const char *pattern, api_handler fn, void *ctx)
{
	xgrow((void **)&api->routes, &api->cap_routes, api->nroutes + 1, sizeof *api->routes);
	struct route *r = &api->routes[api->nroutes++];
	memset(r, 0, sizeof *r);
	r->method = xstrdup(method);
	char *tmp = xstrdup(pattern);
	char *segs[MAX_SEGS];
	r->nsegs = tmp[0] == '/' ? api_split_path(tmp, segs) : -1;
	for (int i = 0; i < r->nsegs; i++)
		r->segs[i] = xstrdup(segs[i]);
	free(tmp);
	r->fn = fn;
	r->ctx = ctx;
}

void api_route_open(struct api *api, const char *method, const char *path, api_handler fn, void *ctx)
{
	assert(strchr(path, '{') == NULL);
	api_route(api, method, path, fn, ctx);
	api->routes[api->nroutes - 1].open = true;
}

static bool is_param(const char *seg)
{
	size_t n = strlen(seg);
	return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int api_percent_decode(const char *s, size_t n, bool plus, char **out)
{
	char *d = xmalloc(n + 1), *o = d;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(d);
				return -EINVAL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = plus && s[i] == '+' ? ' ' : s[i];
		}
	}
	*o = '\0';
	*out = d;
	return 0;
}

/* ---- requests ---- */

static void req_free(struct api_req *req)
{
	for (int i = 0; i < req->nparams + req->nquery; i++) {
		free(req->names[i]);
		free(req->values[i]);
	}
	if (req->mem != NULL)
		xwipe(req->mem, req->mem_len);
	free(req->mem);
	free(req);
}

const char *api_req_method(const struct api_req *req) { return req->method; }
const char *api_req_path(const struct api_req *req) { return req->path; }
bool api_req_closed(const struct api_req *req) { return req->closed; }
void api_req_set_data(struct api_req *req, void *data) { req->data = data; }
void *api_req_data(const struct api_req *req) { return req->data; }

const char *api_req_body(const struct api_req *req, size_t *len)
{
	if (len)
		*len = req->body_len;
	return req->body;
}

const char *api_param(const struct api_req *req, const char *name)
{
	for (int i = 0; i < req->nparams; i++)
		if (strcmp(req->names[i], name) == 0)
			return req->values[i];
	return NULL;
}

const char *api_query(const struct api_req *req, const char *name)
{
	for (int i = req->nparams; i < req->nparams + req->nquery; i++)
		if (strcmp(req->names[i], name) == 0)
			return req->values[i];
	return NULL;
}

const char *api_header(const struct api_req *req, const char *name)
{
	for (int i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->hname[i], name) == 0)
			return req->hvalue[i];
	return NULL;
}

void api_req_on_close(struct api_req *req, void (*cb)(struct api_req *, void *), void *arg)
{
	req->on_close = cb;
	req->on_close_arg = arg;
}

/* ---- writing ---- */

struct wreq {
	uv_write_t w;
	char *data;
};

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = w->data;
	free(wr->data);
	free(wr);
	if (uv_is_closing(&c->h.handle))
		return;
	if (status < 0)
		conn_close(c);
	else if (c->paused && uv_stream_get_write_queue_size(&c->h.stream) <= WQ_MAX) {
		c->paused = false;
		conn_process(c);
	}
}

/* Queues data (taken over, freed after the write) on c. */
static void conn_write(struct conn *c, char *data, size_t n)
{
	if (uv_is_closing(&c->h.handle)) {
		free(data);
		return;
	}
	struct wreq *wr = xmalloc(sizeof *wr);
	wr->data = data;
	wr->w.data = c;
	uv_buf_t b = uv_buf_init(data, (unsigned)n);
	if (uv_write(&wr->w, &c->h.stream, &b, 1, write_cb) < 0) {
		free(data);
		free(wr);
		conn_close(c);
	}
}

static void shutdown_cb(uv_shutdown_t *s, int status)
{
	(void)status;
	struct conn *c = s->data;
	free(s);
	c->shut = true;
	/* a refused client still has to read the 503: closing both ways now could reach it before
	 * it saw its connect succeed (curl then reports "could not connect"); its EOF or the timer
	 * closes */
	if (!uv_is_closing(&c->h.handle) && !(c->refused && !c->eof))
		conn_close(c);
}

/* Stops processing input and closes c once every queued write went out. */
static void conn_finish(struct conn *c)
{
	c->state = C_CLOSING;
	if (uv_is_closing(&c->h.handle) || c->shutting)
		return;
	c->shutting = true;
	/* a client that never reads would keep the shutdown pending forever */
	uv_timer_start(&c->timer, timeout_cb, c->api->idle_ms, 0);
	uv_shutdown_t *s = xmalloc(sizeof *s);
	s->data = c;
	if (uv_shutdown(s, &c->h.stream, shutdown_cb) < 0) {
		free(s);
		conn_close(c);
	}
}

/* Writes a whole response on c; closes afterwards unless keep. */
static void conn_respond(struct conn *c, int status, const char *ctype, const char *body, size_t n,
			 bool keep, const char *extra)
{
	char *head = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			       "Cache-Control: no-store\r\n%s%s\r\n",
			       status, reason(status), ctype, n, extra ? extra : "",
			       keep ? "" : "Connection: close\r\n");
	size_t hn = strlen(head);
	if (c->head_req) /* the same head as for GET, no body (RFC 9110 9.3.2) */
		n = 0;
	char *all = xmalloc(hn + n);
	memcpy(all, head, hn);
	memcpy(all + hn, body, n);
	free(head);
	conn_write(c, all, hn + n);
	if (!keep)
		conn_finish(c);
}

static char *error_json(const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	if (j == NULL) { /* not UTF-8 (a decoded path segment, say): keep the ASCII */
		char *ascii = xstrdup(msg);
		for (char *p = ascii; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		j = json_pack("{s:s}", "error", ascii);
		free(ascii);
	}
	char *s = json_dumps(j, 0);
	json_decref(j);
	char *out = xasprintf("%s\n", s);
	free(s);
	return out;
}

/* An error answered by the server itself; the connection is closed after it unless keep. */
static void conn_error(struct conn *c, int status, const char *msg, bool keep, const char *extra)
{
	char *body = error_json(msg);
	conn_respond(c, status, "application/json", body, strlen(body), keep, extra);
	free(body);
}

static void resume_cb(uv_timer_t *t)
{
	conn_process(t->data);
}

/* Detaches req from its connection and resumes reading the next request (or closes). */
static void req_done(struct api_req *req, bool keep)
{
	struct conn *c = req->conn;
	c->req = NULL;
	req->conn = NULL;
	if (!keep || c->eof) {
		conn_finish(c);
		return;
	}
	c->state = C_HEAD;
	if (!c->in_process) /* an asynchronous reply: continue from the loop, not the caller's stack */
		uv_timer_start(&c->timer, resume_cb, 0, 0);
}

static int reply(struct api_req *req, int status, const char *ctype, const char *extra, const char *body,
		 size_t n)
{
	if (req->conn == NULL || req->closed || req->sse) {
		if (req->conn)
			req->conn->req = NULL;
		req_free(req);
		return -EPIPE;
	}
	struct conn *c = req->conn;
	bool keep = req->keep_alive && !c->eof;
	conn_respond(c, status, ctype, body, n, keep, extra);
	if (keep)
		req_done(req, true);
	else {
		c->req = NULL;
		req->conn = NULL;
	}
	req_free(req);
	return 0;
}

int api_reply_json(struct api_req *req, int status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_ENCODE_ANY) : NULL;
	json_decref(body);
	char *text = xasprintf("%s\n", s ? s : "null");
	free(s);
	int rc = reply(req, status, "application/json", NULL, text, strlen(text));
	free(text);
	return rc;
}

int api_reply_error(struct api_req *req, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	char *body = error_json(msg);
	int rc = reply(req, status, "application/json", NULL, body, strlen(body));
	free(body);
	return rc;
}

int api_reply_text(struct api_req *req, int status, const char *content_type, const char *text)
{
	return reply(req, status, content_type, NULL, text, strlen(text));
}

int api_reply_with(struct api_req *req, int status, const char *content_type, const char *headers,
		   const char *body, size_t len)
{
	return reply(req, status, content_type, headers, body, len);
}

int api_sse_start(struct api_req *req)
{
	if (req->conn == NULL || req->closed)
		return -EPIPE;
	struct conn *c = req->conn;
	req->sse = true;
	c->state = C_SSE;
	uv_timer_stop(&c->timer);
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				   "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
	conn_write(c, xstrdup(head), sizeof head - 1);
	return 0;
}

int api_sse_send(struct api_req *req, int64_t id, const char *event, const char *data)
{
	if (req->conn == NULL || req->closed || !req->sse)
		return -EPIPE;
	struct conn *c = req->conn;
	if (uv_stream_get_write_queue_size(&c->h.stream) > SSE_MAX_QUEUE) {
		conn_close(c);
		return -EPIPE;
	}
	/* every line (CR, LF or CRLF ends one, as in the SSE grammar) becomes "data: ...\n" */
	size_t lines = 1;
	for (const char *p = data; *p; p++)
		lines += *p == '\n' || *p == '\r';
	size_t cap = strlen(data) + 7 * lines + (event ? strlen(event) : 0) + 48, n = 0;
	char *out = xmalloc(cap);
	if (id >= 0)
		n += (size_t)sprintf(out + n, "id: %lld\n", (long long)id);
	if (event) {
		n += (size_t)sprintf(out + n, "event: ");
		for (const char *e = event; *e; e++)
			if (*e != '\n' && *e != '\r')
				out[n++] = *e;
		out[n++] = '\n';
	}
	const char *d = data;
	do {
		size_t k = strcspn(d, "\r\n");
		memcpy(out + n, "data: ", 6);
		n += 6;
		memcpy(out + n, d, k);
		n += k;
		out[n++] = '\n';
		d += k;
		if (d[0] == '\r' && d[1] == '\n')
			d += 2;
		else if (*d)
			d++;
	} while (*d);
	out[n++] = '\n';
	conn_write(c, out, n);
	return 0;
}

void api_sse_end(struct api_req *req)
{
	struct conn *c = req->conn;
	if (c) {
		c->req = NULL;
		req->conn = NULL;
		conn_finish(c);
	}
	req_free(req);
}

/* ---- connections ---- */

static void api_maybe_done(struct api *api)
{
	if (!api->closing || api->pending > 0 || api->nconns > 0)
		return;
	void (*done)(void *) = api->done;
	void *arg = api->done_arg;
	for (size_t i = 0; i < api->nroutes; i++) {
		free(api->routes[i].method);
		for (int k = 0; k < api->routes[i].nsegs; k++)
			free(api->routes[i].segs[k]);
	}
	free(api->routes);
	if (api->token) {
		xwipe(api->token, api->token_len);
		free(api->token);
	}
	free(api->unix_path);
	free(api);
	if (done)
		done(arg);
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct api *api = c->api;
	if (c->prev)
		c->prev->next = c->next;
	else
		api->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	api->nconns--;
	api->nconns_tcp -= c->tcp;
	struct api_req *req = c->req;
	if (c->buf != NULL)
		xwipe(c->buf, c->len); /* a request read in part may hold a secret or the token */
	free(c->buf);
	free(c);
	if (req) {
		req->conn = NULL;
		if (req->on_close)
			req->on_close(req, req->on_close_arg);
	}
	api_maybe_done(api);
}

/* Closes c now (queued writes are dropped). A request still held by a handler is marked closed
 * at once; its on_close callback runs from the close callback, never from this caller's stack. */
static void conn_close(struct conn *c)
{
	if (uv_is_closing(&c->h.handle))
		return;
	c->state = C_CLOSING;
	if (c->req)
		c->req->closed = true;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close(&c->h.handle, conn_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)hint;
	struct conn *c = h->data;
	if (c->state == C_SSE || c->state == C_CLOSING) {
		*b = uv_buf_init(c->api->scratch, sizeof c->api->scratch);
		return;
	}
	if (c->cap - c->len < 4096 && c->cap < BUF_MAX) {
		size_t ncap = c->cap ? c->cap * 2 : 16384;
		if (ncap > BUF_MAX)
			ncap = BUF_MAX;
		char *nb = xmalloc(ncap); /* not realloc: the old buffer is wiped, not left to the allocator */
		if (c->buf != NULL) {
			memcpy(nb, c->buf, c->len);
			/* a parsed head whose body is still coming points into the buffer: move it along */
			if (c->state == C_BODY)
				http1_msg_rebase(&c->msg, c->buf, nb);
			xwipe(c->buf, c->len);
			free(c->buf);
		}
		c->buf = nb;
		c->cap = ncap;
	}
	*b = uv_buf_init(c->len < c->cap ? c->buf + c->len : NULL, (unsigned)(c->cap - c->len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	if (n == UV_ENOBUFS) { /* pipelined input while a handler runs: wait for its reply */
		uv_read_stop(s);
		c->reading = false;
		return;
	}
	if (n < 0) {
		uv_read_stop(s);
		c->reading = false;
		c->eof = true;
		if (c->state == C_CLOSING && !(c->refused && c->shut))
			return; /* the pending shutdown (or its timer) closes */
		if (n == UV_EOF && c->state == C_HEAD && c->len == 0)
			conn_finish(c); /* let queued responses drain */
		else
			conn_close(c);
		return;
	}
	if (n == 0 || b->base == c->api->scratch)
		return;
	c->len += (size_t)n;
	if (c->state == C_HEAD || c->state == C_BODY)
		conn_process(c);
}

static void arm(struct conn *c, uint64_t ms)
{
	uv_timer_start(&c->timer, timeout_cb, ms, 0);
}

static void timeout_cb(uv_timer_t *t)
{
	struct conn *c = t->data;
	if ((c->state == C_HEAD && c->len > 0) || c->state == C_BODY)
		conn_error(c, 408, "request not received in time", false, NULL);
	else
		conn_close(c);
}

static void reset_parser(struct conn *c)
{
	http1_parser_init(&c->parser, HTTP1_REQUEST, c->hdrs, MAX_HEADERS);
	c->parser.max_head = API_MAX_HEAD;
	c->head_timer = false;
}

/* Constant-time check of "Authorization: Bearer <token>" (exactly one such header). */
static bool authorized(struct conn *c)
{
	struct api *api = c->api;
	int i = http1_find(&c->msg, "authorization", 0);
	if (i < 0 || http1_find(&c->msg, "authorization", (size_t)i + 1) >= 0)
		return false;
	const struct http1_header *h = &c->msg.headers[i];
	if (h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0)
		return false;
	const char *t = h->value + 7;
	size_t tn = h->value_len - 7;
	while (tn && *t == ' ')
		t++, tn--;
	unsigned char diff = tn != api->token_len;
	for (size_t k = 0; k < api->token_len; k++)
		diff |= (unsigned char)api->token[k] ^ (unsigned char)(k < tn ? t[k] : 0);
	return diff == 0;
}

/* True when the request head in c names an open route exactly: its method, and its origin-form
 * path (the query aside) byte for byte as registered. Anything else (another spelling, an
 * absolute-form target) is not open, so an unauthenticated request fails closed. */
static bool open_route(const struct conn *c)
{
	const struct http1_msg *m = &c->msg;
	size_t plen = 0;
	while (plen < m->target_len && m->target[plen] != '?')
		plen++;
	for (size_t i = 0; i < c->api->nroutes; i++) {
		const struct route *r = &c->api->routes[i];
		if (!r->open || strlen(r->method) != m->method_len ||
		    memcmp(r->method, m->method, m->method_len) != 0)
			continue;
		/* rebuild the registered path from its segments: "/" + segs joined by "/" */
		size_t k = 0;
		bool same = true;
		for (int s = 0; s < r->nsegs && same; s++) {
			size_t n = strlen(r->segs[s]);
			same = k < plen && m->target[k] == '/' && plen - k - 1 >= n &&
			       memcmp(m->target + k + 1, r->segs[s], n) == 0;
			k += 1 + n;
		}
		if (same && k == plen)
			return true;
	}
	return false;
}

/* Fills req's params and query from the matched route and the raw query. Returns 0 or -EINVAL. */
static int fill_params(struct api_req *req, const struct route *r, char **decoded, const char *query)
{
	for (int i = 0; i < r->nsegs; i++) {
		if (!is_param(r->segs[i]))
			continue;
		req->names[req->nparams] = xstrndup(r->segs[i] + 1, strlen(r->segs[i]) - 2);
		req->values[req->nparams++] = xstrdup(decoded[i]);
	}
	const char *q = query;
	while (q && *q) {
		size_t n = strcspn(q, "&");
		if (n) {
			if (req->nquery == MAX_QUERY)
				return -EINVAL;
			const char *eq = memchr(q, '=', n);
			size_t kn = eq ? (size_t)(eq - q) : n;
			int k = req->nparams + req->nquery;
			char *name, *value;
			if (api_percent_decode(q, kn, true, &name) < 0)
				return -EINVAL;
			if (api_percent_decode(eq ? eq + 1 : q + n, eq ? n - kn - 1 : 0, true, &value) < 0) {
				free(name);
				return -EINVAL;
			}
			req->names[k] = name;
			req->values[k] = value;
			req->nquery++;
		}
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* A complete request: copy it into a request object, route it, hand it to the handler.
 * consumed is how many buffered bytes the request took (head, body, chunk framing). */
static void dispatch(struct conn *c, size_t body_len, size_t consumed)
{
	struct http1_msg *m = &c->msg;
	struct api *api = c->api;
	size_t hl = c->head_len;
	/* the head is parsed in place: its fields must lie in the current buffer (alloc_cb rebases) */
	assert(m->method >= c->buf && m->target + m->target_len <= c->buf + hl);
	struct api_req *req = xcalloc(1, sizeof *req);
	req->mem_len = hl + body_len + 2;
	req->mem = xmalloc(req->mem_len);
	memcpy(req->mem, c->buf, hl);
	memcpy(req->mem + hl + 1, c->buf + hl, body_len);
	req->mem[hl + 1 + body_len] = '\0';
	req->body = req->mem + hl + 1;
	req->body_len = body_len;
	req->keep_alive = m->keep_alive;
	/* every field is followed by a delimiter inside its line, overwritten with NUL in the copy */
#define AT(p) (req->mem + ((p) - c->buf))
	char *method = AT(m->method), *target = AT(m->target);
	method[m->method_len] = '\0';
	target[m->target_len] = '\0';
	for (size_t i = 0; i < m->nheaders; i++) {
		char *name = AT(m->headers[i].name), *value = AT(m->headers[i].value);
		name[m->headers[i].name_len] = '\0';
		value[m->headers[i].value_len] = '\0';
		req->hname[i] = name;
		req->hvalue[i] = value;
	}
#undef AT
	req->nheaders = (int)m->nheaders;
	req->method = method;

	memmove(c->buf, c->buf + consumed, c->len - consumed);
	xwipe(c->buf + c->len - consumed, consumed); /* the request's bytes live on in req->mem only */
	c->len -= consumed;
	reset_parser(c);
	c->state = C_HEAD;

	char *path = target;
	if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0) {
		char *slash = strchr(strstr(path, "//") + 2, '/');
		path = slash ? slash : (char *)"/";
	}
	if (path[0] != '/') {
		req_free(req);
		conn_error(c, 400, "unsupported request target", m->keep_alive, NULL);
		return;
	}
	char *query = strchr(path, '?');
	if (query)
		*query++ = '\0';
	req->path = path;

	char *tmp = xstrdup(path), *segs[MAX_SEGS], *decoded[MAX_SEGS];
	int n = api_split_path(tmp, segs), ndec = 0;
	const char *err = n < 0 ? "path has too many segments" : NULL;
	while (err == NULL && ndec < n) {
		if (api_percent_decode(segs[ndec], strlen(segs[ndec]), false, &decoded[ndec]) < 0)
			err = "bad percent-encoding in path";
		else
			ndec++;
	}
	const struct route *found = NULL;
	bool path_matched = false;
	char allow[256] = "";
	for (size_t i = 0; err == NULL && i < api->nroutes && found == NULL; i++) {
		const struct route *r = &api->routes[i];
		if (r->nsegs != n)
			continue;
		int k = 0;
		while (k < n && (is_param(r->segs[k]) ? decoded[k][0] != '\0'
						       : strcmp(r->segs[k], decoded[k]) == 0))
			k++;
		if (k < n)
			continue;
		path_matched = true;
		if (strcmp(r->method, method) == 0)
			found = r;
		else if (!strstr(allow, r->method) && strlen(allow) + strlen(r->method) + 3 < sizeof allow)
			snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
				 allow[0] ? ", " : "", r->method);
	}
	if (found && c->unauth && !found->open) { /* open_route() and the router disagree: fail closed */
		req_free(req);
		for (int i = 0; i < ndec; i++)
			free(decoded[i]);
		free(tmp);
		conn_error(c, 401, "missing or wrong bearer token", false, "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (found && fill_params(req, found, decoded, query) < 0)
		err = "bad query string";
	for (int i = 0; i < ndec; i++)
		free(decoded[i]);
	free(tmp);

	if (err || !found) {
		bool keep = m->keep_alive; /* HEAD included: its answer carries no body (conn_respond) */
		req_free(req);
		if (err) {
			conn_error(c, 400, err, keep, NULL);
		} else if (path_matched) {
			char *extra = xasprintf("Allow: %s\r\n", allow);
			conn_error(c, 405, "method not allowed", keep, extra);
			free(extra);
		} else {
			conn_error(c, 404, "no such path", keep, NULL);
		}
		return;
	}
	c->state = C_HANDLER;
	c->req = req;
	req->conn = c;
	uv_timer_stop(&c->timer);
	found->fn(req, found->ctx);
}

/* Head state: parse what is buffered. Returns true when the state moved on. */
static bool step_head(struct conn *c)
{
	struct api *api = c->api;
	c->head_req = false;
	if (c->len == 0) {
		c->head_timer = false;
		arm(c, api->idle_ms);
		return false;
	}
	int rc = http1_parse(&c->parser, c->buf, c->len, &c->msg);
	if (rc == 0) {
		if (!c->head_timer) { /* from the first byte; later bytes do not extend it */
			c->head_timer = true;
			arm(c, api->head_ms);
		}
		return false;
	}
	if (rc < 0) {
		conn_error(c, http1_status(rc), http1_strerror(rc), false, NULL);
		return false;
	}
	c->head_len = (size_t)rc;
	c->head_req = c->msg.method_len == 4 && memcmp(c->msg.method, "HEAD", 4) == 0;
	c->unauth = c->need_auth && !authorized(c);
	if (c->unauth && !open_route(c)) {
		conn_error(c, 401, "missing or wrong bearer token", false, "WWW-Authenticate: Bearer\r\n");
		return false;
	}
	c->chunked = c->msg.body == HTTP1_BODY_CHUNKED;
	bool pending;
	if (c->chunked) {
		http1_chunked_init(&c->dec);
		c->raw_off = c->head_len;
		c->body_len = 0;
		pending = c->len == c->head_len;
	} else {
		if (c->msg.content_length > API_MAX_BODY) {
			conn_error(c, 413, "request body larger than 1 MiB", false, NULL);
			return false;
		}
		pending = c->len - c->head_len < c->msg.content_length;
	}
	if (c->msg.expect_continue && pending)
		conn_write(c, xstrdup("HTTP/1.1 100 Continue\r\n\r\n"), 25);
	c->state = C_BODY;
	/* one deadline for the whole body: a byte now and then does not extend it */
	arm(c, api->body_ms);
	return true;
}

/* Body state: wait for the whole body (decoding chunks in place). Returns true when dispatched. */
static bool step_body(struct conn *c)
{
	if (!c->chunked) {
		size_t cl = (size_t)c->msg.content_length;
		if (c->len - c->head_len < cl)
			return false; /* the body deadline armed by step_head runs on */
		dispatch(c, cl, c->head_len + cl);
		return true;
	}
	while (c->raw_off < c->len && !c->dec.done) {
		size_t used, dn;
		const char *d;
		int rc = http1_chunked_feed(&c->dec, c->buf + c->raw_off, c->len - c->raw_off, &used, &d,
					    &dn);
		if (rc < 0) {
			conn_error(c, http1_status(rc), http1_strerror(rc), false, NULL);
			return false;
		}
		if (dn) {
			if (c->body_len + dn > API_MAX_BODY) {
				conn_error(c, 413, "request body larger than 1 MiB", false, NULL);
				return false;
			}
			memmove(c->buf + c->head_len + c->body_len, d, dn);
			c->body_len += dn;
		}
		c->raw_off += used;
	}
	/* drop the framing already decoded so the buffer holds head + body + undecoded bytes */
	size_t keep = c->head_len + c->body_len;
	memmove(c->buf + keep, c->buf + c->raw_off, c->len - c->raw_off);
	c->len -= c->raw_off - keep;
	c->raw_off = keep;
	if (!c->dec.done)
		return false;
	dispatch(c, c->body_len, keep);
	return true;
}

static void conn_process(struct conn *c)
{
	c->in_process = true;
	while (!uv_is_closing(&c->h.handle) && (c->state == C_HEAD || c->state == C_BODY)) {
		if (c->state == C_HEAD && uv_stream_get_write_queue_size(&c->h.stream) > WQ_MAX) {
			c->paused = true; /* resumed by write_cb; the idle timer ends a client that never reads */
			arm(c, c->api->idle_ms);
			break;
		}
		bool moved = c->state == C_HEAD ? step_head(c) : step_body(c);
		if (!moved)
			break;
	}
	c->in_process = false;
	if (c->paused && c->reading) {
		uv_read_stop(&c->h.stream);
		c->reading = false;
	}
	if (!uv_is_closing(&c->h.handle) && !c->paused && !c->reading && !c->eof && c->state != C_CLOSING &&
	    uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0)
		c->reading = true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct api *api = server->data;
	if (status < 0 || api->closing)
		return;
	bool tcp = server == (uv_stream_t *)api->tcp_ln;
	struct conn *c = xcalloc(1, sizeof *c);
	c->api = api;
	if (tcp)
		uv_tcp_init(api->loop, &c->h.tcp);
	else
		uv_pipe_init(api->loop, &c->h.pipe, 0);
	uv_timer_init(api->loop, &c->timer);
	c->h.handle.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = api->conns;
	if (api->conns)
		api->conns->prev = c;
	api->conns = c;
	api->nconns++;
	c->need_auth = tcp;
	c->tcp = tcp;
	api->nconns_tcp += tcp;
	reset_parser(c);
	c->state = C_HEAD;
	if (uv_accept(server, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	/* Each listener has its own cap, so TCP clients cannot lock the local CLI out. A client over
	 * it is told why (the CLI then says "busy", not "no daemon"): a 503, the write side shut,
	 * and the connection closed once the client closes or after a second; beyond API_MAX_REFUSING
	 * such clients at once, closed at once without a word. */
	int n_open = tcp ? api->nconns_tcp : api->nconns - api->nconns_tcp;
	if (n_open > API_MAX_CONNS) {
		if (n_open > API_MAX_CONNS + API_MAX_REFUSING) {
			conn_close(c);
			return;
		}
		static const char msg[] = "{\"error\":\"daemon busy: too many open API connections\",\"busy\":true}\n";
		char busy[256];
		int n = snprintf(busy, sizeof busy,
				 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
				 sizeof msg - 1, msg);
		c->refused = true;
		c->state = C_CLOSING;
		conn_write(c, xstrndup(busy, (size_t)n), (size_t)n);
		if (uv_is_closing(&c->h.handle))
			return;
		c->shutting = true;
		uv_timer_start(&c->timer, timeout_cb, REFUSE_MS, 0);
		uv_shutdown_t *sd = xmalloc(sizeof *sd);
		sd->data = c;
		if (uv_shutdown(sd, &c->h.stream, shutdown_cb) < 0) {
			free(sd);
			conn_close(c);
			return;
		}
		if (uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0)
			c->reading = true; /* into the scratch buffer, to see the client's EOF */
		return;
	}
	if (tcp)
		uv_tcp_nodelay(&c->h.tcp, 1);
	conn_process(c);
}

/* ---- listeners ---- */

static void listener_closed(uv_handle_t *h)
{
	struct api *api = h->data;
	free(h);
	if (api) {
		api->pending--;
		api_maybe_done(api);
	}
}

/* Is anything accepting connections on the unix socket at path? */
static int probe_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 1 : -errno;
	close(fd);
	return rc;
}

int api_listen_unix(struct api *api, const char *path)
{
	if (api->unix_ln)
		return -EBUSY;
	if (strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
		return -ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		int rc = probe_unix(path);
		if (rc == 1)
			return -EADDRINUSE;
		if (rc != -ECONNREFUSED)
			return rc;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	uv_pipe_t *p = xcalloc(1, sizeof *p);
	uv_pipe_init(api->loop, p, 0);
	/* no window in which the socket exists with a wider mode */
	mode_t old = umask(0177);
	int rc = uv_pipe_bind(p, path);
	umask(old);
	if (rc == 0 && chmod(path, 0600) < 0)
		rc = -errno;
	if (rc == 0) {
		p->data = api;
		rc = uv_listen((uv_stream_t *)p, 128, on_connection);
		if (rc < 0)
			unlink(path);
	}
	if (rc < 0) {
		p->data = NULL;
		uv_close((uv_handle_t *)p, listener_closed);
		return rc;
	}
	api->unix_ln = p;
	api->unix_path = xstrdup(path);
	return 0;
}

int api_listen_tcp(struct api *api, const char *host_port, const char *token)
{
	if (api->tcp_ln)
		return -EBUSY;
	if (token == NULL || token[0] == '\0')
		return -EINVAL;
	const char *colon = strrchr(host_port, ':');
	if (colon == NULL || colon == host_port)
		return -EINVAL;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		return -EINVAL;
	char *host = xstrndup(host_port, (size_t)(colon - host_port));
	struct sockaddr_storage sa;
	int rc;
	size_t hn = strlen(host);
	if (host[0] == '[' && hn > 2 && host[hn - 1] == ']') {
		host[hn - 1] = '\0';
		rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&sa);
	} else {
		rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&sa);
	}
	free(host);
	if (rc < 0)
		return -EINVAL;
	uv_tcp_t *t = xcalloc(1, sizeof *t);
	uv_tcp_init(api->loop, t);
	rc = uv_tcp_bind(t, (struct sockaddr *)&sa, 0);
	if (rc == 0) {
		t->data = api;
		rc = uv_listen((uv_stream_t *)t, 128, on_connection);
	}
	if (rc < 0) {
		t->data = NULL;
		uv_close((uv_handle_t *)t, listener_closed);
		return rc;
	}
	api->tcp_ln = t;
	api->token = xstrdup(token);
	api->token_len = strlen(token);
	return 0;
}

int api_tcp_port(struct api *api)
{
	if (api->tcp_ln == NULL)
		return -ENOTCONN;
	struct sockaddr_storage sa;
	int len = sizeof sa;
	int rc = uv_tcp_getsockname(api->tcp_ln, (struct sockaddr *)&sa, &len);
	if (rc < 0)
		return rc;
	if (sa.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
	return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

void api_close(struct api *api, void (*done)(void *), void *arg)
{
	api->closing = true;
	api->done = done;
	api->done_arg = arg;
	api->pending = 1; /* held until every close below was started */
	if (api->unix_ln) {
		api->pending++;
		uv_close((uv_handle_t *)api->unix_ln, listener_closed);
		unlink(api->unix_path);
		api->unix_ln = NULL;
	}
	if (api->tcp_ln) {
		api->pending++;
		uv_close((uv_handle_t *)api->tcp_ln, listener_closed);
		api->tcp_ln = NULL;
	}
	for (struct conn *c = api->conns; c; c = c->next)
		conn_close(c);
	api->pending--;
	api_maybe_done(api);
}
