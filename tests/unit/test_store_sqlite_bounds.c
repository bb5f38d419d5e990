/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_bounds.c — hot statements whose work must not grow with what the store
 * holds: the claim (many delayed runs), the promotion of due runs (none due), the cache
 * lookup (many Cached copies of one key), retention's scan and its "is this result file
 * still used" check (many finished copies sharing a reference), the worker list's first page
 * and worker pruning (many workers), the first page of SCHEDULED runs and of one task's runs
 * (many newer runs of other tasks) and of COMPLETED runs (a large newer backlog); claims that find
 * nothing do not write; commits go on while a reader holds the WAL. Each test measures a
 * statement's work the way SQLite counts it (virtual-machine steps, full-scan steps:
 * sqlite3_stmt_status) on a small population, grows the population a thousandfold in the direction
 * that used to make it slow, and asserts that the work is the same. A plan that merely names an
 * index passes while a walk over the index grows; the step counts do not.
 */
#include "statement_work.h"

#include <sys/stat.h>
#include <time.h>

#include "store/sqlite/sqlite_checkpointer.h"

#define SUBMIT_BATCH 1000
#define CLAIM_LIMIT 10
#define READY_RUNS 3
/* SQLite's WAL file layout, with the store's 4 KiB pages. */
#define WAL_HEADER_BYTES 32
#define WAL_FRAME_BYTES (4096 + 24)
/* Parameters of about a page per run, so the WAL fills in a few batches. */
#define PAD_BYTES 3000
/* After the reader ends: commits spaced out while the checkpoints catch up (at most 30 s). */
#define RESTART_WAIT_ROUNDS 1500
#define RESTART_WAIT_PAUSE_MS 20
/* Submissions made one commit at a time by checkpoints_do_not_follow_every_commit. */
#define LONE_COMMITS 600

/* Submits n runs described by the same JSON text, SUBMIT_BATCH per transaction. */
static void submit_many(struct fixture *fx, int64_t now, const char *text, size_t n)
{
    struct run_spec *specs = calloc(SUBMIT_BATCH, sizeof *specs);
    struct run_row *runs = calloc(SUBMIT_BATCH, sizeof *runs);
    bool *created = calloc(SUBMIT_BATCH, sizeof *created);
    assert_non_null(specs);
    assert_non_null(runs);
    assert_non_null(created);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < SUBMIT_BATCH ? n - done : SUBMIT_BATCH;
        for (size_t i = 0; i < k; i++)
            parse_spec(&specs[i], now, text);
        errand_error err;
        if (store_submit(fx->st, specs, k, now, runs, created, &err) != 0)
            fail_msg("store_submit: %s", err.message);
        for (size_t i = 0; i < k; i++) {
            run_row_clear(&runs[i]);
            run_spec_clear(&specs[i]);
        }
        done += k;
    }
    free(specs);
    free(runs);
    free(created);
}

static void bind_claim_a(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "a", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int(s, 3, CLAIM_LIMIT);
}

static void bind_promote(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, SUBMIT_BATCH);
}

static void bind_cache_k(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, "k", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_text(s, 3, "c", -1, SQLITE_STATIC); /* the task */
}

#define CACHE_REF "local:///s/0193a0c4-0000-7000-8000-00000000000c.json"
#define WORKERS_PAGE 50

/* Retention's scan with the cut-off just after the cache source finished (t + 1). */
static void bind_expired(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, SUBMIT_BATCH);
}

static void bind_ref_used(sqlite3_stmt *s, int64_t now)
{
    sqlite3_bind_text(s, 1, CACHE_REF, -1, SQLITE_STATIC);
}

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

/* The idle worker's claim: fewer runs are due than it asks for, and many more wait for
 * their time. It used to walk every one of them (11-12 ms per claim with 200,000). */
