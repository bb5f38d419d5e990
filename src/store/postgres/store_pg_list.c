/* SPDX-License-Identifier: MIT */
/*
 * store_pg_list.c — the PostgreSQL store's listings and per-run reads: runs (GET
 * /api/task_runs, bulk actions), a run's state history and logs, the workers, and the counts
 * per state. A port of store_sqlite_list.c and of the reads of store_sqlite.c, with the same
 * ordering, paging, cursors and limits.
 *
 * Every call is one read transaction (store_pg_read: REPEATABLE READ, one snapshot), so the
 * walks of a listing page, or a run's existence and its logs, agree with each other. Its op
 * may run again: each one empties what it fills before it starts.
 *
 * Listing runs: newest first, keyset paged, filtered by state, task, tag, worker, an id range
 * or an idempotency key. A filter alone walks the index that holds exactly its runs. Filters
 * that combine walk one filter's index and check the others on each row: a task with a state
 * walks whichever side the counters say is smaller, a tag or a worker walks its own runs.
 * Such a walk can pass many runs that do not match (a busy task's few failures), so it is
 * bounded: at most STORE_LIST_SCAN_MAX runs are read per state, from the cursor down to a
 * boundary found on the index alone (a LIST_BOUND_* statement: the id that many entries
 * down). A page that ends at a boundary before it is full carries the boundary as
 * next_cursor, so a client that follows next_cursor sees every matching run, a bounded amount
 * of work at a time.
 *
 * What differs from the SQLite text:
 *  - A prepared PostgreSQL statement takes exactly the parameters it uses, each of a type it
 *    can tell; so the listing statements do not share one numbering: each says which of the
 *    filter's values it takes, in $n order (struct list_sql, bind_filter).
 *  - The planner picks the index (there is no INDEXED BY); the literal terms
 *    (state_type = 0, state_type = 3, state_type >= 4, lease_expires IS NOT NULL) repeat the
 *    partial indexes' WHERE, which is what lets it use them.
 *  - The counters are delta rows (pg_schema.c): a count is a sum.
 *  - Ids compare in the database's collation. For ids (lower-case hex, '-' at the same
 *    places) every collation agrees with C order, but "no cursor" must sort after every id in
 *    any of them too: "z" does, where SQLite's "~" sorts before the digits in most.
 *    Workers are ordered by name in C order (COLLATE "C"), as SQLite's binary order does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "core/traceparent.h"
#include "store/trace_sql.h"
#include "store/postgres/store_pg.h"

/* The number of state types (errand_state), as the counters index them. */
#define STATE_TYPES 8

/* Sorts after every id (lower-case hex and '-') in any collation: "no cursor" as a cursor. */
#define CURSOR_NEWEST "z"

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* --- listing runs ------------------------------------------------------------------------ */

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

/* A listing (or bound) statement and the filter values it takes, one letter each, in $n
 * order: c the cursor (ids below it), o the lowest id (inclusive), t the task, s the state
 * walked, g the tag, w the worker, m the mask of states, l the limit, b the bound's offset
 * (STORE_LIST_SCAN_MAX - 1). */
struct list_sql {
    const char *what;
    const char *params;
    const char *sql;
};

#define LIST_SELECT "SELECT " PG_RUN_COLUMNS " FROM task_runs "
#define MASK_CHECK(n) "($" #n "::integer = 0 OR (($" #n "::integer >> state_type) & 1) = 1)"

/* Every run; only without a task (a task walks LIST_TASK). */
static const struct list_sql LIST_ALL = {
    "listing runs", "col", LIST_SELECT "WHERE id < $1 AND id >= $2 ORDER BY id DESC LIMIT $3"};
/* One task's runs: task_runs_task in id order. */
static const struct list_sql LIST_TASK = {
    "listing a task's runs", "tcol",
    LIST_SELECT "WHERE task = $1 AND id < $2 AND id >= $3 ORDER BY id DESC LIMIT $4"};
