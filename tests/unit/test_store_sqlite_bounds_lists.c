/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_bounds_lists.c — the first page of every listing and the dashboard's
 * figures, whose work must not grow with what the store holds: SCHEDULED runs and one task's
 * runs (many newer runs of other tasks), COMPLETED runs (a large newer backlog), one trace's
 * runs, the overview's counters, the worker list's first page and worker pruning (many
 * workers); filters that combine walk a bounded number of runs per call. Each test measures a
 * statement's work the way SQLite counts it (statement_work.h) on a small population, grows
 * the population a thousandfold, and asserts that the work is the same.
 */
#include "statement_work.h"

#define WORKERS_PAGE 50

static void bind_workers_first_page(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, INT64_MAX);
    sqlite3_bind_text(s, 2, "", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, WORKERS_PAGE);
}

static void bind_workers_prune(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, SUBMIT_BATCH);
}

#define LIST_PAGE 10
#define RARE_RUNS 20

static void bind_list_scheduled(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "~", -1, SQLITE_STATIC); /* no cursor: from the newest */
    sqlite3_bind_int(s, 3, LIST_PAGE + 1);
    sqlite3_bind_int(s, 4, 0);
    sqlite3_bind_text(s, 6, "", -1, SQLITE_STATIC); /* no lower bound (since) */
}

static void bind_list_completed(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "~", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, LIST_PAGE + 1);
    sqlite3_bind_int(s, 4, 3);
    sqlite3_bind_text(s, 6, "", -1, SQLITE_STATIC); /* no lower bound (since) */
}

static void bind_list_task(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "~", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, "rare", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, LIST_PAGE + 1);
    sqlite3_bind_text(s, 6, "", -1, SQLITE_STATIC); /* no lower bound (since) */
}

#define TRACE_A "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE_B "0af7651916cd43dd8448eb211c80319c"
#define TRACE_RUNS 7

static void bind_list_trace(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "~", -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, LIST_PAGE + 1);
    sqlite3_bind_int(s, 5, 0);                      /* no state filter */
    sqlite3_bind_text(s, 6, "", -1, SQLITE_STATIC); /* no lower bound (since) */
    sqlite3_bind_text(s, 9, TRACE_A, -1, SQLITE_STATIC);
}

/* A few SCHEDULED runs of a rare task, and ever more newer runs of another task that have
 * finished: listing SCHEDULED runs, or the rare task's runs, used to walk every newer run. */
static void listing_first_pages_do_not_grow_with_newer_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    submit_many(fx, t, "{\"task\": \"rare\"}", RARE_RUNS);
    const char *spec = "{\"task\": \"other\", \"cache_key\": \"o\"}";
    json_t *source = submit(fx, t + 1, spec, NULL);
    json_t *runs = claim(fx, "w1", "other", 1, 30, t + 1);
    assert_int_equal(report(fx, sfield(source, "id"),
                            sfield(json_array_get(runs, 0), "lease_token"), ERRAND_STATE_COMPLETED,
                            NULL, NULL, false, t + 2),
                     200);
    json_decref(runs);
    json_decref(source);
    submit_many(fx, t + 10, spec, SMALL); /* newer, and final (cache hits) */
    struct work sched_small = measure(fx, SQL_LIST_SCHEDULED, bind_list_scheduled, t);
    struct work task_small = measure(fx, SQL_LIST_TASK, bind_list_task, t);
    assert_int_equal(sched_small.rows, LIST_PAGE + 1);
    assert_int_equal(task_small.rows, LIST_PAGE + 1);
    submit_many(fx, t + 10, spec, LARGE - SMALL);
    struct work sched_large = measure(fx, SQL_LIST_SCHEDULED, bind_list_scheduled, t);
    struct work task_large = measure(fx, SQL_LIST_TASK, bind_list_task, t);
    assert_same_work("SQL_LIST_SCHEDULED first page", sched_small, sched_large);
    assert_same_work("SQL_LIST_TASK first page", task_small, task_large);
    /* Through the store: the listing takes those statements. */
    char next[37];
    json_t *page = list(fx, 1u << ERRAND_STATE_SCHEDULED, NULL, NULL, NULL, LIST_PAGE, next);
    assert_int_equal(json_array_size(page), LIST_PAGE);
    assert_string_equal(sfield(json_array_get(page, 0), "task"), "rare");
    json_decref(page);
    page = list(fx, 0, "rare", NULL, NULL, LIST_PAGE, next);
    assert_int_equal(json_array_size(page), LIST_PAGE);
    json_decref(page);
}

