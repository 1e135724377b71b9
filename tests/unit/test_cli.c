/* Unit tests of the CLI's pure parts: option parsing, the table lookup and usage, exit statuses,
 * the output formatting, the SSE parser, and API calls and --wait over a fake transport. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/client.h"
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/xmalloc.h"

/* ---- a FILE that collects into a string ---- */

struct sink {
	FILE *f;
	char *buf;
	size_t len;
};

static void sink_open(struct sink *s)
{
	s->buf = NULL;
	s->len = 0;
	s->f = open_memstream(&s->buf, &s->len);
	assert_non_null(s->f);
}

static const char *sink_text(struct sink *s)
{
	fflush(s->f);
	return s->buf;
}

static void sink_close(struct sink *s)
{
	fclose(s->f);
	free(s->buf);
}

/* ---- options ---- */

enum { O_WAIT, O_TIMEOUT, O_OUT };
static const struct cmd_opt opts[] = {
    [O_WAIT] = {"--wait", NULL, false},
    [O_TIMEOUT] = {"--timeout", NULL, true},
    [O_OUT] = {"--output", "-o", true},
    {NULL},
};

static void test_args_basic(void **state)
{
	(void)state;
	char *argv[] = {"apply", "x.yaml", "--wait", "--timeout", "5m", "-o", "json", NULL};
	struct cmd_args a;
	assert_int_equal(cmd_args_parse(opts, 7, argv, &a), 0);
	assert_int_equal(a.npos, 1);
	assert_string_equal(a.pos[0], "x.yaml");
	assert_true(a.set[O_WAIT]);
	assert_true(a.set[O_TIMEOUT]);
	assert_string_equal(a.val[O_TIMEOUT], "5m");
	assert_string_equal(a.val[O_OUT], "json");
	assert_false(a.help);
}

static void test_args_forms(void **state)
{
	(void)state;
	char *argv[] = {"status", "--timeout=90s", "-ojson", "--", "--wait", NULL};
	struct cmd_args a;
	assert_int_equal(cmd_args_parse(opts, 5, argv, &a), 0);
	assert_string_equal(a.val[O_TIMEOUT], "90s");
	assert_string_equal(a.val[O_OUT], "json");
	assert_false(a.set[O_WAIT]); /* after "--" it is a positional */
	assert_int_equal(a.npos, 1);
	assert_string_equal(a.pos[0], "--wait");
}

static void test_args_errors(void **state)
{
	(void)state;
	struct cmd_args a;
	char *unknown[] = {"apply", "--bogus", NULL};
	assert_int_equal(cmd_args_parse(opts, 2, unknown, &a), -EINVAL);
	assert_non_null(strstr(a.err, "--bogus"));
	char *missing[] = {"apply", "--timeout", NULL};
	assert_int_equal(cmd_args_parse(opts, 2, missing, &a), -EINVAL);
	assert_non_null(strstr(a.err, "needs a value"));
	char *flagval[] = {"apply", "--wait=yes", NULL};
	assert_int_equal(cmd_args_parse(opts, 2, flagval, &a), -EINVAL);
	char *many[] = {"x", "1", "2", "3", "4", "5", "6", "7", "8", "9", NULL};
	assert_int_equal(cmd_args_parse(opts, 10, many, &a), -EINVAL);
	char *help[] = {"apply", "-h", NULL};
	assert_int_equal(cmd_args_parse(opts, 2, help, &a), 0);
	assert_true(a.help);
	char *dash[] = {"apply", "-", NULL}; /* a lone dash is a positional (stdin) */
	assert_int_equal(cmd_args_parse(opts, 2, dash, &a), 0);
	assert_int_equal(a.npos, 1);
}

static void test_take_global(void **state)
{
	(void)state;
	const char *data = NULL;
	char *argv1[] = {"rollout", "--data", "/d1", "status", "hello", NULL};
	int argc = 5;
	assert_int_equal(cmd_take_global(&argc, argv1, &data), 0);
	assert_int_equal(argc, 3);
	assert_string_equal(data, "/d1");
	assert_string_equal(argv1[1], "status");
	assert_string_equal(argv1[2], "hello");
	assert_null(argv1[3]);

	char *argv2[] = {"rollout", "status", "hello", "--data=/d2", NULL};
	argc = 4;
	assert_int_equal(cmd_take_global(&argc, argv2, &data), 0);
	assert_int_equal(argc, 3);
	assert_string_equal(data, "/d2");

	char *argv3[] = {"rollout", "status", "--data", NULL};
	argc = 3;
	assert_int_equal(cmd_take_global(&argc, argv3, &data), -EINVAL);

	char *argv4[] = {"rollout", "x", "--", "--data", "y", NULL};
	argc = 5;
	data = NULL;
	assert_int_equal(cmd_take_global(&argc, argv4, &data), 0);
	assert_null(data);
	assert_int_equal(argc, 5);
}

static void test_data_dir(void **state)
{
	(void)state;
	assert_string_equal(cmd_data_dir("/flag", "/env"), "/flag");
	assert_string_equal(cmd_data_dir(NULL, "/env"), "/env");
	assert_string_equal(cmd_data_dir(NULL, ""), "./.rollout");
	assert_string_equal(cmd_data_dir(NULL, NULL), "./.rollout");
}

