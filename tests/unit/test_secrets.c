/* Unit tests for the secrets file (src/store/secrets.c): round trip, modes, a missing or damaged
 * file, names that are not service names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/secrets.h"
#include "util/xmalloc.h"

struct fx {
	char root[64];
	char *dir;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	snprintf(f->root, sizeof f->root, "/tmp/test-secrets.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->dir = xasprintf("%s/secrets", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->dir);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	struct secrets x = {0}, y = {0};
	assert_int_equal(secrets_load(f->dir, "web", &y), -ENOENT);
	struct spec_secrets a = {0}, b = {0};
	spec_secret_set(&a, "TOKEN", "s3cr3t with spaces\nand a newline \xc3\xa9");
	spec_secret_set(&a, "EMPTY", "");
	spec_secret_set(&b, "TOKEN", "other");
	secrets_put(&x, 3, &b);
	secrets_put(&x, 1, &a);
	secrets_put(&x, 3, &a); /* replaces */
	secrets_put(&x, 3, &b);
	assert_int_equal(x.n, 2);
	assert_int_equal(secrets_save(f->dir, "web", &x), 0);

	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char *path = xasprintf("%s/web", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(secrets_load(f->dir, "web", &y), 0);
	assert_int_equal(y.n, 2);
	assert_null(secrets_get(&y, 2));
	const struct spec_secrets *g1 = secrets_get(&y, 1), *g3 = secrets_get(&y, 3);
	assert_non_null(g1);
	assert_non_null(g3);
	assert_int_equal(g1->n, 2);
	assert_string_equal(spec_secret_get(g1, "TOKEN"), "s3cr3t with spaces\nand a newline \xc3\xa9");
	assert_string_equal(spec_secret_get(g1, "EMPTY"), "");
	assert_int_equal(g3->n, 1);
	assert_string_equal(spec_secret_get(g3, "TOKEN"), "other");

	/* The value is not in the file as written: hex. */
	char buf[4096];
	FILE *fp = fopen(path, "r");
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	assert_null(strstr(buf, "s3cr3t"));
	assert_non_null(strstr(buf, "1 TOKEN 733363723374"));

	/* A second save keeps the mode even over a temporary file left with another. */
	char *tmp = xasprintf("%s/.web.tmp", f->dir);
	write_file(tmp, "junk");
	assert_int_equal(chmod(tmp, 0644), 0);
	assert_int_equal(secrets_save(f->dir, "web", &y), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	free(tmp);
	free(path);
	spec_secret_clear(&a);
	spec_secret_clear(&b);
	secrets_clear(&x);
	secrets_clear(&y);
	secrets_clear(&y);
	secrets_clear(NULL);
}

static void test_damaged(void **state)
{
	struct fx *f = *state;
	struct secrets x = {0};
	assert_int_equal(secrets_save(f->dir, "web", &x), 0);
	assert_int_equal(secrets_load(f->dir, "web", &x), 0);
	assert_int_equal(x.n, 0);
	char *path = xasprintf("%s/web", f->dir);
	const char *bad[] = {
		"not a secrets file\n",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n1 TOKEN 6",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n1 TOKEN 6g\n",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n0 TOKEN 61\n",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n1 9X 61\n",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n1 T 0061\n",
		"# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n1 T 61", /* no newline */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(path, bad[i]);
		assert_int_equal(secrets_load(f->dir, "web", &x), -EBADMSG);
		assert_int_equal(x.n, 0);
	}
	write_file(path, "# rollout secrets v1: revision, env name, value (hex). Keep this file 0600.\n12 T_1 6162\n");
	assert_int_equal(secrets_load(f->dir, "web", &x), 0);
	assert_string_equal(spec_secret_get(secrets_get(&x, 12), "T_1"), "ab");
	secrets_clear(&x);
	free(path);
}

static void test_bad_service(void **state)
{
	struct fx *f = *state;
	struct secrets x = {0};
	const char *bad[] = {"", "../x", "a/b", ".web", "Web", NULL};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(secrets_save(f->dir, bad[i], &x), -EINVAL);
		assert_int_equal(secrets_load(f->dir, bad[i], &x), -EINVAL);
	}
	/* A directory that cannot be made: the error, not a crash. */
	assert_int_equal(secrets_save("/proc/nonexistent/secrets", "web", &x), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_service, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
