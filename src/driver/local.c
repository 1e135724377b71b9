/* The `local` driver: instances are detached processes on this machine, watched through pidfds so
 * that they outlive the daemon and can be re-adopted after a restart (docs/driver.md). */
#include "driver/driver.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/xmalloc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

#define ENVIRON_MAX (1024 * 1024) /* bytes of /proc/<pid>/environ we look at */

struct local_drv;

/* One instance we watch. It stays in the driver's list until its `exited` has been reported
 * (or the driver closes); its memory is freed when its last handle is closed. */
struct local_inst {
	struct local_drv *d;
	struct local_inst *next;
	char *service;
	uint64_t id;
	int pid;             /* 0 until running */
	uint64_t proc_start; /* /proc/<pid>/stat field 22 */
	int pidfd;           /* -1 when none */
	bool ghost;          /* only carries an `exited` for a stop of an unknown instance */
	bool dead;           /* gone; `exited` pending or made */
	bool started_reported;
	bool stopping;
	bool destroyed;
	char *cause;
	uv_poll_t poll; /* on the pidfd */
	bool poll_init;
	uv_timer_t watch; /* without pidfds (old kernels, valgrind): a periodic look */
	bool watch_init;
	uv_timer_t kill_timer; /* SIGKILL after the grace */
	uv_timer_t defer;      /* delivers reports from the loop, not from inside a call */
	int open;              /* handles not yet closed */
};

struct local_drv {
	struct drv base;
	uv_loop_t *loop;
	char *marker;
	int64_t log_max;
	bool no_pidfd; /* tests: watch as if pidfd_open were missing */
	struct local_inst *insts;
	bool closing;
	int open; /* handles of the driver itself not yet closed (sentinel, spawned process) */
	int n_inst; /* instances whose memory is not yet freed */
	uv_timer_t sentinel;
};

static void drv_maybe_free(struct local_drv *d)
{
	if (d->closing && d->open == 0 && d->n_inst == 0) {
		free(d->marker);
		free(d);
	}
}

/* ---- /proc ---- */

/* Reads /proc/<pid>/stat: the state (field 3), process group (field 5) and start time (field 22);
 * each out pointer may be NULL. */
static int proc_stat3(int pid, char *state, int *pgrp, uint64_t *start)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int err = errno;
	close(fd);
	if (n <= 0)
		return n < 0 ? -err : -ESRCH;
	buf[n] = '\0';
	/* comm (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -EINVAL;
	p++;
	unsigned long long v = 0;
	for (int field = 3; field <= 22; field++) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return -EINVAL;
		if (field == 3 && state != NULL)
			*state = *p;
		if (field == 5 && pgrp != NULL)
			*pgrp = atoi(p);
		if (field == 22) {
			errno = 0;
			v = strtoull(p, NULL, 10);
			if (errno != 0)
				return -EINVAL;
		}
		while (*p != ' ' && *p != '\0')
			p++;
	}
	if (start != NULL)
		*start = v;
	return 0;
}

static int proc_stat(int pid, int *pgrp, uint64_t *start)
{
	return proc_stat3(pid, NULL, pgrp, start);
}

int drv_local_proc_start(int pid, uint64_t *out)
{
	if (pid <= 0)
		return -ESRCH;
	return proc_stat(pid, NULL, out);
}

/* Reads at most ENVIRON_MAX bytes of /proc/<pid>/environ into a new buffer (*len bytes, NUL
 * terminated entries). Returns 0 or a negative errno (EACCES for other users' processes). */
static int read_environ(int pid, char **out, size_t *len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= ENVIRON_MAX)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			int err = errno;
			close(fd);
			free(buf);
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Looks for ROLLOUT_DAEMON=<marker> and ROLLOUT_INSTANCE=<service>/<id> in process pid's initial
 * environment. Returns 1 and fills service (a new string, caller frees) and id, else 0. */
static int proc_instance(int pid, const char *marker, char **service, uint64_t *id)
{
	char *env = NULL;
	size_t len = 0;
	if (read_environ(pid, &env, &len) != 0)
		return 0;
	bool marked = false;
	const char *inst = NULL;
	for (size_t i = 0; i < len;) {
		const char *e = env + i;
		size_t elen = strlen(e);
		if (strncmp(e, "ROLLOUT_DAEMON=", 15) == 0 && strcmp(e + 15, marker) == 0)
			marked = true;
		else if (strncmp(e, "ROLLOUT_INSTANCE=", 17) == 0)
			inst = e + 17;
		i += elen + 1;
	}
	int found = 0;
	const char *slash = inst != NULL ? strrchr(inst, '/') : NULL;
	if (marked && slash != NULL && slash != inst && isdigit((unsigned char)slash[1])) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(slash + 1, &end, 10);
		if (errno == 0 && *end == '\0') {
			*service = xstrndup(inst, (size_t)(slash - inst));
			*id = v;
			found = 1;
		}
	}
	free(env);
	return found;
}