static int nop_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	return 0;
}

static const struct cmd_entry e_one = {"one", "FILE [--wait]", "does one", nop_exec};
static const struct cmd_entry e_two = {"two", "", "does two", nop_exec};

static void test_table(void **state)
{
	(void)state;
	const struct cmd_entry *const table[] = {&e_one, &e_two};
	assert_ptr_equal(cmd_find(table, 2, "two"), &e_two);
	assert_null(cmd_find(table, 2, "three"));
	assert_null(cmd_find(table, 2, "on"));
	struct sink s;
	sink_open(&s);
	cmd_print_usage(s.f, table, 2);
	const char *t = sink_text(&s);
	assert_non_null(strstr(t, "  one FILE [--wait]  does one\n"));
	assert_non_null(strstr(t, "  two                does two\n"));
	sink_close(&s);
}

static void test_parse_verb(void **state)
{
	(void)state;
	struct sink out, err;
	sink_open(&out);
	sink_open(&err);
	struct cmd_ctx ctx = {.out = out.f, .err = err.f, .entry = &e_one};
	struct cmd_args a;
	char *ok[] = {"one", "f.yaml", NULL};
	assert_int_equal(cmd_parse(&ctx, opts, 2, ok, &a, 1, 1), -1);
	char *none[] = {"one", NULL};
	assert_int_equal(cmd_parse(&ctx, opts, 1, none, &a, 1, 1), CMD_EXIT_USAGE);
	assert_non_null(strstr(sink_text(&err), "usage: rollout one FILE [--wait]"));
	char *extra[] = {"one", "a", "b", NULL};
	assert_int_equal(cmd_parse(&ctx, opts, 3, extra, &a, 1, 1), CMD_EXIT_USAGE);
	assert_non_null(strstr(sink_text(&err), "unexpected argument 'b'"));
	char *help[] = {"one", "--help", NULL};
	assert_int_equal(cmd_parse(&ctx, opts, 2, help, &a, 1, 1), CMD_EXIT_OK);
	assert_non_null(strstr(sink_text(&out), "usage: rollout one"));
	sink_close(&out);
	sink_close(&err);
}

static void test_rollout_exit(void **state)
{
	(void)state;
	assert_int_equal(cmd_rollout_exit("complete", false), 0);
	assert_int_equal(cmd_rollout_exit("failed", false), 1);
	assert_int_equal(cmd_rollout_exit("aborted", false), 1);
	assert_int_equal(cmd_rollout_exit("rolled_back", false), 1);
	assert_int_equal(cmd_rollout_exit("rolled_back", true), 0);
	assert_int_equal(cmd_rollout_exit("failed", true), 1);
	assert_int_equal(cmd_rollout_exit("progressing", false), -1);
	assert_int_equal(cmd_rollout_exit("rolling_back", false), -1);
	assert_int_equal(cmd_rollout_exit("paused", true), -1);
}

static void test_escape(void **state)
{
	(void)state;
	char *p = cmd_service_path("a b/c", "/undo");
	assert_string_equal(p, "/v1/services/a%20b%2Fc/undo");
	free(p);
}

/* ---- output ---- */

static void test_duration(void **state)
{
	(void)state;
	char b[32];
	assert_string_equal(output_duration(0, b, sizeof b), "0s");
	assert_string_equal(output_duration(850, b, sizeof b), "850ms");
	assert_string_equal(output_duration(12345, b, sizeof b), "12s");
	assert_string_equal(output_duration(65000, b, sizeof b), "1m05s");
	assert_string_equal(output_duration(2 * 3600000 + 3 * 60000, b, sizeof b), "2h03m");
	assert_string_equal(output_duration(3 * 86400000LL + 4 * 3600000, b, sizeof b), "3d04h");
	assert_string_equal(output_duration(-5, b, sizeof b), "0s");
}

static void test_timestamp(void **state)
{
	(void)state;
	char b[40];
	assert_string_equal(output_timestamp(0, b, sizeof b), "1970-01-01T00:00:00.000Z");
	/* 2026-11-26T08:40:01.123Z */
	assert_string_equal(output_timestamp(1795682401123LL, b, sizeof b), "2026-11-26T08:40:01.123Z");
}

static void test_table_print(void **state)
{
	(void)state;
	struct output_table *t = output_table_new(3);
	output_table_row(t, (const char *[]){"ID", "STATE", "CAUSE"});
	output_table_row(t, (const char *[]){"12", "ready", NULL});
	struct sink s;
	sink_open(&s);
	output_table_print(t, s.f);
	assert_string_equal(sink_text(&s), "ID  STATE  CAUSE\n12  ready  -\n");
	sink_close(&s);
	output_table_free(t);
	output_table_free(NULL);
}

/* Text from the daemon reaches the terminal without control characters: a version recorded
 * before the parser refused them, an unloaded service's reason. */
