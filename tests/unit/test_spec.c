/* Unit tests for spec_parse (src/spec/spec_yaml.c): the DESIGN example, defaults, one test per
 * class of error with its exact text and position, limits, secrets, env order, template hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec/spec_yaml.h"
#include "util/xmalloc.h"

/* A valid spec's required part, three lines; tests append to it, so their own lines start at 4. */
#define BASE "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\", command: [./web]}\n"

struct fx {
	struct spec s;
	struct spec_errors e;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	spec_clear(&f->s);
	spec_errors_clear(&f->e);
	free(f);
	return 0;
}

static int parse(struct fx *f, const char *yaml)
{
	spec_clear(&f->s);
	spec_errors_clear(&f->e);
	return spec_parse(yaml, strlen(yaml), "spec.yaml", &f->s, &f->e);
}

/* Parses yaml, which must fail with exactly the one message want. */
static void expect_one(void **state, const char *yaml, const char *want)
{
	struct fx *f = *state;
	int rc = parse(f, yaml);
	for (size_t i = 0; i < f->e.n; i++)
		print_message("  got: %s\n", f->e.v[i]);
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], want);
	/* On failure the spec is left cleared. */
	assert_null(f->s.service);
	assert_null(f->s.tmpl.command);
}

static const char design_example[] =
	"service: hello\n"
	"replicas: 4\n"
	"listen: 127.0.0.1:8080            # where the load balancer accepts traffic\n"
	"protocol: http                    # http | tcp\n"
	"template:                         # changing anything here makes a new revision\n"
	"  version: \"2\"\n"
	"  command: [\"./hello\", \"--port\", \"${PORT}\", \"--version\", \"2\"]\n"
	"  env: {GREETING: hi}\n"
	"  workdir: examples/hello\n"
	"health:\n"
	"  http: {path: /healthz, status: 200}   # or tcp: {} or exec: [\"./check.sh\"]\n"
	"  interval: 1s\n"
	"  timeout: 500ms\n"
	"  healthy_threshold: 1\n"
	"  unhealthy_threshold: 3\n"
	"strategy:\n"
	"  max_surge: 25%\n"
	"  max_unavailable: 0\n"
	"  batches: [1, 25%, 100%]\n"
	"  pause_after: []\n"
	"  min_ready: 2s\n"
	"  health_deadline: 30s\n"
	"  progress_deadline: 10m\n"
	"  max_failures: 0\n"
	"  auto_rollback: true\n"
	"  analysis: {max_error_rate: 1%, max_p99: 500ms, window: 10s, min_requests: 50}\n"
	"  watch: 5m                       # keep analysing after completion; a breach rolls back\n"
	"  min_stable: 10s\n"
	"drain: {timeout: 30s}\n"
	"stop: {signal: TERM, grace: 10s}\n"
	"targets: local                    # or a list of ssh://user@host[:port] with per-host settings\n"
	"lb: builtin                       # or none, or {haproxy: {socket: /run/haproxy/admin.sock, backend: "
	"hello}}\n"
	"notify: [{url: \"http://127.0.0.1:9000/hook\", events: [failed, rolled_back]}]\n";

static void test_design_example(void **state)
{
	struct fx *f = *state;
	assert_int_equal(parse(f, design_example), 0);
	assert_int_equal(f->e.n, 0);
	struct spec *s = &f->s;
	assert_string_equal(s->file, "spec.yaml");
	assert_string_equal(s->service, "hello");
	assert_int_equal(s->replicas, 4);
	assert_int_equal(s->replicas_pos.line, 2);
	assert_int_equal(s->replicas_pos.col, 11);
	assert_string_equal(s->listen, "127.0.0.1:8080");
	assert_int_equal(s->protocol, SPEC_PROTO_HTTP);
	assert_string_equal(s->tmpl.version, "2");
	assert_int_equal(s->tmpl.n_command, 5);
	assert_string_equal(s->tmpl.command[0], "./hello");
	assert_string_equal(s->tmpl.command[2], "${PORT}");
	assert_string_equal(s->tmpl.command[4], "2");
	assert_null(s->tmpl.command[5]);
	assert_int_equal(s->tmpl.n_env, 1);
	assert_string_equal(s->tmpl.env[0].name, "GREETING");
	assert_string_equal(s->tmpl.env[0].value, "hi");
	assert_false(s->tmpl.env[0].secret);
	assert_string_equal(s->tmpl.workdir, "examples/hello");
	assert_int_equal(s->health.kind, SPEC_CHECK_HTTP);
	assert_string_equal(s->health.http_path, "/healthz");
	assert_int_equal(s->health.http_status, 200);
	assert_int_equal(s->health.interval_ms, 1000);
	assert_int_equal(s->health.timeout_ms, 500);
	assert_int_equal(s->health.healthy_threshold, 1);
	assert_int_equal(s->health.unhealthy_threshold, 3);
	const struct spec_strategy *st = &s->strategy;
	assert_true(st->max_surge.percent);
	assert_int_equal(st->max_surge.value, 25);
	assert_false(st->max_unavailable.percent);
	assert_int_equal(st->max_unavailable.value, 0);
	assert_int_equal(st->surge_pos.line, 17);
	assert_int_equal(st->surge_pos.col, 14);
	assert_int_equal(st->n_batches, 3);
	assert_false(st->batches[0].percent);
	assert_int_equal(st->batches[0].value, 1);
	assert_true(st->batches[1].percent);
	assert_int_equal(st->batches[1].value, 25);
	assert_int_equal(st->batches[2].value, 100);
	assert_int_equal(st->batches_pos.line, 19);
	assert_int_equal(st->n_pause_after, 0);
	assert_int_equal(st->min_ready_ms, 2000);
	assert_int_equal(st->health_deadline_ms, 30000);
	assert_int_equal(st->progress_deadline_ms, 600000);
	assert_int_equal(st->max_failures.value, 0);
	assert_true(st->auto_rollback);
	assert_true(st->analysis.enabled);
	assert_true(st->analysis.max_error_rate.set);
	assert_false(st->analysis.max_error_rate.relative);
	assert_true(st->analysis.max_error_rate.value > 0.00999 && st->analysis.max_error_rate.value < 0.01001);
	assert_true(st->analysis.max_p99.set);
	assert_false(st->analysis.max_p99.relative);
	assert_true(st->analysis.max_p99.value == 500.0);
	assert_int_equal(st->analysis.window_ms, 10000);
	assert_int_equal(st->analysis.min_requests, 50);
	assert_int_equal(st->watch_ms, 300000);
	assert_int_equal(st->min_stable_ms, 10000);
	assert_int_equal(s->drain_timeout_ms, 30000);
	assert_int_equal(s->stop_signal, SIGTERM);
	assert_int_equal(s->stop_grace_ms, 10000);
	assert_true(s->targets_local);
	assert_int_equal(s->n_targets, 0);
	assert_int_equal(s->lb, SPEC_LB_BUILTIN);
	assert_int_equal(s->n_notify, 1);
	assert_string_equal(s->notify[0].url, "http://127.0.0.1:9000/hook");
	assert_int_equal(s->notify[0].events, (1u << SPEC_EV_FAILED) | (1u << SPEC_EV_ROLLED_BACK));
	assert_false(s->notify[0].slack);
	/* 4 replicas, batches 1, 25% (1), 100% (4, capped): three batches. */
	assert_int_equal(spec_batch_count(st, s->replicas), 3);
}