/* The runs of one trace (GET /api/task_runs?trace_id=): the same work with 100,000 newer runs
 * of no trace and of another trace as with 100 — the listing walks task_runs_trace, which
 * holds only runs with a traceparent, by trace id. */
static void trace_listing_does_not_grow_with_other_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    submit_many(fx, t,
                "{\"task\": \"web\", \"traceparent\": \"00-" TRACE_A "-00f067aa0ba902b7-01\"}",
                TRACE_RUNS);
    const char *untraced = "{\"task\": \"web\"}";
    const char *other =
        "{\"task\": \"web\", \"traceparent\": \"00-" TRACE_B "-b7ad6b7169203331-01\"}";
    submit_many(fx, t + 1, untraced, SMALL / 2);
    submit_many(fx, t + 1, other, SMALL / 2);
    struct work small = measure(fx, SQL_LIST_TRACE, bind_list_trace, t);
    assert_int_equal(small.rows, TRACE_RUNS);
    submit_many(fx, t + 2, untraced, (LARGE - SMALL) / 2);
    submit_many(fx, t + 2, other, (LARGE - SMALL) / 2);
    struct work large = measure(fx, SQL_LIST_TRACE, bind_list_trace, t);
    assert_int_equal(large.rows, TRACE_RUNS);
    assert_same_work("SQL_LIST_TRACE", small, large);
    /* Through the store: the trace's runs, and with another filter too (checked per row). */
    struct run_filter f = {.trace_id = TRACE_A, .limit = LIST_PAGE};
    char next[37];
    json_t *page = list_filtered(fx, &f, next);
    assert_int_equal(json_array_size(page), TRACE_RUNS);
    assert_string_equal(next, "");
    for (size_t i = 0; i < json_array_size(page); i++)
        assert_memory_equal(sfield(json_array_get(page, i), "traceparent") + 3, TRACE_A, 32);
    json_decref(page);
    f.state_mask = 1u << ERRAND_STATE_SCHEDULED;
    f.task = "web";
    page = list_filtered(fx, &f, next);
    assert_int_equal(json_array_size(page), TRACE_RUNS);
    json_decref(page);
    f.task = "elsewhere";
    page = list_filtered(fx, &f, next);
    assert_int_equal(json_array_size(page), 0);
    json_decref(page);
}

/* Completed runs, and ever more newer runs queued behind them: listing COMPLETED runs used to
 * walk the whole newer backlog. */
static void completed_first_page_does_not_grow_with_a_newer_backlog(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < RARE_RUNS; i++) {
        json_decref(submit(fx, t, "{\"task\": \"done\"}", NULL));
        complete_run(fx, "done", "1", t + 1);
    }
    submit_many(fx, t + 10, "{\"task\": \"backlog\"}", SMALL);
    struct work small = measure(fx, SQL_LIST_COMPLETED, bind_list_completed, t);
    assert_int_equal(small.rows, LIST_PAGE + 1);
    submit_many(fx, t + 10, "{\"task\": \"backlog\"}", LARGE - SMALL);
    struct work large = measure(fx, SQL_LIST_COMPLETED, bind_list_completed, t);
    assert_same_work("SQL_LIST_COMPLETED first page", small, large);
    char next[37];
    json_t *page = list(fx, 1u << ERRAND_STATE_COMPLETED, NULL, NULL, NULL, LIST_PAGE, next);
    assert_int_equal(json_array_size(page), LIST_PAGE);
    assert_string_equal(sfield(json_array_get(page, 0), "task"), "done");
    json_decref(page);
}

static void bind_stats_since(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now / 60000 - 59); /* the minutes of the last hour */
}

static void bind_nothing(sqlite3_stmt *s, int64_t now)
{
    (void)s;
    (void)now;
}

