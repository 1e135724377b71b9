/* Strict HTTP/1.1 head parser and chunked decoder (RFC 9112, HAProxy-level strictness): rejects
 * anything that two parsers could read differently, so the proxy cannot be used for smuggling. */
#include "util/http1.h"

#include <string.h>
#include <strings.h>

#define C_TOKEN 1  /* tchar */
#define C_VALUE 2  /* field-vchar, SP, HTAB */
#define C_TARGET 4 /* visible ASCII */

static const unsigned char ctab[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
	6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define IS(c, k) (ctab[(unsigned char)(c)] & (k))

static const struct {
	int err;
	int status;
	const char *text;
} errors[] = {
	{HTTP1_E_SYNTAX, 400, "malformed message head"},
	{HTTP1_E_METHOD, 400, "invalid method"},
	{HTTP1_E_TARGET, 400, "invalid request target"},
	{HTTP1_E_VERSION, 400, "malformed HTTP version"},
	{HTTP1_E_VERSION_UNSUPP, 505, "HTTP version not supported"},
	{HTTP1_E_STATUS, 400, "invalid status code"},
	{HTTP1_E_BARE_LF, 400, "line not ended by CRLF"},
	{HTTP1_E_HEADER_NAME, 400, "invalid header name"},
	{HTTP1_E_HEADER_VALUE, 400, "invalid character in header value"},
	{HTTP1_E_OBS_FOLD, 400, "folded header line"},
	{HTTP1_E_CL_BAD, 400, "invalid Content-Length"},
	{HTTP1_E_CL_DUP, 400, "duplicate Content-Length"},
	{HTTP1_E_CL_TE, 400, "both Content-Length and Transfer-Encoding"},
	{HTTP1_E_TE_BAD, 400, "invalid Transfer-Encoding"},
	{HTTP1_E_TE_NOT_CHUNKED, 400, "request transfer coding does not end in chunked"},
	{HTTP1_E_TE_HTTP10, 400, "Transfer-Encoding in an HTTP/1.0 message"},
	{HTTP1_E_TE_UNSUPP, 501, "unsupported transfer coding"},
	{HTTP1_E_HOST, 400, "HTTP/1.1 request needs exactly one Host header"},
	{HTTP1_E_URI_TOO_LONG, 414, "request line too long"},
	{HTTP1_E_HEAD_TOO_LARGE, 431, "header section too large"},
	{HTTP1_E_TOO_MANY_HEADERS, 431, "too many header fields"},
	{HTTP1_E_CHUNK_SIZE, 400, "invalid chunk size"},
	{HTTP1_E_CHUNK_OVERFLOW, 400, "chunk size too large"},
	{HTTP1_E_CHUNK_EXT, 400, "invalid or too long chunk extension"},
	{HTTP1_E_CHUNK_CRLF, 400, "missing CRLF in chunked body"},
	{HTTP1_E_TRAILER_TOO_LARGE, 431, "trailer section too large"},
};

int http1_status(int err)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
		if (errors[i].err == err)
			return errors[i].status;
	return 500;
}

const char *http1_strerror(int err)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
		if (errors[i].err == err)
			return errors[i].text;
	return "unknown error";
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* True when s[0..n) equals the lowercase literal lit, ignoring ASCII case. */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i]; i++)
		if (lower((unsigned char)s[i]) != lit[i])
			return false;
	return i == n && lit[i] == '\0';
}

static const char *rebase(const char *p, const char *from, const char *to)
{
	return p == NULL ? NULL : to + (p - from);
}

void http1_msg_rebase(struct http1_msg *msg, const char *from, const char *to)
{
	msg->method = rebase(msg->method, from, to);
	msg->target = rebase(msg->target, from, to);
	msg->reason = rebase(msg->reason, from, to);
	msg->host = rebase(msg->host, from, to);
	for (size_t i = 0; i < msg->nheaders; i++) {
		msg->headers[i].name = rebase(msg->headers[i].name, from, to);
		msg->headers[i].value = rebase(msg->headers[i].value, from, to);
	}
}

int http1_find(const struct http1_msg *msg, const char *name, size_t from)
{
	size_t n = strlen(name);
	for (size_t i = from; i < msg->nheaders; i++) {
		const struct http1_header *h = &msg->headers[i];
		if (h->name_len != n)
			continue;
		size_t k = 0;
		while (k < n && lower((unsigned char)h->name[k]) == lower((unsigned char)name[k]))
			k++;
		if (k == n)
			return (int)i;
	}
	return -1;
}

