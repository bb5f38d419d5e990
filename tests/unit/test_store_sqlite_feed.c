/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_feed.c — the SQLite store's change feed, stored in pages of a commit each
 * (store/sqlite/sqlite_feed.h): the events of a failed op leave with it while those of the
 * ops committed beside it stay; a big group commit makes pages of bounded size; a reader
 * resumes from any seq; pruning by count keeps the newest; a store upgraded from one row per
 * event numbers on; a damaged page is an error, not a crash.
 */
#include "store_fixture.h"

#include "store/sqlite/sqlite_feed.h"
#include "store/sqlite/sqlite_transition.h"

/* --- ops run on the store's writer thread ----------------------------------------------- */

#define EVENT_TASK "feed.task" /* the task of the events append_events adds */

struct event_op {
    const char *run_id;
    const char *name;
    int events; /* appended, each a history row of its own */
    bool fail;  /* then the op fails after appending */
};

static int append_events(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct event_op *op = arg;
    static _Atomic int history_seq = 1;
    for (int i = 0; i < op->events; i++) {
        int rc = sqlite_state_append(c, op->run_id, EVENT_TASK, atomic_fetch_add(&history_seq, 1),
                                     ERRAND_STATE_RUNNING, op->name, 1000 + i, "", err);
        if (rc < 0)
            return rc;
    }
    return op->fail ? error_set(err, ERRAND_ECONFLICT, NULL, "this op fails on purpose") : 0;
}

/* The writer holds this op until released, so what is queued meanwhile commits as a group. */
struct gate {
    _Atomic bool entered, open;
    struct event_op op;
};

static int wait_at_gate(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct gate *g = arg;
    atomic_store(&g->entered, true);
    while (!atomic_load(&g->open))
        usleep(1000);
    return append_events(c, &g->op, err);
}

static void on_done(void *arg, int rc, const errand_error *err)
{
    (void)err;
    *(int *)arg = rc;
}

static sqlite_writer *writer_of(struct fixture *fx)
{
    return store_sqlite_of(fx->st)->writer;
}

/* Starts g's op and returns once the writer is inside it. */
static void close_gate(struct fixture *fx, struct gate *g, int *rc)
{
    errand_error err;
    assert_int_equal(sqlite_writer_start_op(writer_of(fx), wait_at_gate, g, on_done, rc, &err), 0);
    while (!atomic_load(&g->entered))
        usleep(1000);
}

static int nothing(struct sqlite_conn *c, void *arg, errand_error *err)
{
    (void)c, (void)arg, (void)err;
    return 0;
}

/* Returns once everything queued before is committed and its on_done called: the writer
 * wakes a waiting caller before it calls the asynchronous ops' on_done of the same group, so
 * the second op, which it runs after those, is the one to wait for. */
static void drain_writer(struct fixture *fx)
{
    errand_error err;
    for (int i = 0; i < 2; i++)
        assert_int_equal(sqlite_writer_run(writer_of(fx), nothing, NULL, &err), 0);
}

static struct run_event_list read_after(struct fixture *fx, int64_t after, int limit)
{
    struct run_event_list l = {0};
    errand_error err;
    if (store_read_events(fx->st, after, limit, &l, &err) != 0)
        fail_msg("store_read_events: %s", err.message);
    return l;
}

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

#define RUN_A "01900000-0000-7000-8000-00000000000a"
#define RUN_B "01900000-0000-7000-8000-00000000000b"
#define RUN_C "01900000-0000-7000-8000-00000000000c"

/* --- tests ---------------------------------------------------------------------------- */

/* Three ops in one transaction, the middle one failing after it appended: the feed holds the
 * events of the other two, numbered without a gap, and nothing of the failed one. */