static void test_defaults(void **state)
{
	struct fx *f = *state;
	struct spec d;
	spec_init(&d);
	assert_int_equal(parse(f, BASE), 0);
	struct spec *s = &f->s;
	assert_string_equal(s->service, "web");
	assert_int_equal(s->replicas, d.replicas);
	assert_int_equal(s->replicas_pos.line, 0);
	assert_int_equal(s->protocol, SPEC_PROTO_HTTP);
	assert_null(s->tmpl.workdir);
	assert_int_equal(s->tmpl.n_env, 0);
	assert_int_equal(s->health.kind, SPEC_CHECK_NONE);
	assert_int_equal(s->health.interval_ms, d.health.interval_ms);
	assert_int_equal(s->health.timeout_ms, d.health.timeout_ms);
	assert_int_equal(s->strategy.max_surge.value, 25);
	assert_true(s->strategy.max_surge.percent);
	assert_int_equal(s->strategy.max_unavailable.value, 0);
	assert_int_equal(s->strategy.n_batches, 0);
	assert_int_equal(s->strategy.health_deadline_ms, d.strategy.health_deadline_ms);
	assert_int_equal(s->strategy.progress_deadline_ms, d.strategy.progress_deadline_ms);
	assert_true(s->strategy.auto_rollback);
	assert_int_equal(s->strategy.min_stable_ms, 30000);
	assert_false(s->strategy.analysis.enabled);
	assert_int_equal(s->drain_timeout_ms, 30000);
	assert_int_equal(s->stop_signal, SIGTERM);
	assert_int_equal(s->stop_grace_ms, 10000);
	assert_true(s->targets_local);
	assert_int_equal(s->lb, SPEC_LB_BUILTIN);
	assert_int_equal(s->n_notify, 0);
	/* A version written as a YAML integer is its text. */
	assert_int_equal(parse(f, "service: w\nlisten: localhost:80\ntemplate: {version: 7, command: [a, 8080]}\n"), 0);
	assert_string_equal(f->s.tmpl.version, "7");
	assert_string_equal(f->s.tmpl.command[1], "8080");
	/* A plain scalar tagged !!str is a string. */
	expect_one(state, BASE "replicas: !!str 4\n", "spec.yaml:4:11: replicas: expected an integer, got a string");
}

static void test_unknown_key_did_you_mean(void **state)
{
	expect_one(state, BASE "strategy:\n  max_surg: 1\n",
		   "spec.yaml:5:3: unknown key 'max_surg' in strategy; did you mean 'max_surge'?");
	expect_one(state, BASE "replica: 3\n", "spec.yaml:4:1: unknown key 'replica'; did you mean 'replicas'?");
	/* A prefix of a longer key. */
	expect_one(state, BASE "strategy: {health: 1s}\n",
		   "spec.yaml:4:12: unknown key 'health' in strategy; did you mean 'health_deadline'? If not, it is a "
		   "top-level key: write it at the start of a line, not indented");
	/* Nothing close: the valid keys are listed. */
	expect_one(state, BASE "drain: {zzzzzz: 1s}\n",
		   "spec.yaml:4:9: unknown key 'zzzzzz' in drain; expected one of: timeout");
}

static void test_wrong_type(void **state)
{
	expect_one(state, BASE "replicas: \"4\"\n", "spec.yaml:4:11: replicas: expected an integer, got a string");
	expect_one(state, BASE "strategy: {auto_rollback: yes}\n",
		   "spec.yaml:4:27: auto_rollback: expected a boolean (true or false), got a string");
	expect_one(state, BASE "health: [1]\n", "spec.yaml:4:9: health: expected a mapping, got a list");
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\", command: [[a]]}\n",
		   "spec.yaml:3:36: command[0]: expected a string, got a list");
	expect_one(state, BASE "? [a]\n: b\n", "spec.yaml:4:3: spec: keys must be strings, got a list");
	expect_one(state, "service: \"w\\0x\"\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\", command: [./web]}\n",
		   "spec.yaml:1:10: service: must not contain a NUL character");
}

static void test_out_of_range(void **state)
{
	expect_one(state, BASE "replicas: 10001\n", "spec.yaml:4:11: replicas: 10001 is out of range (0 to 10000)");
	expect_one(state, BASE "replicas: -1\n", "spec.yaml:4:11: replicas: -1 is out of range (0 to 10000)");
	expect_one(state, BASE "health: {http: {status: 700}}\n",
		   "spec.yaml:4:25: status: 700 is out of range (100 to 599)");
}

static void test_bad_amount_and_duration(void **state)
{
	expect_one(state, BASE "strategy:\n  max_surge: \"125x\"\n",
		   "spec.yaml:5:14: max_surge: \"125x\" is not a count or a percent");
	expect_one(state, BASE "strategy: {min_ready: 5}\n",
		   "spec.yaml:4:23: min_ready: \"5\" is not a duration (write it like 500ms, 10s or 1m30s)");
	expect_one(state, BASE "drain: {timeout: 1x}\n",
		   "spec.yaml:4:18: timeout: \"1x\" is not a duration (write it like 500ms, 10s or 1m30s)");
	expect_one(state, BASE "strategy: {analysis: {max_error_rate: 2y}}\n",
		   "spec.yaml:4:39: max_error_rate: \"2y\" is not a percent (1%) or a factor of the old revision's rate "
		   "(2x)");
}

static void test_amount_forms(void **state)
{
	struct fx *f = *state;
	/* A YAML integer, a quoted percent and a plain percent are all amounts. */
	assert_int_equal(parse(f, BASE "strategy: {max_surge: 2, max_unavailable: \"10%\", max_failures: 5%}\n"), 0);
	assert_false(f->s.strategy.max_surge.percent);
	assert_int_equal(f->s.strategy.max_surge.value, 2);
	assert_true(f->s.strategy.max_unavailable.percent);
	assert_int_equal(f->s.strategy.max_unavailable.value, 10);
	assert_true(f->s.strategy.max_failures.percent);
	assert_int_equal(parse(f, BASE "strategy: {max_surge: 100%}\n"), 0);
	/* Relative limits. */
	assert_int_equal(parse(f, BASE "strategy: {analysis: {max_error_rate: 2x, max_p99: 1.5x}}\n"), 0);
	assert_true(f->s.strategy.analysis.max_error_rate.relative);
	assert_true(f->s.strategy.analysis.max_error_rate.value == 2.0);
	assert_true(f->s.strategy.analysis.max_p99.relative);
	assert_true(f->s.strategy.analysis.max_p99.value == 1.5);
	assert_int_equal(f->s.strategy.analysis.min_requests, 50);
}

static void test_duplicate_key(void **state)
{
	expect_one(state, BASE "replicas: 2\nreplicas: 3\n", "spec.yaml:5:1: duplicate key 'replicas' (first at line 4)");
	expect_one(state, BASE "stop: {grace: 1s, grace: 2s}\n",
		   "spec.yaml:4:19: duplicate key 'grace' (first at line 4)");
}

static void test_surge_unavailable_zero(void **state)
{
	expect_one(state, BASE "strategy:\n  max_surge: 0\n  max_unavailable: 0%\n",
		   "spec.yaml:5:14: max_surge and max_unavailable are both 0, so no instance could ever be replaced; "
		   "raise one of them");
	/* max_unavailable defaults to 0, so surge 0 alone is the same contradiction. */
	expect_one(state, BASE "strategy: {max_surge: 0}\n",
		   "spec.yaml:4:23: max_surge and max_unavailable are both 0, so no instance could ever be replaced; "
		   "raise one of them");
	struct fx *f = *state;
	assert_int_equal(parse(f, BASE "strategy: {max_surge: 0, max_unavailable: 1}\n"), 0);
}

static void test_percent_over_100(void **state)
{
	expect_one(state, BASE "strategy: {max_unavailable: 150%}\n",
		   "spec.yaml:4:29: max_unavailable: 150% is more than 100%");
	expect_one(state, BASE "strategy: {batches: [1, 101%]}\n",
		   "spec.yaml:4:25: batches[1]: 101% is more than 100%");
}

/* Every amount is bounded by what it can mean (issue 11.2): a surge of a billion percent of 10
 * replicas sized buffers of 60 GB and aborted the daemon at every start. */
