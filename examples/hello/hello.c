/* hello: the example application that rollout deploys in the demo, the tests and the benchmarks.
 * A small HTTP/1.1 server (epoll, one event loop per thread) with knobs to misbehave on purpose. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16
#define IN_START    2048         /* first size of a connection's input buffer */
#define IN_MAX      16384        /* a request head must fit in this: else 431 */
#define LINE_MAX_   4096         /* a chunk-size or trailer line must fit in this: else 400 */
#define MAX_HEADERS 100          /* more header lines than this: 431 */
#define OUT_HIGH    65536        /* pending output above this: stop reading until it drains */
#define STOP_GRACE  900000000LL  /* ns a stopping worker gives in-flight requests */
#define LINGER      1000000000LL /* ns a closing connection reads and discards what still comes */
#define NS_PER_MS   1000000LL

/* Settings from flags and HELLO_* variables; durations in ms, -1 when unset. */
struct opts {
	const char *host;
	int port;
	const char *version;
	bool fail_health;
	int64_t fail_health_after;
	int64_t start_delay;
	int64_t exit_after;
	int error_permille; /* requests to / answered 500, per 1000 */
	int64_t latency;
	int threads;
};

/* Where the parser of one connection is. */
enum pstate { PS_HEAD, PS_BODY, PS_CHUNK_SIZE, PS_CHUNK_DATA, PS_CHUNK_CRLF, PS_TRAILER };

/* What the current request asked for, as far as the answer depends on it. */
struct req {
	bool http10;
	bool keep_alive;
	bool head;       /* HEAD: no body in the answer */
	bool health;     /* /healthz */
	int status;      /* decided answer for a delayed request */
};

struct worker;
struct conn;

/* A FIFO of connections waiting for a deadline. Every entry of one queue waits the same fixed
 * time, so appending keeps it sorted. */
struct tq {
	struct conn *head, *tail;
};

/* One accepted connection, owned by one worker; freed by conn_close. */
struct conn {
	int fd;
	struct worker *w;
	struct conn *prev, *next;   /* the worker's connections */
	struct tq *q;               /* the timer queue it is in, or NULL */
	struct conn *tprev, *tnext;
	int64_t due;                /* monotonic ns */
	bool waiting;               /* an answer is delayed by --latency: parse nothing more */
	bool lingering;             /* our side is shut; reading the rest until EOF or LINGER */
	bool peer_eof;
	bool close_after;           /* close once the output is flushed */
	uint32_t events;            /* current epoll interest */
	char *in;
	size_t incap, inoff, inlen;
	size_t scan;                /* in PS_HEAD: offset from inoff of the line not yet complete */
	int nlines;
	char *out;
	size_t outcap, outoff, outlen;
	enum pstate ps;
	uint64_t left;              /* body or chunk bytes still to discard */
	struct req req;
};

/* One thread: its own epoll set, connections and timer queue. */
struct worker {
	pthread_t thread;
	int ep;
	struct conn *conns;
	int nconns;
	struct tq delayq;           /* answers held back by --latency */
	struct tq lingerq;          /* lingering closes */
	bool stopping;
	int64_t stop_deadline;
};

/* Process-wide state, set before the workers start and read-only afterwards (but the counter). */
static struct opts opt;
static int listen_fd = -1;
static int stop_fd = -1;
static int64_t listen_ns;
static char body_hello[128];
static atomic_ulong req_counter;
static pthread_barrier_t stop_barrier;
static char listen_tag, stop_tag; /* epoll data for the listener and the stop event */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (q == NULL) {
		fprintf(stderr, "hello: out of memory allocating %zu bytes\n", n);
		abort();
	}
	return q;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: hello --port N [options]   (or $PORT; every flag also as HELLO_<NAME>, e.g. HELLO_LATENCY)\n"
		   "  --port N                 port to listen on (0: any free port, printed)\n"
		   "  --host ADDR              address to listen on (default 127.0.0.1)\n"
		   "  --version STR            version to answer with (default dev)\n"
		   "  --fail-health            /healthz always answers 503\n"
		   "  --fail-health-after D    /healthz answers 503 from D after listening\n"
		   "  --start-delay D          wait D before listening\n"
		   "  --exit-after D           exit with status 1 D after listening\n"
		   "  --error-rate P           answer 500 to this fraction (0.3 or 30%%) of requests to /\n"
		   "  --latency D              delay every answer but /healthz by D\n"
		   "  --threads N              event loop threads, 1..16 (default: CPUs)\n"
		   "durations: 500ms, 2s, 1m, 1h, 1m30s\n");
}

