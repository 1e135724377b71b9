/* Tests of util/curluv: real transfers against a tiny HTTP server on 127.0.0.1 in the test's own
 * loop (the path says the status to answer, or "/hang" for none). Teardown closes everything and
 * checks that the loop closes with no handle left. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/curluv.h"

#define N_CONCURRENT 6

struct peer {
	uv_tcp_t tcp;
	struct fixture *f;
	struct peer *prev, *next;
	char in[1024];
	size_t n_in;
	char out[128];
	uv_write_t wr;
	bool replied;
};

/* One transfer the test started, and what its done callback saw. */
struct xfer {
	struct fixture *f;
	CURL *easy;
	char url[64];
	int calls;
	CURLcode res;
	long code;
	bool free_m; /* curluv_free from inside this done */
};

struct fixture {
	uv_loop_t loop;
	struct curluv *m;
	uv_tcp_t listener;
	int port;
	uv_timer_t guard; /* bounds every run of the loop */
	bool expired;
	struct peer *peers;
	int requests;
	int dones;
	bool in_add;
	struct xfer x[N_CONCURRENT];
};

/* ---- the server ---- */

static void peer_closed(uv_handle_t *h)
{
	struct peer *p = h->data;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		p->f->peers = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	free(p);
}

static void peer_close(struct peer *p)
{
	if (!uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, peer_closed);
}

static void peer_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)hint;
	struct peer *p = h->data;
	*buf = uv_buf_init(p->in + p->n_in, (unsigned)(sizeof p->in - 1 - p->n_in));
}

static void peer_wrote(uv_write_t *w, int status)
{
	(void)status;
	peer_close(w->data);
}

/* Answers "GET /<status>" with that status once the head is in; "GET /hang" never. */
static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)buf;
	struct peer *p = s->data;
	if (n < 0 || p->n_in + (size_t)n >= sizeof p->in - 1) {
		peer_close(p);
		return;
	}
	p->n_in += (size_t)n;
	p->in[p->n_in] = '\0';
	if (p->replied || strstr(p->in, "\r\n\r\n") == NULL)
		return;
	p->replied = true;
	p->f->requests++;
	int status = 0;
	if (sscanf(p->in, "GET /%d ", &status) != 1)
		return; /* /hang */
	int len = snprintf(p->out, sizeof p->out,
			   "HTTP/1.1 %d T\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
	uv_buf_t b = uv_buf_init(p->out, (unsigned)len);
	p->wr.data = p;
	uv_write(&p->wr, s, &b, 1, peer_wrote);
}

static void on_accept(uv_stream_t *l, int status)
{
	if (status != 0)
		return;
	struct fixture *f = l->data;
	struct peer *p = calloc(1, sizeof *p);
	assert_non_null(p);
	p->f = f;
	p->next = f->peers;
	if (f->peers != NULL)
		f->peers->prev = p;
	f->peers = p;
	uv_tcp_init(l->loop, &p->tcp);
	p->tcp.data = p;
	if (uv_accept(l, (uv_stream_t *)&p->tcp) != 0) {
		peer_close(p);
		return;
	}
	uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

/* ---- helpers ---- */

static void on_done(CURL *easy, CURLcode res, void *arg)
{
	struct xfer *x = arg;
	struct fixture *f = x->f;
	assert_false(f->in_add);
	assert_ptr_equal(easy, x->easy);
	x->calls++;
	x->res = res;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &x->code);
	curl_easy_cleanup(easy); /* ours now */
	x->easy = NULL;
	f->dones++;
	if (x->free_m) {
		curluv_free(f->m);
		f->m = NULL;
	}
}

/* Starts a GET of url_path on the test server (or on port, if not 0) as f->x[i]. */
static void start(struct fixture *f, int i, const char *path, int port)
{
	struct xfer *x = &f->x[i];
	x->f = f;
	snprintf(x->url, sizeof x->url, "http://127.0.0.1:%d%s", port ? port : f->port, path);
	x->easy = curl_easy_init();
	assert_non_null(x->easy);
	curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 5000L);
	f->in_add = true;
	assert_int_equal(curluv_add(f->m, x->easy, on_done, x), 0);
	f->in_add = false;
}

static void on_guard(uv_timer_t *t)
{
	struct fixture *f = t->data;
	f->expired = true;
}

/* Runs the loop until *counter reaches want (counter NULL: never) or ms have passed; whether it
 * got there. The guard timer wakes the loop when nothing else does. */
static bool run_until(struct fixture *f, const int *counter, int want, int ms)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, (uint64_t)ms, 0);
	while (!f->expired && (counter == NULL || *counter < want))
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	return counter != NULL && *counter >= want;
}

static void spin(struct fixture *f, int ms)
{
	run_until(f, NULL, 0, ms);
}

/* A port on 127.0.0.1 that nothing listens on: bound, then closed. */
static int closed_port(void)
{
	uv_loop_t loop;
	uv_tcp_t t;
	struct sockaddr_in sa;
	int len = sizeof sa;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&loop, &t);
	assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0), 0);
	uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	return ntohs(sa.sin_port);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (f == NULL || uv_loop_init(&f->loop) != 0 || curluv_new(&f->loop, &f->m) != 0)
		return -1;
	struct sockaddr_in sa;
	int len = sizeof sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&f->loop, &f->listener);
	f->listener.data = f;
	if (uv_tcp_bind(&f->listener, (const struct sockaddr *)&sa, 0) != 0 ||
	    uv_listen((uv_stream_t *)&f->listener, 64, on_accept) != 0)
		return -1;
	uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len);
	f->port = ntohs(sa.sin_port);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	*state = f;
	return 0;
}

