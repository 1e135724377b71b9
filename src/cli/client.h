/* The CLI's client of the daemon API: HTTP/1.1 + JSON over DATA/rollout.sock (libcurl), and a
 * server-sent events stream. The transport is a table of function pointers (curl, or a fake). */
#ifndef ROLLOUT_CLI_CLIENT_H
#define ROLLOUT_CLI_CLIENT_H

#include <stddef.h>

#include <jansson.h>

/* Largest reply body or SSE line accepted; beyond is -EMSGSIZE. */
#define CLIENT_MAX_BODY (16u << 20)
#define CLIENT_MAX_LINE (1u << 20)

/* One server-sent event; strings valid only during the callback. */
struct client_sse_event {
	const char *id;	   /* last event id seen ("" if none) */
	const char *event; /* "message" when the server gave none */
	const char *data;  /* data lines joined with '\n' */
};

/* Called per event; return nonzero to stop the stream (that value is passed back up). */
typedef int (*client_event_cb)(void *arg, const struct client_sse_event *ev);

/* How requests reach the daemon. request: one call; *body_out is a NUL-terminated reply the
 * caller frees (may be set also on HTTP errors), *status the HTTP status. stream: a GET whose
 * reply is an event stream, fed to cb until the server closes it or cb returns nonzero.
 * Both return 0, -ECONNREFUSED when nothing answers on the socket, -EIO for another transport
 * failure, -EMSGSIZE for an oversize reply; stream returns cb's nonzero value when cb stopped it,
 * and -EPROTO (with *status set) when the reply is not 200. */
struct client_ops {
	int (*request)(void *impl, const char *method, const char *path, const char *body, long *status,
		       char **body_out, char *err, size_t errlen);
	int (*stream)(void *impl, const char *path, long *status, client_event_cb cb, void *arg, char *err,
		      size_t errlen);
	void (*free)(void *impl);
};

struct client;

/* A client of the daemon on unix socket sock_path (copied). Free with client_free. */
struct client *client_new(const char *sock_path);
/* A client over another transport (tests): ops is not copied, impl is freed by ops->free. */
struct client *client_new_ops(const struct client_ops *ops, void *impl);
void client_free(struct client *c);

/* One API call. body may be NULL (not consumed). On a reply, returns 0 with *status set and
 * *resp the parsed JSON (NULL when the reply was empty or not JSON; caller frees). Returns a
 * negative errno from the transport otherwise (see struct client_ops). */
int client_call(struct client *c, const char *method, const char *path, json_t *body, long *status,
		json_t **resp);
/* Streams the events at path (see struct client_ops.stream). */
int client_stream(struct client *c, const char *path, long *status, client_event_cb cb, void *arg);
/* Message of the last transport failure ("" if none). */
const char *client_error(const struct client *c);

/* Server-sent events parser (pure): bytes in, events out, as the WHATWG event-stream format
 * says: lines end with \n, \r\n or \r; "field: value"; blank line dispatches; ':' comments. */
struct client_sse {
	char *line;
	size_t len, cap;
	char *data;
	size_t dlen, dcap;
	char id[64];
	char event[64];
	int saw_cr; /* last byte was \r: a following \n belongs to it */
};

void client_sse_init(struct client_sse *p);
void client_sse_close(struct client_sse *p);
/* Feeds n bytes. Returns 0, cb's nonzero value when it asked to stop, or -EMSGSIZE for a line
 * or event longer than CLIENT_MAX_LINE. */
int client_sse_feed(struct client_sse *p, const char *buf, size_t n, client_event_cb cb, void *arg);

#endif
