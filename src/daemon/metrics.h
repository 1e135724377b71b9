/* GET /metrics: the daemon's state, the balancer's traffic per revision and the analysis, in the
 * Prometheus text exposition format (version 0.0.4). */
#ifndef ROLLOUT_DAEMON_METRICS_H
#define ROLLOUT_DAEMON_METRICS_H

#include <stddef.h>

struct daemon;

/* Past this size the rendering stops with -EFBIG (thousands of services would be needed). */
#define METRICS_MAX_BYTES (16u << 20)

/* Renders every metric into a NUL-terminated buffer the caller frees: *out, *len. Returns 0 or
 * -EFBIG (nothing in *out). */
int metrics_render(struct daemon *d, char **out, size_t *len);

#endif
