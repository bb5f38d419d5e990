/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite.c — the SQLite store through store.h, client side: submissions (batch
 * all-or-nothing, idempotency), caching, listings and their filters, logs, workers, counts,
 * durability across reopen, schema versions, open errors and index use of the hot queries.
 * Worker-side calls are in test_store_sqlite_worker.c, faults in test_store_sqlite_faults.c.
 */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* --- submissions --------------------------------------------------------------------- */

static void submit_get_round_trip(void **state)
{
    struct fixture *fx = *state;
    bool created = false;
    json_t *run = submit(fx, fx->t0,
                         "{\"task\": \"mail\", \"parameters\": {\"to\": \"a@b.c\", \"n\": 3},"
                         " \"priority\": 7, \"tags\": [\"web\", \"eu\"], \"retries\": 2,"
                         " \"retry_delay_seconds\": [1, 2.5], \"retry_jitter_factor\": 0.5,"
                         " \"timeout_seconds\": 60, \"persist_result\": true}",
                         &created);
    assert_true(created);
    const char *id = sfield(run, "id");
    assert_int_equal(strlen(id), 36);
    json_t *got = get_run(fx, id);
    /* The answer of the submit and a later GET are the same object. */
    assert_true(json_equal(run, got));
    assert_string_equal(sfield(got, "task"), "mail");
    assert_string_equal(state_type_of(got), "SCHEDULED");
    assert_string_equal(state_name_of(got), "Scheduled");
    assert_int_equal(ifield(got, "attempt"), 0);
    assert_int_equal(ifield(got, "max_attempts"), 3);
    assert_int_equal(ifield(got, "priority"), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "parameters"), "n")),
                     3);
    assert_int_equal(json_array_size(json_object_get(got, "tags")), 2);
    json_t *delays = json_object_get(got, "retry_delay_seconds");
    assert_true(json_is_integer(json_array_get(delays, 0)));
    assert_true(json_real_value(json_array_get(delays, 1)) == 2.5);
    assert_true(json_is_true(json_object_get(got, "persist_result")));
    assert_int_equal(ifield(got, "timeout_seconds"), 60);
    assert_true(json_is_null(json_object_get(got, "started")));
    assert_true(json_is_null(json_object_get(got, "worker")));
    assert_true(json_is_null(json_object_get(got, "idempotency_key")));
    assert_null(json_object_get(got, "result"));
    assert_int_equal(parse_time(json_object_get(got, "created")), fx->t0);

    errand_state st;
    errand_error err;
    assert_int_equal(store_get_state(fx->st, id, &st, &err), 0);
    assert_int_equal(st, ERRAND_STATE_SCHEDULED);
    /* Ids are case-insensitive on the way in. */
    char upper[37];
    for (size_t i = 0; i < 37; i++)
        upper[i] = (char)((id[i] >= 'a' && id[i] <= 'f') ? id[i] - 32 : id[i]);
    json_t *again = get_run(fx, upper);
    assert_string_equal(sfield(again, "id"), id);
    json_decref(again);

    struct state_history states;
    assert_int_equal(store_get_states(fx->st, id, &states, &err), 0);
    assert_int_equal(states.n, 1);
    assert_int_equal(states.items[0].type, ERRAND_STATE_SCHEDULED);
    assert_string_equal(states.items[0].name, "Scheduled");
    state_history_clear(&states);

    struct run_row none;
    assert_int_equal(store_get_run(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &none, &err),
                     ERRAND_ENOTFOUND);
    assert_null(none.id);
    assert_int_equal(store_get_state(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &st, &err),
                     ERRAND_ENOTFOUND);
    assert_int_equal(
        store_get_states(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", &states, &err),
        ERRAND_ENOTFOUND);
    json_decref(run);
    json_decref(got);
}