static void test_amount_bounds(void **state)
{
	struct fx *f = *state;
	expect_one(state, BASE "replicas: 10\nstrategy: {max_surge: 1000000000%}\n",
		   "spec.yaml:5:23: max_surge: 1000000000% is more than 1000%");
	expect_one(state, BASE "strategy: {max_surge: 1001%}\n", "spec.yaml:4:23: max_surge: 1001% is more than 1000%");
	expect_one(state, BASE "strategy: {max_surge: 99999999999%}\n",
		   "spec.yaml:4:23: max_surge: \"99999999999%\" is more than 1000%");
	expect_one(state, BASE "strategy: {max_surge: 10001}\n",
		   "spec.yaml:4:23: max_surge: 10001 is more than 10000, the most replicas a service can have");
	expect_one(state, BASE "strategy: {max_surge: 99999999999}\n",
		   "spec.yaml:4:23: max_surge: \"99999999999\" is more than 10000, the most replicas a service can have");
	expect_one(state, BASE "strategy: {max_unavailable: 1000000}\n",
		   "spec.yaml:4:29: max_unavailable: 1000000 is more than 10000, the most replicas a service can have");
	expect_one(state, BASE "strategy: {max_failures: 20000}\n",
		   "spec.yaml:4:26: max_failures: 20000 is more than 10000, the most replicas a service can have");
	expect_one(state, BASE "strategy: {batches: [1, 100000]}\n",
		   "spec.yaml:4:25: batches[1]: 100000 is more than 10000, the most replicas a service can have");
	assert_int_equal(parse(f, BASE "replicas: 10000\nstrategy: {max_surge: 10000, max_unavailable: 100%}\n"), 0);
	assert_int_equal(f->s.strategy.max_surge.value, 10000);
	/* above 100%, as specs written before the bounds have it: accepted, and plans as 100% */
	assert_int_equal(parse(f, BASE "replicas: 10\nstrategy: {max_surge: 200%}\n"), 0);
	assert_true(f->s.strategy.max_surge.percent && f->s.strategy.max_surge.value == 200);
}

/* Lists that size the daemon's work have bounds too. */
static void test_list_bounds(void **state)
{
	struct fx *f = *state;
	size_t cap = 64 * 1024;
	char *y = xmalloc(cap);
	size_t o = (size_t)snprintf(y, cap, "%s", BASE "targets:\n");
	for (int i = 0; i <= SPEC_TARGETS_MAX; i++)
		o += (size_t)snprintf(y + o, cap - o, "  - ssh://u@h%d\n", i);
	assert_int_equal(parse(f, y), -EINVAL);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], "spec.yaml:5:3: targets: 1001 hosts; at most 1000");
	o = (size_t)snprintf(y, cap, "%s", BASE "notify:\n");
	for (int i = 0; i <= SPEC_NOTIFY_MAX; i++)
		o += (size_t)snprintf(y + o, cap - o, "  - {url: \"http://127.0.0.1:9/%d\"}\n", i);
	assert_int_equal(parse(f, y), -EINVAL);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], "spec.yaml:5:3: notify: 17 webhooks; at most 16");
	free(y);
}

/* Strings shown on one line of a terminal (status, events, logs) hold no control character
 * (issue 11.8): an escape in template.version reached the terminal raw. */
static void test_control_characters(void **state)
{
	struct fx *f = *state;
	const char *end = "; write it on one line of printable characters";
	char want[512];
	snprintf(want, sizeof want, "spec.yaml:3:21: version: \"1\\x1b[2J\" has a control character (newline, tab, "
		 "escape...)%s", end);
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\\e[2J\", command: [./web]}\n",
		   want);
	snprintf(want, sizeof want, "spec.yaml:3:21: version: \"1\\x0a2\" has a control character (newline, tab, "
		 "escape...)%s", end);
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\\n2\", command: [./web]}\n",
		   want);
	/* A C1 control (U+009B, CSI) in its UTF-8 form. */
	snprintf(want, sizeof want, "spec.yaml:3:21: version: \"1\\xc2\\x9b2J\" has a control character (newline, tab, "
		 "escape...)%s", end);
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\\u009b2J\", command: [./web]}\n",
		   want);
	snprintf(want, sizeof want, "spec.yaml:4:23: path: \"/a\\x0d\\x0aX: y\" has a control character (newline, tab, "
		 "escape...)%s", end);
	expect_one(state, BASE "health: {http: {path: \"/a\\r\\nX: y\"}}\n", want);
	/* Other text is fine: UTF-8 letters, spaces. */
	assert_int_equal(parse(f, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1.2 \u00e9t\u00e9\", "
				  "command: [./web]}\n"),
			 0);
	assert_string_equal(f->s.tmpl.version, "1.2 \xc3\xa9t\xc3\xa9");
}

/* The batch arithmetic as DESIGN words it: batch i's size is entry i (the last repeating),
 * percents floored, at least 1; goals cumulative, capped at replicas. A reference to check the
 * closed forms against. */
static int ref_goal(const struct spec_strategy *st, int replicas, int index)
{
	long long goal = 0;
	for (int i = 0; i <= index && goal < replicas; i++) {
		int n = replicas;
		if (st->n_batches > 0) {
			size_t k = (size_t)i < st->n_batches ? (size_t)i : st->n_batches - 1;
			n = amount_floor(st->batches[k], replicas);
			n = n < 1 ? 1 : n;
		}
		goal += n;
	}
	return goal > replicas ? replicas : (int)goal;
}

static void test_batch_arithmetic(void **state)
{
	(void)state;
	const struct amount shapes[][3] = {
		{{false, 1}, {true, 25}, {true, 100}},
		{{false, 2}, {false, 3}, {true, 10}},
		{{true, 1}, {true, 1}, {true, 1}},
		{{false, 7}, {false, 1}, {false, 10000}},
	};
	struct spec_strategy st = {0};
	struct amount b[3];
	for (size_t sh = 0; sh < 4; sh++) {
		for (size_t nb = 0; nb <= 3; nb++) {
			memcpy(b, shapes[sh], sizeof b);
			st.batches = b;
			st.n_batches = nb;
			for (int r = 0; r <= 120; r++) {
				int count = 1;
				while (ref_goal(&st, r, count - 1) < r)
					count++;
				assert_int_equal(spec_batch_count(&st, r), count);
				for (int i = -1; i <= count + 2; i++)
					assert_int_equal(spec_batch_goal(&st, r, i), ref_goal(&st, r, i));
			}
		}
	}
	/* The largest: 10000 replicas one at a time, counted without going through every batch. */
	b[0] = (struct amount){false, 1};
	st.n_batches = 1;
	assert_int_equal(spec_batch_count(&st, SPEC_REPLICAS_MAX), SPEC_REPLICAS_MAX);
	assert_int_equal(spec_batch_goal(&st, SPEC_REPLICAS_MAX, 4999), 5000);
}

/* The fields outside the template an apply changes, named as in the spec (issue 11.8: such an
 * apply answered "unchanged" though listen or stop.grace took effect). */
