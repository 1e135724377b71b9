/* HTTP mode of the proxy: one client connection at a time carries one request to one upstream
 * connection (taken from the backend's idle pool or freshly connected), bodies streamed both
 * ways, with retries, timeouts and keep-alive aware draining. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/http1.h"
#include "util/xmalloc.h"

#define MAX_HEADERS 100
#define CLIENT_BUF_MAX (HTTP1_DEFAULT_MAX_HEAD + PROXY_RETRY_BUF)
#define UP_BUF_MAX (HTTP1_DEFAULT_MAX_HEAD + PROXY_RETRY_BUF)
#define BUF_START 4096
#define LINGER_MS 2000

enum { C_HEAD, C_BODY, C_WAIT, C_CLOSING };
enum { U_CONNECTING, U_HEAD, U_BODY, U_IDLE };

struct proxy_client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shut;
	struct proxy_service *svc;
	struct proxy_client *prev, *next; /* px->clients */
	struct proxy_client *hprev, *hnext; /* px->heads, while head_acct > 0 */
	uint64_t head_acct; /* bytes of buf counted in px->head_bytes */
	int handles, closing, reading, state;
	char ip[INET6_ADDRSTRLEN];
	char *buf;
	size_t len, cap;
	struct http1_parser parser;
	/* the request being served */
	int minor, keep, is_head, idempotent, head_seen;
	enum http1_body body;
	uint64_t body_left;
	struct http1_chunked chunk;
	int body_done;
	char *fwd; /* every byte sent upstream so far, while that fits: what a retry resends */
	size_t fwd_len, fwd_cap, fwd_head;
	int fwd_ok;
	uint64_t tried[PROXY_RETRIES + 1]; /* backends that failed this request */
	int ntried, attempts, force_new;
	struct proxy_upstream *up;
	uint64_t t0;
	int status, resp_started, resp_done, close_after;
};

struct proxy_upstream {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t creq;
	int handles, closing, reading, state, reused, got_bytes, inflight;
	struct proxy_backend *be;
	struct proxy_client *cl;
	struct proxy_upstream *uprev, *unext; /* be->ups */
	struct proxy_upstream *pprev, *pnext; /* be->idle */
	char *buf;
	size_t len, cap;
	struct http1_parser parser;
	enum http1_body body;
	uint64_t body_left;
	struct http1_chunked chunk;
	int keep, dechunk;
};

struct wreq {
	uv_write_t w;
	char data[];
};

static void c_process(struct proxy_client *c);
static void c_update_reading(struct proxy_client *c);
static void c_close(struct proxy_client *c);
static void c_linger(struct proxy_client *c);
static void u_close(struct proxy_upstream *up);
static void u_process(struct proxy_upstream *up);
static void u_update_reading(struct proxy_upstream *up);
static void dispatch(struct proxy_client *c);
static void send_request(struct proxy_upstream *up);
static void pump_body(struct proxy_client *c);
static void on_client_write(uv_write_t *w, int status);
static void on_up_write(uv_write_t *w, int status);
static void u_eof(struct proxy_upstream *up, ssize_t err);

/* ---- small helpers ---- */

static int ieq(const char *a, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

struct sb {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sb *s, const char *d, size_t n)
{
	xgrow((void **)&s->p, &s->cap, s->len + n, 1);
	memcpy(s->p + s->len, d, n);
	s->len += n;
}

static void sb_str(struct sb *s, const char *d)
{
	sb_add(s, d, strlen(d));
}

static void sb_header(struct sb *s, const struct http1_header *h)
{
	sb_add(s, h->name, h->name_len);
	sb_add(s, ": ", 2);
	sb_add(s, h->value, h->value_len);
	sb_add(s, "\r\n", 2);
}

/* Writes a[0..an) then b[0..bn) to stream s: directly when nothing is queued (no request, no
 * callback, no epoll change), the rest as a queued copy whose completion runs cb. Errors show up
 * on the read side too, so they are only returned. */
static int stream_write2(uv_stream_t *s, const char *a, size_t an, const char *b, size_t bn, uv_write_cb cb)
{
	if (an + bn == 0)
		return 0;
	if (uv_stream_get_write_queue_size(s) == 0) {
		uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)an), uv_buf_init((char *)b, (unsigned)bn)};
		int n = uv_try_write(s, bufs, 2);
		if (n < 0 && n != UV_EAGAIN)
			return n;
		if (n > 0) {
			size_t k = (size_t)n;
			if (k >= an) {
				b += k - an;
				bn -= k - an;
				an = 0;
			} else {
				a += k;
				an -= k;
			}
		}
		if (an + bn == 0)
			return 0;
	}
	struct wreq *r = xmalloc(sizeof *r + an + bn);
	memcpy(r->data, a, an);
	memcpy(r->data + an, b, bn);
	uv_buf_t buf = uv_buf_init(r->data, (unsigned)(an + bn));
	int rc = uv_write(&r->w, s, &buf, 1, cb);
	if (rc != 0)
		free(r);
	return rc;
}

static int stream_write(uv_stream_t *s, const char *d, size_t n, uv_write_cb cb)
{
	return stream_write2(s, d, n, NULL, 0, cb);
}

static size_t queued(void *stream)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)stream);
}

/* ---- upstream connections ---- */