static void bind_sample(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now - 3600 * 1000);
    sqlite3_bind_int(s, 2, 2000);
}

/* The dashboard's overview reads counters: a thousandfold more runs queued for the same
 * tasks changes none of its statements' work (it used to be a count over the runs). */
static void overview_figures_do_not_grow_with_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    for (int i = 0; i < RARE_RUNS; i++) {
        json_decref(submit(fx, t, "{\"task\": \"done\"}", NULL));
        complete_run(fx, "done", "1", t + 1);
    }
    submit_many(fx, t + 10, "{\"task\": \"backlog\"}", SMALL);
    static const enum sql_id ids[] = {SQL_STATS_TASK_COUNTS, SQL_STATS_TASK_WINDOW,
                                      SQL_STATS_MINUTES, SQL_STATS_TASKS, SQL_STATS_SAMPLE};
    void (*binds[])(sqlite3_stmt *, int64_t) = {bind_nothing, bind_stats_since, bind_stats_since,
                                                bind_nothing, bind_sample};
    struct work small[5], large[5];
    for (int i = 0; i < 5; i++)
        small[i] = measure(fx, ids[i], binds[i], t + 20);
    submit_many(fx, t + 10, "{\"task\": \"backlog\"}", LARGE - SMALL);
    for (int i = 0; i < 5; i++) {
        large[i] = measure(fx, ids[i], binds[i], t + 20);
        /* The counter tables are read whole (a row per task and state, per minute and task):
           their full-scan steps are allowed, as long as they do not grow with the runs. */
        if (large[i].vm_steps > small[i].vm_steps + STEP_SLACK ||
            large[i].fullscan_steps > small[i].fullscan_steps)
            fail_msg("%s: %d VM steps (%d full-scan) with %d runs, %d (%d) with %d",
                     sqlite_sql_name(ids[i]), large[i].vm_steps, large[i].fullscan_steps, LARGE,
                     small[i].vm_steps, small[i].fullscan_steps, SMALL);
    }
    assert_int_equal(large[4].rows, RARE_RUNS); /* the sample reads the finished runs only */
    /* And the figures add up, per task and in total. */
    struct store_stats st;
    errand_error err;
    assert_int_equal(store_read_stats(fx->st, t - 60000, 100, &st, &err), 0);
    assert_int_equal(st.n_tasks, 2);
    assert_string_equal(st.tasks[0].task, "backlog");
    assert_int_equal(st.tasks[0].counts[ERRAND_STATE_SCHEDULED], LARGE);
    assert_string_equal(st.tasks[1].task, "done");
    assert_int_equal(st.tasks[1].counts[ERRAND_STATE_COMPLETED], RARE_RUNS);
    assert_int_equal(st.tasks[1].completed, RARE_RUNS);
    assert_int_equal(st.counts[ERRAND_STATE_SCHEDULED], LARGE);
    assert_int_equal(st.n_minutes, 1);
    assert_int_equal(st.minutes[0].completed, RARE_RUNS);
    assert_int_equal(st.n_samples, RARE_RUNS);
    store_stats_clear(&st);
}