int drv_local_scan(const char *marker,
		   void (*cb)(const char *service, uint64_t id, int pid, void *ctx), void *ctx)
{
	DIR *dir = opendir("/proc");
	if (dir == NULL)
		return -errno;
	int found = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int pid = atoi(de->d_name), pgrp = 0;
		/* Instances are group leaders; their children inherit the environment but are not
		 * instances. */
		if (pid <= 0 || proc_stat(pid, &pgrp, NULL) != 0 || pgrp != pid)
			continue;
		char *service;
		uint64_t id;
		if (proc_instance(pid, marker, &service, &id)) {
			found++;
			if (cb != NULL)
				cb(service, id, pid, ctx);
			free(service);
		}
	}
	closedir(dir);
	return found;
}

/* ---- claim files: an instance's identity, durable before its program runs ----
 *
 * MARKER/run/<service>-<id>.pid is created by the instance's own process, after the fork and
 * before the exec, with O_EXCL: the program never runs without it, and it names the process by
 * its pid and start time, which the program cannot change (unlike its environment, which
 * programs that set their title overwrite). A restarted daemon adopts an instance it had not yet
 * recorded from it; a start finds a live claim and adopts instead of starting a duplicate. The
 * file goes when the instance is seen to exit. */

static char *claim_path(const struct local_drv *d, const char *service, uint64_t id)
{
	return xasprintf("%s/run/%s-%" PRIu64 ".pid", d->marker, service, id);
}

/* MARKER/instances/<service>-<id>: the instance's own directory (${INSTANCE_DIR}), holding the
 * template's files; made before it starts, removed when it is seen gone. */
static char *inst_dir_path(const struct local_drv *d, const char *service, uint64_t id)
{
	return xasprintf("%s/instances/%s-%" PRIu64, d->marker, service, id);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Removes an instance's directory and everything in it (symlinks not followed). */
static void inst_dir_remove(const struct local_drv *d, const char *service, uint64_t id)
{
	char *dir = inst_dir_path(d, service, id);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* Reads a claim: 1 with the pid and start time of the live process it names, 0 when it names
 * none (no file, a dead or different process: a stale file is removed). The child writes its
 * pid, the daemon adds the start time right after; for a file with the pid only, the process must
 * lead its own process group (the child made itself a session leader before writing it). */
/* A claim file's text into buf (NUL-terminated); -1 when there is none. */
static ssize_t claim_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static int claim_read(const char *path, int *pid, uint64_t *start)
{
	char buf[64];
	ssize_t n = claim_text(path, buf, sizeof buf);
	if (n < 0)
		return 0;
	int p = 0, pgrp = 0;
	unsigned long long recorded = 0;
	int k = sscanf(buf, "%d %llu", &p, &recorded);
	uint64_t now = 0;
	/* with the pid only (the daemon stopped before adding the start time): the child made itself
	 * a session and group leader before writing it, which a reused pid is not */
	bool ok = k >= 1 && p > 0 && proc_stat(p, &pgrp, &now) == 0 && (k == 2 ? now == recorded : pgrp == p);
	if (!ok) {
		unlink(path);
		return 0;
	}
	*pid = p;
	*start = now;
	return 1;
}

/* Completes the child's claim with the start time (atomically: a reader sees either version). */
static void claim_complete(const char *path, int pid, uint64_t start)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		char buf[64];
		int n = snprintf(buf, sizeof buf, "%d %" PRIu64 "\n", pid, start);
		bool ok = write(fd, buf, (size_t)n) == n;
		if (close(fd) == 0 && ok)
			rename(tmp, path);
	}
	unlink(tmp);
	free(tmp);
}

/* Removes the claim if it still names pid (never one a newer start made). */
static void claim_drop(const char *path, int pid)
{
	char buf[64];
	if (claim_text(path, buf, sizeof buf) >= 0 && atoi(buf) == pid)
		unlink(path);
}

/* ---- instances ---- */

