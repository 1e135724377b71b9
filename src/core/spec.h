/* The service spec: the validated model every other module reads. Parsing from YAML is src/spec/;
 * this header is the shape, the defaults and the pure checks. */
#ifndef ROLLOUT_CORE_SPEC_H
#define ROLLOUT_CORE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/amount.h"

/* Where a value stood in the spec file, 1-based; line 0 means "not written, defaulted". */
struct spec_pos {
	int line, col;
};

enum spec_protocol { SPEC_PROTO_HTTP, SPEC_PROTO_TCP };
enum spec_check { SPEC_CHECK_NONE, SPEC_CHECK_HTTP, SPEC_CHECK_TCP, SPEC_CHECK_EXEC };
enum spec_lb_kind { SPEC_LB_BUILTIN, SPEC_LB_NONE, SPEC_LB_HAPROXY };
/* process: a plain process kept by `rollout host` (setsid, pidfile); systemd: a service of a
 * template unit (docs/driver.md). */
enum spec_ssh_preset { SPEC_PRESET_PROCESS, SPEC_PRESET_SYSTEMD };

/* A name=value pair (env, labels). secret values are wiped on free and never printed. */
struct spec_kv {
	char *name;
	char *value;
	bool secret;
};

/* Lifecycle hooks of ssh targets (docs/driver.md): argv lists run on the host, with {version}
 * {port} {host} {service} replaced in each argument. */
enum spec_hook { SPEC_HOOK_INSTALL, SPEC_HOOK_START, SPEC_HOOK_VALIDATE, SPEC_HOOK_STOP, SPEC_HOOK__COUNT };

/* template.files: a file written for each instance before it starts, under the instance's own
 * directory (docs/spec.md, "template.files"), its content rendered with spec_render. */
struct spec_file {
	char *path;    /* relative, no '.', '..' or empty part; at most SPEC_FILE_PATH_MAX bytes */
	char *content; /* at most SPEC_FILE_MAX bytes, as written */
};

#define SPEC_FILES_MAX	   16	       /* entries of template.files */
#define SPEC_FILE_MAX	   (64 * 1024) /* bytes of one file's content, as written */
#define SPEC_FILE_PATH_MAX 255	       /* bytes of one file's path */
/* Bytes of one rendered argument or file: ${INSTANCE_DIR} can make a text longer. */
#define SPEC_RENDER_MAX (1024 * 1024)

/* Everything that makes a revision: changing any of it makes a new revision. */
struct spec_template {
	char *version;
	char **command; /* argv, n_command entries, NULL-terminated */
	size_t n_command;
	struct spec_kv *env;
	size_t n_env;
	char *workdir; /* may be NULL */
	char **hooks[SPEC_HOOK__COUNT]; /* argv, NULL-terminated; NULL when not set */
	size_t n_hooks[SPEC_HOOK__COUNT];
	struct spec_file *files; /* n_files entries, paths distinct; local targets only */
	size_t n_files;
};

struct spec_health {
	enum spec_check kind;
	char *http_path;  /* http */
	int http_status;  /* http; default 200 */
	char **exec;      /* exec argv, NULL-terminated */
	size_t n_exec;
	int64_t interval_ms;
	int64_t timeout_ms;
	int healthy_threshold;
	int unhealthy_threshold;
};

/* One pause_after entry: after batch `batch` (1-based), wait for promote (duration_ms 0) or
 * for duration_ms. */
struct spec_pause {
	int batch;
	int64_t duration_ms;
	struct spec_pos pos;
};

/* A limit either absolute or relative to the old revision ("2x"). */
struct spec_limit {
	bool set;
	bool relative;
	double value; /* absolute: a fraction (1% = 0.01) or milliseconds; relative: a factor */
};

struct spec_analysis {
	bool enabled; /* true when the analysis block is present */
	struct spec_limit max_error_rate;
	struct spec_limit max_p99;
	int64_t window_ms;
	int min_requests;
};

