/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_schedules.c — schedules in the SQLite store (store.h, store/schedule_row.h):
 * writes as ops of the writer (so a put's count check and its insert are one transaction),
 * reads on the read pool. The advance of next_tick is one UPDATE whose WHERE repeats the
 * generation and tick it was planned from: servers sharing the file may all try it, one
 * changes the row.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/store_sqlite.h"

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static char *dup_col(sqlite3_stmt *q, int col, bool *failed)
{
    const char *t = sqlite_col_text(q, col);
    if (!t)
        return NULL;
    char *d = mem_strdup(t);
    if (!d)
        *failed = true;
    return d;
}

/* The current row of q (SCHEDULE_COLUMNS) into *r, owned. */
static int read_schedule(sqlite3_stmt *q, struct schedule_row *r, errand_error *err)
{
    bool failed = false;
    memset(r, 0, sizeof *r);
    r->name = dup_col(q, 0, &failed);
    r->task = dup_col(q, 1, &failed);
    r->run_options = dup_col(q, 2, &failed);
    r->cron = dup_col(q, 3, &failed);
    r->every_ms = sqlite3_column_int64(q, 4);
    r->time_zone = dup_col(q, 5, &failed);
    r->catch_up = sqlite3_column_int(q, 6) == SCHEDULE_CATCH_UP_ONCE ? SCHEDULE_CATCH_UP_ONCE
                                                                     : SCHEDULE_CATCH_UP_SKIP;
    r->paused = sqlite3_column_int(q, 7) != 0;
    r->next_tick = sqlite3_column_int64(q, 8);
    r->last_tick = sqlite3_column_int64(q, 9);
    r->last_run_id = dup_col(q, 10, &failed);
    r->generation = sqlite3_column_int64(q, 11);
    r->created = sqlite3_column_int64(q, 12);
    r->updated = sqlite3_column_int64(q, 13);
    if (failed) {
        schedule_row_clear(r);
        return oom(err);
    }
    return 0;
}

/* Runs q (bound) and reads its rows into *out (at most max). */
static int read_schedules(struct sqlite_conn *c, sqlite3_stmt *q, enum sql_id id, size_t max,
                          struct schedule_list *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW && out->n < max) {
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct schedule_row *items = mem_realloc(out->items, ncap * sizeof *items);
            if (!items) {
                rc = oom(err);
                break;
            }
            out->items = items, cap = ncap;
        }
        if ((rc = read_schedule(q, &out->items[out->n], err)) < 0)
            break;
        out->n++;
    }
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, sqlite_sql_name(id), err);
    sqlite3_reset(q);
    if (rc < 0)
        schedule_list_clear(out);
    return rc;
}

/* The schedule named name on c: 1 found (into *out when not NULL), 0 none, or an error. */
static int get_on(struct sqlite_conn *c, const char *name, struct schedule_row *out,
                  errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_SCHEDULE_GET, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, name);
    int step = sqlite3_step(q), rc;
    if (step == SQLITE_ROW)
        rc = out ? read_schedule(q, out, err) : 0;
    else if (step == SQLITE_DONE)
        rc = 0;
    else
        rc = sqlite_conn_fail(c, "SQL_SCHEDULE_GET", err);
    sqlite3_reset(q);
    return rc < 0 ? rc : step == SQLITE_ROW;
}

static int no_schedule(const char *name, errand_error *err)
{
    return error_set(err, ERRAND_ENOTFOUND, "name", "no schedule named '%s'", name);
}

struct put_op {
    const struct schedule_row *s;
    int64_t now_ms;
    struct schedule_row *out;
    bool *created;
};

static int put_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct put_op *op = arg;
    const struct schedule_row *s = op->s;
    int found = get_on(c, s->name, NULL, err);
    if (found < 0)
        return found;
    if (!found) {
        int64_t count = 0;
        int rc = sqlite_conn_count(c, SQL_SCHEDULE_COUNT, &count, err);
        if (rc < 0)
            return rc;
        if (count >= STORE_SCHEDULES_MAX)
            return error_set(err, ERRAND_ECONFLICT, "name",
                             "the store holds %d schedules, its most; delete one first",
                             STORE_SCHEDULES_MAX);
    }
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_SCHEDULE_UPSERT, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, s->name);
    sqlite_bind_text(q, 2, s->task);
    sqlite_bind_text(q, 3, s->run_options);
    sqlite_bind_text(q, 4, s->cron);
    if (s->every_ms > 0)
        sqlite3_bind_int64(q, 5, s->every_ms);
    else
        sqlite3_bind_null(q, 5); /* a reset statement keeps its bindings */
    sqlite_bind_text(q, 6, s->time_zone);
    sqlite3_bind_int(q, 7, (int)s->catch_up);
    sqlite3_bind_int(q, 8, s->paused ? 1 : 0);
    sqlite3_bind_int64(q, 9, s->next_tick);
    sqlite3_bind_int64(q, 10, op->now_ms);
    int rc = sqlite_conn_step_done(c, q, SQL_SCHEDULE_UPSERT, err);
    if (rc < 0)
        return rc;
    *op->created = !found;
    if (op->out && (rc = get_on(c, s->name, op->out, err)) >= 0)
        rc = 0;
    return rc;
}