static void test_changed_fields(void **state)
{
	(void)state;
	struct spec a, b;
	struct spec_errors e = {0};
	const char *names[SPEC_FIELDS_MAX];
	const char *one = BASE "health: {http: {path: /a}, interval: 1s}\nstop: {grace: 5s}\n"
			       "strategy: {batches: [1, 50%], pause_after: [1]}\n";
	const char *two = "service: web\nlisten: 127.0.0.1:9090\ntemplate: {version: \"1\", command: [./web]}\n"
			  "health: {http: {path: /b}, interval: 1s}\nstop: {grace: 6s}\n"
			  "strategy: {batches: [1, 50%], pause_after: [1]}\n";
	assert_int_equal(spec_parse(one, strlen(one), NULL, &a, &e), 0);
	assert_int_equal(spec_parse(one, strlen(one), NULL, &b, &e), 0);
	assert_int_equal(spec_changed_fields(&a, &b, names, SPEC_FIELDS_MAX), 0);
	spec_clear(&b);
	assert_int_equal(spec_parse(two, strlen(two), NULL, &b, &e), 0);
	assert_int_equal(spec_changed_fields(&a, &b, names, SPEC_FIELDS_MAX), 3);
	assert_string_equal(names[0], "listen");
	assert_string_equal(names[1], "health.http.path");
	assert_string_equal(names[2], "stop.grace");
	/* Counted past max, written up to it. */
	assert_int_equal(spec_changed_fields(&a, &b, names, 1), 3);
	spec_clear(&a);
	spec_clear(&b);
	spec_init(&a);
	spec_init(&b);
	b.replicas = 3;
	b.strategy.max_surge.value = 50;
	b.lb = SPEC_LB_NONE;
	assert_int_equal(spec_changed_fields(&a, &b, names, SPEC_FIELDS_MAX), 3);
	assert_string_equal(names[0], "replicas");
	assert_string_equal(names[1], "strategy.max_surge");
	assert_string_equal(names[2], "lb");
	spec_clear(&a);
	spec_clear(&b);
	assert_int_equal(e.n, 0);
}

static void test_pause_after(void **state)
{
	struct fx *f = *state;
	/* 4 replicas in batches of 1 then 25% (1): four batches. */
	const char *ok = BASE "replicas: 4\nstrategy: {batches: [1, 25%], pause_after: [1, {batch: 4, duration: 5m}]}\n";
	assert_int_equal(parse(f, ok), 0);
	assert_int_equal(f->s.strategy.n_pause_after, 2);
	assert_int_equal(f->s.strategy.pause_after[0].batch, 1);
	assert_int_equal(f->s.strategy.pause_after[0].duration_ms, 0);
	assert_int_equal(f->s.strategy.pause_after[0].pos.line, 5);
	assert_int_equal(f->s.strategy.pause_after[1].batch, 4);
	assert_int_equal(f->s.strategy.pause_after[1].duration_ms, 300000);
	assert_non_null(spec_pause_after(&f->s.strategy, 4));

	expect_one(state, BASE "replicas: 4\nstrategy: {batches: [1, 25%], pause_after: [5]}\n",
		   "spec.yaml:5:45: pause_after: batch 5 is past the last batch, 4 (for 4 replicas)");
	/* Without batches, the whole service is one batch. */
	expect_one(state, BASE "strategy:\n  pause_after:\n    - {batch: 2}\n",
		   "spec.yaml:6:7: pause_after: batch 2 is past the last batch, 1 (for 1 replica)");
	expect_one(state, BASE "strategy: {pause_after: [0]}\n",
		   "spec.yaml:4:26: pause_after[0]: batch 0 does not exist; batches are numbered from 1");
	expect_one(state, BASE "strategy: {pause_after: [1, 1]}\n", "spec.yaml:4:29: pause_after[1]: batch 1 is listed twice");
	/* Past any batch a rollout can have: the real bound, not "at least -1000000000" (issue 11.8). */
	expect_one(state, BASE "strategy: {pause_after: [99999999999]}\n",
		   "spec.yaml:4:26: pause_after[0]: 99999999999 is out of range (1 to 10000)");
	expect_one(state, BASE "strategy: {pause_after: [{batch: 10001}]}\n",
		   "spec.yaml:4:34: batch: 10001 is out of range (1 to 10000)");
	expect_one(state, BASE "strategy: {pause_after: [-99999999999]}\n",
		   "spec.yaml:4:26: pause_after[0]: batch -99999999999 does not exist; batches are numbered from 1");
}

static void test_health_timeout_interval(void **state)
{
	expect_one(state, BASE "health:\n  tcp: {}\n  interval: 1s\n  timeout: 2s\n",
		   "spec.yaml:7:12: health: timeout 2s is longer than interval 1s");
	/* An explicit timeout longer than the interval stays an error, wherever the interval is. */
	expect_one(state, BASE "health: {timeout: 1s, interval: 200ms}\n",
		   "spec.yaml:4:19: health: timeout 1s is longer than interval 200ms");
	/* Only the interval written (issue 13, the README's example): the default timeout is the smaller of
	 * 1s and the interval. */
	struct fx *f = *state;
	assert_int_equal(parse(f, BASE "health: {http: {path: /}, interval: 200ms}\n"), 0);
	assert_int_equal(f->s.health.interval_ms, 200);
	assert_int_equal(f->s.health.timeout_ms, 200);
	assert_int_equal(parse(f, BASE "health: {tcp: {}, interval: 5s}\n"), 0);
	assert_int_equal(f->s.health.timeout_ms, 1000);
	assert_int_equal(parse(f, BASE "health: {tcp: {}, interval: 200ms, timeout: 100ms}\n"), 0);
	assert_int_equal(f->s.health.timeout_ms, 100);
	expect_one(state, BASE "health: {tcp: {}, exec: [./check]}\n",
		   "spec.yaml:4:25: health: exec: only one of http, tcp or exec may be set");
}

static void test_health_kinds(void **state)
{
	struct fx *f = *state;
	assert_int_equal(parse(f, BASE "health: {exec: [./check.sh, -v]}\n"), 0);
	assert_int_equal(f->s.health.kind, SPEC_CHECK_EXEC);
	assert_int_equal(f->s.health.n_exec, 2);
	assert_string_equal(f->s.health.exec[1], "-v");
	assert_null(f->s.health.exec[2]);
	assert_int_equal(parse(f, BASE "health: {tcp: {}}\n"), 0);
	assert_int_equal(f->s.health.kind, SPEC_CHECK_TCP);
	expect_one(state, BASE "health: {tcp: {port: 1}}\n", "spec.yaml:4:16: unknown key 'port' in tcp; it takes no keys");
	assert_int_equal(parse(f, BASE "health: {http: {}}\n"), 0);
	assert_string_equal(f->s.health.http_path, "/");
	assert_int_equal(f->s.health.http_status, 200);
}

static void test_health_deadline_zero(void **state)
{
	expect_one(state, BASE "strategy: {health_deadline: 0}\n",
		   "spec.yaml:4:29: health_deadline: must be more than 0");
}

static void test_min_requests(void **state)
{
	expect_one(state, BASE "strategy: {analysis: {max_error_rate: 1%, min_requests: 0}}\n",
		   "spec.yaml:4:57: min_requests: must be at least 1, got 0");
	expect_one(state, BASE "strategy: {analysis: {window: 10s}}\n",
		   "spec.yaml:4:22: analysis: set max_error_rate or max_p99 (or leave analysis out)");
}

static void test_signal(void **state)
{
	struct fx *f = *state;
	expect_one(state, BASE "stop: {signal: FOO}\n",
		   "spec.yaml:4:16: signal: unknown signal \"FOO\"; use TERM, INT, QUIT, HUP, USR1, USR2 or KILL");
	assert_int_equal(parse(f, BASE "stop: {signal: SIGINT}\n"), 0);
	assert_int_equal(f->s.stop_signal, SIGINT);
	assert_int_equal(parse(f, BASE "stop: {signal: USR2}\n"), 0);
	assert_int_equal(f->s.stop_signal, SIGUSR2);
	assert_int_equal(parse(f, BASE "stop: {signal: KILL}\n"), 0);
	assert_int_equal(f->s.stop_signal, SIGKILL);
}

