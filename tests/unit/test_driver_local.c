/* Tests of the local instance driver with real processes (and of the fake driver). Every process
 * a test starts is killed in teardown, even when the test failed. */
#include <errno.h>
#include <setjmp.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "uvtest.h"

#include "driver/driver.h"

#define MAX_PIDS 64

struct fixture {
	uv_loop_t loop;
	char dir[64];    /* temporary dir: logs; also the marker */
	char logdir[96];
	struct drv *d, *d2;
	int started, exited;
	int pid;
	char service[64];
	uint64_t id;
	char cause[256];
	uint64_t t_exited;
	bool close_on_exit; /* the exited callback closes f->d */
};

static int pids[MAX_PIDS];
static bool no_pidfd; /* the second run: without pidfds */
static int n_pids;

static void on_started(void *ctx, const char *service, uint64_t id, int pid)
{
	struct fixture *f = ctx;
	f->started++;
	f->pid = pid;
	snprintf(f->service, sizeof f->service, "%s", service);
	f->id = id;
	if (n_pids < MAX_PIDS)
		pids[n_pids++] = pid;
}

static void on_exited(void *ctx, const char *service, uint64_t id, const char *cause)
{
	struct fixture *f = ctx;
	f->exited++;
	snprintf(f->service, sizeof f->service, "%s", service);
	f->id = id;
	snprintf(f->cause, sizeof f->cause, "%s", cause);
	f->t_exited = uvt_now_ms();
	if (f->close_on_exit) {
		drv_close(f->d);
		f->d = NULL;
	}
}

/* Whether a live (not zombie) process is in process group pgid. Zombies are skipped: orphans
 * are reaped by init, which may take its time (or never come, in some containers). */
static bool group_alive(int pgid)
{
	bool alive = false;
	FILE *ls = popen("ls /proc", "r");
	char name[64];
	while (ls != NULL && fscanf(ls, "%63s", name) == 1) {
		char path[128], buf[1024];
		snprintf(path, sizeof path, "/proc/%s/stat", name);
		FILE *fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		char *p = strrchr(buf, ')'), state;
		int ppid, pgrp;
		if (p != NULL && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
		    state != 'Z')
			alive = true;
	}
	if (ls != NULL)
		pclose(ls);
	return alive;
}

/* SIGKILL is delivered asynchronously: give the group a moment to be gone. */
static bool group_dies(int pgid)
{
	for (int i = 0; i < 100; i++) {
		if (!group_alive(pgid))
			return true;
		usleep(5000);
	}
	return false;
}

static struct drv_callbacks callbacks(struct fixture *f)
{
	return (struct drv_callbacks){.ctx = f, .started = on_started, .exited = on_exited};
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (f == NULL || uv_loop_init(&f->loop) != 0)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/rollout-drv.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->logdir, sizeof f->logdir, "%s/logs/x", f->dir);
	struct drv_callbacks cb = callbacks(f);
	if (drv_local_new(&f->loop, f->dir, &cb, &f->d) != 0)
		return -1;
	if (no_pidfd)
		drv_local_no_pidfd(f->d);
	n_pids = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	drv_close(f->d);
	drv_close(f->d2);
	for (int i = 0; i < n_pids; i++) {
		if (pids[i] > 0) {
			kill(-pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0); /* ECHILD when already reaped */
		}
	}
	n_pids = 0;
	uv_run(&f->loop, UV_RUN_DEFAULT); /* close callbacks */
	int rc = uv_loop_close(&f->loop);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		rc = -1;
	free(f);
	return rc == 0 ? 0 : -1;
}