static void batch_idempotency_inside_one_batch(void **state)
{
    struct fixture *fx = *state;
    struct run_spec specs[3];
    parse_spec(&specs[0], fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"k1\"}");
    parse_spec(&specs[1], fx->t0, "{\"task\": \"t\"}");
    parse_spec(&specs[2], fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"k1\"}");
    struct run_row rows[3];
    json_t *runs[3];
    bool created[3];
    errand_error err;
    assert_int_equal(store_submit(fx->st, specs, 3, fx->t0, rows, created, &err), 0);
    for (int i = 0; i < 3; i++)
        runs[i] = row_json(&rows[i]);
    assert_true(created[0]);
    assert_true(created[1]);
    assert_false(created[2]);
    assert_string_equal(sfield(runs[0], "id"), sfield(runs[2], "id"));
    assert_string_equal(sfield(runs[2], "idempotency_key"), "k1");
    assert_int_equal(total_runs(fx), 2);
    for (int i = 0; i < 3; i++) {
        json_decref(runs[i]);
        run_spec_clear(&specs[i]);
    }
}

static void idempotency_across_calls(void **state)
{
    struct fixture *fx = *state;
    bool created = false;
    json_t *a = submit(fx, fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"order-1\"}", &created);
    assert_true(created);
    json_t *b =
        submit(fx, fx->t0 + SEC, "{\"task\": \"t\", \"idempotency_key\": \"order-1\"}", &created);
    assert_false(created);
    assert_true(json_equal(a, b));
    assert_int_equal(total_runs(fx), 1);
    /* Keys are per task: the same order id for another task is another run. */
    json_t *other = submit(fx, fx->t0 + 2 * SEC,
                           "{\"task\": \"u\", \"idempotency_key\": \"order-1\"}", &created);
    assert_true(created);
    assert_string_equal(sfield(other, "task"), "u");
    assert_int_equal(total_runs(fx), 2);
    json_decref(other);
    json_decref(a);
    json_decref(b);
}

/* An allocation failure anywhere in a batch (including inside the writer, after some runs
 * of the batch were inserted) stores nothing; once allocations work again, all is stored. */
static void batch_all_or_nothing_on_failure(void **state)
{
    struct fixture *fx = *state;
    /* A stored run whose idempotency key the batch repeats: the writer copies it mid-batch. */
    json_t *first = submit(fx, fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"dup\"}", NULL);
    json_decref(first);
    const int n = 6;
    struct run_spec specs[6];
    for (int i = 0; i < n; i++)
        parse_spec(&specs[i], fx->t0,
                   i == 4 ? "{\"task\": \"t\", \"idempotency_key\": \"dup\"}"
                          : "{\"task\": \"t\", \"tags\": [\"x\"], \"retry_delay_seconds\": 1}");
    int failures = 0;
    for (long budget = 0;; budget++) {
        struct run_row runs[6];
        bool created[6];
        errand_error err;
        mem_fail_after(budget);
        int rc = store_submit(fx->st, specs, (size_t)n, fx->t0, runs, created, &err);
        mem_fail_after(-1);
        if (rc == 0) {
            assert_int_equal(total_runs(fx), 1 + n - 1);
            for (int i = 0; i < n; i++)
                run_row_clear(&runs[i]);
            break;
        }
        failures++;
        for (int i = 0; i < n; i++)
            assert_null(runs[i].id);
        assert_int_equal(total_runs(fx), 1); /* nothing of the failed batch */
    }
    assert_true(failures > 0);
    for (int i = 0; i < n; i++)
        run_spec_clear(&specs[i]);
}

/* store_submit in halves, as the HTTP event threads use it: done is called once, on the
 * store's thread, before end hands out the run; a begin that fails never calls done. */
struct done_count {
    atomic_int calls;
    pthread_t thread;
};

static void count_done(void *arg)
{
    struct done_count *d = arg;
    d->thread = pthread_self();
    atomic_fetch_add(&d->calls, 1);
}