static const struct list_sql LIST_TASK_STATE = {
    "listing a task's runs in a state", "tscol",
    LIST_SELECT "WHERE task = $1 AND state_type = $2 AND id < $3 AND id >= $4 "
                "ORDER BY id DESC LIMIT $5"};
/* One state's runs, each from the partial index holding exactly them (task checked on each
 * row): task_runs_scheduled, task_runs_completed, task_runs_lease (PENDING, RUNNING and
 * CANCELLING runs are the leased ones), task_runs_attention (state_type >= 4). */
static const struct list_sql LIST_SCHEDULED = {
    "listing scheduled runs", "scotl",
    LIST_SELECT "WHERE state_type = 0 AND state_type = $1 AND id < $2 AND id >= $3 "
                "AND ($4::text IS NULL OR task = $4) ORDER BY id DESC LIMIT $5"};
static const struct list_sql LIST_COMPLETED = {
    "listing completed runs", "scotl",
    LIST_SELECT "WHERE state_type = 3 AND state_type = $1 AND id < $2 AND id >= $3 "
                "AND ($4::text IS NULL OR task = $4) ORDER BY id DESC LIMIT $5"};
static const struct list_sql LIST_LEASED = {
    "listing leased runs", "scotl",
    LIST_SELECT "WHERE lease_expires IS NOT NULL AND state_type = $1 AND id < $2 AND id >= $3 "
                "AND ($4::text IS NULL OR task = $4) ORDER BY id DESC LIMIT $5"};
static const struct list_sql LIST_ATTENTION = {
    "listing runs in a state", "scotl",
    LIST_SELECT "WHERE state_type >= 4 AND state_type = $1 AND id < $2 AND id >= $3 "
                "AND ($4::text IS NULL OR task = $4) ORDER BY id DESC LIMIT $5"};
/* A tag's runs, from task_run_tags; a worker's, from task_runs_worker. */
static const struct list_sql LIST_TAG = {
    "listing a tag's runs", "gcotmwl",
    "SELECT " PG_RUN_COLUMNS " FROM task_run_tags JOIN task_runs ON id = run_id "
    "WHERE tag = $1 AND run_id < $2 AND run_id >= $3 AND ($4::text IS NULL OR task = $4) "
    "AND " MASK_CHECK(5) " AND ($6::text IS NULL OR worker = $6) "
                         "ORDER BY run_id DESC LIMIT $7"};
static const struct list_sql LIST_WORKER = {
    "listing a worker's runs", "wcotml",
    LIST_SELECT "WHERE worker = $1 AND id < $2 AND id >= $3 AND ($4::text IS NULL OR task = $4) "
                "AND " MASK_CHECK(5) " ORDER BY id DESC LIMIT $6"};

/* A trace's runs, from task_runs_trace (only runs that have a traceparent, by trace id); the
 * other filters checked on each row. */
static const struct list_sql LIST_TRACE = {
    "listing a trace's runs", "xcotmwgl",
    LIST_SELECT "WHERE traceparent IS NOT NULL AND " TRACE_ID_OF(
        "traceparent") " = $1 "
                       "AND id < $2 AND id >= $3 AND ($4::text IS NULL OR task = $4) "
                       "AND " MASK_CHECK(
                           5) " AND ($6::text IS NULL OR worker = $6) "
                              "AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM task_run_tags "
                              "WHERE tag = $7 AND run_id = task_runs.id)) ORDER BY id DESC LIMIT "
                              "$8"};

/* The bounds: the id STORE_LIST_SCAN_MAX entries down the walk's index from the cursor. */
static const struct list_sql BOUND_TASK = {
    "bounding a task's runs", "tcob",
    "SELECT id FROM task_runs WHERE task = $1 AND id < $2 AND id >= $3 "
    "ORDER BY id DESC LIMIT 1 OFFSET $4"};
static const struct list_sql BOUND_SCHEDULED = {
    "bounding scheduled runs", "cob",
    "SELECT id FROM task_runs WHERE state_type = 0 AND id < $1 AND id >= $2 "
    "ORDER BY id DESC LIMIT 1 OFFSET $3"};
