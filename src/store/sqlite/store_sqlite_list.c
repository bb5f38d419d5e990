/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_list.c — listing runs (GET /api/task_runs, bulk actions): newest first, keyset
 * paged, filtered by state, task, tag, worker, trace id, an id range or an idempotency key.
 *
 * Every page reads one read transaction's view. A filter alone walks the index that holds
 * exactly its runs (sqlite_sql.c), so a page costs what it returns. Filters that combine walk
 * one filter's index and check the others on each row: a task with a state walks whichever
 * side the counters say is smaller, a tag or a worker walks its own runs. Such a walk can pass
 * many runs that do not match (a busy task's few failures), so it is bounded: at most
 * STORE_LIST_SCAN_MAX runs are read per state, from the cursor down to a boundary found on
 * the index alone. A page that ends at a boundary before it is full carries the boundary as
 * next_cursor, so a client that follows next_cursor sees every matching run, a bounded
 * amount of work at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/traceparent.h"
#include "core/wire_limits.h"
#include "store/sqlite/store_sqlite.h"

/* Sorts after every id (ids are lower-case hex and '-'): "no cursor" as a cursor. */
#define CURSOR_NEWEST "~"

/* Rows gathered for a listing page (owned copies), merged newest first. */
struct row_buffer {
    struct run_row *rows;
    size_t n, cap;
};

/* One listing's filter, normalised for binding. */
struct list_args {
    const struct run_filter *f;
    char cursor[UUID_STR_LEN]; /* ids below it */
    char oldest[UUID_STR_LEN]; /* ids at or above it; "" sorts below every id: no bound */
    unsigned mask;             /* states asked for; 0 = all */
    /* The highest boundary a bounded walk stopped at ("" = none): every matching run at or
       above it has been read, none below it is certain to have been. */
    char boundary[UUID_STR_LEN];
};

static int list_collect(struct sqlite_conn *c, sqlite3_stmt *q, enum sql_id id,
                        struct row_buffer *l, errand_error *err)
{
    int step, rc = 0;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 64;
            struct run_row *rows = mem_realloc(l->rows, cap * sizeof *rows);
            if (!rows) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            l->rows = rows;
            l->cap = cap;
        }
        store_sqlite_read_run(q, &l->rows[l->n]);
        if ((rc = run_row_own_strings(&l->rows[l->n], err)) == 0)
            l->n++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, sqlite_sql_name(id), err);
    sqlite3_reset(q);
    return rc;
}

static int row_id_desc(const void *pa, const void *pb)
{
    const struct run_row *a = pa, *b = pb;
    return strcmp(b->id, a->id);
}

/* Binds the filter's parameters by their fixed numbers (sqlite_sql.c); a statement without
 * one of them refuses that bind (SQLITE_RANGE), which is harmless. ?4 is the state walked
 * (state >= 0) or the tag. */
static void bind_filter(sqlite3_stmt *q, const struct list_args *a, int state, const char *low,
                        int limit)
{
    sqlite_bind_text(q, 1, a->cursor);
    sqlite_bind_text(q, 2, a->f->task);
    sqlite3_bind_int(q, 3, limit);
    if (state >= 0)
        sqlite3_bind_int(q, 4, state);
    else
        sqlite_bind_text(q, 4, a->f->tag);
    sqlite3_bind_int(q, 5, (int)a->mask);
    sqlite_bind_text(q, 6, low);
    sqlite_bind_text(q, 7, a->f->worker);
    sqlite3_bind_int(q, 8, STORE_LIST_SCAN_MAX - 1);
    sqlite_bind_text(q, 9, a->f->trace_id);
}

/* One walk: the listing statement `list` for `state` (-1: not per state), bounded first by
 * `bound` (SQL_COUNT: unbounded, the index holds only matching runs or few runs). */
