/* `rollout host start|stop|status|logs`: run on a remote host by the ssh driver, manages its
 * instances there: plain processes (the `process` preset: setsid, a pidfile and a log file per
 * instance) or systemd services (`--systemd`, host_systemd.c), with the same pidfiles and logs. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "host/host_systemd.h"
#include "driver/driver.h"
#include "util/xmalloc.h"

extern char **environ;

#define HOST_ENV_MAX	      (1024 * 1024) /* bytes of environment read from stdin */
#define HOST_NAME_MAX_LEN     200
#define HOST_LOG_DEFAULT_TAIL 65536

/* Options of every subcommand; argv after "--" is the command to start. */
struct host_opts {
	const char *dir, *name, *workdir, *signal, *grace, *port, *tail;
	bool env_stdin, systemd;
	char **cmd;
	int n_cmd;
};

static void host_usage(struct cmd_ctx *ctx)
{
	fprintf(ctx->err,
		"usage: rollout host start --name NAME --port N [--workdir D] [--env-stdin] [--systemd] -- CMD [ARG...]\n"
		"       rollout host stop --name NAME [--signal N] [--grace MS]\n"
		"       rollout host status [--name NAME]\n"
		"       rollout host logs --name NAME [--tail BYTES]\n"
		"       rollout host run --name NAME   (a --systemd instance's ExecStart)\n"
		"  files live in --dir DIR, else $ROLLOUT_HOME, else ~/.rollout\n");
}

/* Parses argv[2..]; returns 0 or -EINVAL after printing why. */
static int host_parse(struct cmd_ctx *ctx, int argc, char **argv, struct host_opts *o)
{
	memset(o, 0, sizeof *o);
	static const char *const names[] = {"--dir",   "--name", "--workdir", "--signal",
					    "--grace", "--port", "--tail"};
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			o->cmd = argv + i + 1;
			o->n_cmd = argc - i - 1;
			return 0;
		}
		if (strcmp(a, "--env-stdin") == 0 || strcmp(a, "--systemd") == 0) {
			*(a[2] == 'e' ? &o->env_stdin : &o->systemd) = true;
			continue;
		}
		const char **slots[] = {&o->dir,   &o->name, &o->workdir, &o->signal,
					&o->grace, &o->port, &o->tail};
		size_t k;
		for (k = 0; k < sizeof names / sizeof names[0]; k++)
			if (strcmp(a, names[k]) == 0)
				break;
		if (k == sizeof names / sizeof names[0] || i + 1 >= argc) {
			fprintf(ctx->err, "rollout host: unknown option or missing value: %s\n", a);
			host_usage(ctx);
			return -EINVAL;
		}
		*slots[k] = argv[++i];
	}
	return 0;
}

/* An instance name is a file name: [A-Za-z0-9._-], not starting with '.'. */
static bool name_ok(const char *s)
{
	if (s == NULL || s[0] == '\0' || s[0] == '.' || strlen(s) > HOST_NAME_MAX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return false;
	return true;
}

static char *base_dir(const struct host_opts *o)
{
	if (o->dir != NULL)
		return xstrdup(o->dir);
	const char *h = getenv("ROLLOUT_HOME");
	if (h != NULL && h[0] != '\0')
		return xstrdup(h);
	h = getenv("HOME");
	return xasprintf("%s/.rollout", h != NULL ? h : ".");
}

static int mkdir_p(const char *path)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				rc = -errno;
			*s = c;
			if (c == '\0' || rc != 0)
				break;
		}
	}
	free(p);
	return rc;
}

/* Reads the pidfile: 1 and pid/start when the process it names still runs, else 0. */
static int pidfile_alive(const char *path, int *pid, uint64_t *start)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	int p = 0;
	uint64_t st = 0, now = 0;
	int n = fscanf(f, "%d %" SCNu64, &p, &st);
	fclose(f);
	if (n != 2 || p <= 0)
		return 0;
	*pid = p;
	*start = st;
	if (drv_local_proc_start(p, &now) != 0 || now != st)
		return 0;
	char spath[64], buf[512];
	snprintf(spath, sizeof spath, "/proc/%d/stat", p);
	FILE *sf = fopen(spath, "r");
	if (sf != NULL) {
		size_t r = fread(buf, 1, sizeof buf - 1, sf);
		fclose(sf);
		buf[r] = '\0';
		char *q = strrchr(buf, ')');
		if (q != NULL && q[1] == ' ' && q[2] == 'Z')
			return 0;
	}
	return 1;
}