static void test_syntax_error(void **state)
{
	expect_one(state, "service: [a, b\n",
		   "spec.yaml:1:10: the list opened here with '[' is not closed; add ']' where it ends");
	expect_one(state, "a: b\n c: d\n",
		   "spec.yaml:2:2: 'c' is indented more than 'a' above it (line 1), which already has a value; a top-level "
		   "key starts in column 1, like 'a'");
	expect_one(state, BASE "x: *anchor\n",
		   "spec.yaml:4:4: YAML aliases (*name) are not supported in a spec; write the value out");
	expect_one(state, BASE "---\nservice: b\n", "spec.yaml:4:1: only one YAML document is allowed in a spec");
}

/* libyaml's problems in the user's words, each at the place to fix (issue 12.9). */
static void test_yaml_mistakes(void **state)
{
	/* A key of template indented one space too far, and one too few. */
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate:\n  version: \"1\"\n   command: [./web]\n",
		   "spec.yaml:5:4: 'command' is indented more than 'version' above it (line 4), which already has a "
		   "value; a key of 'template' is indented by 2 spaces, like 'version'");
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate:\n  version: \"1\"\n command: [./web]\n",
		   "spec.yaml:5:2: 'command' is indented by 1 space, which lines up with no key above it: a key of "
		   "'template' is indented by 2 spaces, like 'version'; a top-level key starts in column 1, like "
		   "'template'");
	/* A list item out of line. */
	expect_one(state, BASE "targets:\n  - ssh://a@h1\n - ssh://a@h2\n",
		   "spec.yaml:6:2: this line is indented by 1 space, which lines up with no key above it: the items of "
		   "'targets' are indented by 2 spaces, like line 5; a top-level key starts in column 1, like "
		   "'targets'");
	expect_one(state, BASE "health:\n  exec:\n    - ./check\n    timeout: 1s\n",
		   "spec.yaml:7:5: 'timeout' is indented like the list item on line 6 but does not start with '- '; make "
		   "it an item, or indent it like the keys it belongs with");
	/* Tabs. */
	expect_one(state, BASE "drain:\n\ttimeout: 1s\n",
		   "spec.yaml:5:1: a tab character; YAML indents with spaces only: replace it with spaces");
	expect_one(state, BASE "drain:\n  timeout: 1s\n \t\n",
		   "spec.yaml:6:2: a tab character; YAML indents with spaces only: replace it with spaces");
	/* Quotes and brackets left open. */
	expect_one(state, "service: \"web\nlisten: 127.0.0.1:8080\n",
		   "spec.yaml:1:10: the quoted value that starts here is never closed; add the closing \"");
	expect_one(state, "service: 'web\n", "spec.yaml:1:10: the quoted value that starts here is never closed; add the closing '");
	expect_one(state, BASE "drain: {timeout: 1s\nstop: {}\n",
		   "spec.yaml:4:8: the mapping opened here with '{' is not closed; add '}' where it ends");
	expect_one(state, BASE "strategy: {batches: [1, \"2\" 3]}\n",
		   "spec.yaml:4:29: expected ',' or ']' here, in the list opened with '[' at column 21");
	expect_one(state, BASE "x: \"a\\qb\"\n",
		   "spec.yaml:4:6: '\\q' is not an escape of a double-quoted string; write \\\\ for a backslash, or use "
		   "single quotes");
	expect_one(state, BASE "x: \"a\" b\n",
		   "spec.yaml:4:8: unexpected text after a complete value; after a closing quote or bracket only a "
		   "comment (' # ...') may follow");
	/* A colon in a value, a colon without its space, a line without a colon. */
	expect_one(state, BASE "health:\n  http: path: /healthz\n",
		   "spec.yaml:5:13: a second ': ' on one line; a value that holds ': ' must be quoted (\"a: b\"), and a "
		   "nested key goes on its own line, indented");
	expect_one(state, "service: web\nreplicas:2\nlisten: 127.0.0.1:8080\n",
		   "spec.yaml:2:1: a key needs a space after its ':': write 'replicas: ...'");
	expect_one(state, "service: web\nlisten\nreplicas: 2\n",
		   "spec.yaml:2:1: this line has no ':'; a line of a mapping is 'key: value'");
	expect_one(state, BASE "health:\n  exec: - ./check\n",
		   "spec.yaml:5:9: a list item ('- ') cannot start on its key's line; put each item on its own line, "
		   "indented under the key, or write the list as [a, b]");
	expect_one(state, BASE "x: @a\n", "spec.yaml:4:4: a value cannot start with '@' unless it is quoted; write it in quotes (\"...\")");
}

/* template.files (issue 12.10): good entries kept in order, bad ones told, a change a new revision. */
static void test_template_files(void **state)
{
	struct fx *f = *state;
#define T "service: web\nlisten: 127.0.0.1:8080\ntemplate:\n  version: \"1\"\n  command: [nginx]\n  files:\n"
	assert_int_equal(parse(f, T "    - {path: nginx.conf, content: \"listen ${PORT};\"}\n"
				    "    - path: conf.d/a b.conf\n      content: \"\"\n"), 0);
	assert_int_equal(f->s.tmpl.n_files, 2);
	assert_string_equal(f->s.tmpl.files[0].path, "nginx.conf");
	assert_string_equal(f->s.tmpl.files[0].content, "listen ${PORT};");
	assert_string_equal(f->s.tmpl.files[1].path, "conf.d/a b.conf");
	assert_string_equal(f->s.tmpl.files[1].content, "");
	uint64_t h = spec_template_hash(&f->s.tmpl);
	assert_int_equal(parse(f, T "    - {path: nginx.conf, content: \"listen ${PORT}; \"}\n"
				    "    - path: conf.d/a b.conf\n      content: \"\"\n"), 0);
	assert_true(spec_template_hash(&f->s.tmpl) != h); /* another content: another revision */
	/* no files: the hash templates always had */
	assert_int_equal(parse(f, T "    []\n"), 0);
	uint64_t none = spec_template_hash(&f->s.tmpl);
	assert_int_equal(parse(f, "service: web\nlisten: 127.0.0.1:8080\ntemplate:\n  version: \"1\"\n  command: [nginx]\n"), 0);
	assert_true(spec_template_hash(&f->s.tmpl) == none);

	expect_one(state, T "    - {path: /etc/nginx.conf, content: x}\n",
		   "spec.yaml:7:14: files[0].path: \"/etc/nginx.conf\" is absolute; write a path relative to the "
		   "instance's directory (${INSTANCE_DIR})");
	expect_one(state, T "    - {path: conf/../../x, content: x}\n",
		   "spec.yaml:7:14: files[0].path: \"conf/../../x\" goes up with '..'; a file stays inside the "
		   "instance's directory");
	expect_one(state, T "    - {path: a//b, content: x}\n",
		   "spec.yaml:7:14: files[0].path: \"a//b\" has an empty or '.' part; write it like conf/app.conf");
	expect_one(state, T "    - {path: a, content: x}\n    - {path: b, content: y}\n    - {path: a, content: z}\n",
		   "spec.yaml:9:14: files[2].path: \"a\" is written twice (first at line 7)");
	expect_one(state, T "    - {path: a, content: x}\n    - {path: a/b, content: y}\n",
		   "spec.yaml:8:14: files[1].path: \"a/b\" and a (line 7): one cannot be a file and a directory");
	expect_one(state, T "    - {path: a}\n", "spec.yaml:7:7: files[0]: missing required key 'content'");
	expect_one(state, T "    - {content: x}\n",
		   "spec.yaml:7:7: files[0]: missing required key 'path'");
	expect_one(state, T "    - nginx.conf\n",
		   "spec.yaml:7:7: files[0]: expected a mapping {path: ..., content: ...}, got a string");
	expect_one(state, T "    - {path: a, content: [x]}\n", "spec.yaml:7:26: files[0].content: expected a string, got a list");
	/* 16 files at most */
	char buf[2048];
	size_t o = (size_t)snprintf(buf, sizeof buf, "%s", T);
	for (int i = 0; i < 17; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "    - {path: f%d, content: x}\n", i);
	expect_one(state, buf, "spec.yaml:7:5: files: at most 16 files, got 17");
	/* 64 KiB each (a longer string is over the spec's own limit for strings) */
	char *big = xmalloc(70 * 1024);
	o = (size_t)snprintf(big, 70 * 1024, "%s    - path: a\n      content: \"", T);
	memset(big + o, 'x', 64 * 1024 + 1);
	strcpy(big + o + 64 * 1024 + 1, "\"\n");
	expect_one(state, big, "spec.yaml:8:16: a string is longer than 64 KiB, the limit");
	memset(big + o, 'x', 64 * 1024);
	strcpy(big + o + 64 * 1024, "\"\n");
	assert_int_equal(parse(f, big), 0);
	assert_int_equal(strlen(f->s.tmpl.files[0].content), 64 * 1024);
	free(big);
	/* ssh targets: not yet */
	struct fx *g = f;
	assert_int_equal(parse(g, T "    - {path: a, content: x}\ntargets: [\"ssh://u@h1\"]\n"), -EINVAL);
	assert_int_equal(g->e.n, 1);
	assert_string_equal(g->e.v[0], "spec.yaml:7:5: template.files works with targets: local only (for now)");
#undef T
}

