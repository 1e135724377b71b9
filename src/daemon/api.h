/* The daemon's HTTP/1.1 + JSON server on libuv: unix-socket and token-protected TCP listeners,
 * a routing table with {name} segments, synchronous or asynchronous replies, server-sent events. */
#ifndef ROLLOUT_DAEMON_API_H
#define ROLLOUT_DAEMON_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct api;
struct api_req;

/* A route handler. It owns req until it finishes it with exactly one api_reply_*() call, or with
 * api_sse_end() after api_sse_start(); it may do so later, from another callback. */
typedef void (*api_handler)(struct api_req *req, void *ctx);

#define API_MAX_CONNS 256 /* per listener: the unix socket and TCP each have their own */
#define API_MAX_HEAD (16 * 1024)
#define API_MAX_BODY (1024 * 1024)
#define API_MAX_SEGS 32 /* path segments of a request or a route */

/* Creates a server on loop (borrowed; it must outlive the api). Returns 0 and *out. */
int api_new(uv_loop_t *loop, struct api **out);
/* Listens on a unix socket at path, mode 0600. A stale socket file (nothing answers on it) is
 * removed first; a live one gives -EADDRINUSE, a non-socket file -EEXIST. */
int api_listen_unix(struct api *api, const char *path);
/* Listens on TCP "host:port" ("127.0.0.1:0", "[::1]:7070"); every request must carry
 * "Authorization: Bearer <token>" (copied; wiped on close) or gets 401. */
int api_listen_tcp(struct api *api, const char *host_port, const char *token);
/* The bound TCP port (useful after binding port 0), or a negative errno. */
int api_tcp_port(struct api *api);
/* Changes the timeouts: head_ms to send a request head once its first byte came, idle_ms between
 * requests, body_ms to send the whole body once the head is in. Bytes never extend a deadline.
 * Defaults 10 s, 30 s and 60 s. */
void api_set_timeouts(struct api *api, uint64_t head_ms, uint64_t idle_ms, uint64_t body_ms);
/* Adds a route. method is "GET", "POST", ...; pattern like "/v1/services/{name}/pause", where a
 * {name} segment matches one non-empty path segment. Strings are copied; ctx is passed through. */
void api_route(struct api *api, const char *method, const char *pattern, api_handler fn, void *ctx);
/* Adds a route that a TCP client may use without the bearer token (a page that holds no data, such
 * as the dashboard). path is literal, without {name} segments; only a request for exactly that
 * method and path (any query string) gets through, any other request without the token is 401. */
void api_route_open(struct api *api, const char *method, const char *path, api_handler fn, void *ctx);
/* Stops listening, closes every connection (requests still held by handlers get closed=true and
 * their on_close callback), removes the unix socket file, then calls done(arg) and frees api. */
void api_close(struct api *api, void (*done)(void *arg), void *arg);

/* The router's pure decoding steps, exposed for tests/fuzz/fuzz_api_path.c.
 * api_split_path splits path (starting with '/') into segments in place: segs (API_MAX_SEGS
 * entries) point into path. Returns the count, or -1 if there are more than API_MAX_SEGS.
 * api_percent_decode percent-decodes s[0..n) into a new string (*out, caller frees); '+' becomes a
 * space when plus (query strings). Returns 0, or -EINVAL for a bad escape or an encoded NUL. */
int api_split_path(char *path, char **segs);
int api_percent_decode(const char *s, size_t n, bool plus, char **out);

/* Request accessors. Strings are NUL-terminated and live as long as req. */
const char *api_req_method(const struct api_req *req);
const char *api_req_path(const struct api_req *req);          /* without the query string */
const char *api_req_body(const struct api_req *req, size_t *len); /* "" when there is none */
/* The decoded value of a {name} segment, a query parameter, or a header (case-insensitive name);
 * NULL when absent. */
const char *api_param(const struct api_req *req, const char *name);
const char *api_query(const struct api_req *req, const char *name);
const char *api_header(const struct api_req *req, const char *name);
/* True once the client went away; replies then only release req. */
bool api_req_closed(const struct api_req *req);
/* cb(req, arg) runs once when the client goes away while req is unfinished (never after the
 * handler finished req). req stays valid in and after cb: the handler must still finish it. */
void api_req_on_close(struct api_req *req, void (*cb)(struct api_req *req, void *arg), void *arg);
/* A pointer for the handler's own use. */
void api_req_set_data(struct api_req *req, void *data);
void *api_req_data(const struct api_req *req);

/* Finish req with a response; req is freed. Return 0, or -EPIPE when the client had gone away
 * (req is freed all the same). api_reply_json steals the reference to body. */
int api_reply_json(struct api_req *req, int status, json_t *body);
int api_reply_error(struct api_req *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int api_reply_text(struct api_req *req, int status, const char *content_type, const char *text);
/* Like api_reply_text with len bytes of body and extra header lines: headers is NULL or a series of
 * "Name: value\r\n" lines (the caller's constant, never request data). */
int api_reply_with(struct api_req *req, int status, const char *content_type, const char *headers,
		   const char *body, size_t len);

/* Server-sent events: api_sse_start() sends a 200 text/event-stream head (the stream ends when the
 * connection closes); api_sse_send() sends one event (id < 0 omits "id:", event NULL omits
 * "event:", data may hold newlines); both return 0 or -EPIPE once the client is gone or too slow.
 * api_sse_end() closes the stream and frees req. */
int api_sse_start(struct api_req *req);
int api_sse_send(struct api_req *req, int64_t id, const char *event, const char *data);
void api_sse_end(struct api_req *req);

#endif