/* Parses "500ms", "2s", "1m30s" (units ms s m h d) or "0" into *ms. Returns 0 or -EINVAL. */
static int parse_duration(const char *s, int64_t *ms)
{
	int64_t total = 0;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*s == '\0')
		return -EINVAL;
	while (*s) {
		int64_t n = 0, unit;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (*s++ - '0');
			if (n > 1000000000LL)
				return -EINVAL;
		}
		if (strncmp(s, "ms", 2) == 0)
			unit = 1, s += 2;
		else if (*s == 's')
			unit = 1000, s++;
		else if (*s == 'm')
			unit = 60000, s++;
		else if (*s == 'h')
			unit = 3600000, s++;
		else if (*s == 'd')
			unit = 86400000, s++;
		else
			return -EINVAL;
		total += n * unit;
		if (total > 1000000000000LL) /* 30 years: keeps ns arithmetic in range */
			return -EINVAL;
	}
	*ms = total;
	return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* Parses "0.3" or "30%" into permille. */
static int parse_rate(const char *s, int *permille)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	if (*end == '%')
		v /= 100, end++;
	if (*end || !(v >= 0 && v <= 1))
		return -EINVAL;
	*permille = (int)(v * 1000 + 0.5);
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = true;
	else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !*s)
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static bool valid_version(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static const struct option long_opts[] = {
	{"port", required_argument, NULL, 0},
	{"host", required_argument, NULL, 0},
	{"version", required_argument, NULL, 0},
	{"fail-health", no_argument, NULL, 0},
	{"fail-health-after", required_argument, NULL, 0},
	{"start-delay", required_argument, NULL, 0},
	{"exit-after", required_argument, NULL, 0},
	{"error-rate", required_argument, NULL, 0},
	{"latency", required_argument, NULL, 0},
	{"threads", required_argument, NULL, 0},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Sets option `name` from `val` (NULL for a flag without value); `from` names the source for
 * messages ("--latency" or "HELLO_LATENCY"). Returns 0, or -EINVAL after printing why. */
static int set_opt(const char *name, const char *val, const char *from)
{
	int r = 0;
	const char *want = "";
	if (!strcmp(name, "port")) {
		r = parse_int(val, 0, 65535, &opt.port), want = "a port number 0..65535";
	} else if (!strcmp(name, "host")) {
		opt.host = val;
		r = *val ? 0 : -EINVAL, want = "an address";
	} else if (!strcmp(name, "version")) {
		opt.version = val;
		r = valid_version(val) ? 0 : -EINVAL, want = "1..64 printable characters";
	} else if (!strcmp(name, "fail-health")) {
		opt.fail_health = true;
		if (val)
			r = parse_bool(val, &opt.fail_health), want = "true or false";
	} else if (!strcmp(name, "fail-health-after")) {
		r = parse_duration(val, &opt.fail_health_after), want = "a duration (500ms, 2s, 1m)";
	} else if (!strcmp(name, "start-delay")) {
		r = parse_duration(val, &opt.start_delay), want = "a duration (500ms, 2s, 1m)";
	} else if (!strcmp(name, "exit-after")) {
		r = parse_duration(val, &opt.exit_after), want = "a duration (500ms, 2s, 1m)";
	} else if (!strcmp(name, "error-rate")) {
		r = parse_rate(val, &opt.error_permille), want = "a fraction 0..1 or a percent";
	} else if (!strcmp(name, "latency")) {
		r = parse_duration(val, &opt.latency), want = "a duration (500ms, 2s, 1m)";
	} else if (!strcmp(name, "threads")) {
		r = parse_int(val, 1, MAX_THREADS, &opt.threads), want = "a count 1..16";
	}
	if (r < 0)
		fprintf(stderr, "hello: %s: \"%s\" is not %s\n", from, val ? val : "", want);
	return r;
}

/* Fills `opt` from HELLO_* variables, then $PORT, then the flags (which win). Exits 2 on error. */
static void parse_args(int argc, char **argv)
{
	opt = (struct opts){.host = "127.0.0.1", .port = -1, .version = "dev", .fail_health_after = -1,
			    .exit_after = -1};
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	opt.threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;

	for (const struct option *o = long_opts; o->name; o++) {
		char env[64] = "HELLO_";
		size_t k = strlen(env);
		for (const char *p = o->name; *p && k < sizeof(env) - 1; p++)
			env[k++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
		env[k] = '\0';
		const char *v = getenv(env);
		if (v && *v && o->val == 0 && set_opt(o->name, v, env) < 0)
			goto bad;
	}
	const char *port = getenv("PORT");
	if (opt.port < 0 && port && *port && set_opt("port", port, "PORT") < 0)
		goto bad;

	int c, idx;
	while ((c = getopt_long(argc, argv, "h", long_opts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c != 0)
			goto bad;
		char from[64];
		snprintf(from, sizeof(from), "--%s", long_opts[idx].name);
		if (set_opt(long_opts[idx].name, optarg, from) < 0)
			goto bad;
	}
	if (optind < argc) {
		fprintf(stderr, "hello: unexpected argument \"%s\"\n", argv[optind]);
		goto bad;
	}
	if (opt.port < 0) {
		fprintf(stderr, "hello: --port is required (or $PORT)\n");
		goto bad;
	}
	return;
bad:
	usage(stderr);
	exit(2);
}

/* ---- connections ---- */

static void out_reserve(struct conn *c, size_t n)
{
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outcap - c->outlen >= n)
		return;
	size_t cap = c->outcap ? c->outcap : 1024;
	while (cap - c->outlen < n)
		cap *= 2;
	c->out = xrealloc(c->out, cap);
	c->outcap = cap;
}

static void out_add(struct conn *c, const char *s, size_t n)
{
	out_reserve(c, n);
	memcpy(c->out + c->outlen, s, n);
	c->outlen += n;
}

/* Appends a whole response. After it the connection closes when the request did not keep it alive,
 * when the worker is stopping, or for an error about the request's framing (status 400 and up). */
static void conn_answer(struct conn *c, int status, const char *body)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {{200, "OK"}, {400, "Bad Request"}, {431, "Request Header Fields Too Large"},
		       {500, "Internal Server Error"}, {503, "Service Unavailable"},
		       {505, "HTTP Version Not Supported"}};
	const char *reason = "Unknown";
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			reason = reasons[i].reason;
	bool framing_error = status == 400 || status == 431 || status == 505;
	bool close = framing_error || !c->req.keep_alive || c->w->stopping;
	const char *conn_hdr = close ? "Connection: close\r\n"
			       : c->req.http10 ? "Connection: keep-alive\r\n" : "";
	size_t blen = strlen(body);

	out_reserve(c, 256 + strlen(opt.version) + blen);
	int n = snprintf(c->out + c->outlen, c->outcap - c->outlen,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "X-Version: %s\r\n%s\r\n",
			 status, reason, blen, opt.version, conn_hdr);
	c->outlen += (size_t)n;
	if (!c->req.head || framing_error)
		out_add(c, body, blen);
	if (close)
		c->close_after = true;
}

static bool health_ok(void)
{
	if (opt.fail_health)
		return false;
	if (opt.fail_health_after >= 0 && mono_ns() - listen_ns >= opt.fail_health_after * NS_PER_MS)
		return false;
	return true;
}

/* The deterministic error pattern: request n (0-based) fails when floor((n+1)k/1000) steps past
 * floor(nk/1000). Any 1000 consecutive requests hold exactly k failures, and they are spread
 * evenly, so any 100 hold k/10 when k is a multiple of 10. */
static int pick_status(void)
{
	unsigned long k = (unsigned long)opt.error_permille;
	if (k == 0)
		return 200;
	unsigned long n = atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed);
	return ((n + 1) * k) / 1000 != (n * k) / 1000 ? 500 : 200;
}

static void answer_app(struct conn *c, int status)
{
	conn_answer(c, status, status == 200 ? body_hello : "error (--error-rate)\n");
}

static void tq_add(struct tq *q, struct conn *c, int64_t due)
{
	c->q = q;
	c->due = due;
	c->tprev = q->tail;
	c->tnext = NULL;
	if (q->tail)
		q->tail->tnext = c;
	else
		q->head = c;
	q->tail = c;
}

static void tq_remove(struct conn *c)
{
	struct tq *q = c->q;
	if (q == NULL)
		return;
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		q->head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		q->tail = c->tprev;
	c->tprev = c->tnext = NULL;
	c->q = NULL;
}

/* A whole request was read: answer it now, or queue the answer behind --latency. */
static void conn_request_done(struct conn *c)
{
	struct worker *w = c->w;
	c->ps = PS_HEAD;
	c->scan = 0;
	c->nlines = 0;
	if (c->req.health) {
		bool ok = health_ok();
		conn_answer(c, ok ? 200 : 503, ok ? "ok\n" : "failing (--fail-health)\n");
		return;
	}
	c->req.status = pick_status();
	if (opt.latency <= 0) {
		answer_app(c, c->req.status);
		return;
	}
	c->waiting = true;
	tq_add(&w->delayq, c, mono_ns() + opt.latency * NS_PER_MS);
}

static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Case-insensitive: does the comma-separated list v[0..n) hold token `tok`? Sets *last when it is
 * the last element. */
static bool list_has(const char *v, size_t n, const char *tok, bool *last)
{
	size_t tl = strlen(tok), i = 0;
	bool found = false;
	if (last)
		*last = false;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s) {
			bool match = e - s == tl && strncasecmp(v + s, tok, tl) == 0;
			found |= match;
			if (last)
				*last = match;
		}
	}
	return found;
}

