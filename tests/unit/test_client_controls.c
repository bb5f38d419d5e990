/* SPDX-License-Identifier: MIT */
/*
 * test_client_controls.c — liberrand's controls (client/controls.c) against a real server on
 * loopback (live_server.h): a task's webhook, a tag's and a task's concurrency limit, a task's
 * rate limit, and a schedule set, paused, resumed and deleted each reach the store as asked;
 * 0 and NULL remove; bad values come back as ERRAND_EINVAL naming the field, and a missing
 * one as ERRAND_ENOTFOUND.
 */
#include "live_server.h"

static errand_client *client_of(struct live_server *ls)
{
    errand_client_options opt = {0};
    opt.api_url = ls->api_url;
    errand_client *c = NULL;
    errand_error err;
    if (errand_client_new(&opt, &c, &err) != 0)
        fail_msg("errand_client_new: %s", err.message);
    return c;
}

static const struct limit_record *find_limit(const struct limit_list *l, enum limit_kind kind,
                                             const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].kind == kind && strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

static void webhooks_and_limits_reach_the_store(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    errand_client *c = client_of(&ls);
    errand_error err;
    assert_int_equal(errand_webhook_set(c, "mail", "https://hooks.example/m", &err), 0);
    struct task_webhook_list hooks;
    assert_int_equal(store_webhook_list(fx->st, &hooks, &err), 0);
    assert_int_equal(hooks.n, 1);
    assert_string_equal(hooks.items[0].url, "https://hooks.example/m");
    task_webhook_list_clear(&hooks);
    assert_int_equal(errand_webhook_set(c, "mail", "mailto:x@example.com", &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "url");
    assert_int_equal(errand_webhook_set(c, "mail", NULL, &err), 0);
    assert_int_equal(errand_webhook_set(c, "mail", NULL, &err), ERRAND_ENOTFOUND);

    assert_int_equal(errand_limit_set(c, ERRAND_LIMIT_TAG, "llm", 2, &err), 0);
    assert_int_equal(errand_limit_set(c, ERRAND_LIMIT_TASK, "mail", 5, &err), 0);
    assert_int_equal(errand_rate_limit_set(c, "mail", 10, 60, &err), 0);
    assert_int_equal(errand_limit_set(c, ERRAND_LIMIT_TAG, "llm", -1, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "max_running");
    struct limit_list limits;
    assert_int_equal(store_list_limits(fx->st, &limits, &err), 0);
    const struct limit_record *tag = find_limit(&limits, LIMIT_TAG, "llm");
    const struct limit_record *task = find_limit(&limits, LIMIT_TASK, "mail");
    assert_non_null(tag);
    assert_non_null(task);
    assert_int_equal(tag->max_running, 2);
    assert_int_equal(task->max_running, 5);
    assert_int_equal(task->rate_max, 10);
    assert_int_equal(task->rate_period_ms, 60000);
    limit_list_clear(&limits);
    assert_int_equal(errand_limit_set(c, ERRAND_LIMIT_TAG, "llm", 0, &err), 0);
    assert_int_equal(store_list_limits(fx->st, &limits, &err), 0);
    assert_null(find_limit(&limits, LIMIT_TAG, "llm"));
    limit_list_clear(&limits);
    errand_client_free(c);
    live_stop(&ls);
}

static void a_schedule_is_set_paused_resumed_and_deleted(void **state)
{
    struct fixture *fx = *state;
    struct live_server ls;
    live_start(fx, &ls);
    errand_client *c = client_of(&ls);
    errand_error err;
    char *answer = NULL;
    assert_int_equal(errand_schedule_set(c,
                                         "{\"name\": \"nightly\", \"task\": \"report\", "
                                         "\"cron\": \"30 2 * * *\", \"time_zone\": \"UTC\"}",
                                         &answer, &err),
                     0);
    assert_non_null(strstr(answer, "\"next_tick\""));
    errand_free(answer);
    struct schedule_row s;
    assert_int_equal(store_schedule_get(fx->st, "nightly", &s, &err), 0);
    assert_string_equal(s.cron, "30 2 * * *");
    assert_false(s.paused);
    schedule_row_clear(&s);
    assert_int_equal(errand_schedule_pause(c, "nightly", true, &err), 0);
    assert_int_equal(store_schedule_get(fx->st, "nightly", &s, &err), 0);
    assert_true(s.paused);
    schedule_row_clear(&s);
    assert_int_equal(errand_schedule_pause(c, "nightly", false, &err), 0);
    assert_int_equal(store_schedule_get(fx->st, "nightly", &s, &err), 0);
    assert_false(s.paused);
    schedule_row_clear(&s);
    assert_int_equal(
        errand_schedule_set(c, "{\"name\": \"x\", \"task\": \"t\", \"cron\": \"61 * * * *\"}", NULL,
                            &err),
        ERRAND_EINVAL);
    assert_string_equal(err.field, "cron");
    assert_int_equal(errand_schedule_set(c, "[1]", NULL, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "schedule");
    assert_int_equal(errand_schedule_delete(c, "nightly", &err), 0);
    assert_int_equal(errand_schedule_delete(c, "nightly", &err), ERRAND_ENOTFOUND);
    errand_client_free(c);
    live_stop(&ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(webhooks_and_limits_reach_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(a_schedule_is_set_paused_resumed_and_deleted, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