static const struct list_sql BOUND_COMPLETED = {
    "bounding completed runs", "cob",
    "SELECT id FROM task_runs WHERE state_type = 3 AND id < $1 AND id >= $2 "
    "ORDER BY id DESC LIMIT 1 OFFSET $3"};
static const struct list_sql BOUND_ATTENTION = {
    "bounding runs in a state", "scob",
    "SELECT id FROM task_runs WHERE state_type >= 4 AND state_type = $1 AND id < $2 "
    "AND id >= $3 ORDER BY id DESC LIMIT 1 OFFSET $4"};
static const struct list_sql BOUND_TAG = {
    "bounding a tag's runs", "gcob",
    "SELECT run_id FROM task_run_tags WHERE tag = $1 AND run_id < $2 AND run_id >= $3 "
    "ORDER BY run_id DESC LIMIT 1 OFFSET $4"};
static const struct list_sql BOUND_TRACE = {
    "bounding a trace's runs", "xcob",
    "SELECT id FROM task_runs WHERE traceparent IS NOT NULL AND " TRACE_ID_OF(
        "traceparent") " = $1 AND id < $2 AND id >= $3 ORDER BY id DESC LIMIT 1 OFFSET $4"};
static const struct list_sql BOUND_WORKER = {
    "bounding a worker's runs", "wcob",
    "SELECT id FROM task_runs WHERE worker = $1 AND id < $2 AND id >= $3 "
    "ORDER BY id DESC LIMIT 1 OFFSET $4"};

/* Binds the filter's values that q takes, in its order (struct list_sql). */
static void bind_filter(struct pg_params *p, const struct list_sql *q, const struct list_args *a,
                        int state, const char *low, int limit)
{
    for (const char *k = q->params; *k; k++) {
        switch (*k) {
        case 'c':
            pg_p_text(p, a->cursor);
            break;
        case 'o':
            pg_p_text(p, low);
            break;
        case 't':
            pg_p_text(p, a->f->task);
            break;
        case 's':
            pg_p_int(p, state);
            break;
        case 'g':
            pg_p_text(p, a->f->tag);
            break;
        case 'w':
            pg_p_text(p, a->f->worker);
            break;
        case 'x':
            pg_p_text(p, a->f->trace_id);
            break;
        case 'm':
            pg_p_int(p, (int)a->mask);
            break;
        case 'l':
            pg_p_int(p, limit);
            break;
        case 'b':
            pg_p_int(p, STORE_LIST_SCAN_MAX - 1);
            break;
        default:
            abort(); /* a letter the table above does not know: a programming error */
        }
    }
}

/* Runs a statement of whole runs and appends its rows to l (owned copies). */
static int list_collect(struct pg_conn *c, const char *sql, const struct pg_params *p,
                        const char *what, struct row_buffer *l, errand_error *err)
{
    PGresult *r = pg_query(c, sql, p, what, err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0, rows = PQntuples(r);
    for (int i = 0; rc == 0 && i < rows; i++) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 64;
            struct run_row *more = mem_realloc(l->rows, cap * sizeof *more);
            if (!more) {
                rc = oom(err);
                break;
            }
            l->rows = more;
            l->cap = cap;
        }
        struct run_row *row = &l->rows[l->n];
        memset(row, 0, sizeof *row);
        store_pg_read_run(r, i, 0, row);
        if ((rc = run_row_own_strings(row, err)) == 0)
            l->n++;
    }
    PQclear(r);
    return rc;
}

static int row_id_desc(const void *pa, const void *pb)
{
    const struct run_row *a = pa, *b = pb;
    return strcmp(b->id, a->id);
}

/* One walk: the listing statement `list` for `state` (-1: not per state), bounded first by
 * `bound` (NULL: unbounded, the index holds only matching runs or few runs). */
