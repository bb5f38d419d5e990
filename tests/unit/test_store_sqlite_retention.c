/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_retention.c — what retention (store_delete_expired) deletes and what it
 * leaves: finished runs past the cut-off go with their history, logs and tags, in bounded
 * passes; a result reference is released only when no run holds it any more (a cached copy
 * keeps its source's file); an idempotency key and a cache key of a deleted run start
 * afresh; workers not seen for long are pruned, and the worker list pages; freed pages are
 * reused, so the file stops growing under a steady load.
 */
#include "store_fixture.h"

#define BATCH_RUNS 1200
#define PASS_LIMIT 500
#define STEADY_RUNS 2000
#define STEADY_ROUNDS 4
#define WORKERS 5

/* Rows of `table` that belong to run id (task_run_states, task_run_logs, task_run_tags). */
static int64_t rows_of(struct fixture *fx, const char *table, const char *id)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE run_id = ?1", table);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static struct retention_counts delete_expired(struct fixture *fx, int64_t runs_before,
                                              int64_t workers_before, int limit,
                                              struct ref_list *freed_out)
{
    struct retention_counts n = {-1, -1};
    struct ref_list freed;
    errand_error err;
    if (store_delete_expired(fx->st, runs_before, workers_before, limit, &n, &freed, &err) != 0)
        fail_msg("store_delete_expired: %s", err.message);
    if (freed_out)
        *freed_out = freed;
    else
        ref_list_clear(&freed);
    return n;
}

static bool run_exists(struct fixture *fx, const char *id)
{
    errand_state st;
    errand_error err;
    int rc = store_get_state(fx->st, id, &st, &err);
    if (rc == ERRAND_ENOTFOUND)
        return false;
    assert_int_equal(rc, 0);
    return true;
}

/* Claims the one due run of task and completes it at now with result_ref (or none). */
static void complete_with_ref(struct fixture *fx, const char *task, const char *ref, int64_t now)
{
    json_t *runs = claim(fx, "w1", task, 1, 30, now);
    assert_int_equal(json_array_size(runs), 1);
    json_t *c = json_array_get(runs, 0);
    struct run_report rep = {.id = sfield(c, "id"),
                             .lease_token = sfield(c, "lease_token"),
                             .state = ERRAND_STATE_COMPLETED,
                             .result_ref = ref};
    struct lease_answer answer;
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", NULL, &rep, 1, NULL, 0, now, &answer, &err), 0);
    assert_int_equal(answer.status, LEASE_APPLIED);
    json_decref(runs);
}

static void finished_runs_go_with_their_history_logs_and_tags(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *done = submit(fx, t, "{\"task\": \"r\", \"tags\": [\"red\", \"blue\"]}", NULL);
    json_t *waiting = submit(fx, t, "{\"task\": \"other\", \"tags\": [\"red\"]}", NULL);
    const char *id = sfield(done, "id");
    struct log_entry log = {id, t + 1, ERRAND_LOG_INFO, "a line"};
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", NULL, NULL, 0, &log, 1, t + 1, NULL, &err), 0);
    complete_run(fx, "r", "{\"ok\": true}", t + 2);
    assert_int_equal(rows_of(fx, "task_run_states", id), 3);
    assert_int_equal(rows_of(fx, "task_run_logs", id), 1);
    assert_int_equal(rows_of(fx, "task_run_tags", id), 2);

    /* Not before its time: the cut-off is strict. */
    struct retention_counts n = delete_expired(fx, t + 2, 0, PASS_LIMIT, NULL);
    assert_int_equal(n.runs, 0);
    n = delete_expired(fx, t + 3, 0, PASS_LIMIT, NULL);
    assert_int_equal(n.runs, 1);
    assert_false(run_exists(fx, id));
    assert_int_equal(rows_of(fx, "task_run_states", id), 0);
    assert_int_equal(rows_of(fx, "task_run_logs", id), 0);
    assert_int_equal(rows_of(fx, "task_run_tags", id), 0);
    /* A run that has not finished stays, however old. */
    assert_true(run_exists(fx, sfield(waiting, "id")));
    assert_int_equal(rows_of(fx, "task_run_tags", sfield(waiting, "id")), 1);
    /* The counts follow the rows. */
    assert_int_equal(total_runs(fx), total_runs_counted(fx));
    assert_int_equal(total_runs(fx), 1);
    /* A get on a deleted id is a 404 that says why it may be gone. */
    struct run_row row;
    assert_int_equal(store_get_run(fx->st, id, &row, &err), ERRAND_ENOTFOUND);
    assert_non_null(strstr(err.message, "deleted after it finished"));
    json_decref(done);
    json_decref(waiting);
}