static void claim_work_does_not_grow_with_delayed_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    /* Delayed runs at every priority, so none of them sorts after the ready ones. */
    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 86400, \"priority\": 9}", SMALL / 2);
    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 86400}", SMALL / 2);
    submit_many(fx, t, "{\"task\": \"a\"}", READY_RUNS);
    submit_many(fx, t, "{\"task\": \"b\"}", SMALL);

    struct work claim_small = measure(fx, SQL_CLAIM_CANDIDATES, bind_claim_a, t + 1);
    struct work promote_small = measure(fx, SQL_PROMOTE_DUE, bind_promote, t + 1);
    assert_int_equal(claim_small.rows, READY_RUNS);

    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 86400, \"priority\": 9}",
                (LARGE - SMALL) / 2);
    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 86400}", (LARGE - SMALL) / 2);

    struct work claim_large = measure(fx, SQL_CLAIM_CANDIDATES, bind_claim_a, t + 1);
    struct work promote_large = measure(fx, SQL_PROMOTE_DUE, bind_promote, t + 1);
    assert_int_equal(claim_large.rows, READY_RUNS);
    assert_same_work("SQL_CLAIM_CANDIDATES", claim_small, claim_large);
    assert_same_work("SQL_PROMOTE_DUE with nothing due", promote_small, promote_large);

    /* Through the store: the ready runs, and none of the delayed ones. */
    json_t *runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 1);
    assert_int_equal(json_array_size(runs), READY_RUNS);
    json_decref(runs);
    runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 2);
    assert_int_equal(json_array_size(runs), 0);
    json_decref(runs);
}

static void bind_ready_oldest_a(sqlite3_stmt *s, int64_t below)
{
    sqlite3_bind_text(s, 1, "a", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, below);
}

/* /metrics' oldest ready run of a task (errand_store_oldest_ready_age_seconds): a seek per
 * priority present in the task's ready queue, whatever waits behind it — many newer ready
 * runs of the task, many delayed ones, many of other tasks. */
static void oldest_ready_work_does_not_grow_with_runs(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    submit_many(fx, t, "{\"task\": \"a\"}", READY_RUNS);
    submit_many(fx, t + SEC, "{\"task\": \"a\", \"priority\": 5}", READY_RUNS);
    submit_many(fx, t + SEC, "{\"task\": \"a\", \"delay_seconds\": 86400}", SMALL / 2);
    submit_many(fx, t + SEC, "{\"task\": \"a\"}", SMALL / 2);
    submit_many(fx, t, "{\"task\": \"b\"}", SMALL);

    struct work top_small = measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, INT64_MAX);
    struct work next_small = measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, 5);
    struct work last_small = measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, 0);
    assert_int_equal(top_small.rows, 1);
    assert_int_equal(next_small.rows, 1);
    assert_int_equal(last_small.rows, 0);

    submit_many(fx, t + 2 * SEC, "{\"task\": \"a\", \"delay_seconds\": 86400}",
                (LARGE - SMALL) / 2);
    submit_many(fx, t + 2 * SEC, "{\"task\": \"a\"}", (LARGE - SMALL) / 2);
    submit_many(fx, t, "{\"task\": \"b\"}", LARGE - SMALL);

    assert_same_work("SQL_READY_OLDEST (top priority)", top_small,
                     measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, INT64_MAX));
    assert_same_work("SQL_READY_OLDEST (next priority)", next_small,
                     measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, 5));
    assert_same_work("SQL_READY_OLDEST (past the last)", last_small,
                     measure(fx, SQL_READY_OLDEST, bind_ready_oldest_a, 0));

    /* Through the store: the oldest across priorities; none for a task with only delayed runs
     * or none at all. */
    submit_many(fx, t, "{\"task\": \"c\", \"delay_seconds\": 60}", 2);
    const char *tasks[] = {"a", "b", "c", "nobody"};
    int64_t due[4];
    errand_error err;
    if (store_oldest_ready(fx->st, tasks, 4, due, &err) != 0)
        fail_msg("store_oldest_ready: %s", err.message);
    assert_int_equal(due[0], t);
    assert_int_equal(due[1], t);
    assert_int_equal(due[2], 0);
    assert_int_equal(due[3], 0);
}

