/* Unit tests for spec_secret (src/spec/spec_secret.c): redaction of secret env values in every YAML
 * style, other values untouched, the pairs, and the round trip redact -> parse -> fill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec_secret.h"
#include "spec/spec_yaml.h"
#include "util/xmalloc.h"

#define HEAD "service: web\nlisten: 127.0.0.1:8080\n"

/* Redacts yaml; checks every secret value is gone from the text (and each given one is a pair),
 * that the redacted text parses, and that filling it back gives the original template hash and
 * the original values. Returns the redacted text (caller frees). */
static char *round_trip(const char *yaml, const char *const *names, const char *const *values, size_t n)
{
	char *red = NULL;
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_redact(yaml, strlen(yaml), &red, &sec), 0);
	assert_non_null(red);
	assert_int_equal(sec.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(red, values[i]));
		assert_string_equal(spec_secret_get(&sec, names[i]), values[i]);
	}

	struct spec orig, back;
	struct spec_errors errs = {0};
	assert_int_equal(spec_parse(yaml, strlen(yaml), NULL, &orig, &errs), 0);
	int rc = spec_parse(red, strlen(red), NULL, &back, &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_message("  %s\n  in:\n%s\n", errs.v[i], red);
	assert_int_equal(rc, 0);
	assert_int_equal(spec_secret_missing(&back), n);
	if (n > 0)
		assert_int_not_equal(spec_template_hash(&back.tmpl), spec_template_hash(&orig.tmpl));
	assert_int_equal(spec_secret_fill(&back, &sec), 0);
	assert_int_equal(spec_secret_missing(&back), 0);
	assert_true(spec_template_hash(&back.tmpl) == spec_template_hash(&orig.tmpl));
	assert_int_equal(back.tmpl.n_env, orig.tmpl.n_env);
	for (size_t i = 0; i < orig.tmpl.n_env; i++) {
		assert_string_equal(back.tmpl.env[i].name, orig.tmpl.env[i].name);
		assert_string_equal(back.tmpl.env[i].value, orig.tmpl.env[i].value);
		assert_int_equal(back.tmpl.env[i].secret, orig.tmpl.env[i].secret);
	}
	/* split does the same checks itself. */
	char *red2 = NULL;
	struct spec_secrets sec2 = {0};
	assert_int_equal(spec_secret_split(yaml, strlen(yaml), &orig, &red2, &sec2), 0);
	assert_string_equal(red2, red);
	assert_int_equal(sec2.n, n);
	free(red2);
	spec_secret_clear(&sec2);
	spec_clear(&orig);
	spec_clear(&back);
	spec_errors_clear(&errs);
	spec_secret_clear(&sec);
	return red;
}

static void test_flow(void **state)
{
	(void)state;
	const char *y = HEAD "template:\n  version: \"1\"\n  command: [./web]\n"
			"  env: {GREETING: hi, TOKEN: {value: s3cr3t, secret: true}, B: {value: b, secret: false}}\n";
	const char *names[] = {"TOKEN"}, *values[] = {"s3cr3t"};
	char *red = round_trip(y, names, values, 1);
	assert_string_equal(red, HEAD "template:\n  version: \"1\"\n  command: [./web]\n"
				      "  env: {GREETING: hi, TOKEN: {value: \"(secret)\", secret: true}, B: {value: b, "
				      "secret: false}}\n");
	free(red);
}

static void test_block_quoted_comments(void **state)
{
	(void)state;
	const char *y = HEAD "# the template\n"
			"template:\n"
			"  version: \"1\"\n"
			"  command: [./web]\n"
			"  env:\n"
			"    PLAIN: visible   # not secret\n"
			"    A:\n"
			"      secret: true   # flag first\n"
			"      value: 'it''s # not a comment'\n"
			"    B: {secret: True, value: \"d\\\"q\\u00e9\"}  # escapes\n"
			"    C:\n"
			"      value: \"multi\n"
			"        line\"\n"
			"      secret: TRUE\n"
			"    D:\n"
			"      value: plain\n"
			"        continued\n"
			"      secret: true\n"
			"    NOTSECRET: {value: keep-me, secret: false}\n"
			"    \"QUOTED_KEY\": {value: qk, secret: true}\n"
			"health: {tcp: {}}\n";
	const char *names[] = {"A", "B", "C", "D", "QUOTED_KEY"};
	const char *values[] = {"it's # not a comment", "d\"q\xc3\xa9", "multi line", "plain continued", "qk"};
	char *red = round_trip(y, names, values, 5);
	assert_non_null(strstr(red, "visible   # not secret\n"));
	assert_non_null(strstr(red, "keep-me"));
	assert_non_null(strstr(red, "# flag first\n      value: \"(secret)\"\n"));
	assert_non_null(strstr(red, "\"(secret)\"}  # escapes\n"));
	assert_null(strstr(red, "continued"));
	assert_null(strstr(red, "line\""));
	assert_non_null(strstr(red, "health: {tcp: {}}\n"));
	free(red);
}