static void deletes_in_bounded_passes_oldest_first(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    struct run_spec *specs = calloc(BATCH_RUNS, sizeof *specs);
    struct run_row *rows = calloc(BATCH_RUNS, sizeof *rows);
    assert_non_null(specs);
    assert_non_null(rows);
    for (int i = 0; i < BATCH_RUNS; i++)
        parse_spec(&specs[i], t, "{\"task\": \"bulk\"}");
    errand_error err;
    assert_int_equal(store_submit(fx->st, specs, BATCH_RUNS, t, rows, NULL, &err), 0);
    for (int i = 0; i < BATCH_RUNS; i++) {
        run_spec_clear(&specs[i]);
        run_row_clear(&rows[i]);
    }
    free(specs);
    free(rows);
    /* Cancelled one by one: each finishes 1 ms after the one before. */
    json_t *all = list(fx, 0, "bulk", NULL, NULL, 1000, (char[37]){0});
    json_t *rest =
        list(fx, 0, "bulk", NULL, sfield(json_array_get(all, 999), "id"), 1000, (char[37]){0});
    json_array_extend(all, rest);
    json_decref(rest);
    assert_int_equal(json_array_size(all), BATCH_RUNS);
    for (size_t i = 0; i < BATCH_RUNS; i++) {
        struct run_row r;
        assert_int_equal(store_cancel(fx->st, sfield(json_array_get(all, i), "id"),
                                      t + 1 + (int64_t)i, &r, &err),
                         0);
        run_row_clear(&r);
    }
    int64_t cutoff = t + 1 + BATCH_RUNS;
    assert_int_equal(delete_expired(fx, cutoff, 0, PASS_LIMIT, NULL).runs, PASS_LIMIT);
    /* Oldest first: the first cancelled are gone, the last still there. */
    assert_false(run_exists(fx, sfield(json_array_get(all, 0), "id")));
    assert_true(run_exists(fx, sfield(json_array_get(all, BATCH_RUNS - 1), "id")));
    assert_int_equal(delete_expired(fx, cutoff, 0, PASS_LIMIT, NULL).runs, PASS_LIMIT);
    assert_int_equal(delete_expired(fx, cutoff, 0, PASS_LIMIT, NULL).runs,
                     BATCH_RUNS - 2 * PASS_LIMIT);
    assert_int_equal(delete_expired(fx, cutoff, 0, PASS_LIMIT, NULL).runs, 0);
    assert_int_equal(total_runs(fx), 0);
    assert_int_equal(total_runs_counted(fx), 0);
    json_decref(all);
}

/* A cached copy carries its source's result_ref: the file may go only with the last of them. */
static void result_file_outlives_its_run_while_a_cached_copy_points_at_it(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    const char *ref = "local:///var/lib/errand/storage/0193a0c4-0000-7000-8000-000000000001.json";
    json_t *source = submit(fx, t, "{\"task\": \"c\", \"cache_key\": \"K\"}", NULL);
    complete_with_ref(fx, "c", ref, t + 1);
    bool created = false;
    json_t *copy = submit(fx, t + 60 * SEC, "{\"task\": \"c\", \"cache_key\": \"K\"}", &created);
    assert_true(created);
    assert_string_equal(state_name_of(copy), "Cached");
    assert_string_equal(sfield(copy, "result_ref"), ref);

    struct ref_list freed;
    struct retention_counts n = delete_expired(fx, t + 30 * SEC, 0, PASS_LIMIT, &freed);
    assert_int_equal(n.runs, 1);  /* the source */
    assert_int_equal(freed.n, 0); /* the copy still points at the file */
    ref_list_clear(&freed);
    assert_true(run_exists(fx, sfield(copy, "id")));

    n = delete_expired(fx, t + 90 * SEC, 0, PASS_LIMIT, &freed);
    assert_int_equal(n.runs, 1); /* the copy */
    assert_int_equal(freed.n, 1);
    assert_string_equal(freed.refs[0], ref);
    ref_list_clear(&freed);
    json_decref(source);
    json_decref(copy);
}