static void test_no_control_characters(void **state)
{
	(void)state;
	struct output_table *t = output_table_new(2);
	output_table_row(t, (const char *[]){"1\x1b[2J", "a\nb\x7f"});
	struct sink s;
	sink_open(&s);
	output_table_print(t, s.f);
	assert_string_equal(sink_text(&s), "1\\x1b[2J  a\\x0ab\\x7f\n");
	sink_close(&s);
	output_table_free(t);

	json_t *un = json_pack("[{s:s,s:s,s:i}]", "service", "web", "error", "stored spec:1:2: bad\r\x1b]0;x\x07",
			       "since", 1);
	sink_open(&s);
	output_unloaded(s.f, un);
	assert_string_equal(sink_text(&s), "not loaded at start (apply a corrected spec to take it over):\n"
					   "  web: stored spec:1:2: bad\\x0d\\x1b]0;x\\x07\n");
	sink_close(&s);
	json_decref(un);
	sink_open(&s);
	output_unloaded(s.f, NULL);
	assert_string_equal(sink_text(&s), "");
	sink_close(&s);
}

/* The status of the API contract's example. */
static const char *status_json =
    "{\"service\":\"hello\",\"replicas\":4,\"target_revision\":2,\"stable_revision\":1,"
    "\"rollout\":{\"id\":3,\"kind\":\"deploy\",\"state\":\"progressing\",\"from_revision\":1,"
    "\"to_revision\":2,\"batch\":1,\"batches\":3,\"batch_goal\":2,\"failures\":0,\"max_failures\":0,"
    "\"pause\":null,\"reason\":\"\",\"started_at\":1000,\"ended_at\":null,\"elapsed_ms\":12000},"
    "\"counts\":{\"total\":5,\"available\":4,\"by_revision\":{\"1\":{\"total\":3,\"available\":3},"
    "\"2\":{\"total\":2,\"available\":1}}},"
    "\"instances\":[{\"id\":7,\"revision\":2,\"state\":\"ready\",\"available\":true,\"port\":20001,"
    "\"pid\":123,\"since\":5000,\"cause\":\"\",\"restarts\":0,\"last_check\":\"HTTP 200\"},"
    "{\"id\":8,\"revision\":2,\"state\":\"started\",\"available\":false,\"port\":20002,\"pid\":124,"
    "\"since\":16000,\"cause\":\"\",\"restarts\":2,\"last_check\":\"HTTP 404 from GET /healthz (want 200)\"}],"
    "\"versions\":{\"1\":\"v1\",\"2\":\"v2\"},"
    "\"waiting_for\":\"2 new instances to become available\"}";

static void test_progress_line(void **state)
{
	(void)state;
	json_t *st = json_loads(status_json, 0, NULL);
	assert_non_null(st);
	char b[512];
	assert_string_equal(output_progress_line(st, true, b, sizeof b),
			    "batch 1/3  new 1/4 available  old 3  total 5  elapsed 12s  "
			    "waiting for: 2 new instances to become available");
	assert_string_equal(
	    output_progress_line(st, false, b, sizeof b),
	    "batch 1/3  new 1/4 available  old 3  total 5  waiting for: 2 new instances to become available");
	json_t *ro = json_object_get(st, "rollout");
	json_object_set_new(ro, "state", json_string("paused"));
	json_object_set_new(ro, "pause", json_string("canary"));
	json_object_set_new(ro, "continue_with", json_string("promote")); /* the daemon's, from the engine */
	output_progress_line(st, false, b, sizeof b);
	assert_non_null(strstr(b, "paused (canary): continue with `rollout promote hello`"));
	assert_null(strstr(b, "waiting for"));
	/* a small buffer truncates, never overflows */
	char small[16];
	output_progress_line(st, true, small, sizeof small);
	assert_int_equal(strlen(small), 15);
	json_decref(st);
}

static void test_final_line(void **state)
{
	(void)state;
	json_t *st = json_loads(status_json, 0, NULL);
	json_t *ro = json_object_get(st, "rollout");
	char b[256];
	json_object_set_new(ro, "state", json_string("complete"));
	json_object_set_new(ro, "ended_at", json_integer(66000));
	assert_string_equal(output_final_line(st, ro, b, sizeof b),
			    "rollout 3 complete: hello at revision 2 after 1m05s");
	json_object_set_new(ro, "state", json_string("rolled_back"));
	json_object_set_new(ro, "reason", json_string("2 new instances failed their health check"));
	assert_string_equal(output_final_line(st, ro, b, sizeof b),
			    "rollout 3 rolled back after 1m05s: 2 new instances failed their health check");
	json_decref(st);
}

static void test_event_line(void **state)
{
	(void)state;
	json_t *ev =
	    json_pack("{s:i, s:I, s:s, s:s, s:s}", "id", 4, "ts", (json_int_t)1795682401123LL, "service",
		      "hello", "kind", "instance_available", "text", "instance 7 is available");
	char b[256];
	assert_string_equal(output_event_line(ev, b, sizeof b),
			    "2026-11-26T08:40:01.123Z  instance_available  instance 7 is available");
	json_decref(ev);
}