void http1_parser_init(struct http1_parser *p, enum http1_kind kind, struct http1_header *headers,
		       size_t max_headers)
{
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->max_line = HTTP1_DEFAULT_MAX_LINE;
	p->max_head = HTTP1_DEFAULT_MAX_HEAD;
	p->headers = headers;
	p->max_headers = max_headers;
}

/* Calls fn on each non-empty element of a comma-separated list (OWS trimmed). Stops at the first
 * non-zero return and returns it. */
static int each_elem(const char *v, size_t n, int (*fn)(void *, const char *, size_t), void *arg)
{
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		if (b > a) {
			int rc = fn(arg, v + a, b - a);
			if (rc)
				return rc;
		}
		i = j + 1;
	}
	return 0;
}

struct te_state {
	int count;
	bool chunked; /* chunked seen (it must then be the last) */
};

static int te_elem(void *arg, const char *s, size_t n)
{
	struct te_state *t = arg;
	if (t->chunked)
		return HTTP1_E_TE_BAD; /* anything after chunked, chunked twice included */
	for (size_t i = 0; i < n; i++)
		if (!IS(s[i], C_TOKEN))
			return HTTP1_E_TE_BAD; /* parameters or junk */
	t->count++;
	if (ieq(s, n, "chunked"))
		t->chunked = true;
	else if (!ieq(s, n, "gzip") && !ieq(s, n, "x-gzip") && !ieq(s, n, "deflate") &&
		 !ieq(s, n, "compress") && !ieq(s, n, "x-compress"))
		return HTTP1_E_TE_UNSUPP;
	return 0;
}

struct conn_state {
	bool close, keep_alive;
};

static int conn_elem(void *arg, const char *s, size_t n)
{
	struct conn_state *c = arg;
	if (ieq(s, n, "close"))
		c->close = true;
	else if (ieq(s, n, "keep-alive"))
		c->keep_alive = true;
	return 0;
}

/* Parses "HTTP/d.d" exactly; returns 0 with *minor set, or an error. */
static int parse_version(const char *s, size_t n, int *minor)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' || s[6] != '.' ||
	    s[7] < '0' || s[7] > '9')
		return HTTP1_E_VERSION;
	if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
		return HTTP1_E_VERSION_UNSUPP;
	*minor = s[7] - '0';
	return 0;
}

/* Is s[0..n) "host[:port]" (RFC 3986 authority without userinfo): a reg-name or IPv4 address
 * (unreserved, pct-encoded, sub-delims) or a bracketed IP literal, then ":" and at most 5 digits
 * up to 65535? The port is required when need_port, and may be empty ("host:") otherwise. */
static bool authority_ok(const char *s, size_t n, bool need_port)
{
	size_t i = 0;
	if (n > 0 && s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
			      (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':' || s[i] == '.'))
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
			      (s[i] >= 'A' && s[i] <= 'Z') || strchr("-._~%!$&'()*+,;=", s[i])))
				return false;
		if (i == 0)
			return false;
	}
	if (i == n)
		return !need_port;
	if (s[i] != ':')
		return false;
	size_t d = n - i - 1;
	if (d == 0)
		return !need_port;
	if (d > 5)
		return false;
	unsigned port = 0;
	for (size_t k = i + 1; k < n; k++) {
		if (s[k] < '0' || s[k] > '9')
			return false;
		port = port * 10 + (unsigned)(s[k] - '0');
	}
	return port <= 65535;
}

static int parse_request_line(const char *s, size_t n, struct http1_msg *m)
{
	size_t i = 0;
	while (i < n && IS(s[i], C_TOKEN))
		i++;
	if (i == 0 || i == n || s[i] != ' ')
		return HTTP1_E_METHOD;
	m->method = s;
	m->method_len = i;
	const char *sp = memrchr(s, ' ', n);
	int rc = parse_version(sp + 1, n - (size_t)(sp + 1 - s), &m->minor);
	if (sp == s + i) /* a single space: no target, or no version */
		return rc ? rc : HTTP1_E_TARGET;
	if (rc)
		return rc;
	const char *t = s + i + 1;
	size_t tn = (size_t)(sp - t);
	if (tn == 0)
		return HTTP1_E_TARGET;
	for (size_t k = 0; k < tn; k++)
		if (!IS(t[k], C_TARGET))
			return HTTP1_E_TARGET;
	m->target = t;
	m->target_len = tn;
	/* authority-form (CONNECT, and only it), origin-form, asterisk-form (OPTIONS), or
	 * absolute-form */
	if (m->method_len == 7 && memcmp(m->method, "CONNECT", 7) == 0)
		return authority_ok(t, tn, true) ? 0 : HTTP1_E_TARGET;
	if (t[0] == '/')
		return 0;
	if (tn == 1 && t[0] == '*')
		return m->method_len == 7 && memcmp(m->method, "OPTIONS", 7) == 0 ? 0 : HTTP1_E_TARGET;
	const char *colon = memchr(t, ':', tn);
	if (colon == NULL || colon == t || (size_t)(t + tn - colon) < 4 || colon[1] != '/' ||
	    colon[2] != '/')
		return HTTP1_E_TARGET;
	return 0;
}