/* When the delayed runs come due they enter the ready queue in bounded batches (the sweep
 * moves them all; a claim moves one batch), and are claimed in priority order. */
static void delayed_runs_become_ready_when_due(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 60}", 2 * SUBMIT_BATCH + 1);
    bool created;
    json_t *urgent =
        submit(fx, t, "{\"task\": \"a\", \"delay_seconds\": 90, \"priority\": 5}", &created);

    json_t *runs = claim(fx, "w1", "a", 1, 30, t + 59 * SEC);
    assert_int_equal(json_array_size(runs), 0);
    json_decref(runs);

    /* Due: the claim itself promotes (no sweep needed). */
    runs = claim(fx, "w1", "a", 1, 30, t + 60 * SEC);
    assert_int_equal(json_array_size(runs), 1);
    json_decref(runs);

    /* The sweep promotes the rest, all of them, in several transactions. */
    struct sweep_counts n = {0};
    errand_error err;
    assert_int_equal(store_sweep(fx->st, t + 90 * SEC, &n, &err), 0);
    assert_int_equal(n.promoted, 2 * SUBMIT_BATCH + 1 - SUBMIT_BATCH + 1);
    assert_int_equal(n.expired, 0);

    /* Priority first among everything ready. */
    runs = claim(fx, "w1", "a", 1, 30, t + 90 * SEC);
    assert_int_equal(json_array_size(runs), 1);
    assert_string_equal(sfield(json_array_get(runs, 0), "id"), sfield(urgent, "id"));
    json_decref(runs);
    runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 90 * SEC);
    assert_int_equal(json_array_size(runs), CLAIM_LIMIT);
    json_decref(runs);
    json_decref(urgent);

    /* Every run is accounted for: the rest still SCHEDULED. */
    int64_t c[8];
    counts(fx, c);
    assert_int_equal(c[ERRAND_STATE_SCHEDULED], 2 * SUBMIT_BATCH + 2 - 2 - CLAIM_LIMIT);
}

/* A popular cache key: every submit after the first is a cache hit that stores a Cached
 * copy under the same key. The lookup used to walk every copy before reaching the source
 * (16 ms per submit after 100,000 hits). */