static void test_status_render(void **state)
{
	(void)state;
	json_t *st = json_loads(status_json, 0, NULL);
	struct sink s;
	sink_open(&s);
	output_status(s.f, st, 17000);
	const char *t = sink_text(&s);
	/* versions beside revisions (issue 12.7) */
	assert_non_null(strstr(t, "hello: 4 replicas, revision 2 (v2), stable 1 (v1)\n"));
	assert_non_null(strstr(t, "rollout 3 (deploy 1 (v1) -> 2 (v2)): progressing, batch 1/3"));
	assert_non_null(strstr(t, "instances: 5 total, 4 available (revision 1 (v1): 3/3 available, revision 2 (v2): 1/2"));
	assert_non_null(strstr(t, "ID  REVISION  VERSION  STATE    AVAILABLE  PORT   PID  AGE  RESTARTS  CAUSE\n"));
	/* a serving instance's passing check is no cause; one that does not serve says what its
	 * check sees */
	assert_non_null(strstr(t, "7   2         v2       ready    yes        20001  123  12s  0\n"));
	assert_non_null(strstr(t, "8   2         v2       started  no         20002  124  1s   2         last check: HTTP 404 from "
				  "GET /healthz (want 200)\n"));
	sink_close(&s);

	json_t *list = json_pack("[O]", st);
	sink_open(&s);
	output_services(s.f, list);
	t = sink_text(&s);
	assert_non_null(strstr(t, "SERVICE  REPLICAS  REVISION  STABLE  AVAILABLE  ROLLOUT\n"));
	assert_non_null(
	    strstr(t, "hello    4         2         1       4/5        3 progressing (batch 1/3)\n"));
	sink_close(&s);
	json_decref(list);
	json_decref(st);
}

/* A rollout that completed, then its instances crash-loop: status does not just say complete. */
static void test_status_crash_looping(void **state)
{
	(void)state;
	json_t *st = json_loads("{\"service\":\"hello\",\"replicas\":2,\"target_revision\":1,\"stable_revision\":1,"
				"\"counts\":{\"total\":2,\"available\":0,\"by_revision\":{}},\"instances\":[],"
				"\"health\":\"crash_looping\",\"waiting_for\":\"crash-looping: 0 of 2 available; next "
				"restart (restart 6) in 3200 ms\",\"rollout\":{\"id\":1,\"kind\":\"deploy\","
				"\"state\":\"complete\",\"from_revision\":0,\"to_revision\":1,\"batch\":1,\"batches\":1,"
				"\"failures\":0,\"max_failures\":0,\"elapsed_ms\":1000,\"ended_at\":1000,\"reason\":\"\"}}",
				0, NULL);
	assert_non_null(st);
	struct sink s;
	sink_open(&s);
	output_status(s.f, st, 17000);
	const char *t = sink_text(&s);
	assert_non_null(strstr(t, "health: crash-looping, 0 of 2 available; next restart (restart 6) in 3200 ms\n"));
	sink_close(&s);
	json_t *list = json_pack("[O]", st);
	sink_open(&s);
	output_services(s.f, list);
	assert_non_null(strstr(sink_text(&s), "1 complete, crash-looping\n"));
	sink_close(&s);
	json_decref(list);
	json_decref(st);
}

/* Issue 12.7: each line says what happened, from which revision (version) to which, and how it
 * ended, in the daemon's words (began_as, outcome); a scale names its replicas. */
static void test_history_render(void **state)
{
	(void)state;
	json_t *ro = json_loads(
	    "[{\"id\":6,\"kind\":\"undo\",\"began_as\":\"undo\",\"state\":\"rolled_back\","
	    "\"outcome\":\"undone to revision 1\",\"from_revision\":2,\"to_revision\":1,\"started_at\":0,"
	    "\"ended_at\":1000,\"reason\":\"\"},"
	    "{\"id\":5,\"kind\":\"abort\",\"began_as\":\"deploy\",\"state\":\"aborted\","
	    "\"outcome\":\"aborted, back on revision 2\",\"from_revision\":2,\"to_revision\":3,"
	    "\"rollback_revision\":2,\"started_at\":0,\"ended_at\":1000,\"reason\":\"aborted by user\"},"
	    "{\"id\":4,\"kind\":\"scale\",\"began_as\":\"scale\",\"state\":\"complete\",\"outcome\":\"complete\","
	    "\"from_revision\":2,\"to_revision\":2,\"from_replicas\":4,\"to_replicas\":6,\"started_at\":0,"
	    "\"ended_at\":1000,\"reason\":\"\"},"
	    "{\"id\":3,\"kind\":\"rollback\",\"began_as\":\"deploy\",\"state\":\"rolled_back\","
	    "\"outcome\":\"failed, rolled back to revision 2\",\"from_revision\":2,\"to_revision\":3,"
	    "\"started_at\":0,\"ended_at\":2000,\"reason\":\"health\"},"
	    "{\"id\":2,\"kind\":\"deploy\",\"state\":\"complete\",\"from_revision\":1,"
	    "\"to_revision\":2,\"started_at\":0,\"ended_at\":30000,\"reason\":\"\"},"
	    "{\"id\":1,\"kind\":\"deploy\",\"state\":\"complete\",\"from_revision\":0,"
	    "\"to_revision\":1,\"started_at\":0,\"ended_at\":5000,\"reason\":\"\"}]",
	    0, NULL);
	json_t *revs = json_loads(
	    "[{\"revision\":1,\"version\":\"v1\"},{\"revision\":2,\"version\":\"v2\"},{\"revision\":3,\"version\":\"v3\"}]",
	    0, NULL);
	assert_non_null(ro);
	assert_non_null(revs);
	struct sink s;
	sink_open(&s);
	output_history(s.f, ro, revs, 60000);
	const char *t = sink_text(&s);
	assert_non_null(strstr(t, "ROLLOUT  KIND    CHANGE                      OUTCOME                            STARTED"));
	assert_non_null(strstr(t, "6        undo    2 (v2) -> 1 (v1)            undone to revision 1  "));
	assert_non_null(strstr(t, "5        deploy  2 (v2) -> 3 (v3)            aborted, back on revision 2  "));
	assert_non_null(strstr(t, "4        scale   4 -> 6 instances of 2 (v2)  complete  "));
	assert_non_null(strstr(t, "3        deploy  2 (v2) -> 3 (v3)            failed, rolled back to revision 2  "));
	/* rows of a daemon that does not say began_as and outcome: its kind and state */
	assert_non_null(strstr(t, "2        deploy  1 (v1) -> 2 (v2)            complete  "));
	assert_non_null(strstr(t, "1        deploy  1 (v1)                      complete  "));
	sink_close(&s);
	json_decref(ro);
	json_decref(revs);
}