/* strategy.zones: rules over the zones of the targets (a zone is the value of one label). The
 * replicas are shared among zones as they are among hosts: evenly, earlier hosts first. */
struct spec_zones {
	char *label;                 /* NULL: no zone rules */
	bool one_per_batch;          /* a batch changes one zone at a time, zones in order */
	struct amount min_available; /* per zone, of the zone's share (percent rounded up); default 0 */
	struct spec_pos pos;
};

/* Bounds on what a spec may ask (docs/spec.md, "Bounds"). The buffers of the engine and the plan
 * are sized by replicas + surge, so every count is bounded by what it can mean. */
#define SPEC_REPLICAS_MAX 10000 /* replicas; also any count amount, and a batch number */
/* max_surge as a percent: above 100% it means 100% (no rollout can use more than replicas new
 * instances), accepted up to here because specs written before the bounds used such values */
#define SPEC_SURGE_PCT_MAX 1000
#define SPEC_TARGETS_MAX  1000	/* entries of targets */
#define SPEC_NOTIFY_MAX	  16	/* entries of notify */

/* Zone names are label values of at most this many bytes (they are kept with each instance). */
#define SPEC_ZONE_MAX 31
/* At most this many zones (the engine counts per zone on the stack). */
#define SPEC_ZONES_MAX 16

struct spec_strategy {
	struct amount max_surge;       /* default 25% */
	struct amount max_unavailable; /* default 0 */
	struct spec_pos surge_pos, unavailable_pos;
	struct amount *batches; /* optional; n_batches 0 = one batch of everything */
	size_t n_batches;
	struct spec_pos batches_pos;
	struct spec_pause *pause_after;
	size_t n_pause_after;
	int64_t min_ready_ms;         /* default 0 */
	int64_t health_deadline_ms;   /* default 5m */
	int64_t progress_deadline_ms; /* default 10m */
	struct amount max_failures;   /* default 0 */
	bool auto_rollback;           /* default true */
	struct spec_analysis analysis;
	int64_t watch_ms; /* default 0 */
	/* A new revision's instance that fails within this time of becoming available counts as a
	 * failure of its rollout, also after the rollout completed (docs/engine.md). 0: off. */
	int64_t min_stable_ms; /* default 30s */
	struct spec_zones zones;
};

/* One remote host: ssh://user@host[:port] with labels (zone=...), optionally the ports its
 * instances may listen on (one instance per port; none: the daemon's port range), and the
 * balancer weight of its instances (1..256, default 1). */
struct spec_target {
	char *url;
	char *user;
	char *host;
	int port;
	struct spec_kv *labels;
	size_t n_labels;
	int *ports;
	size_t n_ports;
	int weight; /* load balancer weight of its instances: 1..256, default 1 */
};


struct spec_notify {
	char *url;
	unsigned events; /* bit set of 1u << enum spec_notify_event; 0 = all */
	bool slack;
};

enum spec_notify_event {
	SPEC_EV_STARTED,
	SPEC_EV_PAUSED,
	SPEC_EV_COMPLETED,
	SPEC_EV_FAILED,
	SPEC_EV_ROLLED_BACK,
	SPEC_EV_ABORTED,
	SPEC_EV__COUNT
};

struct spec {
	char *file; /* the file it came from, for messages; may be NULL */
	char *service;
	int replicas;
	struct spec_pos replicas_pos;
	char *listen; /* "host:port"; NULL when lb is none */
	enum spec_protocol protocol;
	struct spec_template tmpl;
	struct spec_health health;
	struct spec_strategy strategy;
	int64_t drain_timeout_ms; /* default 30s */
	int stop_signal;          /* default SIGTERM */
	int64_t stop_grace_ms;    /* default 10s */
	bool targets_local;       /* targets: local (default) */
	struct spec_target *targets;
	size_t n_targets;
	bool ssh_accept_new;      /* ssh: {accept_new: true}: unknown host keys are accepted (default false) */
	enum spec_ssh_preset ssh_preset; /* ssh: {preset: ...}: how a host runs an instance (default process) */
	int ssh_parallel;         /* ssh: {parallel: N}: hosts with sessions at once (default 10) */
	enum spec_lb_kind lb;
	char *haproxy_socket;  /* lb haproxy */
	char *haproxy_backend; /* lb haproxy */
	struct spec_notify *notify;
	size_t n_notify;
};