static void submit_in_halves(void **state)
{
    struct fixture *fx = *state;
    struct run_spec spec;
    parse_spec(&spec, fx->t0, "{\"task\": \"t\", \"tags\": [\"half\"]}");
    struct done_count d;
    atomic_init(&d.calls, 0);
    errand_error err;
    store_submission *sub = NULL;
    assert_int_equal(store_submit_begin(fx->st, &spec, 1, fx->t0, count_done, &d, &sub, &err), 0);
    for (int i = 0; i < 5000 && atomic_load(&d.calls) == 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_false(pthread_equal(d.thread, pthread_self()));
    struct run_row run;
    bool created = false;
    assert_int_equal(store_submit_end(fx->st, sub, &run, &created, &err), 0);
    assert_true(created);
    assert_string_equal(run.task, "t");
    assert_string_equal(run.tags, "[\"half\"]");
    assert_int_equal(total_runs(fx), 1);
    run_row_clear(&run);

    mem_fail_after(0); /* begin cannot even allocate */
    int rc = store_submit_begin(fx->st, &spec, 1, fx->t0, count_done, &d, &sub, &err);
    mem_fail_after(-1);
    assert_int_equal(rc, ERRAND_ENOMEM);
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(total_runs(fx), 1);
    run_spec_clear(&spec);
}

/* --- caching ------------------------------------------------------------------------- */
static void cache_hit_and_expiry(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *src = submit(
        fx, t, "{\"task\": \"c\", \"cache_key\": \"K\", \"cache_expiration_seconds\": 10}", NULL);
    /* Not completed yet: no cache hit. */
    json_t *early = submit(fx, t, "{\"task\": \"other\", \"cache_key\": \"K\"}", NULL);
    assert_string_equal(state_type_of(early), "SCHEDULED");
    json_decref(early);

    complete_run(fx, "c", "{\"answer\": 42}", t);
    bool created = false;
    json_t *hit = submit(fx, t + 1 * SEC, "{\"task\": \"c\", \"cache_key\": \"K\"}", &created);
    assert_true(created);
    assert_string_equal(state_type_of(hit), "COMPLETED");
    assert_string_equal(state_name_of(hit), "Cached");
    assert_non_null(strstr(sfield(json_object_get(hit, "state"), "message"), sfield(src, "id")));
    assert_int_equal(ifield(json_object_get(hit, "result"), "answer"), 42);
    json_t *stored = get_run(fx, sfield(hit, "id"));
    assert_true(json_equal(hit, stored));
    json_decref(stored);
    /* Keys are per task: another task's run with the same key runs. */
    json_t *foreign = submit(fx, t + 1 * SEC, "{\"task\": \"other\", \"cache_key\": \"K\"}", NULL);
    assert_string_equal(state_type_of(foreign), "SCHEDULED");
    json_decref(foreign);

    json_t *miss = submit(fx, t + 11 * SEC, "{\"task\": \"c\", \"cache_key\": \"K\"}", NULL);
    assert_string_equal(state_type_of(miss), "SCHEDULED");

    /* Without an expiration the cache never expires. */
    json_t *forever = submit(fx, t, "{\"task\": \"f\", \"cache_key\": \"F\"}", NULL);
    complete_run(fx, "f", "[1, 2]", t);
    json_t *late =
        submit(fx, t + 1000 * 24 * 3600 * SEC, "{\"task\": \"f\", \"cache_key\": \"F\"}", NULL);
    assert_string_equal(state_name_of(late), "Cached");
    assert_int_equal(json_array_size(json_object_get(late, "result")), 2);

    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_COMPLETED], 4);
    json_decref(src);
    json_decref(hit);
    json_decref(miss);
    json_decref(forever);
    json_decref(late);
}