/* A hand-made plan: 4 replicas, surge 1, unavailable 0, a canary batch of 1 then the rest. */
static void make_plan(struct plan *p, struct plan_batch *b, struct plan_wave *w)
{
	memset(p, 0, sizeof *p);
	p->replicas = 4;
	p->surge = 1;
	p->unavailable = 0;
	p->floor = 4;
	p->ceiling = 5;
	p->max_failures = 0;
	p->min_ready_ms = 2000;
	p->health_deadline_ms = 30000;
	p->progress_deadline_ms = 600000;
	p->drain_timeout_ms = 30000;
	p->auto_rollback = true;
	w[0] = (struct plan_wave){.start = 1, .stop = 0, .min_available = 4, .max_total = 5};
	w[1] = (struct plan_wave){.start = 0, .stop = 1, .min_available = 4, .max_total = 5};
	b[0] = (struct plan_batch){.number = 1,
				   .goal = 1,
				   .started = 1,
				   .stopped = 1,
				   .min_available = 4,
				   .max_total = 5,
				   .pause = true,
				   .pause_ms = 0,
				   .waves = w,
				   .n_waves = 2};
	b[1] = (struct plan_batch){.number = 2,
				   .goal = 4,
				   .started = 3,
				   .stopped = 3,
				   .min_available = 4,
				   .max_total = 5,
				   .pause = true,
				   .pause_ms = 60000,
				   .waves = NULL,
				   .n_waves = 0};
	p->batches = b;
	p->n_batches = 2;
}

static void test_plan_text(void **state)
{
	(void)state;
	struct plan p;
	struct plan_batch b[2];
	struct plan_wave w[2];
	make_plan(&p, b, w);
	struct sink s;
	sink_open(&s);
	output_plan_text(s.f, "hello", &p);
	const char *t = sink_text(&s);
	assert_non_null(strstr(t, "plan for hello: 4 replicas, 2 batches\n"));
	assert_non_null(strstr(t, "max_surge 1: at most 5 instances at once"));
	assert_non_null(strstr(t, "max_unavailable 0: at least 4 available at all times"));
	assert_non_null(strstr(t, "roll back to the last stable revision"));
	assert_non_null(strstr(t,
			       "batch 1: goal 1/4 new  started 1  stopped 1  min available 4  max total 5\n"
			       "    wave 1: start 1  stop 0  min available 4  max total 5\n"
			       "    wave 2: start 0  stop 1  min available 4  max total 5\n"
			       "  pause after batch 1: until `rollout promote hello`\n"));
	assert_non_null(strstr(t, "pause after batch 2: for 1m00s"));
	sink_close(&s);
}

static void test_plan_json(void **state)
{
	(void)state;
	struct plan p;
	struct plan_batch b[2];
	struct plan_wave w[2];
	make_plan(&p, b, w);
	json_t *j = output_plan_json("hello", &p);
	assert_non_null(j);
	assert_string_equal(output_jstr(j, "service", ""), "hello");
	assert_int_equal(output_jint(j, "ceiling", 0), 5);
	assert_string_equal(output_jstr(j, "rollback_to", ""), "last stable revision");
	json_t *bs = json_object_get(j, "batches");
	assert_int_equal(json_array_size(bs), 2);
	json_t *b0 = json_array_get(bs, 0);
	assert_int_equal(json_array_size(json_object_get(b0, "waves")), 2);
	assert_string_equal(output_jstr(json_object_get(b0, "pause_after"), "until", ""), "promote");
	assert_int_equal(output_jint(json_object_get(json_array_get(bs, 1), "pause_after"), "for_ms", 0),
			 60000);
	json_decref(j);
}

/* ---- server-sent events ---- */

struct got {
	char text[1024];
	int n;
	int stop_at;
};

static int collect(void *arg, const struct client_sse_event *ev)
{
	struct got *g = arg;
	size_t l = strlen(g->text);
	snprintf(g->text + l, sizeof g->text - l, "[%s|%s|%s]", ev->id, ev->event, ev->data);
	g->n++;
	return g->n == g->stop_at ? 42 : 0;
}

