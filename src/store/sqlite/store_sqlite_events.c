/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_events.c — the change feed of the SQLite store (store.h, "the change feed"):
 * reading run_events after a cursor, its bounds, pruning it by age, and the hook the writer
 * calls when a commit added to it.
 *
 * The rows themselves are appended by sqlite_state_append, in the transaction of the state
 * change they record, so the feed holds exactly the committed changes in commit order.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/store_sqlite.h"

int store_sqlite_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                             errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_EVENTS_AFTER, err);
    int rc = q ? 0 : ERRAND_ESTORE, step = SQLITE_DONE;
    if (q) {
        out->items = mem_calloc((size_t)limit, sizeof *out->items);
        if (!out->items)
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        sqlite3_bind_int64(q, 1, after_seq);
        sqlite3_bind_int(q, 2, limit);
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            struct run_event *e = &out->items[out->n++];
            e->seq = sqlite3_column_int64(q, 0);
            const char *id = sqlite_col_text(q, 1), *name = sqlite_col_text(q, 3),
                       *task = sqlite_col_text(q, 5);
            snprintf(e->id, sizeof e->id, "%s", id ? id : "");
            e->type = (errand_state)sqlite3_column_int(q, 2);
            e->at = sqlite_col_ms(q, 4);
            e->name = mem_strdup(name ? name : "");
            e->task = task ? mem_strdup(task) : NULL;
            if (!e->name || (task && !e->task))
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_EVENTS_AFTER", err);
        sqlite3_reset(q);
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
        if ((rc = read_seq(c, SQL_EVENTS_FIRST, first, err)) == 0)
            rc = read_seq(c, SQL_EVENTS_LAST, last, err);
        errand_error ignored;
        sqlite_conn_run(c, SQL_COMMIT, &ignored);
    }
    sqlite_pool_release(s->readers, c);
    return rc;
}

struct prune_op {
    int64_t before_ms;
    int limit;
    int deleted;
};

static int prune_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct prune_op *op = arg;
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_EVENTS_PRUNE, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, op->before_ms);
    sqlite3_bind_int(q, 2, op->limit);
    int rc = sqlite_conn_step_done(c, q, SQL_EVENTS_PRUNE, err);
    op->deleted = rc == 0 ? sqlite3_changes(c->db) : 0;
    return rc;
}

int store_sqlite_prune_events(store *st, int64_t before_ms, int limit, int *deleted,
                              errand_error *err)
{
    struct prune_op op = {before_ms, limit, 0};
    int rc = sqlite_writer_run_relaxed(store_sqlite_of(st)->writer, prune_in_writer, &op, err);
    *deleted = rc == 0 ? op.deleted : 0;
    return rc;
}

void store_sqlite_on_events(store *st, void (*fn)(void *), void *arg)
{
    sqlite_writer_on_feed(store_sqlite_of(st)->writer, fn, arg);
}
