/* The rollout daemon: the control plane's environment (the one global of the process) and the
 * per-service runtime that joins the engine to the store, the drivers and the load balancer. */
#ifndef ROLLOUT_DAEMON_DAEMON_H
#define ROLLOUT_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/engine.h"
#include "core/spec.h"

struct store;
struct drv;
struct lb;
struct api;
struct api_req;
struct health_ctx;
struct health_check;
struct monitor;
struct monitor_svc;
struct notify;

struct daemon_opts {
	const char *data_dir;   /* DATA */
	const char *api_tcp;    /* optional host:port for the TCP API */
	const char *token_file; /* file holding the TCP API's bearer token */
	int port_lo, port_hi;   /* instance ports, inclusive */
	long keep_events;       /* events kept per service (older ones pruned); 0: all */
	const char *self_exe;   /* this binary, to start the proxy */
	const char *socket_group; /* NULL, or the group whose members may use DATA/rollout.sock */
};

/* Runtime of one instance that the engine state does not hold. */
struct svc_rt {
	uint64_t id;
	struct health_check *hc;
	uv_timer_t *timer; /* drain timeout, or a delayed start */
	int pid;
	uint64_t proc_start; /* with pid: identifies the process after a restart */
	bool proc_dirty;     /* pid not yet recorded: goes with the next commit */
	bool started;        /* the driver has it */
	char host[300];      /* ssh targets: "user@host:port" it runs on ("" for local) */
	char addr[260];      /* ssh targets: the host's address, for health checks and backends */
};

/* One parsed revision, cached. */
struct svc_rev {
	int rev;
	struct spec spec;
};

struct daemon;

struct svc {
	struct daemon *d;
	char *name;
	struct spec spec;   /* latest applied: replicas, strategy, lb */
	struct engine_state st;
	struct engine_out out;
	struct svc_rev *revs;
	size_t n_revs;
	struct svc_rt *rt;
	size_t n_rt, cap_rt;
	bool dirty;
	bool resume; /* committed intents not carried out (the store failed): redone when it is back */
	char pending_abort[160]; /* an abort for a changed host key the store refused: made when back */
	size_t events_unpruned; /* events recorded since its last retention prune (svc.c commit) */
	struct lb_backend *pushed; /* last backend set given to the load balancer */
	size_t n_pushed;
	bool pushed_valid;
	uv_timer_t *wake; /* fires at the engine's next deadline */
	char lb_error[400];  /* what the load balancer last could not do ("" when in sync) */
	int64_t lb_error_since;
	char listener_error[256]; /* the balancer's listener for it is not bound: why ("" when bound) */
	struct monitor_svc *mon; /* monitor.c: traffic samples, analysis results */
};

/* One haproxy balancer and what it steers. */
struct daemon_lbh {
	char *socket, *backend;
	struct lb *lb;
};

/* A stored service that could not be loaded at start (its spec no longer validates, its state row
 * cannot be read): reported in the status and its events, and taken over again by an apply. */
struct daemon_unloaded {
	char *name;
	char *why; /* one line, no secret */
	int64_t since;
};

/* The daemon's environment. */
struct daemon {
	uv_loop_t *loop;
	char *data;    /* absolute */
	char *log_dir; /* DATA/logs */
	int lock_fd;
	struct store *store;
	struct drv *drv;
	struct drv *drv_ssh; /* ssh targets; made on first need */
	struct health_ctx *health;
	struct monitor *monitor; /* samples traffic, judges analysis */
	struct notify *notify;   /* webhook deliveries */
	struct lb *lb_none;
	struct lb *lb_builtin; /* made on first need: no proxy runs for lb: none services */
	struct daemon_lbh *lbh; /* haproxy balancers, one per socket and backend, made on first need */
	size_t n_lbh, cap_lbh;
	char *self_exe;        /* this binary, to start `rollout proxy` */
	struct api *api;
	struct svc **svcs;
	size_t n_svcs, cap_svcs;
	struct daemon_unloaded *unloaded; /* stored services not loaded at start */
	size_t n_unloaded, cap_unloaded;
	int port_lo, port_hi, port_next;
	uv_timer_t tick;
	uv_timer_t prune;    /* event retention, every PRUNE_MS */
	uv_timer_t watchdog; /* WATCHDOG=1 to systemd, when it asks for pings */
	long keep_events;
	uv_idle_t idle; /* runs steps for dirty services */
	uv_signal_t sigterm, sigint;
	struct api_req **subs; /* open server-sent-event streams */
	size_t n_subs, cap_subs;
	int64_t published;     /* last event id sent to subscribers */
	/* The store's writes (daemon_store_failed): while they fail the daemon decides and does
	 * nothing, serves reads, and probes every STORE_RETRY_MS. */
	int64_t store_down_since;	 /* wall ms of the first failed write; 0 while writes work */
	char store_error[600];		 /* the last failed write: what the daemon did and SQLite's words */
	char store_first_error[600];	 /* the first one, for the event that closes the outage */
	char store_what[200];		 /* what the last failed write was for */
	uint64_t store_failures;	 /* failed writes since start (/metrics) */
	uint64_t store_failures_at_down; /* store_failures when it went down */
	uv_timer_t store_retry;
	int ckpt_ticks; /* ticks since the last WAL checkpoint */
	bool stopping;
	int exit_code;
};

int daemon_run(const struct daemon_opts *o);

