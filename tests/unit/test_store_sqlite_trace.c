/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_trace.c — the trace context in the store: a run keeps the traceparent it
 * was submitted with (read back, listed, claimed), an idempotent resubmit answers with the
 * first run's, and a database of schema 20 (before traceparent) is migrated: its runs have
 * none, new ones keep theirs, and the trace index exists.
 */
#include "store_fixture.h"
#include "store/sqlite/sqlite_schema.h"

#define TP_A "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_A2 "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
#define TP_B "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
#define TRACE_A "4bf92f3577b34da6a3ce929d0e0e4736"

static int64_t query_int(struct fixture *fx, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static json_t *trace_page(struct fixture *fx, const char *trace_id)
{
    struct run_filter f = {.trace_id = trace_id, .limit = 50};
    char next[37];
    return list_filtered(fx, &f, next);
}

static void a_run_keeps_its_traceparent(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    json_t *a = submit(fx, t, "{\"task\": \"t\", \"traceparent\": \"" TP_A "\"}", NULL);
    json_t *b = submit(fx, t + 1, "{\"task\": \"t\", \"traceparent\": \"" TP_B "\"}", NULL);
    json_t *none = submit(fx, t + 2, "{\"task\": \"t\"}", NULL);
    assert_string_equal(sfield(a, "traceparent"), TP_A);
    assert_true(json_is_null(json_object_get(none, "traceparent")));
    json_t *got = get_run(fx, sfield(a, "id"));
    assert_string_equal(sfield(got, "traceparent"), TP_A);
    json_decref(got);
    /* A second run of the same trace (another span), listed with the first, newest first. */
    json_t *a2 = submit(fx, t + 3, "{\"task\": \"u\", \"traceparent\": \"" TP_A2 "\"}", NULL);
    json_t *page = trace_page(fx, TRACE_A);
    assert_int_equal(json_array_size(page), 2);
    assert_string_equal(sfield(json_array_get(page, 0), "id"), sfield(a2, "id"));
    assert_string_equal(sfield(json_array_get(page, 1), "id"), sfield(a, "id"));
    json_decref(page);
    page = trace_page(fx, "00000000000000000000000000000001");
    assert_int_equal(json_array_size(page), 0);
    json_decref(page);
    /* The claim hands it to the worker. */
    json_t *runs = claim(fx, "w", "t", 3, 30, t + 4);
    assert_int_equal(json_array_size(runs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(runs, i);
        const char *id = sfield(r, "id");
        json_t *tp = json_object_get(r, "traceparent");
        if (strcmp(id, sfield(a, "id")) == 0)
            assert_string_equal(json_string_value(tp), TP_A);
        else if (strcmp(id, sfield(b, "id")) == 0)
            assert_string_equal(json_string_value(tp), TP_B);
        else
            assert_true(json_is_null(tp));
    }
    json_decref(runs);
    json_decref(a);
    json_decref(a2);
    json_decref(b);
    json_decref(none);
}

/* An idempotent resubmit is the first run, traceparent included, whatever the second says. */
static void an_idempotent_resubmit_keeps_the_first_trace(void **state)
{
    struct fixture *fx = *state;
    json_t *first = submit(
        fx, fx->t0, "{\"task\": \"t\", \"idempotency_key\": \"k\", \"traceparent\": \"" TP_A "\"}",
        NULL);
    bool created = true;
    json_t *again = submit(
        fx, fx->t0 + 1,
        "{\"task\": \"t\", \"idempotency_key\": \"k\", \"traceparent\": \"" TP_B "\"}", &created);
    assert_false(created);
    assert_string_equal(sfield(again, "id"), sfield(first, "id"));
    assert_string_equal(sfield(again, "traceparent"), TP_A);
    json_decref(first);
    json_decref(again);
}

/* A store of schema 20 (as released in 0.1.0, before traceparent) is migrated on open. */
static void a_schema_20_store_is_migrated(void **state)
{
    struct fixture *fx = *state;
    json_t *old = submit(fx, fx->t0, "{\"task\": \"t\"}", NULL);
    store_close(fx->st);
    fx->st = NULL;
    exec_sql(fx, UNDO_SCHEMA_23 "DROP INDEX task_runs_trace;"
                                "ALTER TABLE task_runs DROP COLUMN traceparent;"
                                "DELETE FROM task_counts WHERE state_type = 8;"
                                "DELETE FROM schema_migrations WHERE version > 20;"
                                "PRAGMA user_version = 20;");
    assert_int_equal(query_int(fx, "SELECT count(*) FROM pragma_table_info('task_runs') "
                                   "WHERE name = 'traceparent'"),
                     0);
    open_store(fx, "normal");
    assert_int_equal(query_int(fx, "PRAGMA user_version"), sqlite_schema_migration_count());
    assert_int_equal(query_int(fx, "SELECT count(*) FROM schema_migrations WHERE version = 21 "
                                   "AND name = 'trace_context'"),
                     1);
    assert_int_equal(query_int(fx, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                                   "AND name = 'task_runs_trace'"),
                     1);
    json_t *got = get_run(fx, sfield(old, "id"));
    assert_true(json_is_null(json_object_get(got, "traceparent")));
    json_decref(got);
    json_t *run = submit(fx, fx->t0 + 1, "{\"task\": \"t\", \"traceparent\": \"" TP_A "\"}", NULL);
    json_t *page = trace_page(fx, TRACE_A);
    assert_int_equal(json_array_size(page), 1);
    assert_string_equal(sfield(json_array_get(page, 0), "id"), sfield(run, "id"));
    json_decref(page);
    json_decref(run);
    json_decref(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_run_keeps_its_traceparent, setup, teardown),
        cmocka_unit_test_setup_teardown(an_idempotent_resubmit_keeps_the_first_trace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_schema_20_store_is_migrated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