/* Parses the request head p[0..len) (CRLF lines, checked by the caller, ending with an empty
 * line). Fills c->req and the body framing. Returns 0, or the status of the error to answer. */
static int parse_head(struct conn *c, const char *p, size_t len)
{
	const char *end = p + len, *eol = memchr(p, '\r', len);
	const char *s = p;
	struct req *r = &c->req;
	*r = (struct req){0};

	/* request-line: method SP target SP HTTP/1.x */
	const char *m = s;
	while (s < eol && is_tchar((unsigned char)*s))
		s++;
	if (s == m || s >= eol || *s != ' ')
		return 400;
	size_t mlen = (size_t)(s - m);
	r->head = mlen == 4 && !memcmp(m, "HEAD", 4);
	const char *t = ++s;
	while (s < eol && (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f)
		s++;
	if (s == t || s >= eol || *s != ' ')
		return 400;
	size_t tlen = (size_t)(s - t);
	r->health = (tlen == 8 && !memcmp(t, "/healthz", 8)) || (tlen > 8 && !memcmp(t, "/healthz?", 9));
	s++;
	if (eol - s != 8 || memcmp(s, "HTTP/", 5) || s[5] < '0' || s[5] > '9' || s[6] != '.' || s[7] < '0' ||
	    s[7] > '9')
		return 400;
	if (s[5] != '1')
		return 505;
	r->http10 = s[7] == '0';

	/* header fields */
	bool conn_close = false, conn_keep = false, chunked = false, have_cl = false, expect = false;
	int hosts = 0;
	uint64_t cl = 0;
	for (s = eol + 2; s < end; s = eol + 2) {
		eol = memchr(s, '\r', (size_t)(end - s));
		if (eol == s)
			break; /* the empty line */
		const char *name = s;
		while (s < eol && is_tchar((unsigned char)*s))
			s++;
		if (s == name || s >= eol || *s != ':')
			return 400; /* also rejects obs-fold and space before the colon */
		size_t nlen = (size_t)(s - name);
		s++;
		while (s < eol && (*s == ' ' || *s == '\t'))
			s++;
		const char *v = s, *ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++)
			if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
				return 400;
		size_t vlen = (size_t)(ve - v);
#define IS(h) (nlen == sizeof(h) - 1 && strncasecmp(name, h, nlen) == 0)
		if (IS("content-length")) {
			uint64_t x = 0;
			if (vlen == 0 || vlen > 15)
				return 400;
			for (const char *q = v; q < ve; q++) {
				if (*q < '0' || *q > '9')
					return 400;
				x = x * 10 + (uint64_t)(*q - '0');
			}
			if (have_cl && x != cl)
				return 400;
			have_cl = true, cl = x;
		} else if (IS("transfer-encoding")) {
			bool last;
			if (chunked || !list_has(v, vlen, "chunked", &last) || !last)
				return 400; /* the body length could not be known */
			chunked = true;
		} else if (IS("connection")) {
			conn_close |= list_has(v, vlen, "close", NULL);
			conn_keep |= list_has(v, vlen, "keep-alive", NULL);
		} else if (IS("host")) {
			hosts++;
		} else if (IS("expect")) {
			expect = vlen == 12 && strncasecmp(v, "100-continue", 12) == 0;
		}
#undef IS
		if (++c->nlines > MAX_HEADERS)
			return 431;
	}
	if ((chunked && have_cl) || (chunked && r->http10) || (!r->http10 && hosts != 1) || hosts > 1)
		return 400;
	r->keep_alive = r->http10 ? conn_keep && !conn_close : !conn_close;
	if (chunked) {
		c->ps = PS_CHUNK_SIZE;
	} else if (cl > 0) {
		c->ps = PS_BODY;
		c->left = cl;
	}
	if (expect && !r->http10 && c->ps != PS_HEAD)
		out_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	return 0;
}

