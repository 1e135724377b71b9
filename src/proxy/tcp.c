/* TCP mode of the proxy: each client connection is paired with one connection to the backend
 * with the fewest open connections, bytes copied both ways with backpressure. */
#include "proxy/proxy.h"

#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

#define TBUF 65536

struct side {
	uv_tcp_t *tcp; /* allocated: a failed backend connection is replaced while it closes */
	struct proxy_tconn *t;
	int eof, reading;
	char *buf; /* one read at a time: reading stops until its write completes */
};

struct proxy_tconn {
	struct side a, b; /* a: client, b: backend */
	uv_timer_t timer;
	struct proxy_service *svc;
	struct proxy_backend *be;
	struct proxy_tconn *prev, *next; /* be->tconns */
	int handles, closing, connected;
	uint64_t tried[PROXY_RETRIES + 1];
	int ntried;
};

struct twreq {
	uv_write_t w;
	struct side *from;
	char data[];
};

/* Close callback of the timer (data: the tconn) and of the tcp handles (data: the tconn too). */
static void t_freed(uv_handle_t *h)
{
	struct proxy_tconn *t = h->data;
	if (h->type == UV_TCP)
		free(h);
	if (--t->handles > 0)
		return;
	struct proxy_service *svc = t->svc;
	struct proxy *px = svc->px;
	free(t->a.buf);
	free(t->b.buf);
	free(t);
	proxy_service_unref(svc);
	proxy_conn_gone(px);
}

static void t_unlink(struct proxy_tconn *t)
{
	struct proxy_backend *be = t->be;
	if (be == NULL)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		be->tconns = t->next;
	if (t->next)
		t->next->prev = t->prev;
	be->inflight--;
	t->be = NULL;
	proxy_backend_unref(be);
}

static void t_close(struct proxy_tconn *t)
{
	if (t->closing)
		return;
	t->closing = 1;
	t_unlink(t);
	uv_close((uv_handle_t *)t->a.tcp, t_freed);
	uv_close((uv_handle_t *)t->b.tcp, t_freed);
	uv_close((uv_handle_t *)&t->timer, t_freed);
}

static struct side *other(struct side *s)
{
	return s == &s->t->a ? &s->t->b : &s->t->a;
}

static uv_tcp_t *new_tcp(uv_loop_t *loop, struct proxy_tconn *t)
{
	uv_tcp_t *h = xmalloc(sizeof *h);
	uv_tcp_init(loop, h);
	h->data = t;
	return h;
}

/* The side a tcp handle belongs to. */
static struct side *side_of(uv_stream_t *st)
{
	struct proxy_tconn *t = st->data;
	return st == (uv_stream_t *)t->a.tcp ? &t->a : &t->b;
}

static void s_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct side *s = side_of((uv_stream_t *)h);
	(void)hint;
	if (s->buf == NULL)
		s->buf = xmalloc(TBUF);
	*b = uv_buf_init(s->buf, TBUF);
}

static void s_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);


static void on_twrite(uv_write_t *w, int status)
{
	struct twreq *r = (struct twreq *)w;
	struct side *from = r->from;
	free(r);
	struct proxy_tconn *t = from->t;
	if (t->closing)
		return;
	if (status < 0) {
		t_close(t);
		return;
	}
	/* the other side caught up: read from this side again */
	if (!from->eof && !from->reading &&
	    uv_stream_get_write_queue_size((uv_stream_t *)other(from)->tcp) < PROXY_HIGH_WATER) {
		from->reading = 1;
		uv_read_start((uv_stream_t *)from->tcp, s_alloc, s_read);
	}
}

static void on_tshutdown(uv_shutdown_t *req, int status)
{
	struct side *s = req->data;
	(void)status;
	free(req);
	if (s->t->a.eof && s->t->b.eof)
		t_close(s->t);
}

