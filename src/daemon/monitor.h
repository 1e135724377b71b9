/* Monitoring of live traffic in the daemon: samples every service's per-revision counters from its
 * load balancer about once a second, and turns the samples into the analysis verdict the engine
 * reads (st.verdict, verdict_reason, verdict_since), with an event for each result. */
#ifndef ROLLOUT_DAEMON_MONITOR_H
#define ROLLOUT_DAEMON_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/analysis.h"

struct daemon;
struct svc;
struct monitor;
struct monitor_svc;

#define MONITOR_INTERVAL_MS 1000

/* Starts sampling on d's loop. monitor_close stops it; memory goes in the close callback. */
int monitor_new(struct daemon *d, struct monitor **out);
/* monitor_close(NULL) is a no-op. */
void monitor_close(struct monitor *m);
/* A service's samples; monitor_svc_free(NULL) is a no-op. */
void monitor_svc_free(struct monitor_svc *ms);

/* The lb_callbacks.stats report; ctx is the daemon. */
void monitor_on_stats(void *ctx, const char *service, int err, const struct analysis_rev *v, size_t n);
/* The newest sample of a service (for /metrics), or NULL. */
const struct analysis_sample *monitor_last(const struct svc *s);
/* The last analysis result of a service (for /metrics), or NULL when none was computed. */
const struct analysis_result *monitor_result(const struct svc *s);

/* Health check transitions of a service, counted for /metrics. */
struct monitor_health {
	uint64_t healthy, unhealthy;
};
void monitor_health_result(struct svc *s, bool healthy);
struct monitor_health monitor_health_of(const struct svc *s);

#endif
