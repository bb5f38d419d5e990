/* SPDX-License-Identifier: MIT */
/*
 * statement_work.h — what one of the SQLite store's statements costs, the way SQLite counts
 * it (virtual-machine steps, full-scan steps: sqlite3_stmt_status), for the tests that hold
 * a hot statement's work to the same on a small population (SMALL rows) and on one a
 * thousandfold larger in the direction that used to make it slow (LARGE). A plan that merely
 * names an index passes while a walk over the index grows; the step counts do not.
 * Header-only, like store_fixture.h. The tests are in test_store_sqlite_bounds_queue.c (submit,
 * cache lookup, claim), _lists.c (listings, figures, workers) and _upkeep.c (pruning,
 * checkpoints), so that ctest runs them side by side.
 */
#ifndef ERRAND_TESTS_STATEMENT_WORK_H
#define ERRAND_TESTS_STATEMENT_WORK_H

#include "store_fixture.h"

#include "store/sqlite/sqlite_sql.h"

#define SMALL 100
#define LARGE 100000
/* VM steps a statement may differ by between the two populations (none are expected: a
 * b-tree seek is one step however deep the tree). */
#define STEP_SLACK 8

struct work {
    int vm_steps;
    int fullscan_steps;
    int rows;
};

/* Runs statement id on its own connection to the store's file, inside a transaction that
 * is rolled back (so an UPDATE changes nothing), and returns what it cost. bind fills the
 * parameters. */
static inline struct work measure(struct fixture *fx, enum sql_id id,
                                  void (*bind)(sqlite3_stmt *s, int64_t now), int64_t now)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sqlite_sql_text(id), -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite_sql_name(id), sqlite3_errmsg(db));
    bind(s, now);
    struct work w = {0};
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW)
        w.rows++;
    assert_int_equal(step, SQLITE_DONE);
    w.vm_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
    w.fullscan_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    return w;
}

static inline void assert_same_work(const char *what, struct work small, struct work large)
{
    if (large.fullscan_steps != 0 || large.vm_steps > small.vm_steps + STEP_SLACK)
        fail_msg("%s: %d VM steps (%d full-scan) with %d skewed rows, %d (%d) with %d", what,
                 large.vm_steps, large.fullscan_steps, LARGE, small.vm_steps, small.fullscan_steps,
                 SMALL);
}

/* Runs per transaction of submit_many. */
#define SUBMIT_BATCH 1000

/* Submits n runs described by the same JSON text, SUBMIT_BATCH per transaction. */
static inline void submit_many(struct fixture *fx, int64_t now, const char *text, size_t n)
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

#endif
