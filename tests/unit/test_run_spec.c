/* SPDX-License-Identifier: MIT */
/*
 * test_run_spec.c — validation of task-run submissions (server/submission.c) against the field
 * table of docs/api.md: defaults, every field's type and range, unknown and missing fields,
 * scheduled_at vs delay_seconds, tags and retry delays, error paths with the runs[i] prefix
 * in batches, and out-of-memory at every allocation without leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "server/submission.h"

#define NOW_MS 1764411919000LL /* 2025-11-29T10:25:19Z */

/* Parses one submission from JSON text; returns run_spec_parse's code. */
static int parse(const char *text, struct run_spec *spec, errand_error *err)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!obj)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    error_clear(err);
    int rc = run_spec_parse(obj, NULL, NOW_MS, spec, err);
    json_decref(obj);
    return rc;
}

/* Expects the submission to fail with code on field. */
static void expect_error(const char *text, int code, const char *field)
{
    struct run_spec spec;
    errand_error err;
    int rc = parse(text, &spec, &err);
    if (rc != code || strcmp(err.field, field) != 0)
        fail_msg("%s: expected %d on '%s', got %d on '%s' (%s)", text, code, field, rc, err.field,
                 err.message);
    assert_int_equal(err.code, code);
    assert_null(spec.task); /* nothing left to free */
}

static void expect_ok(const char *text, struct run_spec *spec)
{
    errand_error err;
    int rc = parse(text, spec, &err);
    if (rc != 0)
        fail_msg("%s: expected success, got %d on '%s' (%s)", text, rc, err.field, err.message);
}

static char *repeat(const char *unit, size_t n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, unit, len);
    s[len * n] = '\0';
    return s;
}

/* --- defaults and the happy path ---------------------------------------------------------- */

static void minimal_submission_gets_defaults(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"send_email\"}", &s);
    assert_string_equal(s.task, "send_email");
    assert_string_equal(s.parameters, "{}");
    assert_string_equal(s.tags, "[]");
    assert_null(s.idempotency_key);
    assert_null(s.cache_key);
    assert_true(s.scheduled_at_ms == NOW_MS);
    assert_int_equal(s.priority, 0);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.n_retry_delays, 0);
    assert_true(s.retry_jitter_factor == 0);
    assert_true(s.timeout_seconds == 0);
    assert_true(s.cache_expiration_seconds == 0);
    assert_int_equal(s.persist_result, -1);
    run_spec_clear(&s);
}

static void null_fields_mean_absent(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"parameters\": null, \"tags\": null, \"priority\": null, "
              "\"retry_delay_seconds\": null, \"persist_result\": null, \"cache_key\": null}",
              &s);
    assert_string_equal(s.parameters, "{}");
    assert_string_equal(s.tags, "[]");
    assert_int_equal(s.persist_result, -1);
    assert_null(s.cache_key);
    run_spec_clear(&s);
}

static void every_field_is_carried_over(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"create_structured_output\", \"parameters\": {\"payload\": \"x\", "
              "\"n\": [1, 2]}, \"idempotency_key\": \"k-1\", \"priority\": -5, \"tags\": [\"web\", "
              "\"é\"], \"retries\": 3, \"retry_delay_seconds\": [1, 10.5], "
              "\"retry_jitter_factor\": 0.5, \"timeout_seconds\": 2.5, \"cache_key\": \"ck\", "
              "\"cache_expiration_seconds\": 60, \"persist_result\": true, \"delay_seconds\": 1.5}",
              &s);
    assert_string_equal(s.task, "create_structured_output");
    assert_string_equal(s.parameters, "{\"payload\":\"x\",\"n\":[1,2]}");
    assert_string_equal(s.idempotency_key, "k-1");
    assert_int_equal(s.priority, -5);
    assert_string_equal(s.tags, "[\"web\",\"é\"]");
    assert_int_equal(s.retries, 3);
    assert_int_equal(s.n_retry_delays, 2);
    assert_true(s.retry_delays[0] == 1 && s.retry_delays[1] == 10.5);
    assert_true(s.retry_jitter_factor == 0.5);
    assert_true(s.timeout_seconds == 2.5);
    assert_string_equal(s.cache_key, "ck");
    assert_true(s.cache_expiration_seconds == 60);
    assert_int_equal(s.persist_result, 1);
    assert_true(s.scheduled_at_ms == NOW_MS + 1500);
    run_spec_clear(&s);
}

static void persist_result_false_is_zero(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"persist_result\": false}", &s);
    assert_int_equal(s.persist_result, 0);
    run_spec_clear(&s);
}

