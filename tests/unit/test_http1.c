/* Unit tests for util/http1: tables of good and bad heads, byte-split feeding, chunked decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/http1.h"

#define REQ HTTP1_REQUEST
#define RESP HTTP1_RESPONSE

struct good {
	enum http1_kind kind;
	const char *raw;
	const char *method, *target; /* or NULL for responses */
	int status;
	int minor;
	bool keep_alive;
	enum http1_body body;
	uint64_t cl;
	bool expect;
	size_t nheaders;
};

static const struct good goods[] = {
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", 0, 1, true, HTTP1_BODY_NONE, 0, false, 1},
	{REQ, "GET /x?y=1 HTTP/1.0\r\n\r\n", "GET", "/x?y=1", 0, 0, false, HTTP1_BODY_NONE, 0, false, 0},
	{REQ, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/", 0, 0, true,
	 HTTP1_BODY_NONE, 0, false, 1},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", "GET", "/", 0, 1, false,
	 HTTP1_BODY_NONE, 0, false, 2},
	{REQ, "POST /v1/apply HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", "POST", "/v1/apply",
	 0, 1, true, HTTP1_BODY_LENGTH, 12, false, 2},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "POST", "/", 0, 1,
	 true, HTTP1_BODY_CHUNKED, 0, false, 2},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n",
	 "POST", "/", 0, 1, true, HTTP1_BODY_CHUNKED, 0, false, 3},
	{REQ, "PUT / HTTP/1.1\r\nhost: a\r\ncontent-length:5\r\nExpect: 100-Continue\r\n\r\n", "PUT", "/",
	 0, 1, true, HTTP1_BODY_LENGTH, 5, true, 3},
	{REQ, "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", 0, 1, true, HTTP1_BODY_NONE, 0,
	 false, 1},
	{REQ, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*", 0, 1, true, HTTP1_BODY_NONE, 0,
	 false, 1},
	{REQ, "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "CONNECT", "a.example:443",
	 0, 1, true, HTTP1_BODY_NONE, 0, false, 1},
	{REQ, "CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "CONNECT", "[::1]:8080",
	 0, 1, true, HTTP1_BODY_NONE, 0, false, 1},
	{REQ, "GET http://a/b HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-W: \t v \t\r\n\r\n", "GET", "http://a/b",
	 0, 1, true, HTTP1_BODY_NONE, 0, false, 3},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", "GET", "/", 0, 1, true,
	 HTTP1_BODY_NONE, 0, false, 2},
	{RESP, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", NULL, NULL, 200, 1, true,
	 HTTP1_BODY_LENGTH, 3, false, 1},
	{RESP, "HTTP/1.1 200 OK\r\n\r\n", NULL, NULL, 200, 1, false, HTTP1_BODY_CLOSE, 0, false, 0},
	{RESP, "HTTP/1.1 204\r\n\r\n", NULL, NULL, 204, 1, true, HTTP1_BODY_NONE, 0, false, 0},
	{RESP, "HTTP/1.1 304 \r\n\r\n", NULL, NULL, 304, 1, true, HTTP1_BODY_NONE, 0, false, 0},
	{RESP, "HTTP/1.1 100 Continue\r\n\r\n", NULL, NULL, 100, 1, true, HTTP1_BODY_NONE, 0, false, 0},
	{RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", NULL, NULL, 200, 1, true,
	 HTTP1_BODY_CHUNKED, 0, false, 1},
	{RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", NULL, NULL, 200, 1, false,
	 HTTP1_BODY_CLOSE, 0, false, 1},
	{RESP, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, NULL, 200, 0, false,
	 HTTP1_BODY_LENGTH, 0, false, 1},
};

struct bad {
	enum http1_kind kind;
	const char *raw;
	int err;
	int status;
	size_t len; /* 0: strlen(raw) */
};

#define NUL_IN_VALUE "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00" "b\r\n\r\n"

