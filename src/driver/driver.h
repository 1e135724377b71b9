/* Instance drivers: where instances run. A table of operations (struct drv_ops) with the real
 * `local` driver (processes on this machine, local.c) and a fake for tests (fake.c). */
#ifndef ROLLOUT_DRIVER_DRIVER_H
#define ROLLOUT_DRIVER_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/spec.h"

struct drv;

/* What a driver reports, always from the event loop (never from inside the call that caused it).
 * For one instance: at most one `started`, then exactly one `exited`; `exited` also stands for
 * "failed to start" (with a cause) and for "stop of an instance that is not running".
 * The strings are only valid during the call. */
struct drv_callbacks {
	void *ctx;
	void (*started)(void *ctx, const char *service, uint64_t id, int pid);
	void (*exited)(void *ctx, const char *service, uint64_t id, const char *cause);
	/* ssh driver (may be NULL): the key of host user@host:port is not the one known_hosts holds,
	 * found just now, whatever the session (a lost host's re-check too); once per finding (again
	 * only after a connection passed the check). detail says what ssh saw. Comes before the
	 * `exited` of the instances this makes gone. */
	void (*host_key)(void *ctx, const char *user, const char *host, int port, const char *detail);
};

/* One start request. Nothing is kept after drv_start returns: the driver copies what it needs. */
struct drv_start {
	const char *service;
	uint64_t id;
	int revision;
	const struct spec_template *tmpl;
	int port;
	const char *log_dir; /* stdout+stderr go to log_dir/<service>-<id>.log */
	/* ssh driver: the host to start on (required there, ignored by local), whether an unknown
	 * host key is accepted (spec `ssh: {accept_new: true}`) and whether the host runs it as a
	 * systemd service (`ssh: {preset: systemd}`) rather than a plain process. */
	const struct spec_target *target;
	bool ssh_accept_new;
	bool systemd;
};

/* One command run on an instance's host (the ssh driver: health.exec). Nothing is kept after
 * drv_exec returns: the driver copies what it needs. */
struct drv_exec {
	const struct spec_target *target; /* the host */
	bool ssh_accept_new;
	char *const *argv; /* argv[0..n_argv-1], no shell */
	size_t n_argv;
	int port;	  /* PORT in its environment */
	const char *host; /* HOST in its environment */
	int64_t timeout_ms;
};

/* The end of a drv_exec: status is the exit status (0: success), or a negative errno:
 * -ETIMEDOUT (killed after timeout_ms), -EHOSTUNREACH (the host could not be reached). detail says
 * so for people ("exit status 1 on root@h:22"); valid during the call. */
typedef void (*drv_exec_cb)(void *arg, int status, const char *detail);

/* A running drv_exec: completes once (the callback) or is cancelled (drv_cancel), never both. */
struct drv_req;

struct drv_ops {
	const char *name;
	/* Async: 0 then `started` (or `exited` with the cause of a start failure); -EEXIST when the
	 * instance is already known, -EINVAL for a request without a command. */
	int (*start)(struct drv *, const struct drv_start *req);
	/* signo to the instance's process group, SIGKILL after grace_ms; `exited` follows. An unknown
	 * or dead instance reports `exited` promptly. */
	int (*stop)(struct drv *, const char *service, uint64_t id, int signo, int64_t grace_ms);
	/* After a daemon restart: watch a running instance again. pid > 0: the process with that pid
	 * and that start time; pid 0: the process whose environment carries this driver's marker and
	 * the instance's name. 0 then `started` (with the pid), or -ESRCH / -EEXIST. */
	int (*adopt)(struct drv *, const char *service, uint64_t id, int pid, uint64_t proc_start);
	/* The pid and start time of a running instance (to record), or -ENOENT. */
	int (*proc_info)(struct drv *, const char *service, uint64_t id, int *pid, uint64_t *proc_start);
	/* Stops watching (instances keep running) and frees the driver, in libuv close callbacks
	 * where it has handles. No callback is made after close. */
	void (*close)(struct drv *);
	/* Optional (NULL: -ENOTSUP). Async: 0 then exactly one cb (never from inside the call) unless
	 * cancel was called first; *out is the request. A negative errno and no cb otherwise. */
	int (*exec)(struct drv *, const struct drv_exec *req, drv_exec_cb cb, void *arg, struct drv_req **out);
	/* Ends a request of exec without its callback (its command is killed); frees it. */
	void (*cancel)(struct drv *, struct drv_req *req);
};