/* Finds the next CRLF-terminated line at c->in + c->inoff + from. Returns its length without CRLF,
 * -1 when more input is needed, -2 when it holds a bare CR or LF, -3 when it grows past `max`. */
static long next_line(struct conn *c, size_t from, size_t max)
{
	const char *p = c->in + c->inoff;
	size_t n = c->inlen - c->inoff;
	const char *lf = memchr(p + from, '\n', n - from);
	if (lf == NULL)
		return n >= max ? -3 : -1;
	size_t i = (size_t)(lf - p);
	if (i + 1 > max)
		return -3;
	if (i == from || p[i - 1] != '\r')
		return -2;
	for (size_t k = from; k + 1 < i; k++)
		if (p[k] == '\r')
			return -2; /* a bare CR inside a line */
	return (long)(i - 1 - from);
}

/* Parses and answers whatever complete requests the input buffer holds, in order, until one is
 * delayed, the connection is to close, or the output is backed up. */
static void conn_process(struct conn *c)
{
	while (!c->waiting && !c->close_after && c->outlen - c->outoff < OUT_HIGH && c->inoff < c->inlen) {
		size_t n = c->inlen - c->inoff;
		long l;
		switch (c->ps) {
		case PS_HEAD:
			for (;;) {
				l = next_line(c, c->scan, IN_MAX);
				if (l == -1)
					return;
				if (l < -1) {
					c->req = (struct req){0};
					conn_answer(c, l == -3 ? 431 : 400,
						    l == -3 ? "request head too large\n" : "bad request\n");
					return;
				}
				if (l == 0 && c->scan == 0) {
					c->inoff += 2; /* an empty line before a request-line is ignored */
					if (c->inoff == c->inlen)
						return;
					continue;
				}
				if (l == 0)
					break;
				c->scan += (size_t)l + 2;
			}
			size_t hlen = c->scan + 2;
			int st = parse_head(c, c->in + c->inoff, hlen);
			c->inoff += hlen;
			c->scan = 0;
			c->nlines = 0;
			if (st) {
				c->req.keep_alive = false;
				conn_answer(c, st, st == 431 ? "too many header fields\n"
						   : st == 505 ? "HTTP version not supported\n" : "bad request\n");
				return;
			}
			if (c->ps == PS_HEAD)
				conn_request_done(c);
			break;
		case PS_BODY:
		case PS_CHUNK_DATA: {
			size_t take = n < c->left ? n : (size_t)c->left;
			c->inoff += take;
			c->left -= take;
			if (c->left == 0) {
				if (c->ps == PS_BODY)
					conn_request_done(c);
				else
					c->ps = PS_CHUNK_CRLF;
			}
			break;
		}
		case PS_CHUNK_SIZE:
		case PS_CHUNK_CRLF:
		case PS_TRAILER: {
			l = next_line(c, 0, LINE_MAX_);
			if (l == -1)
				return;
			const char *p = c->in + c->inoff;
			if (l < -1 || (c->ps == PS_CHUNK_CRLF && l != 0)) {
				conn_answer(c, 400, "bad chunked body\n");
				return;
			}
			c->inoff += (size_t)l + 2;
			if (c->ps == PS_CHUNK_CRLF) {
				c->ps = PS_CHUNK_SIZE;
			} else if (c->ps == PS_TRAILER) {
				if (l == 0)
					conn_request_done(c);
			} else {
				uint64_t size = 0;
				long i = 0;
				for (; i < l && i < 16; i++) {
					char ch = p[i];
					int d = ch >= '0' && ch <= '9'   ? ch - '0'
						: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
						: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
									 : -1;
					if (d < 0)
						break;
					size = size * 16 + (uint64_t)d;
				}
				while (i < l && (p[i] == ' ' || p[i] == '\t'))
					i++;
				if (i == 0 || i >= 16 || (i < l && p[i] != ';')) {
					conn_answer(c, 400, "bad chunk size\n");
					return;
				}
				if (size == 0) {
					c->ps = PS_TRAILER;
				} else {
					c->ps = PS_CHUNK_DATA;
					c->left = size;
				}
			}
			break;
		}
		}
	}
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;
	tq_remove(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static bool conn_idle(const struct conn *c)
{
	return c->ps == PS_HEAD && c->inoff == c->inlen && !c->waiting && c->outoff == c->outlen;
}

/* Writes pending output, then closes the connection or sets its epoll interest for what comes
 * next. `c` is freed when this closes it. */
static void conn_after(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t r = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (r > 0) {
			c->outoff += (size_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			c->close_after = false;
			conn_close(c);
			return;
		}
	}
	bool flushed = c->outoff == c->outlen;
	if (flushed)
		c->outoff = c->outlen = 0;
	if (flushed && c->close_after && !c->peer_eof) {
		/* Closing now would answer anything the peer still sends with a reset, which can destroy
		 * our last response before the peer reads it: shut our side, read until EOF instead. */
		if (!c->lingering) {
			shutdown(c->fd, SHUT_WR);
			c->lingering = true;
			tq_add(&c->w->lingerq, c, mono_ns() + LINGER);
			struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
			epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
			c->events = EPOLLIN;
		}
		return;
	}
	if (flushed && (c->close_after || (c->peer_eof && !c->waiting) || (c->w->stopping && conn_idle(c)))) {
		conn_close(c);
		return;
	}
	/* Output may have drained below the mark: buffered requests can go on. */
	if (flushed && !c->waiting && !c->close_after && c->inoff < c->inlen) {
		size_t before = c->inoff;
		conn_process(c);
		if (c->inoff != before || c->outlen) {
			conn_after(c);
			return;
		}
	}
	uint32_t ev = 0;
	if (!c->peer_eof && !c->waiting && !c->close_after && c->outlen - c->outoff < OUT_HIGH)
		ev |= EPOLLIN;
	if (c->outoff < c->outlen)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		struct epoll_event e = {.events = ev, .data.ptr = c};
		epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
		c->events = ev;
	}
}

static void conn_readable(struct conn *c)
{
	if (c->lingering) {
		char junk[4096];
		ssize_t r;
		while ((r = recv(c->fd, junk, sizeof(junk), 0)) > 0)
			;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			conn_close(c);
		return;
	}
	if (c->inoff == c->inlen) {
		c->inoff = c->inlen = 0;
	} else if (c->inoff > 0) {
		memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
		c->inlen -= c->inoff;
		c->inoff = 0;
	}
	if (c->inlen == c->incap && c->incap < IN_MAX) {
		c->incap = c->incap ? c->incap * 2 : IN_START;
		c->in = xrealloc(c->in, c->incap);
	}
	if (c->inlen < c->incap) {
		ssize_t r = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (r > 0) {
			c->inlen += (size_t)r;
		} else if (r == 0) {
			c->peer_eof = true;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_close(c);
			return;
		}
	}
	conn_process(c);
	conn_after(c);
}

static void accept_all(struct worker *w)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN: another worker took it; EMFILE and the like: try next time */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->w = w;
		c->events = EPOLLIN;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		w->nconns++;
	}
}