static void s_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct side *s = side_of(st);
	struct proxy_tconn *t = s->t;
	struct side *o = other(s);
	(void)b;
	if (t->closing)
		return;
	if (n == UV_EOF) {
		s->eof = 1;
		s->reading = 0;
		uv_read_stop(st);
		uv_shutdown_t *req = xmalloc(sizeof *req);
		req->data = o;
		if (uv_shutdown(req, (uv_stream_t *)o->tcp, on_tshutdown) != 0) {
			free(req);
			t_close(t);
		}
		return;
	}
	if (n < 0) {
		t_close(t);
		return;
	}
	if (n == 0)
		return;
	struct twreq *r = xmalloc(sizeof *r + (size_t)n);
	r->from = s;
	memcpy(r->data, s->buf, (size_t)n);
	uv_buf_t wb = uv_buf_init(r->data, (unsigned)n);
	if (uv_write(&r->w, (uv_stream_t *)o->tcp, &wb, 1, on_twrite) != 0) {
		free(r);
		t_close(t);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)o->tcp) >= PROXY_HIGH_WATER) {
		s->reading = 0;
		uv_read_stop(st);
	}
}

static void t_connect(struct proxy_tconn *t);

static void t_retry(struct proxy_tconn *t)
{
	struct proxy *px = t->svc->px;
	t_unlink(t);
	/* a fresh handle for the next attempt: the failed one is closed */
	t->handles++;
	uv_close((uv_handle_t *)t->b.tcp, t_freed);
	t->b.tcp = new_tcp(px->loop, t);
	t_connect(t);
}

static void on_tconnect(uv_connect_t *req, int status)
{
	struct proxy_tconn *t = req->data;
	uv_stream_t *h = req->handle;
	free(req);
	if (t->closing || status == UV_ECANCELED || h != (uv_stream_t *)t->b.tcp)
		return;
	uv_timer_stop(&t->timer);
	if (status < 0) {
		t->be->c.connect_errors++;
		t_retry(t);
		return;
	}
	t->connected = 1;
	uv_tcp_nodelay(t->b.tcp, 1);
	t->a.reading = t->b.reading = 1;
	uv_read_start((uv_stream_t *)t->a.tcp, s_alloc, s_read);
	uv_read_start((uv_stream_t *)t->b.tcp, s_alloc, s_read);
}

static void t_timeout(uv_timer_t *tm)
{
	struct proxy_tconn *t = tm->data;
	if (t->connected || t->be == NULL)
		return;
	t->be->c.connect_errors++;
	t_retry(t);
}

/* Connects to the least loaded backend not tried yet; closes the client when none is left. */
static void t_connect(struct proxy_tconn *t)
{
	for (;;) {
		struct proxy_backend *be = t->ntried <= PROXY_RETRIES
						   ? proxy_choose(t->svc, t->tried, (size_t)t->ntried)
						   : NULL;
		if (be == NULL) {
			t_close(t);
			return;
		}
		t->tried[t->ntried++] = be->id;
		t->be = be;
		be->refs++;
		be->inflight++;
		t->prev = NULL;
		t->next = be->tconns;
		if (be->tconns)
			be->tconns->prev = t;
		be->tconns = t;
		uv_connect_t *req = xmalloc(sizeof *req);
		req->data = t;
		if (uv_tcp_connect(req, t->b.tcp, (struct sockaddr *)&be->sa, on_tconnect) == 0) {
			uv_timer_start(&t->timer, t_timeout, t->svc->px->t_connect, 0);
			return;
		}
		free(req);
		be->c.connect_errors++;
		t_unlink(t);
	}
}

void proxy_tcp_accept(struct proxy_service *svc, uv_stream_t *server)
{
	struct proxy *px = svc->px;
	struct proxy_tconn *t = xcalloc(1, sizeof *t);
	t->svc = svc;
	svc->refs++;
	px->nconns++;
	t->a.t = t->b.t = t;
	t->a.tcp = new_tcp(px->loop, t);
	t->b.tcp = new_tcp(px->loop, t);
	uv_timer_init(px->loop, &t->timer);
	t->timer.data = t;
	t->handles = 3;
	if (uv_accept(server, (uv_stream_t *)t->a.tcp) != 0) {
		t_close(t);
		return;
	}
	uv_tcp_nodelay(t->a.tcp, 1);
	t_connect(t);
}

void proxy_tcp_close_all(struct proxy_backend *be)
{
	while (be->tconns)
		t_close(be->tconns);
}