/* The common head of every driver; implementations embed it first. */
struct drv {
	const struct drv_ops *ops;
	struct drv_callbacks cb;
};

/* Dispatch through the table. */
int drv_start(struct drv *d, const struct drv_start *req);
int drv_stop(struct drv *d, const char *service, uint64_t id, int signo, int64_t grace_ms);
int drv_adopt(struct drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start);
int drv_proc_info(struct drv *d, const char *service, uint64_t id, int *pid, uint64_t *proc_start);
/* -ENOTSUP when the driver has no exec (local: health.c runs exec checks itself). */
int drv_exec(struct drv *d, const struct drv_exec *req, drv_exec_cb cb, void *arg, struct drv_req **out);
void drv_cancel(struct drv *d, struct drv_req *req);
/* drv_close(NULL) is a no-op. */
void drv_close(struct drv *d);

/* ---- local: processes on this machine (local.c, docs/driver.md) ---- */

#define DRV_LOCAL_LOG_MAX_DEFAULT (10 * 1024 * 1024)

/* A new local driver on `loop`. `marker` (copied; e.g. the data dir) goes into every instance's
 * environment as ROLLOUT_DAEMON so that two daemons never adopt each other's processes. cb is
 * copied. Log files over DRV_LOCAL_LOG_MAX_DEFAULT are truncated before the next start. */
int drv_local_new(uv_loop_t *loop, const char *marker, const struct drv_callbacks *cb, struct drv **out);
/* Changes the log cap (bytes, > 0) of a local driver. */
void drv_local_set_log_max(struct drv *d, int64_t max_bytes);

/* Tests: watch processes by a periodic look (waitpid, /proc every 100 ms), as the driver does by
 * itself where pidfd_open is missing (kernels before 5.3, valgrind). */
void drv_local_no_pidfd(struct drv *d);

/* Scans /proc for running instances of the daemon whose marker is `marker` (process group
 * leaders whose environment has ROLLOUT_DAEMON=<marker> and ROLLOUT_INSTANCE=<service>/<id>) and
 * calls cb for each. Returns the number found, or a negative errno when /proc cannot be read. */
int drv_local_scan(const char *marker,
		   void (*cb)(const char *service, uint64_t id, int pid, void *ctx), void *ctx);

/* The start time of process pid (field 22 of /proc/<pid>/stat, clock ticks since boot), or a
 * negative errno. */
int drv_local_proc_start(int pid, uint64_t *out);

/* ---- ssh: instances on remote hosts through the OpenSSH client (ssh.c, docs/driver.md) ---- */

/* A new ssh driver on `loop`. ControlMaster sockets go to data_dir/ssh/ (made when missing);
 * self_exe is this binary, copied to a host as $ROLLOUT_HOME/bin/rollout (default
 * ~/.rollout/bin/rollout) when that is missing or differs. The environment variable
 * ROLLOUT_SSH_CONFIG, when set, is the ssh config file (ssh -F); else the user's ~/.ssh/config.
 * cb is copied. */
int drv_ssh_new(uv_loop_t *loop, const char *data_dir, const char *self_exe, const struct drv_callbacks *cb,
		struct drv **out);
/* s as one word for a POSIX shell: wrapped in single quotes, each ' written '\''. New string. */
char *drv_ssh_quote(const char *s);
/* Whether the host is known to be unreachable now (its last ssh connection failed). */
bool drv_ssh_host_lost(struct drv *d, const struct spec_target *t);
/* Whether the host is lost because its key is not the one known_hosts holds: never used until a
 * connection passes the check again. Instances there are reported `exited` with a cause starting
 * "host key verification failed". */