/* --- the body and field names ------------------------------------------------------------- */

static void body_must_be_an_object(void **state)
{
    (void)state;
    expect_error("[]", ERR_INVALID_JSON, "");
    expect_error("\"task\"", ERR_INVALID_JSON, "");
}

static void unknown_field_is_named(void **state)
{
    (void)state;
    expect_error("{\"task\": \"t\", \"retry\": 3}", ERR_UNKNOWN_FIELD, "retry");
    expect_error("{\"task\": \"t\", \"Task\": \"u\"}", ERR_UNKNOWN_FIELD, "Task");
}

static void task_is_required(void **state)
{
    (void)state;
    expect_error("{}", ERR_MISSING_FIELD, "task");
    expect_error("{\"task\": null}", ERR_MISSING_FIELD, "task");
    expect_error("{\"parameters\": {}}", ERR_MISSING_FIELD, "task");
}

static void task_type_and_length(void **state)
{
    (void)state;
    expect_error("{\"task\": 7}", ERRAND_EINVAL, "task");
    expect_error("{\"task\": \"\"}", ERRAND_EINVAL, "task");
    char *name = repeat("a", WIRE_TASK_NAME_MAX);
    char text[1024];
    struct run_spec s;
    snprintf(text, sizeof text, "{\"task\": \"%s\"}", name);
    expect_ok(text, &s);
    run_spec_clear(&s);
    snprintf(text, sizeof text, "{\"task\": \"%sa\"}", name);
    expect_error(text, ERRAND_EINVAL, "task");
    free(name);
    /* Lengths count characters, not bytes: 200 two-byte characters fit. */
    name = repeat("é", WIRE_TASK_NAME_MAX);
    snprintf(text, sizeof text, "{\"task\": \"%s\"}", name);
    expect_ok(text, &s);
    run_spec_clear(&s);
    free(name);
}

static void error_message_names_the_field(void **state)
{
    (void)state;
    struct run_spec s;
    errand_error err;
    assert_int_equal(parse("{\"task\": \"t\", \"priority\": \"high\"}", &s, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "priority");
    assert_non_null(strstr(err.message, "priority"));
    assert_non_null(strstr(err.message, "integer"));
}

/* --- individual fields -------------------------------------------------------------------- */

static void parameters_must_be_an_object(void **state)
{
    (void)state;
    expect_error("{\"task\": \"t\", \"parameters\": [1]}", ERRAND_EINVAL, "parameters");
    expect_error("{\"task\": \"t\", \"parameters\": \"{}\"}", ERRAND_EINVAL, "parameters");
}

static void keys_are_bounded_strings(void **state)
{
    (void)state;
    char *key = repeat("k", RUN_SPEC_KEY_MAX + 1);
    char text[1024];
    snprintf(text, sizeof text, "{\"task\": \"t\", \"idempotency_key\": \"%s\"}", key);
    expect_error(text, ERRAND_EINVAL, "idempotency_key");
    snprintf(text, sizeof text, "{\"task\": \"t\", \"cache_key\": \"%s\"}", key);
    expect_error(text, ERRAND_EINVAL, "cache_key");
    free(key);
    expect_error("{\"task\": \"t\", \"idempotency_key\": 5}", ERRAND_EINVAL, "idempotency_key");
    expect_error("{\"task\": \"t\", \"cache_key\": \"\"}", ERRAND_EINVAL, "cache_key");
}

static void scheduled_at_is_rfc3339(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"scheduled_at\": \"2026-11-29T10:25:19.123Z\"}", &s);
    assert_true(s.scheduled_at_ms == 1795947919123LL);
    run_spec_clear(&s);
    expect_ok("{\"task\": \"t\", \"scheduled_at\": \"2026-11-29T11:25:19+01:00\"}", &s);
    assert_true(s.scheduled_at_ms == 1795947919000LL);
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"scheduled_at\": \"tomorrow\"}", ERRAND_EINVAL,
                 "scheduled_at");
    expect_error("{\"task\": \"t\", \"scheduled_at\": \"2026-11-29\"}", ERRAND_EINVAL,
                 "scheduled_at");
    expect_error("{\"task\": \"t\", \"scheduled_at\": 1795947919}", ERRAND_EINVAL, "scheduled_at");
}