static void a_failed_op_takes_its_events_and_no_others(void **state)
{
    struct fixture *fx = *state;
    struct gate g = {.op = {RUN_A, "Gate", 0, false}};
    int rc_gate = 1, rc_a = 1, rc_b = 1, rc_c = 1;
    close_gate(fx, &g, &rc_gate);
    struct event_op a = {RUN_A, "First", 2, false}, b = {RUN_B, "Failed", 3, true},
                    c = {RUN_C, "Third", 1, false};
    errand_error err;
    assert_int_equal(sqlite_writer_start_op(writer_of(fx), append_events, &a, on_done, &rc_a, &err),
                     0);
    assert_int_equal(sqlite_writer_start_op(writer_of(fx), append_events, &b, on_done, &rc_b, &err),
                     0);
    assert_int_equal(sqlite_writer_start_op(writer_of(fx), append_events, &c, on_done, &rc_c, &err),
                     0);
    atomic_store(&g.open, true);
    drain_writer(fx);
    assert_int_equal(rc_a, 0);
    assert_int_equal(rc_b, ERRAND_ECONFLICT);
    assert_int_equal(rc_c, 0);
    struct sqlite_writer_stats after;
    sqlite_writer_get_stats(writer_of(fx), &after);
    assert_int_equal(rc_gate, 0);
    assert_true(after.max_batch >= 3); /* a, b and c did share a transaction */
    assert_int_equal(query_int(fx, "SELECT count(*) FROM run_feed"), 1);

    struct run_event_list l = read_after(fx, 0, 100);
    assert_int_equal(l.n, 3);
    const char *ids[] = {RUN_A, RUN_A, RUN_C}, *names[] = {"First", "First", "Third"};
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.items[i].seq, (int64_t)i + 1);
        assert_string_equal(l.items[i].id, ids[i]);
        assert_string_equal(l.items[i].name, names[i]);
        assert_int_equal(l.items[i].type, ERRAND_STATE_RUNNING);
        assert_string_equal(l.items[i].task, EVENT_TASK); /* from the page: no such run stored */
    }
    assert_int_equal(l.items[1].at, 1001);
    run_event_list_clear(&l);
    int64_t first = 0, last = 0;
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(first, 1);
    assert_int_equal(last, 3);
}

#define MANY_OPS 300
#define LONG_NAME_EVENTS 2

/* Hundreds of ops committed as one group make several pages, none much larger than a page's
 * size, and every event is there in order. */
static void a_big_group_makes_pages_of_bounded_size(void **state)
{
    struct fixture *fx = *state;
    char name[FEED_NAME_MAX + 1];
    memset(name, 'n', FEED_NAME_MAX);
    name[FEED_NAME_MAX] = '\0';
    struct gate g = {.op = {RUN_A, "Gate", 1, false}};
    int rc_gate = 1, rcs[MANY_OPS];
    close_gate(fx, &g, &rc_gate);
    struct event_op ops[MANY_OPS];
    errand_error err;
    for (int i = 0; i < MANY_OPS; i++) {
        ops[i] = (struct event_op){RUN_B, name, LONG_NAME_EVENTS, false};
        rcs[i] = 1;
        assert_int_equal(
            sqlite_writer_start_op(writer_of(fx), append_events, &ops[i], on_done, &rcs[i], &err),
            0);
    }
    atomic_store(&g.open, true);
    drain_writer(fx);
    for (int i = 0; i < MANY_OPS; i++)
        assert_int_equal(rcs[i], 0);
    int total = 1 + MANY_OPS * LONG_NAME_EVENTS;
    int64_t event_bytes = 36 + 1 + 8 + 1 + FEED_NAME_MAX;
    assert_true(query_int(fx, "SELECT count(*) FROM run_feed") >=
                1 + (int64_t)total * event_bytes / SQLITE_FEED_PAGE_BYTES);
    assert_true(query_int(fx, "SELECT max(length(events)) FROM run_feed") <=
                SQLITE_FEED_PAGE_BYTES + LONG_NAME_EVENTS * event_bytes);
    assert_int_equal(query_int(fx, "SELECT sum(n) FROM run_feed"), total);
    struct run_event_list l = read_after(fx, 0, total + 10);
    assert_int_equal(l.n, total);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(l.items[i].seq, (int64_t)i + 1);
        assert_string_equal(l.items[i].name, i == 0 ? "Gate" : name);
    }
    run_event_list_clear(&l);
}