static void u_freed(uv_handle_t *h)
{
	struct proxy_upstream *up = h->data;
	if (--up->handles > 0)
		return;
	struct proxy_backend *be = up->be;
	free(up->buf);
	free(up);
	proxy_backend_unref(be);
}

static void pool_remove(struct proxy_upstream *up)
{
	if (up->state != U_IDLE)
		return;
	struct proxy_backend *be = up->be;
	if (up->pprev)
		up->pprev->pnext = up->pnext;
	else
		be->idle = up->pnext;
	if (up->pnext)
		up->pnext->pprev = up->pprev;
	up->pprev = up->pnext = NULL;
	be->nidle--;
	up->state = U_HEAD;
}

/* Ends the request's claim on the backend: it is no longer in flight there. */
static void u_release(struct proxy_upstream *up)
{
	if (up->inflight) {
		up->inflight = 0;
		up->be->inflight--;
	}
	if (up->cl) {
		up->cl->up = NULL;
		up->cl = NULL;
	}
}

static void u_close(struct proxy_upstream *up)
{
	if (up->closing)
		return;
	up->closing = 1;
	pool_remove(up);
	u_release(up);
	struct proxy_backend *be = up->be;
	if (up->uprev)
		up->uprev->unext = up->unext;
	else
		be->ups = up->unext;
	if (up->unext)
		up->unext->uprev = up->uprev;
	uv_close((uv_handle_t *)&up->tcp, u_freed);
	uv_close((uv_handle_t *)&up->timer, u_freed);
}

static void u_timeout(uv_timer_t *t);
static void u_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void u_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_connect(uv_connect_t *req, int status);

/* A new connection to be; NULL when the connect could not even start (counted as a connect error). */
static struct proxy_upstream *u_new(struct proxy_backend *be)
{
	struct proxy *px = be->svc->px;
	struct proxy_upstream *up = xcalloc(1, sizeof *up);
	up->be = be;
	be->refs++;
	uv_tcp_init(px->loop, &up->tcp);
	uv_timer_init(px->loop, &up->timer);
	up->tcp.data = up->timer.data = up->creq.data = up;
	up->handles = 2;
	up->unext = be->ups;
	if (be->ups)
		be->ups->uprev = up;
	be->ups = up;
	up->state = U_CONNECTING;
	if (uv_tcp_connect(&up->creq, &up->tcp, (struct sockaddr *)&be->sa, on_connect) != 0) {
		be->c.connect_errors++;
		u_close(up);
		return NULL;
	}
	uv_timer_start(&up->timer, u_timeout, be->svc->px->t_connect, 0);
	return up;
}

static void pool_put(struct proxy_upstream *up)
{
	struct proxy_backend *be = up->be;
	up->state = U_IDLE;
	up->pprev = NULL;
	up->pnext = be->idle;
	if (be->idle)
		be->idle->pprev = up;
	be->idle = up;
	be->nidle++;
	up->reused = 1;
	up->got_bytes = 0;
	/* Read while idle, so a close by the backend is seen and the connection leaves the pool. */
	u_update_reading(up);
	uv_timer_start(&up->timer, u_timeout, PROXY_POOL_IDLE, 0);
}

static struct proxy_upstream *pool_take(struct proxy_backend *be)
{
	struct proxy_upstream *up = be->idle;
	if (up == NULL)
		return NULL;
	pool_remove(up);
	uv_timer_stop(&up->timer);
	return up;
}

void proxy_http_close_idle(struct proxy_backend *be)
{
	while (be->idle)
		u_close(be->idle);
}

/* ---- client connections ---- */

/* Counts c's buffer in the partial-head budget while c waits for a request head (C_HEAD, not
 * closing), keeping px->heads in the order clients began to hold one. Call after any change of
 * c->cap, c->state or c->closing. */
static void c_account(struct proxy_client *c)
{
	struct proxy *px = c->svc->px;
	uint64_t want = c->state == C_HEAD && !c->closing ? c->cap : 0;
	if (want == c->head_acct)
		return;
	if (c->head_acct == 0) {
		c->hprev = px->heads_tail;
		c->hnext = NULL;
		if (px->heads_tail)
			px->heads_tail->hnext = c;
		else
			px->heads = c;
		px->heads_tail = c;
	} else if (want == 0) {
		if (c->hprev)
			c->hprev->hnext = c->hnext;
		else
			px->heads = c->hnext;
		if (c->hnext)
			c->hnext->hprev = c->hprev;
		else
			px->heads_tail = c->hprev;
		c->hprev = c->hnext = NULL;
	}
	px->head_bytes = px->head_bytes - c->head_acct + want;
	c->head_acct = want;
}

static void c_error_msg(struct proxy_client *c, int status, struct proxy_backend *be, const char *detail);
#define HEADS_FULL "503 Service Unavailable: too many incomplete request heads, try again"

/* Makes room in the partial-head budget for c's head buffer to grow by add bytes: while it does
 * not fit, the client holding a partial head longest is answered 503 and closed (its buffer
 * freed). Returns false, evicting nothing more, when that client is c itself: then c is the one
 * to refuse. Oldest first, because a head that is honest arrives in a round trip or two, while a
 * slow sender's (slowloris) has been held longest. */