/* spec_render: the four names, $${ for a literal ${, everything else as written, a bound. */
static void test_render(void **state)
{
	(void)state;
	struct spec_vars v = {.port = 8080, .instance = "web-3", .instance_dir = "/d/web-3", .version = "2"};
	char *r = spec_render("${PORT}|${INSTANCE}|${INSTANCE_DIR}|${VERSION}|$PORT|$${PORT}|$$|${OTHER}|${PORT|$", &v);
	assert_string_equal(r, "8080|web-3|/d/web-3|2|$PORT|${PORT}|$$|${OTHER}|${PORT|$");
	free(r);
	struct spec_vars none = {.port = 1};
	r = spec_render("a${INSTANCE}b", &none);
	assert_string_equal(r, "ab");
	free(r);
	/* a long ${INSTANCE_DIR} many times over: refused past SPEC_RENDER_MAX, not grown without end */
	char *dir = xmalloc(4097);
	memset(dir, 'd', 4096);
	dir[4096] = '\0';
	struct spec_vars big = {.port = 1, .instance_dir = dir};
	char *text = xmalloc(15 * 300 + 1);
	for (int i = 0; i < 300; i++)
		memcpy(text + 15 * i, "${INSTANCE_DIR}", 15);
	text[15 * 300] = '\0';
	assert_null(spec_render(text, &big));
	text[15 * 200] = '\0';
	r = spec_render(text, &big);
	assert_non_null(r);
	assert_int_equal(strlen(r), 200 * 4096);
	free(r);
	free(text);
	free(dir);
}

/* A key written at the wrong level is told where it belongs (issue 12.9). */
static void test_key_belongs(void **state)
{
	struct fx *f = *state;
	/* command dedented out of template: template lacks it, and the top level says where it goes */
	assert_int_equal(parse(f, "service: web\nlisten: 127.0.0.1:8080\ntemplate:\n  version: \"1\"\ncommand: [./web]\n"),
			 -EINVAL);
	assert_int_equal(f->e.n, 2);
	assert_string_equal(f->e.v[0], "spec.yaml:4:3: template: missing required key 'command'");
	assert_string_equal(f->e.v[1],
			    "spec.yaml:5:1: unknown key 'command'; it is a key of template: indent it under 'template:'");
	expect_one(state, BASE "version: \"2\"\n",
		   "spec.yaml:4:1: unknown key 'version'; it is a key of template: indent it under 'template:'");
	expect_one(state, BASE "workdir: /tmp\n",
		   "spec.yaml:4:1: unknown key 'workdir'; it is a key of template: indent it under 'template:'");
	expect_one(state, BASE "interval: 1s\n",
		   "spec.yaml:4:1: unknown key 'interval'; it is a key of health: indent it under 'health:'");
	expect_one(state, BASE "http: {path: /}\n",
		   "spec.yaml:4:1: unknown key 'http'; it is a key of health: indent it under 'health:'");
	expect_one(state, BASE "max_surge: 1\n",
		   "spec.yaml:4:1: unknown key 'max_surge'; it is a key of strategy: indent it under 'strategy:'");
	expect_one(state, BASE "timeout: 1s\n",
		   "spec.yaml:4:1: unknown key 'timeout'; it is a key of health or drain: indent it under 'health:' or "
		   "'drain:'");
	expect_one(state, BASE "strategy:\n  window: 10s\n",
		   "spec.yaml:5:3: unknown key 'window' in strategy; it is a key of strategy.analysis: indent it under "
		   "'analysis:'");
	expect_one(state, BASE "drain:\n  timeout: 1s\n  replicas: 2\n",
		   "spec.yaml:6:3: unknown key 'replicas' in drain; it is a top-level key: write it at the start of a "
		   "line, not indented");
}

static void test_empty_and_not_mapping(void **state)
{
	const char *empty = "spec.yaml:1:1: the spec is empty; it needs at least service, listen and template";
	expect_one(state, "", empty);
	expect_one(state, "# nothing\n", empty);
	expect_one(state, "---\n...\n", empty);
	expect_one(state, "- a\n- b\n", "spec.yaml:1:1: the spec must be a mapping of keys (service: ..., replicas: ...), got a list");
	expect_one(state, "\n  hello\n", "spec.yaml:2:3: the spec must be a mapping of keys (service: ..., replicas: ...), got a string");
}

static void test_required(void **state)
{
	struct fx *f = *state;
	assert_int_equal(parse(f, "replicas: 2\n"), -EINVAL);
	assert_int_equal(f->e.n, 3);
	assert_string_equal(f->e.v[0], "spec.yaml:1:1: missing required key 'service'");
	assert_string_equal(f->e.v[1], "spec.yaml:1:1: missing required key 'template' (with version and command)");
	assert_string_equal(f->e.v[2], "spec.yaml:1:1: missing required key 'listen' (host:port; only lb: none goes without)");
	expect_one(state, "service: w\nlisten: localhost:1\ntemplate: {command: [x]}\n",
		   "spec.yaml:3:11: template: missing required key 'version'");
	expect_one(state, "service: w\nlisten: localhost:1\ntemplate: {version: x, command: []}\n",
		   "spec.yaml:3:33: command: must not be empty");
	/* lb: none needs no listen, and drops one that is given. */
	assert_int_equal(parse(f, "service: w\nlb: none\ntemplate: {version: x, command: [x]}\n"), 0);
	assert_int_equal(f->s.lb, SPEC_LB_NONE);
	assert_null(f->s.listen);
}

static void test_names_and_addresses(void **state)
{
	struct fx *f = *state;
	expect_one(state, "service: Web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\", command: [./web]}\n",
		   "spec.yaml:1:10: service: \"Web\" is not a valid name (1 to 63 lowercase letters, digits or '-', "
		   "starting with a letter)");
	expect_one(state, "service: 1web\nlisten: 127.0.0.1:8080\ntemplate: {version: \"1\", command: [./web]}\n",
		   "spec.yaml:1:10: service: \"1web\" is not a valid name (1 to 63 lowercase letters, digits or '-', "
		   "starting with a letter)");
	const char *bad[] = {"127.0.0.1:0", "127.0.0.1:65536", "1.2.3:80", "256.0.0.1:80", "example.com:80", ":80",
			     "[zz]:80", "127.0.0.1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char y[256];
		snprintf(y, sizeof y, "service: w\ntemplate: {version: x, command: [x]}\nlisten: \"%s\"\n", bad[i]);
		assert_int_equal(parse(f, y), -EINVAL);
		assert_int_equal(f->e.n, 1);
		assert_non_null(strstr(f->e.v[0], "spec.yaml:3:9: listen: \""));
		assert_non_null(strstr(f->e.v[0], "is not host:port"));
	}
	const char *good[] = {"127.0.0.1:1", "0.0.0.0:65535", "[::1]:8080", "[::]:80", "localhost:8080"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char y[256];
		snprintf(y, sizeof y, "service: w\ntemplate: {version: x, command: [x]}\nlisten: \"%s\"\n", good[i]);
		assert_int_equal(parse(f, y), 0);
		assert_string_equal(f->s.listen, good[i]);
	}
}

