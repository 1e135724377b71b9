/* Strict, incremental, zero-copy HTTP/1.1 message-head parser (requests and responses) and
 * chunked-body decoder, shared by the daemon's API server and the reverse proxy. */
#ifndef ROLLOUT_UTIL_HTTP1_H
#define ROLLOUT_UTIL_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors: negative, outside the errno range. http1_status() maps each to an HTTP status. */
enum {
	HTTP1_E_SYNTAX = -4000,    /* 400: malformed request/status line or head */
	HTTP1_E_METHOD,            /* 400: method is not a token */
	HTTP1_E_TARGET,            /* 400: request-target has a CTL, space or bad form */
	HTTP1_E_VERSION,           /* 400: version is not HTTP/DIGIT.DIGIT */
	HTTP1_E_VERSION_UNSUPP,    /* 505: well-formed version other than HTTP/1.0 or 1.1 */
	HTTP1_E_STATUS,            /* 400: bad status code in a response */
	HTTP1_E_BARE_LF,           /* 400: LF without CR (a stray CR in a field is HEADER_VALUE) */
	HTTP1_E_HEADER_NAME,       /* 400: empty or non-token header name, space before colon */
	HTTP1_E_HEADER_VALUE,      /* 400: NUL, CR, LF or other CTL (not HTAB) in a value */
	HTTP1_E_OBS_FOLD,          /* 400: header line starting with SP or HTAB */
	HTTP1_E_CL_BAD,            /* 400: Content-Length not 1*DIGIT or too large */
	HTTP1_E_CL_DUP,            /* 400: several Content-Length fields or a list */
	HTTP1_E_CL_TE,             /* 400: both Content-Length and Transfer-Encoding */
	HTTP1_E_TE_BAD,            /* 400: empty coding list, chunked twice or not last, params */
	HTTP1_E_TE_NOT_CHUNKED,    /* 400: request whose last transfer coding is not chunked */
	HTTP1_E_TE_HTTP10,         /* 400: Transfer-Encoding in an HTTP/1.0 message */
	HTTP1_E_TE_UNSUPP,         /* 501: unknown transfer coding */
	HTTP1_E_HOST,              /* 400: HTTP/1.1 request without exactly one Host, or two Hosts */
	HTTP1_E_URI_TOO_LONG,      /* 414: request line longer than max_line */
	HTTP1_E_HEAD_TOO_LARGE,    /* 431: head longer than max_head (or status line > max_line) */
	HTTP1_E_TOO_MANY_HEADERS,  /* 431: more fields than the caller's header array holds */
	HTTP1_E_CHUNK_SIZE,        /* 400: chunk size missing or not hex */
	HTTP1_E_CHUNK_OVERFLOW,    /* 400: chunk size above 2^62 */
	HTTP1_E_CHUNK_EXT,         /* 400: chunk extension too long or with a CTL */
	HTTP1_E_CHUNK_CRLF,        /* 400: missing CRLF after chunk size or data */
	HTTP1_E_TRAILER_TOO_LARGE, /* 431: trailer section above its limit */
	HTTP1_E_LAST_
};

enum http1_kind { HTTP1_REQUEST, HTTP1_RESPONSE };

/* How the body after the head is delimited. */
enum http1_body {
	HTTP1_BODY_NONE,    /* no body (requests without CL/TE, 1xx/204/304, responses to HEAD) */
	HTTP1_BODY_LENGTH,  /* exactly content_length bytes */
	HTTP1_BODY_CHUNKED, /* chunked: decode with http1_chunked_* */
	HTTP1_BODY_CLOSE,   /* responses only: until the connection closes */
};

/* One header field; pointers are into the caller's buffer (not NUL-terminated). The value has
 * its leading and trailing whitespace removed. */
struct http1_header {
	const char *name;
	const char *value;
	uint32_t name_len;
	uint32_t value_len;
};

