/* SPDX-License-Identifier: MIT */
/*
 * test_run_deps.c — the backend-neutral rules of dependencies (store/run_deps.h): batch
 * references, their resolution, what an upstream's end does to a waiting run, and results
 * filled into parameters at any depth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/mem.h"
#include "store/run_deps.h"
#include "store/run_spec.h"

#define UP "01a239a9-b36c-7752-8afb-aa40b1ca6550"
#define OTHER "01a239a9-b36c-7753-a990-0308eb995dbd"

static void batch_references_are_runs_of_a_decimal_index(void **state)
{
    (void)state;
    size_t n = 99;
    assert_true(run_deps_batch_ref("runs[0]", &n) && n == 0);
    assert_true(run_deps_batch_ref("runs[9999]", &n) && n == 9999);
    const char *not_refs[] = {
        "runs[]", "runs[01]", "runs[-1]", "runs[1", "runs[1]x",
        "run[1]", "runs[1a]", UP,         "",       "runs[99999999999999999999999]"};
    for (size_t i = 0; i < sizeof not_refs / sizeof not_refs[0]; i++)
        assert_false(run_deps_batch_ref(not_refs[i], &n));
}

static void batch_references_resolve_to_ids_and_past_the_batch_is_refused(void **state)
{
    (void)state;
    const char *ids[] = {UP, OTHER};
    char *out = NULL;
    errand_error err;
    assert_int_equal(run_deps_resolve("[\"runs[1]\",\"" UP "\"]", false, ids, 2, &out, &err), 0);
    assert_string_equal(out, "[\"" OTHER "\",\"" UP "\"]");
    mem_free(out);
    assert_int_equal(run_deps_resolve("[[[\"a\",0],\"runs[0]\"]]", true, ids, 2, &out, &err), 0);
    assert_string_equal(out, "[[[\"a\",0],\"" UP "\"]]");
    mem_free(out);
    assert_int_equal(run_deps_resolve("[\"runs[2]\"]", false, ids, 2, &out, &err), ERRAND_EINVAL);
    assert_null(out);
}

static void a_completed_upstream_fills_its_places_and_counts_down(void **state)
{
    (void)state;
    const char *params = "{\"a\":[1,{\"b\":{\"$result\":\"" UP "\"}}],\"c\":{\"$result\":\"" OTHER
                         "\"},\"d\":{\"$result\":\"" UP "\"}}";
    const char *refs =
        "[[[\"a\",1,\"b\"],\"" UP "\"],[[\"c\"],\"" OTHER "\"],[[\"d\"],\"" UP "\"]]";
    struct run_deps_step step;
    errand_error err;
    assert_int_equal(run_deps_upstream_ended(params, refs, false, 2, UP, ERRAND_STATE_COMPLETED,
                                             "{\"n\":7}", NULL, &step, &err),
                     0);
    assert_int_equal(step.outcome, RUN_DEPS_WAIT);
    assert_int_equal(step.pending, 1);
    assert_string_equal(step.message, "waiting for 1 upstream run");
    assert_string_equal(step.parameters, "{\"a\":[1,{\"b\":{\"n\":7}}],\"c\":{\"$result\":\"" OTHER
                                         "\"},\"d\":{\"n\":7}}");
    char *after = step.parameters;
    assert_int_equal(run_deps_upstream_ended(after, refs, false, 1, OTHER, ERRAND_STATE_COMPLETED,
                                             "\"x\"", NULL, &step, &err),
                     0);
    assert_int_equal(step.outcome, RUN_DEPS_RELEASE);
    assert_string_equal(step.parameters,
                        "{\"a\":[1,{\"b\":{\"n\":7}}],\"c\":\"x\",\"d\":{\"n\":7}}");
    mem_free(after);
    mem_free(step.parameters);
    /* An upstream nothing refers to leaves the parameters alone. */
    assert_int_equal(run_deps_upstream_ended("{}", NULL, false, 1, UP, ERRAND_STATE_COMPLETED, "1",
                                             NULL, &step, &err),
                     0);
    assert_int_equal(step.outcome, RUN_DEPS_RELEASE);
    assert_null(step.parameters);
}

static void an_upstream_that_did_not_complete_cancels_unless_allowed(void **state)
{
    (void)state;
    struct run_deps_step step;
    errand_error err;
    const errand_state ends[] = {ERRAND_STATE_FAILED, ERRAND_STATE_CRASHED, ERRAND_STATE_CANCELLED};
    const char *refs = "[[[\"x\"],\"" UP "\"]]";
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        assert_int_equal(run_deps_upstream_ended("{\"x\":{\"$result\":\"" UP "\"}}", refs, false, 3,
                                                 UP, ends[i], NULL, NULL, &step, &err),
                         0);
        assert_int_equal(step.outcome, RUN_DEPS_CANCEL);
        assert_non_null(strstr(step.message, UP));
        assert_non_null(strstr(step.message, errand_state_type_name(ends[i])));
        assert_int_equal(run_deps_upstream_ended("{\"x\":{\"$result\":\"" UP "\"}}", refs, true, 1,
                                                 UP, ends[i], NULL, NULL, &step, &err),
                         0);
        assert_int_equal(step.outcome, RUN_DEPS_RELEASE);
        assert_string_equal(step.parameters, "{\"x\":null}");
        mem_free(step.parameters);
    }
}