static void test_sse(void **state)
{
	(void)state;
	const char *stream = ": hello\n"
			     "id: 1\nevent: paused\ndata: {\"a\":1}\n\n"
			     "id: 2\r\ndata: line1\r\ndata: line2\r\n\r\n"
			     "data:x\r\r"
			     "retry: 100\nunknown: z\n\n";
	struct client_sse p;
	struct got g = {0};
	client_sse_init(&p);
	/* byte by byte: the parser must not depend on how the bytes arrive */
	for (size_t i = 0; stream[i]; i++)
		assert_int_equal(client_sse_feed(&p, stream + i, 1, collect, &g), 0);
	assert_string_equal(g.text, "[1|paused|{\"a\":1}][2|message|line1\nline2][2|message|x]");
	client_sse_close(&p);

	/* all at once, and a callback that stops the stream */
	memset(&g, 0, sizeof g);
	g.stop_at = 1;
	client_sse_init(&p);
	assert_int_equal(client_sse_feed(&p, stream, strlen(stream), collect, &g), 42);
	assert_int_equal(g.n, 1);
	client_sse_close(&p);
}

static void test_sse_too_long(void **state)
{
	(void)state;
	struct client_sse p;
	struct got g = {0};
	char *big = xmalloc(CLIENT_MAX_LINE + 16);
	memset(big, 'a', CLIENT_MAX_LINE + 16);
	memcpy(big, "data: ", 6);
	client_sse_init(&p);
	assert_int_equal(client_sse_feed(&p, big, CLIENT_MAX_LINE + 16, collect, &g), -EMSGSIZE);
	assert_int_equal(g.n, 0);
	client_sse_close(&p);
	free(big);
}

/* ---- a fake transport: scripted replies ---- */

struct reply {
	const char *method_path; /* "GET /v1/..." expected, or NULL for any */
	int rc;
	long status;
	const char *body;
};

struct fake {
	const struct reply *script;
	size_t n, next;
	char last_body[4096];
};

static int fake_request(void *impl, const char *method, const char *path, const char *body, long *status,
			char **body_out, char *err, size_t errlen)
{
	struct fake *f = impl;
	assert_true(f->next < f->n);
	const struct reply *r = &f->script[f->next++];
	if (r->method_path) {
		char mp[512];
		snprintf(mp, sizeof mp, "%s %s", method, path);
		assert_string_equal(mp, r->method_path);
	}
	snprintf(f->last_body, sizeof f->last_body, "%s", body ? body : "");
	if (r->rc != 0) {
		snprintf(err, errlen, "fake failure");
		return r->rc;
	}
	*status = r->status;
	*body_out = xstrdup(r->body);
	return 0;
}

static const struct client_ops fake_ops = {.request = fake_request};

struct harness {
	struct fake fake;
	struct sink out, err;
	struct cmd_ctx ctx;
};

static void harness_start(struct harness *h, const struct reply *script, size_t n)
{
	memset(h, 0, sizeof *h);
	h->fake.script = script;
	h->fake.n = n;
	sink_open(&h->out);
	sink_open(&h->err);
	h->ctx.data = "/d";
	h->ctx.sock = "/d/rollout.sock";
	h->ctx.out = h->out.f;
	h->ctx.err = h->err.f;
	h->ctx.entry = &e_one;
	h->ctx.client = client_new_ops(&fake_ops, &h->fake);
}

static void harness_stop(struct harness *h)
{
	assert_int_equal(h->fake.next, h->fake.n); /* every scripted reply was used */
	client_free(h->ctx.client);
	sink_close(&h->out);
	sink_close(&h->err);
}

static void test_call_statuses(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/x", 0, 404, "{\"error\":\"no service 'x'\"}"},
	    {"POST /v1/apply", 0, 422, "{\"error\":\"invalid spec\",\"errors\":[\"f:1:2: a\",\"f:3:4: b\"]}"},
	    {"GET /v1/services", 0, 500, "oops"},
	    {"GET /v1/services", -ECONNREFUSED, 0, NULL},
	    {"GET /v1/services", -EIO, 0, NULL},
	    {"GET /v1/services", 0, 503, "{\"error\":\"daemon busy: too many open API connections\",\"busy\":true}"},
	    {"GET /v1/services", 0, 503, "{\"error\":\"store unavailable\"}"},
	    {"GET /v1/services", 0, 200, "{\"services\":[]}"},
	    {"GET /v1/services", 0, 200, "not json"},
	};
	struct harness h;
	harness_start(&h, script, sizeof script / sizeof script[0]);
	json_t *r;
	long st;
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services/x", NULL, &r, &st), CMD_EXIT_USAGE);
	assert_int_equal(st, 404);
	assert_null(r);
	assert_non_null(strstr(sink_text(&h.err), "rollout: no service 'x'\n"));
	json_t *body = json_pack("{s:s}", "file", "f");
	assert_int_equal(cmd_call(&h.ctx, "POST", "/v1/apply", body, &r, NULL), CMD_EXIT_USAGE);
	assert_string_equal(h.fake.last_body, "{\"file\":\"f\"}");
	json_decref(body);
	assert_non_null(strstr(sink_text(&h.err), "rollout: invalid spec\nf:1:2: a\nf:3:4: b\n"));
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_FAILED);
	assert_non_null(strstr(sink_text(&h.err), "HTTP 500"));
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_NODAEMON);
	assert_non_null(strstr(sink_text(&h.err), "no daemon answers on /d/rollout.sock; start one with: "
						  "rollout daemon --data /d\n"));
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_NODAEMON);
	assert_non_null(strstr(sink_text(&h.err), "fake failure"));
	/* something answered: not "no daemon" (said once so far, for the refused connect) */
	assert_non_null(strstr(sink_text(&h.err), "the daemon on /d/rollout.sock did not answer, try again\n"));
	const char *first = strstr(sink_text(&h.err), "no daemon answers");
	assert_null(strstr(first + 1, "no daemon answers"));
	/* at its connection cap: busy, exit 3; another 503 is a daemon error, exit 1 */
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_NODAEMON);
	assert_non_null(strstr(sink_text(&h.err), "rollout: daemon busy: too many open API connections; try again\n"));
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_FAILED);
	assert_non_null(strstr(sink_text(&h.err), "rollout: store unavailable\n"));
	first = strstr(sink_text(&h.err), "no daemon answers");
	assert_null(strstr(first + 1, "no daemon answers"));
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_OK);
	assert_true(json_is_array(json_object_get(r, "services")));
	json_decref(r);
	assert_int_equal(cmd_call(&h.ctx, "GET", "/v1/services", NULL, &r, NULL), CMD_EXIT_FAILED);
	assert_null(r);
	harness_stop(&h);
}