static void inst_handle_closed(uv_handle_t *h)
{
	struct local_inst *in = h->data;
	if (--in->open > 0)
		return;
	struct local_drv *d = in->d;
	if (in->pidfd >= 0)
		close(in->pidfd);
	free(in->service);
	free(in->cause);
	free(in);
	d->n_inst--;
	drv_maybe_free(d);
}

static struct local_inst *inst_new(struct local_drv *d, const char *service, uint64_t id, bool ghost)
{
	struct local_inst *in = xcalloc(1, sizeof *in);
	in->d = d;
	in->service = xstrdup(service);
	in->id = id;
	in->pidfd = -1;
	in->ghost = ghost;
	uv_timer_init(d->loop, &in->kill_timer);
	uv_timer_init(d->loop, &in->defer);
	in->kill_timer.data = in;
	in->defer.data = in;
	in->open = 2;
	in->next = d->insts;
	d->insts = in;
	d->n_inst++;
	return in;
}

/* Unlinks the instance and closes its handles; memory goes in inst_handle_closed. */
static void inst_destroy(struct local_inst *in)
{
	if (in->destroyed)
		return;
	in->destroyed = true;
	for (struct local_inst **pp = &in->d->insts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	if (in->poll_init)
		uv_close((uv_handle_t *)&in->poll, inst_handle_closed);
	if (in->watch_init)
		uv_close((uv_handle_t *)&in->watch, inst_handle_closed);
	uv_close((uv_handle_t *)&in->kill_timer, inst_handle_closed);
	uv_close((uv_handle_t *)&in->defer, inst_handle_closed);
}

static struct local_inst *inst_find(struct local_drv *d, const char *service, uint64_t id)
{
	for (struct local_inst *in = d->insts; in != NULL; in = in->next)
		if (!in->ghost && in->id == id && strcmp(in->service, service) == 0)
			return in;
	return NULL;
}

static void on_defer(uv_timer_t *t);

static void inst_defer(struct local_inst *in)
{
	uv_timer_start(&in->defer, on_defer, 0, 0);
}

/* Marks the instance gone with `cause` (copied) and schedules the `exited` report. */
static void inst_dead(struct local_inst *in, const char *cause)
{
	if (in->dead)
		return;
	in->dead = true;
	in->cause = xstrdup(cause);
	if (!in->ghost && in->pid > 0) {
		char *claim = claim_path(in->d, in->service, in->id);
		claim_drop(claim, in->pid);
		free(claim);
	}
	if (!in->ghost)
		inst_dir_remove(in->d, in->service, in->id);
	if (in->poll_init)
		uv_poll_stop(&in->poll);
	if (in->watch_init)
		uv_timer_stop(&in->watch);
	uv_timer_stop(&in->kill_timer);
	inst_defer(in);
}

/* Makes the pending reports: `started`, then `exited` for a dead instance. A callback may call
 * back into the driver (even close it): nothing of the instance is touched after a callback
 * except through memory that only close callbacks free. */
static void on_defer(uv_timer_t *t)
{
	struct local_inst *in = t->data;
	struct local_drv *d = in->d;
	if (d->closing || in->destroyed)
		return;
	if (!in->started_reported && in->pid > 0) {
		in->started_reported = true;
		if (d->base.cb.started != NULL)
			d->base.cb.started(d->base.cb.ctx, in->service, in->id, in->pid);
		if (d->closing || in->destroyed)
			return;
	}
	if (in->dead) {
		inst_destroy(in); /* first, so the callback may start the same instance again */
		if (d->base.cb.exited != NULL)
			d->base.cb.exited(d->base.cb.ctx, in->service, in->id, in->cause);
	}
}

/* Whether the instance's process has ended, with the cause. Reaps it when it is our child:
 * waitid on the pidfd only ever touches that very process. */
static bool inst_exited(struct local_inst *in, char *cause, size_t len)
{
	idtype_t type = in->pidfd >= 0 ? (idtype_t)P_PIDFD : P_PID;
	id_t who = in->pidfd >= 0 ? (id_t)in->pidfd : (id_t)in->pid;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid(type, who, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
		if (si.si_pid == 0)
			return false; /* not yet */
		/* Our child, now a zombie: its pid (so its group id) cannot be reused before we reap it,
		 * so what is left of its group can be killed safely: no orphans. */
		kill(-in->pid, SIGKILL);
		memset(&si, 0, sizeof si);
		waitid(type, who, &si, WEXITED | WNOHANG);
		if (si.si_code == CLD_EXITED) {
			snprintf(cause, len, "exited with status %d", si.si_status);
		} else {
			const char *abbrev = sigabbrev_np(si.si_status);
			snprintf(cause, len, "killed by SIG%s%s", abbrev ? abbrev : "?",
				 si.si_code == CLD_DUMPED ? " (core dumped)" : "");
		}
		return true;
	}
	if (in->pidfd < 0) {
		/* No pidfd and not our child: alive while /proc shows the same process, not a zombie. */
		char state = 0;
		uint64_t start = 0;
		if (proc_stat3(in->pid, &state, NULL, &start) == 0 && start == in->proc_start &&
		    state != 'Z' && state != 'X')
			return false;
	}
	snprintf(cause, len, "exited (status unknown: not a child of this daemon)");
	return true;
}

/* The pidfd is readable: the process ended. */
static void on_pidfd(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	struct local_inst *in = p->data;
	char cause[128];
	if (inst_exited(in, cause, sizeof cause))
		inst_dead(in, cause);
}

static void on_watch(uv_timer_t *t)
{
	struct local_inst *in = t->data;
	char cause[128];
	if (inst_exited(in, cause, sizeof cause))
		inst_dead(in, cause);
}

#define WATCH_MS 100 /* the period of the look when there is no pidfd */

/* Starts watching the instance's process: through pidfd when there is one (pidfd >= 0), else
 * (pidfd_open gave ENOSYS) by a periodic look. Returns 0 or a negative errno. */
static int inst_watch(struct local_inst *in, int pidfd)
{
	if (pidfd < 0) {
		uv_timer_init(in->d->loop, &in->watch);
		in->watch.data = in;
		in->watch_init = true;
		in->open++;
		return uv_timer_start(&in->watch, on_watch, WATCH_MS, WATCH_MS);
	}
	int rc = uv_poll_init(in->d->loop, &in->poll, pidfd);
	if (rc != 0)
		return rc;
	in->pidfd = pidfd;
	in->poll_init = true;
	in->poll.data = in;
	in->open++;
	return uv_poll_start(&in->poll, UV_READABLE, on_pidfd);
}

static int pidfd_open(const struct local_drv *d, int pid)
{
	if (d->no_pidfd)
		return -ENOSYS;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

static void on_kill_timer(uv_timer_t *t)
{
	struct local_inst *in = t->data;
	if (!in->dead && in->pid > 0)
		kill(-in->pid, SIGKILL);
}

/* ---- start ---- */

static bool env_has_name(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* The environment of an instance: ours, minus what we set, plus the template's env, PORT,
 * INSTANCE_DIR, ROLLOUT_INSTANCE and ROLLOUT_DAEMON. A NULL-terminated array of new strings. */
static char **build_env(const struct local_drv *d, const struct drv_start *req, const char *inst_dir)
{
	const struct spec_template *t = req->tmpl;
	size_t n = 0;
	while (environ != NULL && environ[n] != NULL)
		n++;
	char **env = xcalloc(n + t->n_env + 5, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = environ[i];
		bool replaced = env_has_name(e, "PORT") || env_has_name(e, "ROLLOUT_INSTANCE") ||
				env_has_name(e, "ROLLOUT_DAEMON") || env_has_name(e, "INSTANCE_DIR");
		for (size_t j = 0; j < t->n_env && !replaced; j++)
			replaced = env_has_name(e, t->env[j].name);
		if (!replaced)
			env[k++] = xstrdup(e);
	}
	for (size_t j = 0; j < t->n_env; j++) {
		const char *name = t->env[j].name;
		if (strcmp(name, "PORT") == 0 || strcmp(name, "ROLLOUT_INSTANCE") == 0 ||
		    strcmp(name, "ROLLOUT_DAEMON") == 0 || strcmp(name, "INSTANCE_DIR") == 0)
			continue;
		env[k++] = xasprintf("%s=%s", name, t->env[j].value ? t->env[j].value : "");
	}
	env[k++] = xasprintf("PORT=%d", req->port);
	env[k++] = xasprintf("INSTANCE_DIR=%s", inst_dir);
	env[k++] = xasprintf("ROLLOUT_INSTANCE=%s/%" PRIu64, req->service, req->id);
	env[k++] = xasprintf("ROLLOUT_DAEMON=%s", d->marker);
	env[k] = NULL;
	return env;
}

static void free_strv(char **v, bool wipe)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++) {
		if (wipe)
			xwipe(v[i], strlen(v[i])); /* the template's env may hold secrets */
		free(v[i]);
	}
	free(v);
}

/* mkdir -p. Returns 0 or a negative errno. */
static int mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

/* A new, empty instance directory (0700; a stale one of the same name removed first) into
 * *out as an absolute path, with the template's files rendered into it (0600, their parent
 * directories 0700). 0, or a negative errno with what failed in err. */
static int make_inst_dir(const struct local_drv *d, const struct drv_start *req, char **out, char *err,
			 size_t errlen)
{
	const struct spec_template *t = req->tmpl;
	char *dir = inst_dir_path(d, req->service, req->id);
	char *parent = xasprintf("%s/instances", d->marker);
	int rc = mkdirs(parent);
	free(parent);
	inst_dir_remove(d, req->service, req->id);
	char *real = NULL;
	if (rc == 0 && mkdir(dir, 0700) != 0)
		rc = -errno;
	if (rc == 0 && (real = realpath(dir, NULL)) == NULL)
		rc = -errno;
	if (rc != 0) {
		snprintf(err, errlen, "instance directory %s: %s", dir, strerror(-rc));
		free(dir);
		return rc;
	}
	free(dir);
	char *name = xasprintf("%s-%" PRIu64, req->service, req->id);
	struct spec_vars vars = {.port = req->port, .instance = name, .instance_dir = real, .version = t->version};
	for (size_t i = 0; i < t->n_files && rc == 0; i++) {
		const struct spec_file *f = &t->files[i];
		char *path = xasprintf("%s/%s", real, f->path);
		/* The parser allows plain relative parts only: the file stays inside the directory. */
		for (char *sl = path + strlen(real) + 1; (sl = strchr(sl, '/')) != NULL; sl++) {
			*sl = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST)
				rc = -errno;
			*sl = '/';
			if (rc != 0)
				break;
		}
		char *text = rc == 0 ? spec_render(f->content, &vars) : NULL;
		if (rc == 0 && text == NULL)
			rc = -E2BIG;
		int fd = -1;
		if (rc == 0 && (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
			rc = -errno;
		size_t len = text ? strlen(text) : 0, done = 0;
		while (rc == 0 && done < len) {
			ssize_t w = write(fd, text + done, len - done);
			if (w < 0 && errno != EINTR)
				rc = -errno;
			else if (w > 0)
				done += (size_t)w;
		}
		if (fd >= 0 && close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc != 0)
			snprintf(err, errlen, "files: %s: %s", f->path,
				 rc == -E2BIG ? "longer than 1 MiB once rendered" : strerror(-rc));
		free(text);
		free(path);
	}
	free(name);
	if (rc != 0) {
		inst_dir_remove(d, req->service, req->id);
		free(real);
		return rc;
	}
	*out = real;
	return 0;
}

/* Opens log_dir/<service>-<id>.log for appending, truncated first when over the cap. */
static int open_log(const struct local_drv *d, const struct drv_start *req, char *err, size_t errlen)
{
	int rc = mkdirs(req->log_dir);
	if (rc != 0) {
		snprintf(err, errlen, "log dir %s: %s", req->log_dir, strerror(-rc));
		return rc;
	}
	char *path = xasprintf("%s/%s-%" PRIu64 ".log", req->log_dir, req->service, req->id);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "log %s: %s", path, strerror(errno));
		free(path);
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > d->log_max && ftruncate(fd, 0) != 0) {
		/* keep appending: a log that cannot be capped is better than no instance */
	}
	free(path);
	return fd;
}