/* Reads the whole log of service-id into buf (NUL-terminated); returns its length or -1. */
static int read_log(struct fixture *f, const char *service, uint64_t id, char *buf, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s-%llu.log", f->logdir, service, (unsigned long long)id);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return -1;
	size_t n = fread(buf, 1, len - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	return (int)n;
}

/* Waits until the log holds `needle`. */
static bool wait_log(struct fixture *f, const char *service, uint64_t id, const char *needle, char *buf, size_t len)
{
	uint64_t end = uvt_now_ms() + 3000;
	while (uvt_now_ms() < end) {
		if (read_log(f, service, id, buf, len) >= 0 && strstr(buf, needle) != NULL)
			return true;
		uvt_spin(&f->loop, 10);
	}
	return false;
}

static int start_cmd(struct fixture *f, struct drv *d, const char *service, uint64_t id, char **argv,
		     struct spec_kv *env, size_t n_env, const char *workdir, int port)
{
	size_t n = 0;
	while (argv[n] != NULL)
		n++;
	struct spec_template t = {.version = "1", .command = argv, .n_command = n, .env = env,
				  .n_env = n_env, .workdir = (char *)workdir};
	struct drv_start req = {.service = service, .id = id, .revision = 1, .tmpl = &t, .port = port,
				.log_dir = f->logdir};
	return drv_start(d, &req);
}

/* template.files: rendered with the instance's port, name, version and directory, written 0600
 * under DATA/instances/<service>-<id> before the program runs (it reads the file at once), and
 * removed with the instance (issue 12.10). */
static void test_files_rendered(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"sh", "-c", "cat \"$1\"; echo; echo \"dir=$INSTANCE_DIR\"; exec sleep 30", "sh",
			"${INSTANCE_DIR}/conf/app.conf", NULL};
	struct spec_file files[] = {
		{.path = "conf/app.conf",
		 .content = "listen ${PORT}; name ${INSTANCE}; v ${VERSION}; in ${INSTANCE_DIR}; $host $${PORT} ${OTHER}"},
		{.path = "empty", .content = ""},
	};
	struct spec_template t = {.version = "v2", .command = argv, .n_command = 5, .files = files, .n_files = 2};
	struct drv_start req = {.service = "web", .id = 3, .revision = 1, .tmpl = &t, .port = 41235,
				.log_dir = f->logdir};
	assert_int_equal(drv_start(f->d, &req), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	char buf[4096], want[2048], dir[512];
	snprintf(dir, sizeof dir, "%s/instances/web-3", f->dir);
	assert_true(wait_log(f, "web", 3, "dir=", buf, sizeof buf));
	snprintf(want, sizeof want,
		 "listen 41235; name web-3; v v2; in %s; $host ${PORT} ${OTHER}\ndir=%s\n", dir, dir);
	assert_string_equal(buf, want);
	struct stat st;
	char path[1024];
	snprintf(path, sizeof path, "%s/conf/app.conf", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/empty", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	assert_int_equal(drv_stop(f->d, "web", 3, SIGTERM, 5000), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_int_equal(stat(dir, &st), -1); /* gone with the instance */
	assert_int_equal(errno, ENOENT);
}

static void test_start_env_argv_stop(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"sh", "-c",
			"printenv PORT ROLLOUT_INSTANCE ROLLOUT_DAEMON GREETING; echo \"arg=$1\"; exec sleep 30",
			"sh", "p${PORT}q-$PORT-$PORTX-$${PORT}", NULL};
	struct spec_kv env[] = {{.name = "GREETING", .value = "hi"}, {.name = "PORT", .value = "1"}};
	assert_int_equal(start_cmd(f, f->d, "web", 7, argv, env, 2, NULL, 41234), 0);
	assert_int_equal(f->started, 0); /* never from inside the call */
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	assert_int_equal(f->exited, 0);
	assert_string_equal(f->service, "web");
	assert_int_equal(f->id, 7);
	assert_true(f->pid > 0);
	assert_int_equal(getpgid(f->pid), f->pid);
	assert_int_not_equal(getpgid(f->pid), getpgrp());
	assert_int_equal(getsid(f->pid), f->pid);

	char buf[4096], want[512];
	assert_true(wait_log(f, "web", 7, "arg=", buf, sizeof buf));
	/* Only ${PORT} is the driver's: a bare $PORT is the program's (a shell reads it from PORT in
	 * the environment), and $${ writes ${. */
	snprintf(want, sizeof want, "41234\nweb/7\n%s\nhi\narg=p41234q-$PORT-$PORTX-${PORT}\n", f->dir);
	assert_string_equal(buf, want);

	int pid = 0;
	uint64_t st = 0, st2 = 0;
	assert_int_equal(drv_proc_info(f->d, "web", 7, &pid, &st), 0);
	assert_int_equal(pid, f->pid);
	assert_int_equal(drv_local_proc_start(pid, &st2), 0);
	assert_true(st == st2 && st > 0);
	assert_int_equal(drv_proc_info(f->d, "web", 8, &pid, &st), -ENOENT);
	assert_int_equal(start_cmd(f, f->d, "web", 7, argv, NULL, 0, NULL, 1), -EEXIST);

	uint64_t t0 = uvt_now_ms();
	assert_int_equal(drv_stop(f->d, "web", 7, SIGTERM, 5000), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_true(uvt_now_ms() - t0 < 2000);
	assert_string_equal(f->cause, "killed by SIGTERM");
	assert_int_equal(f->started, 1);
	assert_int_equal(kill(pid, 0), -1); /* reaped: no zombie left */
	assert_int_equal(drv_proc_info(f->d, "web", 7, &pid, &st), -ENOENT);
}

static void test_term_ignored_is_killed(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL};
	assert_int_equal(start_cmd(f, f->d, "stubborn", 1, argv, NULL, 0, NULL, 5000), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	char buf[1024];
	assert_true(wait_log(f, "stubborn", 1, "ready", buf, sizeof buf));
	uint64_t t0 = uvt_now_ms();
	assert_int_equal(drv_stop(f->d, "stubborn", 1, SIGTERM, 300), 0);
	uvt_spin(&f->loop, 150);
	assert_int_equal(f->exited, 0); /* TERM is ignored */
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_true(f->t_exited - t0 >= 290);
	assert_string_equal(f->cause, "killed by SIGKILL");
	/* The whole group went: the sleep child too. */
	assert_true(group_dies(f->pid));
}

static void test_exit_status_and_log_cap(void **state)
{
	struct fixture *f = *state;
	drv_local_set_log_max(f->d, 10);
	char *argv1[] = {"sh", "-c", "echo first-run-output-longer-than-ten; exit 3", NULL};
	assert_int_equal(start_cmd(f, f->d, "job", 1, argv1, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_string_equal(f->cause, "exited with status 3");
	char buf[1024];
	assert_true(read_log(f, "job", 1, buf, sizeof buf) > 10);
	/* Over the cap: truncated before the next start. */
	char *argv2[] = {"sh", "-c", "echo second", NULL};
	assert_int_equal(start_cmd(f, f->d, "job", 1, argv2, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 2, 3000));
	assert_string_equal(f->cause, "exited with status 0");
	read_log(f, "job", 1, buf, sizeof buf);
	assert_string_equal(buf, "second\n");
	/* Under the cap: appended. */
	assert_int_equal(start_cmd(f, f->d, "job", 1, argv2, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 3, 3000));
	read_log(f, "job", 1, buf, sizeof buf);
	assert_string_equal(buf, "second\nsecond\n");
}

static void test_start_failures(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"./no-such-program-xyz", "--port", "${PORT}", NULL};
	assert_int_equal(start_cmd(f, f->d, "bad", 1, argv, NULL, 0, NULL, 1), 0);
	assert_int_equal(f->exited, 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_int_equal(f->started, 0);
	assert_string_equal(f->cause, "exec ./no-such-program-xyz: no such file or directory");

	char *argv2[] = {"sleep", "30", NULL};
	assert_int_equal(start_cmd(f, f->d, "bad", 2, argv2, NULL, 0, "/nonexistent-dir-xyz", 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 2, 3000));
	assert_int_equal(f->started, 0);
	assert_string_equal(f->cause, "workdir /nonexistent-dir-xyz: No such file or directory");

	char *none[] = {NULL};
	assert_int_equal(start_cmd(f, f->d, "bad", 3, none, NULL, 0, NULL, 1), -EINVAL);
}

static void test_stop_unknown(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(drv_stop(f->d, "ghost", 9, SIGTERM, 1000), 0);
	assert_int_equal(f->exited, 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 500));
	assert_string_equal(f->service, "ghost");
	assert_int_equal(f->id, 9);
	assert_string_equal(f->cause, "not running");
}

struct scan_hit {
	int n;
	char service[64];
	uint64_t id;
	int pid;
};

static void scan_cb(const char *service, uint64_t id, int pid, void *ctx)
{
	struct scan_hit *h = ctx;
	h->n++;
	snprintf(h->service, sizeof h->service, "%s", service);
	h->id = id;
	h->pid = pid;
}

/* Starts `sh -c 'sleep 30'`-like instance api/3 with the first driver, then closes that driver
 * without stopping it. Returns the pid; *start gets its start time. */
static int start_then_abandon(struct fixture *f, uint64_t *start)
{
	char *argv[] = {"sh", "-c", "sleep 30; true", NULL}; /* a child with the same env */
	assert_int_equal(start_cmd(f, f->d, "api", 3, argv, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	int pid = 0;
	assert_int_equal(drv_proc_info(f->d, "api", 3, &pid, start), 0);
	drv_close(f->d);
	f->d = NULL;
	uvt_spin(&f->loop, 50);
	assert_int_equal(f->exited, 0);
	assert_int_equal(kill(pid, 0), 0); /* outlives its driver */
	struct drv_callbacks cb = callbacks(f);
	assert_int_equal(drv_local_new(&f->loop, f->dir, &cb, &f->d2), 0);
	if (no_pidfd)
		drv_local_no_pidfd(f->d2);
	return pid;
}

static void test_adopt_by_pid(void **state)
{
	struct fixture *f = *state;
	uint64_t start = 0;
	int pid = start_then_abandon(f, &start);

	struct scan_hit h = {0};
	uvt_spin(&f->loop, 100); /* let sh fork its sleep: the child carries the marker but is no instance */
	assert_int_equal(drv_local_scan(f->dir, scan_cb, &h), 1);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.service, "api");
	assert_int_equal(h.id, 3);
	assert_int_equal(h.pid, pid);
	struct scan_hit none = {0};
	assert_int_equal(drv_local_scan("/some/other/daemon", scan_cb, &none), 0);

	assert_int_equal(drv_adopt(f->d2, "api", 3, pid, start + 1), -ESRCH);
	assert_int_equal(drv_adopt(f->d2, "api", 3, 999999999, start), -ESRCH);
	assert_int_equal(drv_adopt(f->d2, "api", 3, pid, start), 0);
	assert_int_equal(drv_adopt(f->d2, "api", 3, pid, start), -EEXIST);
	assert_true(uvt_run_until(&f->loop, &f->started, 2, 3000));
	assert_int_equal(f->pid, pid);
	int p2 = 0;
	uint64_t s2 = 0;
	assert_int_equal(drv_proc_info(f->d2, "api", 3, &p2, &s2), 0);
	assert_true(p2 == pid && s2 == start);

	assert_int_equal(drv_stop(f->d2, "api", 3, SIGTERM, 2000), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_string_equal(f->cause, "killed by SIGTERM");
	assert_true(group_dies(pid));
}

static void test_adopt_by_marker(void **state)
{
	struct fixture *f = *state;
	uint64_t start = 0;
	int pid = start_then_abandon(f, &start);
	assert_int_equal(drv_adopt(f->d2, "api", 4, 0, 0), -ESRCH);
	assert_int_equal(drv_adopt(f->d2, "other", 3, 0, 0), -ESRCH);
	assert_int_equal(drv_adopt(f->d2, "api", 3, 0, 0), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 2, 3000));
	assert_int_equal(f->pid, pid);
	/* It dies by itself: reported too. */
	kill(-pid, SIGKILL);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_string_equal(f->cause, "killed by SIGKILL");
}

/* The claim file's content: pid and start time, or 0 0 when there is none. */
static int read_claim(struct fixture *f, const char *name, uint64_t *start)
{
	char path[160];
	snprintf(path, sizeof path, "%s/run/%s.pid", f->dir, name);
	FILE *fp = fopen(path, "r");
	int pid = 0;
	unsigned long long st = 0;
	if (fp != NULL) {
		if (fscanf(fp, "%d %llu", &pid, &st) != 2)
			pid = -1;
		fclose(fp);
	}
	*start = st;
	return pid;
}

/* Issue 12: an instance whose program rewrote its environment (nginx, redis set their process
 * titles over it) and that the daemon had not recorded yet is found again by its claim file,
 * which its own process made before the exec; a start made again adopts it: no duplicate. */
static void test_adopt_by_claim(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"env", "-i", "sleep", "30", NULL}; /* the program runs without the marker */
	assert_int_equal(start_cmd(f, f->d, "web", 5, argv, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	int pid = f->pid;
	uint64_t start = 0, cstart = 0;
	assert_int_equal(drv_local_proc_start(pid, &start), 0);
	assert_int_equal(read_claim(f, "web-5", &cstart), pid);
	assert_true(cstart == start);
	uvt_spin(&f->loop, 100); /* env has exec'd sleep: nothing of the marker is left */
	drv_close(f->d);
	f->d = NULL;
	uvt_spin(&f->loop, 20);
	struct scan_hit none = {0};
	assert_int_equal(drv_local_scan(f->dir, scan_cb, &none), 0);

	struct drv_callbacks cb = callbacks(f);
	assert_int_equal(drv_local_new(&f->loop, f->dir, &cb, &f->d2), 0);
	if (no_pidfd)
		drv_local_no_pidfd(f->d2);
	assert_int_equal(drv_adopt(f->d2, "web", 5, 0, 0), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 2, 3000));
	assert_int_equal(f->pid, pid);
	drv_close(f->d2);
	f->d2 = NULL;

	/* a third daemon is asked to start it again: the live claim makes that an adoption */
	assert_int_equal(drv_local_new(&f->loop, f->dir, &cb, &f->d), 0);
	if (no_pidfd)
		drv_local_no_pidfd(f->d);
	assert_int_equal(start_cmd(f, f->d, "web", 5, argv, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 3, 3000));
	assert_int_equal(f->pid, pid);
	assert_int_equal(n_pids, 3); /* the same process each time */
	assert_true(pids[1] == pid && pids[2] == pid);

	/* seen to exit: the claim goes */
	assert_int_equal(drv_stop(f->d, "web", 5, SIGTERM, 2000), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	assert_int_equal(read_claim(f, "web-5", &cstart), 0);
}

/* A claim left by a process that is gone does not stop a start, nor make an adoption. */
static void test_stale_claim(void **state)
{
	struct fixture *f = *state;
	char path[160];
	snprintf(path, sizeof path, "%s/run", f->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/run/web-6.pid", f->dir);
	FILE *fp = fopen(path, "w");
	fprintf(fp, "%d 12345\n", (int)getpid()); /* a live pid, but not started then */
	fclose(fp);
	assert_int_equal(drv_adopt(f->d, "web", 6, 0, 0), -ESRCH);
	fp = fopen(path, "w");
	fprintf(fp, "999999999\n");
	fclose(fp);
	char *argv[] = {"sleep", "30", NULL};
	assert_int_equal(start_cmd(f, f->d, "web", 6, argv, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->started, 1, 3000));
	assert_true(f->pid != getpid());
	uint64_t cstart;
	assert_int_equal(read_claim(f, "web-6", &cstart), f->pid);
	assert_int_equal(drv_stop(f->d, "web", 6, SIGKILL, 0), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
}

/* A daemon started with stdin closed (some supervisors do): the log file the driver opens comes
 * back as fd 0, and the instance's output must still reach its log (not /dev/null). */
static void test_std_fds_closed(void **state)
{
	struct fixture *f = *state;
	int save = dup(0);
	close(0);
	char *argv[] = {"sh", "-c", "echo to-stdout; echo to-stderr >&2; cat; echo stdin-done", NULL};
	assert_int_equal(start_cmd(f, f->d, "job", 9, argv, NULL, 0, NULL, 1), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 1, 3000));
	uvt_spin(&f->loop, 50);
	if (fcntl(0, F_GETFD) < 0) /* the driver's own descriptors may sit at 0 meanwhile */
		dup2(save, 0);
	close(save);
	assert_string_equal(f->cause, "exited with status 0");
	char buf[256];
	read_log(f, "job", 9, buf, sizeof buf);
	assert_non_null(strstr(buf, "to-stdout\nto-stderr\nstdin-done\n"));
}

static void test_close_in_callback(void **state)
{
	struct fixture *f = *state;
	/* Two reports due; the first callback closes the driver: no second report, clean close. */
	f->close_on_exit = true;
	assert_int_equal(drv_stop(f->d, "a", 1, SIGTERM, 0), 0);
	assert_int_equal(drv_stop(f->d, "b", 1, SIGTERM, 0), 0);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(f->exited, 1);
	assert_null(f->d);
}

/* ---- the fake ---- */

static void test_fake(void **state)
{
	struct fixture *f = *state;
	struct drv *d;
	struct drv_callbacks cb = callbacks(f);
	assert_int_equal(drv_fake_new(NULL, &cb, &d), 0);
	char *argv[] = {"x", NULL};
	struct spec_template t = {.command = argv, .n_command = 1};
	struct drv_start req = {.service = "s", .id = 1, .revision = 2, .tmpl = &t, .port = 7, .log_dir = "/x"};
	assert_int_equal(drv_start(d, &req), 0);
	assert_int_equal(drv_start(d, &req), -EEXIST);
	assert_int_equal(f->started, 0);
	assert_int_equal(drv_fake_flush(d), 1);
	assert_int_equal(f->started, 1);
	assert_int_equal(drv_fake_running(d), 1);
	int pid;
	assert_int_equal(drv_proc_info(d, "s", 1, &pid, NULL), 0);
	assert_int_equal(pid, f->pid);
	assert_int_equal(drv_stop(d, "s", 1, SIGTERM, 10), 0);
	assert_int_equal(drv_fake_flush(d), 1);
	assert_string_equal(f->cause, "stopped");
	assert_int_equal(drv_fake_running(d), 0);

	drv_fake_set_auto(d, false, false);
	drv_fake_fail_next_start(d, -EIO);
	assert_int_equal(drv_start(d, &req), -EIO);
	assert_int_equal(drv_start(d, &req), 0);
	assert_int_equal(drv_fake_flush(d), 0);
	drv_fake_started(d, "s", 1, 42);
	drv_fake_exited(d, "s", 1, "crashed");
	assert_int_equal(drv_fake_flush(d), 2);
	assert_int_equal(f->pid, 42);
	assert_string_equal(f->cause, "crashed");

	drv_fake_add_process(d, "s", 5, 77, 1234);
	assert_int_equal(drv_adopt(d, "s", 5, 77, 1), -ESRCH);
	assert_int_equal(drv_adopt(d, "s", 5, 77, 1234), 0);
	assert_int_equal(drv_fake_flush(d), 1);
	assert_int_equal(f->pid, 77);

	assert_int_equal(drv_fake_ncalls(d), 7);
	const struct drv_fake_call *c = drv_fake_call_at(d, 2);
	assert_int_equal(c->op, DRV_FAKE_STOP);
	assert_int_equal(c->signo, SIGTERM);
	assert_int_equal(c->grace_ms, 10);
	assert_int_equal(drv_fake_call_at(d, 0)->port, 7);
	assert_null(drv_fake_call_at(d, 7));
	drv_close(d);

	/* With a loop: reports come from the loop. */
	assert_int_equal(drv_fake_new(&f->loop, &cb, &d), 0);
	assert_int_equal(drv_stop(d, "s", 9, SIGTERM, 10), 0);
	assert_true(uvt_run_until(&f->loop, &f->exited, 3, 1000));
	assert_string_equal(f->cause, "not running");
	drv_close(d);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_env_argv_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_rendered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_term_ignored_is_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status_and_log_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_std_fds_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fake, setup, teardown),
	};
	/* The process tests again, watching without pidfds. */
	const struct CMUnitTest polled[] = {
		cmocka_unit_test_setup_teardown(test_start_env_argv_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_rendered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_term_ignored_is_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status_and_log_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_by_claim, setup, teardown),
	};
	int failed = cmocka_run_group_tests_name("pidfd", tests, NULL, NULL);
	no_pidfd = true;
	failed += cmocka_run_group_tests_name("no pidfd", polled, NULL, NULL);
	return failed;
}
