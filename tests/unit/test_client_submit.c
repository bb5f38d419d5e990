/* SPDX-License-Identifier: MIT */
/*
 * test_client_submit.c — submission bodies (client/submit.h): what each option puts on the
 * wire and what it leaves to the server's defaults (zeroed options, as
 * errand_submit_options_init() makes them, leave everything), ERRAND_YES and ERRAND_NO,
 * errors naming the field (with the batch prefix), and the options a task definition implies
 * (cache key of INPUTS_AND_VERSION; a definition left at zero implies none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "client/submit.h"
#include "core/cache_key.h"
#include "core/json.h"
#include "core/mem.h"

static char *body_text(const char *task, const char *params, const errand_submit_options *opt)
{
    json_t *o = NULL;
    errand_error err;
    int rc = submit_build(task, params, opt, NULL, &o, &err);
    if (rc)
        fail_msg("submit_build failed: %s", err.message);
    char *text = json_canonical(o);
    json_decref(o);
    return text;
}

static void default_options_send_only_task_and_parameters(void **state)
{
    (void)state;
    char *t = body_text("t", NULL, NULL);
    assert_string_equal(t, "{\"parameters\":{},\"task\":\"t\"}");
    mem_free(t);
    errand_submit_options zero = {0};
    t = body_text("t", "{\"b\": 1, \"a\": [true]}", &zero);
    assert_string_equal(t, "{\"parameters\":{\"a\":[true],\"b\":1},\"task\":\"t\"}");
    mem_free(t);
    errand_submit_options opt;
    memset(&opt, 0xff, sizeof opt);
    errand_submit_options_init(&opt);
    assert_memory_equal(&opt, &zero, sizeof opt);
}

static void persist_result_yes_and_no_are_said_on_the_wire(void **state)
{
    (void)state;
    errand_submit_options opt = {.persist_result = ERRAND_NO};
    char *t = body_text("t", "{}", &opt);
    assert_string_equal(t, "{\"parameters\":{},\"persist_result\":false,\"task\":\"t\"}");
    mem_free(t);
    opt.persist_result = ERRAND_YES;
    t = body_text("t", "{}", &opt);
    assert_string_equal(t, "{\"parameters\":{},\"persist_result\":true,\"task\":\"t\"}");
    mem_free(t);
}

static void every_option_reaches_the_wire(void **state)
{
    (void)state;
    errand_submit_options opt;
    errand_submit_options_init(&opt);
    const char *tags[] = {"web", "x"};
    double delays[] = {1, 2.5};
    opt.idempotency_key = "k1";
    opt.scheduled_at_ms = 1795947919123LL; /* 2026-11-29T10:25:19.123Z */
    opt.priority = 7;
    opt.tags = tags;
    opt.n_tags = 2;
    opt.retries = 3;
    opt.retry_delays = delays;
    opt.n_retry_delays = 2;
    opt.retry_jitter_factor = 0.5;
    opt.timeout_seconds = 9;
    opt.cache_key = "ck";
    opt.cache_expiration_seconds = 60;
    opt.persist_result = ERRAND_YES;
    char *t = body_text("t", "{}", &opt);
    assert_string_equal(t,
                        "{\"cache_expiration_seconds\":60.0,\"cache_key\":\"ck\","
                        "\"idempotency_key\":\"k1\",\"parameters\":{},\"persist_result\":true,"
                        "\"priority\":7,\"retries\":3,\"retry_delay_seconds\":[1.0,2.5],"
                        "\"retry_jitter_factor\":0.5,\"scheduled_at\":\"2026-11-29T10:25:19.123Z\","
                        "\"tags\":[\"web\",\"x\"],\"task\":\"t\",\"timeout_seconds\":9.0}");
    mem_free(t);
    errand_submit_options_init(&opt);
    opt.delay_seconds = 1.5;
    t = body_text("t", "{}", &opt);
    assert_string_equal(t, "{\"delay_seconds\":1.5,\"parameters\":{},\"task\":\"t\"}");
    mem_free(t);
}