/* Stop accepting; idle connections close now, busy ones after their current answer. */
static void worker_stop(struct worker *w)
{
	w->stopping = true;
	w->stop_deadline = mono_ns() + STOP_GRACE;
	epoll_ctl(w->ep, EPOLL_CTL_DEL, listen_fd, NULL);
	epoll_ctl(w->ep, EPOLL_CTL_DEL, stop_fd, NULL);
	pthread_barrier_wait(&stop_barrier); /* after it, main closes the listener */
	for (struct conn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (conn_idle(c))
			conn_close(c);
	}
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];
	for (;;) {
		int timeout = -1;
		int64_t now = mono_ns();
		struct conn *next = w->delayq.head;
		if (w->lingerq.head && (!next || w->lingerq.head->due < next->due))
			next = w->lingerq.head;
		int64_t due = next ? next->due : INT64_MAX;
		if (w->stopping && w->stop_deadline < due)
			due = w->stop_deadline;
		if (due != INT64_MAX) {
			int64_t ms = due <= now ? 0 : (due - now + NS_PER_MS - 1) / NS_PER_MS;
			timeout = ms > INT_MAX ? INT_MAX : (int)ms;
		}
		int n = epoll_wait(w->ep, evs, 256, timeout);
		bool stop = false;
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &listen_tag) {
				accept_all(w);
			} else if (p == &stop_tag) {
				stop = true;
			} else {
				struct conn *c = p;
				if (evs[i].events & (EPOLLERR | EPOLLHUP))
					conn_close(c); /* reset by the peer: nothing can be sent */
				else if (evs[i].events & EPOLLIN)
					conn_readable(c);
				else if (evs[i].events & EPOLLOUT)
					conn_after(c);
			}
		}
		/* Closing other connections only here: a closed one may still be in evs[] above. */
		if (stop && !w->stopping)
			worker_stop(w);
		now = mono_ns();
		while (w->lingerq.head && w->lingerq.head->due <= now)
			conn_close(w->lingerq.head);
		while (w->delayq.head && w->delayq.head->due <= now) {
			struct conn *c = w->delayq.head;
			tq_remove(c);
			c->waiting = false;
			answer_app(c, c->req.status);
			conn_process(c);
			conn_after(c);
		}
		if (w->stopping && (w->nconns == 0 || now >= w->stop_deadline)) {
			while (w->conns)
				conn_close(w->conns);
			return NULL;
		}
	}
}