/* Every run of a listing, page after page (pages of `page`), as ids newest first. */
static size_t list_ids(struct fixture *fx, unsigned mask, const char *task, int page,
                       char ids[][37], size_t max)
{
    char next[37] = "", cursor[37] = "";
    size_t n = 0;
    do {
        json_t *runs = list(fx, mask, task, NULL, cursor[0] ? cursor : NULL, page, next);
        for (size_t i = 0; i < json_array_size(runs) && n < max; i++)
            snprintf(ids[n++], 37, "%s", sfield(json_array_get(runs, i), "id"));
        json_decref(runs);
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (next[0]);
    return n;
}

/* A task and a state together: the listing walks whichever side the counters say is
 * smaller and stops once every match is found, with the same answers either way. */
static void task_and_state_listings_agree_whichever_side_is_walked(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    enum { BIG = 300, CANCELLED = 5, SMALL_TASK = 40 };
    submit_many(fx, t, "{\"task\": \"big\"}", BIG);
    submit_many(fx, t + 1, "{\"task\": \"small\"}", SMALL_TASK);
    static char all[BIG][37], got[BIG][37];
    size_t n_all = list_ids(fx, 0, "big", 1000, all, BIG);
    assert_int_equal(n_all, BIG);
    for (int i = 0; i < CANCELLED; i++) { /* every 50th: spread through the task's runs */
        json_t *run = NULL;
        errand_error err;
        assert_int_equal(store_cancel_json(fx->st, all[i * 50 + 7], t + 2, &run, &err), 0);
        json_decref(run);
    }
    /* CANCELLED is the smaller side (5 runs against 300): the state's runs are walked. */
    size_t n = list_ids(fx, 1u << ERRAND_STATE_CANCELLED, "big", 2, got, BIG);
    assert_int_equal(n, CANCELLED);
    for (int i = 0; i < CANCELLED; i++)
        assert_string_equal(got[i], all[i * 50 + 7]);
    /* SCHEDULED is the larger side (335 runs against 300): the task's runs are walked. */
    n = list_ids(fx, 1u << ERRAND_STATE_SCHEDULED, "big", 7, got, BIG);
    assert_int_equal(n, BIG - CANCELLED);
    /* No run of the task in that state: nothing is walked, nothing found. */
    assert_int_equal(list_ids(fx, 1u << ERRAND_STATE_COMPLETED, "big", 10, got, BIG), 0);
    assert_int_equal(list_ids(fx, 1u << ERRAND_STATE_CANCELLED, "small", 10, got, BIG), 0);
    /* Two states at once, merged newest first. */
    n = list_ids(fx, 1u << ERRAND_STATE_SCHEDULED | 1u << ERRAND_STATE_CANCELLED, "big", 9, got,
                 BIG);
    assert_int_equal(n, BIG);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(got[i], all[i]);
}

/* Follows a listing's next_cursor to its end: the ids found (at most max), and in *calls how
 * many calls it took. */
static size_t follow_listing(struct fixture *fx, struct run_filter f, char ids[][37], size_t max,
                             int *calls)
{
    char next[37] = "", cursor[37] = "";
    size_t n = 0;
    *calls = 0;
    do {
        f.cursor = cursor[0] ? cursor : NULL;
        json_t *runs = list_filtered(fx, &f, next);
        ++*calls;
        for (size_t i = 0; i < json_array_size(runs) && n < max; i++)
            snprintf(ids[n++], 37, "%s", sfield(json_array_get(runs, i), "id"));
        json_decref(runs);
        snprintf(cursor, sizeof cursor, "%s", next);
    } while (next[0] && *calls < 1000);
    return n;
}

/* Filters that combine, each side large, their intersection one run (the oldest): a task
 * with a state walks one side, a tag with a state walks the tag's runs. Each call reads at
 * most STORE_LIST_SCAN_MAX runs and says where to go on, so the run is found after as many
 * calls as the side walked has bounds' worth of runs, never in one unbounded walk. */
static void combined_filters_walk_a_bounded_number_of_runs_per_call(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    enum { SIDE = 2 * STORE_LIST_SCAN_MAX + STORE_LIST_SCAN_MAX / 2, OTHER = SIDE + 5000 };
    const char *cached = "{\"task\": \"big\", \"cache_key\": \"k\", \"tags\": [\"t\"]}";
    json_t *source = submit(fx, t, cached, NULL);
    complete_run(fx, "big", "1", t + 1);
    json_t *needle = submit(fx, t + 2, "{\"task\": \"big\", \"tags\": [\"t\"]}", NULL);
    submit_many(fx, t + 3, cached, SIDE - 2);               /* COMPLETED at once: cache hits */
    submit_many(fx, t + 4, "{\"task\": \"other\"}", OTHER); /* SCHEDULED */
    const int bounded_calls = (SIDE + STORE_LIST_SCAN_MAX - 1) / STORE_LIST_SCAN_MAX;
    static char ids[8][37];
    int calls;

    /* big has SIDE runs, SCHEDULED has OTHER + 1: the task's runs are walked. */
    struct run_filter f = {
        .state_mask = 1u << ERRAND_STATE_SCHEDULED, .task = "big", .limit = LIST_PAGE};
    assert_int_equal(follow_listing(fx, f, ids, 8, &calls), 1);
    assert_string_equal(ids[0], sfield(needle, "id"));
    assert_int_equal(calls, bounded_calls);
    /* The tag's SIDE runs, the state checked on each. */
    f = (struct run_filter){
        .state_mask = 1u << ERRAND_STATE_SCHEDULED, .tag = "t", .limit = LIST_PAGE};
    assert_int_equal(follow_listing(fx, f, ids, 8, &calls), 1);
    assert_string_equal(ids[0], sfield(needle, "id"));
    assert_int_equal(calls, bounded_calls);
    /* A task with two states: the SCHEDULED walk is bounded, the COMPLETED one finds a full
       page first; pages stay newest first and complete. */
    f = (struct run_filter){.state_mask =
                                1u << ERRAND_STATE_SCHEDULED | 1u << ERRAND_STATE_COMPLETED,
                            .task = "big",
                            .limit = 1000};
    static char all[SIDE][37];
    assert_int_equal(follow_listing(fx, f, all, SIDE, &calls), SIDE);
    for (size_t i = 1; i < SIDE; i++)
        assert_true(strcmp(all[i - 1], all[i]) > 0);
    assert_string_equal(all[SIDE - 1], sfield(source, "id"));
    assert_string_equal(all[SIDE - 2], sfield(needle, "id"));
    /* A filter alone reads only what matches: one call for a page. */
    f = (struct run_filter){.task = "big", .limit = LIST_PAGE};
    char next[37];
    json_t *page = list_filtered(fx, &f, next);
    assert_int_equal(json_array_size(page), LIST_PAGE);
    json_decref(page);
    json_decref(needle);
    json_decref(source);
}

/* Adds n workers last seen at or after `seen`, straight into the table. */
static void add_workers(struct fixture *fx, int from, int n, int64_t seen)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE k(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM k WHERE i < %d) "
             "INSERT INTO workers (name, tasks, last_seen, claimed) "
             "SELECT 'w-' || i, '[\"t\"]', %lld + i, 0 FROM k",
             from, from + n - 1, (long long)seen);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("add_workers: %s", msg);
    sqlite3_close(db);
}

