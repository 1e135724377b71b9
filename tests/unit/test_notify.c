/* Unit tests of the notifier's pure parts: the retry schedule, which engine events notify, the
 * per-hook filters and the request bodies (JSON and Slack). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "daemon/notify.h"

static void test_retry_schedule(void **state)
{
	(void)state;
	assert_int_equal(notify_retry_delay_ms(0), -1);
	assert_int_equal(notify_retry_delay_ms(1), 1000);
	assert_int_equal(notify_retry_delay_ms(2), 2000);
	assert_int_equal(notify_retry_delay_ms(3), 4000);
	assert_int_equal(notify_retry_delay_ms(4), 8000);
	/* Five attempts in all: after the fifth failure, none. */
	assert_int_equal(NOTIFY_ATTEMPTS, 5);
	assert_int_equal(notify_retry_delay_ms(5), -1);
	assert_int_equal(notify_retry_delay_ms(100), -1);
}

static void test_event_mapping(void **state)
{
	(void)state;
	struct engine_rollout ro;
	memset(&ro, 0, sizeof ro);
	ro.kind = RO_KIND_DEPLOY;
	assert_int_equal(notify_event_of(EV_ROLLOUT_STARTED, &ro), SPEC_EV_STARTED);
	assert_int_equal(notify_event_of(EV_PAUSED, &ro), SPEC_EV_PAUSED);
	assert_int_equal(notify_event_of(EV_COMPLETE, &ro), SPEC_EV_COMPLETED);
	assert_int_equal(notify_event_of(EV_FAILED, &ro), SPEC_EV_FAILED);
	assert_int_equal(notify_event_of(EV_ROLLED_BACK, &ro), SPEC_EV_ROLLED_BACK);
	assert_int_equal(notify_event_of(EV_ABORTED, &ro), SPEC_EV_ABORTED);
	assert_int_equal(notify_event_of(EV_INSTANCE_AVAILABLE, &ro), -1);
	assert_int_equal(notify_event_of(EV_RESUMED, &ro), -1);
	/* Rolling back after a failure is the failure; after an abort it is not (aborted follows). */
	ro.kind = RO_KIND_ROLLBACK;
	assert_int_equal(notify_event_of(EV_ROLLING_BACK, &ro), SPEC_EV_FAILED);
	ro.kind = RO_KIND_ABORT;
	assert_int_equal(notify_event_of(EV_ROLLING_BACK, &ro), -1);
	assert_string_equal(notify_event_name(SPEC_EV_ROLLED_BACK), "rolled_back");
}

static void test_filters(void **state)
{
	(void)state;
	struct spec_notify all = {.url = "http://x/", .events = 0};
	struct spec_notify some = {.url = "http://x/",
				   .events = 1u << SPEC_EV_FAILED | 1u << SPEC_EV_ROLLED_BACK};
	for (int e = 0; e < SPEC_EV__COUNT; e++)
		assert_true(notify_wants(&all, (enum spec_notify_event)e));
	assert_true(notify_wants(&some, SPEC_EV_FAILED));
	assert_true(notify_wants(&some, SPEC_EV_ROLLED_BACK));
	assert_false(notify_wants(&some, SPEC_EV_STARTED));
	assert_false(notify_wants(&some, SPEC_EV_COMPLETED));
}

static void test_bodies(void **state)
{
	(void)state;
	struct notify_msg m = {
	    .service = "hello",
	    .event = SPEC_EV_FAILED,
	    .text =
		"rollout 3 failed, rolling back to revision 1: analysis failed: error rate 30.0% \"quoted\"",
	    .rollout = 3,
	    .from_rev = 1,
	    .to_rev = 2,
	    .state = "rolling_back",
	    .reason = "analysis failed",
	    .ts = 1700000000000,
	};
	struct spec_notify h = {.url = "http://x/"};
	char *body = notify_body(&h, &m);
	json_error_t err;
	json_t *o = json_loads(body, 0, &err);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "service")), "hello");
	assert_string_equal(json_string_value(json_object_get(o, "event")), "failed");
	assert_string_equal(json_string_value(json_object_get(o, "text")), m.text);
	assert_int_equal(json_integer_value(json_object_get(o, "rollout")), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "from_revision")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "to_revision")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "rolling_back");
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "analysis failed");
	assert_true(json_integer_value(json_object_get(o, "ts")) == 1700000000000);
	json_decref(o);
	free(body);

	h.slack = true;
	body = notify_body(&h, &m);
	o = json_loads(body, 0, &err);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 1);
	const char *text = json_string_value(json_object_get(o, "text"));
	assert_non_null(text);
	assert_non_null(strstr(text, "hello failed: rollout 3 failed"));
	json_decref(o);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_schedule),
	    cmocka_unit_test(test_event_mapping),
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