/* Submissions of several runs each (a page per submit): from any cursor, a reader gets
 * exactly the events after it, in order, across page boundaries, with each run's task. */
static void a_reader_resumes_from_any_seq(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    const int batches = 5, per_batch = 7, total = batches * per_batch;
    for (int b = 0; b < batches; b++) {
        struct run_spec specs[7];
        struct run_row runs[7];
        for (int i = 0; i < per_batch; i++)
            parse_spec(&specs[i], t, b % 2 ? "{\"task\": \"odd\"}" : "{\"task\": \"even\"}");
        errand_error err;
        assert_int_equal(store_submit(fx->st, specs, (size_t)per_batch, t, runs, NULL, &err), 0);
        for (int i = 0; i < per_batch; i++) {
            run_row_clear(&runs[i]);
            run_spec_clear(&specs[i]);
        }
    }
    assert_int_equal(query_int(fx, "SELECT count(*) FROM run_feed"), batches);
    for (int after = 0; after <= total; after++) {
        for (int limit = 1; limit <= 9; limit += 4) {
            struct run_event_list l = read_after(fx, after, limit);
            int want = total - after < limit ? total - after : limit;
            assert_int_equal(l.n, want);
            for (size_t i = 0; i < l.n; i++) {
                int64_t seq = after + 1 + (int64_t)i;
                assert_int_equal(l.items[i].seq, seq);
                assert_string_equal(l.items[i].task, ((seq - 1) / per_batch) % 2 ? "odd" : "even");
                assert_int_equal(l.items[i].type, ERRAND_STATE_SCHEDULED);
                assert_int_equal(l.items[i].at, t);
            }
            run_event_list_clear(&l);
        }
    }
    /* A cursor ahead of the feed reads nothing. */
    struct run_event_list l = read_after(fx, total + 5, 10);
    assert_int_equal(l.n, 0);
    run_event_list_clear(&l);
}

/* With a count bound, the oldest pages go until at most that many newer events are left
 * (in whole pages), however young; the newest page stays even when larger than the bound. */
