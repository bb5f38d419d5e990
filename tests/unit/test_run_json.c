/* SPDX-License-Identifier: MIT */
/*
 * test_run_json.c — the task-run and claim objects written as text (run_json_write) read back
 * as the same JSON values as the jansson trees (run_row_to_json), for rows with every field
 * absent or present, strings that need escaping, and reals that need 15 to 17 digits; and
 * the writer's strings and numbers on their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/json_writer.h"
#include "server/run_json.h"

static json_t *written(void (*fn)(struct jw *, const struct run_row *), const struct run_row *r)
{
    struct jw w = {0};
    fn(&w, r);
    char *text = jw_finish(&w);
    assert_non_null(text);
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (!v)
        fail_msg("written text does not parse (%s): %s", jerr.text, text);
    mem_free(text);
    return v;
}

static void assert_same(const struct run_row *r)
{
    json_t *tree = NULL, *claim_tree = NULL;
    errand_error err;
    assert_int_equal(run_row_to_json(r, &tree, &err), 0);
    assert_int_equal(run_row_claim_json(r, &claim_tree, &err), 0);
    json_t *text = written(run_json_write, r);
    json_t *claim_text = written(run_json_write_claim, r);
    if (!json_equal(tree, text)) {
        char *a = json_dumps(tree, JSON_COMPACT), *b = json_dumps(text, JSON_COMPACT);
        fail_msg("tree %s; written %s", a, b);
    }
    assert_true(json_equal(claim_tree, claim_text));
    json_decref(tree);
    json_decref(claim_tree);
    json_decref(text);
    json_decref(claim_text);
}

static struct run_row plain_row(void)
{
    return (struct run_row){
        .id = "0193a0c4-0000-7000-8000-000000000001",
        .task = "send_mail",
        .parameters = "{\"to\":\"a@b.c\",\"n\":[1,2.5,null,true]}",
        .state = ERRAND_STATE_SCHEDULED,
        .state_timestamp = 1764584719123,
        .max_attempts = 1,
        .created = 1764584719123,
        .scheduled_at = 1764584719123,
        .tags = "[]",
        .retry_delays = "[]",
        .persist_result = -1,
    };
}

static void scheduled_run_with_nothing_optional(void **state)
{
    struct run_row r = plain_row();
    assert_same(&r);
}

static void completed_run_with_everything(void **state)
{
    struct run_row r = plain_row();
    r.state = ERRAND_STATE_COMPLETED;
    r.state_name = "Cached";
    r.state_message = "cached result of run 0193a0c4-0000-7000-8000-000000000002";
    r.attempt = 2;
    r.max_attempts = 4;
    r.started = 1764584719200;
    r.finished = 1764584719300;
    r.worker = "host-1234";
    r.priority = -7;
    r.tags = "[\"red\",\"blue\"]";
    r.idempotency_key = "order-17";
    r.cache_key = "abc";
    r.retries = 3;
    r.retry_delays = "[1,10,0.25]";
    r.retry_jitter_factor = 0.1;
    r.timeout_seconds = 2.5;
    r.persist_result = 1;
    r.result = "{\"answer\":42,\"pi\":3.141592653589793,\"list\":[]}";
    r.result_ref = "local:///var/lib/errand/storage/x.json";
    r.retry_of = "0193a0c4-0000-7000-8000-000000000003";
    r.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    r.lease_token = "00112233445566778899aabbccddeeff";
    r.lease_expires = 1764584749300;
    assert_same(&r);
    /* The worker gets the run's trace context with the claim. */
    json_t *claim = written(run_json_write_claim, &r);
    assert_string_equal(json_string_value(json_object_get(claim, "traceparent")), r.traceparent);
    json_decref(claim);
}

static void a_result_is_shown_only_when_completed(void **state)
{
    struct run_row r = plain_row();
    r.state = ERRAND_STATE_FAILED;
    r.result = "{\"partial\":true}";
    r.persist_result = 0;
    assert_same(&r);
    json_t *v = written(run_json_write, &r);
    assert_null(json_object_get(v, "result"));
    json_decref(v);
}

static void strings_that_need_escaping(void **state)
{
    struct run_row r = plain_row();
    r.task = "quote\" backslash\\ slash/ tab\t newline\n cr\r bell\a \x01 é 😀";
    r.state_message = "line 1\nline 2 \"quoted\" \x1f";
    r.worker = "\b\f";
    r.idempotency_key = "";
    assert_same(&r);
}

static void reals_of_every_length(void **state)
{
    const double values[] = {0.1,       1.5,        1e-7,
                             1e300,     123456.789, 0.30000000000000004,
                             2.0 / 3.0, 1e21,       4503599627370496.5};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct run_row r = plain_row();
        r.retry_jitter_factor = values[i];
        r.timeout_seconds = values[i];
        assert_same(&r);
    }
}

static void writer_numbers_and_strings(void **state)
{
    struct jw w = {0};
    jw_lit(&w, "[");
    jw_number(&w, 3.0);
    jw_lit(&w, ",");
    jw_number(&w, -9007199254740992.0);
    jw_lit(&w, ",");
    jw_number(&w, 0.1);
    jw_lit(&w, ",");
    jw_int(&w, INT64_MIN);
    jw_lit(&w, ",");
    jw_string(&w, NULL);
    jw_lit(&w, ",");
    jw_string(&w, "a\"b");
    jw_lit(&w, ",");
    jw_time(&w, 0);
    jw_lit(&w, "]");
    char *text = jw_finish(&w);
    assert_string_equal(text,
                        "[3,-9007199254740992,0.1,-9223372036854775808,null,\"a\\\"b\",null]");
    mem_free(text);
}

static void an_allocation_failure_sticks(void **state)
{
    struct jw w = {0};
    mem_fail_after(0);
    jw_lit(&w, "{\"a\":1}");
    mem_fail_after(-1);
    jw_lit(&w, "more");
    assert_true(w.failed);
    assert_null(jw_finish(&w));
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scheduled_run_with_nothing_optional),
        cmocka_unit_test(completed_run_with_everything),
        cmocka_unit_test(a_result_is_shown_only_when_completed),
        cmocka_unit_test(strings_that_need_escaping),
        cmocka_unit_test(reals_of_every_length),
        cmocka_unit_test(writer_numbers_and_strings),
        cmocka_unit_test(an_allocation_failure_sticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