static bool head_room(struct proxy_client *c, uint64_t add)
{
	struct proxy *px = c->svc->px;
	while (px->head_bytes + add > px->lim.head_budget) {
		struct proxy_client *old = px->heads;
		if (old == NULL || old == c)
			return false;
		px->heads_evicted++;
		c_error_msg(old, 503, NULL, HEADS_FULL);
		assert(old->head_acct == 0);
	}
	return true;
}

static void c_freed(uv_handle_t *h)
{
	struct proxy_client *c = h->data;
	if (--c->handles > 0)
		return;
	struct proxy_service *svc = c->svc;
	struct proxy *px = svc->px;
	free(c->buf);
	free(c->fwd);
	free(c);
	proxy_service_unref(svc);
	proxy_conn_gone(px);
}

static void c_close(struct proxy_client *c)
{
	if (c->handles == 0 || c->closing == 2)
		return;
	c->closing = 2;
	c_account(c);
	if (c->up) {
		struct proxy_upstream *up = c->up;
		u_release(up);
		u_close(up);
	}
	struct proxy *px = c->svc->px;
	if (c->prev)
		c->prev->next = c->next;
	else
		px->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, c_freed);
	uv_close((uv_handle_t *)&c->timer, c_freed);
}

static void linger_timeout(uv_timer_t *t)
{
	c_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status;
}

/* Ends the connection after what was written: FIN, then read and discard what the client still
 * sends for a moment, so unread input does not turn the close into a reset that loses the reply. */
static void c_linger(struct proxy_client *c)
{
	if (c->closing)
		return;
	if (c->up) {
		struct proxy_upstream *up = c->up;
		u_release(up);
		u_close(up);
	}
	c->closing = 1;
	c->state = C_CLOSING;
	/* what is read from now on is discarded (c_alloc's sink): the buffer goes */
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	c_account(c);
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		c_close(c);
		return;
	}
	uv_timer_start(&c->timer, linger_timeout, LINGER_MS, 0);
	c_update_reading(c);
}

static void c_write(struct proxy_client *c, const char *d, size_t n)
{
	if (c->closing)
		return;
	stream_write((uv_stream_t *)&c->tcp, d, n, on_client_write);
}

static const char *reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void c_next(struct proxy_client *c);

/* After the last byte of a response was queued: next request, or close. */
static void c_after_response(struct proxy_client *c)
{
	c->resp_done = 1;
	if (queued(&c->tcp) == 0)
		c_next(c);
}

/* Answers the current request (or a malformed one) with a proxy-made error whose body is detail
 * (NULL: the status and reason) and a newline. be (may be NULL) is the backend the failure is
 * counted against. */
static void c_error_msg(struct proxy_client *c, int status, struct proxy_backend *be, const char *detail)
{
	if (c->up) {
		struct proxy_upstream *up = c->up;
		u_release(up);
		u_close(up);
	}
	if (c->resp_started) {
		c_close(c);
		return;
	}
	if (c->state == C_HEAD || !c->body_done || !c->keep || c->svc->px->stopping)
		c->close_after = 1;
	c->status = status;
	if (be)
		proxy_record(be, status, proxy_now_us() - c->t0);
	char msg[512], body[256];
	const char *r = reason(status);
	if (detail)
		snprintf(body, sizeof body, "%s\n", detail);
	else
		snprintf(body, sizeof body, "%d %s\n", status, r);
	int n = snprintf(msg, sizeof msg,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s", status, r,
			 strlen(body), c->close_after ? "Connection: close\r\n" : "", body);
	c->resp_started = 1;
	c_write(c, msg, (size_t)n);
	if (c->close_after) {
		c_linger(c);
		return;
	}
	c_after_response(c);
}

static void c_error(struct proxy_client *c, int status, struct proxy_backend *be)
{
	c_error_msg(c, status, be, NULL);
}

static void c_timeout(uv_timer_t *t)
{
	struct proxy_client *c = t->data;
	if (c->state == C_HEAD && c->len > 0) {
		c_error(c, 408, NULL);
		return;
	}
	/* idle between requests, or a body that stalled */
	c_close(c);
}

static void c_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct proxy_client *c = h->data;
	(void)hint;
	if (c->state == C_CLOSING) {
		static char sink[4096];
		*b = uv_buf_init(sink, sizeof sink);
		return;
	}
	if (c->cap - c->len < 1024 && c->cap < CLIENT_BUF_MAX) {
		size_t cap = c->cap ? c->cap * 2 : BUF_START;
		if (cap > CLIENT_BUF_MAX)
			cap = CLIENT_BUF_MAX;
		if (c->state == C_HEAD && !head_room(c, cap - c->cap)) {
			*b = uv_buf_init(NULL, 0); /* c_read gets UV_ENOBUFS: c is refused */
			return;
		}
		c->buf = xrealloc(c->buf, cap);
		c->cap = cap;
		c_account(c);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct proxy_client *c = s->data;
	(void)b;
	if (c->state == C_CLOSING) {
		if (n < 0)
			c_close(c);
		return;
	}
	if (n < 0) {
		if (n == UV_ENOBUFS && c->state == C_HEAD) {
			/* over the partial-head budget, and c holds the oldest partial head */
			c->svc->px->heads_evicted++;
			c_error_msg(c, 503, NULL, HEADS_FULL);
			return;
		}
		if (n == UV_EOF && c->state == C_WAIT) {
			/* half-close after a complete request: answer it, then close */
			c->close_after = 1;
			c->reading = 0;
			uv_read_stop(s);
			return;
		}
		c_close(c);
		return;
	}
	if (n == 0)
		return;
	c->len += (size_t)n;
	if (c->state == C_BODY)
		uv_timer_start(&c->timer, c_timeout, c->svc->px->t_idle, 0);
	c_process(c);
}