/* Fills every field with its default (no service name, no command). */
void spec_init(struct spec *s);
/* Frees what the spec owns (secrets wiped) and re-inits it. spec_free(NULL) is a no-op. */
void spec_clear(struct spec *s);
void spec_free(struct spec *s);

/* The effective surge and unavailable counts for `replicas`, as DESIGN says: surge rounded up,
 * unavailable rounded down, each at most replicas, and if both come to 0, unavailable becomes 1. */
void spec_surge_unavailable(const struct spec_strategy *st, int replicas, int *surge, int *unavailable);
/* Number of new instances that must be in place at the end of batch `index` (0-based):
 * cumulative, capped at replicas. */
int spec_batch_goal(const struct spec_strategy *st, int replicas, int index);
/* Number of batches a rollout of `replicas` takes (>= 1; 1 when replicas is 0). */
int spec_batch_count(const struct spec_strategy *st, int replicas);
/* The pause entry after batch `batch` (1-based), or NULL. */
const struct spec_pause *spec_pause_after(const struct spec_strategy *st, int batch);
/* max_failures as a count of replicas (percent floored). */
int spec_max_failures(const struct spec_strategy *st, int replicas);

/* Zones (strategy.zones with ssh targets): the distinct values of the zone label in the order of
 * targets. spec_zone_count is 0 without zone rules, and counts at most SPEC_ZONES_MAX + 1 (more
 * zones than allowed: the parser refuses such a spec). Each call is O(targets x zones). */
size_t spec_zone_count(const struct spec *s);
const char *spec_zone_name(const struct spec *s, size_t z);
/* The zone index of a zone name, or -1 when no target has it. */
int spec_zone_index(const struct spec *s, const char *name);
/* The zone name of target t ("" without zone rules or label). */
const char *spec_target_zone(const struct spec *s, const struct spec_target *t);
/* Each zone's share of `replicas` into share[spec_zone_count(s)]: replicas spread over the hosts
 * evenly (the first replicas % hosts get one more), a zone getting what its hosts get. */
void spec_zone_shares(const struct spec *s, int replicas, int *share);

/* The fields outside the template that differ between a and b, by their spec names ("listen",
 * "stop.grace", "strategy.max_surge"), in spec order: at most max of them into names (static
 * strings). Returns how many differ (may exceed max). replicas is one of them. */
#define SPEC_FIELDS_MAX 40
size_t spec_changed_fields(const struct spec *a, const struct spec *b, const char **names, size_t max);

/* What spec_render puts in place of its names; a NULL string renders as "". */
struct spec_vars {
	int port;		  /* ${PORT} */
	const char *instance;	  /* ${INSTANCE}: <service>-<id> */
	const char *instance_dir; /* ${INSTANCE_DIR}: the instance's own directory, absolute */
	const char *version;	  /* ${VERSION}: template.version */
};

/* text with every ${PORT}, ${INSTANCE}, ${INSTANCE_DIR} and ${VERSION} replaced by its value and
 * every $${ written as ${ (so $${PORT} stays ${PORT}); any other $ (a shell's $PORT, nginx's
 * $host, ${OTHER}) is left as written. The template's command arguments and files go through it.
 * Returns a new string, or NULL when the result would pass SPEC_RENDER_MAX bytes. */
char *spec_render(const char *text, const struct spec_vars *v);

/* A stable hash of the template (FNV-1a 64 over a canonical encoding), to tell whether an apply
 * changed the template and so makes a new revision. Secret values take part. */
uint64_t spec_template_hash(const struct spec_template *t);

#endif