/* Two runs deleted in one pass that share a reference release it once. */
static void a_shared_reference_is_released_once(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    const char *ref = "local:///s/0193a0c4-0000-7000-8000-000000000002.json";
    json_decref(submit(fx, t, "{\"task\": \"c\", \"cache_key\": \"K2\"}", NULL));
    complete_with_ref(fx, "c", ref, t + 1);
    json_decref(submit(fx, t + 2, "{\"task\": \"c\", \"cache_key\": \"K2\"}", NULL));
    struct ref_list freed;
    assert_int_equal(delete_expired(fx, t + 10, 0, PASS_LIMIT, &freed).runs, 2);
    assert_int_equal(freed.n, 1);
    assert_string_equal(freed.refs[0], ref);
    ref_list_clear(&freed);
}

static void an_idempotency_key_of_a_deleted_run_makes_a_new_run(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    bool created = false;
    json_t *first = submit(fx, t, "{\"task\": \"i\", \"idempotency_key\": \"order-9\"}", &created);
    assert_true(created);
    complete_run(fx, "i", "1", t + 1);
    json_t *again =
        submit(fx, t + 2, "{\"task\": \"i\", \"idempotency_key\": \"order-9\"}", &created);
    assert_false(created); /* kept: the key still answers with the stored run */
    assert_string_equal(sfield(again, "id"), sfield(first, "id"));
    json_decref(again);

    assert_int_equal(delete_expired(fx, t + 10, 0, PASS_LIMIT, NULL).runs, 1);
    json_t *fresh =
        submit(fx, t + 20, "{\"task\": \"i\", \"idempotency_key\": \"order-9\"}", &created);
    assert_true(created);
    assert_string_not_equal(sfield(fresh, "id"), sfield(first, "id"));
    assert_string_equal(state_type_of(fresh), "SCHEDULED");
    json_decref(first);
    json_decref(fresh);
}

/* A cache entry that never expires lives as long as its run: retention deletes the run like
 * any other, and the next submission with the key runs the task again. */
static void a_never_expiring_cache_entry_ends_with_its_run(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_decref(submit(fx, t, "{\"task\": \"n\", \"cache_key\": \"forever\"}", NULL));
    complete_run(fx, "n", "{\"v\": 1}", t + 1);
    json_t *hit = submit(fx, t + 1000 * SEC, "{\"task\": \"n\", \"cache_key\": \"forever\"}", NULL);
    assert_string_equal(state_name_of(hit), "Cached");
    json_decref(hit);

    assert_int_equal(delete_expired(fx, t + 2000 * SEC, 0, PASS_LIMIT, NULL).runs, 2);
    json_t *miss =
        submit(fx, t + 2001 * SEC, "{\"task\": \"n\", \"cache_key\": \"forever\"}", NULL);
    assert_string_equal(state_type_of(miss), "SCHEDULED");
    json_decref(miss);
}

