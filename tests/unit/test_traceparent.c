/* SPDX-License-Identifier: MIT */
/*
 * test_traceparent.c — W3C traceparent values (core/traceparent.h): what is valid, the trace
 * id, child spans; the thread's current trace context (errand_trace_set/errand_trace_get) and
 * that every submission body built on a thread carries it; the server's check of the field
 * and of the request header (server/submission.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "client/submit.h"
#include "core/traceparent.h"
#include "errand/errand.h"
#include "server/submission.h"

#define GOOD "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define GOOD_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define OTHER "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
#define N_CHILDREN 200

static void valid_values_pass(void **state)
{
    (void)state;
    assert_true(traceparent_valid(GOOD));
    assert_true(traceparent_valid(OTHER));
    assert_true(traceparent_valid("00-00000000000000000000000000000001-0000000000000001-ff"));
}

static void invalid_values_fail(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        /* version: only 00 */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* upper-case hex, anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        /* all-zero ids */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* wrong lengths */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        /* trailing junk, missing or moved dashes, non-hex */
        GOOD "-",
        GOOD " ",
        GOOD "-what-ever",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "004bf92f3577b34da6a3ce929d0e0e4736--00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7001",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (traceparent_valid(bad[i]))
            fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
}

static void trace_ids(void **state)
{
    (void)state;
    char id[TRACE_ID_LEN + 1];
    traceparent_trace_id(GOOD, id);
    assert_string_equal(id, GOOD_TRACE);
    traceparent_trace_id("garbage", id);
    assert_string_equal(id, "");
    traceparent_trace_id(NULL, id);
    assert_string_equal(id, "");
    assert_true(trace_id_valid(GOOD_TRACE));
    assert_false(trace_id_valid("4BF92F3577B34DA6A3CE929D0E0E4736"));
    assert_false(trace_id_valid("00000000000000000000000000000000"));
    assert_false(trace_id_valid(GOOD_TRACE "0"));
    assert_false(trace_id_valid("4bf92f3577b34da6"));
    assert_false(trace_id_valid(NULL));
    char field[sizeof " trace_id=" + TRACE_ID_LEN];
    assert_string_equal(traceparent_log_field(GOOD, field), " trace_id=" GOOD_TRACE);
    assert_string_equal(traceparent_log_field(NULL, field), "");
    assert_string_equal(traceparent_log_field("", field), "");
}

/* A child keeps the version, trace id and flags; its parent id is new, valid and differs from
 * its parent's and (drawn at random) from its siblings'. */
static void children_share_the_trace_with_a_new_span(void **state)
{
    (void)state;
    static char kids[N_CHILDREN][TRACEPARENT_LEN + 1];
    for (int i = 0; i < N_CHILDREN; i++) {
        char *c = kids[i];
        assert_int_equal(traceparent_child(GOOD, c), 0);
        assert_true(traceparent_valid(c));
        assert_memory_equal(c, GOOD, TRACEPARENT_PARENT_AT);                         /* 00-trace- */
        assert_string_equal(c + TRACEPARENT_PARENT_AT + TRACE_PARENT_ID_LEN, "-01"); /* flags */
        assert_memory_not_equal(c + TRACEPARENT_PARENT_AT, GOOD + TRACEPARENT_PARENT_AT,
                                TRACE_PARENT_ID_LEN);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(c, kids[j]);
    }
    char out[TRACEPARENT_LEN + 1] = "unchanged";
    assert_int_equal(traceparent_child("01-nope", out), ERRAND_EINVAL);
    assert_int_equal(traceparent_child(OTHER, out), 0);
    assert_string_equal(out + TRACEPARENT_PARENT_AT + TRACE_PARENT_ID_LEN, "-00");
}

static void *other_thread(void *arg)
{
    (void)arg;
    const char *seen = errand_trace_get(); /* a new thread starts without one */
    errand_trace_set(OTHER);
    return seen ? (void *)1 : NULL;
}