static void cache_lookup_work_does_not_grow_with_cached_copies(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    /* The SQL spells the source's state name; it must be the one the rules give. */
    assert_string_equal(state_default_name(ERRAND_STATE_COMPLETED), "Completed");
    const char *spec = "{\"task\": \"c\", \"cache_key\": \"k\"}";
    json_t *source = submit(fx, t, spec, NULL);
    json_t *runs = claim(fx, "w1", "c", 1, 30, t);
    assert_int_equal(json_array_size(runs), 1);
    struct run_report rep = {.id = sfield(source, "id"),
                             .lease_token = sfield(json_array_get(runs, 0), "lease_token"),
                             .state = ERRAND_STATE_COMPLETED,
                             .result = "{\"answer\":42}",
                             .result_ref = CACHE_REF};
    struct lease_answer answer;
    errand_error err;
    assert_int_equal(store_report(fx->st, "w1", NULL, &rep, 1, NULL, 0, t + 1, &answer, &err), 0);
    assert_int_equal(answer.status, LEASE_APPLIED);
    json_decref(runs);

    /* The copies also finish (at t + 2) and share the source's result reference: neither
     * retention's scan for what finished before t + 2 nor its "is this file still used"
     * check may walk them. */
    submit_many(fx, t + 2, spec, SMALL);
    struct work small = measure(fx, SQL_CACHE_SOURCE, bind_cache_k, t + 3);
    struct work expired_small = measure(fx, SQL_EXPIRED_RUNS, bind_expired, t + 2);
    struct work ref_small = measure(fx, SQL_RESULT_REF_USED, bind_ref_used, t + 2);
    assert_int_equal(small.rows, 1);
    assert_int_equal(expired_small.rows, 1);
    assert_int_equal(ref_small.rows, 1);
    submit_many(fx, t + 2, spec, LARGE - SMALL);
    struct work large = measure(fx, SQL_CACHE_SOURCE, bind_cache_k, t + 3);
    struct work expired_large = measure(fx, SQL_EXPIRED_RUNS, bind_expired, t + 2);
    struct work ref_large = measure(fx, SQL_RESULT_REF_USED, bind_ref_used, t + 2);
    assert_int_equal(large.rows, 1);
    assert_int_equal(expired_large.rows, 1);
    assert_same_work("SQL_CACHE_SOURCE", small, large);
    assert_same_work("SQL_EXPIRED_RUNS", expired_small, expired_large);
    assert_same_work("SQL_RESULT_REF_USED", ref_small, ref_large);

    /* Still a hit, served from the source. */
    json_t *hit = submit(fx, t + 4, spec, NULL);
    assert_string_equal(state_name_of(hit), "Cached");
    json_decref(hit);
    json_decref(source);
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

static void bind_feed_oldest(sqlite3_stmt *s, int64_t now)
{
    (void)now;
    sqlite3_bind_int(s, 1, SUBMIT_BATCH);
}

/* The work SQLite does until id's first row: pruning reads the oldest page, finds it young
 * and stops there. */
static struct work measure_first_row(struct fixture *fx, enum sql_id id,
                                     void (*bind)(sqlite3_stmt *s, int64_t now), int64_t now)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sqlite_sql_text(id), -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite_sql_name(id), sqlite3_errmsg(db));
    bind(s, now);
    struct work w = {0};
    if (sqlite3_step(s) == SQLITE_ROW)
        w.rows = 1;
    w.vm_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
    w.fullscan_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return w;
}

/* The change feed holds one event per state change, in pages of a commit each; the sweeper
 * prunes the pages older than the retention. With none old enough it reads the oldest page
 * and stops, however many young ones follow (it used to walk every event, on the writer, at
 * every sweep). */
