/* SPDX-License-Identifier: MIT */
/*
 * test_zeroed_options.c — zero-initialised options and definitions mean the defaults, through
 * the public API against a real errand server (started in this process, live_server.h): a
 * client and a worker made from `{0}` options take their settings from the environment, and
 * with ERRAND_RESULTS_PERSIST_BY_DEFAULT=true and ERRAND_LOGGING_LOG_PRINTS=true a run whose
 * submission and task definition leave persistence at zero is persisted and its prints
 * logged, while ERRAND_NO in the definition or the submission says no. A stale -1, the
 * "default" of these fields before 0 was, is refused with the field named; the
 * *_options_init() functions zero.
 */
#include "live_server.h"

#include "errand/errand.h"

#define WAIT_FINAL_S 30.0

static int task_print(errand_task_ctx *ctx, const char *params, char **result, void *ud)
{
    (void)ctx, (void)ud;
    printf("printed by the task\n");
    char *r = malloc(256);
    snprintf(r, 256, "{\"params\": %s}", params);
    *result = r;
    return 0;
}

/* The environment a program would run in: what zeroed options fall back to. */
static void set_environment(const struct live_server *ls, const char *storage)
{
    setenv("ERRAND_API_URL", ls->api_url, 1);
    unsetenv("ERRAND_API_KEY");
    setenv("ERRAND_LOCAL_STORAGE_PATH", storage, 1);
    setenv("ERRAND_RESULTS_PERSIST_BY_DEFAULT", "true", 1);
    setenv("ERRAND_LOGGING_LOG_PRINTS", "true", 1);
}

static void clear_environment(void)
{
    unsetenv("ERRAND_API_URL");
    unsetenv("ERRAND_LOCAL_STORAGE_PATH");
    unsetenv("ERRAND_RESULTS_PERSIST_BY_DEFAULT");
    unsetenv("ERRAND_LOGGING_LOG_PRINTS");
}

/* Waits for the run to complete; returns it (errand_run_free it). */
static errand_run *wait_completed(errand_client *c, const errand_run *submitted)
{
    errand_run *done = NULL;
    errand_error err;
    if (errand_wait(c, errand_run_id(submitted), WAIT_FINAL_S, &done, &err) != 0)
        fail_msg("waiting for run %s: %s", errand_run_id(submitted), err.message);
    if (errand_run_state(done) != ERRAND_STATE_COMPLETED)
        fail_msg("run %s ended %s: %s", errand_run_id(done), errand_run_state_name(done),
                 errand_run_message(done));
    return done;
}

/* Whether the run's result was written to the result storage. */
static bool persisted(const errand_run *r, const char *storage)
{
    json_t *root = json_loads(errand_run_json(r), 0, NULL);
    assert_non_null(root);
    bool has_ref = json_is_string(json_object_get(root, "result_ref"));
    json_decref(root);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.json", storage, errand_run_id(r));
    bool has_file = access(path, F_OK) == 0;
    assert_int_equal(has_ref, has_file);
    if (has_file)
        unlink(path);
    return has_ref;
}

/* Whether the run's logs hold the task's print. */
static bool prints_logged(struct fixture *fx, const errand_run *r)
{
    struct log_page page;
    errand_error err;
    assert_int_equal(store_get_logs(fx->st, errand_run_id(r), 0, 100, &page, &err), 0);
    bool found = false;
    for (size_t i = 0; i < page.n; i++)
        found |= strcmp(page.items[i].message, "printed by the task") == 0;
    log_page_clear(&page);
    return found;
}

/* Submits, waits, and answers whether the run was persisted; frees everything. */
static bool run_persisted(struct fixture *fx, errand_client *c, const char *storage,
                          const char *task, const errand_submit_options *opt, bool *logged)
{
    errand_run *run = NULL;
    errand_error err;
    if (errand_submit(c, task, "{\"n\": 7}", opt, &run, &err) != 0)
        fail_msg("submitting %s: %s", task, err.message);
    errand_run *done = wait_completed(c, run);
    char *result = NULL;
    assert_int_equal(errand_result(c, done, &result, &err), 0);
    assert_string_equal(result, "{\"params\":{\"n\":7}}");
    errand_free(result);
    bool p = persisted(done, storage);
    if (logged)
        *logged = prints_logged(fx, done);
    errand_run_free(run);
    errand_run_free(done);
    return p;
}