static int walk(struct sqlite_conn *c, struct list_args *a, enum sql_id list, enum sql_id bound,
                int state, int limit, struct row_buffer *l, errand_error *err)
{
    char low[UUID_STR_LEN];
    memcpy(low, a->oldest, sizeof low);
    sqlite3_stmt *q;
    if (bound != SQL_COUNT) {
        if (!(q = sqlite_conn_stmt(c, bound, err)))
            return ERRAND_ESTORE;
        bind_filter(q, a, state, a->oldest, limit);
        int step = sqlite3_step(q);
        if (step == SQLITE_ROW) {
            run_id_norm(sqlite_col_text(q, 0), low);
            if (strcmp(low, a->boundary) > 0)
                memcpy(a->boundary, low, sizeof low);
        }
        sqlite3_reset(q);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return sqlite_conn_fail(c, sqlite_sql_name(bound), err);
    }
    if (!(q = sqlite_conn_stmt(c, list, err)))
        return ERRAND_ESTORE;
    bind_filter(q, a, state, low, limit);
    return list_collect(c, q, list, l, err);
}

/* The listing statement for one state, and the bound of its walk when a task is checked on
 * each row: each walks the index holding that state's runs (see sqlite_sql.c). A CANCELLING
 * run is both leased and in task_runs_attention. The leased runs are the runs in flight, few
 * by nature: no bound. */
static enum sql_id state_statement(errand_state s, enum sql_id *bound)
{
    switch (s) {
    case ERRAND_STATE_PENDING:
    case ERRAND_STATE_RUNNING:
        *bound = SQL_COUNT;
        return SQL_LIST_LEASED;
    case ERRAND_STATE_SCHEDULED:
        *bound = SQL_BOUND_SCHEDULED;
        return SQL_LIST_SCHEDULED;
    case ERRAND_STATE_COMPLETED:
        *bound = SQL_BOUND_COMPLETED;
        return SQL_LIST_COMPLETED;
    default:
        *bound = SQL_BOUND_ATTENTION;
        return SQL_LIST_ATTENTION;
    }
}

static bool run_in_trace(const struct run_row *r, const char *trace_id)
{
    char id[TRACE_ID_LEN + 1];
    traceparent_trace_id(r->traceparent, id);
    return strcmp(id, trace_id) == 0;
}

/* The one run of (task, idempotency key), if it passes the other filters. */
static int list_by_key(struct sqlite_conn *c, const struct list_args *a, struct row_buffer *l,
                       errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_RUN_BY_IDEMPOTENCY, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, a->f->task);
    sqlite_bind_text(q, 2, a->f->idempotency_key);
    int rc = list_collect(c, q, SQL_RUN_BY_IDEMPOTENCY, l, err);
    if (rc == 0 && l->n == 1) {
        const struct run_row *r = &l->rows[0];
        if ((a->mask && !(a->mask & (1u << r->state))) || strcmp(r->id, a->cursor) >= 0 ||
            strcmp(r->id, a->oldest) < 0 ||
            (a->f->worker && (!r->worker || strcmp(r->worker, a->f->worker) != 0)) ||
            (a->f->trace_id && !run_in_trace(r, a->f->trace_id))) {
            run_row_clear(&l->rows[0]);
            l->n = 0;
        }
    }
    return rc;
}

/* Runs the listing's walks inside one read transaction; l holds up to limit + 1 rows of
 * each walk, merged newest first. */