/* --- listings, logs, workers, counts ------------------------------------------------- */
static void list_pagination_and_filters(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char ids[25][37];
    for (int i = 0; i < 25; i++) {
        json_t *r = submit(fx, t + i,
                           i % 2 ? "{\"task\": \"odd\", \"tags\": [\"blue\"]}"
                                 : "{\"task\": \"even\", \"tags\": [\"red\", \"blue\"]}",
                           NULL);
        snprintf(ids[i], 37, "%s", sfield(r, "id"));
        json_decref(r);
    }
    /* Pages of 10, newest first, covering everything once. */
    char next[37];
    json_t *p1 = list(fx, 0, NULL, NULL, NULL, 10, next);
    assert_int_equal(json_array_size(p1), 10);
    assert_string_equal(sfield(json_array_get(p1, 0), "id"), ids[24]);
    assert_string_equal(next, ids[15]);
    char cur[37];
    snprintf(cur, sizeof cur, "%s", next);
    json_t *p2 = list(fx, 0, NULL, NULL, cur, 10, next);
    assert_string_equal(sfield(json_array_get(p2, 0), "id"), ids[14]);
    snprintf(cur, sizeof cur, "%s", next);
    json_t *p3 = list(fx, 0, NULL, NULL, cur, 10, next);
    assert_int_equal(json_array_size(p3), 5);
    assert_string_equal(next, "");
    assert_string_equal(sfield(json_array_get(p3, 4), "id"), ids[0]);
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);

    json_t *odd = list(fx, 0, "odd", NULL, NULL, 100, next);
    assert_int_equal(json_array_size(odd), 12);
    json_decref(odd);
    json_t *red = list(fx, 0, NULL, "red", NULL, 100, next);
    assert_int_equal(json_array_size(red), 13);
    assert_string_equal(sfield(json_array_get(red, 0), "id"), ids[24]);
    json_decref(red);
    json_t *red_page = list(fx, 0, NULL, "red", NULL, 5, next);
    assert_int_equal(json_array_size(red_page), 5);
    assert_string_equal(next, ids[16]);
    json_decref(red_page);

    /* Complete 3 "even" runs, cancel 2; filter by states. */
    json_t *claimed = claim(fx, "w1", "even", 3, 30, t + 100);
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(claimed, i);
        report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_COMPLETED, NULL, NULL,
               true, t + 101);
    }
    json_decref(claimed);
    errand_error err;
    struct run_row out;
    assert_int_equal(store_cancel(fx->st, ids[1], t, &out, &err), 0);
    run_row_clear(&out);
    assert_int_equal(store_cancel(fx->st, ids[3], t, &out, &err), 0);
    run_row_clear(&out);

    unsigned done = (1u << ERRAND_STATE_COMPLETED) | (1u << ERRAND_STATE_CANCELLED);
    json_t *fin = list(fx, done, NULL, NULL, NULL, 100, next);
    assert_int_equal(json_array_size(fin), 5);
    for (size_t i = 1; i < 5; i++) /* still newest first across the merged states */
        assert_true(strcmp(sfield(json_array_get(fin, i - 1), "id"),
                           sfield(json_array_get(fin, i), "id")) > 0);
    json_decref(fin);
    json_t *fin_page = list(fx, done, NULL, NULL, NULL, 2, next);
    assert_int_equal(json_array_size(fin_page), 2);
    assert_string_not_equal(next, "");
    snprintf(cur, sizeof cur, "%s", next);
    json_decref(fin_page);
    fin_page = list(fx, done, NULL, NULL, cur, 10, next);
    assert_int_equal(json_array_size(fin_page), 3);
    json_decref(fin_page);
    json_t *comp_odd = list(fx, 1u << ERRAND_STATE_COMPLETED, "odd", NULL, NULL, 100, next);
    assert_int_equal(json_array_size(comp_odd), 0);
    json_decref(comp_odd);
    json_t *cancel_blue = list(fx, 1u << ERRAND_STATE_CANCELLED, NULL, "blue", NULL, 100, next);
    assert_int_equal(json_array_size(cancel_blue), 2);
    json_decref(cancel_blue);
    json_t *cancel_red = list(fx, 1u << ERRAND_STATE_CANCELLED, NULL, "red", NULL, 100, next);
    assert_int_equal(json_array_size(cancel_red), 0);
    json_decref(cancel_red);

    struct run_filter bad = {.limit = 0};
    struct run_list none;
    assert_int_equal(store_list_runs(fx->st, &bad, &none, next, &err), ERR_INVALID_PARAMETER);
    assert_int_equal(none.n, 0);
    assert_string_equal(err.field, "limit");
}

