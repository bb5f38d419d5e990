/* SPDX-License-Identifier: MIT */
/*
 * store_pg_events.c — the change feed of the PostgreSQL store (store.h, "the change feed"):
 * reading its events after a cursor, its bounds, and pruning it by age and size. A port of
 * store_sqlite_events.c, with the same semantics. (The hook called after a commit that added
 * events, store_pg_on_events, is store_pg.c's.)
 *
 * The events are gathered by pg_state_append and stored by store_pg_commit as one
 * run_feed page per committing transaction (feed_page.h), numbered from feed_head under its
 * row lock, so the feed holds exactly the committed changes in commit order.
 *
 * Reading runs in one REPEATABLE READ snapshot (the pages and the runs' tasks agree). Pages
 * are fetched a few at a time (a page may hold a whole batch of runs' events), and the tasks
 * of the events of those pages are looked up in one statement rather than one per event.
 *
 * Pruning deletes pages below a cut and counts what the DELETE itself removed, so two servers
 * pruning at once do not both count the same pages.
 */
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

#define READ_PAGES_BATCH 16   /* pages fetched per statement when reading events */
#define PRUNE_PAGES_BATCH 512 /* pages looked at per statement when pruning */

/* --- reading -------------------------------------------------------------------------- */

struct read_op {
    int64_t after;
    int limit;
    struct run_event_list *out;
};

/* The task of each event of out from index `from` on that its page did not carry (a
 * version-1 page): its run's, NULL when the run is gone (deleted by retention). One statement
 * for them all; its rows are sorted by id byte-wise (COLLATE "C", strcmp's order) and
 * searched. */