static void the_current_context_is_per_thread(void **state)
{
    (void)state;
    assert_null(errand_trace_get());
    assert_int_equal(errand_trace_set(GOOD), 0);
    assert_string_equal(errand_trace_get(), GOOD);
    pthread_t t;
    void *seen = (void *)2;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &seen), 0);
    assert_null(seen);
    assert_string_equal(errand_trace_get(), GOOD); /* the other thread's set did not reach here */
    /* Invalid values are refused and change nothing. */
    assert_int_equal(errand_trace_set("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
                     ERRAND_EINVAL);
    assert_int_equal(errand_trace_set(GOOD "x"), ERRAND_EINVAL);
    assert_string_equal(errand_trace_get(), GOOD);
    assert_int_equal(errand_trace_set(NULL), 0);
    assert_null(errand_trace_get());
}

/* Every submission body built on a thread with a current context carries it (errand_submit,
 * errand_submit_batch and errand_delay all build theirs with submit_build). */
static void submissions_carry_the_current_context(void **state)
{
    (void)state;
    errand_error err;
    json_t *body = NULL;
    assert_int_equal(submit_build("t", NULL, NULL, NULL, &body, &err), 0);
    assert_null(json_object_get(body, "traceparent"));
    json_decref(body);
    assert_int_equal(errand_trace_set(GOOD), 0);
    assert_int_equal(submit_build("t", NULL, NULL, "runs[1]", &body, &err), 0);
    assert_string_equal(json_string_value(json_object_get(body, "traceparent")), GOOD);
    json_decref(body);
    errand_trace_set(NULL);
}

static int parse(const char *text, struct run_spec *spec, errand_error *err)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    int rc = run_spec_parse(o, NULL, 0, spec, err);
    json_decref(o);
    return rc;
}

/* The server takes a valid traceparent field, refuses an invalid one naming the field, and
 * fills the runs without one from a valid request header (an invalid header is ignored). */
static void the_server_checks_the_field_and_the_header(void **state)
{
    (void)state;
    struct run_spec spec;
    errand_error err;
    assert_int_equal(parse("{\"task\": \"t\", \"traceparent\": \"" GOOD "\"}", &spec, &err), 0);
    assert_string_equal(spec.traceparent, GOOD);
    assert_int_equal(run_spec_trace_default(&spec, 1, OTHER, &err), 0);
    assert_string_equal(spec.traceparent, GOOD); /* the body's wins */
    run_spec_clear(&spec);
    static const char *const bad[] = {
        "{\"task\": \"t\", \"traceparent\": \"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba9"
        "02b7-01\"}",
        "{\"task\": \"t\", \"traceparent\": \"\"}",
        "{\"task\": \"t\", \"traceparent\": 5}",
        "{\"task\": \"t\", \"traceparent\": \"" GOOD "-junk\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], &spec, &err), ERRAND_EINVAL);
        assert_string_equal(err.field, "traceparent");
    }
    assert_int_equal(parse("{\"task\": \"t\"}", &spec, &err), 0);
    assert_null(spec.traceparent);
    assert_int_equal(run_spec_trace_default(&spec, 1, "00-bogus", &err), 0);
    assert_null(spec.traceparent);
    assert_int_equal(run_spec_trace_default(&spec, 1, NULL, &err), 0);
    assert_null(spec.traceparent);
    assert_int_equal(run_spec_trace_default(&spec, 1, OTHER, &err), 0);
    assert_string_equal(spec.traceparent, OTHER);
    run_spec_clear(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_values_pass),
        cmocka_unit_test(invalid_values_fail),
        cmocka_unit_test(trace_ids),
        cmocka_unit_test(children_share_the_trace_with_a_new_span),
        cmocka_unit_test(the_current_context_is_per_thread),
        cmocka_unit_test(submissions_carry_the_current_context),
        cmocka_unit_test(the_server_checks_the_field_and_the_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