static int parse_status_line(const char *s, size_t n, struct http1_msg *m)
{
	int rc = parse_version(s, n < 8 ? n : 8, &m->minor);
	if (rc)
		return rc;
	if (n < 12 || s[8] != ' ')
		return HTTP1_E_STATUS;
	const char *c = s + 9;
	if (c[0] < '1' || c[0] > '5' || c[1] < '0' || c[1] > '9' || c[2] < '0' || c[2] > '9')
		return HTTP1_E_STATUS;
	m->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
	m->reason = s + 12;
	m->reason_len = 0;
	if (n == 12)
		return 0;
	if (s[12] != ' ')
		return HTTP1_E_STATUS;
	m->reason = s + 13;
	m->reason_len = n - 13;
	for (size_t i = 0; i < m->reason_len; i++)
		if (!IS(m->reason[i], C_VALUE))
			return HTTP1_E_SYNTAX;
	return 0;
}

/* Parses the whole head buf[p->start..end) once its end is known: start line, fields, then the
 * framing rules. */
static int finish(struct http1_parser *p, const char *buf, size_t end, struct http1_msg *m)
{
	memset(m, 0, sizeof *m);
	m->headers = p->headers;
	const char *s = buf + p->start;
	const char *e = buf + end - 2; /* the final CRLF */
	const char *eol = (const char *)memchr(s, '\n', (size_t)(e - s) + 1) - 1;
	int rc = p->kind == HTTP1_REQUEST ? parse_request_line(s, (size_t)(eol - s), m)
					  : parse_status_line(s, (size_t)(eol - s), m);
	if (rc)
		return rc;

	int ncl = 0, nhost = 0;
	struct te_state te = {0};
	struct conn_state conn = {0};
	bool has_te = false;
	for (s = eol + 2; s < e; s = eol + 2) {
		eol = (const char *)memchr(s, '\n', (size_t)(e - s) + 1) - 1;
		if (*s == ' ' || *s == '\t')
			return HTTP1_E_OBS_FOLD;
		const char *c = s;
		while (c < eol && IS(*c, C_TOKEN))
			c++;
		if (c == s || c == eol || *c != ':')
			return HTTP1_E_HEADER_NAME;
		const char *v = c + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *k = v; k < ve; k++)
			if (!IS(*k, C_VALUE))
				return HTTP1_E_HEADER_VALUE;
		if (m->nheaders == p->max_headers)
			return HTTP1_E_TOO_MANY_HEADERS;
		struct http1_header *h = &p->headers[m->nheaders++];
		h->name = s;
		h->name_len = (uint32_t)(c - s);
		h->value = v;
		h->value_len = (uint32_t)(ve - v);

		size_t vn = h->value_len;
		switch (lower((unsigned char)*s)) {
		case 'c':
			if (ieq(s, h->name_len, "content-length")) {
				if (++ncl > 1 || memchr(v, ',', vn))
					return HTTP1_E_CL_DUP;
				uint64_t x = 0;
				for (size_t k = 0; k < vn; k++) {
					if (v[k] < '0' || v[k] > '9' || x > HTTP1_CHUNK_SIZE_MAX / 10)
						return HTTP1_E_CL_BAD;
					x = x * 10 + (uint64_t)(v[k] - '0');
				}
				if (vn == 0)
					return HTTP1_E_CL_BAD;
				m->content_length = x;
			} else if (ieq(s, h->name_len, "connection")) {
				each_elem(v, vn, conn_elem, &conn);
			}
			break;
		case 't':
			if (ieq(s, h->name_len, "transfer-encoding")) {
				has_te = true;
				rc = each_elem(v, vn, te_elem, &te);
				if (rc)
					return rc;
			}
			break;
		case 'h':
			if (ieq(s, h->name_len, "host")) {
				nhost++;
				m->host = v;
				m->host_len = vn;
			}
			break;
		case 'e':
			if (p->kind == HTTP1_REQUEST && ieq(s, h->name_len, "expect") &&
			    ieq(v, vn, "100-continue"))
				m->expect_continue = true;
			break;
		}
	}

	if (has_te) {
		if (m->minor == 0)
			return HTTP1_E_TE_HTTP10;
		if (ncl)
			return HTTP1_E_CL_TE;
		if (te.count == 0)
			return HTTP1_E_TE_BAD;
		if (p->kind == HTTP1_REQUEST && !te.chunked)
			return HTTP1_E_TE_NOT_CHUNKED;
	}
	m->keep_alive = m->minor == 1 ? !conn.close : conn.keep_alive && !conn.close;
	if (p->kind == HTTP1_REQUEST) {
		if (nhost > 1 || (m->minor == 1 && nhost != 1))
			return HTTP1_E_HOST;
		m->has_host = nhost == 1;
		m->body = has_te ? HTTP1_BODY_CHUNKED : ncl ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	} else {
		m->has_host = nhost > 0;
		if (p->head_response || m->status < 200 || m->status == 204 || m->status == 304)
			m->body = HTTP1_BODY_NONE;
		else if (has_te)
			m->body = te.chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE;
		else
			m->body = ncl ? HTTP1_BODY_LENGTH : HTTP1_BODY_CLOSE;
		if (m->body == HTTP1_BODY_CLOSE)
			m->keep_alive = false;
	}
	if (m->body != HTTP1_BODY_LENGTH)
		m->content_length = 0;
	return 0;
}