/* Every state is listed from its own index; merged states keep newest-first paging. */
static void list_each_state(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 7; i++)
        json_decref(submit(fx, t + i, "{\"task\": \"ls\"}", NULL));
    /* The 5 oldest are claimed: 2 end RUNNING, 1 COMPLETED, 1 FAILED, 1 stays PENDING. */
    json_t *claimed = claim(fx, "w1", "ls", 5, 30, t + 10);
    for (size_t i = 0; i < 5; i++) {
        json_t *c = json_array_get(claimed, i);
        const char *id = sfield(c, "id"), *tok = sfield(c, "lease_token");
        if (i < 3)
            report(fx, id, tok, ERRAND_STATE_RUNNING, NULL, NULL, true, t + 11);
        if (i == 2)
            report(fx, id, tok, ERRAND_STATE_COMPLETED, NULL, NULL, true, t + 12);
        if (i == 3)
            report(fx, id, tok, ERRAND_STATE_FAILED, NULL, "x", false, t + 12);
    }
    const struct {
        errand_state s;
        size_t n;
    } expect[] = {
        {ERRAND_STATE_SCHEDULED, 2}, {ERRAND_STATE_PENDING, 1}, {ERRAND_STATE_RUNNING, 2},
        {ERRAND_STATE_COMPLETED, 1}, {ERRAND_STATE_FAILED, 1},  {ERRAND_STATE_CRASHED, 0},
    };
    char next[37];
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        json_t *runs = list(fx, 1u << expect[i].s, NULL, NULL, NULL, 10, next);
        assert_int_equal(json_array_size(runs), expect[i].n);
        for (size_t j = 0; j < json_array_size(runs); j++)
            assert_string_equal(state_type_of(json_array_get(runs, j)),
                                state_type_name(expect[i].s));
        json_decref(runs);
        runs = list(fx, 1u << expect[i].s, "nope", NULL, NULL, 10, next);
        assert_int_equal(json_array_size(runs), 0);
        json_decref(runs);
    }
    /* In flight (PENDING | RUNNING), one per page, newest first. */
    unsigned mask = (1u << ERRAND_STATE_PENDING) | (1u << ERRAND_STATE_RUNNING);
    char cursor[37] = "";
    const char *prev = NULL;
    int seen = 0;
    json_t *page = NULL;
    for (;;) {
        json_t *p = list(fx, mask, NULL, NULL, cursor[0] ? cursor : NULL, 1, next);
        if (json_array_size(p) == 1) {
            const char *id = sfield(json_array_get(p, 0), "id");
            if (prev)
                assert_true(strcmp(prev, id) > 0);
            seen++;
        }
        json_decref(page);
        page = p;
        prev = json_array_size(p) ? sfield(json_array_get(p, 0), "id") : prev;
        if (!next[0])
            break;
        snprintf(cursor, sizeof cursor, "%s", next);
    }
    json_decref(page);
    assert_int_equal(seen, 3);
    json_decref(claimed);
}