/* argv[0] as posix_spawnp would find it: as given when it holds a '/', else the first executable
 * regular file of that name on the daemon's PATH. Returns 0 and *out (new), or a positive errno. */
static int resolve_exe(const char *name, char **out)
{
	if (strchr(name, '/') != NULL) {
		*out = xstrdup(name);
		return 0;
	}
	const char *path = getenv("PATH");
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	int err = ENOENT;
	for (const char *p = path;;) {
		const char *colon = strchr(p, ':');
		size_t n = colon != NULL ? (size_t)(colon - p) : strlen(p);
		char *cand = n == 0 ? xasprintf("./%s", name) : xasprintf("%.*s/%s", (int)n, p, name);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				*out = cand;
				return 0;
			}
			err = EACCES;
		}
		free(cand);
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	return err;
}

/* Formats v in decimal into buf (async-signal-safe, for the child). Returns the length. */
static size_t fmt_int(char *buf, long v)
{
	char tmp[24];
	size_t n = 0, k = 0;
	if (v == 0)
		tmp[n++] = '0';
	while (v > 0) {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	}
	while (n > 0)
		buf[k++] = tmp[--n];
	buf[k++] = '\n';
	return k;
}

enum { SPAWN_OK, SPAWN_CLAIM, SPAWN_CHDIR, SPAWN_EXEC };