/* Scans new bytes for line ends only (so a byte-at-a-time sender costs O(n) in total), enforcing
 * CRLF and the size limits as soon as they are crossed; the full parse runs once, at the end. */
int http1_parse(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg)
{
	size_t i = p->scan;
	for (;;) {
		/* the LF ending the current line may sit at most at index lf_max */
		size_t lf_max = p->max_head ? p->max_head - 1 : 0;
		bool first = p->line == p->start;
		if (first && p->start + p->max_line + 1 < lf_max)
			lf_max = p->start + p->max_line + 1;
		size_t end = len < lf_max + 1 ? len : lf_max + 1;
		const char *lf = i < end ? memchr(buf + i, '\n', end - i) : NULL;
		if (lf == NULL) {
			p->scan = len > i ? len : i;
			if (len <= lf_max)
				return 0;
			if (first && lf_max == p->start + p->max_line + 1)
				return p->kind == HTTP1_REQUEST ? HTTP1_E_URI_TOO_LONG
								: HTTP1_E_HEAD_TOO_LARGE;
			return HTTP1_E_HEAD_TOO_LARGE;
		}
		size_t at = (size_t)(lf - buf);
		if (at == p->line || buf[at - 1] != '\r')
			return HTTP1_E_BARE_LF;
		i = at + 1;
		if (at - 1 == p->line) {
			if (!first) {
				p->scan = i;
				int rc = finish(p, buf, i, msg);
				return rc ? rc : (int)i;
			}
			/* RFC 9112 2.2: ignore empty lines before a request line */
			if (p->kind == HTTP1_RESPONSE)
				return HTTP1_E_SYNTAX;
			p->start = i;
		}
		p->line = i;
	}
}

enum {
	CH_SIZE0,
	CH_SIZE,
	CH_SIZE_WS,
	CH_EXT,
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TR_LINE,
	CH_TR_NAME,
	CH_TR_VALUE,
	CH_TR_LF,
	CH_TR_END_LF,
	CH_DONE,
};