static void delay_seconds_is_non_negative(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"delay_seconds\": 0}", &s);
    assert_true(s.scheduled_at_ms == NOW_MS);
    run_spec_clear(&s);
    expect_ok("{\"task\": \"t\", \"delay_seconds\": 10}", &s);
    assert_true(s.scheduled_at_ms == NOW_MS + 10000);
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"delay_seconds\": -1}", ERRAND_EINVAL, "delay_seconds");
    expect_error("{\"task\": \"t\", \"delay_seconds\": \"5\"}", ERRAND_EINVAL, "delay_seconds");
    expect_error("{\"task\": \"t\", \"delay_seconds\": 1e300}", ERRAND_EINVAL, "delay_seconds");
}

static void scheduled_at_and_delay_not_both(void **state)
{
    (void)state;
    expect_error("{\"task\": \"t\", \"scheduled_at\": \"2026-11-29T10:25:19Z\", "
                 "\"delay_seconds\": 5}",
                 ERRAND_EINVAL, "delay_seconds");
}

static void priority_is_an_int(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"priority\": 2147483647}", &s);
    assert_int_equal(s.priority, 2147483647);
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"priority\": 1.5}", ERRAND_EINVAL, "priority");
    expect_error("{\"task\": \"t\", \"priority\": 2.0}", ERRAND_EINVAL, "priority");
    expect_error("{\"task\": \"t\", \"priority\": 2147483648}", ERRAND_EINVAL, "priority");
    expect_error("{\"task\": \"t\", \"priority\": true}", ERRAND_EINVAL, "priority");
}

static void tags_are_bounded_strings(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"tags\": []}", &s);
    assert_string_equal(s.tags, "[]");
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"tags\": \"web\"}", ERRAND_EINVAL, "tags");
    /* An element is not a field of its own: the field is the array, the message names the
       element. */
    expect_error("{\"task\": \"t\", \"tags\": [\"a\", 1]}", ERRAND_EINVAL, "tags");
    expect_error("{\"task\": \"t\", \"tags\": [\"a\", \"\"]}", ERRAND_EINVAL, "tags");
    struct run_spec bad;
    errand_error err;
    assert_int_equal(parse("{\"task\": \"t\", \"tags\": [\"a\", null]}", &bad, &err),
                     ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "'tags[1]'"));
    char *tag = repeat("x", RUN_SPEC_KEY_MAX + 1);
    char text[1024];
    snprintf(text, sizeof text, "{\"task\": \"t\", \"tags\": [\"%s\"]}", tag);
    expect_error(text, ERRAND_EINVAL, "tags");
    free(tag);
    /* RUN_SPEC_TAGS_MAX tags pass, one more fails. */
    char *many = repeat("\"x\",", RUN_SPEC_TAGS_MAX);
    many[strlen(many) - 1] = '\0';
    snprintf(text, sizeof text, "{\"task\": \"t\", \"tags\": [%s]}", many);
    expect_ok(text, &s);
    run_spec_clear(&s);
    snprintf(text, sizeof text, "{\"task\": \"t\", \"tags\": [%s,\"y\"]}", many);
    expect_error(text, ERRAND_EINVAL, "tags");
    free(many);
}

static void retries_range(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"retries\": 1000}", &s);
    assert_int_equal(s.retries, RUN_SPEC_RETRIES_MAX);
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"retries\": 1001}", ERRAND_EINVAL, "retries");
    expect_error("{\"task\": \"t\", \"retries\": -1}", ERRAND_EINVAL, "retries");
    expect_error("{\"task\": \"t\", \"retries\": \"3\"}", ERRAND_EINVAL, "retries");
}

static void retry_delay_number_or_array(void **state)
{
    (void)state;
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"retry_delay_seconds\": 5}", &s);
    assert_int_equal(s.n_retry_delays, 1);
    assert_true(s.retry_delays[0] == 5);
    run_spec_clear(&s);
    expect_ok("{\"task\": \"t\", \"retry_delay_seconds\": []}", &s);
    assert_int_equal(s.n_retry_delays, 0);
    run_spec_clear(&s);
    expect_ok("{\"task\": \"t\", \"retry_delay_seconds\": [0, 0.25, 60]}", &s);
    assert_int_equal(s.n_retry_delays, 3);
    assert_true(s.retry_delays[1] == 0.25 && s.retry_delays[2] == 60);
    run_spec_clear(&s);
    expect_error("{\"task\": \"t\", \"retry_delay_seconds\": -1}", ERRAND_EINVAL,
                 "retry_delay_seconds");
    expect_error("{\"task\": \"t\", \"retry_delay_seconds\": \"5\"}", ERRAND_EINVAL,
                 "retry_delay_seconds");
    expect_error("{\"task\": \"t\", \"retry_delay_seconds\": [1, -2]}", ERRAND_EINVAL,
                 "retry_delay_seconds");
    expect_error("{\"task\": \"t\", \"retry_delay_seconds\": [1, \"2\"]}", ERRAND_EINVAL,
                 "retry_delay_seconds");
    errand_error err;
    assert_int_equal(parse("{\"task\": \"t\", \"retry_delay_seconds\": [0, 1, -3]}", &s, &err),
                     ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "'retry_delay_seconds[2]'"));
    char *many = repeat("1,", RUN_SPEC_DELAYS_MAX + 1);
    many[strlen(many) - 1] = '\0';
    char text[1024];
    snprintf(text, sizeof text, "{\"task\": \"t\", \"retry_delay_seconds\": [%s]}", many);
    expect_error(text, ERRAND_EINVAL, "retry_delay_seconds");
    free(many);
}

