/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_events.c — the change feed of the SQLite store (store.h, "the change feed"):
 * reading its events after a cursor, its bounds, pruning it by age and size, and the hook
 * the writer calls when a commit added to it.
 *
 * The events are gathered by sqlite_state_append and stored by the writer as pages of
 * run_feed (sqlite_feed.h), in the transaction of the state changes they record, so the
 * feed holds exactly the committed changes in commit order.
 */
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/store_sqlite.h"

/* *task: the task of run_id, NULL when the run is gone (deleted by retention). */
static int run_task(struct sqlite_conn *c, const char *run_id, char **task, errand_error *err)
{
    *task = NULL;
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_RUN_TASK, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, run_id);
    int step = sqlite3_step(q), rc = 0;
    if (step == SQLITE_ROW) {
        const char *t = sqlite_col_text(q, 0);
        if (!(*task = mem_strdup(t ? t : "")))
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    } else if (step != SQLITE_DONE) {
        rc = sqlite_conn_fail(c, "SQL_RUN_TASK", err);
    }
    sqlite3_reset(q);
    return rc;
}

/* Adds the events of one page with seq > after to out, up to limit; the tasks a version-1
 * page does not carry are its runs', while they are stored. */
static int read_page(struct sqlite_conn *c, int64_t first_seq, const void *data, size_t len,
                     int64_t after, int limit, struct run_event_list *out, errand_error *err)
{
    size_t from = out->n;
    int rc = feed_page_read_events(first_seq, data, len, after, limit, out, err);
    for (size_t i = from; rc == 0 && i < out->n; i++)
        if (!out->items[i].task)
            rc = run_task(c, out->items[i].id, &out->items[i].task, err);
    return rc;
}

int store_sqlite_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                             errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err); /* the pages and the tasks, one snapshot */
    sqlite3_stmt *q = rc == 0 ? sqlite_conn_stmt(c, SQL_FEED_FROM, err) : NULL;
    if (rc == 0 && !q)
        rc = ERRAND_ESTORE;
    if (q) {
        out->items = mem_calloc((size_t)limit, sizeof *out->items);
        if (!out->items)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        sqlite3_bind_int64(q, 1, after_seq < INT64_MAX ? after_seq + 1 : INT64_MAX);
        int step = SQLITE_DONE;
        while (rc == 0 && out->n < (size_t)limit && (step = sqlite3_step(q)) == SQLITE_ROW)
            rc = read_page(c, sqlite3_column_int64(q, 0), sqlite3_column_blob(q, 1),
                           (size_t)sqlite3_column_bytes(q, 1), after_seq, limit, out, err);
        if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_FEED_FROM", err);
        sqlite3_reset(q);
    }
    if (sqlite3_get_autocommit(c->db) == 0) {
        errand_error ignored;
        sqlite_conn_run(c, SQL_COMMIT, &ignored);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        run_event_list_clear(out);
    return rc;
}

/* The seq of the one row statement id returns, 0 when there is none. */
static int read_seq(struct sqlite_conn *c, enum sql_id id, int64_t *out, errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, id, err);
    if (!q)
        return ERRAND_ESTORE;
    int step = sqlite3_step(q);
    *out = step == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return step == SQLITE_ROW || step == SQLITE_DONE
               ? 0
               : sqlite_conn_fail(c, sqlite_sql_name(id), err);
}

int store_sqlite_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err); /* both bounds from one snapshot */
    if (rc == 0) {
        if ((rc = read_seq(c, SQL_FEED_FIRST, first, err)) == 0)
            rc = read_seq(c, SQL_FEED_LAST, last, err);
        errand_error ignored;
        sqlite_conn_run(c, SQL_COMMIT, &ignored);
    }
    sqlite_pool_release(s->readers, c);
    return rc;
}

struct prune_op {
    int64_t before_ms, keep;
    int limit;
    int deleted;
};

/* Deletes the oldest pages while their newest event is older than before_ms or their events
 * are beyond the newest `keep`, up to about limit events, never the newest page. */
static int prune_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct prune_op *op = arg;
    int64_t last = 0, below = INT64_MIN; /* events with seq < below are beyond the newest keep */
    int rc = op->keep > 0 ? read_seq(c, SQL_FEED_LAST, &last, err) : 0;
    if (rc < 0)
        return rc;
    if (op->keep > 0)
        below = last - op->keep + 1;
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_FEED_OLDEST, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int(q, 1, op->limit);
    int64_t cut = INT64_MIN, deleted = 0;
    int step = SQLITE_DONE;
    while (deleted < op->limit && (step = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(q, 0), n = sqlite3_column_int64(q, 1);
        if (sqlite3_column_int64(q, 2) >= op->before_ms && first + n - 1 >= below) {
            step = SQLITE_DONE;
            break;
        }
        cut = first + n;
        deleted += n;
    }
    sqlite3_reset(q);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_FEED_OLDEST", err);
    if (cut == INT64_MIN)
        return 0;
    if (!(q = sqlite_conn_stmt(c, SQL_FEED_PRUNE, err)))
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, cut);
    if ((rc = sqlite_conn_step_done(c, q, SQL_FEED_PRUNE, err)) == 0)
        op->deleted = (int)deleted;
    return rc;
}

int store_sqlite_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                              errand_error *err)
{
    struct prune_op op = {before_ms, keep, limit, 0};
    int rc = sqlite_writer_run_relaxed(store_sqlite_of(st)->writer, prune_in_writer, &op, err);
    *deleted = rc == 0 ? op.deleted : 0;
    return rc;
}

void store_sqlite_on_events(store *st, void (*fn)(void *), void *arg)
{
    sqlite_writer_on_feed(store_sqlite_of(st)->writer, fn, arg);
}

void store_sqlite_on_signal(store *st, void (*fn)(void *, enum store_signal, const char *),
                            void *arg)
{
    sqlite_writer_on_signal(store_sqlite_of(st)->writer, fn, arg);
}
