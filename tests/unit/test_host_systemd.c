/* Unit tests of the systemd preset of `rollout host` (src/host/host_systemd.c): the template unit
 * passes `systemd-analyze verify` (real systemd's parser) and refuses paths systemd would read
 * otherwise; start and stop against a fake systemctl that runs the unit's ExecStart as systemd
 * would (host_systemd_run in a child with a bare environment), so the spec file is what the
 * instance gets: argv, environment (a secret in no unit file and no command line), workdir. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/host_systemd.h"
#include "util/xmalloc.h"

#define SECRET "s3cr3t-$(touch /tmp/x)-'\""

/* ---- the fake systemctl: one unit at a time, its main process a child of the test ---- */

static struct {
	char dir[256];
	char calls[2048]; /* "verb unit;" for each call */
	pid_t pid;
	int kill_ignored; /* the next n kill --signal=15 are ignored (a process that does not stop) */
} fk;

static bool alive(pid_t p)
{
	if (p <= 0)
		return false;
	int st;
	if (waitpid(p, &st, WNOHANG) == p)
		return false;
	return kill(p, 0) == 0;
}

static int fake_systemctl(char *const argv[], char *out, size_t len)
{
	int n = 0;
	while (argv[n] != NULL)
		n++;
	const char *unit = argv[n - 1];
	size_t l = strlen(fk.calls);
	snprintf(fk.calls + l, sizeof fk.calls - l, "%s%s%s;", argv[1], n > 3 && argv[2][0] == '-' ? " " : "",
		 n > 3 && argv[2][0] == '-' && strcmp(argv[1], "show") != 0 ? argv[2] : "");
	if (out != NULL && len > 0)
		out[0] = '\0';
	if (strcmp(argv[1], "show") == 0) {
		snprintf(out, len, "%d\n", alive(fk.pid) ? (int)fk.pid : 0);
	} else if (strcmp(argv[1], "start") == 0) {
		/* Like systemd: the name after '@' is %i; a bare environment; ExecStart = host run. */
		char name[128];
		const char *at = strchr(unit, '@');
		snprintf(name, sizeof name, "%.*s", (int)(strstr(at, ".service") - at - 1), at + 1);
		pid_t p = fork();
		if (p == 0) {
			setsid();
			clearenv();
			host_systemd_run(fk.dir, name, stderr);
			_exit(127);
		}
		fk.pid = p;
		usleep(100000);
		return alive(p) ? 0 : 1;
	} else if (strcmp(argv[1], "kill") == 0) {
		int sig = atoi(argv[2] + strlen("--signal="));
		if (sig == SIGTERM && fk.kill_ignored > 0)
			fk.kill_ignored--;
		else if (alive(fk.pid))
			kill(-fk.pid, sig);
	} else if (strcmp(argv[1], "stop") == 0 && alive(fk.pid)) {
		kill(-fk.pid, SIGKILL);
	}
	return 0;
}

static const struct host_systemd_ops fake = {fake_systemctl};

static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof fk);
	snprintf(fk.dir, sizeof fk.dir, "/tmp/test_host_systemd.XXXXXX");
	assert_non_null(mkdtemp(fk.dir));
	char *p = xasprintf("%s/run", fk.dir);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/logs", fk.dir);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/units", fk.dir);
	mkdir(p, 0755);
	setenv("ROLLOUT_SYSTEMD_DIR", p, 1);
	free(p);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (alive(fk.pid)) {
		kill(-fk.pid, SIGKILL);
		waitpid(fk.pid, NULL, 0);
	}
	char *cmd = xasprintf("rm -rf '%s'", fk.dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *b = xcalloc(1, 65536);
	size_t n = fread(b, 1, 65535, f);
	fclose(f);
	b[n] = '\0';
	return b;
}

static void test_unit_text(void **state)
{
	(void)state;
	char *t = host_systemd_unit_text("/usr/bin/true", "/srv/rollout");
	assert_non_null(t);
	assert_non_null(strstr(t, "ExecStart=/usr/bin/true host run --dir /srv/rollout --name %i\n"));
	assert_non_null(strstr(t, "StandardOutput=append:/srv/rollout/logs/%i.log\n"));
	/* systemd's own parser: no warning for the unit as instantiated. */
	char *tname = host_systemd_template("/srv/rollout");
	char *path = xasprintf("%s/%s", fk.dir, tname);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(t, f);
	fclose(f);
	char *inst = xasprintf("%s/%.*s@web-1.service", fk.dir, (int)(strchr(tname, '@') - tname), tname);
	char *cmd = xasprintf("systemd-analyze verify --man=no '%s' >'%s/verify.out' 2>&1", inst, fk.dir);
	int rc = system(cmd);
	char *vout = xasprintf("%s/verify.out", fk.dir);
	char *got = slurp(vout);
	if (rc != 0 || (got != NULL && got[0] != '\0'))
		fail_msg("systemd-analyze verify: rc %d: %s", rc, got ? got : "");
	free(got), free(vout), free(cmd), free(inst), free(path), free(tname), free(t);
	/* Paths systemd would read otherwise are refused, not written. */
	const char *bad[] = {"relative/x", "/a b", "/a%i", "/a;b", "/a$b", "/a\"b", "/a\\b", "/a\nb"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_null(host_systemd_unit_text(bad[i], "/srv/r"));
		assert_null(host_systemd_unit_text("/usr/bin/true", bad[i]));
	}
	/* One template per rollout directory. */
	char *a = host_systemd_template("/a"), *b = host_systemd_template("/b");
	assert_string_not_equal(a, b);
	free(a), free(b);
}