static const struct bad bads[] = {
	/* request line */
	{REQ, "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_METHOD, 400},
	{REQ, " GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_METHOD, 400},
	{REQ, "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET a HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET * HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	/* CONNECT takes the authority-form only, with a port (RFC 9112 3.2.3) */
	{REQ, "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT a.example: HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT a:65536 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT a:44x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT u@a:443 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT http://a:443 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "CONNECT [::1 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_TARGET, 400},
	{REQ, "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP1_E_VERSION, 400},
	{REQ, "GET / http/1.1\r\nHost: a\r\n\r\n", HTTP1_E_VERSION, 400},
	{REQ, "GET /\r\n\r\n", HTTP1_E_VERSION, 400},
	{REQ, "GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP1_E_VERSION, 400},
	{REQ, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP1_E_VERSION_UNSUPP, 505},
	{REQ, "GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP1_E_VERSION_UNSUPP, 505},
	{REQ, "GET / HTTP/0.9\r\n\r\n", HTTP1_E_VERSION_UNSUPP, 505},
	/* line endings */
	{REQ, "GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_E_BARE_LF, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\n\r\n", HTTP1_E_BARE_LF, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\n\n", HTTP1_E_BARE_LF, 400},
	{REQ, "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_E_BARE_LF, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", HTTP1_E_HEADER_VALUE, 400},
	/* header names and values */
	{REQ, "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP1_E_HEADER_NAME, 400},
	{REQ, "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", HTTP1_E_HEADER_NAME, 400},
	{REQ, "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", HTTP1_E_HEADER_NAME, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP1_E_HEADER_NAME, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", HTTP1_E_HEADER_NAME, 400},
	{REQ, NUL_IN_VALUE, HTTP1_E_HEADER_VALUE, 400, sizeof NUL_IN_VALUE - 1},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b" "b\r\n\r\n", HTTP1_E_HEADER_VALUE, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", HTTP1_E_HEADER_VALUE, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", HTTP1_E_OBS_FOLD, 400},
	{REQ, "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", HTTP1_E_OBS_FOLD, 400},
	/* Content-Length */
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	 HTTP1_E_CL_DUP, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	 HTTP1_E_CL_DUP, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", HTTP1_E_CL_DUP, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", HTTP1_E_CL_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", HTTP1_E_CL_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", HTTP1_E_CL_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", HTTP1_E_CL_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	 HTTP1_E_CL_BAD, 400},
	/* Transfer-Encoding */
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	 HTTP1_E_CL_TE, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	 HTTP1_E_CL_TE, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP1_E_TE_BAD,
	 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	 HTTP1_E_TE_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", HTTP1_E_TE_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", HTTP1_E_TE_BAD, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP1_E_TE_NOT_CHUNKED, 400},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", HTTP1_E_TE_UNSUPP, 501},
	{REQ, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
	 HTTP1_E_TE_UNSUPP, 501},
	{REQ, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_E_TE_HTTP10, 400},
	{RESP, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_E_TE_HTTP10, 400},
	{RESP, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	 HTTP1_E_CL_TE, 400},
	/* Host */
	{REQ, "GET / HTTP/1.1\r\n\r\n", HTTP1_E_HOST, 400},
	{REQ, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTP1_E_HOST, 400},
	{REQ, "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", HTTP1_E_HOST, 400},
	/* responses */
	{RESP, "HTTP/1.1 2000 OK\r\n\r\n", HTTP1_E_STATUS, 400},
	{RESP, "HTTP/1.1 099 OK\r\n\r\n", HTTP1_E_STATUS, 400},
	{RESP, "HTTP/1.1 20x OK\r\n\r\n", HTTP1_E_STATUS, 400},
	{RESP, "HTTP/1.1 200 O\x01K\r\n\r\n", HTTP1_E_SYNTAX, 400},
	{RESP, "HTTP/3.0 200 OK\r\n\r\n", HTTP1_E_VERSION_UNSUPP, 505},
	{RESP, "XTTP/1.1 200 OK\r\n\r\n", HTTP1_E_VERSION, 400},
	{RESP, "\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP1_E_SYNTAX, 400},
};

/* Copies s into an exact-size heap buffer so ASan sees any read past the bytes given. */
static char *dup_exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);
	memcpy(b, s, n);
	return b;
}

/* Feeds raw[0..n) in pieces ending at each offset in cuts (ascending, last == n), each time from a
 * freshly allocated buffer. Returns the first non-zero result, or 0. */
static int feed(enum http1_kind kind, const char *raw, size_t n, const size_t *cuts, size_t ncuts,
		struct http1_msg *m, struct http1_header *hdrs, size_t max_hdrs)
{
	struct http1_parser p;
	http1_parser_init(&p, kind, hdrs, max_hdrs);
	assert_int_equal(cuts[ncuts - 1], n);
	for (size_t i = 0; i < ncuts; i++) {
		char *b = dup_exact(raw, cuts[i]);
		int rc = http1_parse(&p, b, cuts[i], m);
		if (rc != 0) {
			/* pointers into b must be rebased to raw for the caller */
			if (rc > 0) {
#define REBASE(x) ((x) = (x) ? raw + ((x) - b) : NULL)
				REBASE(m->method);
				REBASE(m->target);
				REBASE(m->reason);
				REBASE(m->host);
				for (size_t k = 0; k < m->nheaders; k++) {
					REBASE(hdrs[k].name);
					REBASE(hdrs[k].value);
				}
#undef REBASE
			}
			free(b);
			return rc;
		}
		free(b);
	}
	return 0;
}

static int parse_once(enum http1_kind kind, const char *raw, size_t n, struct http1_msg *m,
		      struct http1_header *hdrs)
{
	return feed(kind, raw, n, &n, 1, m, hdrs, 64);
}

static size_t rawlen(const struct bad *b)
{
	return b->len ? b->len : strlen(b->raw);
}

static void check_same(const struct http1_msg *a, const struct http1_msg *b)
{
	assert_int_equal(a->method_len, b->method_len);
	assert_ptr_equal(a->method, b->method);
	assert_ptr_equal(a->target, b->target);
	assert_int_equal(a->target_len, b->target_len);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->minor, b->minor);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->content_length, b->content_length);
	assert_int_equal(a->expect_continue, b->expect_continue);
	assert_int_equal(a->nheaders, b->nheaders);
	for (size_t i = 0; i < a->nheaders; i++) {
		assert_ptr_equal(a->headers[i].name, b->headers[i].name);
		assert_int_equal(a->headers[i].name_len, b->headers[i].name_len);
		assert_ptr_equal(a->headers[i].value, b->headers[i].value);
		assert_int_equal(a->headers[i].value_len, b->headers[i].value_len);
	}
}

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
		const struct good *g = &goods[i];
		struct http1_header hdrs[64];
		struct http1_msg m;
		size_t n = strlen(g->raw);
		int rc = parse_once(g->kind, g->raw, n, &m, hdrs);
		if (rc != (int)n)
			fail_msg("good[%zu] %s: rc %d (%s)", i, g->raw, rc, http1_strerror(rc));
		if (g->method) {
			assert_int_equal(m.method_len, strlen(g->method));
			assert_memory_equal(m.method, g->method, m.method_len);
			assert_int_equal(m.target_len, strlen(g->target));
			assert_memory_equal(m.target, g->target, m.target_len);
		} else {
			assert_int_equal(m.status, g->status);
		}
		assert_int_equal(m.minor, g->minor);
		if (m.keep_alive != g->keep_alive)
			fail_msg("good[%zu]: keep_alive %d", i, m.keep_alive);
		assert_int_equal(m.body, g->body);
		assert_int_equal(m.content_length, g->cl);
		assert_int_equal(m.expect_continue, g->expect);
		assert_int_equal(m.nheaders, g->nheaders);
	}
}

static void test_good_values(void **state)
{
	(void)state;
	struct http1_header hdrs[64];
	struct http1_msg m;
	const char *raw = "GET / HTTP/1.1\r\nHost:  example.org \r\nX-E:\r\nX-W: \t v w \t\r\n\r\n";
	assert_int_equal(parse_once(REQ, raw, strlen(raw), &m, hdrs), (int)strlen(raw));
	assert_true(m.has_host);
	assert_int_equal(m.host_len, 11);
	assert_memory_equal(m.host, "example.org", 11);
	int i = http1_find(&m, "x-w", 0);
	assert_int_equal(i, 2);
	assert_int_equal(hdrs[i].value_len, 3);
	assert_memory_equal(hdrs[i].value, "v w", 3);
	assert_int_equal(hdrs[1].value_len, 0);
	assert_int_equal(http1_find(&m, "nope", 0), -1);

	raw = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(parse_once(RESP, raw, strlen(raw), &m, hdrs), (int)strlen(raw));
	assert_int_equal(m.reason_len, 9);
	assert_memory_equal(m.reason, "Not Found", 9);
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		const struct bad *b = &bads[i];
		struct http1_header hdrs[64];
		struct http1_msg m;
		size_t n = rawlen(b);
		int rc = parse_once(b->kind, b->raw, n, &m, hdrs);
		if (rc != b->err)
			fail_msg("bad[%zu] %s: got %d (%s), want %d (%s)", i, b->raw, rc, http1_strerror(rc),
				 b->err, http1_strerror(b->err));
		assert_int_equal(http1_status(rc), b->status);
	}
}

/* Every message, fed one byte at a time and split once at every offset, gives the one-shot result. */
static void test_split_equals_oneshot(void **state)
{
	(void)state;
	size_t total = sizeof goods / sizeof goods[0] + sizeof bads / sizeof bads[0];
	for (size_t t = 0; t < total; t++) {
		bool isgood = t < sizeof goods / sizeof goods[0];
		enum http1_kind kind = isgood ? goods[t].kind : bads[t - sizeof goods / sizeof goods[0]].kind;
		const char *raw = isgood ? goods[t].raw : bads[t - sizeof goods / sizeof goods[0]].raw;
		size_t n = isgood ? strlen(raw) : rawlen(&bads[t - sizeof goods / sizeof goods[0]]);
		struct http1_header h1[64], h2[64];
		struct http1_msg m1, m2;
		int want = parse_once(kind, raw, n, &m1, h1);

		size_t *cuts = malloc(n * sizeof *cuts);
		for (size_t k = 0; k < n; k++)
			cuts[k] = k + 1;
		int rc = feed(kind, raw, n, cuts, n, &m2, h2, 64);
		if (rc != want)
			fail_msg("bytewise %s: %d != %d", raw, rc, want);
		if (rc > 0)
			check_same(&m1, &m2);
		for (size_t k = 1; k < n; k++) {
			size_t two[2] = {k, n};
			rc = feed(kind, raw, n, two, 2, &m2, h2, 64);
			if (rc != want)
				fail_msg("split at %zu %s: %d != %d", k, raw, rc, want);
			if (rc > 0)
				check_same(&m1, &m2);
		}
		free(cuts);
	}
}

static void test_incomplete_and_pipelined(void **state)
{
	(void)state;
	struct http1_header hdrs[8];
	struct http1_msg m;
	struct http1_parser p;
	const char *two = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
	http1_parser_init(&p, REQ, hdrs, 8);
	assert_int_equal(http1_parse(&p, two, 10, &m), 0);
	assert_int_equal(http1_parse(&p, two, 27, &m), 0);
	assert_int_equal(http1_parse(&p, two, strlen(two), &m), 28);
	http1_parser_init(&p, REQ, hdrs, 8);
	assert_int_equal(http1_parse(&p, two + 28, strlen(two) - 28, &m), 28);
	assert_memory_equal(m.target, "/b", 2);
	/* empty input is "need more" */
	http1_parser_init(&p, REQ, hdrs, 8);
	assert_int_equal(http1_parse(&p, "", 0, &m), 0);
}

/* Absolute-form targets split into the authority (the Host a proxy sends) and origin-form. */
static void test_split_absolute(void **state)
{
	(void)state;
	static const struct {
		const char *t, *auth, *rest; /* auth NULL: rejected */
	} v[] = {
		{"http://a.example:8080/p?q=1", "a.example:8080", "/p?q=1"},
		{"HTTP://a", "a", ""},
		{"https://a?x", "a", "?x"},
		{"http://a:/x", "a", "/x"},
		{"http://[::1]:80/", "[::1]:80", "/"},
		{"http://10.0.0.1/a/b", "10.0.0.1", "/a/b"},
		{"ftp://a/", NULL, NULL},
		{"http:/a/", NULL, NULL},
		{"http:///a", NULL, NULL},
		{"http://u:p@a/", NULL, NULL},
		{"http://a:99999/", NULL, NULL},
		{"http://a:8x/", NULL, NULL},
		{"http://a/#frag", NULL, NULL},
		{"http://a\"b/", NULL, NULL},
		{"http://[::1/", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		const char *a = NULL, *r = NULL;
		size_t an = 0, rn = 0;
		int rc = http1_split_absolute(v[i].t, strlen(v[i].t), &a, &an, &r, &rn);
		if (v[i].auth == NULL) {
			if (rc != HTTP1_E_TARGET)
				fail_msg("%s: accepted", v[i].t);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: rejected", v[i].t);
		assert_int_equal(an, strlen(v[i].auth));
		assert_memory_equal(a, v[i].auth, an);
		assert_int_equal(rn, strlen(v[i].rest));
		assert_memory_equal(r, v[i].rest, rn);
	}
}

static void test_limits(void **state)
{
	(void)state;
	struct http1_header hdrs[4];
	struct http1_msg m;
	struct http1_parser p;
	char buf[300];

	/* request line of exactly max_line bytes passes, one more is 414, even before its end */
	snprintf(buf, sizeof buf, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	size_t line = strchr(buf, '\r') - buf;
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_line = line;
	assert_int_equal(http1_parse(&p, buf, strlen(buf), &m), (int)strlen(buf));
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_line = line - 1;
	assert_int_equal(http1_parse(&p, buf, strlen(buf), &m), HTTP1_E_URI_TOO_LONG);
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_line = 20;
	assert_int_equal(http1_parse(&p, buf, 21, &m), 0);
	assert_int_equal(http1_parse(&p, buf, 23, &m), HTTP1_E_URI_TOO_LONG);
	assert_int_equal(http1_status(HTTP1_E_URI_TOO_LONG), 414);

	/* whole head: limit inclusive, then 431 with or without the end in sight */
	const char *h = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789012345678901234567890123456789\r\n\r\n";
	size_t n = strlen(h);
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_head = n;
	assert_int_equal(http1_parse(&p, h, n, &m), (int)n);
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_head = n - 1;
	assert_int_equal(http1_parse(&p, h, n, &m), HTTP1_E_HEAD_TOO_LARGE);
	http1_parser_init(&p, REQ, hdrs, 4);
	p.max_head = 40;
	assert_int_equal(http1_parse(&p, h, 39, &m), 0);
	/* 40 bytes without the final LF: the head cannot fit any more */
	assert_int_equal(http1_parse(&p, h, 40, &m), HTTP1_E_HEAD_TOO_LARGE);
	assert_int_equal(http1_status(HTTP1_E_HEAD_TOO_LARGE), 431);

	/* header array full */
	const char *many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	http1_parser_init(&p, REQ, hdrs, 4);
	assert_int_equal(http1_parse(&p, many, strlen(many), &m), HTTP1_E_TOO_MANY_HEADERS);
	assert_int_equal(http1_status(HTTP1_E_TOO_MANY_HEADERS), 431);

	/* a response to HEAD has no body whatever its headers say */
	const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	http1_parser_init(&p, RESP, hdrs, 4);
	p.head_response = true;
	assert_int_equal(http1_parse(&p, r, strlen(r), &m), (int)strlen(r));
	assert_int_equal(m.body, HTTP1_BODY_NONE);
	assert_int_equal(http1_status(12345), 500);
}

/* Decodes raw entirely with pieces of at most step bytes. Returns 0 or the error; body into out. */
static int dechunk(const char *raw, size_t n, size_t step, char *out, size_t *outn, size_t *consumed,
		   struct http1_chunked *c)
{
	http1_chunked_init(c);
	*outn = 0;
	size_t off = 0;
	while (off < n && !c->done) {
		size_t piece = n - off < step ? n - off : step;
		char *b = dup_exact(raw + off, piece);
		size_t pos = 0;
		while (pos < piece && !c->done) {
			size_t used;
			const char *d;
			size_t dn;
			int rc = http1_chunked_feed(c, b + pos, piece - pos, &used, &d, &dn);
			if (rc) {
				free(b);
				return rc;
			}
			assert_true(used > 0 || dn > 0);
			if (dn) {
				assert_true(d >= b + pos && d + dn <= b + piece);
				memcpy(out + *outn, d, dn);
				*outn += dn;
			}
			pos += used;
		}
		free(b);
		off += pos;
	}
	*consumed = off;
	return 0;
}

static void test_chunked_good(void **state)
{
	(void)state;
	static const struct {
		const char *raw, *body;
	} cases[] = {
		{"0\r\n\r\n", ""},
		{"5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
		{"A\r\n0123456789\r\n00\r\n\r\n", "0123456789"},
		{"a;x=1;y=\"z\"\r\n0123456789\r\n0 ;last\r\n\r\n", "0123456789"},
		{"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n", "abc"},
		{"000000000000000000000003\r\nabc\r\n0\r\n\r\n", "abc"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].raw);
		char extra[128];
		/* bytes after the body belong to the next message and must not be consumed */
		snprintf(extra, sizeof extra, "%sGET", cases[i].raw);
		for (size_t step = 1; step <= n + 3; step++) {
			char out[64];
			size_t outn, consumed;
			struct http1_chunked c;
			int rc = dechunk(extra, n + 3, step, out, &outn, &consumed, &c);
			if (rc)
				fail_msg("chunked[%zu] step %zu: %s", i, step, http1_strerror(rc));
			assert_true(c.done);
			assert_int_equal(consumed, n);
			assert_int_equal(outn, strlen(cases[i].body));
			assert_memory_equal(out, cases[i].body, outn);
		}
	}
}

static void test_chunked_bad(void **state)
{
	(void)state;
	static const struct {
		const char *raw;
		int err;
	} cases[] = {
		{"\r\n", HTTP1_E_CHUNK_SIZE},
		{"g\r\n", HTTP1_E_CHUNK_SIZE},
		{"-1\r\n", HTTP1_E_CHUNK_SIZE},
		{"0x5\r\n", HTTP1_E_CHUNK_SIZE},
		{"5 \r\nhello\r\n", HTTP1_E_CHUNK_EXT},
		{"5\nhello\r\n", HTTP1_E_CHUNK_CRLF},
		{"5\rhello\r\n", HTTP1_E_CHUNK_CRLF},
		{"5\r\nhelloX\r\n", HTTP1_E_CHUNK_CRLF},
		{"5\r\nhello\n0\r\n\r\n", HTTP1_E_CHUNK_CRLF},
		{"5\r\nhello\r\r\n", HTTP1_E_CHUNK_CRLF},
		{"5;a\x01\r\nhello\r\n", HTTP1_E_CHUNK_EXT},
		{"5;a\nhello\r\n", HTTP1_E_CHUNK_CRLF},
		{"40000000000000001\r\n", HTTP1_E_CHUNK_OVERFLOW},
		{"4000000000000001\r\n", HTTP1_E_CHUNK_OVERFLOW},
		{"ffffffffffffffffffff\r\n", HTTP1_E_CHUNK_OVERFLOW},
		{"0\r\nX : 1\r\n\r\n", HTTP1_E_HEADER_NAME},
		{"0\r\n X: 1\r\n\r\n", HTTP1_E_OBS_FOLD},
		{"0\r\nX: 1\r\n\tmore\r\n\r\n", HTTP1_E_OBS_FOLD},
		{"0\r\nX: 1\n\r\n", HTTP1_E_BARE_LF},
		{"0\r\n\n", HTTP1_E_BARE_LF},
		{"0\r\nX: a\x02\r\n\r\n", HTTP1_E_HEADER_VALUE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].raw);
		for (size_t step = 1; step <= n; step++) {
			char out[64];
			size_t outn, consumed;
			struct http1_chunked c;
			int rc = dechunk(cases[i].raw, n, step, out, &outn, &consumed, &c);
			if (rc != cases[i].err)
				fail_msg("chunked bad[%zu] %s step %zu: got %s", i, cases[i].raw, step,
					 http1_strerror(rc));
			assert_int_equal(http1_status(rc), 400);
		}
	}

	/* 2^62 exactly is the largest size accepted */
	struct http1_chunked c;
	size_t used, dn;
	const char *d;
	http1_chunked_init(&c);
	assert_int_equal(http1_chunked_feed(&c, "4000000000000000\r\nab", 20, &used, &d, &dn), 0);
	assert_int_equal(used, 20);
	assert_int_equal(dn, 2);
	assert_memory_equal(d, "ab", 2);
	assert_false(c.done);

	/* extension and trailer limits */
	char big[2200];
	memset(big, 'x', sizeof big);
	memcpy(big, "1;", 2);
	http1_chunked_init(&c);
	assert_int_equal(http1_chunked_feed(&c, big, sizeof big, &used, &d, &dn), HTTP1_E_CHUNK_EXT);
	http1_chunked_init(&c);
	c.max_ext = 4000;
	assert_int_equal(http1_chunked_feed(&c, big, sizeof big, &used, &d, &dn), 0);
	assert_int_equal(used, sizeof big);
	memcpy(big, "0\r\nX: ", 6);
	http1_chunked_init(&c);
	c.max_trailer = 100;
	assert_int_equal(http1_chunked_feed(&c, big, sizeof big, &used, &d, &dn),
			 HTTP1_E_TRAILER_TOO_LARGE);
	assert_int_equal(http1_status(HTTP1_E_TRAILER_TOO_LARGE), 431);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_split_equals_oneshot),
		cmocka_unit_test(test_incomplete_and_pipelined),
		cmocka_unit_test(test_split_absolute),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_chunked_good),
		cmocka_unit_test(test_chunked_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