/* Reads from the client while its buffer has room, and while streaming a body only as fast as
 * the upstream takes it. */
static void c_update_reading(struct proxy_client *c)
{
	int want;
	if (c->closing == 2)
		return;
	if (c->state == C_CLOSING)
		want = 1;
	else if (c->state == C_HEAD)
		want = c->len < CLIENT_BUF_MAX;
	else if (c->state == C_BODY)
		want = c->len < CLIENT_BUF_MAX && (c->up == NULL || queued(&c->up->tcp) < PROXY_HIGH_WATER);
	else
		/* C_WAIT: keep reading (pipelined requests wait in the buffer), which also saves two
		 * epoll_ctl calls per request */
		want = c->len < CLIENT_BUF_MAX && !c->close_after;
	if (want && !c->reading)
		uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
	else if (!want && c->reading)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = want;
}

static int is_idempotent(const char *m, size_t n)
{
	return ieq(m, n, "GET") || ieq(m, n, "HEAD") || ieq(m, n, "PUT") || ieq(m, n, "DELETE") ||
	       ieq(m, n, "OPTIONS");
}

static void fwd_add(struct proxy_client *c, const char *d, size_t n)
{
	if (!c->fwd_ok)
		return;
	if (c->fwd_len + n > c->fwd_head + PROXY_RETRY_BUF) {
		c->fwd_ok = 0;
		free(c->fwd);
		c->fwd = NULL;
		c->fwd_len = c->fwd_cap = 0;
		return;
	}
	xgrow((void **)&c->fwd, &c->fwd_cap, c->fwd_len + n, 1);
	memcpy(c->fwd + c->fwd_len, d, n);
	c->fwd_len += n;
}

/* Is the field name[0..n) one of the token list in the Connection fields of m? With name NULL:
 * does the list name anything but close and keep-alive (rare: only then is each field looked up,
 * once per message rather than per field). */
static int conn_listed(const struct http1_msg *m, const char *name, size_t n)
{
	for (int i = http1_find(m, "connection", 0); i >= 0; i = http1_find(m, "connection", (size_t)i + 1)) {
		const char *v = m->headers[i].value, *e = v + m->headers[i].value_len;
		while (v < e) {
			const char *t = v;
			while (v < e && *v != ',')
				v++;
			const char *te = v;
			while (t < te && (*t == ' ' || *t == '\t'))
				t++;
			while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
				te--;
			size_t tn = (size_t)(te - t);
			if (name == NULL ? tn > 0 && !ieq(t, tn, "close") && !ieq(t, tn, "keep-alive")
					 : tn == n && strncasecmp(t, name, n) == 0)
				return 1;
			if (v < e)
				v++;
		}
	}
	return 0;
}

/* Is header h of m hop-by-hop, so not forwarded: the standard ones (RFC 9110 7.6.1; Upgrade
 * because upgrades are not supported, Proxy-Authorization and Proxy-Authenticate because they are
 * meant for this proxy, which does not use them) and any the sender named in Connection. Framing
 * (Content-Length, Transfer-Encoding) and Host are kept even when named: the body is forwarded as
 * they frame it, and dropping them would let the two sides read the stream differently. */
static int hop_by_hop(const struct http1_msg *m, const struct http1_header *h, bool listed)
{
	static const char *const std[] = {"connection", "keep-alive", "proxy-connection", "te", "upgrade",
					  "proxy-authorization", "proxy-authenticate"};
	for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
		if (ieq(h->name, h->name_len, std[i]))
			return 1;
	if (ieq(h->name, h->name_len, "content-length") || ieq(h->name, h->name_len, "transfer-encoding") ||
	    ieq(h->name, h->name_len, "host"))
		return 0;
	return listed && conn_listed(m, h->name, h->name_len);
}

/* Builds the head sent upstream: hop-by-hop fields dropped, X-Forwarded-* set. An absolute-form
 * target (auth not NULL) goes as origin-form path, with Host replaced by its authority
 * (RFC 9112 3.2.2). Every X-Forwarded-For value the client sent is kept, joined in order with
 * ", ", and the client's address appended, in one field. */