static int walk(struct pg_conn *c, struct list_args *a, const struct list_sql *list,
                const struct list_sql *bound, int state, int limit, struct row_buffer *l,
                errand_error *err)
{
    char low[UUID_STR_LEN];
    memcpy(low, a->oldest, sizeof low);
    if (bound) {
        struct pg_params p = {0};
        bind_filter(&p, bound, a, state, a->oldest, limit);
        PGresult *r = pg_query(c, bound->sql, &p, bound->what, err);
        if (!r)
            return ERRAND_ESTORE;
        if (PQntuples(r) > 0) {
            run_id_norm(pg_get_text(r, 0, 0), low);
            if (strcmp(low, a->boundary) > 0)
                memcpy(a->boundary, low, sizeof low);
        }
        PQclear(r);
    }
    struct pg_params p = {0};
    bind_filter(&p, list, a, state, low, limit);
    return list_collect(c, list->sql, &p, list->what, l, err);
}

/* The listing statement for one state, and the bound of its walk when a task is checked on
 * each row: each walks the index holding that state's runs. A CANCELLING run is both leased
 * and in task_runs_attention. The leased runs are the runs in flight, few by nature: no
 * bound. */
static const struct list_sql *state_statement(errand_state s, const struct list_sql **bound)
{
    switch (s) {
    case ERRAND_STATE_PENDING:
    case ERRAND_STATE_RUNNING:
        *bound = NULL;
        return &LIST_LEASED;
    case ERRAND_STATE_SCHEDULED:
        *bound = &BOUND_SCHEDULED;
        return &LIST_SCHEDULED;
    case ERRAND_STATE_COMPLETED:
        *bound = &BOUND_COMPLETED;
        return &LIST_COMPLETED;
    default:
        *bound = &BOUND_ATTENTION;
        return &LIST_ATTENTION;
    }
}

static bool run_in_trace(const struct run_row *r, const char *trace_id)
{
    char id[TRACE_ID_LEN + 1];
    traceparent_trace_id(r->traceparent, id);
    return strcmp(id, trace_id) == 0;
}