static void event_pruning_does_not_grow_with_young_events(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    /* More than a page at first: the work is a page's, then as after a thousandfold more. */
    submit_many(fx, t, "{\"task\": \"young\"}", 2 * SUBMIT_BATCH);
    struct work small = measure_first_row(fx, SQL_FEED_OLDEST, bind_feed_oldest, t);
    submit_many(fx, t, "{\"task\": \"young\"}", LARGE - 2 * SUBMIT_BATCH);
    struct work large = measure_first_row(fx, SQL_FEED_OLDEST, bind_feed_oldest, t);
    assert_int_equal(large.rows, 1);
    assert_same_work("SQL_FEED_OLDEST to its first page", small, large);
    int deleted = -1;
    errand_error err;
    assert_int_equal(store_prune_events(fx->st, t, 0, LARGE, &deleted, &err), 0);
    assert_int_equal(deleted, 0); /* none older than t */
    /* Old enough, they go about a batch at a time, and never the newest page. */
    assert_int_equal(store_prune_events(fx->st, t + 1, 0, SUBMIT_BATCH, &deleted, &err), 0);
    assert_int_equal(deleted, SUBMIT_BATCH);
    for (int left = LARGE - SUBMIT_BATCH; left > SUBMIT_BATCH; left -= deleted) {
        assert_int_equal(store_prune_events(fx->st, t + 1, 0, LARGE, &deleted, &err), 0);
        assert_true(deleted > 0);
    }
    assert_int_equal(store_prune_events(fx->st, t + 1, 0, LARGE, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    int64_t first = 0, last = 0;
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(last, LARGE);
    assert_int_equal(first, LARGE - SUBMIT_BATCH + 1); /* the newest page: the last submit */
}

static unsigned long long writer_ops(struct fixture *fx)
{
    struct sqlite_writer_stats stats;
    sqlite_writer_get_stats(store_sqlite_of(fx->st)->writer, &stats);
    return stats.ops;
}

/* An idle worker's long-poll claims (five a second, and one per submission of any task)
 * read, and go to the single writer only when they could change something. */
static void empty_claims_do_not_write(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    submit_many(fx, t, "{\"task\": \"a\", \"delay_seconds\": 60}", SMALL);
    submit_many(fx, t, "{\"task\": \"b\"}", SMALL);

    unsigned long long ops = writer_ops(fx);
    json_t *runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 1);
    assert_int_equal(json_array_size(runs), 0);
    json_decref(runs);
    assert_int_equal(writer_ops(fx), ops + 1); /* a new worker: its row is written */

    for (int i = 0; i < 5; i++) { /* within a second: nothing to write */
        runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 2 + i * 100);
        assert_int_equal(json_array_size(runs), 0);
        json_decref(runs);
    }
    assert_int_equal(writer_ops(fx), ops + 1);

    /* last_seen is kept to the second: a later claim refreshes it. */
    runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 2 * SEC);
    json_decref(runs);
    assert_int_equal(writer_ops(fx), ops + 2);

    /* A ready run: the claim writes, and gets it. */
    json_t *ready = submit(fx, t + 2 * SEC, "{\"task\": \"a\"}", NULL);
    ops = writer_ops(fx);
    runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 2 * SEC + 1);
    assert_int_equal(json_array_size(runs), 1);
    json_decref(runs);
    json_decref(ready);
    assert_int_equal(writer_ops(fx), ops + 1);

    /* Due delayed runs: the claim promotes them, and gets them. */
    runs = claim(fx, "w1", "a", CLAIM_LIMIT, 30, t + 60 * SEC);
    assert_int_equal(json_array_size(runs), CLAIM_LIMIT);
    json_decref(runs);
    assert_int_equal(writer_ops(fx), ops + 2);
}

/* The path of the store's WAL file. */
static void wal_path(const struct fixture *fx, char out[sizeof fx->path + 8])
{
    snprintf(out, sizeof fx->path + 8, "%s-wal", fx->path);
}