static void test_block_scalars(void **state)
{
	(void)state;
	const char *y = HEAD "template:\n"
			"  version: \"1\"\n"
			"  command: [./web]\n"
			"  env:\n"
			"    KEY:\n"
			"      value: |\n"
			"        -----BEGIN KEY-----\n"
			"        abcdef\n"
			"\n"
			"      secret: true\n"
			"    FOLDED:\n"
			"      secret: true\n"
			"      value: >-\n"
			"        folded\n"
			"        words\n"
			"    KEEP:\n"
			"      secret: true\n"
			"      value: !!str |+\n"
			"        kept\n"
			"\n"
			"  workdir: /tmp\n";
	const char *names[] = {"FOLDED", "KEEP", "KEY"};
	const char *values[] = {"folded words", "kept\n\n", "-----BEGIN KEY-----\nabcdef\n"};
	char *red = round_trip(y, names, values, 3);
	assert_null(strstr(red, "BEGIN"));
	assert_null(strstr(red, "!!str"));
	assert_non_null(strstr(red, "  workdir: /tmp\n"));
	free(red);
}

/* Characters before the secret take several bytes: libyaml's marks count characters. */
static void test_utf8_and_bom(void **state)
{
	(void)state;
	const char *y = "\xEF\xBB\xBF" HEAD "template:\n  version: \"\xc3\xa9t\xc3\xa9 \xe2\x98\x83\"\n"
			"  command: [./web, \"\xf0\x9f\x90\x8d\"]\n"
			"  env: {\xc3\x89: x, TOKEN: {value: \"p\xc3\xa4ss\", secret: true}, Z: {value: \xe2\x98\x83, secret: true}}\n";
	/* É is not a variable name: spec_parse rejects it, but redaction is only about bytes. */
	char *red = NULL;
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_redact(y, strlen(y), &red, &sec), 0);
	assert_int_equal(sec.n, 2);
	assert_string_equal(spec_secret_get(&sec, "TOKEN"), "p\xc3\xa4ss");
	assert_string_equal(spec_secret_get(&sec, "Z"), "\xe2\x98\x83");
	assert_non_null(strstr(red, "{\xc3\x89: x, TOKEN: {value: \"(secret)\", secret: true}, Z: {value: \"(secret)\", "
				    "secret: true}}\n"));
	assert_non_null(strstr(red, "\"\xf0\x9f\x90\x8d\"]"));
	free(red);
	spec_secret_clear(&sec);

	const char *ok = HEAD "template:\n  version: \"\xc3\xa9t\xc3\xa9\"\n  command: [./\xe2\x98\x83]\n"
			 "  env: {TOKEN: {value: \"p\xc3\xa4ss\", secret: true}}\n";
	const char *names[] = {"TOKEN"}, *values[] = {"p\xc3\xa4ss"};
	free(round_trip(ok, names, values, 1));
}

/* Nothing secret: the text comes back byte for byte; "secret" elsewhere is not an env secret. */
static void test_untouched(void **state)
{
	(void)state;
	const char *y = HEAD "template:\n  version: \"1\"\n  command: [./web, secret]\n"
			"  env: {A: {value: a, secret: false}, B: \"(secret)\", C: {value: c, secret: \"true\"}}\n"
			"notify: [{url: \"http://127.0.0.1:9/x\", events: [failed]}]\n";
	char *red = NULL;
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_redact(y, strlen(y), &red, &sec), 0);
	assert_string_equal(red, y);
	assert_int_equal(sec.n, 0);
	free(red);
	/* env outside template is not a template env. */
	const char *y2 = "env: {T: {value: v, secret: true}}\ntemplate: {env: [a]}\n";
	assert_int_equal(spec_secret_redact(y2, strlen(y2), &red, &sec), 0);
	assert_string_equal(red, y2);
	free(red);
	/* A spec without secrets round-trips too. */
	const char *names[] = {NULL}, *values[] = {NULL};
	free(round_trip(HEAD "template: {version: \"1\", command: [./web], env: {A: b}}\n", names, values, 0));
}

