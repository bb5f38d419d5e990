/* SPDX-License-Identifier: MIT */
/*
 * test_worker_reporter.c — the worker's reporter against a real errand server (its HTTP
 * server and SQLite store, started in this process on a free port): outcomes reach the store;
 * when the server refuses a batch for one item in it, the reporter sends it again in halves
 * until that item is alone, and every other outcome of the batch is delivered; a result the
 * server would refuse (nested too deep) is reported as FAILED with the reason instead.
 */
#include "live_server.h"

#include "core/wire_limits.h"
#include "server/run_json.h"
#include "worker/reporter.h"
#include "worker/wrun.h"

#define GOOD_RUNS 9
#define FLUSH_MS 20000
#define NOT_A_UUID "not-a-uuid"

/* Claims n runs of task from the store and makes the worker's runs of them. */
static size_t claim_wruns(struct fixture *fx, const char *task, struct wrun **out, size_t n)
{
    const char *tasks[] = {task};
    struct claim_request req = {
        .worker = "w-test", .tasks = tasks, .n_tasks = 1, .limit = (int)n, .lease_seconds = 30};
    struct run_list l;
    errand_error err;
    assert_int_equal(store_claim(fx->st, &req, clock_now_ms(), &l, &err), 0);
    for (size_t i = 0; i < l.n; i++) {
        json_t *claim_obj = NULL;
        assert_int_equal(run_row_claim_json(&l.rows[i], &claim_obj, &err), 0);
        assert_int_equal(wrun_from_claim(claim_obj, &out[i], &err), 0);
        json_decref(claim_obj);
    }
    size_t got = l.n;
    run_list_clear(&l);
    return got;
}

static reporter *new_reporter(const struct live_server *ls)
{
    struct reporter_config cfg = {.api_url = ls->api_url, .worker_name = "w-test"};
    reporter *r = NULL;
    errand_error err;
    assert_int_equal(reporter_new(&cfg, &r, &err), 0);
    return r;
}

static void start_reporter(reporter *r)
{
    errand_error err;
    assert_int_equal(reporter_start(r, &err), 0);
}

/* A run the server does not know and whose id it refuses outright (not a UUID). */
static struct wrun *bad_wrun(void)
{
    json_t *claim_obj = json_pack("{s:s, s:s, s:s, s:{}}", "id", NOT_A_UUID, "task", "t",
                                  "lease_token", "00", "parameters");
    struct wrun *w = NULL;
    errand_error err;
    assert_int_equal(wrun_from_claim(claim_obj, &w, &err), 0);
    json_decref(claim_obj);
    return w;
}

static void a_refused_item_does_not_take_its_batch_down(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < GOOD_RUNS; i++)
        json_decref(submit(fx, clock_now_ms(), "{\"task\": \"rep\"}", NULL));
    struct wrun *runs[GOOD_RUNS + 1];
    assert_int_equal(claim_wruns(fx, "rep", runs, GOOD_RUNS), GOOD_RUNS);
    runs[GOOD_RUNS] = bad_wrun();
    struct live_server ls;
    live_start(fx, &ls);
    reporter *r = new_reporter(&ls);
    /* Queued before the reporter thread starts: they go out as one batch, the bad one among
     * the good. */
    for (int i = 0; i <= GOOD_RUNS; i++) {
        reporter_hold(r, runs[i]);
        reporter_final(r, runs[i], ERRAND_STATE_COMPLETED, NULL, true, json_pack("{s:i}", "i", i),
                       NULL);
    }
    start_reporter(r);
    reporter_stop(r, FLUSH_MS);
    reporter_free(r);
    for (int i = 0; i < GOOD_RUNS; i++) {
        json_t *run = get_run(fx, runs[i]->id);
        assert_string_equal(state_type_of(run), "COMPLETED");
        assert_int_equal(ifield(json_object_get(run, "result"), "i"), i);
        json_decref(run);
    }
    for (int i = 0; i <= GOOD_RUNS; i++)
        wrun_unref(runs[i]);
    live_stop(&ls);
}

static void a_result_nested_too_deep_is_reported_as_a_failure(void **state)
{
    struct fixture *fx = *state;
    json_decref(submit(fx, clock_now_ms(), "{\"task\": \"deep\"}", NULL));
    json_decref(submit(fx, clock_now_ms(), "{\"task\": \"deep\"}", NULL));
    struct wrun *runs[2];
    assert_int_equal(claim_wruns(fx, "deep", runs, 2), 2);
    struct live_server ls;
    live_start(fx, &ls);
    reporter *r = new_reporter(&ls);
    start_reporter(r);
    json_t *deep = json_integer(1);
    for (int i = 0; i < WIRE_RESULT_DEPTH_MAX + 1; i++) {
        json_t *wrap = json_array();
        json_array_append_new(wrap, deep);
        deep = wrap;
    }
    json_t *just_fits = json_integer(2);
    for (int i = 0; i < WIRE_RESULT_DEPTH_MAX; i++) {
        json_t *wrap = json_array();
        json_array_append_new(wrap, just_fits);
        just_fits = wrap;
    }
    reporter_hold(r, runs[0]);
    reporter_hold(r, runs[1]);
    reporter_final(r, runs[0], ERRAND_STATE_COMPLETED, NULL, true, deep, NULL);
    reporter_final(r, runs[1], ERRAND_STATE_COMPLETED, NULL, true, just_fits, NULL);
    reporter_stop(r, FLUSH_MS);
    reporter_free(r);
    json_t *failed = get_run(fx, runs[0]->id);
    assert_string_equal(state_type_of(failed), "FAILED");
    assert_non_null(strstr(sfield(json_object_get(failed, "state"), "message"), "deeper than"));
    json_decref(failed);
    json_t *done = get_run(fx, runs[1]->id);
    assert_string_equal(state_type_of(done), "COMPLETED");
    json_decref(done);
    wrun_unref(runs[0]);
    wrun_unref(runs[1]);
    live_stop(&ls);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_refused_item_does_not_take_its_batch_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_result_nested_too_deep_is_reported_as_a_failure, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