/* Starts exe in its own session (so it outlives the daemon) with stdin from /dev/null, stdout
 * and stderr to logfd, default signal handling and an empty signal mask (the daemon ignores
 * SIGPIPE; its instances must not inherit that), after claiming the instance (see above). vfork:
 * no copy of the daemon's address space (starting a batch of instances stays cheap); the child
 * makes only async-signal-safe calls, with every signal blocked until its exec, and reports a
 * failure through memory it shares with us until then. Returns SPAWN_OK and *pid, or the step
 * that failed with *err. */
static int spawn_claimed(const char *exe, char **argv, char **env, const char *cwd, int logfd,
			 const char *claim, int *pid, int *err)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	volatile int child_err = 0, child_step = SPAWN_OK;
	pid_t child = vfork();
	if (child == 0) {
		setsid();
		int fd = open(claim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			child_err = errno;
			child_step = SPAWN_CLAIM;
			_exit(127);
		}
		char buf[32];
		size_t n = fmt_int(buf, (long)getpid());
		if (write(fd, buf, n) != (ssize_t)n) {
			child_err = errno;
			child_step = SPAWN_CLAIM;
			unlink(claim);
			_exit(127);
		}
		close(fd);
		/* stdio: the log and /dev/null first moved above 2 (a daemon started with a standard
		 * descriptor closed gets them back as 0-2, and dup2 onto itself would leave O_CLOEXEC) */
		int lfd = logfd > 2 ? logfd : fcntl(logfd, F_DUPFD_CLOEXEC, 3);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nul >= 0 && nul <= 2)
			nul = fcntl(nul, F_DUPFD_CLOEXEC, 3);
		if (lfd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0) {
			child_err = errno;
			child_step = SPAWN_EXEC;
			unlink(claim);
			_exit(127);
		}
		if (cwd != NULL && chdir(cwd) != 0) {
			child_err = errno;
			child_step = SPAWN_CHDIR;
			unlink(claim);
			_exit(127);
		}
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		for (int sig = 1; sig < NSIG; sig++)
			sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP and glibc's own */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(exe, argv, env);
		child_err = errno;
		child_step = SPAWN_EXEC;
		unlink(claim);
		_exit(127);
	}
	int fork_err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (child < 0) {
		*err = fork_err;
		return SPAWN_EXEC;
	}
	if (child_step != SPAWN_OK) {
		waitpid(child, NULL, 0);
		*err = child_err;
		return child_step;
	}
	*pid = child;
	return SPAWN_OK;
}