static void test_bad_input(void **state)
{
	(void)state;
	const char *bad[] = {
		"a: [\n",
		"a: &x 1\nb: *x\n",
		"a: 1\n---\nb: 2\n",
		"a: \"\xff\"\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *red = (char *)1;
		struct spec_secrets sec = {0};
		assert_int_equal(spec_secret_redact(bad[i], strlen(bad[i]), &red, &sec), -EINVAL);
		assert_null(red);
		assert_int_equal(sec.n, 0);
	}
	/* UTF-16 (libyaml reads it after a byte order mark): its marks would not be UTF-8 offsets. */
	char *red = (char *)1;
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_redact("\xff\xfe" "a\0:\0 \0b\0", 10, &red, &sec), -EINVAL);
	assert_null(red);
	assert_int_equal(spec_secret_redact("", 0, &red, &sec), 0);
	assert_string_equal(red, "");
	free(red);
}

/* Fill: a missing name is an error, a value that is not the placeholder (a spec stored before
 * redaction) is kept, a non-secret "(secret)" is not touched. */
static void test_fill(void **state)
{
	(void)state;
	const char *y = HEAD "template:\n  version: \"1\"\n  command: [./web]\n"
			"  env: {A: {value: \"(secret)\", secret: true}, B: {value: old, secret: true}, C: \"(secret)\"}\n";
	struct spec s;
	struct spec_errors errs = {0};
	assert_int_equal(spec_parse(y, strlen(y), NULL, &s, &errs), 0);
	assert_int_equal(spec_secret_missing(&s), 1);
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_set(&sec, "B", "new"), 0);
	assert_int_equal(spec_secret_fill(&s, &sec), -ENOENT);
	assert_int_equal(spec_secret_set(&sec, "A", "first"), 0);
	assert_int_equal(spec_secret_set(&sec, "A", "a-value"), 0);
	assert_int_equal(sec.n, 2);
	assert_string_equal(sec.v[0].name, "A");
	assert_int_equal(spec_secret_fill(&s, &sec), 0);
	assert_string_equal(s.tmpl.env[0].value, "a-value");
	assert_string_equal(s.tmpl.env[1].value, "old");
	assert_string_equal(s.tmpl.env[2].value, "(secret)");
	struct spec_secrets cp = {0};
	spec_secret_copy(&cp, &sec);
	assert_int_equal(cp.n, 2);
	assert_string_equal(spec_secret_get(&cp, "B"), "new");
	assert_null(spec_secret_get(&cp, "C"));
	assert_int_equal(spec_secret_set(&cp, NULL, "x"), -EINVAL);
	spec_secret_clear(&cp);
	spec_secret_clear(&cp);
	spec_secret_clear(NULL);
	spec_secret_clear(&sec);
	spec_clear(&s);
}

/* split refuses a text whose parse does not match it (the check that guards what is stored). */
static void test_split_checks(void **state)
{
	(void)state;
	const char *y = HEAD "template: {version: \"1\", command: [./web], env: {T: {value: v1, secret: true}}}\n";
	const char *other = HEAD "template: {version: \"1\", command: [./web], env: {T: {value: v2, secret: true}}}\n";
	struct spec s;
	struct spec_errors errs = {0};
	assert_int_equal(spec_parse(y, strlen(y), NULL, &s, &errs), 0);
	char *red = NULL;
	struct spec_secrets sec = {0};
	assert_int_equal(spec_secret_split(other, strlen(other), &s, &red, &sec), -EINVAL);
	assert_null(red);
	assert_int_equal(sec.n, 0);
	assert_int_equal(spec_secret_split(y, strlen(y), &s, &red, &sec), 0);
	assert_null(strstr(red, "v1"));
	free(red);
	spec_secret_clear(&sec);
	spec_clear(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flow),	     cmocka_unit_test(test_block_quoted_comments),
		cmocka_unit_test(test_block_scalars), cmocka_unit_test(test_utf8_and_bom),
		cmocka_unit_test(test_untouched),    cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_fill),	     cmocka_unit_test(test_split_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