/* The port in every `${PORT}`, and `${` for every `$${`, as the local driver renders arguments
 * (spec_render); a bare `$PORT` is left to the program (a shell reads it from the environment).
 * New string. */
static char *subst_port(const char *arg, const char *port)
{
	size_t plen = strlen(port), len = strlen(arg);
	char *out = xmalloc(len * (plen + 1) + 1), *o = out;
	for (const char *p = arg; *p != '\0';) {
		if (strncmp(p, "${PORT}", 7) == 0) {
			memcpy(o, port, plen);
			o += plen;
			p += 7;
		} else if (strncmp(p, "$${", 3) == 0) {
			memcpy(o, "${", 2);
			o += 2;
			p += 3;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

/* Reads NUL-separated NAME=VALUE entries from stdin, at most HOST_ENV_MAX bytes. */
static int read_env(char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= HOST_ENV_MAX) {
				xwipe(b, n);
				free(b);
				return -E2BIG;
			}
			cap *= 2;
			char *nb = xmalloc(cap + 1);
			memcpy(nb, b, n);
			xwipe(b, n);
			free(b);
			b = nb;
		}
		ssize_t r = read(STDIN_FILENO, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(b);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* start --systemd: the instance as a service of the template unit (host_systemd.c). */
static int start_systemd(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir, const char *env,
			 size_t env_len)
{
	char **argv = xcalloc((size_t)o->n_cmd + 1, sizeof *argv);
	for (int i = 0; i < o->n_cmd; i++)
		argv[i] = subst_port(o->cmd[i], o->port);
	struct host_systemd_start req = {.dir = dir, .name = o->name, .port = o->port, .workdir = o->workdir,
					 .argv = argv, .argc = o->n_cmd, .env = env, .env_len = env_len};
	int pid = 0;
	uint64_t start = 0;
	int r = host_systemd_start(&host_systemd_real, &req, ctx->err, &pid, &start);
	if (r == 0)
		fprintf(ctx->out, "%d %" PRIu64 "\n", pid, start);
	for (int i = 0; i < o->n_cmd; i++)
		free(argv[i]);
	free(argv);
	return r == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
}

static int host_start(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir)
{
	if (!name_ok(o->name) || o->port == NULL || o->n_cmd < 1) {
		fprintf(ctx->err,
			"rollout host start: needs --name NAME ([A-Za-z0-9._-]), --port N and -- CMD\n");
		return CMD_EXIT_USAGE;
	}
	char *run = xasprintf("%s/run", dir), *logs = xasprintf("%s/logs", dir);
	char *pidf = xasprintf("%s/%s.pid", run, o->name), *logf = xasprintf("%s/%s.log", logs, o->name);
	int rc = CMD_EXIT_FAILED, pid = 0;
	uint64_t start = 0;
	char *env = NULL;
	size_t env_len = 0;
	if (mkdir_p(run) != 0 || mkdir_p(logs) != 0) {
		fprintf(ctx->err, "rollout host start: cannot make %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if (o->env_stdin && read_env(&env, &env_len) != 0) {
		fprintf(ctx->err, "rollout host start: cannot read the environment from stdin\n");
		goto out;
	}
	if (o->systemd) {
		rc = start_systemd(ctx, o, dir, env, env_len);
		goto out;
	}
	if (pidfile_alive(pidf, &pid, &start)) { /* already running: never a duplicate */
		fprintf(ctx->out, "%d %" PRIu64 "\n", pid, start);
		rc = CMD_EXIT_OK;
		goto out;
	}
	int logfd = open(logf, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (logfd < 0) {
		fprintf(ctx->err, "rollout host start: log %s: %s\n", logf, strerror(errno));
		goto out;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		close(logfd);
		goto out;
	}
	/* The environment: ours minus what is set here, then the given entries, PORT, ROLLOUT_INSTANCE. */
	size_t n_given = 0;
	for (size_t i = 0; i < env_len; i += strlen(env + i) + 1)
		n_given++;
	size_t n_own = 0;
	while (environ[n_own] != NULL)
		n_own++;
	char **envp = xcalloc(n_own + n_given + 3, sizeof *envp);
	size_t k = 0;
	for (size_t i = 0; i < n_own; i++)
		if (strncmp(environ[i], "PORT=", 5) != 0 && strncmp(environ[i], "ROLLOUT_INSTANCE=", 17) != 0)
			envp[k++] = environ[i];
	for (size_t i = 0; i < env_len; i += strlen(env + i) + 1)
		if (strchr(env + i, '=') != NULL && env[i] != '=')
			envp[k++] = env + i;
	char *portenv = xasprintf("PORT=%s", o->port), *instenv = xasprintf("ROLLOUT_INSTANCE=%s", o->name);
	envp[k++] = portenv;
	envp[k++] = instenv;
	envp[k] = NULL;
	char **argv = xcalloc((size_t)o->n_cmd + 1, sizeof *argv);
	for (int i = 0; i < o->n_cmd; i++)
		argv[i] = subst_port(o->cmd[i], o->port);

	fflush(NULL);
	pid_t child = fork();
	if (child == 0) {
		setsid();
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		int err = 0;
		if (o->workdir != NULL && chdir(o->workdir) != 0)
			err = errno;
		if (err == 0) {
			environ = envp;
			execvp(argv[0], argv);
			err = errno;
		}
		ssize_t w = write(pfd[1], &err, sizeof err);
		(void)w;
		_exit(127);
	}
	close(pfd[1]);
	close(logfd);
	int cerr = 0;
	ssize_t r = child > 0 ? read(pfd[0], &cerr, sizeof cerr) : -1;
	close(pfd[0]);
	if (child < 0) {
		fprintf(ctx->err, "rollout host start: fork: %s\n", strerror(errno));
	} else if (r == (ssize_t)sizeof cerr) {
		waitpid(child, NULL, 0);
		fprintf(ctx->err, "%s %s: %s\n",
			o->workdir != NULL && cerr == ENOENT ? "workdir or exec" : "exec", argv[0],
			strerror(cerr));
	} else {
		drv_local_proc_start(child, &start);
		char *tmp = xasprintf("%s.tmp", pidf);
		FILE *f = fopen(tmp, "w");
		if (f != NULL) {
			fprintf(f, "%d %" PRIu64 "\n", (int)child, start);
			if (fclose(f) == 0 && rename(tmp, pidf) == 0)
				rc = CMD_EXIT_OK;
		}
		free(tmp);
		if (rc != CMD_EXIT_OK) {
			kill(-child, SIGKILL);
			fprintf(ctx->err, "rollout host start: cannot write %s\n", pidf);
		} else {
			fprintf(ctx->out, "%d %" PRIu64 "\n", (int)child, start);
		}
	}
	for (int i = 0; i < o->n_cmd; i++)
		free(argv[i]);
	free(argv);
	free(envp);
	free(portenv);
	free(instenv);
out:
	if (env != NULL) {
		xwipe(env, env_len);
		free(env);
	}
	free(run), free(logs), free(pidf), free(logf);
	return rc;
}

static int host_stop(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir)
{
	if (!name_ok(o->name)) {
		fprintf(ctx->err, "rollout host stop: needs --name NAME\n");
		return CMD_EXIT_USAGE;
	}
	int sig = o->signal ? atoi(o->signal) : SIGTERM;
	long grace = o->grace ? atol(o->grace) : 10000;
	if (sig <= 0 || sig >= 65 || grace < 0) {
		fprintf(ctx->err, "rollout host stop: bad --signal or --grace\n");
		return CMD_EXIT_USAGE;
	}
	if (host_systemd_managed(dir, o->name)) {
		const char *how;
		host_systemd_stop(&host_systemd_real, dir, o->name, sig, grace, &how);
		if (strcmp(how, "not running") == 0)
			fprintf(ctx->out, "not running\n");
		else
			fprintf(ctx->out, "%s by signal %d\n", how, sig);
		return CMD_EXIT_OK;
	}
	char *pidf = xasprintf("%s/run/%s.pid", dir, o->name);
	int pid = 0;
	uint64_t start = 0;
	if (!pidfile_alive(pidf, &pid, &start)) {
		unlink(pidf);
		free(pidf);
		fprintf(ctx->out, "not running\n");
		return CMD_EXIT_OK;
	}
	kill(-pid, sig);
	const char *how = NULL;
	for (long waited = 0; how == NULL; waited += 20) {
		int p;
		uint64_t s;
		if (!pidfile_alive(pidf, &p, &s))
			how = "stopped";
		else if (waited >= grace) {
			kill(-pid, SIGKILL);
			how = "killed after the grace period";
			for (int i = 0; i < 250 && pidfile_alive(pidf, &p, &s); i++)
				usleep(20000);
		} else {
			usleep(20000);
		}
	}
	unlink(pidf);
	free(pidf);
	fprintf(ctx->out, "%s by signal %d\n", how, sig);
	return CMD_EXIT_OK;
}

/* One line per instance: NAME PID START running|exited. */
static int host_status_to(FILE *out, const struct host_opts *o, const char *dir)
{
	char *run = xasprintf("%s/run", dir);
	DIR *d = opendir(run);
	if (d == NULL) {
		free(run);
		return CMD_EXIT_OK; /* nothing started here yet */
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".pid") != 0)
			continue;
		char *name = xstrndup(de->d_name, l - 4);
		if (name_ok(name) && (o->name == NULL || strcmp(o->name, name) == 0)) {
			char *pidf = xasprintf("%s/%s", run, de->d_name);
			int pid = 0;
			uint64_t start = 0;
			bool alive = pidfile_alive(pidf, &pid, &start);
			fprintf(out, "%s %d %" PRIu64 " %s\n", name, pid, start,
				alive ? "running" : "exited");
			free(pidf);
		}
		free(name);
	}
	closedir(d);
	free(run);
	return CMD_EXIT_OK;
}

static int host_status(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir)
{
	return host_status_to(ctx->out, o, dir);
}

/* `status` as a stream, for the ssh driver's one long session per host: a snapshot (status lines,
 * then "end") when anything changed, looked at every 100 ms, and at least every second. Ends when
 * its output is gone (the session closed). */
static int host_watch(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir)
{
	signal(SIGPIPE, SIG_DFL);
	char *prev = NULL;
	struct timespec last = {0, 0};
	for (;;) {
		char *snap = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&snap, &len);
		if (m == NULL)
			return CMD_EXIT_FAILED;
		host_status_to(m, o, dir);
		fclose(m);
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long since = (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000;
		if (prev == NULL || strcmp(prev, snap) != 0 || since >= 1000) {
			fputs(snap, ctx->out);
			fputs("end\n", ctx->out);
			if (fflush(ctx->out) != 0 || ferror(ctx->out)) {
				free(snap);
				break;
			}
			last = now;
		}
		free(prev);
		prev = snap;
		usleep(100000);
	}
	free(prev);
	return CMD_EXIT_OK;
}

static int host_logs(struct cmd_ctx *ctx, const struct host_opts *o, const char *dir)
{
	if (!name_ok(o->name)) {
		fprintf(ctx->err, "rollout host logs: needs --name NAME\n");
		return CMD_EXIT_USAGE;
	}
	long tail = o->tail ? atol(o->tail) : HOST_LOG_DEFAULT_TAIL;
	char *logf = xasprintf("%s/logs/%s.log", dir, o->name);
	FILE *f = fopen(logf, "r");
	free(logf);
	if (f == NULL) {
		fprintf(ctx->err, "rollout host logs: no log for %s\n", o->name);
		return CMD_EXIT_FAILED;
	}
	if (tail > 0 && fseek(f, -tail, SEEK_END) != 0)
		rewind(f);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, ctx->out);
	fclose(f);
	return CMD_EXIT_OK;
}

static int host_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		host_usage(ctx);
		return argc < 2 ? CMD_EXIT_USAGE : CMD_EXIT_OK;
	}
	struct host_opts o;
	if (host_parse(ctx, argc, argv, &o) != 0)
		return CMD_EXIT_USAGE;
	char *dir = base_dir(&o);
	int rc;
	if (strcmp(argv[1], "start") == 0)
		rc = host_start(ctx, &o, dir);
	else if (strcmp(argv[1], "stop") == 0)
		rc = host_stop(ctx, &o, dir);
	else if (strcmp(argv[1], "status") == 0)
		rc = host_status(ctx, &o, dir);
	else if (strcmp(argv[1], "watch") == 0)
		rc = host_watch(ctx, &o, dir);
	else if (strcmp(argv[1], "logs") == 0)
		rc = host_logs(ctx, &o, dir);
	else if (strcmp(argv[1], "run") == 0 && name_ok(o.name))
		rc = host_systemd_run(dir, o.name, ctx->err) == 0 ? CMD_EXIT_OK : CMD_EXIT_FAILED;
	else {
		host_usage(ctx);
		rc = CMD_EXIT_USAGE;
	}
	free(dir);
	return rc;
}

const struct cmd_entry cmd_host_entry = {
    .name = "host",
    .usage = "start|stop|status|watch|logs [--name NAME] ...",
    .summary = "on a remote host: manage one plain process (used by the ssh driver)",
    .exec = host_exec,
};