/* Spawns the instance's process. Failures to start become the instance's `exited` cause. */
static void spawn_instance(struct local_drv *d, struct local_inst *in, const struct drv_start *req)
{
	const struct spec_template *t = req->tmpl;
	char err[512];
	struct stat st;
	if (t->workdir != NULL) {
		const char *why = NULL;
		if (stat(t->workdir, &st) != 0)
			why = strerror(errno);
		else if (!S_ISDIR(st.st_mode))
			why = "not a directory";
		if (why != NULL) {
			snprintf(err, sizeof err, "workdir %s: %s", t->workdir, why);
			inst_dead(in, err);
			return;
		}
	}
	char *inst_dir = NULL;
	if (make_inst_dir(d, req, &inst_dir, err, sizeof err) != 0) {
		inst_dead(in, err);
		return;
	}
	int logfd = open_log(d, req, err, sizeof err);
	if (logfd < 0) {
		free(inst_dir);
		inst_dead(in, err);
		return;
	}
	char *name = xasprintf("%s-%" PRIu64, req->service, req->id);
	struct spec_vars vars = {.port = req->port, .instance = name, .instance_dir = inst_dir, .version = t->version};
	char **argv = xcalloc(t->n_command + 1, sizeof *argv);
	size_t too_long = t->n_command;
	for (size_t i = 0; i < t->n_command; i++) {
		argv[i] = spec_render(t->command[i], &vars);
		if (argv[i] == NULL && too_long == t->n_command)
			too_long = i;
		if (argv[i] == NULL)
			argv[i] = xstrdup("");
	}
	free(name);
	if (too_long < t->n_command) {
		snprintf(err, sizeof err, "command[%zu]: longer than 1 MiB once rendered", too_long);
		free_strv(argv, false);
		free(inst_dir);
		close(logfd);
		inst_dead(in, err);
		return;
	}
	char **env = build_env(d, req, inst_dir);
	free(inst_dir);

	int pid = 0, rc = 0, step = SPAWN_EXEC;
	char *exe = NULL;
	char *claim = claim_path(d, req->service, req->id);
	char *run = xasprintf("%s/run", d->marker);
	if ((rc = -mkdirs(run)) != 0) /* positive errnos from here on, as spawn_claimed's */
		step = SPAWN_CLAIM;
	else if ((rc = resolve_exe(argv[0], &exe)) == 0)
		step = spawn_claimed(exe, argv, env, t->workdir, logfd, claim, &pid, &rc);
	free(run);
	free(exe);
	close(logfd);
	free_strv(env, true);

	if (rc != 0 || step != SPAWN_OK) {
		/* uv_strerror-style wording, lower case: "no such file or directory". */
		char why[128];
		snprintf(why, sizeof why, "%s", strerror(rc));
		why[0] = (char)tolower((unsigned char)why[0]);
		if (step == SPAWN_CLAIM)
			snprintf(err, sizeof err, "claim %s: %s", claim, why);
		else if (step == SPAWN_CHDIR)
			snprintf(err, sizeof err, "workdir %s: %s", t->workdir, why);
		else
			snprintf(err, sizeof err, "exec %s: %s", argv[0], why);
		free_strv(argv, false);
		free(claim);
		inst_dead(in, err);
		return;
	}
	free_strv(argv, false);
	in->pid = pid;
	proc_stat(pid, NULL, &in->proc_start);
	claim_complete(claim, pid, in->proc_start);
	free(claim);
	int fd = pidfd_open(d, pid);
	if ((fd < 0 && fd != -ENOSYS) || (rc = inst_watch(in, fd)) != 0) {
		if (fd >= 0 && !in->poll_init)
			close(fd);
		snprintf(err, sizeof err, "pidfd_open %d: %s", pid, fd < 0 ? strerror(-fd) : uv_strerror(rc));
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		inst_dead(in, err);
		return;
	}
	inst_defer(in);
}