static void build_request_head(struct proxy_client *c, const struct http1_msg *m, const char *auth,
			       size_t auth_len, const char *path, size_t path_len)
{
	struct sb s = {0}, xff = {0};
	sb_add(&s, m->method, m->method_len);
	sb_add(&s, " ", 1);
	if (auth && path_len == 0)
		sb_str(&s, ieq(m->method, m->method_len, "OPTIONS") ? "*" : "/"); /* RFC 9112 3.2.4 */
	else if (auth && path[0] == '?')
		sb_str(&s, "/");
	sb_add(&s, path, path_len);
	sb_str(&s, " HTTP/1.1\r\n");
	bool listed = conn_listed(m, NULL, 0);
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct http1_header *h = &m->headers[i];
		if (ieq(h->name, h->name_len, "x-forwarded-proto") || hop_by_hop(m, h, listed))
			continue;
		if (auth && ieq(h->name, h->name_len, "host"))
			continue;
		if (ieq(h->name, h->name_len, "x-forwarded-for")) {
			if (h->value_len > 0) {
				sb_add(&xff, h->value, h->value_len);
				sb_str(&xff, ", ");
			}
			continue;
		}
		sb_header(&s, h);
	}
	if (auth) {
		sb_str(&s, "Host: ");
		sb_add(&s, auth, auth_len);
		sb_str(&s, "\r\n");
	} else if (!m->has_host) {
		sb_str(&s, "Host: ");
		sb_str(&s, c->svc->listen);
		sb_str(&s, "\r\n");
	}
	sb_str(&s, "X-Forwarded-For: ");
	if (xff.len)
		sb_add(&s, xff.p, xff.len);
	free(xff.p);
	sb_str(&s, c->ip);
	sb_str(&s, "\r\nX-Forwarded-Proto: http\r\n\r\n");
	free(c->fwd);
	c->fwd = s.p;
	c->fwd_len = c->fwd_head = s.len;
	c->fwd_cap = s.cap;
	c->fwd_ok = 1;
}

/* Starts serving the request m (head_len bytes at the start of c->buf); auth (NULL: keep the
 * client's Host) and path are the absolute-form target's split. */
static void start_request(struct proxy_client *c, const struct http1_msg *m, size_t head_len,
			  const char *auth, size_t auth_len, const char *path, size_t path_len)
{
	uv_timer_stop(&c->timer);
	c->minor = m->minor;
	c->keep = m->keep_alive;
	c->is_head = ieq(m->method, m->method_len, "HEAD");
	c->idempotent = is_idempotent(m->method, m->method_len);
	c->body = m->body;
	c->body_left = m->content_length;
	c->body_done = m->body == HTTP1_BODY_NONE || (m->body == HTTP1_BODY_LENGTH && m->content_length == 0);
	http1_chunked_init(&c->chunk);
	build_request_head(c, m, auth, auth_len, path, path_len);
	memmove(c->buf, c->buf + head_len, c->len - head_len);
	c->len -= head_len;
	c->state = c->body_done ? C_WAIT : C_BODY;
	c_account(c);
	c->ntried = 0;
	c->attempts = 0;
	c->force_new = 0;
	c->status = 0;
	c->resp_started = c->resp_done = 0;
	c->close_after = c->svc->px->stopping;
	c->t0 = proxy_now_us();
	dispatch(c);
}

static void c_process(struct proxy_client *c)
{
	if (c->closing)
		return;
	if (c->state == C_HEAD && c->len > 0) {
		if (!c->head_seen) {
			c->head_seen = 1;
			uv_timer_start(&c->timer, c_timeout, c->svc->px->t_head, 0);
		}
		struct http1_header hs[MAX_HEADERS];
		struct http1_msg m;
		c->parser.headers = hs;
		int n = http1_parse(&c->parser, c->buf, c->len, &m);
		if (n < 0) {
			c_error(c, http1_status(n), NULL);
			return;
		}
		if (n > 0) {
			if (ieq(m.method, m.method_len, "CONNECT")) {
				/* never forwarded: a backend would make the connection a tunnel that the
				 * pool would then hand to another client */
				c_error_msg(c, 501, NULL,
					    "CONNECT is not supported: this is a reverse proxy, not a forward proxy");
				return;
			}
			const char *auth = NULL, *path = m.target;
			size_t auth_len = 0, path_len = m.target_len;
			if (m.target[0] != '/' && !(m.target_len == 1 && m.target[0] == '*') &&
			    http1_split_absolute(m.target, m.target_len, &auth, &auth_len, &path, &path_len) != 0) {
				c_error_msg(c, 400, NULL,
					    "400 Bad Request: an absolute-form target must be "
					    "http(s)://host[:port][/path]");
				return;
			}
			start_request(c, &m, (size_t)n, auth, auth_len, path, path_len);
		}
	} else if (c->state == C_BODY) {
		pump_body(c);
	}
	if (!c->closing)
		c_update_reading(c);
}

/* Streams request body bytes from the client's buffer to its upstream (once the head is sent),
 * after prefix[0..plen) (the head, when it goes out now), in one write. */
static void pump_body_after(struct proxy_client *c, const char *prefix, size_t plen)
{
	struct proxy_upstream *up = c->up;
	if (up == NULL || up->state == U_CONNECTING)
		return;
	size_t off = 0; /* body bytes consumed from c->buf */
	while (off < c->len && !c->body_done) {
		size_t k;
		if (c->body == HTTP1_BODY_LENGTH) {
			k = c->len - off < c->body_left ? c->len - off : (size_t)c->body_left;
			c->body_left -= k;
			if (c->body_left == 0)
				c->body_done = 1;
		} else {
			const char *d;
			size_t dl;
			int rc = http1_chunked_feed(&c->chunk, c->buf + off, c->len - off, &k, &d, &dl);
			if (rc < 0) {
				/* the request stream is unreadable from here: answer and close */
				c->body_done = 1;
				c->keep = 0;
				c_error(c, http1_status(rc), NULL);
				return;
			}
			if (c->chunk.done)
				c->body_done = 1;
		}
		off += k;
	}
	stream_write2((uv_stream_t *)&up->tcp, prefix, plen, c->buf, off, on_up_write);
	fwd_add(c, c->buf, off);
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	if (c->body_done && c->state == C_BODY) {
		c->state = C_WAIT;
		uv_timer_stop(&c->timer);
	}
}

