/* The proxy's admin server: HTTP/1.1 + JSON on a unix socket (mode 0600), requests answered
 * synchronously by one handler. Minimal on purpose: Content-Length bodies up to 1 MiB, keep-alive. */
#ifndef ROLLOUT_PROXY_ADMIN_H
#define ROLLOUT_PROXY_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#define PROXY_ADMIN_MAX_BODY (1024 * 1024)

/* Answers one request: method and path are NUL-terminated; body is len bytes (NUL-terminated).
 * Sets *reply to a JSON value the server takes ownership of, and returns the HTTP status. */
typedef int (*proxy_admin_fn)(void *ctx, const char *method, const char *path, const char *body, size_t len,
			      json_t **reply);

struct proxy_admin;

/* Listens on path: a stale socket file (nothing answers) is removed first; a live one gives
 * -EADDRINUSE. Returns 0 and *out, or a negative errno. */
int proxy_admin_new(uv_loop_t *loop, const char *path, proxy_admin_fn fn, void *ctx, struct proxy_admin **out);
/* Stops listening, removes the socket file, closes connections; frees in close callbacks.
 * proxy_admin_close(NULL) is a no-op. */
void proxy_admin_close(struct proxy_admin *a);

#endif