/* The worker list's first page and the pruning of workers not seen since a cut-off that none
 * is older than: each one seek, however many workers the table holds. */
static void worker_list_and_pruning_do_not_grow_with_workers(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    add_workers(fx, 0, SMALL, t);
    struct work page_small = measure(fx, SQL_WORKERS_LIST, bind_workers_first_page, t);
    struct work prune_small = measure(fx, SQL_WORKERS_PRUNE, bind_workers_prune, t);
    assert_int_equal(page_small.rows, WORKERS_PAGE);
    add_workers(fx, SMALL, LARGE - SMALL, t);
    struct work page_large = measure(fx, SQL_WORKERS_LIST, bind_workers_first_page, t);
    struct work prune_large = measure(fx, SQL_WORKERS_PRUNE, bind_workers_prune, t);
    assert_int_equal(page_large.rows, WORKERS_PAGE);
    assert_same_work("SQL_WORKERS_LIST first page", page_small, page_large);
    assert_same_work("SQL_WORKERS_PRUNE with none to prune", prune_small, prune_large);
    /* The newest first. */
    struct worker_list w;
    bool more = false;
    errand_error err;
    assert_int_equal(store_list_workers(fx->st, NULL, 1, &w, &more, &err), 0);
    assert_int_equal(w.n, 1);
    assert_true(more);
    char newest[16];
    snprintf(newest, sizeof newest, "w-%d", LARGE - 1);
    assert_string_equal(w.items[0].name, newest);
    worker_list_clear(&w);
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(worker_list_and_pruning_do_not_grow_with_workers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(listing_first_pages_do_not_grow_with_newer_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(completed_first_page_does_not_grow_with_a_newer_backlog,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(trace_listing_does_not_grow_with_other_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overview_figures_do_not_grow_with_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(combined_filters_walk_a_bounded_number_of_runs_per_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(task_and_state_listings_agree_whichever_side_is_walked,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