static void pump_body(struct proxy_client *c)
{
	if (!c->body_done)
		pump_body_after(c, NULL, 0);
}

static void c_next(struct proxy_client *c)
{
	c->resp_done = 0;
	c->resp_started = 0;
	if (c->close_after || c->svc->px->stopping) {
		/* A client that asked to close and sent nothing more gets a plain close (FIN: nothing
		 * unread, so no reset); others may be sending already, so they get the lingering one. */
		if (!c->keep && c->len == 0 && c->state == C_WAIT)
			c_close(c);
		else
			c_linger(c);
		return;
	}
	c->state = C_HEAD;
	c->head_seen = 0;
	http1_parser_init(&c->parser, HTTP1_REQUEST, NULL, MAX_HEADERS);
	free(c->fwd);
	c->fwd = NULL;
	c->fwd_len = c->fwd_cap = 0;
	if (c->len == 0) {
		/* idle connections hold no buffer */
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
	c_account(c);
	uv_timer_start(&c->timer, c_timeout, c->svc->px->t_idle, 0);
	c_process(c);
}

static void refused_closed(uv_handle_t *h)
{
	free(h);
}

void proxy_refuse(struct proxy_service *svc, uv_stream_t *server)
{
	struct proxy *px = svc->px;
	uv_tcp_t *t = xmalloc(sizeof *t);
	uv_tcp_init(px->loop, t);
	if (uv_accept(server, (uv_stream_t *)t) == 0) {
		px->refused++;
		if (!svc->tcp) {
			/* a best-effort write into an empty socket buffer; a client that had already sent
			 * its request may see a reset instead, as the close leaves its bytes unread */
			static const char body[] = "503 Service Unavailable: too many open connections, try again\n";
			char msg[256];
			int n = snprintf(msg, sizeof msg,
					 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
					 "Retry-After: 1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
					 sizeof body - 1, body);
			uv_buf_t b = uv_buf_init(msg, (unsigned)n);
			uv_try_write((uv_stream_t *)t, &b, 1);
		}
	}
	uv_close((uv_handle_t *)t, refused_closed);
}

void proxy_http_accept(struct proxy_service *svc, uv_stream_t *server)
{
	struct proxy *px = svc->px;
	struct proxy_client *c = xcalloc(1, sizeof *c);
	c->svc = svc;
	svc->refs++;
	px->nconns++;
	uv_tcp_init(px->loop, &c->tcp);
	uv_timer_init(px->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	c->next = px->clients;
	if (px->clients)
		px->clients->prev = c;
	px->clients = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		c_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	snprintf(c->ip, sizeof c->ip, "unknown");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
		else if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
	}
	c->state = C_HEAD;
	http1_parser_init(&c->parser, HTTP1_REQUEST, NULL, MAX_HEADERS);
	uv_timer_start(&c->timer, c_timeout, c->svc->px->t_head, 0);
	c_update_reading(c);
}

void proxy_http_stop(struct proxy *px)
{
	struct proxy_client *c = px->clients, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == C_HEAD && c->len == 0)
			c_close(c);
		else
			c->close_after = 1;
	}
}

/* ---- exchanges ---- */

/* Sends the current request on a new or pooled connection of a chosen backend. */
static void dispatch(struct proxy_client *c)
{
	for (;;) {
		struct proxy_backend *be = proxy_choose(c->svc, c->tried, (size_t)c->ntried);
		if (be == NULL) {
			c_error(c, c->attempts == 0 ? 503 : 502, NULL);
			return;
		}
		c->tried[c->ntried++] = be->id;
		c->attempts++;
		struct proxy_upstream *up = c->force_new ? NULL : pool_take(be);
		if (up == NULL)
			up = u_new(be);
		if (up == NULL) {
			if (c->attempts <= PROXY_RETRIES)
				continue;
			c_error(c, 502, be);
			return;
		}
		up->cl = c;
		c->up = up;
		up->inflight = 1;
		be->inflight++;
		if (up->state != U_CONNECTING)
			send_request(up);
		return;
	}
}

static void send_request(struct proxy_upstream *up)
{
	struct proxy_client *c = up->cl;
	up->state = U_HEAD;
	up->got_bytes = 0;
	up->len = 0;
	http1_parser_init(&up->parser, HTTP1_RESPONSE, NULL, MAX_HEADERS);
	up->parser.head_response = c->is_head;
	uv_timer_start(&up->timer, u_timeout, up->be->svc->px->t_response, 0);
	u_update_reading(up);
	/* the head (and, on a retry, the body kept so far) in one write with the buffered body; the
	 * write happens before fwd_add can move c->fwd */
	pump_body_after(c, c->fwd, c->fwd_len);
	c_update_reading(c);
}