static int list_query(struct sqlite_conn *c, struct list_args *a, struct row_buffer *l,
                      errand_error *err)
{
    const struct run_filter *f = a->f;
    int want = f->limit + 1; /* one more tells whether a next page exists */
    if (f->idempotency_key)
        return list_by_key(c, a, l, err);
    if (f->trace_id) { /* a trace's runs, the other filters checked on each */
        bool checks = f->task || f->tag || f->worker || a->mask;
        return walk(c, a, SQL_LIST_TRACE, checks ? SQL_BOUND_TRACE : SQL_COUNT, -1, want, l, err);
    }
    if (f->tag || f->worker || a->mask == 0) {
        enum sql_id id = f->tag      ? SQL_LIST_TAG
                         : f->worker ? SQL_LIST_WORKER
                         : f->task   ? SQL_LIST_TASK
                                     : SQL_LIST_ALL;
        /* A tag or a worker with any other filter checks that filter on each row. */
        bool checks = (f->tag && (f->task || f->worker || a->mask)) ||
                      (!f->tag && f->worker && (f->task || a->mask));
        enum sql_id bound = !checks ? SQL_COUNT : f->tag ? SQL_BOUND_TAG : SQL_BOUND_WORKER;
        return walk(c, a, id, bound, -1, want, l, err);
    }
    /* One walk per state. With a task too, the counters say how many runs match (none:
       nothing to walk; few: stop once they are found) and which side is smaller to walk: the
       task's runs, or the state's runs of every task. A side no longer than the scan bound
       needs no bound. */
    int64_t in_state[STORE_SQLITE_STATE_TYPES] = {0}, of_task[STORE_SQLITE_STATE_TYPES] = {0},
            task_total = 0;
    int rc;
    if (f->task && ((rc = store_sqlite_read_counts(c, SQL_COUNTS, NULL, in_state, err)) < 0 ||
                    (rc = store_sqlite_read_counts(c, SQL_TASK_COUNTS, f->task, of_task, err)) < 0))
        return rc;
    for (int t = 0; t < STORE_SQLITE_STATE_TYPES; t++)
        task_total += of_task[t];
    for (int t = 0; t < STORE_SQLITE_STATE_TYPES; t++) {
        if (!(a->mask & (1u << t)))
            continue;
        int limit = want;
        enum sql_id bound, id = state_statement((errand_state)t, &bound);
        if (!f->task) {
            bound = SQL_COUNT; /* the state's index holds exactly its runs */
        } else {
            if (of_task[t] <= 0)
                continue;
            if (of_task[t] < limit)
                limit = (int)of_task[t];
            if (in_state[t] >= task_total) { /* walk the task's runs */
                id = SQL_LIST_TASK_STATE;
                bound = task_total > STORE_LIST_SCAN_MAX ? SQL_BOUND_TASK : SQL_COUNT;
            } else if (in_state[t] <= STORE_LIST_SCAN_MAX) {
                bound = SQL_COUNT;
            }
        }
        if ((rc = walk(c, a, id, bound, t, limit, l, err)) < 0)
            return rc;
    }
    if (l->n > 1)
        qsort(l->rows, l->n, sizeof *l->rows, row_id_desc);
    /* Below the highest boundary some walk stopped at, runs of that walk's state may be
       missing: the page ends there, and the next one starts there. */
    while (a->boundary[0] && l->n > 0 && strcmp(l->rows[l->n - 1].id, a->boundary) < 0)
        run_row_clear(&l->rows[--l->n]);
    return 0;
}

int store_sqlite_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                           char next_cursor[37], errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    out->rows = NULL;
    out->n = 0;
    next_cursor[0] = '\0';
    if (f->limit < 1 || f->limit > WIRE_LIST_LIMIT_MAX)
        return error_set(err, ERR_INVALID_PARAMETER, "limit",
                         "parameter 'limit' must be between 1 and %d, got %d", WIRE_LIST_LIMIT_MAX,
                         f->limit);
    const unsigned all = (1u << STORE_SQLITE_STATE_TYPES) - 1;
    struct list_args a = {.f = f, .cursor = CURSOR_NEWEST, .mask = f->state_mask & all};
    if (a.mask == all)
        a.mask = 0;
    if (f->cursor && f->cursor[0])
        run_id_norm(f->cursor, a.cursor);
    if (f->oldest && f->oldest[0])
        run_id_norm(f->oldest, a.oldest);

    struct row_buffer l = {0};
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err);
    if (rc == 0) {
        rc = list_query(c, &a, &l, err);
        errand_error ignored;
        sqlite_conn_run(c, SQL_COMMIT, &ignored);
    }
    sqlite_pool_release(s->readers, c);

    size_t shown = l.n < (size_t)f->limit ? l.n : (size_t)f->limit;
    if (rc == 0 && l.n > (size_t)f->limit)
        snprintf(next_cursor, UUID_STR_LEN, "%s", l.rows[f->limit - 1].id);
    else if (rc == 0 && a.boundary[0])
        snprintf(next_cursor, UUID_STR_LEN, "%s", a.boundary);
    for (size_t i = rc == 0 ? shown : 0; i < l.n; i++)
        run_row_clear(&l.rows[i]);
    if (rc < 0) {
        mem_free(l.rows);
        return rc;
    }
    out->rows = l.rows;
    out->n = shown;
    return 0;
}