static void a_result_that_was_not_inlined_cannot_be_passed(void **state)
{
    (void)state;
    struct run_deps_step step;
    errand_error err;
    assert_int_equal(
        run_deps_upstream_ended("{\"x\":{\"$result\":\"" UP "\"}}", "[[[\"x\"],\"" UP "\"]]", false,
                                1, UP, ERRAND_STATE_COMPLETED, NULL, "local:big.json", &step, &err),
        0);
    assert_int_equal(step.outcome, RUN_DEPS_FAIL);
    assert_null(step.parameters);
    assert_non_null(strstr(step.message, "not inlined"));
    /* Waiting for it without taking its result is fine. */
    assert_int_equal(run_deps_upstream_ended("{}", NULL, false, 1, UP, ERRAND_STATE_COMPLETED, NULL,
                                             "local:big.json", &step, &err),
                     0);
    assert_int_equal(step.outcome, RUN_DEPS_RELEASE);
}

static void references_are_named_by_id_once_resolved(void **state)
{
    (void)state;
    char *out = NULL;
    errand_error err;
    assert_int_equal(run_deps_name_refs("{\"a\":[{\"$result\":\"runs[0]\"}]}",
                                        "[[[\"a\",0],\"" UP "\"]]", &out, &err),
                     0);
    assert_string_equal(out, "{\"a\":[{\"$result\":\"" UP "\"}]}");
    mem_free(out);
}

static void a_plan_waits_for_what_is_not_final_and_applies_what_is(void **state)
{
    (void)state;
    struct run_spec spec = {
        .parameters = "{\"a\":{\"$result\":\"runs[0]\"},\"b\":{\"$result\":\"" UP "\"}}",
        .wait_for = "[\"runs[0]\",\"" UP "\"]",
        .result_refs = "[[[\"a\"],\"runs[0]\"],[[\"b\"],\"" UP "\"]]",
    };
    const char *ids[] = {OTHER};
    struct run_deps_plan plan;
    errand_error err;
    /* runs[0], the batch's first run, is OTHER, still running; UP completed already. */
    assert_int_equal(run_deps_plan_begin(&spec, ids, 1, &plan, &err), 0);
    assert_int_equal(plan.n_upstream, 2);
    assert_string_equal(plan.upstream_ids[0], OTHER);
    assert_string_equal(plan.upstream_ids[1], UP);
    struct run_deps_upstream ups[] = {
        {.found = true, .state = ERRAND_STATE_RUNNING},
        {.found = true, .state = ERRAND_STATE_COMPLETED, .result = "5"}};
    assert_int_equal(run_deps_plan_apply(&spec, ups, &plan, &err), 0);
    assert_int_equal(plan.state, ERRAND_STATE_SCHEDULED);
    assert_string_equal(plan.name, RUN_DEPS_NAME_WAITING);
    assert_int_equal(plan.pending, 1);
    assert_string_equal(plan.edges[0], OTHER);
    assert_string_equal(plan.parameters, "{\"a\":{\"$result\":\"" OTHER "\"},\"b\":5}");
    run_deps_plan_clear(&plan);

    /* An upstream that failed already ends the new run; one that does not exist refuses it. */
    assert_int_equal(run_deps_plan_begin(&spec, ids, 1, &plan, &err), 0);
    ups[1].state = ERRAND_STATE_FAILED;
    assert_int_equal(run_deps_plan_apply(&spec, ups, &plan, &err), 0);
    assert_int_equal(plan.state, ERRAND_STATE_CANCELLED);
    assert_string_equal(plan.name, RUN_DEPS_NAME_UPSTREAM_FAILED);
    assert_int_equal(plan.pending, 0);
    run_deps_plan_clear(&plan);
    assert_int_equal(run_deps_plan_begin(&spec, ids, 1, &plan, &err), 0);
    ups[0].found = false;
    assert_int_equal(run_deps_plan_apply(&spec, ups, &plan, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "wait_for");
    assert_non_null(strstr(err.message, OTHER));
    run_deps_plan_clear(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_references_are_runs_of_a_decimal_index),
        cmocka_unit_test(batch_references_resolve_to_ids_and_past_the_batch_is_refused),
        cmocka_unit_test(a_completed_upstream_fills_its_places_and_counts_down),
        cmocka_unit_test(an_upstream_that_did_not_complete_cancels_unless_allowed),
        cmocka_unit_test(a_result_that_was_not_inlined_cannot_be_passed),
        cmocka_unit_test(references_are_named_by_id_once_resolved),
        cmocka_unit_test(a_plan_waits_for_what_is_not_final_and_applies_what_is),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