#define ST(state, batch, avail, extra)                                                                       \
	"{\"service\":\"hello\",\"replicas\":2,\"rollout\":{\"id\":3,\"state\":\"" state                     \
	"\",\"batch\":" #batch ",\"batches\":2,\"to_revision\":2,\"elapsed_ms\":1000" extra                  \
	"},\"counts\":{\"total\":3,\"by_revision\":"                                                         \
	"{\"2\":{\"total\":1,\"available\":" #avail "}}},\"waiting_for\":\"w\"}"

static void test_follow_complete(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")}, /* no change: no line */
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 2, 1, "")},
	    {"GET /v1/services/hello", 0, 200,
	     ST("complete", 2, 1, ",\"started_at\":1000,\"ended_at\":6000")},
	};
	struct harness h;
	harness_start(&h, script, 4);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 0), CMD_EXIT_OK);
	assert_string_equal(sink_text(&h.out),
			    "batch 1/2  new 0/2 available  old 0  total 3  elapsed 1s  waiting for: w\n"
			    "batch 2/2  new 1/2 available  old 0  total 3  elapsed 1s  waiting for: w\n"
			    "rollout 3 complete: hello at revision 2 after 5s\n");
	harness_stop(&h);
}

static void test_follow_failed(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("rolled_back", 1, 0, ",\"reason\":\"health deadline\"")},
	    {"GET /v1/services/hello", 0, 200, ST("rolled_back", 1, 0, ",\"reason\":\"health deadline\"")},
	};
	struct harness h;
	harness_start(&h, script, 2);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 0), CMD_EXIT_FAILED);
	assert_non_null(strstr(sink_text(&h.out), "rollout 3 rolled back after 1s: health deadline\n"));
	/* for undo, rolled back is success */
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, true, 0), CMD_EXIT_OK);
	harness_stop(&h);
}

/* Issue 12.4: --wait returns at a pause that waits for a person (exit 4, with the command that
 * continues it), goes on through a timed pause, and waits through any pause when told to. */
static void test_follow_paused(void **state)
{
	(void)state;
#define CANARY ",\"pause\":\"canary\",\"needs_person\":true,\"continue_with\":\"promote\""
#define TIMED ",\"pause\":\"timed\",\"needs_person\":false,\"continue_with\":\"promote\""
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	    {"GET /v1/services/hello", 0, 200, ST("paused", 1, 1, TIMED)},
	    {"GET /v1/services/hello", 0, 200, ST("paused", 1, 1, CANARY)},
	    /* again, waiting through it */
	    {"GET /v1/services/hello", 0, 200, ST("paused", 1, 1, CANARY)},
	    {"GET /v1/services/hello", 0, 200,
	     ST("complete", 2, 2, ",\"started_at\":1000,\"ended_at\":6000")},
	};
	struct harness h;
	harness_start(&h, script, 5);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, 0, 0), CMD_EXIT_PAUSED);
	assert_int_equal(CMD_EXIT_PAUSED, 4);
	assert_non_null(strstr(sink_text(&h.out), "paused (timed): continue with `rollout promote hello`\n"));
	assert_non_null(strstr(sink_text(&h.out),
			       "rollout 3 paused (canary) at batch 1/2: continue with `rollout promote hello`\n"));
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, CMD_FOLLOW_THROUGH_PAUSES, 0), CMD_EXIT_OK);
	assert_non_null(strstr(sink_text(&h.out), "rollout 3 complete"));
	harness_stop(&h);
#undef CANARY
#undef TIMED
}

static void test_follow_moved_on(void **state)
{
	(void)state;
	/* our rollout 3 failed and a rollback (4) took over: the outcome comes from the history */
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200,
	     "{\"service\":\"hello\",\"rollout\":{\"id\":4,\"state\":\"progressing\",\"kind\":\"rollback\"}"
	     "}"},
	    {"GET /v1/services/hello/rollouts", 0, 200,
	     "{\"rollouts\":[{\"id\":4,\"state\":\"progressing\"},{\"id\":3,\"state\":\"failed\","
	     "\"reason\":\"2 failures\"}]}"},
	};
	struct harness h;
	harness_start(&h, script, 2);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 0), CMD_EXIT_FAILED);
	assert_non_null(strstr(sink_text(&h.out), "rollout 3 failed"));
	assert_non_null(strstr(sink_text(&h.out), ": 2 failures\n"));
	harness_stop(&h);
}

