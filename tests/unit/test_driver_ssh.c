/* Unit tests of the ssh driver: drv_ssh_quote makes one shell word of any string, checked by a real
 * /bin/sh reading it back byte for byte; and exec, staging and the bound across hosts against a fake
 * `ssh` first in PATH that runs the remote command line with sh on this machine (each "host" a
 * directory) and logs when each session begins and ends. (Real sshd: tests/e2e/t_fleet_*.sh.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "uvtest.h"

#include "driver/driver.h"
#include "util/xmalloc.h"

static void test_quote_shapes(void **state)
{
	(void)state;
	struct {
		const char *in, *want;
	} cases[] = {
	    {"", "''"},
	    {"abc", "'abc'"},
	    {"it's", "'it'\\''s'"},
	    {"'", "''\\'''"},
	    {"$(x) `y` \"z\"", "'$(x) `y` \"z\"'"},
	    {"a\nb", "'a\nb'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *q = drv_ssh_quote(cases[i].in);
		assert_string_equal(q, cases[i].want);
		free(q);
	}
}

/* What /bin/sh makes of `printf %s WORD`: the word's value. New string. */
static char *sh_value(const char *word)
{
	char path[] = "/tmp/test_driver_ssh.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	char *script = xasprintf("printf %%s %s >%s", word, path);
	FILE *p = popen("/bin/sh", "w");
	assert_non_null(p);
	fputs(script, p);
	assert_int_equal(pclose(p), 0);
	free(script);
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	unlink(path);
	assert_true(n >= 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void test_quote_round_trip(void **state)
{
	(void)state;
	const char *corpus[] = {
	    "; touch /tmp/rollout-canary-unit",
	    "$(touch /tmp/rollout-canary-unit)",
	    "`touch /tmp/rollout-canary-unit`",
	    "' ; touch /tmp/rollout-canary-unit ; '",
	    "\" ; touch /tmp/rollout-canary-unit ; \"",
	    "a\ntouch /tmp/rollout-canary-unit\n",
	    "-rf",
	    "--help",
	    "\\'$(id)\\'",
	    "'\"'\"'",
	    " ",
	    "$PATH ${HOME} $1 $$",
	    "x|y&z>w<v",
	    "*",
	    "~",
	    "#comment",
	    "%s%n",
	    "''''",
	    "\\",
	    "\t\r",
	};
	unlink("/tmp/rollout-canary-unit");
	for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
		char *q = drv_ssh_quote(corpus[i]);
		char *got = sh_value(q);
		assert_string_equal(got, corpus[i]);
		free(got);
		free(q);
	}
	assert_int_not_equal(access("/tmp/rollout-canary-unit", F_OK), 0);
}

static void test_host_lost_without_driver(void **state)
{
	(void)state;
	struct spec_target t = {.url = "ssh://u@h", .user = "u", .host = "h", .port = 22};
	assert_false(drv_ssh_host_lost(NULL, &t));
	assert_false(drv_ssh_host_key_failed(NULL, &t));
}

/* ---- the driver against a fake ssh ---- */

static const char fake_ssh[] =
    "#!/bin/sh\n"
    "while [ \"$#\" -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n"
    "shift; host=$1; remote=$2\n"
    "case \"$host\" in down*) echo \"ssh: connect to host $host port 22: Connection refused\" >&2; exit 255;; esac\n"
    /* flip*: down until the file rekeyed exists, then answering with another host key */
    "case \"$host\" in flip*) [ -e \"$FAKE_SSH_DIR/rekeyed\" ] &&\n"
    "  { echo 'Host key verification failed.' >&2; exit 255; }\n"
    "  echo \"ssh: connect to host $host port 22: Connection refused\" >&2; exit 255;; esac\n"
    "mkdir -p \"$FAKE_SSH_DIR/homes/$host\"\n"
    "echo \"$(date +%s%N) + $host\" >>\"$FAKE_SSH_DIR/log\"\n"
    "ROLLOUT_HOME=\"$FAKE_SSH_DIR/homes/$host\" sh -c \"$remote\"\n"
    "rc=$?\n"
    "echo \"$(date +%s%N) - $host\" >>\"$FAKE_SSH_DIR/log\"\n"
    "exit $rc\n";

struct fx {
	uv_loop_t loop;
	struct drv *d;
	char dir[64];
	int n_done;
	int status[8];
	char detail[8][256];
	int n_staged, st_ok, st_failed, st_skipped;
	char st_first[256];
	int n_host_key;
	char host_key[256];
};

static void on_started(void *ctx, const char *service, uint64_t id, int pid)
{
	(void)ctx, (void)service, (void)id, (void)pid;
}

static void on_exited(void *ctx, const char *service, uint64_t id, const char *cause)
{
	(void)ctx, (void)service, (void)id, (void)cause;
}

static void on_host_key(void *ctx, const char *user, const char *host, int port, const char *detail)
{
	struct fx *f = ctx;
	snprintf(f->host_key, sizeof f->host_key, "%s@%s:%d: %s", user, host, port, detail);
	f->n_host_key++;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/test_driver_ssh.XXXXXX");
	if (f == NULL || mkdtemp(f->dir) == NULL || uv_loop_init(&f->loop) != 0)
		return -1;
	char *bin = xasprintf("%s/bin", f->dir), *ssh = xasprintf("%s/bin/ssh", f->dir);
	mkdir(bin, 0700);
	FILE *fp = fopen(ssh, "w");
	if (fp == NULL)
		return -1;
	fputs(fake_ssh, fp);
	fclose(fp);
	chmod(ssh, 0755);
	char *path = xasprintf("%s:%s", bin, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	setenv("FAKE_SSH_DIR", f->dir, 1);
	unsetenv("ROLLOUT_SSH_CONFIG");
	free(path);
	free(ssh);
	free(bin);
	struct drv_callbacks cb = {
	    .ctx = f, .started = on_started, .exited = on_exited, .host_key = on_host_key};
	if (drv_ssh_new(&f->loop, f->dir, "/bin/true", &cb, &f->d) != 0)
		return -1;
	drv_ssh_set_poll_ms(f->d, 3600 * 1000); /* no watch sessions in these tests */
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	drv_close(f->d);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop);
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		rc = -1;
	free(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

struct call {
	struct fx *f;
	int i;
};

static void on_exec(void *arg, int status, const char *detail)
{
	struct call *c = arg;
	c->f->status[c->i] = status;
	snprintf(c->f->detail[c->i], sizeof c->f->detail[c->i], "%s", detail);
	c->f->n_done++;
}

static struct spec_target target(const char *host)
{
	return (struct spec_target){.url = "ssh://u@h", .user = "u", .host = (char *)host, .port = 22};
}

/* The most hosts that had a session open at once, from the fake's log. */
static int max_hosts_at_once(const char *dir)
{
	char *path = xasprintf("%s/log", dir);
	FILE *fp = fopen(path, "r");
	free(path);
	assert_non_null(fp);
	struct {
		unsigned long long t;
		char sign;
		char host[32];
	} ev[512];
	int n = 0;
	while (n < 512 && fscanf(fp, "%llu %c %31s", &ev[n].t, &ev[n].sign, ev[n].host) == 3)
		n++;
	fclose(fp);
	/* the log is in order of writing; equal stamps cannot reorder an end before its own start */
	char hosts[16][32];
	int open[16] = {0}, nh = 0, now = 0, most = 0;
	for (int i = 0; i < n; i++) {
		int k;
		for (k = 0; k < nh && strcmp(hosts[k], ev[i].host) != 0; k++)
			;
		if (k == nh)
			snprintf(hosts[nh++], sizeof hosts[0], "%s", ev[i].host);
		if (ev[i].sign == '+') {
			if (open[k]++ == 0)
				now++;
		} else if (--open[k] == 0) {
			now--;
		}
		most = now > most ? now : most;
	}
	return most;
}

/* Exec on five hosts with at most two active at once: each runs on its own host (a file only
 * there), PORT and HOST set, and never more than two hosts have sessions at once. */
static void test_exec_parallel_bound(void **state)
{
	struct fx *f = *state;
	drv_ssh_set_parallel(f->d, 2);
	const char *names[] = {"h1", "h2", "h3", "h4", "h5"};
	struct spec_target t[5];
	struct call calls[5];
	for (int i = 0; i < 5; i++) {
		t[i] = target(names[i]);
		char *home = xasprintf("%s/homes/%s", f->dir, names[i]), *cmd;
		cmd = xasprintf("mkdir -p %s && echo %s >%s/here", home, names[i], home);
		assert_int_equal(system(cmd), 0);
		free(cmd);
		free(home);
	}
	char *argv[] = {"sh", "-c", "sleep 0.2; test \"$(cat here)\" = \"$HOST\" && test \"$PORT\" = 7000 && test \"$HOST\" != h5",
			NULL};
	for (int i = 0; i < 5; i++) {
		struct drv_exec x = {.target = &t[i], .argv = argv, .n_argv = 3, .port = 7000, .host = names[i],
				     .timeout_ms = 5000};
		calls[i] = (struct call){f, i};
		struct drv_req *req;
		assert_int_equal(drv_exec(f->d, &x, on_exec, &calls[i], &req), 0);
	}
	assert_int_equal(f->n_done, 0); /* never from inside the call */
	assert_true(uvt_run_until(&f->loop, &f->n_done, 5, 20000));
	for (int i = 0; i < 4; i++)
		assert_int_equal(f->status[i], 0);
	assert_int_equal(f->status[4], 1);
	assert_string_equal(f->detail[4], "exit status 1 on u@h5:22");
	assert_int_equal(max_hosts_at_once(f->dir), 2);
}

static void test_exec_timeout_lost_cancel(void **state)
{
	struct fx *f = *state;
	struct spec_target up = target("h1"), down = target("down1");
	char *slow[] = {"sleep", "5", NULL};
	struct drv_exec x = {.target = &up, .argv = slow, .n_argv = 2, .port = 1, .host = "h1", .timeout_ms = 300};
	struct call c0 = {f, 0}, c1 = {f, 1}, c2 = {f, 2}, c3 = {f, 3};
	struct drv_req *req;
	uint64_t t0 = uvt_now_ms();
	assert_int_equal(drv_exec(f->d, &x, on_exec, &c0, &req), 0);
	assert_true(uvt_run_until(&f->loop, &f->n_done, 1, 5000));
	assert_int_equal(f->status[0], -ETIMEDOUT);
	assert_string_equal(f->detail[0], "timed out after 300ms on u@h1:22");
	assert_true(uvt_now_ms() - t0 < 3000);

	/* a host that cannot be reached: the probe fails, then fails at once while it is lost */
	x.target = &down;
	assert_int_equal(drv_exec(f->d, &x, on_exec, &c1, &req), 0);
	assert_true(uvt_run_until(&f->loop, &f->n_done, 2, 10000));
	assert_int_equal(f->status[1], -EHOSTUNREACH);
	assert_true(drv_ssh_host_lost(f->d, &down));
	assert_int_equal(drv_exec(f->d, &x, on_exec, &c2, &req), 0);
	assert_int_equal(f->n_done, 2);
	assert_true(uvt_run_until(&f->loop, &f->n_done, 3, 1000));
	assert_int_equal(f->status[2], -EHOSTUNREACH);

	/* cancelled while it runs: no callback, ever (the spin outlasts the command, which the fake's
	 * sh runs on after its ssh was killed, as a real host would until its timeout) */
	char *second[] = {"sleep", "1", NULL};
	x.target = &up;
	x.argv = second;
	x.timeout_ms = 5000;
	assert_int_equal(drv_exec(f->d, &x, on_exec, &c3, &req), 0);
	uvt_spin(&f->loop, 300);
	drv_cancel(f->d, req);
	uvt_spin(&f->loop, 1200);
	assert_int_equal(f->n_done, 3);
}

/* A host lost as unreachable whose key then changed (found by its re-check, with no instance left
 * there to carry the cause): the host_key callback says so, from the loop, once per finding. */
static void test_host_key_found_on_recheck(void **state)
{
	struct fx *f = *state;
	struct spec_target t = target("flip1");
	char *argv[] = {"true", NULL};
	struct drv_exec x = {
	    .target = &t, .argv = argv, .n_argv = 1, .port = 1, .host = "flip1", .timeout_ms = 5000};
	struct call c0 = {f, 0};
	struct drv_req *req;
	assert_int_equal(drv_exec(f->d, &x, on_exec, &c0, &req), 0);
	assert_true(uvt_run_until(&f->loop, &f->n_done, 1, 10000));
	assert_int_equal(f->status[0], -EHOSTUNREACH);
	assert_true(drv_ssh_host_lost(f->d, &t));
	assert_false(drv_ssh_host_key_failed(f->d, &t));
	assert_int_equal(f->n_host_key, 0);

	char *flag = xasprintf("%s/rekeyed", f->dir);
	FILE *fp = fopen(flag, "w");
	assert_non_null(fp);
	fclose(fp);
	free(flag);
	drv_ssh_check_lost(f->d, &t);
	assert_int_equal(f->n_host_key, 0); /* never from inside the call */
	assert_true(uvt_run_until(&f->loop, &f->n_host_key, 1, 10000));
	assert_string_equal(f->host_key, "u@flip1:22: the host's key is not the one in known_hosts");
	assert_true(drv_ssh_host_key_failed(f->d, &t));

	/* found again: not said again */
	drv_ssh_check_lost(f->d, &t);
	uvt_spin(&f->loop, 1000);
	assert_int_equal(f->n_host_key, 1);
	assert_true(drv_ssh_host_key_failed(f->d, &t));
}

static void on_staged(void *ctx, const char *service, int revision, const char *version, int n_ok, int n_failed,
		      int n_skipped, int64_t ms, const char *first_failure)
{
	struct fx *f = ctx;
	assert_string_equal(service, "web");
	assert_int_equal(revision, 2);
	assert_string_equal(version, "v2");
	assert_true(ms >= 0);
	f->st_ok = n_ok;
	f->st_failed = n_failed;
	f->st_skipped = n_skipped;
	snprintf(f->st_first, sizeof f->st_first, "%s", first_failure ? first_failure : "");
	f->n_staged++;
}

/* Staging: the install hook once on each host ({host} {version} replaced), a failure and an
 * unreachable host counted apart; a second call for the same revision does nothing. */
static void test_stage(void **state)
{
	struct fx *f = *state;
	struct spec_target t[3] = {target("h1"), target("h2"), target("down1")};
	char *install[] = {"sh", "-c", "echo \"$1 $2\" >>staged; test \"$1\" != h2", "sh", "{host}", "{version}", NULL};
	struct spec_template tmpl = {.version = "v2"};
	tmpl.hooks[SPEC_HOOK_INSTALL] = install;
	tmpl.n_hooks[SPEC_HOOK_INSTALL] = 6;
	assert_int_equal(drv_ssh_stage(f->d, "web", 2, &tmpl, t, 3, false, on_staged, f), 1);
	assert_int_equal(drv_ssh_stage(f->d, "web", 2, &tmpl, t, 3, false, on_staged, f), 0);
	assert_true(uvt_run_until(&f->loop, &f->n_staged, 1, 10000));
	assert_int_equal(f->st_ok, 1);
	assert_int_equal(f->st_failed, 1);
	assert_int_equal(f->st_skipped, 1);
	assert_string_equal(f->st_first, "install hook failed (exit status 1)");
	for (int i = 1; i <= 2; i++) {
		char *path = xasprintf("%s/homes/h%d/staged", f->dir, i), *want = xasprintf("h%d v2\n", i);
		char buf[64] = "";
		FILE *fp = fopen(path, "r");
		assert_non_null(fp);
		size_t n = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		assert_string_equal(buf, want);
		free(path);
		free(want);
	}
	assert_int_equal(drv_ssh_stage(f->d, "web", 2, &tmpl, t, 3, false, on_staged, f), 0);
	/* an install hook about one instance ({port}) is not staged */
	char *per_port[] = {"echo", "{port}", NULL};
	tmpl.hooks[SPEC_HOOK_INSTALL] = per_port;
	tmpl.n_hooks[SPEC_HOOK_INSTALL] = 2;
	assert_int_equal(drv_ssh_stage(f->d, "web", 3, &tmpl, t, 3, false, on_staged, f), 0);
	uvt_spin(&f->loop, 50);
	assert_int_equal(f->n_staged, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote_shapes),
	    cmocka_unit_test(test_quote_round_trip),
	    cmocka_unit_test(test_host_lost_without_driver),
	    cmocka_unit_test_setup_teardown(test_exec_parallel_bound, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_exec_timeout_lost_cancel, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_stage, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_host_key_found_on_recheck, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
