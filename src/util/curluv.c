/* libcurl multi on a libuv loop (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION to uv_poll/uv_timer),
 * shared by the http health checks and the webhook notifier. */
#include "util/curluv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/xmalloc.h"

/* A socket curl asked us to watch. */
struct curluv_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct curluv *m;
	struct curluv_sock *prev, *next;
};

/* An easy in flight: what to call when it completes. Its CURLOPT_PRIVATE points here. */
struct curluv_xfer {
	CURL *easy;
	struct curluv *m;
	curluv_done_cb done;
	void *arg;
	struct curluv_xfer *prev, *next;
};

struct curluv {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct curluv_sock *socks;
	struct curluv_xfer *xfers;
	int refs; /* the timer handle and sockets not yet closed */
	bool cleaning; /* inside curl_multi_cleanup */
	bool freeing;
};

static void curluv_unref(struct curluv *m)
{
	if (--m->refs == 0 && m->freeing) {
		free(m);
		curl_global_cleanup();
	}
}

static void sock_closed(uv_handle_t *h)
{
	struct curluv_sock *s = h->data;
	struct curluv *m = s->m;
	free(s);
	curluv_unref(m);
}

/* Stops watching a socket: unlinked now, freed when libuv has closed the poll handle. */
static void sock_close(struct curluv_sock *s)
{
	struct curluv *m = s->m;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		m->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

/* Takes x's easy out of the multi and frees x; the easy stays the owner's. */
static void xfer_end(struct curluv_xfer *x)
{
	struct curluv *m = x->m;
	curl_multi_remove_handle(m->multi, x->easy);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		m->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	free(x);
}

/* Hands finished transfers to their owners. A done callback may add, cancel or free m: the loop
 * stops once m is being freed (its memory lives until the close callbacks). */
static void check_done(struct curluv *m)
{
	CURLMsg *msg;
	int left;
	while (!m->freeing && (msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode res = msg->data.result;
		struct curluv_xfer *x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL) {
			curl_multi_remove_handle(m->multi, easy); /* not ours: cannot happen */
			continue;
		}
		curluv_done_cb done = x->done;
		void *arg = x->arg;
		xfer_end(x);
		done(easy, res, arg);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct curluv_sock *s = h->data;
	struct curluv *m = s->m;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(m->multi, s->fd, flags, &running);
	check_done(m);
}

static void on_timer(uv_timer_t *t)
{
	struct curluv *m = t->data;
	int running;
	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(m);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one of curl's sockets with a uv_poll. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct curluv *m = userp;
	struct curluv_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			if (!m->cleaning)
				curl_multi_assign(m->multi, fd, NULL);
			sock_close(s);
		}
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->m = m;
		if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		m->refs++;
		s->next = m->socks;
		if (m->socks != NULL)
			m->socks->prev = s;
		m->socks = s;
		curl_multi_assign(m->multi, fd, s);
	}
	int events = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(TIMEOUT) after timeout_ms (-1: never). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct curluv *m = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&m->timer);
	else
		uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

int curluv_new(uv_loop_t *loop, struct curluv **out)
{
	if (loop == NULL || out == NULL)
		return -EINVAL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	struct curluv *m = xcalloc(1, sizeof *m);
	m->multi = curl_multi_init();
	if (m->multi == NULL) {
		free(m);
		curl_global_cleanup();
		return -EIO;
	}
	m->loop = loop;
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	m->refs = 1; /* the timer */
	*out = m;
	return 0;
}

int curluv_add(struct curluv *m, CURL *easy, curluv_done_cb done, void *arg)
{
	if (m == NULL || easy == NULL || done == NULL)
		return -EINVAL;
	if (m->freeing)
		return -ESHUTDOWN;
	struct curluv_xfer *x = xcalloc(1, sizeof *x);
	x->easy = easy;
	x->m = m;
	x->done = done;
	x->arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	CURLMcode mc = curl_multi_add_handle(m->multi, easy);
	if (mc != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(x);
		return mc == CURLM_OUT_OF_MEMORY			      ? -ENOMEM
		       : mc == CURLM_BAD_EASY_HANDLE || mc == CURLM_ADDED_ALREADY ? -EINVAL
										  : -EIO;
	}
	x->next = m->xfers;
	if (m->xfers != NULL)
		m->xfers->prev = x;
	m->xfers = x;
	return 0;
}

void curluv_cancel(struct curluv *m, CURL *easy)
{
	if (m == NULL || easy == NULL)
		return;
	/* An easy not in flight here has no transfer of ours in CURLOPT_PRIVATE: left alone. */
	struct curluv_xfer *x = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (x != NULL && x->m == m && x->easy == easy)
		xfer_end(x);
}

static void timer_closed(uv_handle_t *h)
{
	curluv_unref(h->data);
}

void curluv_free(struct curluv *m)
{
	if (m == NULL || m->freeing)
		return;
	while (m->xfers != NULL)
		xfer_end(m->xfers);
	/* Every transfer is out: the cleanup only closes curl's sockets (and tells us through the
	 * socket callback). */
	m->cleaning = true;
	curl_multi_cleanup(m->multi);
	m->multi = NULL;
	while (m->socks != NULL)
		sock_close(m->socks);
	m->freeing = true;
	uv_close((uv_handle_t *)&m->timer, timer_closed);
}