static void logs_append_and_page(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *run = submit(fx, t, "{\"task\": \"l\"}", NULL);
    const char *id = sfield(run, "id");
    struct log_entry logs[] = {
        {id, t + 1, ERRAND_LOG_INFO, "hello"},
        {"01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", t + 1, ERRAND_LOG_INFO, "nobody"},
        {id, t + 2, ERRAND_LOG_WARNING, "careful"},
        {id, t + 3, ERRAND_LOG_ERROR, "oops"},
        {id, t + 4, ERRAND_LOG_DEBUG, "details"},
    };
    errand_error err;
    /* Logs need no lease: they are history. */
    assert_int_equal(store_report(fx->st, "w1", NULL, NULL, 0, logs, 5, t, NULL, &err), 0);
    struct log_page page;
    assert_int_equal(store_get_logs(fx->st, id, 0, 2, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.items[0].message, "hello");
    assert_int_equal(page.items[0].level, ERRAND_LOG_INFO);
    assert_int_equal(page.items[1].level, ERRAND_LOG_WARNING);
    assert_int_equal(page.next_after, page.items[1].seq);
    int64_t next = page.next_after;
    log_page_clear(&page);
    assert_int_equal(store_get_logs(fx->st, id, next, 100, &page, &err), 0);
    assert_int_equal(page.n, 2);
    assert_int_equal(page.items[0].level, ERRAND_LOG_ERROR);
    assert_int_equal(page.items[1].level, ERRAND_LOG_DEBUG);
    assert_int_equal(page.items[1].timestamp, t + 4);
    int64_t last = page.next_after;
    log_page_clear(&page);
    assert_int_equal(store_get_logs(fx->st, id, last, 100, &page, &err), 0);
    assert_int_equal(page.n, 0);
    assert_int_equal(page.next_after, last);
    log_page_clear(&page);
    assert_int_equal(
        store_get_logs(fx->st, "01938f2e-7c1a-7b3e-9a55-2f1c0e6d4b21", 0, 10, &page, &err),
        ERRAND_ENOTFOUND);
    json_decref(run);
}

static void workers_and_counts(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < 3; i++)
        json_decref(submit(fx, t, "{\"task\": \"wk\"}", NULL));
    json_t *runs = claim(fx, "alpha", "wk", 2, 30, t);
    json_decref(runs);
    runs = claim(fx, "beta", "wk", 5, 30, t + 10 * SEC);
    json_t *c = json_array_get(runs, 0);
    report(fx, sfield(c, "id"), sfield(c, "lease_token"), ERRAND_STATE_RUNNING, NULL, NULL, true,
           t + 10 * SEC);
    json_decref(runs);
    struct worker_list w;
    bool more = true;
    errand_error err;
    assert_int_equal(store_list_workers(fx->st, NULL, 100, &w, &more, &err), 0);
    assert_false(more);
    assert_int_equal(w.n, 3); /* beta, w1 (report), alpha */
    const struct worker_record *alpha = NULL, *beta = NULL;
    for (size_t i = 0; i < w.n; i++) {
        if (strcmp(w.items[i].name, "alpha") == 0)
            alpha = &w.items[i];
        if (strcmp(w.items[i].name, "beta") == 0)
            beta = &w.items[i];
    }
    assert_non_null(alpha);
    assert_non_null(beta);
    assert_int_equal(alpha->claimed, 2);
    assert_true(alpha->last_seen < beta->last_seen);
    assert_string_equal(beta->tasks, "[\"wk\"]");
    worker_list_clear(&w);
    int64_t cnt[8];
    counts(fx, cnt);
    assert_int_equal(cnt[ERRAND_STATE_PENDING], 2);
    assert_int_equal(cnt[ERRAND_STATE_RUNNING], 1);
    assert_int_equal(cnt[ERRAND_STATE_SCHEDULED], 0);
}

/* --- durability, schema, plumbing ---------------------------------------------------- */