static void start_web(const char *script, int *pid)
{
	char *wd = xasprintf("%s/wd", fk.dir);
	mkdir(wd, 0755);
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	static const char env[] = "GREETING=hi\0TOKEN=" SECRET "\0PORT=1\0";
	struct host_systemd_start req = {.dir = fk.dir, .name = "web-7", .port = "8080", .workdir = wd,
					 .argv = argv, .argc = 3, .env = env, .env_len = sizeof env - 1};
	uint64_t start = 0;
	assert_int_equal(host_systemd_start(&fake, &req, stderr, pid, &start), 0);
	assert_int_equal(*pid, fk.pid);
	assert_true(start > 0);
	free(wd);
}

static void test_start_stop(void **state)
{
	(void)state;
	int pid = 0;
	start_web("echo \"$GREETING $TOKEN $PORT $ROLLOUT_INSTANCE $(pwd)\" >out; exec sleep 30", &pid);
	/* The template was installed (then daemon-reload), the instance started. */
	assert_non_null(strstr(fk.calls, "daemon-reload;"));
	assert_non_null(strstr(fk.calls, "start;"));
	char *out = xasprintf("%s/wd/out", fk.dir), *got = NULL;
	for (int i = 0; i < 100 && (got = slurp(out)) != NULL && got[0] == '\0'; i++) {
		free(got);
		got = NULL;
		usleep(20000);
	}
	char *want = xasprintf("hi %s 8080 web-7 %s/wd\n", SECRET, fk.dir);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got), free(want), free(out);
	/* The secret is in the 0600 spec file only: not in the unit, not in the pidfile. */
	char *specf = xasprintf("%s/run/web-7.spec", fk.dir);
	struct stat st;
	assert_int_equal(stat(specf, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *tname = host_systemd_template(fk.dir);
	char *unitf = xasprintf("%s/units/%s", fk.dir, tname);
	char *unit = slurp(unitf);
	assert_non_null(unit);
	assert_null(strstr(unit, "s3cr3t"));
	free(unit), free(unitf), free(tname), free(specf);
	char *pidf = xasprintf("%s/run/web-7.pid", fk.dir);
	char *pl = slurp(pidf);
	assert_non_null(pl);
	assert_int_equal(atoi(pl), pid);
	free(pl);
	assert_true(host_systemd_managed(fk.dir, "web-7"));

	/* A second start of a running instance is no duplicate. */
	fk.calls[0] = '\0';
	int pid2 = 0;
	start_web("exec sleep 30", &pid2);
	assert_int_equal(pid2, pid);
	assert_null(strstr(fk.calls, "start;"));

	const char *how = NULL;
	assert_int_equal(host_systemd_stop(&fake, fk.dir, "web-7", SIGTERM, 2000, &how), 0);
	assert_string_equal(how, "stopped");
	assert_false(alive(pid));
	assert_false(host_systemd_managed(fk.dir, "web-7"));
	assert_int_equal(access(pidf, F_OK), -1);
	free(pidf);
	assert_int_equal(host_systemd_stop(&fake, fk.dir, "web-7", SIGTERM, 2000, &how), 0);
	assert_string_equal(how, "not running");
}

static void test_stop_grace_kill(void **state)
{
	(void)state;
	int pid = 0;
	start_web("exec sleep 30", &pid);
	fk.kill_ignored = 1;
	const char *how = NULL;
	assert_int_equal(host_systemd_stop(&fake, fk.dir, "web-7", SIGTERM, 200, &how), 0);
	assert_string_equal(how, "killed after the grace period");
	assert_non_null(strstr(fk.calls, "kill --signal=9;"));
	assert_false(alive(pid));
}

static void test_start_failure(void **state)
{
	(void)state;
	char *argv[] = {"/nonexistent/web", NULL};
	struct host_systemd_start req = {.dir = fk.dir, .name = "web-8", .port = "8081", .argv = argv, .argc = 1};
	int pid = 0;
	uint64_t start = 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *err = open_memstream(&buf, &len);
	assert_int_not_equal(host_systemd_start(&fake, &req, err, &pid, &start), 0);
	fclose(err);
	assert_non_null(strstr(buf, "web-8"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unit_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_grace_kill, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_failure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