/* The one run of (task, idempotency key), if it passes the other filters. */
static int list_by_key(struct pg_conn *c, const struct list_args *a, struct row_buffer *l,
                       errand_error *err)
{
    static const char sql[] =
        "SELECT " PG_RUN_COLUMNS " FROM task_runs WHERE task = $1 AND idempotency_key = $2";
    struct pg_params p = {0};
    pg_p_text(&p, a->f->task);
    pg_p_text(&p, a->f->idempotency_key);
    int rc = list_collect(c, sql, &p, "listing the run of an idempotency key", l, err);
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
static int list_query(struct pg_conn *c, struct list_args *a, struct row_buffer *l,
                      errand_error *err)
{
    const struct run_filter *f = a->f;
    int want = f->limit + 1; /* one more tells whether a next page exists */
    if (f->idempotency_key)
        return list_by_key(c, a, l, err);
    if (f->trace_id) { /* a trace's runs, the other filters checked on each */
        bool checks = f->task || f->tag || f->worker || a->mask;
        return walk(c, a, &LIST_TRACE, checks ? &BOUND_TRACE : NULL, -1, want, l, err);
    }
    if (f->tag || f->worker || a->mask == 0) {
        const struct list_sql *q = f->tag      ? &LIST_TAG
                                   : f->worker ? &LIST_WORKER
                                   : f->task   ? &LIST_TASK
                                               : &LIST_ALL;
        /* A tag or a worker with any other filter checks that filter on each row. */
        bool checks = (f->tag && (f->task || f->worker || a->mask)) ||
                      (!f->tag && f->worker && (f->task || a->mask));
        const struct list_sql *bound = !checks ? NULL : f->tag ? &BOUND_TAG : &BOUND_WORKER;
        return walk(c, a, q, bound, -1, want, l, err);
    }
    /* One walk per state. With a task too, the counters say how many runs match (none:
       nothing to walk; few: stop once they are found) and which side is smaller to walk: the
       task's runs, or the state's runs of every task. A side no longer than the scan bound
       needs no bound. */
    int64_t in_state[STATE_TYPES] = {0}, of_task[STATE_TYPES] = {0}, task_total = 0;
    int rc;
    if (f->task && ((rc = store_pg_read_counts(c, NULL, in_state, err)) < 0 ||
                    (rc = store_pg_read_counts(c, f->task, of_task, err)) < 0))
        return rc;
    for (int t = 0; t < STATE_TYPES; t++)
        task_total += of_task[t];
    for (int t = 0; t < STATE_TYPES; t++) {
        if (!(a->mask & (1u << t)))
            continue;
        int limit = want;
        const struct list_sql *bound, *q = state_statement((errand_state)t, &bound);
        if (!f->task) {
            bound = NULL; /* the state's index holds exactly its runs */
        } else {
            if (of_task[t] <= 0)
                continue;
            if (of_task[t] < limit)
                limit = (int)of_task[t];
            if (in_state[t] >= task_total) { /* walk the task's runs */
                q = &LIST_TASK_STATE;
                bound = task_total > STORE_LIST_SCAN_MAX ? &BOUND_TASK : NULL;
            } else if (in_state[t] <= STORE_LIST_SCAN_MAX) {
                bound = NULL;
            }
        }
        if ((rc = walk(c, a, q, bound, t, limit, l, err)) < 0)
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

struct list_op {
    struct list_args *a;
    struct row_buffer l;
};

static int list_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct list_op *op = arg;
    for (size_t i = 0; i < op->l.n; i++) /* a run again: start over */
        run_row_clear(&op->l.rows[i]);
    op->l.n = 0;
    op->a->boundary[0] = '\0';
    return list_query(c, op->a, &op->l, err);
}

int store_pg_list_runs(store *st, const struct run_filter *f, struct run_list *out,
                       char next_cursor[37], errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
    out->rows = NULL;
    out->n = 0;
    next_cursor[0] = '\0';
    if (f->limit < 1 || f->limit > WIRE_LIST_LIMIT_MAX)
        return error_set(err, ERR_INVALID_PARAMETER, "limit",
                         "parameter 'limit' must be between 1 and %d, got %d", WIRE_LIST_LIMIT_MAX,
                         f->limit);
    const unsigned all = (1u << STATE_TYPES) - 1;
    struct list_args a = {.f = f, .cursor = CURSOR_NEWEST, .mask = f->state_mask & all};
    if (a.mask == all)
        a.mask = 0;
    if (f->cursor && f->cursor[0])
        run_id_norm(f->cursor, a.cursor);
    if (f->oldest && f->oldest[0])
        run_id_norm(f->oldest, a.oldest);

    struct list_op op = {.a = &a};
    int rc = store_pg_read(s, list_in_tx, &op, err);
    struct row_buffer *l = &op.l;

    size_t shown = l->n < (size_t)f->limit ? l->n : (size_t)f->limit;
    if (rc == 0 && l->n > (size_t)f->limit)
        snprintf(next_cursor, UUID_STR_LEN, "%s", l->rows[f->limit - 1].id);
    else if (rc == 0 && a.boundary[0])
        snprintf(next_cursor, UUID_STR_LEN, "%s", a.boundary);
    for (size_t i = rc == 0 ? shown : 0; i < l->n; i++)
        run_row_clear(&l->rows[i]);
    if (rc < 0) {
        mem_free(l->rows);
        return rc;
    }
    out->rows = l->rows;
    out->n = shown;
    return 0;
}

/* --- a run's history and logs ------------------------------------------------------------ */

/* Whether the run (by normalised id) exists: 0, ERRAND_ENOTFOUND (naming id as given) or a
 * store error. */
static int run_exists(struct pg_conn *c, const char *norm, const char *id, errand_error *err)
{
    static const char sql[] = "SELECT state_type FROM task_runs WHERE id = $1";
    struct pg_params p = {0};
    pg_p_text(&p, norm);
    PGresult *r = pg_query(c, sql, &p, "reading a run's state", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = PQntuples(r) > 0 ? 0 : error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    PQclear(r);
    return rc;
}

/* Copies a column's text (NULL stays NULL); false when out of memory. */
static bool copy_text(const PGresult *r, int row, int col, char **out)
{
    const char *text = pg_get_text(r, row, col);
    *out = text ? mem_strdup(text) : NULL;
    return !text || *out;
}

struct states_op {
    const char *id; /* as given, for the message */
    char norm[UUID_STR_LEN];
    struct state_history *out;
};

static int states_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT type, name, timestamp, message FROM task_run_states "
                              "WHERE run_id = $1 ORDER BY seq";
    struct states_op *op = arg;
    struct state_history *out = op->out;
    state_history_clear(out);
    struct pg_params p = {0};
    pg_p_text(&p, op->norm);
    PGresult *r = pg_query(c, sql, &p, "reading a run's states", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0, rows = PQntuples(r);
    if (rows > 0 && !(out->items = mem_calloc((size_t)rows, sizeof *out->items)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < rows; i++) {
        struct state_record *s = &out->items[out->n++];
        s->type = (errand_state)pg_get_int(r, i, 0);
        s->timestamp = pg_get_i64(r, i, 2);
        if (!copy_text(r, i, 1, &s->name) || !copy_text(r, i, 3, &s->message))
            rc = oom(err);
    }
    PQclear(r);
    if (rc == 0 && out->n == 0) /* every run has a state: no rows = no run */
        rc = run_exists(c, op->norm, op->id, err);
    return rc;
}

int store_pg_get_states(store *st, const char *id, struct state_history *out, errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    struct states_op op = {.id = id, .out = out};
    run_id_norm(id, op.norm);
    int rc = store_pg_read(store_pg_of(st), states_in_tx, &op, err);
    if (rc < 0)
        state_history_clear(out);
    return rc;
}

struct logs_op {
    const char *id;
    char norm[UUID_STR_LEN];
    int64_t after_seq;
    int limit;
    struct log_page *out;
};

static int logs_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT seq, timestamp, level, message FROM task_run_logs "
                              "WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    struct logs_op *op = arg;
    struct log_page *out = op->out;
    log_page_clear(out);
    out->next_after = op->after_seq;
    int rc = run_exists(c, op->norm, op->id, err);
    if (rc < 0)
        return rc;
    struct pg_params p = {0};
    pg_p_text(&p, op->norm);
    pg_p_i64(&p, op->after_seq);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "reading a run's logs", err);
    if (!r)
        return ERRAND_ESTORE;
    int rows = PQntuples(r);
    if (rows > 0 && !(out->items = mem_calloc((size_t)rows, sizeof *out->items)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < rows; i++) {
        struct log_record *l = &out->items[out->n++];
        l->seq = pg_get_i64(r, i, 0);
        l->timestamp = pg_get_i64(r, i, 1);
        l->level = (errand_log_level)pg_get_int(r, i, 2);
        const char *msg = pg_get_text(r, i, 3);
        if (!(l->message = mem_strdup(msg ? msg : "")))
            rc = oom(err);
        out->next_after = l->seq;
    }
    PQclear(r);
    return rc;
}

int store_pg_get_logs(store *st, const char *id, int64_t after_seq, int limit, struct log_page *out,
                      errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    out->next_after = after_seq;
    if (limit <= 0 || limit > WIRE_LOGS_LIMIT_MAX)
        limit = WIRE_LOGS_LIMIT_MAX;
    struct logs_op op = {.id = id, .after_seq = after_seq, .limit = limit, .out = out};
    run_id_norm(id, op.norm);
    int rc = store_pg_read(store_pg_of(st), logs_in_tx, &op, err);
    if (rc < 0) {
        log_page_clear(out);
        out->next_after = after_seq;
    }
    return rc;
}

/* --- workers ----------------------------------------------------------------------------- */

struct workers_op {
    const struct worker_cursor *cursor; /* NULL or without a name: from the start */
    int limit;
    struct worker_list *out;
    bool *more;
};

static int workers_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    /* Most recently seen first, then by name descending in C order (SQLite's binary order),
       paged by (last_seen, name). */
    static const char sql[] = "SELECT name, tasks, last_seen, claimed FROM workers "
                              "WHERE (last_seen, name COLLATE \"C\") < ($1::bigint, $2::text) "
                              "ORDER BY last_seen DESC, name COLLATE \"C\" DESC LIMIT $3";
    struct workers_op *op = arg;
    struct worker_list *out = op->out;
    worker_list_clear(out);
    *op->more = false;
    bool from_start = !op->cursor || !op->cursor->name;
    struct pg_params p = {0};
    pg_p_i64(&p, from_start ? INT64_MAX : op->cursor->last_seen);
    pg_p_text(&p, from_start ? "" : op->cursor->name);
    pg_p_int(&p, op->limit + 1); /* one more tells whether a next page exists */
    PGresult *r = pg_query(c, sql, &p, "listing workers", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0, rows = PQntuples(r);
    if (rows > op->limit) {
        *op->more = true;
        rows = op->limit;
    }
    if (rows > 0 && !(out->items = mem_calloc((size_t)rows, sizeof *out->items)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < rows; i++) {
        struct worker_record *w = &out->items[out->n++];
        w->last_seen = pg_get_i64(r, i, 2);
        w->claimed = pg_get_i64(r, i, 3);
        if (!copy_text(r, i, 0, &w->name) || !copy_text(r, i, 1, &w->tasks))
            rc = oom(err);
    }
    PQclear(r);
    return rc;
}

int store_pg_list_workers(store *st, const struct worker_cursor *cursor, int limit,
                          struct worker_list *out, bool *more, errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    *more = false;
    if (limit < 1 || limit > WIRE_LIST_LIMIT_MAX)
        return error_set(err, ERR_INVALID_PARAMETER, "limit",
                         "parameter 'limit' must be between 1 and %d, got %d", WIRE_LIST_LIMIT_MAX,
                         limit);
    struct workers_op op = {.cursor = cursor, .limit = limit, .out = out, .more = more};
    int rc = store_pg_read(store_pg_of(st), workers_in_tx, &op, err);
    if (rc < 0) {
        worker_list_clear(out);
        *more = false;
    }
    return rc;
}

/* --- counts ------------------------------------------------------------------------------ */

int store_pg_read_counts(struct pg_conn *c, const char *task, int64_t counts[8], errand_error *err)
{
    /* The counters hold the changes of each commit as rows of their own: a count is a sum. */
    static const char all_sql[] =
        "SELECT state_type, sum(n)::bigint FROM run_counts GROUP BY state_type";
    static const char task_sql[] = "SELECT state_type, sum(n)::bigint FROM task_counts "
                                   "WHERE task = $1 GROUP BY state_type";
    for (int i = 0; i < STATE_TYPES; i++)
        counts[i] = 0;
    struct pg_params p = {0};
    if (task)
        pg_p_text(&p, task);
    PGresult *r = task ? pg_query(c, task_sql, &p, "reading a task's counts", err)
                       : pg_query(c, all_sql, NULL, "reading the counts", err);
    if (!r)
        return ERRAND_ESTORE;
    for (int i = 0, rows = PQntuples(r); i < rows; i++) {
        int t = pg_get_int(r, i, 0);
        if (t >= 0 && t < STATE_TYPES)
            counts[t] = pg_get_i64(r, i, 1);
    }
    PQclear(r);
    return 0;
}

static int counts_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    return store_pg_read_counts(c, NULL, arg, err);
}

int store_pg_count_by_state(store *st, int64_t counts[8], errand_error *err)
{
    return store_pg_read(store_pg_of(st), counts_in_tx, counts, err);
}
