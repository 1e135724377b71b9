/* Health checks of instances: one checker handle per instance, probing over http (libcurl multi on
 * the libuv loop), tcp or exec at an interval, and reporting transitions only. Never blocks. */
#ifndef ROLLOUT_DAEMON_HEALTH_H
#define ROLLOUT_DAEMON_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/spec.h"

/* Shared by all checks on one loop: the curl multi handle and its timer. */
struct health_ctx;
/* One instance's checker. */
struct health_check;

/* A transition: healthy after healthy_threshold consecutive successes, unhealthy after
 * unhealthy_threshold consecutive failures, from any state that is not already the same, so
 * an instance that never passes is reported unhealthy once the failures reach the threshold,
 * and never healthy. detail (valid during the call) says what the last probe saw, as
 * health_last does: "HTTP 503 from GET /healthz (want 200)", "exit status 1", "timed out after
 * 200ms". */
typedef void (*health_cb)(void *ctx, uint64_t id, bool healthy, const char *detail);

/* A probe's result text fits in this many bytes (longer ones are cut), and an exec probe's last
 * line of output, which its result ends with ("exit status 3: boom"), in HEALTH_LINE_MAX. */
#define HEALTH_DETAIL_MAX 200
#define HEALTH_LINE_MAX 100

/* A new context on loop. Returns 0 or a negative errno (-EIO when libcurl cannot start). */
int health_ctx_new(uv_loop_t *loop, struct health_ctx **out);
/* Stops every check still running (no callback after this) and closes the context; memory is
 * freed in libuv close callbacks, so run the loop afterwards. A probe's process killed on the
 * way is reaped through the loop too. health_ctx_free(NULL) is a no-op. */
void health_ctx_free(struct health_ctx *hc);

/* Starts checking host:port (the instance `id`) as h says; h and host are copied. The first
 * probe comes after a random delay of 0..interval/4 (so that instances started together do not
 * probe in step), then one probe every interval (measured from probe start to probe start; a
 * probe never overlaps the next). Kind none reports healthy on the next loop iteration, once.
 * http: GET http://host:port/path, healthy iff the status is the expected one, within timeout.
 * tcp: a connection accepted within timeout (host must be a numeric address).
 * exec: argv (no shell) with PORT and HOST added to the daemon's environment, in its own
 * process group, healthy iff it exits 0 within timeout; killed (whole group) on timeout
 * (health_start_on: through a runner instead, e.g. on the instance's ssh host).
 * Returns 0 and *out, or -EINVAL (bad spec: no path, no argv, no port). */
int health_start(struct health_ctx *hc, const struct spec_health *h, const char *host, int port,
		 uint64_t id, health_cb cb, void *ctx, struct health_check **out);
/* Runs exec probes somewhere else than this machine (ssh targets: on the instance's host, through
 * the ssh driver's drv_exec). run starts argv (n strings) at `where` with PORT=port and HOST=host in
 * its environment, killed after timeout_ms: 0 and *req, then exactly one done(arg, status, detail)
 * from the loop (status 0: success; detail valid during the call), unless cancel(ctx, *req) came
 * first; or a negative errno and no done. */
struct health_runner {
	void *ctx;
	int (*run)(void *ctx, const char *where, char *const *argv, size_t n, const char *host, int port,
		   int64_t timeout_ms, void (*done)(void *arg, int status, const char *detail), void *arg,
		   void **req);
	void (*cancel)(void *ctx, void *req);
};

/* As health_start, but exec probes go through runner (copied; NULL: as health_start) with `where`
 * (copied) naming the place; http, tcp and none are as health_start. Without a runner, `where`
 * (may be NULL: the daemon's) is the directory a local exec probe runs in (the instance's workdir). */
int health_start_on(struct health_ctx *hc, const struct spec_health *h, const char *host, int port, uint64_t id,
		    const struct health_runner *runner, const char *where, health_cb cb, void *ctx,
		    struct health_check **out);
/* What the check's last probe saw, whether or not it changed the state: "HTTP 404 from GET
 * /healthz (want 200)", "connect 127.0.0.1:8080: connection refused", "exit status 3: boom"
 * (an exec probe's stdout and stderr: its last non-empty line, printable ASCII only); "" before
 * the first result. Owned by the check, valid until its next result or its stop. */
const char *health_last(const struct health_check *chk);
/* Stops the check: an in-flight probe is cancelled and no callback follows. Memory is freed
 * when libuv is done with it. health_stop(NULL) is a no-op; may be called from the callback. */
void health_stop(struct health_check *chk);

#endif
