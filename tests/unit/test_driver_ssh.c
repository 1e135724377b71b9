/* Unit tests of the ssh driver's quoting: drv_ssh_quote makes one shell word of any string, checked
 * by a real /bin/sh reading it back byte for byte. (The driver itself: tests/e2e/t_fleet_*.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quote_shapes),
	    cmocka_unit_test(test_quote_round_trip),
	    cmocka_unit_test(test_host_lost_without_driver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