/* The request cannot go on on up: try another connection when allowed, else answer status. */
static void u_failed(struct proxy_upstream *up, int may_retry, int status)
{
	struct proxy_client *c = up->cl;
	struct proxy_backend *be = up->be;
	u_release(up);
	u_close(up);
	if (c == NULL)
		return;
	if (may_retry && c->fwd_ok && !c->resp_started && c->attempts <= PROXY_RETRIES) {
		be->c.retries++;
		dispatch(c);
		return;
	}
	c_error(c, status, be);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct proxy_upstream *up = req->data;
	if (up->closing)
		return;
	if (status < 0) {
		up->be->c.connect_errors++;
		u_failed(up, 1, 502);
		return;
	}
	uv_timer_stop(&up->timer);
	uv_tcp_nodelay(&up->tcp, 1);
	if (up->cl == NULL) {
		u_close(up);
		return;
	}
	send_request(up);
}

static void u_timeout(uv_timer_t *t)
{
	struct proxy_upstream *up = t->data;
	switch (up->state) {
	case U_CONNECTING:
		up->be->c.connect_errors++;
		u_failed(up, 1, 502);
		break;
	case U_HEAD:
		up->be->c.upstream_errors++;
		u_failed(up, 0, 504);
		break;
	case U_BODY:
		up->be->c.upstream_errors++;
		if (up->cl)
			c_close(up->cl);
		u_close(up);
		break;
	default:
		u_close(up);
	}
}

static void u_update_reading(struct proxy_upstream *up)
{
	int want = !up->closing && up->state != U_CONNECTING &&
		   (up->cl == NULL || queued(&up->cl->tcp) < PROXY_HIGH_WATER) && up->len < UP_BUF_MAX;
	if (want && !up->reading)
		uv_read_start((uv_stream_t *)&up->tcp, u_alloc, u_read);
	else if (!want && up->reading)
		uv_read_stop((uv_stream_t *)&up->tcp);
	up->reading = want;
}

static void u_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct proxy_upstream *up = h->data;
	(void)hint;
	if (up->cap - up->len < 1024 && up->cap < UP_BUF_MAX) {
		size_t cap = up->cap ? up->cap * 2 : BUF_START;
		if (cap > UP_BUF_MAX)
			cap = UP_BUF_MAX;
		up->buf = xrealloc(up->buf, cap);
		up->cap = cap;
	}
	*b = uv_buf_init(up->buf + up->len, (unsigned)(up->cap - up->len));
}

/* The response was received completely: account, pool or close the connection, next request. */
static void u_complete(struct proxy_upstream *up)
{
	struct proxy_client *c = up->cl;
	struct proxy_backend *be = up->be;
	proxy_record(be, c->status, proxy_now_us() - c->t0);
	if (!c->body_done)
		c->close_after = 1; /* an early answer: the rest of the request body is unread */
	int reuse = up->keep && c->body_done && up->len == 0 && be->state == PROXY_ACTIVE && !be->svc->px->stopping;
	u_release(up);
	if (reuse)
		pool_put(up);
	else
		u_close(up);
	c_after_response(c);
}

static void u_eof(struct proxy_upstream *up, ssize_t err)
{
	struct proxy_client *c = up->cl;
	if (c == NULL) {
		u_close(up);
		return;
	}
	if (up->state == U_BODY && up->body == HTTP1_BODY_CLOSE && err == UV_EOF) {
		up->keep = 0;
		u_complete(up);
		return;
	}
	if (up->state == U_HEAD && !up->got_bytes && up->reused && c->idempotent && c->body_done) {
		/* a pooled connection the backend had closed: retry on a fresh one, the same backend
		 * included (it is not at fault) */
		c->force_new = 1;
		c->ntried--;
		u_failed(up, 1, 502);
		return;
	}
	up->be->c.upstream_errors++;
	u_failed(up, 0, 502);
}

static void u_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct proxy_upstream *up = s->data;
	(void)b;
	if (up->closing)
		return;
	if (n < 0) {
		u_eof(up, n);
		return;
	}
	if (n == 0)
		return;
	if (up->state == U_IDLE || up->cl == NULL) {
		/* bytes nobody asked for: the connection is not safe to reuse */
		u_close(up);
		return;
	}
	up->got_bytes = 1;
	up->len += (size_t)n;
	u_process(up);
}

/* Sends the response head to the client, rewritten: hop-by-hop fields dropped, Connection set. */
static void send_response_head(struct proxy_upstream *up, const struct http1_msg *m, struct sb *out)
{
	struct proxy_client *c = up->cl;
	struct proxy_backend *be = up->be;
	up->dechunk = m->body == HTTP1_BODY_CHUNKED && c->minor == 0;
	if (!c->keep || be->state != PROXY_ACTIVE || be->svc->px->stopping || m->body == HTTP1_BODY_CLOSE ||
	    up->dechunk || !c->body_done)
		c->close_after = 1;
	struct sb s = *out;
	char line[64];
	int n = snprintf(line, sizeof line, "HTTP/1.1 %d ", m->status);
	sb_add(&s, line, (size_t)n);
	sb_add(&s, m->reason, m->reason_len);
	sb_str(&s, "\r\n");
	bool listed = conn_listed(m, NULL, 0);
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct http1_header *h = &m->headers[i];
		if (hop_by_hop(m, h, listed))
			continue;
		/* dechunked for an HTTP/1.0 client: the trailer fields are dropped, so is their list */
		if (up->dechunk &&
		    (ieq(h->name, h->name_len, "transfer-encoding") || ieq(h->name, h->name_len, "trailer")))
			continue;
		sb_header(&s, h);
	}
	if (c->close_after)
		sb_str(&s, "Connection: close\r\n");
	else if (c->minor == 0)
		sb_str(&s, "Connection: keep-alive\r\n");
	sb_str(&s, "\r\n");
	c->resp_started = 1;
	*out = s;
}