/* Watches the process pid (started at proc_start) as the instance. 0, or -ESRCH when it is not
 * that process (any more). */
static int watch_pid(struct local_drv *d, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	uint64_t start = 0;
	if (pid <= 0 || proc_stat(pid, NULL, &start) != 0 || start != proc_start)
		return -ESRCH;
	int fd = pidfd_open(d, pid);
	if (fd < 0 && fd != -ENOSYS)
		return -ESRCH;
	/* The pid could have been reused between the check and the open: check again, now that the
	 * pidfd pins the process it names. */
	if (proc_stat(pid, NULL, &start) != 0 || start != proc_start) {
		if (fd >= 0)
			close(fd);
		return -ESRCH;
	}
	struct local_inst *in = inst_new(d, service, id, false);
	in->pid = pid;
	in->proc_start = proc_start;
	int rc = inst_watch(in, fd);
	if (rc != 0) {
		if (fd >= 0 && !in->poll_init)
			close(fd);
		inst_destroy(in);
		return rc;
	}
	inst_defer(in);
	return 0;
}

static int local_start(struct drv *base, const struct drv_start *req)
{
	struct local_drv *d = (struct local_drv *)base;
	if (d->closing)
		return -EBADF;
	if (req->service == NULL || req->tmpl == NULL || req->tmpl->n_command == 0 ||
	    req->tmpl->command == NULL || req->log_dir == NULL)
		return -EINVAL;
	if (inst_find(d, req->service, req->id) != NULL)
		return -EEXIST;
	/* already running (a start made again after a restart): that process is the instance,
	 * never a second one beside it */
	char *claim = claim_path(d, req->service, req->id);
	int pid = 0;
	uint64_t start = 0;
	int live = claim_read(claim, &pid, &start);
	free(claim);
	int w = live ? watch_pid(d, req->service, req->id, pid, start) : -ESRCH;
	if (w == 0)
		return 0;
	if (live) { /* it runs but cannot be watched: never a second one, nor its files touched */
		char why[160];
		snprintf(why, sizeof why, "already running as pid %d, which cannot be watched: %s", pid, strerror(-w));
		inst_dead(inst_new(d, req->service, req->id, true), why);
		return 0;
	}
	struct local_inst *in = inst_new(d, req->service, req->id, false);
	spawn_instance(d, in, req);
	return 0;
}