bool drv_ssh_host_key_failed(struct drv *d, const struct spec_target *t);
/* A lost host t is checked again now instead of at its next retry (a check under way is left to
 * end). Nothing for a host that is not lost. */
void drv_ssh_check_lost(struct drv *d, const struct spec_target *t);
/* Like adopt, on a known host: after a daemon restart, watch instance service/id on t again
 * (its pid and start time as recorded). 0 then `started`, or `exited` if it is gone. */
int drv_ssh_adopt_on(struct drv *d, const struct spec_target *t, const char *service, uint64_t id, int pid,
		     uint64_t proc_start);
/* The interval of the liveness poll of each host with instances (ms, default 1000). */
void drv_ssh_set_poll_ms(struct drv *d, int64_t ms);

#define DRV_SSH_PARALLEL_DEFAULT 10
/* At most n hosts (n > 0; spec `ssh: {parallel: N}`) have sessions opening or commands running
 * (starts, stops, staging, probes) at once; the others wait in order. The long `host watch`
 * session of each host is not counted. Default DRV_SSH_PARALLEL_DEFAULT. */
void drv_ssh_set_parallel(struct drv *d, int n);

/* The end of a drv_ssh_stage: how many hosts ran the install hook fine, failed it, or were
 * skipped (lost), how long it took, and the first failure's cause (NULL if none). Strings are
 * valid during the call. */
typedef void (*drv_stage_cb)(void *ctx, const char *service, int revision, const char *version, int n_ok,
			     int n_failed, int n_skipped, int64_t ms, const char *first_failure);

/* Pre-staging: runs tmpl's install hook once on every target not lost (through the parallel
 * bound) for service's revision. Until every host is done, starts of that revision (drv_start)
 * wait; then they skip the install hook on the hosts where it passed, fail with its cause on
 * the hosts where it failed, and run it per instance on the hosts that were skipped.
 * Returns 1 when staging began, 0 when there is nothing to do (no install hook, one that uses
 * {port}, this revision staged or staging already, or no target), or a negative errno. cb (may
 * be NULL) is called once from the loop when every host is done, never after close. */
int drv_ssh_stage(struct drv *d, const char *service, int revision, const struct spec_template *tmpl,
		  const struct spec_target *targets, size_t n_targets, bool accept_new, drv_stage_cb cb, void *ctx);

/* ---- fake: records calls, the test decides what happens (fake.c) ---- */

enum drv_fake_op { DRV_FAKE_START, DRV_FAKE_STOP, DRV_FAKE_ADOPT };

/* One recorded call. Strings are owned by the fake. */
struct drv_fake_call {
	enum drv_fake_op op;
	char *service;
	uint64_t id;
	int revision, port;             /* start */
	int signo;                      /* stop */
	int64_t grace_ms;               /* stop */
	int pid;                        /* adopt */
	uint64_t proc_start;            /* adopt */
};

/* A fake driver. Without a loop (NULL) reports are queued until drv_fake_flush; with a loop they
 * are delivered from a zero timer. By default start reports `started` with a made-up pid and
 * stop reports `exited` ("stopped"); drv_fake_set_auto(d, false, false) leaves both to the test. */
int drv_fake_new(uv_loop_t *loop, const struct drv_callbacks *cb, struct drv **out);
void drv_fake_set_auto(struct drv *d, bool auto_start, bool auto_stop);
/* Makes the next start fail with err (negative errno) once. */
void drv_fake_fail_next_start(struct drv *d, int err);
/* Declares a process that adopt may find (pid > 0, with its start time). */
void drv_fake_add_process(struct drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start);
/* Queues a `started` / `exited` report as the driver would make it. */
void drv_fake_started(struct drv *d, const char *service, uint64_t id, int pid);
void drv_fake_exited(struct drv *d, const char *service, uint64_t id, const char *cause);
/* Delivers queued reports now; returns how many. */
int drv_fake_flush(struct drv *d);
size_t drv_fake_ncalls(const struct drv *d);
const struct drv_fake_call *drv_fake_call_at(const struct drv *d, size_t i);
/* Number of instances the fake believes are running. */
size_t drv_fake_running(const struct drv *d);

#endif
