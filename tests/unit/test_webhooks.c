/* SPDX-License-Identifier: MIT */
/*
 * test_webhooks.c — webhooks in the SQLite store (store.h, store/webhook_row.h) and the
 * sender's pure parts: a run's end writes one delivery, to its submission's URL before its
 * task's, none without either; a take holds what it took (a second take at the same moment
 * gets nothing; when the hold ends it is due again, one attempt further); a retry of an
 * attempt another sender has taken since changes nothing; done deletes; the signature is
 * the HMAC-SHA256 of "<t>.<body>"; the backoff doubles up to its cap; URLs are checked; the
 * sender's look for due deliveries and a run's end do not grow with the deliveries held.
 */
#include "statement_work.h"

#include "server/webhook_sender.h"
#include "server/webhook_signature.h"
#include "server/webhook_url.h"

static struct webhook_delivery_list take(struct fixture *fx, int64_t now, int64_t hold)
{
    struct webhook_delivery_list l;
    errand_error err;
    assert_int_equal(store_webhook_take(fx->st, now, hold, 10, &l, &err), 0);
    return l;
}

static int64_t pending(struct fixture *fx)
{
    struct webhook_delivery_list l;
    int64_t total = -1;
    errand_error err;
    assert_int_equal(store_webhook_pending(fx->st, 10, &l, &total, &err), 0);
    webhook_delivery_list_clear(&l);
    return total;
}

static void a_runs_end_writes_one_delivery_its_own_url_first(void **state)
{
    struct fixture *fx = *state;
    errand_error err;
    int64_t t = fx->t0;
    assert_int_equal(store_webhook_set(fx->st, "hooked", "http://task.example/", t, &err), 0);
    json_t *own =
        submit(fx, t, "{\"task\": \"hooked\", \"webhook_url\": \"http://own.example/\"}", NULL);
    json_t *plain = submit(fx, t, "{\"task\": \"hooked\"}", NULL);
    json_t *none = submit(fx, t, "{\"task\": \"other\"}", NULL);
    assert_int_equal(pending(fx), 0); /* nothing has ended */
    json_t *runs[] = {own, plain, none};
    for (int i = 0; i < 3; i++) {
        json_t *after = NULL;
        assert_int_equal(store_cancel_json(fx->st, sfield(runs[i], "id"), t + 10, &after, &err), 0);
        json_decref(after);
    }
    /* cancelling again ends nothing new */
    json_t *again = NULL;
    store_cancel_json(fx->st, sfield(own, "id"), t + 20, &again, &err);
    json_decref(again);
    struct webhook_delivery_list l = take(fx, t + 10, t + 1000);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].run_id, sfield(own, "id"));
    assert_string_equal(l.items[0].url, "http://own.example/");
    assert_string_equal(l.items[1].run_id, sfield(plain, "id"));
    assert_string_equal(l.items[1].url, "http://task.example/");
    assert_int_equal(l.items[0].attempt, 1);
    assert_int_equal(l.items[0].created, t + 10);
    webhook_delivery_list_clear(&l);
    for (int i = 0; i < 3; i++)
        json_decref(runs[i]);
    /* a task's webhook removed: a second removal says there is none */
    assert_int_equal(store_webhook_set(fx->st, "hooked", NULL, t, &err), 0);
    assert_int_equal(store_webhook_set(fx->st, "hooked", NULL, t, &err), ERRAND_ENOTFOUND);
}

static void a_take_holds_and_a_stale_retry_changes_nothing(void **state)
{
    struct fixture *fx = *state;
    errand_error err;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"x\", \"webhook_url\": \"https://h.example/\"}", NULL);
    json_t *after = NULL;
    assert_int_equal(store_cancel_json(fx->st, sfield(run, "id"), t, &after, &err), 0);
    json_decref(after);
    json_decref(run);
    struct webhook_delivery_list first = take(fx, t, t + 100);
    assert_int_equal(first.n, 1);
    int64_t id = first.items[0].id;
    webhook_delivery_list_clear(&first);
    struct webhook_delivery_list none = take(fx, t + 50, t + 150); /* held */
    assert_int_equal(none.n, 0);
    webhook_delivery_list_clear(&none);
    /* the hold ran out: another sender takes it, attempt 2 */
    struct webhook_delivery_list second = take(fx, t + 100, t + 200);
    assert_int_equal(second.n, 1);
    assert_int_equal(second.items[0].attempt, 2);
    webhook_delivery_list_clear(&second);
    /* the first sender's late retry (attempt 1) changes nothing: still held until t + 200 */
    assert_int_equal(store_webhook_retry(fx->st, id, 1, t + 101, "HTTP 500", &err), 0);
    struct webhook_delivery_list still = take(fx, t + 150, t + 300);
    assert_int_equal(still.n, 0);
    webhook_delivery_list_clear(&still);
    /* the second's retry moves it on and records the error */
    assert_int_equal(store_webhook_retry(fx->st, id, 2, t + 500, "HTTP 503", &err), 0);
    struct webhook_delivery_list shown;
    int64_t total = 0;
    assert_int_equal(store_webhook_pending(fx->st, 10, &shown, &total, &err), 0);
    assert_int_equal(total, 1);
    assert_int_equal(shown.items[0].next_at, t + 500);
    assert_string_equal(shown.items[0].last_error, "HTTP 503");
    webhook_delivery_list_clear(&shown);
    assert_int_equal(store_webhook_done(fx->st, id, &err), 0);
    assert_int_equal(pending(fx), 0);
}

