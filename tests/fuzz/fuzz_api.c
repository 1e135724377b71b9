/* libFuzzer target for the daemon's API server (daemon/api.c) as a client sees it: the input is
 * written to a real connection (unix socket or token-protected TCP on loopback) in random pieces,
 * with the server's loop run between them, so heads and bodies span reads and the connection
 * buffer grows under a parsed head (the bug of issue 11: a body arriving after the buffer grew).
 *
 * Input: [flags][seed][payload]. flags bit 0: TCP instead of the unix socket. seed drives the
 * piece sizes. In the payload, 0xFF n repeats the previous byte (n + 1) * 512 times, so a short
 * input can carry a body of hundreds of KiB (at most 1.5 MiB in all).
 * Checks: the handlers see sane requests; every byte the server sends parses as HTTP/1.1
 * responses (or a prefix of them); ASan and UBSan check the rest. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>
#include <fcntl.h>

#include "daemon/api.h"
#include "util/http1.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "fuzz_api: check failed: %s (line %d)\n", #x, __LINE__);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define TOKEN "fuzz-token-0123456789"
#define INPUT_MAX (1536 * 1024)
#define OUT_MAX (4 * 1024 * 1024)

static uv_loop_t loop;
static struct api *api;
static char sock_path[108];
static int tcp_port;
static char *out; /* what the server sent on this input's connection */
static size_t out_len;

static void check_req(const struct api_req *req)
{
	const char *m = api_req_method(req), *p = api_req_path(req);
	CHECK(m != NULL && p != NULL && p[0] == '/');
	CHECK(strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0 || strcmp(m, "HEAD") == 0);
	size_t n;
	const char *b = api_req_body(req, &n);
	CHECK(b != NULL && n <= API_MAX_BODY);
}

/* The body's length and FNV-1a hash: reads every byte the server says the body holds. */
static void h_digest(struct api_req *req, void *ctx)
{
	(void)ctx;
	check_req(req);
	size_t n;
	const unsigned char *b = (const unsigned char *)api_req_body(req, &n);
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	api_reply_json(req, 200, json_pack("{s:I, s:I}", "len", (json_int_t)n, "hash", (json_int_t)h));
}

static void h_name(struct api_req *req, void *ctx)
{
	(void)ctx;
	check_req(req);
	const char *name = api_param(req, "name");
	CHECK(name != NULL && name[0] != '\0');
	const char *q = api_query(req, "q");
	api_reply_json(req, 200, json_pack("{s:s, s:s?}", "name", name, "q", q));
}

static void h_page(struct api_req *req, void *ctx)
{
	(void)ctx;
	check_req(req);
	api_reply_text(req, 200, "text/html", "<!doctype html><title>fuzz</title>");
}

static void cleanup(void)
{
	unlink(sock_path);
}

static void init(void)
{
	uv_loop_init(&loop);
	CHECK(api_new(&loop, &api) == 0);
	api_set_timeouts(api, 50, 100, 100);
	api_route(api, "POST", "/v1/digest", h_digest, NULL);
	api_route(api, "GET", "/v1/services/{name}", h_name, NULL);
	api_route(api, "POST", "/v1/services/{name}/pause", h_name, NULL);
	api_route_open(api, "GET", "/", h_page, NULL);
	snprintf(sock_path, sizeof sock_path, "/tmp/rollout-fuzz-api.%d.sock", (int)getpid());
	CHECK(api_listen_unix(api, sock_path) == 0);
	atexit(cleanup);
	CHECK(api_listen_tcp(api, "127.0.0.1:0", TOKEN) == 0);
	tcp_port = api_tcp_port(api);
	CHECK(tcp_port > 0);
	out = malloc(OUT_MAX);
	CHECK(out != NULL);
}

static int client(bool tcp)
{
	int fd;
	if (tcp) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	} else {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	}
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	return fd;
}

/* Runs the server's loop once without waiting and takes what it sent. Returns false at EOF. */
static bool pump(int fd)
{
	uv_run(&loop, UV_RUN_NOWAIT);
	for (;;) {
		char tmp[65536];
		ssize_t k = recv(fd, tmp, sizeof tmp, 0);
		if (k == 0)
			return false;
		if (k < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		size_t take = (size_t)k < OUT_MAX - out_len ? (size_t)k : OUT_MAX - out_len;
		memcpy(out + out_len, tmp, take);
		out_len += take;
	}
}

/* Every byte the server sent is a series of well-formed responses (the last may be cut short when
 * the server gave up on the connection, never malformed). */
static void check_output(void)
{
	size_t off = 0;
	while (off < out_len) {
		struct http1_header hdrs[32];
		struct http1_parser p;
		struct http1_msg m;
		http1_parser_init(&p, HTTP1_RESPONSE, hdrs, 32);
		int rc = http1_parse(&p, out + off, out_len - off, &m);
		CHECK(rc >= 0);
		if (rc == 0)
			return; /* cut short */
		CHECK(m.status == 100 || (m.status >= 200 && m.status <= 599));
		off += (size_t)rc;
		if (m.status == 100)
			continue;
		if (m.body == HTTP1_BODY_LENGTH) {
			/* an answer to HEAD has the length but no body: the next response follows
			 * (no handler here sends a body that starts like a status line) */
			if (out_len - off >= 9 && memcmp(out + off, "HTTP/1.1 ", 9) == 0)
				continue;
			if (out_len - off < (size_t)m.content_length)
				return;
			off += (size_t)m.content_length;
		} else if (m.body != HTTP1_BODY_NONE) {
			return; /* the server sends lengths; anything else ends the check */
		}
	}
}

static size_t expand(const uint8_t *in, size_t n, char *dst)
{
	size_t len = 0;
	for (size_t i = 0; i < n && len < INPUT_MAX; i++) {
		if (in[i] == 0xFF && i + 1 < n && len > 0) {
			size_t rep = ((size_t)in[i + 1] + 1) * 512;
			if (rep > INPUT_MAX - len)
				rep = INPUT_MAX - len;
			memset(dst + len, dst[len - 1], rep);
			len += rep;
			i++;
			continue;
		}
		dst[len++] = (char)in[i];
	}
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *buf;
	if (api == NULL) {
		init();
		buf = malloc(INPUT_MAX);
		CHECK(buf != NULL);
	}
	if (size < 2)
		return 0;
	bool tcp = data[0] & 1;
	uint32_t rng = data[1] * 2654435761u + 1;
	size_t n = expand(data + 2, size - 2, buf);

	out_len = 0;
	int fd = client(tcp);
	bool open = true;
	size_t off = 0;
	while (off < n && open) {
		rng = rng * 1103515245u + 12345u;
		size_t piece = (rng >> 16) % 4 == 0 ? 1 + (rng >> 8) % 16 : 1 + (rng >> 4) % 20000;
		if (piece > n - off)
			piece = n - off;
		ssize_t k = send(fd, buf + off, piece, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			break; /* the server closed: what it sent is checked below */
		if (k > 0)
			off += (size_t)k;
		open = pump(fd);
	}
	shutdown(fd, SHUT_WR);
	/* the server answers what it has, then closes: a client gone quiet meets the (short)
	 * timeouts, and a bounded wait keeps a stuck server from hanging the fuzzer */
	for (int i = 0; open && i < 2000; i++) {
		open = pump(fd);
		if (open && i > 20)
			usleep(200);
	}
	close(fd);
	for (int i = 0; i < 8; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	check_output();
	return 0;
}