static void test_zones_and_ports(void **state)
{
	struct fx *f = *state;
	const char *y = BASE "targets:\n"
			     "  - {host: ssh://u@10.0.0.1, labels: {zone: b}, ports: [8081, 8080]}\n"
			     "  - {host: ssh://u@10.0.0.2, labels: {zone: a}}\n"
			     "  - {host: ssh://u@10.0.0.3, labels: {zone: b}}\n"
			     "strategy: {zones: {label: zone, one_per_batch: true, min_available: 50%}}\n";
	assert_int_equal(parse(f, y), 0);
	struct spec *s = &f->s;
	assert_int_equal(s->targets[0].n_ports, 2);
	assert_int_equal(s->targets[0].ports[0], 8081);
	assert_int_equal(s->targets[1].n_ports, 0);
	assert_int_equal(s->targets[0].weight, 1); /* the default */
	assert_int_equal(s->targets[2].weight, 1);
	assert_string_equal(s->strategy.zones.label, "zone");
	assert_true(s->strategy.zones.one_per_batch);
	assert_int_equal(s->strategy.zones.min_available.value, 50);
	/* Zones in the order of targets; shares spread over hosts, earlier hosts first. */
	assert_int_equal(spec_zone_count(s), 2);
	assert_string_equal(spec_zone_name(s, 0), "b");
	assert_string_equal(spec_zone_name(s, 1), "a");
	assert_int_equal(spec_zone_index(s, "a"), 1);
	assert_int_equal(spec_zone_index(s, "c"), -1);
	int share[2];
	spec_zone_shares(s, 5, share); /* hosts get 2, 2, 1 */
	assert_int_equal(share[0], 3);
	assert_int_equal(share[1], 2);

	assert_int_equal(s->ssh_preset, SPEC_PRESET_PROCESS);
	assert_int_equal(s->ssh_parallel, 10);
	assert_int_equal(parse(f, BASE "targets: [ssh://u@h]\nssh: {preset: systemd, parallel: 3}\n"), 0);
	assert_int_equal(f->s.ssh_preset, SPEC_PRESET_SYSTEMD);
	assert_int_equal(f->s.ssh_parallel, 3);
	expect_one(state, BASE "ssh: {preset: docker}\n",
		   "spec.yaml:4:15: preset: \"docker\" is not a preset; use process or systemd");
	expect_one(state, BASE "ssh: {parallel: 0}\n", "spec.yaml:4:17: parallel: 0 is out of range (1 to 1000)");
	expect_one(state, BASE "targets: [{host: ssh://u@h, ports: [80, 80]}]\n",
		   "spec.yaml:4:41: ports[1]: port 80 is listed twice");
	expect_one(state, BASE "targets: [{host: ssh://u@h, ports: []}]\n",
		   "spec.yaml:4:36: ports: must not be empty (leave it out to use the daemon's port range)");
	/* weight: 1..256 per target, default 1 (plain-URL targets too) */
	const char *w = BASE "targets: [{host: ssh://u@a, weight: 3}, ssh://u@b, {host: ssh://u@c, weight: 256}]\n";
	assert_int_equal(parse(f, w), 0);
	assert_int_equal(f->s.n_targets, 3);
	assert_int_equal(f->s.targets[0].weight, 3);
	assert_int_equal(f->s.targets[1].weight, 1);
	assert_int_equal(f->s.targets[2].weight, 256);
	expect_one(state, BASE "targets: [{host: ssh://u@h, weight: 0}]\n",
		   "spec.yaml:4:37: weight: 0 is out of range (1 to 256)");
	expect_one(state, BASE "targets: [{host: ssh://u@h, weight: 257}]\n",
		   "spec.yaml:4:37: weight: 257 is out of range (1 to 256)");
	expect_one(state, BASE "targets: [{host: ssh://u@h, weight: heavy}]\n",
		   "spec.yaml:4:37: weight: expected an integer, got a string");
	expect_one(state, BASE "strategy: {zones: {label: zone}}\n",
		   "spec.yaml:4:19: strategy.zones: zones are labels of ssh targets (targets: local has none)");
	expect_one(state, BASE "targets: [ssh://u@h]\nstrategy: {zones: {label: zone}}\n",
		   "spec.yaml:5:19: strategy.zones: target ssh://u@h has no label 'zone'");
	expect_one(state, BASE "targets: [{host: ssh://u@h, labels: {zone: a}}]\n"
			       "strategy: {max_surge: 0, max_unavailable: 1, zones: {label: zone, min_available: 1}}\n",
		   "spec.yaml:5:53: strategy.zones: min_available needs max_surge above 0 (with no room to start a "
		   "new instance first, a zone at its floor could never be replaced)");
	expect_one(state, BASE "targets: [{host: ssh://u@h, labels: {zone: a}}]\nstrategy: {zones: {one_per_batch: true}}\n",
		   "spec.yaml:5:19: zones: missing required key 'label' (the target label that names a host's zone)");
}

static void test_targets_lb_notify(void **state)
{
	struct fx *f = *state;
	const char *y = BASE "targets:\n  - ssh://deploy@10.0.0.1\n  - {host: \"ssh://ops@web2.example:2222\", labels: "
			     "{zone: b}}\n  - ssh://u@[::1]:22\n"
			     "lb: {haproxy: {socket: /run/haproxy/admin.sock}}\n"
			     "notify:\n  - {url: \"https://hooks.example/x\", slack: true}\n";
	assert_int_equal(parse(f, y), 0);
	struct spec *s = &f->s;
	assert_false(s->targets_local);
	assert_int_equal(s->n_targets, 3);
	assert_string_equal(s->targets[0].user, "deploy");
	assert_string_equal(s->targets[0].host, "10.0.0.1");
	assert_int_equal(s->targets[0].port, 22);
	assert_string_equal(s->targets[1].url, "ssh://ops@web2.example:2222");
	assert_string_equal(s->targets[1].host, "web2.example");
	assert_int_equal(s->targets[1].port, 2222);
	assert_int_equal(s->targets[1].n_labels, 1);
	assert_string_equal(s->targets[1].labels[0].name, "zone");
	assert_string_equal(s->targets[1].labels[0].value, "b");
	assert_string_equal(s->targets[2].host, "::1");
	assert_int_equal(s->lb, SPEC_LB_HAPROXY);
	assert_string_equal(s->haproxy_socket, "/run/haproxy/admin.sock");
	assert_string_equal(s->haproxy_backend, "web"); /* defaults to the service name */
	assert_int_equal(s->n_notify, 1);
	assert_int_equal(s->notify[0].events, 0);
	assert_true(s->notify[0].slack);

	expect_one(state, BASE "targets: [\"ssh://nouser\"]\n",
		   "spec.yaml:4:11: targets[0]: \"ssh://nouser\" is not ssh://user@host[:port]");
	expect_one(state, BASE "targets: [\"ssh://a@h\", \"ssh://a@h:22\"]\n",
		   "spec.yaml:4:24: targets[1]: a@h port 22 is already targets[0]");
	expect_one(state, BASE "targets: remote\n",
		   "spec.yaml:4:10: targets: expected local or a list of ssh://user@host[:port], got a string");
	expect_one(state, BASE "lb: nginx\n",
		   "spec.yaml:4:5: lb: \"nginx\" is not a load balancer; use builtin, none or {haproxy: {...}}");
	expect_one(state, BASE "notify: [{url: \"http://x/\", events: [finished]}]\n",
		   "spec.yaml:4:38: events: unknown event \"finished\"; use started, paused, completed, failed, "
		   "rolled_back or aborted");
}

