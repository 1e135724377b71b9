/* The `systemd` preset of `rollout host`: instances as services of one template unit per rollout
 * directory, their command and environment in a 0600 spec file read by `rollout host run`. */
#include "host/host_systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver/driver.h"
#include "util/xmalloc.h"

extern char **environ;

#define SPEC_MAX (4 * 1024 * 1024) /* bytes of one instance's spec file */

/* ---- systemctl, for real ---- */

static int real_systemctl(char *const argv[], char *out, size_t len)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -errno;
	/* Not root: the user's manager. */
	size_t n = 0;
	while (argv[n] != NULL)
		n++;
	char **av = xcalloc(n + 2, sizeof *av);
	size_t k = 0;
	av[k++] = argv[0];
	if (geteuid() != 0)
		av[k++] = "--user";
	for (size_t i = 1; i < n; i++)
		av[k++] = argv[i];
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, "systemctl", &fa, NULL, av, environ);
	posix_spawn_file_actions_destroy(&fa);
	free(av);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return -rc;
	}
	size_t got = 0;
	char sink[512];
	for (;;) {
		char *dst = out != NULL && got + 1 < len ? out + got : sink;
		size_t room = out != NULL && got + 1 < len ? len - 1 - got : sizeof sink;
		ssize_t r = read(pfd[0], dst, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (dst != sink)
			got += (size_t)r;
	}
	close(pfd[0]);
	if (out != NULL && len > 0)
		out[got] = '\0';
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const struct host_systemd_ops host_systemd_real = {real_systemctl};

/* ---- names, paths, the unit ---- */

char *host_systemd_unit_dir(void)
{
	const char *d = getenv("ROLLOUT_SYSTEMD_DIR");
	if (d != NULL && d[0] != '\0')
		return xstrdup(d);
	if (geteuid() == 0)
		return xstrdup("/etc/systemd/system");
	const char *h = getenv("HOME");
	return xasprintf("%s/.config/systemd/user", h != NULL ? h : ".");
}

char *host_systemd_template(const char *dir)
{
	uint32_t h = 2166136261u;
	for (const char *p = dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return xasprintf("rollout-%08" PRIx32 "@.service", h);
}

/* The unit of one instance: the template with the name after '@'. */
static char *unit_of(const char *dir, const char *name)
{
	char *t = host_systemd_template(dir);
	char *at = strchr(t, '@');
	*at = '\0';
	char *u = xasprintf("%s@%s.service", t, name);
	free(t);
	return u;
}

/* A path systemd reads as written in ExecStart= and StandardOutput=append: absolute, and none of
 * the characters its parser gives a meaning to. */
static bool unit_safe(const char *p)
{
	if (p == NULL || p[0] != '/')
		return false;
	for (; *p; p++)
		if ((unsigned char)*p <= ' ' || strchr("\"'\\%$;", *p) != NULL || *p == 0x7f)
			return false;
	return true;
}

char *host_systemd_unit_text(const char *exe, const char *dir)
{
	if (!unit_safe(exe) || !unit_safe(dir))
		return NULL;
	return xasprintf("# Made by rollout (the systemd preset); one service per instance: %%i is its name.\n"
			 "[Unit]\n"
			 "Description=rollout instance %%i (%s)\n"
			 "\n"
			 "[Service]\n"
			 "Type=exec\n"
			 "ExecStart=%s host run --dir %s --name %%i\n"
			 "StandardInput=null\n"
			 "StandardOutput=append:%s/logs/%%i.log\n"
			 "StandardError=append:%s/logs/%%i.log\n"
			 "KillMode=control-group\n"
			 "Restart=no\n",
			 dir, exe, dir, dir, dir);
}

/* ---- files ---- */

/* Writes len bytes to path atomically (temporary file, fsync, rename) with mode. 0 or -errno. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
		free(tmp);
		return rc;
	}
	if (fchmod(fd, mode) != 0) /* before any byte: a leftover temporary file may have had another */
		rc = -errno;
	for (size_t off = 0; rc == 0 && off < len;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = -errno;
		else
			off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	if (rc == 0) { /* the rename itself, durable */
		char *dir = xstrdup(path), *slash = strrchr(dir, '/');
		if (slash != NULL) {
			*slash = '\0';
			int dfd = open(slash == dir ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				if (fsync(dfd) != 0)
					rc = -errno;
				close(dfd);
			}
		}
		free(dir);
	}
	return rc;
}

/* Reads a whole file (at most max bytes). 0 and *out (NUL-terminated) / *len, or -errno. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 4096, n = 0;
	char *b = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				xwipe(b, n);
				free(b);
				close(fd);
				return -EFBIG;
			}
			cap *= 2; /* grown by hand: the old buffer is wiped (the spec holds secrets) */
			char *nb = xmalloc(cap + 1);
			memcpy(nb, b, n);
			xwipe(b, n);
			free(b);
			b = nb;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			xwipe(b, n);
			free(b);
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

static char *run_path(const char *dir, const char *name, const char *ext)
{
	return xasprintf("%s/run/%s.%s", dir, name, ext);
}

bool host_systemd_managed(const char *dir, const char *name)
{
	char *p = run_path(dir, name, "unit");
	bool yes = access(p, F_OK) == 0;
	free(p);
	return yes;
}

/* The instance spec: NUL-terminated records "W<workdir>", "A<arg>" (in order), "E<NAME=value>". */
static char *spec_text(const struct host_systemd_start *r, size_t *len)
{
	size_t n = 2 + (r->workdir ? strlen(r->workdir) + 2 : 0) + 2 * r->env_len + 64 + strlen(r->port) +
		   strlen(r->name);
	for (int i = 0; i < r->argc; i++)
		n += strlen(r->argv[i]) + 2;
	char *b = xmalloc(n), *o = b;
	if (r->workdir != NULL)
		o += sprintf(o, "W%s", r->workdir) + 1;
	for (int i = 0; i < r->argc; i++)
		o += sprintf(o, "A%s", r->argv[i]) + 1;
	for (size_t i = 0; r->env != NULL && i < r->env_len; i += strlen(r->env + i) + 1)
		if (strchr(r->env + i, '=') != NULL && r->env[i] != '=' && strncmp(r->env + i, "PORT=", 5) != 0 &&
		    strncmp(r->env + i, "ROLLOUT_INSTANCE=", 17) != 0)
			o += sprintf(o, "E%s", r->env + i) + 1;
	o += sprintf(o, "EPORT=%s", r->port) + 1;
	o += sprintf(o, "EROLLOUT_INSTANCE=%s", r->name) + 1;
	*len = (size_t)(o - b);
	return b;
}

/* The main pid of unit (0 when none runs). 0 or a negative errno. */
static int main_pid(const struct host_systemd_ops *ops, const char *unit, int *pid)
{
	char out[64];
	char *av[] = {"systemctl", "show", "--property=MainPID", "--value", (char *)unit, NULL};
	int rc = ops->systemctl(av, out, sizeof out);
	if (rc != 0)
		return rc < 0 ? rc : -EIO;
	*pid = atoi(out);
	return 0;
}

static int ctl(const struct host_systemd_ops *ops, const char *verb, const char *opt, const char *unit)
{
	char *av[] = {"systemctl", (char *)verb, (char *)(opt ? opt : unit), opt ? (char *)unit : NULL, NULL};
	return ops->systemctl(av, NULL, 0);
}

/* Installs the template unit when missing or different, then daemon-reload. 0 or -errno. */
static int ensure_template(const struct host_systemd_ops *ops, const char *dir, FILE *err)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	char *text = host_systemd_unit_text(exe, dir);
	if (text == NULL) {
		fprintf(err, "rollout host start: %s or %s cannot be written in a systemd unit (a space, quote, "
			     "backslash, %%, $ or ;)\n", exe, dir);
		return -EINVAL;
	}
	char *udir = host_systemd_unit_dir(), *tname = host_systemd_template(dir);
	char *path = xasprintf("%s/%s", udir, tname);
	char *cur = NULL;
	size_t cur_len = 0;
	int rc = 0;
	if (read_file(path, 65536, &cur, &cur_len) != 0 || strcmp(cur, text) != 0) {
		rc = write_file(path, text, strlen(text), 0644);
		if (rc < 0)
			fprintf(err, "rollout host start: cannot write %s: %s\n", path, strerror(-rc));
		else if (ctl(ops, "daemon-reload", NULL, NULL) != 0)
			fprintf(err, "rollout host start: systemctl daemon-reload failed\n"), rc = -EIO;
	}
	free(cur), free(text), free(udir), free(tname), free(path);
	return rc;
}

int host_systemd_start(const struct host_systemd_ops *ops, const struct host_systemd_start *req, FILE *err,
		       int *pid, uint64_t *start)
{
	char *unit = unit_of(req->dir, req->name);
	char *specf = run_path(req->dir, req->name, "spec"), *unitf = run_path(req->dir, req->name, "unit");
	char *pidf = run_path(req->dir, req->name, "pid");
	int rc = 0, p = 0;
	if (main_pid(ops, unit, &p) == 0 && p > 0) /* already running: never a duplicate */
		goto record;
	size_t len;
	char *spec = spec_text(req, &len);
	rc = write_file(specf, spec, len, 0600);
	xwipe(spec, len);
	free(spec);
	if (rc == 0)
		rc = write_file(unitf, unit, strlen(unit), 0644);
	if (rc < 0) {
		fprintf(err, "rollout host start: cannot write %s: %s\n", specf, strerror(-rc));
		goto out;
	}
	rc = ensure_template(ops, req->dir, err);
	if (rc < 0)
		goto out;
	ctl(ops, "reset-failed", NULL, unit); /* a failed run before does not block the name */
	int st = ctl(ops, "start", NULL, unit);
	if (st != 0) {
		fprintf(err, "systemctl start %s failed (%s %d); see rollout host logs --name %s\n", unit,
			st < 0 ? "error" : "exit status", st < 0 ? -st : st, req->name);
		rc = -EIO;
		goto out;
	}
	if (main_pid(ops, unit, &p) != 0 || p <= 0) {
		fprintf(err, "%s started but has no main process (it exited at once); see rollout host logs --name "
			     "%s\n", unit, req->name);
		rc = -ESRCH;
		goto out;
	}
record:
	*pid = p;
	*start = 0;
	drv_local_proc_start(p, start);
	char line[64];
	int n = snprintf(line, sizeof line, "%d %" PRIu64 "\n", p, *start);
	rc = write_file(pidf, line, (size_t)n, 0644);
	if (rc < 0)
		fprintf(err, "rollout host start: cannot write %s: %s\n", pidf, strerror(-rc));
out:
	free(unit), free(specf), free(unitf), free(pidf);
	return rc;
}

int host_systemd_stop(const struct host_systemd_ops *ops, const char *dir, const char *name, int signo,
		      long grace_ms, const char **how)
{
	char *unit = unit_of(dir, name);
	int p = 0;
	*how = "not running";
	if (main_pid(ops, unit, &p) == 0 && p > 0) {
		char sig[32];
		snprintf(sig, sizeof sig, "--signal=%d", signo);
		ctl(ops, "kill", sig, unit);
		*how = "stopped";
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (main_pid(ops, unit, &p) == 0 && p > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			long waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
			if (waited >= grace_ms) {
				ctl(ops, "kill", "--signal=9", unit);
				*how = "killed after the grace period";
				for (int i = 0; i < 250 && main_pid(ops, unit, &p) == 0 && p > 0; i++)
					usleep(20000);
				break;
			}
			usleep(20000);
		}
	}
	ctl(ops, "stop", NULL, unit);
	ctl(ops, "reset-failed", NULL, unit);
	const char *ext[] = {"pid", "unit", "spec"};
	for (size_t i = 0; i < 3; i++) {
		char *f = run_path(dir, name, ext[i]);
		unlink(f);
		free(f);
	}
	free(unit);
	return 0;
}

int host_systemd_run(const char *dir, const char *name, FILE *err)
{
	char *specf = run_path(dir, name, "spec");
	char *b = NULL;
	size_t len = 0;
	int rc = read_file(specf, SPEC_MAX, &b, &len);
	if (rc < 0) {
		fprintf(err, "rollout host run: %s: %s\n", specf, strerror(-rc));
		free(specf);
		return rc;
	}
	free(specf);
	size_t n = 0;
	for (size_t i = 0; i < len; i += strlen(b + i) + 1)
		n++;
	char **argv = xcalloc(n + 1, sizeof *argv), **envp = xcalloc(n + 2, sizeof *envp);
	size_t na = 0, ne = 0;
	const char *workdir = NULL;
	bool path = false;
	for (size_t i = 0; i < len; i += strlen(b + i) + 1) {
		char *r = b + i;
		if (r[0] == 'W')
			workdir = r + 1;
		else if (r[0] == 'A')
			argv[na++] = r + 1;
		else if (r[0] == 'E') {
			envp[ne++] = r + 1;
			path |= strncmp(r + 1, "PATH=", 5) == 0;
		}
	}
	if (!path) /* systemd's environment is bare: the usual search path */
		envp[ne++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	if (na == 0) {
		fprintf(err, "rollout host run: %s has no command\n", name);
		rc = -EINVAL;
	} else if (workdir != NULL && chdir(workdir) != 0) {
		rc = -errno;
		fprintf(err, "workdir %s: %s\n", workdir, strerror(errno));
	} else {
		environ = envp;
		execvp(argv[0], argv);
		rc = -errno;
		fprintf(err, "exec %s: %s\n", argv[0], strerror(errno));
	}
	xwipe(b, len);
	free(b);
	free(argv);
	free(envp);
	return rc;
}