/* n webhook deliveries held until far in the future (their senders are calling them),
 * n tasks with a webhook and n runs with one of their own: what a busy deployment holds. */
static void add_webhook_rows(struct fixture *fx, int from, int n, int64_t now)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE i(k) AS (SELECT %d UNION ALL SELECT k + 1 FROM i WHERE k < %d) "
             "INSERT INTO webhook_deliveries (run_id, url, attempt, next_at, created) "
             "SELECT 'run-' || k, 'http://h/', 1, %lld, %lld FROM i;"
             "WITH RECURSIVE i(k) AS (SELECT %d UNION ALL SELECT k + 1 FROM i WHERE k < %d) "
             "INSERT INTO task_webhooks (task, url, created, updated) "
             "SELECT 'task-' || k, 'http://h/', 0, 0 FROM i;"
             "WITH RECURSIVE i(k) AS (SELECT %d UNION ALL SELECT k + 1 FROM i WHERE k < %d) "
             "INSERT INTO run_webhooks (run_id, url) SELECT 'run-' || k, 'http://h/' FROM i;",
             from, from + n - 1, (long long)(now + 3600 * 1000), (long long)now, from, from + n - 1,
             from, from + n - 1);
    exec_sql(fx, sql);
}

static void bind_webhook_due(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now);
}

static void bind_webhook_take(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, now + 15000);
    sqlite3_bind_int(s, 3, 32);
}

static void bind_webhook_run_ended(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "a-run-without-a-url", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, "a-task-without-one", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now);
}

static void webhook_statements_do_not_grow_with_deliveries_held(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    add_webhook_rows(fx, 0, SMALL, t);
    struct work due_small = measure(fx, SQL_WEBHOOK_DUE, bind_webhook_due, t);
    struct work take_small = measure(fx, SQL_WEBHOOK_TAKE, bind_webhook_take, t);
    struct work end_small = measure(fx, SQL_WEBHOOK_RUN_ENDED, bind_webhook_run_ended, t);
    add_webhook_rows(fx, SMALL, LARGE - SMALL, t);
    struct work due_large = measure(fx, SQL_WEBHOOK_DUE, bind_webhook_due, t);
    struct work take_large = measure(fx, SQL_WEBHOOK_TAKE, bind_webhook_take, t);
    struct work end_large = measure(fx, SQL_WEBHOOK_RUN_ENDED, bind_webhook_run_ended, t);
    assert_int_equal(due_large.rows, 0);
    assert_int_equal(take_large.rows, 0);
    assert_same_work("SQL_WEBHOOK_DUE with every delivery held", due_small, due_large);
    assert_same_work("SQL_WEBHOOK_TAKE with every delivery held", take_small, take_large);
    assert_same_work("SQL_WEBHOOK_RUN_ENDED of a run without a webhook", end_small, end_large);
}

static void the_signature_and_the_backoff(void **state)
{
    (void)state;
    char sig[WEBHOOK_SIGNATURE_MAX];
    const char body[] = "{\"a\":1}";
    assert_int_equal(webhook_signature("shh", 1700000000, body, strlen(body), sig), 0);
    /* python3: hmac.new(b"shh", b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    assert_string_equal(sig, "t=1700000000,v1="
                             "be310eac0f84daf469d630347a950258de768b365563ab68f29f2f783473d547");
    assert_int_equal(webhook_retry_delay_ms(10000, 1), 10000);
    assert_int_equal(webhook_retry_delay_ms(10000, 2), 20000);
    assert_int_equal(webhook_retry_delay_ms(10000, 4), 80000);
    assert_int_equal(webhook_retry_delay_ms(10000, 60), WEBHOOK_RETRY_MAX_MS);
}

static void urls_are_checked(void **state)
{
    (void)state;
    errand_error err;
    assert_int_equal(webhook_url_check("https://hooks.example.com/x?y=1", "url", &err), 0);
    assert_int_equal(webhook_url_check("http://127.0.0.1:8080/", "url", &err), 0);
    const char *bad[] = {"ftp://example.com/", "example.com/hook", "http://", "", "http:// x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(webhook_url_check(bad[i], "url", &err), ERRAND_EINVAL);
        assert_string_equal(err.field, "url");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_runs_end_writes_one_delivery_its_own_url_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_take_holds_and_a_stale_retry_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(webhook_statements_do_not_grow_with_deliveries_held, setup,
                                        teardown),
        cmocka_unit_test(the_signature_and_the_backoff),
        cmocka_unit_test(urls_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
