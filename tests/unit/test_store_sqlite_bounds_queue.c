/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_bounds_queue.c — the queue's hot statements, whose work must not grow with
 * what the store holds: the claim (many delayed runs), the promotion of due runs (none due),
 * the oldest ready run per task (/metrics), the cache lookup and retention's scan and its "is
 * this result file still used" check (many Cached copies of one key sharing a reference);
 * claims that find nothing do not write. Each test measures a statement's work the way
 * SQLite counts it (statement_work.h) on a small population, grows the population a
 * thousandfold in the direction that used to make it slow, and asserts that the work is the
 * same.
 */
#include "statement_work.h"

#define CLAIM_LIMIT 10
#define READY_RUNS 3

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
        cmocka_unit_test_setup_teardown(empty_claims_do_not_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