static void reopen_keeps_everything(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *a = submit(fx, t, "{\"task\": \"d\", \"idempotency_key\": \"keep\"}", NULL);
    complete_run(fx, "d", "{\"v\": \"kept\"}", t);
    json_t *b = submit(fx, t, "{\"task\": \"d\"}", NULL);
    json_t *before = get_run(fx, sfield(a, "id"));
    int64_t c1[8];
    counts(fx, c1);
    store_close(fx->st);
    fx->st = NULL;
    open_store(fx, "full");
    json_t *after = get_run(fx, sfield(a, "id"));
    assert_true(json_equal(before, after));
    int64_t c2[8];
    counts(fx, c2);
    assert_memory_equal(c1, c2, sizeof c1);
    bool created = true;
    json_t *again = submit(fx, t, "{\"task\": \"d\", \"idempotency_key\": \"keep\"}", &created);
    assert_false(created);
    json_t *runs = claim(fx, "w1", "d", 10, 30, t);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(b, "id"));
    json_decref(runs);
    json_decref(again);
    json_decref(a);
    json_decref(b);
    json_decref(before);
    json_decref(after);
}

static void schema_version_checked(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    fx->st = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), sqlite_schema_version());
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_migrations", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), sqlite_schema_migration_count());
    assert_int_equal(sqlite3_column_int(s, 1), sqlite_schema_version());
    sqlite3_finalize(s);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", sqlite_schema_version() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct store_options opt = {.sync = "full"};
    errand_error err;
    assert_int_equal(store_open(fx->url, &opt, &fx->st, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "newer"));
    assert_null(fx->st);
    /* Put it back so teardown can close a real store. */
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", sqlite_schema_version());
    sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    open_store(fx, "off");
}

static void open_errors_name_the_problem(void **state)
{
    (void)state;
    store *st = NULL;
    errand_error err;
    struct store_options opt = {.sync = "full"};
    /* A PostgreSQL URL goes to the PostgreSQL store; nobody listens on port 1. */
    assert_int_equal(store_open("postgresql://u@127.0.0.1:1/db", &opt, &st, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "cannot connect to PostgreSQL"));
    assert_int_equal(store_open("postgres://u@127.0.0.1:1/db", &opt, &st, &err), ERRAND_ESTORE);
    assert_int_equal(store_open("mysql://x", &opt, &st, &err), ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "mysql://x"));
    assert_int_equal(store_open("sqlite://", &opt, &st, &err), ERRAND_EINVAL);
    assert_int_equal(store_open("sqlite://:memory:", &opt, &st, &err), ERRAND_EINVAL);
    struct store_options bad = {.sync = "sometimes"};
    assert_int_equal(store_open("sqlite:///tmp/errand-never-created.db", &bad, &st, &err),
                     ERRAND_EINVAL);
    assert_non_null(strstr(err.message, "sometimes"));
    assert_null(st);
}

static void creates_missing_directories(void **state)
{
    struct fixture *fx = *state;
    char url[256], dir1[200], dir2[200], db[220];
    snprintf(dir1, sizeof dir1, "%s/home", fx->dir);
    snprintf(dir2, sizeof dir2, "%s/home/sub", fx->dir);
    snprintf(db, sizeof db, "%s/errand.db", dir2);
    snprintf(url, sizeof url, "sqlite://%s", db);
    store *st = NULL;
    errand_error err;
    struct store_options opt = {.sync = "normal"};
    assert_int_equal(store_open(url, &opt, &st, &err), 0);
    assert_string_equal(store_kind(st), "sqlite");
    store_close(st);
    char p[240];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", db, suffixes[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(dir2), 0);
    assert_int_equal(rmdir(dir1), 0);
}

/* A child process: waits for the go byte on fd, opens url, exits 0 if it could. */
static pid_t open_in_child(const char *url, int go_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char go;
    if (read(go_fd, &go, 1) != 1)
        _exit(2);
    struct store_options opt = {.sync = "normal"};
    store *st = NULL;
    errand_error err;
    if (store_open(url, &opt, &st, &err) != 0) {
        fprintf(stderr, "store_open in child: %s\n", err.message);
        _exit(1);
    }
    store_close(st);
    _exit(0);
}

/* Two servers started at once on a store that does not exist yet (two containers of one
 * deployment) both open it: switching a new file to WAL waits for the other process's
 * switch (SQLite answers that one "locked" at once, past its busy handler). */