static int fill_tasks(struct pg_conn *c, struct run_event_list *out, size_t from, errand_error *err)
{
    static const char sql[] = "SELECT id, task FROM task_runs WHERE id = ANY($1::text[]) "
                              "ORDER BY id COLLATE \"C\"";
    size_t missing = 0;
    for (size_t i = from; i < out->n; i++)
        missing += out->items[i].task == NULL;
    if (missing == 0)
        return 0;
    struct pg_array ids = {0};
    for (size_t i = from; i < out->n; i++)
        if (!out->items[i].task)
            pg_array_text(&ids, out->items[i].id);
    int rc = pg_array_check(&ids, err);
    PGresult *r = NULL;
    if (rc == 0) {
        struct pg_params p = {0};
        pg_p_array(&p, &ids);
        if (!(r = pg_query(c, sql, &p, "reading the tasks of events", err)))
            rc = ERRAND_ESTORE;
    }
    pg_array_free(&ids);
    int rows = r ? PQntuples(r) : 0;
    for (size_t i = from; rc == 0 && i < out->n; i++) {
        struct run_event *e = &out->items[i];
        if (e->task)
            continue;
        int lo = 0, hi = rows; /* the row of e->id is in [lo, hi) */
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            const char *id = pg_get_text(r, mid, 0);
            int cmp = strcmp(id ? id : "", e->id);
            if (cmp == 0) {
                const char *task = pg_get_text(r, mid, 1);
                if (!(e->task = mem_strdup(task ? task : "")))
                    rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    PQclear(r);
    return rc;
}

static int read_events_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    /* The page holding seq $1 (the newest starting at or before it) and those after it; $2:
       only pages after that one (the batch read before), $3 pages at most. */
    static const char sql[] =
        "SELECT first_seq, events FROM run_feed WHERE first_seq >= coalesce((SELECT first_seq "
        "FROM run_feed WHERE first_seq <= $1 ORDER BY first_seq DESC LIMIT 1), 0) "
        "AND first_seq > $2 ORDER BY first_seq LIMIT $3";
    struct read_op *op = arg;
    struct run_event_list *out = op->out;
    run_event_list_clear(out); /* an earlier attempt's */
    if (!(out->items = mem_calloc((size_t)op->limit, sizeof *out->items)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int64_t from = op->after < INT64_MAX ? op->after + 1 : INT64_MAX;
    int64_t past = INT64_MIN; /* first_seq of the last page read */
    int rc = 0;
    for (;;) {
        size_t want = (size_t)op->limit - out->n + 1, start = out->n;
        int batch = want < READ_PAGES_BATCH ? (int)want : READ_PAGES_BATCH;
        struct pg_params p = {0};
        pg_p_i64(&p, from);
        pg_p_i64(&p, past);
        pg_p_int(&p, batch);
        PGresult *r = pg_query(c, sql, &p, "reading the change feed", err);
        if (!r)
            return ERRAND_ESTORE;
        int rows = PQntuples(r);
        for (int i = 0; rc == 0 && i < rows && out->n < (size_t)op->limit; i++) {
            int64_t first_seq = pg_get_i64(r, i, 0);
            size_t len = 0;
            const char *text = pg_get_text(r, i, 1);
            unsigned char *data = PQunescapeBytea((const unsigned char *)(text ? text : ""), &len);
            if (!data) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            rc = feed_page_read_events(first_seq, data, len, op->after, op->limit, out, err);
            PQfreemem(data);
            past = first_seq;
        }
        PQclear(r);
        if (rc == 0)
            rc = fill_tasks(c, out, start, err);
        if (rc < 0 || out->n >= (size_t)op->limit || rows < batch)
            return rc;
    }
}

int store_pg_read_events(store *st, int64_t after_seq, int limit, struct run_event_list *out,
                         errand_error *err)
{
    struct read_op op = {after_seq, limit, out};
    int rc = store_pg_read(store_pg_of(st), read_events_in_tx, &op, err);
    if (rc < 0)
        run_event_list_clear(out);
    return rc;
}

/* --- bounds --------------------------------------------------------------------------- */

struct bounds_op {
    int64_t first, last;
};

static int bounds_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] =
        "SELECT (SELECT first_seq FROM run_feed ORDER BY first_seq LIMIT 1), "
        "(SELECT first_seq + n - 1 FROM run_feed ORDER BY first_seq DESC LIMIT 1), "
        "(SELECT next_seq FROM feed_head)";
    struct bounds_op *op = arg;
    op->first = op->last = 0;
    PGresult *r = pg_query(c, sql, NULL, "reading the change feed's bounds", err);
    if (!r)
        return ERRAND_ESTORE;
    if (PQntuples(r) == 1 && !pg_is_null(r, 0, 0)) {
        op->first = pg_get_i64(r, 0, 0);
        op->last = pg_get_i64(r, 0, 1);
    } else if (PQntuples(r) == 1 && pg_get_i64(r, 0, 2) > 1) {
        /* no page now, but the numbering went on: none held, the next one is next_seq (the
           newest page is never pruned, so only a hand-made deletion gets here) */
        op->first = pg_get_i64(r, 0, 2);
        op->last = op->first - 1;
    }
    PQclear(r);
    return 0;
}

int store_pg_event_bounds(store *st, int64_t *first, int64_t *last, errand_error *err)
{
    struct bounds_op op = {0, 0};
    int rc = store_pg_read(store_pg_of(st), bounds_in_tx, &op, err);
    if (rc == 0) {
        *first = op.first;
        *last = op.last;
    }
    return rc;
}

/* --- pruning -------------------------------------------------------------------------- */

struct prune_op {
    int64_t before_ms, keep;
    int limit;
    int deleted;
};

/* The seq of the newest event stored (0 when there is no page). */
static int read_last(struct pg_conn *c, int64_t *out, errand_error *err)
{
    static const char sql[] =
        "SELECT first_seq + n - 1 FROM run_feed ORDER BY first_seq DESC LIMIT 1";
    PGresult *r = pg_query(c, sql, NULL, "reading the change feed's last event", err);
    if (!r)
        return ERRAND_ESTORE;
    *out = PQntuples(r) == 1 ? pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

/* Deletes the oldest pages while their newest event is older than before_ms or their events
 * are beyond the newest `keep`, up to about limit events, never the newest page. */
static int prune_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    /* The oldest pages after $1, never the newest (so seq never restarts). Pruning stops at
       the first page it keeps: pages are appended in time order, so a feed of young pages is
       not walked looking for an old one. */
    static const char sql_oldest[] =
        "SELECT first_seq, n, at FROM run_feed WHERE first_seq > $1 AND first_seq < "
        "(SELECT max(first_seq) FROM run_feed) ORDER BY first_seq LIMIT $2";
    /* Counts what it deleted itself: pages another server's pruning took first are not. */
    static const char sql_prune[] = "WITH gone AS (DELETE FROM run_feed WHERE first_seq < $1 "
                                    "RETURNING n) SELECT coalesce(sum(n), 0) FROM gone";
    struct prune_op *op = arg;
    op->deleted = 0;
    /* The walk must follow the primary key a batch at a time. For a range whose bounds it
       cannot judge (no statistics yet, or the subquery's), the planner assumes that 0.5 % of
       the pages match, fewer than the LIMIT, and reads every page of the range by bitmap
       and sorts them all: on a large feed, every page at every sweep. Not here. */
    int rc = pg_exec(c, "SET LOCAL enable_bitmapscan = off", err);
    int64_t last = 0, below = INT64_MIN; /* events with seq < below are beyond the newest keep */
    if (rc == 0 && op->keep > 0)
        rc = read_last(c, &last, err);
    if (rc < 0)
        return rc;
    if (op->keep > 0)
        below = last - op->keep + 1;
    int64_t cut = INT64_MIN, deleted = 0, past = INT64_MIN;
    int looked = 0; /* pages looked at: limit at most, as the SQLite store's LIMIT */
    bool stop = false;
    while (!stop && deleted < op->limit && looked < op->limit) {
        int batch = op->limit - looked < PRUNE_PAGES_BATCH ? op->limit - looked : PRUNE_PAGES_BATCH;
        struct pg_params p = {0};
        pg_p_i64(&p, past);
        pg_p_int(&p, batch);
        PGresult *r = pg_query(c, sql_oldest, &p, "reading the change feed's oldest pages", err);
        if (!r)
            return ERRAND_ESTORE;
        int rows = PQntuples(r);
        for (int i = 0; i < rows && deleted < op->limit; i++) {
            int64_t first = pg_get_i64(r, i, 0), n = pg_get_i64(r, i, 1);
            looked++;
            if (pg_get_i64(r, i, 2) >= op->before_ms && first + n - 1 >= below) {
                stop = true;
                break;
            }
            cut = first + n;
            deleted += n;
            past = first;
        }
        PQclear(r);
        if (rows < batch)
            stop = true;
    }
    if (cut == INT64_MIN)
        return 0;
    struct pg_params p = {0};
    pg_p_i64(&p, cut);
    PGresult *r = pg_query(c, sql_prune, &p, "pruning the change feed", err);
    if (!r)
        return ERRAND_ESTORE;
    int64_t gone = PQntuples(r) == 1 ? pg_get_i64(r, 0, 0) : 0;
    op->deleted = gone > INT32_MAX ? INT32_MAX : (int)gone;
    PQclear(r);
    return 0;
}

int store_pg_prune_events(store *st, int64_t before_ms, int64_t keep, int limit, int *deleted,
                          errand_error *err)
{
    struct prune_op op = {before_ms, keep, limit, 0};
    int rc = store_pg_write(store_pg_of(st), prune_in_tx, &op, err);
    *deleted = rc == 0 ? op.deleted : 0;
    return rc;
}