static void pruning_by_count_keeps_the_newest(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 10; i++) {
        struct event_op op = {RUN_A, "Ten", 10, false};
        errand_error err;
        assert_int_equal(sqlite_writer_run(writer_of(fx), append_events, &op, &err), 0);
    }
    errand_error err;
    int deleted = -1;
    assert_int_equal(store_prune_events(fx->st, INT64_MIN, 35, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 60); /* pages of 10: events 61..100 stay, 40 >= 35 */
    int64_t first = 0, last = 0;
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(first, 61);
    assert_int_equal(last, 100);
    assert_int_equal(store_prune_events(fx->st, INT64_MIN, 35, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    /* A limit stops a call early, in whole pages. */
    assert_int_equal(store_prune_events(fx->st, INT64_MIN, 1, 15, &deleted, &err), 0);
    assert_int_equal(deleted, 20);
    assert_int_equal(store_prune_events(fx->st, INT64_MIN, 1, 1000, &deleted, &err), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(first, 91);
    assert_int_equal(last, 100);
    /* Refused: a negative bound. */
    assert_int_equal(store_prune_events(fx->st, INT64_MIN, -1, 10, &deleted, &err), ERRAND_EINVAL);
    assert_string_equal(err.field, "keep");
}

/* A store of schema 19 kept the feed one row per event in run_events; the upgrade drops
 * those events and numbering goes on after the last of them. */
static void a_store_upgraded_from_one_row_per_event_numbers_on(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->st);
    fx->st = NULL;
    exec_sql(fx, "DROP TABLE run_feed;"
                 "CREATE TABLE run_events (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL,"
                 "  type INTEGER NOT NULL, name TEXT NOT NULL, at INTEGER NOT NULL);"
                 "INSERT INTO run_events VALUES (41, 'r', 0, 'Scheduled', 5),"
                 "  (42, 'r', 2, 'Running', 6);" UNDO_SCHEMA_23 "DROP INDEX task_runs_trace;"
                 "ALTER TABLE task_runs DROP COLUMN traceparent;"
                 "DELETE FROM task_counts WHERE state_type = 8;"
                 "DELETE FROM schema_migrations WHERE version > 19;"
                 "PRAGMA user_version = 19;");
    open_store(fx, "normal");
    assert_int_equal(query_int(fx, "SELECT count(*) FROM sqlite_master WHERE name = 'run_events'"),
                     0);
    errand_error err;
    int64_t first = 0, last = 0;
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(first, 43);
    assert_int_equal(last, 42);
    struct run_event_list l = read_after(fx, 0, 10);
    assert_int_equal(l.n, 0);
    run_event_list_clear(&l);
    struct event_op op = {RUN_A, "After", 2, false};
    assert_int_equal(sqlite_writer_run(writer_of(fx), append_events, &op, &err), 0);
    l = read_after(fx, 42, 10);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].seq, 43);
    assert_int_equal(l.items[1].seq, 44);
    run_event_list_clear(&l);
    /* The first page took the empty one's place; it is the newest and stays. */
    int deleted = -1;
    assert_int_equal(store_prune_events(fx->st, INT64_MAX, 0, 10, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(query_int(fx, "SELECT count(*) FROM run_feed"), 1);
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(first, 43);
    assert_int_equal(last, 44);
}

/* A page cut short or of an unknown format is reported as the store's error. */
static void a_damaged_page_is_an_error(void **state)
{
    struct fixture *fx = *state;
    struct event_op op = {RUN_A, "Running", 3, false};
    errand_error err;
    assert_int_equal(sqlite_writer_run(writer_of(fx), append_events, &op, &err), 0);
    exec_sql(fx, "UPDATE run_feed SET events = substr(events, 1, 60)");
    struct run_event_list l = {0};
    assert_int_equal(store_read_events(fx->st, 0, 10, &l, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "truncated"));
    assert_int_equal(l.n, 0);
    exec_sql(fx, "UPDATE run_feed SET events = x'03'");
    assert_int_equal(store_read_events(fx->st, 0, 10, &l, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "unknown format"));
    /* The name's length byte pointing past the end. */
    exec_sql(fx, "UPDATE run_feed SET events = x'01' || zeroblob(45) || x'ff41'");
    assert_int_equal(store_read_events(fx->st, 0, 10, &l, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "truncated"));
    /* The task's length pointing past the end, and a page ending inside that length. */
    exec_sql(fx, "UPDATE run_feed SET events = x'02' || zeroblob(45) || x'0000050061'");
    assert_int_equal(store_read_events(fx->st, 0, 10, &l, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "truncated"));
    exec_sql(fx, "UPDATE run_feed SET events = x'02' || zeroblob(45) || x'0005'");
    assert_int_equal(store_read_events(fx->st, 0, 10, &l, &err), ERRAND_ESTORE);
    assert_non_null(strstr(err.message, "truncated"));
}

/* The page format on its own: what goes in comes out, a rewind forgets, and reading stops at
 * the end of a page. */
static void pages_round_trip(void **state)
{
    (void)state;
    struct feed_page p = {0};
    errand_error err;
    char long_task[FEED_TASK_MAX + 1];
    memset(long_task, 'x', FEED_TASK_MAX);
    long_task[FEED_TASK_MAX] = '\0';
    assert_int_equal(
        feed_page_add(&p, RUN_A, "a.task", ERRAND_STATE_SCHEDULED, "Scheduled", 7, &err), 0);
    struct feed_page_mark m = feed_page_mark(&p);
    assert_int_equal(feed_page_add(&p, RUN_B, "b", ERRAND_STATE_FAILED, "Failed", 9, &err), 0);
    assert_int_equal(p.newest_at, 9);
    feed_page_rewind(&p, m);
    assert_int_equal(p.newest_at, 7);
    assert_int_equal(feed_page_add(&p, RUN_C, long_task, ERRAND_STATE_COMPLETED, "", -3, &err), 0);
    assert_int_equal(p.n, 2);
    struct feed_page_reader r;
    assert_true(feed_page_open(&r, p.data, p.len));
    struct feed_event e;
    assert_int_equal(feed_page_next(&r, &e), 1);
    assert_string_equal(e.id, RUN_A);
    assert_int_equal(e.type, ERRAND_STATE_SCHEDULED);
    assert_string_equal(e.name, "Scheduled");
    assert_true(e.has_task);
    assert_string_equal(e.task, "a.task");
    assert_int_equal(e.at, 7);
    assert_int_equal(feed_page_next(&r, &e), 1);
    assert_string_equal(e.id, RUN_C);
    assert_int_equal(e.type, ERRAND_STATE_COMPLETED);
    assert_string_equal(e.name, "");
    assert_string_equal(e.task, long_task);
    assert_int_equal(e.at, -3);
    assert_int_equal(feed_page_next(&r, &e), 0);
    assert_false(feed_page_open(&r, NULL, 0));
    feed_page_free(&p);
}

/* Submits one run of task; the caller clears the row. */
static struct run_row submit_one(struct fixture *fx, const char *task)
{
    char json[128];
    snprintf(json, sizeof json, "{\"task\": \"%s\"}", task);
    struct run_spec spec;
    struct run_row run;
    errand_error err;
    parse_spec(&spec, fx->t0, json);
    assert_int_equal(store_submit(fx->st, &spec, 1, fx->t0, &run, NULL, &err), 0);
    run_spec_clear(&spec);
    return run;
}

/* An event carries its run's task: it is read without looking the run up, and is still
 * known once the run is deleted. */
static void an_event_keeps_its_task_after_its_run_is_deleted(void **state)
{
    struct fixture *fx = *state;
    struct run_row run = submit_one(fx, "feed.kept");
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM task_runs WHERE id = '%s'", run.id);
    exec_sql(fx, sql);
    struct run_event_list l = read_after(fx, 0, 10);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, run.id);
    assert_string_equal(l.items[0].task, "feed.kept");
    run_event_list_clear(&l);
    run_row_clear(&run);
}

/* A page written before events carried their task (format 1) is still read: the task of
 * each of its events is its run's, while the run is stored, else unknown. */
static void a_page_without_tasks_is_read_with_its_runs_tasks(void **state)
{
    struct fixture *fx = *state;
    struct run_row run = submit_one(fx, "feed.old");
    /* Format 1: the byte 1, then per event id, type, time (little-endian), name length,
       name: the stored run, then one that is gone. */
    char hex[2 * 2 * (FEED_ID_LEN + 1 + 8 + 1 + 7) + 3] = "01";
    const char *ids[] = {run.id, RUN_B};
    for (int e = 0; e < 2; e++) {
        size_t len = strlen(hex);
        for (int k = 0; k < FEED_ID_LEN; k++)
            len += (size_t)sprintf(hex + len, "%02x", (unsigned char)ids[e][k]);
        len += (size_t)sprintf(hex + len, "02%02x00000000000000", 40 + e);
        len += (size_t)sprintf(hex + len, "07");
        for (const char *c = "Running"; *c; c++)
            len += (size_t)sprintf(hex + len, "%02x", (unsigned char)*c);
    }
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO run_feed (first_seq, n, at, events) VALUES (100, 2, 41, x'%s')", hex);
    exec_sql(fx, sql);
    struct run_event_list l = read_after(fx, 99, 10);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, run.id);
    assert_string_equal(l.items[0].task, "feed.old");
    assert_string_equal(l.items[0].name, "Running");
    assert_int_equal(l.items[0].at, 40);
    assert_string_equal(l.items[1].id, RUN_B);
    assert_null(l.items[1].task);
    assert_int_equal(l.items[1].at, 41);
    run_event_list_clear(&l);
    run_row_clear(&run);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_failed_op_takes_its_events_and_no_others, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_big_group_makes_pages_of_bounded_size, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reader_resumes_from_any_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(pruning_by_count_keeps_the_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(a_store_upgraded_from_one_row_per_event_numbers_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_damaged_page_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(an_event_keeps_its_task_after_its_run_is_deleted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_page_without_tasks_is_read_with_its_runs_tasks, setup,
                                        teardown),
        cmocka_unit_test(pages_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