/* Frees everything, even after a failed assertion: easies still held are cancelled first. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < N_CONCURRENT; i++) {
		if (f->x[i].easy != NULL) {
			curluv_cancel(f->m, f->x[i].easy);
			curl_easy_cleanup(f->x[i].easy);
			f->x[i].easy = NULL;
		}
	}
	curluv_free(f->m);
	for (struct peer *p = f->peers; p != NULL; p = p->next)
		peer_close(p);
	uv_close((uv_handle_t *)&f->listener, NULL);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop);
	free(f);
	return rc == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	static const int codes[N_CONCURRENT] = {200, 201, 204, 404, 500, 503};
	for (int i = 0; i < N_CONCURRENT; i++) {
		char path[16];
		snprintf(path, sizeof path, "/%d", codes[i]);
		start(f, i, path, 0);
	}
	assert_int_equal(f->dones, 0); /* never inside curluv_add */
	assert_true(run_until(f, &f->dones, N_CONCURRENT, 5000));
	spin(f, 20);
	assert_int_equal(f->dones, N_CONCURRENT);
	assert_int_equal(f->requests, N_CONCURRENT);
	for (int i = 0; i < N_CONCURRENT; i++) {
		assert_int_equal(f->x[i].calls, 1);
		assert_int_equal(f->x[i].res, CURLE_OK);
		assert_int_equal(f->x[i].code, codes[i]);
	}
	/* The multi keeps working after a round. */
	start(f, 0, "/202", 0);
	assert_true(run_until(f, &f->dones, N_CONCURRENT + 1, 5000));
	assert_int_equal(f->x[0].calls, 2);
	assert_int_equal(f->x[0].code, 202);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	start(f, 0, "/hang", 0);
	start(f, 1, "/200", 0);
	/* Both requests reach the server: the hung one is truly in flight. */
	assert_true(run_until(f, &f->requests, 2, 5000));
	CURL *hung = f->x[0].easy;
	curluv_cancel(f->m, hung);
	curluv_cancel(f->m, hung); /* not in flight any more: a no-op */
	assert_true(run_until(f, &f->dones, 1, 5000));
	assert_int_equal(f->x[1].calls, 1);
	assert_int_equal(f->x[1].code, 200);
	/* Closing the hung connection from the server side reaches no one. */
	for (struct peer *p = f->peers; p != NULL; p = p->next)
		peer_close(p);
	spin(f, 100);
	assert_int_equal(f->x[0].calls, 0);
	curl_easy_cleanup(hung);
	f->x[0].easy = NULL;

	/* A cancelled easy may be added again and completes normally. */
	start(f, 2, "/200", 0);
	curluv_cancel(f->m, f->x[2].easy);
	assert_int_equal(curluv_add(f->m, f->x[2].easy, on_done, &f->x[2]), 0);
	assert_true(run_until(f, &f->dones, 2, 5000));
	assert_int_equal(f->x[2].calls, 1);
	assert_int_equal(f->x[2].code, 200);
}

static void test_free_in_done(void **state)
{
	struct fixture *f = *state;
	start(f, 0, "/200", 0);
	start(f, 1, "/hang", 0);
	start(f, 2, "/hang", 0);
	f->x[0].free_m = true;
	assert_true(run_until(f, &f->dones, 1, 5000));
	assert_null(f->m);
	/* The others were cancelled by the free: never done, still ours to clean up. */
	for (struct peer *p = f->peers; p != NULL; p = p->next)
		peer_close(p);
	spin(f, 100);
	assert_int_equal(f->dones, 1);
	assert_int_equal(f->x[1].calls + f->x[2].calls, 0);
	for (int i = 1; i <= 2; i++) {
		curl_easy_cleanup(f->x[i].easy);
		f->x[i].easy = NULL;
	}
}

static void test_refused(void **state)
{
	struct fixture *f = *state;
	int port = closed_port();
	start(f, 0, "/200", port);
	start(f, 1, "/204", 0);
	assert_true(run_until(f, &f->dones, 2, 5000));
	assert_int_equal(f->x[0].calls, 1);
	assert_int_equal(f->x[0].res, CURLE_COULDNT_CONNECT);
	assert_int_equal(f->x[0].code, 0);
	assert_int_equal(f->x[1].res, CURLE_OK);
	assert_int_equal(f->x[1].code, 204);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	CURL *e = curl_easy_init();
	assert_int_equal(curluv_add(f->m, e, NULL, NULL), -EINVAL);
	assert_int_equal(curluv_add(NULL, e, on_done, NULL), -EINVAL);
	curluv_cancel(f->m, e); /* never added: a no-op */
	curl_easy_cleanup(e);
	assert_int_equal(curluv_new(NULL, &f->m), -EINVAL);
	curluv_free(NULL);
	spin(f, 20);
	assert_int_equal(f->dones, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_in_done, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