void http1_chunked_init(struct http1_chunked *c)
{
	memset(c, 0, sizeof *c);
	c->max_ext = 1024;
	c->max_trailer = 8192;
	c->state = CH_SIZE0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = lower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* One byte of framing (anything but chunk data). Returns 0 or an error. */
static int chunk_byte(struct http1_chunked *c, unsigned char ch)
{
	int d;
	if (c->state >= CH_TR_LINE && ++c->trailer > c->max_trailer)
		return HTTP1_E_TRAILER_TOO_LARGE;
	switch (c->state) {
	case CH_SIZE0:
		if ((d = hexval(ch)) < 0)
			return HTTP1_E_CHUNK_SIZE;
		c->size = (uint64_t)d;
		c->ext = 1;
		c->state = CH_SIZE;
		return 0;
	case CH_SIZE:
		if ((d = hexval(ch)) >= 0) {
			if (c->size > (HTTP1_CHUNK_SIZE_MAX - (uint64_t)d) / 16)
				return HTTP1_E_CHUNK_OVERFLOW;
			if (++c->ext > 64) /* leading zeros without end */
				return HTTP1_E_CHUNK_SIZE;
			c->size = c->size * 16 + (uint64_t)d;
			return 0;
		}
		c->ext = 0;
		if (ch == '\r')
			c->state = CH_SIZE_LF;
		else if (ch == ';')
			c->state = CH_EXT;
		else if (ch == ' ' || ch == '\t')
			c->state = CH_SIZE_WS;
		else
			return ch == '\n' ? HTTP1_E_CHUNK_CRLF : HTTP1_E_CHUNK_SIZE;
		return 0;
	case CH_SIZE_WS: /* BWS is only allowed before a ';' */
		if (++c->ext > c->max_ext)
			return HTTP1_E_CHUNK_EXT;
		if (ch == ';')
			c->state = CH_EXT;
		else if (ch != ' ' && ch != '\t')
			return HTTP1_E_CHUNK_EXT;
		return 0;
	case CH_EXT:
		if (ch == '\r') {
			c->state = CH_SIZE_LF;
			return 0;
		}
		if (++c->ext > c->max_ext || !IS(ch, C_VALUE))
			return ch == '\n' ? HTTP1_E_CHUNK_CRLF : HTTP1_E_CHUNK_EXT;
		return 0;
	case CH_SIZE_LF:
		if (ch != '\n')
			return HTTP1_E_CHUNK_CRLF;
		c->state = c->size ? CH_DATA : CH_TR_LINE;
		return 0;
	case CH_DATA_CR:
		if (ch != '\r')
			return HTTP1_E_CHUNK_CRLF;
		c->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (ch != '\n')
			return HTTP1_E_CHUNK_CRLF;
		c->state = CH_SIZE0;
		return 0;
	case CH_TR_LINE:
		if (ch == '\r')
			c->state = CH_TR_END_LF;
		else if (ch == ' ' || ch == '\t')
			return HTTP1_E_OBS_FOLD;
		else if (ch == '\n')
			return HTTP1_E_BARE_LF;
		else if (IS(ch, C_TOKEN))
			c->state = CH_TR_NAME;
		else
			return HTTP1_E_HEADER_NAME;
		return 0;
	case CH_TR_NAME:
		if (ch == ':')
			c->state = CH_TR_VALUE;
		else if (!IS(ch, C_TOKEN))
			return HTTP1_E_HEADER_NAME;
		return 0;
	case CH_TR_VALUE:
		if (ch == '\r')
			c->state = CH_TR_LF;
		else if (!IS(ch, C_VALUE))
			return ch == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_HEADER_VALUE;
		return 0;
	case CH_TR_LF:
		if (ch != '\n')
			return HTTP1_E_BARE_LF;
		c->state = CH_TR_LINE;
		return 0;
	case CH_TR_END_LF:
		if (ch != '\n')
			return HTTP1_E_BARE_LF;
		c->state = CH_DONE;
		c->done = true;
		return 0;
	}
	return HTTP1_E_SYNTAX;
}

int http1_chunked_feed(struct http1_chunked *c, const char *buf, size_t len, size_t *used,
		       const char **data, size_t *data_len)
{
	size_t i = 0;
	*data = buf;
	*data_len = 0;
	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_DATA) {
			size_t n = len - i;
			if (n > c->size)
				n = (size_t)c->size;
			*data = buf + i;
			*data_len = n;
			i += n;
			c->size -= n;
			if (c->size == 0)
				c->state = CH_DATA_CR;
			break;
		}
		int rc = chunk_byte(c, (unsigned char)buf[i]);
		if (rc) {
			*used = i;
			return rc;
		}
		i++;
	}
	*used = i;
	return 0;
}

int http1_split_absolute(const char *t, size_t n, const char **auth, size_t *auth_len, const char **rest,
			 size_t *rest_len)
{
	size_t sl;
	if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
		sl = 7;
	else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		sl = 8;
	else
		return HTTP1_E_TARGET;
	const char *a = t + sl;
	size_t an = 0;
	while (sl + an < n && a[an] != '/' && a[an] != '?' && a[an] != '#')
		an++;
	const char *r = a + an;
	size_t rn = n - sl - an;
	if (memchr(r, '#', rn) || !authority_ok(a, an, false))
		return HTTP1_E_TARGET;
	if (a[an - 1] == ':') /* an empty port is the default one */
		an--;
	*auth = a;
	*auth_len = an;
	*rest = r;
	*rest_len = rn;
	return 0;
}