/* The WAL header's checkpoint sequence number: it changes each time the WAL starts over. */
static uint32_t wal_generation(struct fixture *fx)
{
    char wal[sizeof fx->path + 8];
    wal_path(fx, wal);
    unsigned char h[WAL_HEADER_BYTES] = {0};
    FILE *f = fopen(wal, "rb");
    assert_non_null(f);
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    return (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
}

/* Frames the store's WAL file has room for (it grows, and shrinks only when it starts
 * over): its size less the header, over the size of a frame (a page and its header). */
static long wal_file_frames(struct fixture *fx)
{
    char wal[sizeof fx->path + 8];
    wal_path(fx, wal);
    struct stat st;
    if (stat(wal, &st) != 0)
        return 0;
    return st.st_size <= WAL_HEADER_BYTES ? 0 : (st.st_size - WAL_HEADER_BYTES) / WAL_FRAME_BYTES;
}

/* A reader holding an old snapshot (an online backup, a long listing) keeps the WAL from
 * starting over. The writer's checkpoint past SQLITE_CHECKPOINT_FRAMES_MAX used to wait for
 * it with the busy timeout, after every commit: each commit then took 5 s. */
static void commits_go_on_while_a_reader_holds_the_wal(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM task_runs;", NULL, NULL, NULL),
        SQLITE_OK);

    char spec[PAD_BYTES + 64];
    int len = snprintf(spec, sizeof spec, "{\"task\": \"w\", \"parameters\": {\"pad\": \"");
    memset(spec + len, 'x', PAD_BYTES);
    snprintf(spec + len + PAD_BYTES, sizeof spec - (size_t)len - PAD_BYTES, "\"}}");
    submit_many(fx, t, spec, 1);
    uint32_t generation = wal_generation(fx);
    int64_t slowest_ms = 0;
    int batches = 0;
    /* Well past the limit, so the writer's checkpoint has been tried (and refused) twice. */
    while (wal_file_frames(fx) < SQLITE_CHECKPOINT_FRAMES_MAX + 2 * SQLITE_CHECKPOINT_FRAMES) {
        assert_true(++batches < 200);
        int64_t started = clock_mono_ms();
        submit_many(fx, t, spec, SUBMIT_BATCH);
        int64_t took = clock_mono_ms() - started;
        if (took > slowest_ms)
            slowest_ms = took;
    }
    /* A bound on the mechanism, not a speed claim: a commit that waited for the reader
       sleeps the whole busy timeout (and one that did not can take seconds under
       AddressSanitizer on a busy machine: 3.5 s was seen). */
    if (slowest_ms >= SQLITE_BUSY_TIMEOUT_MS * 9 / 10)
        fail_msg("a batch took %lld ms while a reader held the WAL", (long long)slowest_ms);
    assert_int_equal(wal_generation(fx), generation); /* the reader did hold it */

    assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    /* Once the reader is gone the WAL starts over: the checkpoints catch up, and the next
       commit after a complete one (or the writer's own RESTART) begins the WAL anew. */
    for (int i = 0; wal_generation(fx) == generation; i++) {
        if (i >= RESTART_WAIT_ROUNDS)
            fail_msg("the WAL did not start over within %d commits after the reader ended", i);
        submit_many(fx, t, "{\"task\": \"w\"}", 1);
        struct timespec pause = {.tv_sec = 0, .tv_nsec = RESTART_WAIT_PAUSE_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* Submissions one commit at a time (light load): the checkpointer is woken once per
 * SQLITE_CHECKPOINT_FRAMES frames the WAL grows, not after every commit once the WAL holds
 * that many, when each background checkpoint copied a commit's pages and synced the
 * database file. */
static void checkpoints_do_not_follow_every_commit(void **state)
{
    struct fixture *fx = *state;
    struct store_sqlite *s = store_sqlite_of(fx->st);
    unsigned long wakes = sqlite_checkpointer_wakes(s->checkpointer);
    for (int i = 0; i < LONE_COMMITS; i++)
        json_decref(submit(fx, fx->t0 + i, "{\"task\": \"lone\", \"tags\": [\"t\"]}", NULL));
    /* Each commit adds a few frames (the run, its indexes, history, counts, feed): the WAL
       passes SQLITE_CHECKPOINT_FRAMES a few times, far fewer than once a commit. */
    unsigned long woken = sqlite_checkpointer_wakes(s->checkpointer) - wakes;
    if (woken > LONE_COMMITS / 20)
        fail_msg("the checkpointer was woken %lu times for %d commits", woken, LONE_COMMITS);
    assert_true(woken >= 1); /* the WAL did pass SQLITE_CHECKPOINT_FRAMES */
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claim_work_does_not_grow_with_delayed_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delayed_runs_become_ready_when_due, setup, teardown),
        cmocka_unit_test_setup_teardown(oldest_ready_work_does_not_grow_with_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_lookup_work_does_not_grow_with_cached_copies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(event_pruning_does_not_grow_with_young_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(worker_list_and_pruning_do_not_grow_with_workers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(listing_first_pages_do_not_grow_with_newer_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(completed_first_page_does_not_grow_with_a_newer_backlog,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(empty_claims_do_not_write, setup, teardown),
        cmocka_unit_test_setup_teardown(trace_listing_does_not_grow_with_other_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overview_figures_do_not_grow_with_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(combined_filters_walk_a_bounded_number_of_runs_per_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(task_and_state_listings_agree_whichever_side_is_walked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(commits_go_on_while_a_reader_holds_the_wal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(checkpoints_do_not_follow_every_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