/* ---- main ---- */

/* Waits up to `ms` (-1: forever) for SIGTERM or SIGINT. Returns the signal, or 0 on timeout. */
static int wait_signal(const sigset_t *set, int64_t ms)
{
	for (;;) {
		int sig;
		if (ms < 0) {
			sig = sigwaitinfo(set, NULL);
		} else {
			struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * NS_PER_MS};
			sig = sigtimedwait(set, NULL, &ts);
		}
		if (sig > 0)
			return sig;
		if (errno == EAGAIN)
			return 0;
		/* EINTR: only a stopped-and-continued process lands here; wait again, roughly */
	}
}

/* Binds and listens on opt.host:opt.port; sets opt.port to the real port. Returns the socket, or
 * -1 after printing why. */
static int open_listener(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
			*res;
	char port[16];
	snprintf(port, sizeof(port), "%d", opt.port);
	int r = getaddrinfo(opt.host, port, &hints, &res);
	if (r != 0) {
		fprintf(stderr, "hello: cannot resolve %s: %s\n", opt.host, gai_strerror(r));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	/* SO_REUSEADDR only: with SO_REUSEPORT a second instance on a taken port would silently share
	 * it, and the deployer's port allocation could never notice. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "hello: cannot listen on %s:%d: %s\n", opt.host, opt.port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		opt.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							  : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	snprintf(body_hello, sizeof(body_hello), "hello from version %s\n", opt.version);

	/* Signals are taken synchronously by main only; every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (opt.start_delay > 0 && wait_signal(&set, opt.start_delay) > 0)
		return 0;
	listen_fd = open_listener();
	if (listen_fd < 0)
		return 1;
	listen_ns = mono_ns();
	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stop_fd < 0) {
		perror("hello: eventfd");
		return 1;
	}

	static struct worker workers[MAX_THREADS];
	pthread_barrier_init(&stop_barrier, NULL, (unsigned)opt.threads + 1);
	for (int i = 0; i < opt.threads; i++) {
		struct worker *w = &workers[i];
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event le = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_tag};
		struct epoll_event se = {.events = EPOLLIN, .data.ptr = &stop_tag};
		if (w->ep < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, listen_fd, &le) < 0 ||
		    epoll_ctl(w->ep, EPOLL_CTL_ADD, stop_fd, &se) < 0 ||
		    (errno = pthread_create(&w->thread, NULL, worker_run, w)) != 0) {
			perror("hello: starting a worker");
			return 1;
		}
	}
	bool v6 = strchr(opt.host, ':') != NULL;
	printf("hello %s listening on %s%s%s:%d\n", opt.version, v6 ? "[" : "", opt.host, v6 ? "]" : "", opt.port);
	fflush(stdout);

	int64_t left = -1;
	if (opt.exit_after >= 0)
		left = opt.exit_after - (mono_ns() - listen_ns) / NS_PER_MS;
	if (wait_signal(&set, left < 0 && opt.exit_after >= 0 ? 0 : left) == 0) {
		fprintf(stderr, "hello: exiting with status 1 as asked (--exit-after)\n");
		_exit(1);
	}
	uint64_t one = 1;
	if (write(stop_fd, &one, sizeof(one)) < 0)
		perror("hello: eventfd write");
	pthread_barrier_wait(&stop_barrier);
	close(listen_fd);
	for (int i = 0; i < opt.threads; i++)
		pthread_join(workers[i].thread, NULL);
	return 0;
}