static void two_processes_opening_a_new_file_at_once_both_open(void **state)
{
    struct fixture *fx = *state;
    /* No thread of ours while forking: the fixture's store threads, just started, may be
       inside the allocator (AddressSanitizer's takes locks) at the fork, and a child would
       then wait forever on a lock no thread of its own holds. */
    store_close(fx->st);
    fx->st = NULL;
    for (int round = 0; round < 30; round++) {
        char path[200], url[220];
        snprintf(path, sizeof path, "%s/new.db", fx->dir);
        snprintf(url, sizeof url, "sqlite://%s", path);
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kids[2] = {open_in_child(url, go[0]), open_in_child(url, go[0])};
        assert_int_equal(write(go[1], "gg", 2), 2);
        for (int i = 0; i < 2; i++) {
            int status = -1;
            assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("round %d: a process could not open the new store", round);
        }
        close(go[0]);
        close(go[1]);
        const char *suffixes[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < 3; i++) {
            char p[240];
            snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
            unlink(p);
        }
    }
    open_store(fx, "normal"); /* for teardown */
}

/* The hot queries walk the indexes meant for them. */
static void hot_queries_use_their_indexes(void **state)
{
    struct fixture *fx = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    struct {
        enum sql_id id;
        const char *index;
    } want[] = {
        {SQL_CLAIM_CANDIDATES, "task_runs_claim"},
        {SQL_LEASE_EXPIRED, "task_runs_lease"},
        {SQL_LIST_ATTENTION, "task_runs_attention"},
        {SQL_CACHE_SOURCE, "task_runs_cache"},
        {SQL_RUN_BY_IDEMPOTENCY, "task_runs_idempotency"},
        {SQL_LIST_TAG, "task_run_tags"},
        {SQL_PROMOTE_DUE, "task_runs_delayed"},
        {SQL_LIST_LEASED, "task_runs_lease"},
        {SQL_LIST_WORKER, "task_runs_worker"},
        {SQL_BOUND_TASK, "task_runs_task"},
        {SQL_BOUND_SCHEDULED, "task_runs_scheduled"},
        {SQL_BOUND_TAG, "task_run_tags"},
        {SQL_BOUND_COMPLETED, "task_runs_completed"},
        {SQL_BOUND_WORKER, "task_runs_worker"},
        {SQL_BOUND_ATTENTION, "task_runs_attention"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char sql[2048];
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", sqlite_sql_text(want[i].id));
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
        char plan[1024] = "";
        bool sorts = false;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(s, 3);
            strncat(plan, detail, sizeof plan - strlen(plan) - 2);
            strcat(plan, "; ");
            if (strstr(detail, "TEMP B-TREE"))
                sorts = true;
        }
        sqlite3_finalize(s);
        if (!strstr(plan, want[i].index))
            fail_msg("%s does not use %s: %s", sqlite_sql_name(want[i].id), want[i].index, plan);
        /* These sort the (small) set they read; the others read in the order they return. */
        bool may_sort = want[i].id == SQL_CACHE_SOURCE || want[i].id == SQL_LIST_LEASED ||
                        want[i].id == SQL_PROMOTE_DUE;
        if (sorts && !may_sort)
            fail_msg("%s sorts: %s", sqlite_sql_name(want[i].id), plan);
    }
    sqlite3_close(db);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(submit_get_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_idempotency_inside_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency_across_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_all_or_nothing_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(submit_in_halves, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_hit_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pagination_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(list_each_state, setup, teardown),
        cmocka_unit_test_setup_teardown(logs_append_and_page, setup, teardown),
        cmocka_unit_test_setup_teardown(workers_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(schema_version_checked, setup, teardown),
        cmocka_unit_test(open_errors_name_the_problem),
        cmocka_unit_test_setup_teardown(creates_missing_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(two_processes_opening_a_new_file_at_once_both_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hot_queries_use_their_indexes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