static void test_follow_timeout(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	};
	struct harness h;
	harness_start(&h, script, 2);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 150), CMD_EXIT_FAILED);
	assert_non_null(strstr(sink_text(&h.err), "timed out waiting"));
	harness_stop(&h);
}

static void test_follow_daemon_gone(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	    {"GET /v1/services/hello", -ECONNREFUSED, 0, NULL},
	};
	struct harness h;
	harness_start(&h, script, 2);
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 0), CMD_EXIT_NODAEMON);
	harness_stop(&h);
}

/* undo: --to-revision N --force sends {"revision": N, "force": true}; a refusal is printed as the
 * daemon words it (exit 2); --force alone is a usage error that calls nothing. */
static void test_undo_force(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"POST /v1/services/hello/undo", 0, 409,
	     "{\"error\":\"cannot undo hello: revision 3 never became stable (its rollout 3 failed: x); "
	     "to go there anyway: rollout undo hello --to-revision 3 --force\"}"},
	    {"POST /v1/services/hello/undo", 0, 200,
	     "{\"service\":\"hello\",\"rollout\":{\"id\":5,\"kind\":\"undo\",\"state\":\"rolling_back\","
	     "\"to_revision\":3}}"},
	};
	struct harness h;
	harness_start(&h, script, 2);
	h.ctx.entry = &cmd_undo_entry;
	char *plain[] = {"undo", "hello", "--to-revision", "3", NULL};
	assert_int_equal(cmd_undo_entry.exec(&h.ctx, 4, plain), CMD_EXIT_USAGE);
	assert_string_equal(h.fake.last_body, "{\"revision\":3}");
	assert_non_null(strstr(sink_text(&h.err),
			       "rollout: cannot undo hello: revision 3 never became stable (its "
			       "rollout 3 failed: x); to go there anyway: rollout undo hello "
			       "--to-revision 3 --force\n"));
	char *forced[] = {"undo", "hello", "--to-revision", "3", "--force", NULL};
	assert_int_equal(cmd_undo_entry.exec(&h.ctx, 5, forced), CMD_EXIT_OK);
	assert_string_equal(h.fake.last_body, "{\"revision\":3,\"force\":true}");
	assert_string_equal(sink_text(&h.out), "hello: rollout 5 (undo) to revision 3: rolling_back\n");
	char *alone[] = {"undo", "hello", "--force", NULL};
	assert_int_equal(cmd_undo_entry.exec(&h.ctx, 3, alone), CMD_EXIT_USAGE);
	assert_non_null(strstr(sink_text(&h.err), "--force goes with --to-revision N"));
	harness_stop(&h);
}

static void test_follow_tty(void **state)
{
	(void)state;
	static const struct reply script[] = {
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 1, 0, "")},
	    {"GET /v1/services/hello", 0, 200, ST("progressing", 2, 1, "")},
	    {"GET /v1/services/hello", 0, 200, ST("aborted", 2, 1, ",\"reason\":\"by user\"")},
	};
	struct harness h;
	harness_start(&h, script, 3);
	h.ctx.tty = true;
	assert_int_equal(cmd_follow(&h.ctx, "hello", 3, false, 0), CMD_EXIT_FAILED);
	/* each batch redrawn in place, a new line when the batch changes, the last line after */
	assert_string_equal(
	    sink_text(&h.out),
	    "\r\033[Kbatch 1/2  new 0/2 available  old 0  total 3  elapsed 1s  waiting for: w\n"
	    "\r\033[Kbatch 2/2  new 1/2 available  old 0  total 3  elapsed 1s  waiting for: w\n"
	    "rollout 3 aborted after 1s: by user\n");
	harness_stop(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_basic),
	    cmocka_unit_test(test_args_forms),
	    cmocka_unit_test(test_args_errors),
	    cmocka_unit_test(test_take_global),
	    cmocka_unit_test(test_data_dir),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_parse_verb),
	    cmocka_unit_test(test_rollout_exit),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_timestamp),
	    cmocka_unit_test(test_table_print),
	    cmocka_unit_test(test_no_control_characters),
	    cmocka_unit_test(test_progress_line),
	    cmocka_unit_test(test_final_line),
	    cmocka_unit_test(test_event_line),
	    cmocka_unit_test(test_status_render),
	    cmocka_unit_test(test_status_crash_looping),
	    cmocka_unit_test(test_history_render),
	    cmocka_unit_test(test_plan_text),
	    cmocka_unit_test(test_plan_json),
	    cmocka_unit_test(test_sse),
	    cmocka_unit_test(test_sse_too_long),
	    cmocka_unit_test(test_call_statuses),
	    cmocka_unit_test(test_follow_complete),
	    cmocka_unit_test(test_follow_failed),
	    cmocka_unit_test(test_follow_paused),
	    cmocka_unit_test(test_follow_moved_on),
	    cmocka_unit_test(test_follow_timeout),
	    cmocka_unit_test(test_follow_daemon_gone),
	    cmocka_unit_test(test_follow_tty),
	    cmocka_unit_test(test_undo_force),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