static void zeroed_options_take_the_environment_and_errand_no_says_no(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    char storage[128];
    snprintf(storage, sizeof storage, "%s/storage", fx->dir);
    set_environment(&ls, storage);

    errand_worker_options wopt = {0};
    struct served s = {0};
    errand_error err;
    if (errand_worker_new(&wopt, &s.w, &err) != 0)
        fail_msg("errand_worker_new({0}): %s", err.message);
    errand_task_def by_default = {.name = "zero.default", .fn = task_print};
    errand_task_def never = {.name = "zero.never", .fn = task_print, .persist_result = ERRAND_NO};
    assert_int_equal(errand_worker_add_task(s.w, &by_default, &err), 0);
    assert_int_equal(errand_worker_add_task(s.w, &never, &err), 0);
    served_start(&s);

    errand_client_options copt = {0};
    errand_client *c = NULL;
    if (errand_client_new(&copt, &c, &err) != 0)
        fail_msg("errand_client_new({0}): %s", err.message);
    errand_submit_options zero = {0};
    errand_submit_options no = {.persist_result = ERRAND_NO};

    /* zero everywhere: the worker's default, from the environment */
    bool logged = false;
    assert_true(run_persisted(fx, c, storage, "zero.default", &zero, &logged));
    assert_true(logged);
    assert_true(run_persisted(fx, c, storage, "zero.default", NULL, NULL));
    /* the definition's ERRAND_NO, the submission's ERRAND_NO */
    assert_false(run_persisted(fx, c, storage, "zero.never", &zero, NULL));
    assert_false(run_persisted(fx, c, storage, "zero.default", &no, NULL));

    /* errand_delay() of a definition left at zero submits nothing but the task */
    errand_run *run = NULL;
    assert_int_equal(errand_delay(c, &by_default, "{\"n\": 7}", &run, &err), 0);
    errand_run *done = wait_completed(c, run);
    json_t *root = json_loads(errand_run_json(done), 0, NULL);
    assert_true(json_is_null(json_object_get(root, "persist_result")));
    assert_int_equal(json_integer_value(json_object_get(root, "retries")), 0);
    json_decref(root);
    assert_true(persisted(done, storage));
    errand_run_free(run);
    errand_run_free(done);

    errand_client_free(c);
    served_stop(&s);
    live_stop(&ls);
    clear_environment();
    rmdir(storage);
}

static void a_stale_minus_one_is_refused_naming_the_field(void **state)
{
    (void)state;
    errand_error err;
    errand_worker *w = NULL;
    errand_worker_options wopt = {.api_url = "http://127.0.0.1:1/api", .persist_by_default = -1};
    assert_int_equal(errand_worker_new(&wopt, &w, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_by_default");
    assert_non_null(strstr(err.message, "leave it 0"));
    wopt.persist_by_default = ERRAND_DEFAULT;
    wopt.log_prints = -1;
    assert_int_equal(errand_worker_new(&wopt, &w, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "log_prints");

    wopt.log_prints = ERRAND_DEFAULT;
    assert_int_equal(errand_worker_new(&wopt, &w, &err), 0);
    errand_task_def def = {.name = "stale", .fn = task_print, .persist_result = -1};
    assert_int_equal(errand_worker_add_task(w, &def, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_result");
    errand_worker_free(w);

    errand_client *c = NULL;
    errand_client_options copt = {.api_url = "http://127.0.0.1:1/api"};
    assert_int_equal(errand_client_new(&copt, &c, &err), 0);
    errand_submit_options opt = {.retries = -1};
    assert_int_equal(errand_submit(c, "t", NULL, &opt, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "retries");
    def.persist_result = 3;
    assert_int_equal(errand_delay(c, &def, NULL, NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "persist_result");
    errand_client_free(c);
}

static void the_init_functions_zero_the_struct(void **state)
{
    (void)state;
    errand_worker_options wopt, wzero = {0};
    memset(&wopt, 0xff, sizeof wopt);
    errand_worker_options_init(&wopt);
    assert_memory_equal(&wopt, &wzero, sizeof wopt);
    errand_submit_options sopt, szero = {0};
    memset(&sopt, 0xff, sizeof sopt);
    errand_submit_options_init(&sopt);
    assert_memory_equal(&sopt, &szero, sizeof sopt);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(zeroed_options_take_the_environment_and_errand_no_says_no,
                                        setup, teardown),
        cmocka_unit_test(a_stale_minus_one_is_refused_naming_the_field),
        cmocka_unit_test(the_init_functions_zero_the_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