/* Wall-clock milliseconds: timestamps survive a restart. */
int64_t daemon_now(void);
/* The one failure path of the store: a write failed while doing `what` (the error is
 * store_errmsg). From the first failure until a probe write succeeds, the daemon carries out no
 * new decision (steps and commands wait), serves reads from memory and the database, and says so
 * in status and /metrics; the probe, every STORE_RETRY_MS, records a store_unavailable event
 * (from when to when) and then re-makes every service's pending step. what NULL: the probe's own
 * write failed (the last `what` is kept). */
void daemon_store_failed(struct daemon *d, const char *what);
bool daemon_store_down(const struct daemon *d);
/* {"since": ms, "error": text}, or NULL while writes work. New reference. */
json_t *daemon_store_json(const struct daemon *d);
/* Marks a service for a step at the end of this loop iteration. */
void daemon_dirty(struct svc *s);
struct svc *daemon_find(struct daemon *d, const char *name);
/* The stored service of that name that could not be loaded, or NULL. */
const struct daemon_unloaded *daemon_find_unloaded(const struct daemon *d, const char *name);
/* Forgets that name as unloaded (it was taken over by an apply). */
void daemon_drop_unloaded(struct daemon *d, const char *name);
/* Sends new events to server-sent-event subscribers. */
void daemon_publish(struct daemon *d);
/* A free port from the range, not used by any instance; -EADDRINUSE when none. */
int daemon_alloc_port(struct daemon *d);
/* The ssh driver, made on first use; NULL when it cannot be made. */
struct drv *daemon_drv_ssh(struct daemon *d);
/* The builtin balancer (the `rollout proxy` client), started on first use. */
struct lb *daemon_lb_builtin(struct daemon *d);
/* The haproxy balancer of socket and backend, made on first use; NULL when it cannot be made. */
struct lb *daemon_lb_haproxy(struct daemon *d, const char *socket, const char *backend);

/* ---- svc.c: one service ---- */
/* Loads a service from the store and re-adopts its instances: its state, and the spec stored with
 * it, or yaml_text instead when not NULL (a corrected spec being applied to a service that could
 * not be loaded). 0 with *out, or a negative code with why (len bytes) saying what is wrong in
 * one line (no secret: a stored spec is redacted, and the parser never shows env values). */
int svc_load(struct daemon *d, const char *name, const char *yaml_text, struct svc **out, char *why,
	     size_t len);
/* A new service (first apply). */
struct svc *svc_new(struct daemon *d, const char *name);
void svc_free(struct svc *s);
/* Applies a parsed spec (yaml is its text, stored as the revision's source with secret env values
 * redacted; the values go to DATA/secrets/<service> first). Fills *rev and *changed (a new revision
 * or new replicas: a rollout), and updated[0..*n_updated) (SPEC_FIELDS_MAX entries, static names)
 * with the fields outside the template that differ from the spec applied before. Returns 0 or a
 * negative code with msg filled. */
int svc_apply(struct svc *s, struct spec *spec, const char *yaml, int *rev, bool *changed,
	      const char **updated, size_t *n_updated, char *msg, size_t len);
/* What a command asks besides its verb. */
struct svc_cmd {
	int rev;	 /* undo: the revision (0 = the last stable one) */
	bool force;	 /* undo: also to a revision that never became stable */
	const char *why; /* abort: the reason recorded (NULL: "aborted by user") */
};
/* pause, resume, promote, abort, undo; c may be NULL for none of the above. Returns 0, or a
 * negative code with msg filled (-EINVAL for an unknown verb, msg empty). */
int svc_command(struct svc *s, const char *verb, const struct svc_cmd *c, char *msg, size_t len);
/* One engine step, committed, then carried out. */
void svc_step(struct svc *s);
json_t *svc_status_json(struct svc *s);
/* A rollout as the API shows it (status and history alike): what it is and was begun as, how it
 * ended (the engine's words), revisions and replicas from and to, times. New reference. */
json_t *svc_rollout_json(const struct engine_rollout *ro, int64_t now);
/* The version of revision rev of s, NULL when it cannot be had. */
const char *svc_version_of(struct svc *s, int rev);
/* The service's load balancer (none when its own cannot be had). */
struct lb *svc_lb(struct svc *s);

/* Observations, from driver, health and balancer callbacks. */
void svc_on_started(struct svc *s, uint64_t id, int pid);
void svc_on_exited(struct svc *s, uint64_t id, const char *cause);
void svc_on_health(struct svc *s, uint64_t id, bool healthy, const char *detail);
void svc_on_drained(struct svc *s, uint64_t id);
/* The load balancer could not do what the service needs (error), or is in sync again (NULL):
 * kept for status and recorded as an event (lb_problem / lb_ok). */
void svc_on_lb_problem(struct svc *s, const char *error);
/* The ssh driver found that the key of host user@host:port is not the one known_hosts holds: when
 * it is one of the service's targets, logged, recorded as an event (host_key_changed) and a live
 * deploy is aborted (docs/driver.md, "Host keys"). */
void svc_on_host_key(struct svc *s, const char *user, const char *host, int port, const char *detail);
/* The balancer's listener for the service is not bound (why), or is (NULL): kept for status, fed
 * to the engine (a rollout does not complete while its traffic cannot reach it), recorded as an
 * event (listener_unbound / listener_bound). */
void svc_on_lb_listener(struct svc *s, const char *why);
/* The store takes writes again: intents committed but not carried out are (engine_resume_intents,
 * as after a restart), and a step follows. */
void svc_store_back(struct svc *s);
/* Stops runtime watchers (health checks, timers) without touching instances: shutdown. */
void svc_detach(struct svc *s);

/* ---- routes.c: the API handlers ---- */
int routes_register(struct daemon *d);

#endif