static void old_workers_are_pruned_and_the_list_pages(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char name[32];
    for (int i = 0; i < WORKERS; i++) {
        snprintf(name, sizeof name, "worker-%d", i);
        json_decref(claim(fx, name, "nothing", 1, 30, t + i * 10 * SEC));
    }
    /* Pages of two, most recently seen first, each worker once. */
    struct worker_cursor cur = {0, NULL};
    char last[32] = "";
    int seen = 0;
    bool more = true;
    for (int page = 0; more; page++) {
        struct worker_list w;
        errand_error err;
        assert_int_equal(store_list_workers(fx->st, page ? &cur : NULL, 2, &w, &more, &err), 0);
        assert_true(w.n <= 2);
        for (size_t i = 0; i < w.n; i++) {
            snprintf(name, sizeof name, "worker-%d", WORKERS - 1 - seen);
            assert_string_equal(w.items[i].name, name);
            seen++;
        }
        if (w.n) {
            snprintf(last, sizeof last, "%s", w.items[w.n - 1].name);
            cur.last_seen = w.items[w.n - 1].last_seen;
            cur.name = last;
        }
        worker_list_clear(&w);
        assert_true(page < WORKERS);
    }
    assert_int_equal(seen, WORKERS);

    /* Workers last seen before the cut-off go; runs are untouched (no run cut-off). */
    struct retention_counts n = delete_expired(fx, 0, t + 25 * SEC, PASS_LIMIT, NULL);
    assert_int_equal(n.workers, 3);
    assert_int_equal(n.runs, 0);
    struct worker_list w;
    errand_error err;
    assert_int_equal(store_list_workers(fx->st, NULL, 100, &w, &more, &err), 0);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.items[0].name, "worker-4");
    assert_string_equal(w.items[1].name, "worker-3");
    worker_list_clear(&w);
}

static int64_t page_count(struct fixture *fx)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Rounds of the same load, each deleted before the next (runs, then the change feed's
 * events): the pages freed are used again. */
static void the_file_stops_growing_under_a_steady_load(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    char text[1200];
    snprintf(
        text, sizeof text,
        "{\"task\": \"steady\", \"tags\": [\"a\", \"b\"], \"parameters\": {\"pad\": \"%0*d\"}}",
        1000, 0);
    int64_t pages[STEADY_ROUNDS];
    for (int round = 0; round < STEADY_ROUNDS; round++) {
        int64_t now = t + round * 100 * SEC;
        struct run_spec *specs = calloc(STEADY_RUNS, sizeof *specs);
        struct run_row *rows = calloc(STEADY_RUNS, sizeof *rows);
        for (int i = 0; i < STEADY_RUNS; i++)
            parse_spec(&specs[i], now, text);
        errand_error err;
        assert_int_equal(store_submit(fx->st, specs, STEADY_RUNS, now, rows, NULL, &err), 0);
        for (int i = 0; i < STEADY_RUNS; i++) {
            struct run_row r;
            assert_int_equal(store_cancel(fx->st, rows[i].id, now + 1, &r, &err), 0);
            run_row_clear(&r);
            run_row_clear(&rows[i]);
            run_spec_clear(&specs[i]);
        }
        free(specs);
        free(rows);
        while (delete_expired(fx, now + 2, 0, PASS_LIMIT, NULL).runs > 0)
            ;
        int pruned = 0; /* and the change feed, as the server's sweeper does */
        do
            assert_int_equal(store_prune_events(fx->st, now + 2, 0, PASS_LIMIT, &pruned, &err), 0);
        while (pruned > 0);
        sqlite3 *db = NULL; /* move the WAL into the file, so page_count is the file's */
        assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close(db);
        pages[round] = page_count(fx);
    }
    /* The first round grows the file; the later ones live in the pages it freed. */
    for (int round = 1; round < STEADY_ROUNDS; round++)
        assert_true(pages[round] <= pages[0] + pages[0] / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(finished_runs_go_with_their_history_logs_and_tags, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(deletes_in_bounded_passes_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(
            result_file_outlives_its_run_while_a_cached_copy_points_at_it, setup, teardown),
        cmocka_unit_test_setup_teardown(a_shared_reference_is_released_once, setup, teardown),
        cmocka_unit_test_setup_teardown(an_idempotency_key_of_a_deleted_run_makes_a_new_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_never_expiring_cache_entry_ends_with_its_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(old_workers_are_pruned_and_the_list_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(the_file_stops_growing_under_a_steady_load, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