/* Sends what u_process gathered for the client in one write. */
static void flush(struct proxy_client *c, struct sb *out)
{
	c_write(c, out->p, out->len);
	free(out->p);
	*out = (struct sb){0};
}

/* Handles the bytes in up->buf: response head, then body, all bytes for the client gathered into
 * one write. */
static void u_process(struct proxy_upstream *up)
{
	struct proxy_client *c = up->cl;
	struct sb out = {0};
	int head_held = 0; /* the response head is in out, not yet sent */
	while (up->state == U_HEAD) {
		struct http1_header hs[MAX_HEADERS];
		struct http1_msg m;
		up->parser.headers = hs;
		int n = http1_parse(&up->parser, up->buf, up->len, &m);
		if (n == 0) {
			flush(c, &out);
			u_update_reading(up);
			return;
		}
		if (n < 0 || m.status == 101) {
			flush(c, &out);
			up->be->c.upstream_errors++;
			u_failed(up, 0, 502);
			return;
		}
		if (m.status < 200) {
			/* interim response (100 Continue, 103): passed to HTTP/1.1 clients */
			if (c->minor == 1)
				sb_add(&out, up->buf, (size_t)n);
			memmove(up->buf, up->buf + n, up->len - (size_t)n);
			up->len -= (size_t)n;
			http1_parser_init(&up->parser, HTTP1_RESPONSE, NULL, MAX_HEADERS);
			up->parser.head_response = c->is_head;
			continue;
		}
		c->status = m.status;
		/* a connection is pooled only while its framing is HTTP/1.1's: 101 was refused above,
		 * and CONNECT is never forwarded (c_process), so no upgraded or tunnel connection gets here */
		up->keep = m.keep_alive && m.status != 101;
		up->body = m.body;
		up->body_left = m.content_length;
		http1_chunked_init(&up->chunk);
		send_response_head(up, &m, &out);
		head_held = 1;
		memmove(up->buf, up->buf + n, up->len - (size_t)n);
		up->len -= (size_t)n;
		up->state = U_BODY;
		uv_timer_start(&up->timer, u_timeout, up->be->svc->px->t_idle, 0);
		if (m.body == HTTP1_BODY_NONE || (m.body == HTTP1_BODY_LENGTH && m.content_length == 0)) {
			flush(c, &out);
			u_complete(up);
			return;
		}
	}
	if (up->state != U_BODY) {
		flush(c, &out);
		return;
	}
	int done = 0;
	while (up->len > 0 && !done) {
		size_t k;
		const char *d = up->buf;
		size_t dl;
		if (up->body == HTTP1_BODY_LENGTH) {
			k = up->len < up->body_left ? up->len : (size_t)up->body_left;
			dl = k;
			up->body_left -= k;
			done = up->body_left == 0;
		} else if (up->body == HTTP1_BODY_CHUNKED) {
			int rc = http1_chunked_feed(&up->chunk, up->buf, up->len, &k, &d, &dl);
			if (rc < 0) {
				free(out.p);
				up->be->c.upstream_errors++;
				if (head_held) {
					/* nothing reached the client yet: it can still get a 502 */
					c->resp_started = 0;
					c->close_after = 0;
					u_failed(up, 0, 502);
					return;
				}
				/* the response is already under way: all that is left is to cut it */
				c_close(c);
				u_close(up);
				return;
			}
			if (!up->dechunk) {
				d = up->buf;
				dl = k;
			}
			done = up->chunk.done;
		} else {
			k = dl = up->len;
		}
		sb_add(&out, d, dl);
		memmove(up->buf, up->buf + k, up->len - k);
		up->len -= k;
	}
	flush(c, &out);
	if (done) {
		if (up->dechunk)
			up->keep = 0;
		u_complete(up);
		return;
	}
	uv_timer_start(&up->timer, u_timeout, up->be->svc->px->t_idle, 0);
	u_update_reading(up);
}

static void on_client_write(uv_write_t *w, int status)
{
	uv_stream_t *s = w->handle;
	free(w);
	struct proxy_client *c = s->data;
	if (c->closing == 2)
		return;
	if (status < 0) {
		c_close(c);
		return;
	}
	if (c->up)
		u_update_reading(c->up);
	if (c->resp_done && queued(&c->tcp) == 0)
		c_next(c);
}

static void on_up_write(uv_write_t *w, int status)
{
	uv_stream_t *s = w->handle;
	free(w);
	struct proxy_upstream *up = s->data;
	if (up->closing)
		return;
	if (status < 0) {
		u_eof(up, status);
		return;
	}
	if (up->cl)
		c_update_reading(up->cl);
}

void proxy_http_close_all(struct proxy_backend *be)
{
	while (be->ups) {
		struct proxy_upstream *up = be->ups;
		if (up->cl != NULL) {
			be->c.upstream_errors++;
			u_failed(up, 0, 502);
		} else {
			u_close(up);
		}
	}
}