static void positive_and_non_negative_numbers(void **state)
{
    (void)state;
    expect_error("{\"task\": \"t\", \"retry_jitter_factor\": -0.1}", ERRAND_EINVAL,
                 "retry_jitter_factor");
    expect_error("{\"task\": \"t\", \"timeout_seconds\": 0}", ERRAND_EINVAL, "timeout_seconds");
    expect_error("{\"task\": \"t\", \"timeout_seconds\": -3}", ERRAND_EINVAL, "timeout_seconds");
    expect_error("{\"task\": \"t\", \"timeout_seconds\": \"3\"}", ERRAND_EINVAL, "timeout_seconds");
    expect_error("{\"task\": \"t\", \"cache_expiration_seconds\": 0}", ERRAND_EINVAL,
                 "cache_expiration_seconds");
    expect_error("{\"task\": \"t\", \"persist_result\": 1}", ERRAND_EINVAL, "persist_result");
    struct run_spec s;
    expect_ok("{\"task\": \"t\", \"timeout_seconds\": 0.001, \"retry_jitter_factor\": 0}", &s);
    run_spec_clear(&s);
}

static void prefix_names_the_element(void **state)
{
    (void)state;
    json_t *obj = json_loads("{\"task\": \"t\", \"priority\": \"x\"}", 0, NULL);
    struct run_spec s;
    errand_error err;
    assert_int_equal(run_spec_parse(obj, "runs[7]", NOW_MS, &s, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[7].priority");
    json_decref(obj);
    obj = json_loads("[1]", 0, NULL);
    assert_int_equal(run_spec_parse(obj, "runs[2]", NOW_MS, &s, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[2]");
    json_decref(obj);
}

/* --- batches ------------------------------------------------------------------------------ */

static int parse_batch(const char *text, struct run_spec **specs, size_t *n, errand_error *err)
{
    json_t *body = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!body)
        fail_msg("bad test JSON %s", text);
    error_clear(err);
    int rc = run_spec_parse_batch(body, NOW_MS, specs, n, err);
    json_decref(body);
    return rc;
}

static void batch_parses_every_run_in_order(void **state)
{
    (void)state;
    struct run_spec *specs;
    size_t n;
    errand_error err;
    assert_int_equal(parse_batch("{\"runs\": [{\"task\": \"a\"}, {\"task\": \"b\", \"priority\": "
                                 "2}]}",
                                 &specs, &n, &err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(specs[0].task, "a");
    assert_string_equal(specs[1].task, "b");
    assert_int_equal(specs[1].priority, 2);
    run_spec_free_array(specs, n);
}

static void batch_errors_carry_the_index(void **state)
{
    (void)state;
    struct run_spec *specs = (void *)1;
    size_t n = 99;
    errand_error err;
    assert_int_equal(
        parse_batch("{\"runs\": [{\"task\": \"a\"}, {\"tsk\": \"b\"}]}", &specs, &n, &err),
        ERR_UNKNOWN_FIELD);
    assert_string_equal(err.field, "runs[1].tsk");
    assert_null(specs);
    assert_int_equal(n, 0);
    assert_int_equal(
        parse_batch("{\"runs\": [{\"task\": \"a\"}, {}, {\"task\": \"c\"}]}", &specs, &n, &err),
        ERR_MISSING_FIELD);
    assert_string_equal(err.field, "runs[1].task");
    assert_non_null(strstr(err.message, "runs[1].task"));
    assert_int_equal(parse_batch("{\"runs\": [{\"task\": \"a\"}, {\"task\": \"b\"}, "
                                 "{\"task\": \"c\", \"tags\": [3]}]}",
                                 &specs, &n, &err),
                     ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[2].tags");
    assert_non_null(strstr(err.message, "'runs[2].tags[0]'"));
    assert_int_equal(parse_batch("{\"runs\": [{\"task\": \"a\"}, 5]}", &specs, &n, &err),
                     ERRAND_EINVAL);
    assert_string_equal(err.field, "runs[1]");
}

static void batch_body_shape(void **state)
{
    (void)state;
    struct run_spec *specs;
    size_t n;
    errand_error err;
    assert_int_equal(parse_batch("{}", &specs, &n, &err), ERR_MISSING_FIELD);
    assert_string_equal(err.field, "runs");
    assert_int_equal(parse_batch("{\"runs\": []}", &specs, &n, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs");
    assert_int_equal(parse_batch("{\"runs\": {}}", &specs, &n, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs");
    assert_int_equal(parse_batch("{\"runs\": [{\"task\": \"a\"}], \"x\": 1}", &specs, &n, &err),
                     ERR_UNKNOWN_FIELD);
    assert_string_equal(err.field, "x");
    assert_int_equal(parse_batch("[{\"task\": \"a\"}]", &specs, &n, &err), ERR_INVALID_JSON);
}

static void batch_size_is_bounded(void **state)
{
    (void)state;
    json_t *runs = json_array();
    for (int i = 0; i <= WIRE_SUBMIT_BATCH_MAX; i++)
        json_array_append_new(runs, json_pack("{s:s}", "task", "t"));
    json_t *body = json_pack("{s:o}", "runs", runs);
    struct run_spec *specs;
    size_t n;
    errand_error err;
    assert_int_equal(run_spec_parse_batch(body, NOW_MS, &specs, &n, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "runs");
    json_array_remove(runs, 0);
    assert_int_equal(run_spec_parse_batch(body, NOW_MS, &specs, &n, &err), 0);
    assert_int_equal(n, WIRE_SUBMIT_BATCH_MAX);
    run_spec_free_array(specs, n);
    json_decref(body);
}

/* --- out of memory ------------------------------------------------------------------------ */

static void out_of_memory_fails_cleanly(void **state)
{
    (void)state;
    json_t *body = json_loads("{\"runs\": [{\"task\": \"a\", \"parameters\": {\"x\": [1, 2]}, "
                              "\"tags\": [\"t\"], \"idempotency_key\": \"k\", \"cache_key\": "
                              "\"c\"}, {\"task\": \"b\"}]}",
                              0, NULL);
    int rc = -1;
    for (long budget = 0; rc != 0; budget++) {
        struct run_spec *specs = NULL;
        size_t n = 0;
        errand_error err;
        mem_fail_after(budget);
        rc = run_spec_parse_batch(body, NOW_MS, &specs, &n, &err);
        mem_fail_after(-1);
        if (rc == 0)
            run_spec_free_array(specs, n);
        else
            assert_int_equal(rc, ERRAND_ENOMEM);
        assert_true(budget < 100);
    }
    json_decref(body);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minimal_submission_gets_defaults),
        cmocka_unit_test(null_fields_mean_absent),
        cmocka_unit_test(every_field_is_carried_over),
        cmocka_unit_test(persist_result_false_is_zero),
        cmocka_unit_test(body_must_be_an_object),
        cmocka_unit_test(unknown_field_is_named),
        cmocka_unit_test(task_is_required),
        cmocka_unit_test(task_type_and_length),
        cmocka_unit_test(error_message_names_the_field),
        cmocka_unit_test(parameters_must_be_an_object),
        cmocka_unit_test(keys_are_bounded_strings),
        cmocka_unit_test(scheduled_at_is_rfc3339),
        cmocka_unit_test(delay_seconds_is_non_negative),
        cmocka_unit_test(scheduled_at_and_delay_not_both),
        cmocka_unit_test(priority_is_an_int),
        cmocka_unit_test(tags_are_bounded_strings),
        cmocka_unit_test(retries_range),
        cmocka_unit_test(retry_delay_number_or_array),
        cmocka_unit_test(positive_and_non_negative_numbers),
        cmocka_unit_test(prefix_names_the_element),
        cmocka_unit_test(batch_parses_every_run_in_order),
        cmocka_unit_test(batch_errors_carry_the_index),
        cmocka_unit_test(batch_body_shape),
        cmocka_unit_test(batch_size_is_bounded),
        cmocka_unit_test(out_of_memory_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