static void bad_input_names_the_field(void **state)
{
    (void)state;
    json_t *o = NULL;
    errand_error err;
    assert_int_equal(submit_build("t", "{\"a\":", NULL, NULL, &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "parameters");
    assert_non_null(strstr(err.message, "not valid JSON"));
    assert_int_equal(submit_build("t", "[1]", NULL, "runs[3]", &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[3].parameters");
    assert_non_null(strstr(err.message, "must be a JSON object"));
    assert_int_equal(submit_build("", "{}", NULL, "runs[0]", &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[0].task");
    assert_int_equal(submit_build(NULL, "{}", NULL, NULL, &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "task");
    errand_submit_options opt;
    errand_submit_options_init(&opt);
    const char *tags[] = {"ok", NULL};
    opt.tags = tags;
    opt.n_tags = 2;
    assert_int_equal(submit_build("t", "{}", &opt, NULL, &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "tags");
    assert_null(o);
    /* -1, the "default" before 0 was, is refused rather than sent */
    errand_submit_options_init(&opt);
    opt.retries = -1;
    assert_int_equal(submit_build("t", "{}", &opt, "runs[2]", &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[2].retries");
    assert_non_null(strstr(err.message, "got -1"));
    errand_submit_options_init(&opt);
    opt.persist_result = -1;
    assert_int_equal(submit_build("t", "{}", &opt, NULL, &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_result");
    assert_non_null(strstr(err.message, "leave it 0"));
    opt.persist_result = ERRAND_NO + 1;
    assert_int_equal(submit_build("t", "{}", &opt, NULL, &o, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_result");
    assert_null(o);
}

static void task_definition_implies_its_options_and_cache_key(void **state)
{
    (void)state;
    double delays[] = {1, 10};
    errand_task_def def = {.name = "create_structured_output",
                           .retries = 2,
                           .retry_delays = delays,
                           .n_retry_delays = 2,
                           .retry_jitter_factor = 0.1,
                           .timeout_seconds = 30,
                           .cache_policy = ERRAND_CACHE_INPUTS_AND_VERSION,
                           .cache_expiration_seconds = 3600,
                           .persist_result = ERRAND_YES};
    errand_submit_options opt;
    char key[CACHE_KEY_LEN];
    errand_error err;
    assert_int_equal(submit_options_from_def(&def, "{\"b\":2,\"a\":1}", &opt, key, &err), 0);
    assert_int_equal(opt.retries, 2);
    assert_ptr_equal(opt.retry_delays, delays);
    assert_int_equal(opt.n_retry_delays, 2);
    assert_true(opt.timeout_seconds == 30);
    assert_int_equal(opt.persist_result, ERRAND_YES);
    assert_ptr_equal(opt.cache_key, key);
    assert_true(opt.cache_expiration_seconds == 3600);
    /* NULL version means "1"; the key ignores key order of the parameters */
    char expected[65];
    assert_int_equal(errand_cache_key_inputs("create_structured_output", "1", "{\"a\":1,\"b\":2}",
                                             expected, &err),
                     0);
    assert_string_equal(key, expected);

    def.cache_policy = ERRAND_CACHE_NONE;
    assert_int_equal(submit_options_from_def(&def, "{}", &opt, key, &err), 0);
    assert_null(opt.cache_key);
    def.name = NULL;
    assert_int_equal(submit_options_from_def(&def, "{}", &opt, key, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "name");
}

static void a_definition_left_at_zero_implies_the_defaults(void **state)
{
    (void)state;
    errand_task_def def = {.name = "t"};
    errand_submit_options opt;
    char key[CACHE_KEY_LEN];
    errand_error err;
    assert_int_equal(submit_options_from_def(&def, "{}", &opt, key, &err), 0);
    char *t = body_text("t", "{}", &opt);
    assert_string_equal(t, "{\"parameters\":{},\"task\":\"t\"}");
    mem_free(t);
    def.persist_result = ERRAND_NO;
    assert_int_equal(submit_options_from_def(&def, "{}", &opt, key, &err), 0);
    t = body_text("t", "{}", &opt);
    assert_string_equal(t, "{\"parameters\":{},\"persist_result\":false,\"task\":\"t\"}");
    mem_free(t);
}

static void dependencies_reach_the_wire_and_none_sends_nothing(void **state)
{
    (void)state;
    json_t *o = NULL;
    errand_error err;
    assert_int_equal(submit_build("t", NULL, NULL, NULL, &o, &err), 0);
    assert_int_equal(submit_add_deps(o, NULL, NULL, &err), 0);
    errand_dependencies none = {0};
    assert_int_equal(submit_add_deps(o, &none, NULL, &err), 0);
    char *t = json_canonical(o);
    assert_string_equal(t, "{\"parameters\":{},\"task\":\"t\"}");
    mem_free(t);
    const char *ups[] = {"runs[0]", "01a239a9-b36c-7752-8afb-aa40b1ca6550"};
    errand_dependencies deps = {.wait_for = ups, .n_wait_for = 2, .allow_upstream_failure = true};
    assert_int_equal(submit_add_deps(o, &deps, NULL, &err), 0);
    t = json_canonical(o);
    assert_string_equal(t, "{\"allow_upstream_failure\":true,\"parameters\":{},\"task\":\"t\","
                           "\"wait_for\":[\"runs[0]\",\"01a239a9-b36c-7752-8afb-aa40b1ca6550\"]}");
    mem_free(t);
    errand_dependencies bad = {.wait_for = NULL, .n_wait_for = 1};
    assert_int_equal(submit_add_deps(o, &bad, "runs[2]", &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[2].wait_for");
    json_decref(o);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_options_send_only_task_and_parameters),
        cmocka_unit_test(persist_result_yes_and_no_are_said_on_the_wire),
        cmocka_unit_test(every_option_reaches_the_wire),
        cmocka_unit_test(bad_input_names_the_field),
        cmocka_unit_test(task_definition_implies_its_options_and_cache_key),
        cmocka_unit_test(a_definition_left_at_zero_implies_the_defaults),
        cmocka_unit_test(dependencies_reach_the_wire_and_none_sends_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