/* A parsed head. Pointers are into the buffer given to http1_parse() and valid while it is. */
struct http1_msg {
	const char *method; /* requests */
	size_t method_len;
	const char *target; /* requests */
	size_t target_len;
	int status; /* responses */
	const char *reason;
	size_t reason_len;
	int minor; /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
	struct http1_header *headers;
	size_t nheaders;
	enum http1_body body;
	uint64_t content_length; /* for HTTP1_BODY_LENGTH */
	bool keep_alive;
	bool expect_continue; /* requests: Expect: 100-continue */
	bool has_host;
	const char *host; /* the Host value when has_host */
	size_t host_len;
};

/* Parser state between calls; set up with http1_parser_init(). Limits may be changed after init. */
struct http1_parser {
	enum http1_kind kind;
	size_t max_line;    /* request/status line limit, default 8 KiB */
	size_t max_head;    /* whole head limit, default 16 KiB */
	bool head_response; /* responses: answer to a HEAD request, so no body */
	struct http1_header *headers;
	size_t max_headers;
	/* private */
	size_t scan;  /* bytes already scanned for line ends */
	size_t start; /* where the message starts (after leading empty lines) */
	size_t line;  /* start of the line being scanned */
};

#define HTTP1_DEFAULT_MAX_LINE 8192
#define HTTP1_DEFAULT_MAX_HEAD 16384

/* Prepares p for one message. headers is the caller's array of max_headers entries, written only
 * by the http1_parse() call that completes the head (so p->headers may be pointed at a different
 * array before each call); the result's headers point into it. */
void http1_parser_init(struct http1_parser *p, enum http1_kind kind, struct http1_header *headers,
		       size_t max_headers);

/* Parses the head at the start of buf[0..len). buf holds every byte of the message received so far
 * (it may move between calls; the caller appends and calls again). Returns the head length (> 0)
 * with *msg filled, 0 when more bytes are needed, or a negative HTTP1_E_* code. Never allocates. */
int http1_parse(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg);

/* The HTTP status for an error code (400, 414, 431, 501, 505), or 500 for an unknown code. */
int http1_status(int err);
/* A short human description of an error code, for error bodies and logs. */
const char *http1_strerror(int err);

/* Moves every pointer of msg (and of its headers) from the buffer at from to the same offsets in
 * the buffer at to, for a caller that copied the bytes to a bigger buffer while a head is held.
 * Both buffers must be valid during the call. */
void http1_msg_rebase(struct http1_msg *msg, const char *from, const char *to);

/* Splits an absolute-form request target, "http://" or "https://" (any case), an authority without
 * userinfo, then the path and query (no fragment), into the authority (host[:port], an empty
 * port dropped) and the rest (a path starting with "/" or a query starting with "?", or empty).
 * The spans point into t. Returns 0, or HTTP1_E_TARGET (other schemes, userinfo, a bad host or
 * port, a fragment). */
int http1_split_absolute(const char *t, size_t n, const char **auth, size_t *auth_len, const char **rest,
			 size_t *rest_len);

/* Finds a header by case-insensitive name. Returns its index in msg->headers or -1. */
int http1_find(const struct http1_msg *msg, const char *name, size_t from);

/* Chunked body decoder: feed raw bytes, get spans of body data. */
struct http1_chunked {
	size_t max_ext;     /* bytes of chunk extensions per chunk line, default 1024 */
	size_t max_trailer; /* bytes of trailer section, default 8 KiB */
	bool done;          /* the last chunk and the trailer section were consumed */
	/* private */
	int state;
	uint64_t size;
	size_t ext;
	size_t trailer;
};

#define HTTP1_CHUNK_SIZE_MAX ((uint64_t)1 << 62)

void http1_chunked_init(struct http1_chunked *c);
/* Decodes buf[0..len). Sets *used to the raw bytes consumed and *data and *data_len to the body data
 * found among them (a span inside buf, possibly empty; at most one span per call). Call again
 * with the rest while *used < len and !c->done. Returns 0, or a negative HTTP1_E_* code. */
int http1_chunked_feed(struct http1_chunked *c, const char *buf, size_t len, size_t *used,
		       const char **data, size_t *data_len);

#endif
