/* Unit tests for util/log: a record is one line whatever its fields hold, values from outside
 * are escaped for logfmt (log_quote), and text for status reads on one line (log_one_line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"

/* Runs one log call with stderr sent to a temporary file; returns what was written (static). */
static const char *captured(void (*emit)(void))
{
	static char out[8192];
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	emit();
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, sizeof out - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_quote(void **state)
{
	(void)state;
	char buf[256];
	const char *in = "{\"error\":\"listen in use\"}\nnext\tline\r\x01 back\\slash";
	assert_string_equal(log_quote(in, strlen(in), buf, sizeof buf),
			    "{\\\"error\\\":\\\"listen in use\\\"}\\nnext\\tline\\r\\x01 back\\\\slash");
	/* n bounds the input; NULL is empty */
	assert_string_equal(log_quote("abcdef", 3, buf, sizeof buf), "abc");
	assert_string_equal(log_quote(NULL, 10, buf, sizeof buf), "");
	/* cut to fit at a whole escape, always terminated */
	char small[6];
	assert_string_equal(log_quote("ab\"cd", 5, small, sizeof small), "ab\\\"c");
	assert_string_equal(log_quote("abcd\n", 5, small, sizeof small), "abcd");
}

static void test_one_line(void **state)
{
	(void)state;
	char buf[256];
	const char *in = "the proxy refused (HTTP 409): {\"error\":\"x\"}\n";
	/* quotes stay, the trailing newline goes */
	assert_string_equal(log_one_line(in, strlen(in), buf, sizeof buf),
			    "the proxy refused (HTTP 409): {\"error\":\"x\"}");
	assert_string_equal(log_one_line("a\nb\x7f ", 10, buf, sizeof buf), "a\\nb\\x7f");
}

static void emit_raw(void)
{
	log_info("test", "msg=\"%s\" n=%d", "first\nsecond\r\nthird", 3);
}

static void emit_quoted(void)
{
	char q[256];
	const char *reply = "{\"error\":\"listen 127.0.0.1:8080: address already in use\"}\n";
	log_warn("lb", "service=web reply=\"%s\"", log_quote(reply, strlen(reply), q, sizeof q));
}

/* A caller that let a newline through still makes one line: the record cannot be forged into two. */
static void test_record_is_one_line(void **state)
{
	(void)state;
	log_set_json(0);
	const char *out = captured(emit_raw);
	assert_int_equal(lines(out), 1);
	assert_non_null(strstr(out, " level=info mod=test msg=\"first\\nsecond\\r\\nthird\" n=3\n"));
	out = captured(emit_quoted);
	assert_int_equal(lines(out), 1);
	assert_non_null(strstr(out, "service=web reply=\"{\\\"error\\\":\\\"listen 127.0.0.1:8080: address already in "
				    "use\\\"}\\n\"\n"));
	/* JSON mode: one object a line, the fields one JSON string */
	log_set_json(1);
	out = captured(emit_raw);
	log_set_json(0);
	assert_int_equal(lines(out), 1);
	assert_non_null(strstr(out, "\"fields\":\"msg=\\\"first\\u000asecond\\u000d\\u000athird\\\" n=3\"}\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_record_is_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