int store_sqlite_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                              struct schedule_row *out, bool *created, errand_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    struct put_op op = {s, now_ms, out, created};
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, put_in_writer, &op, err);
    if (rc < 0 && out)
        schedule_row_clear(out);
    return rc;
}

int store_sqlite_schedule_get(store *st, const char *name, struct schedule_row *out,
                              errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    memset(out, 0, sizeof *out);
    int rc = get_on(c, name, out, err);
    sqlite_pool_release(s->readers, c);
    if (rc == 0)
        return no_schedule(name, err);
    return rc < 0 ? rc : 0;
}

int store_sqlite_schedule_list(store *st, struct schedule_list *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_SCHEDULE_LIST, err);
    int rc = ERRAND_ESTORE;
    memset(out, 0, sizeof *out);
    if (q) {
        sqlite3_bind_int(q, 1, STORE_SCHEDULES_MAX);
        rc = read_schedules(c, q, SQL_SCHEDULE_LIST, STORE_SCHEDULES_MAX, out, err);
    }
    sqlite_pool_release(s->readers, c);
    return rc;
}

int store_sqlite_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                              errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_SCHEDULE_DUE, err);
    int rc = ERRAND_ESTORE;
    memset(out, 0, sizeof *out);
    if (q) {
        sqlite3_bind_int64(q, 1, now_ms);
        sqlite3_bind_int(q, 2, limit);
        rc = read_schedules(c, q, SQL_SCHEDULE_DUE, (size_t)limit, out, err);
    }
    sqlite_pool_release(s->readers, c);
    return rc;
}

/* A write of one statement naming one schedule; *changed whether it touched a row. */
struct change_op {
    enum sql_id id;
    const char *name;
    int64_t a, b, c, d, e; /* the statement's numbers, as each binds them */
    const char *run_id;
    bool paused;
    bool changed;
};

static int change_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct change_op *op = arg;
    sqlite3_stmt *q = sqlite_conn_stmt(c, op->id, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, op->name);
    if (op->id == SQL_SCHEDULE_PAUSE) {
        sqlite3_bind_int(q, 2, op->paused ? 1 : 0);
        sqlite3_bind_int64(q, 3, op->a);
        sqlite3_bind_int64(q, 4, op->b);
    } else if (op->id == SQL_SCHEDULE_ADVANCE) {
        sqlite3_bind_int64(q, 2, op->a); /* generation */
        sqlite3_bind_int64(q, 3, op->b); /* from */
        sqlite3_bind_int64(q, 4, op->c); /* to */
        sqlite3_bind_int64(q, 5, op->d); /* fired */
        sqlite_bind_text(q, 6, op->run_id);
        sqlite3_bind_int64(q, 7, op->e); /* now */
    }
    int rc = sqlite_conn_step_done(c, q, op->id, err);
    if (rc == 0)
        op->changed = sqlite3_changes(c->db) > 0;
    return rc;
}

int store_sqlite_schedule_delete(store *st, const char *name, errand_error *err)
{
    struct change_op op = {.id = SQL_SCHEDULE_DELETE, .name = name};
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, change_in_writer, &op, err);
    return rc < 0 ? rc : op.changed ? 0 : no_schedule(name, err);
}

int store_sqlite_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                                     int64_t now_ms, errand_error *err)
{
    struct change_op op = {
        .id = SQL_SCHEDULE_PAUSE, .name = name, .paused = paused, .a = next_tick, .b = now_ms};
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, change_in_writer, &op, err);
    return rc < 0 ? rc : op.changed ? 0 : no_schedule(name, err);
}

int store_sqlite_schedule_advance(store *st, const char *name, int64_t generation,
                                  int64_t from_tick, int64_t to_tick, int64_t fired_tick,
                                  const char *run_id, int64_t now_ms, bool *advanced,
                                  errand_error *err)
{
    struct change_op op = {.id = SQL_SCHEDULE_ADVANCE,
                           .name = name,
                           .a = generation,
                           .b = from_tick,
                           .c = to_tick,
                           .d = fired_tick,
                           .e = now_ms,
                           .run_id = run_id};
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, change_in_writer, &op, err);
    *advanced = rc == 0 && op.changed;
    return rc;
}