static int local_stop(struct drv *base, const char *service, uint64_t id, int signo, int64_t grace_ms)
{
	struct local_drv *d = (struct local_drv *)base;
	if (d->closing)
		return -EBADF;
	struct local_inst *in = inst_find(d, service, id);
	if (in == NULL) {
		in = inst_new(d, service, id, true);
		inst_dead(in, "not running");
		return 0;
	}
	if (in->dead)
		return 0; /* its `exited` is on its way */
	in->stopping = true;
	if (kill(-in->pid, signo) != 0 && errno != ESRCH)
		return -errno;
	uv_timer_start(&in->kill_timer, on_kill_timer, grace_ms > 0 ? (uint64_t)grace_ms : 0, 0);
	return 0;
}

struct find_ctx {
	const char *service;
	uint64_t id;
	int pid;
};

static void find_cb(const char *service, uint64_t id, int pid, void *ctx)
{
	struct find_ctx *f = ctx;
	if (f->pid == 0 && id == f->id && strcmp(service, f->service) == 0)
		f->pid = pid;
}

static int local_adopt(struct drv *base, const char *service, uint64_t id, int pid, uint64_t proc_start)
{
	struct local_drv *d = (struct local_drv *)base;
	if (d->closing)
		return -EBADF;
	if (inst_find(d, service, id) != NULL)
		return -EEXIST;
	if (pid == 0) {
		/* not recorded yet: its claim names it; instances of daemons before claims, the
		 * marker in their environment */
		char *claim = claim_path(d, service, id);
		int found = claim_read(claim, &pid, &proc_start);
		free(claim);
		if (!found) {
			struct find_ctx f = {service, id, 0};
			drv_local_scan(d->marker, find_cb, &f);
			if (f.pid == 0 || proc_stat(f.pid, NULL, &proc_start) != 0) {
				inst_dir_remove(d, service, id); /* gone while no one watched */
				return -ESRCH;
			}
			pid = f.pid;
		}
	}
	int rc = watch_pid(d, service, id, pid, proc_start);
	if (rc == -ESRCH)
		inst_dir_remove(d, service, id);
	return rc;
}

static int local_proc_info(struct drv *base, const char *service, uint64_t id, int *pid, uint64_t *proc_start)
{
	struct local_drv *d = (struct local_drv *)base;
	struct local_inst *in = inst_find(d, service, id);
	if (in == NULL || in->dead || in->pid <= 0)
		return -ENOENT;
	if (pid != NULL)
		*pid = in->pid;
	if (proc_start != NULL)
		*proc_start = in->proc_start;
	return 0;
}

static void sentinel_closed(uv_handle_t *h)
{
	struct local_drv *d = h->data;
	d->open--;
	drv_maybe_free(d);
}

/* Stops watching every instance (they keep running) and closes the driver's handles; the memory
 * goes when the last one is closed. */
static void local_close(struct drv *base)
{
	struct local_drv *d = (struct local_drv *)base;
	if (d->closing)
		return;
	d->closing = true;
	while (d->insts != NULL)
		inst_destroy(d->insts);
	uv_close((uv_handle_t *)&d->sentinel, sentinel_closed);
}

static const struct drv_ops local_ops = {
	.name = "local",
	.start = local_start,
	.stop = local_stop,
	.adopt = local_adopt,
	.proc_info = local_proc_info,
	.close = local_close,
};

int drv_local_new(uv_loop_t *loop, const char *marker, const struct drv_callbacks *cb, struct drv **out)
{
	if (loop == NULL || marker == NULL || cb == NULL || out == NULL)
		return -EINVAL;
	struct local_drv *d = xcalloc(1, sizeof *d);
	d->base.ops = &local_ops;
	d->base.cb = *cb;
	d->loop = loop;
	d->marker = xstrdup(marker);
	d->log_max = DRV_LOCAL_LOG_MAX_DEFAULT;
	uv_timer_init(loop, &d->sentinel);
	d->sentinel.data = d;
	d->open = 1;
	*out = &d->base;
	return 0;
}

void drv_local_no_pidfd(struct drv *base)
{
	if (base->ops == &local_ops)
		((struct local_drv *)base)->no_pidfd = true;
}

void drv_local_set_log_max(struct drv *base, int64_t max_bytes)
{
	struct local_drv *d = (struct local_drv *)base;
	if (base->ops == &local_ops && max_bytes > 0)
		d->log_max = max_bytes;
}