static void test_three_mistakes(void **state)
{
	struct fx *f = *state;
	const char *y = "service: web\n"
			"replicas: many\n"
			"listen: 127.0.0.1:8080\n"
			"template: {version: \"1\", command: [./web]}\n"
			"strategy:\n"
			"  max_surge: \"125x\"\n"
			"  pause_afterr: [1]\n";
	assert_int_equal(parse(f, y), -EINVAL);
	for (size_t i = 0; i < f->e.n; i++)
		print_message("  got: %s\n", f->e.v[i]);
	assert_int_equal(f->e.n, 3);
	assert_string_equal(f->e.v[0], "spec.yaml:2:11: replicas: expected an integer, got a string");
	assert_string_equal(f->e.v[1], "spec.yaml:6:14: max_surge: \"125x\" is not a count or a percent");
	assert_string_equal(f->e.v[2], "spec.yaml:7:3: unknown key 'pause_afterr' in strategy; did you mean 'pause_after'?");
}

static void test_secrets_never_in_messages(void **state)
{
	struct fx *f = *state;
	const char *bad = "service: web\nlisten: 127.0.0.1:8080\n"
			  "template:\n  version: \"1\"\n  command: [./web]\n"
			  "  env:\n"
			  "    TOKEN: {value: hunter2, secret: sure}\n"
			  "    TOKEN: {value: hunter2, secret: true}\n"
			  "    \"9X\": {value: hunter2, secret: true}\n"
			  "    PW: {value: [hunter2], secret: true}\n"
			  "    KEY: {valu: hunter2, secret: true}\n";
	assert_int_equal(parse(f, bad), -EINVAL);
	assert_true(f->e.n >= 5);
	for (size_t i = 0; i < f->e.n; i++) {
		print_message("  got: %s\n", f->e.v[i]);
		assert_null(strstr(f->e.v[i], "hunter2"));
	}
	/* And a good secret is kept, flagged. */
	const char *good = "service: web\nlisten: 127.0.0.1:8080\n"
			   "template:\n  version: \"1\"\n  command: [./web]\n"
			   "  env: {TOKEN: {value: hunter2, secret: true}}\n";
	assert_int_equal(parse(f, good), 0);
	assert_string_equal(f->s.tmpl.env[0].value, "hunter2");
	assert_true(f->s.tmpl.env[0].secret);
}

static void test_env_sorted(void **state)
{
	struct fx *f = *state;
	const char *y = "service: web\nlisten: 127.0.0.1:8080\n"
			"template:\n  version: \"1\"\n  command: [./web]\n"
			"  env: {ZED: z, ALPHA: a, MID: 3, B_2: {value: b}}\n";
	assert_int_equal(parse(f, y), 0);
	assert_int_equal(f->s.tmpl.n_env, 4);
	assert_string_equal(f->s.tmpl.env[0].name, "ALPHA");
	assert_string_equal(f->s.tmpl.env[1].name, "B_2");
	assert_string_equal(f->s.tmpl.env[1].value, "b");
	assert_string_equal(f->s.tmpl.env[2].name, "MID");
	assert_string_equal(f->s.tmpl.env[2].value, "3");
	assert_string_equal(f->s.tmpl.env[3].name, "ZED");
	expect_one(state, "service: web\nlisten: 127.0.0.1:8080\ntemplate: {version: x, command: [x], env: {A-B: x}}\n",
		   "spec.yaml:3:44: env: 'A-B' is not a variable name (letters, digits and '_', not starting with a digit)");
}

static uint64_t hash_of(struct fx *f, const char *env)
{
	char y[512];
	snprintf(y, sizeof y,
		 "service: web\nlisten: 127.0.0.1:8080\nreplicas: 3\n"
		 "template:\n  version: \"1\"\n  command: [./web, -v]\n  env: %s\n",
		 env);
	assert_int_equal(parse(f, y), 0);
	return spec_template_hash(&f->s.tmpl);
}

static void test_template_hash(void **state)
{
	struct fx *f = *state;
	uint64_t a = hash_of(f, "{A: 1, B: 2}");
	/* The same env written in another order is the same template. */
	uint64_t b = hash_of(f, "{B: 2, A: 1}");
	uint64_t c = hash_of(f, "{A: 1, B: 3}");
	assert_true(a == b);
	assert_true(a != c);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	/* Input over 1 MiB. */
	size_t n = SPEC_PARSE_MAX_BYTES + 1;
	char *big = xmalloc(n + 1);
	memset(big, '#', n);
	big[n] = '\0';
	assert_int_equal(spec_parse(big, n, "spec.yaml", &f->s, &f->e), -EINVAL);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], "spec.yaml:1:1: the spec is larger than 1 MiB, the limit");
	spec_errors_clear(&f->e);

	/* Nesting: 33 flow sequences inside the root mapping's value. */
	char deep[256] = "x: ";
	for (int i = 0; i < 32; i++)
		strcat(deep, "[");
	strcat(deep, "1");
	for (int i = 0; i < 32; i++)
		strcat(deep, "]");
	strcat(deep, "\n");
	expect_one(state, deep, "spec.yaml:1:35: nesting deeper than 32 levels");

	/* A string over 64 KiB. */
	size_t sl = SPEC_PARSE_MAX_STRING + 1;
	char *ls = xmalloc(sl + 32);
	memcpy(ls, "service: ", 9);
	memset(ls + 9, 'a', sl);
	strcpy(ls + 9 + sl, "\n");
	expect_one(state, ls, "spec.yaml:1:10: a string is longer than 64 KiB, the limit");
	free(ls);

	/* More than 10000 nodes: the root, the key and the list are 3, so item 9998 is node 10001. */
	size_t cap = 10 + 3 * 10000 + 8, o = 0;
	char *many = xmalloc(cap);
	o += (size_t)snprintf(many, cap, "x: [");
	for (int i = 0; i < 10000; i++)
		o += (size_t)snprintf(many + o, cap - o, "1,");
	snprintf(many + o, cap - o, "1]\n");
	expect_one(state, many, "spec.yaml:1:19999: more than 10000 YAML nodes; a spec is not that large");
	free(many);
	free(big);
}

static void test_parse_file(void **state)
{
	struct fx *f = *state;
	assert_int_equal(spec_parse_file("/nonexistent/spec.yaml", &f->s, &f->e), -ENOENT);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], "/nonexistent/spec.yaml: cannot open: No such file or directory");
	spec_errors_clear(&f->e);

	assert_int_equal(spec_parse_file("/", &f->s, &f->e), -EISDIR);
	assert_int_equal(f->e.n, 1);
	assert_string_equal(f->e.v[0], "/: cannot read: Is a directory");
	spec_errors_clear(&f->e);

	char path[] = "/tmp/test_spec.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, design_example, strlen(design_example)), (ssize_t)strlen(design_example));
	close(fd);
	int rc = spec_parse_file(path, &f->s, &f->e);
	unlink(path);
	assert_int_equal(rc, 0);
	assert_string_equal(f->s.file, path);
	assert_string_equal(f->s.service, "hello");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_design_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_did_you_mean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_amount_and_duration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_amount_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_surge_unavailable_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_percent_over_100, setup, teardown),
		cmocka_unit_test_setup_teardown(test_amount_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_characters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_arithmetic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_timeout_interval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_deadline_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_mistakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_belongs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_template_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_not_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_and_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_targets_lb_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zones_and_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_mistakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_never_in_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_template_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
