/* SPDX-License-Identifier: MIT */
/*
 * store_pg_schedules.c — schedules in the PostgreSQL store (store.h, store/schedule_row.h);
 * a port of store_sqlite_schedules.c. Every server's scheduler reads the due schedules and
 * may try the same advance: the UPDATE repeats the generation and the tick it was planned
 * from, so under READ COMMITTED the second one re-reads the row after the first commits,
 * finds next_tick moved, and changes nothing.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

#define SCHEDULE_COLUMNS                                                                           \
    "name, task, run_options, cron, every_ms, time_zone, catch_up, paused, next_tick, "            \
    "last_tick, last_run_id, generation, created, updated"

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static char *dup_col(const PGresult *r, int row, int col, bool *failed)
{
    const char *t = pg_get_text(r, row, col);
    if (!t)
        return NULL;
    char *d = mem_strdup(t);
    if (!d)
        *failed = true;
    return d;
}

/* Row `row` of r, whose columns from `first` are SCHEDULE_COLUMNS, into *out, owned. */
static int read_schedule(const PGresult *r, int row, int first, struct schedule_row *out,
                         errand_error *err)
{
    bool failed = false;
    memset(out, 0, sizeof *out);
    out->name = dup_col(r, row, first + 0, &failed);
    out->task = dup_col(r, row, first + 1, &failed);
    out->run_options = dup_col(r, row, first + 2, &failed);
    out->cron = dup_col(r, row, first + 3, &failed);
    out->every_ms = pg_get_i64(r, row, first + 4);
    out->time_zone = dup_col(r, row, first + 5, &failed);
    out->catch_up = pg_get_int(r, row, first + 6) == SCHEDULE_CATCH_UP_ONCE
                        ? SCHEDULE_CATCH_UP_ONCE
                        : SCHEDULE_CATCH_UP_SKIP;
    out->paused = pg_get_bool(r, row, first + 7);
    out->next_tick = pg_get_i64(r, row, first + 8);
    out->last_tick = pg_get_i64(r, row, first + 9);
    out->last_run_id = dup_col(r, row, first + 10, &failed);
    out->generation = pg_get_i64(r, row, first + 11);
    out->created = pg_get_i64(r, row, first + 12);
    out->updated = pg_get_i64(r, row, first + 13);
    if (failed) {
        schedule_row_clear(out);
        return oom(err);
    }
    return 0;
}

static int read_list(const PGresult *r, struct schedule_list *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    int n = PQntuples(r);
    if (n == 0)
        return 0;
    if (!(out->items = mem_calloc((size_t)n, sizeof *out->items)))
        return oom(err);
    for (int i = 0; i < n; i++) {
        int rc = read_schedule(r, i, 0, &out->items[i], err);
        if (rc < 0) {
            schedule_list_clear(out);
            return rc;
        }
        out->n++;
    }
    return 0;
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

static int put_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char count_sql[] =
        "SELECT count(*), coalesce(bool_or(name = $1), false) FROM schedules";
    static const char upsert_sql[] =
        "INSERT INTO schedules (name, task, run_options, cron, every_ms, time_zone, catch_up, "
        "paused, next_tick, generation, created, updated) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) ON CONFLICT (name) DO UPDATE "
        "SET task = excluded.task, run_options = excluded.run_options, cron = excluded.cron, "
        "every_ms = excluded.every_ms, time_zone = excluded.time_zone, "
        "catch_up = excluded.catch_up, paused = excluded.paused, next_tick = excluded.next_tick, "
        "generation = schedules.generation + 1, updated = excluded.updated "
        "RETURNING (xmax = 0), " SCHEDULE_COLUMNS;
    struct put_op *op = arg;
    const struct schedule_row *s = op->s;
    struct pg_params p = {0};
    pg_p_text(&p, s->name);
    PGresult *r = pg_query(c, count_sql, &p, "counting schedules", err);
    if (!r)
        return ERRAND_ESTORE;
    bool full = pg_get_i64(r, 0, 0) >= STORE_SCHEDULES_MAX && !pg_get_bool(r, 0, 1);
    PQclear(r);
    if (full)
        return error_set(err, ERRAND_ECONFLICT, "name",
                         "the store holds %d schedules, its most; delete one first",
                         STORE_SCHEDULES_MAX);
    p = (struct pg_params){0};
    pg_p_text(&p, s->name);
    pg_p_text(&p, s->task);
    pg_p_text(&p, s->run_options);
    pg_p_text(&p, s->cron);
    if (s->every_ms > 0)
        pg_p_i64(&p, s->every_ms);
    else
        pg_p_text(&p, NULL);
    pg_p_text(&p, s->time_zone);
    pg_p_int(&p, (int)s->catch_up);
    pg_p_bool(&p, s->paused);
    pg_p_i64(&p, s->next_tick);
    pg_p_i64(&p, op->now_ms);
    if (!(r = pg_query(c, upsert_sql, &p, "storing a schedule", err)))
        return ERRAND_ESTORE;
    int rc = 0;
    *op->created = pg_get_bool(r, 0, 0);
    if (op->out) {
        schedule_row_clear(op->out); /* a re-run transaction fills it again */
        rc = read_schedule(r, 0, 1, op->out, err);
    }
    PQclear(r);
    return rc;
}

int store_pg_schedule_put(store *st, const struct schedule_row *s, int64_t now_ms,
                          struct schedule_row *out, bool *created, errand_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    struct put_op op = {s, now_ms, out, created};
    int rc = store_pg_write(store_pg_of(st), put_in_tx, &op, err);
    if (rc < 0 && out)
        schedule_row_clear(out);
    return rc;
}

struct read_op {
    const char *name;
    int64_t now_ms;
    int limit;
    struct schedule_row *row;
    struct schedule_list *list;
    bool found;
};

static int get_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name = $1";
    struct read_op *op = arg;
    struct pg_params p = {0};
    pg_p_text(&p, op->name);
    PGresult *r = pg_query(c, sql, &p, "reading a schedule", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    op->found = PQntuples(r) > 0;
    if (op->found)
        rc = read_schedule(r, 0, 0, op->row, err);
    PQclear(r);
    return rc;
}

int store_pg_schedule_get(store *st, const char *name, struct schedule_row *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    struct read_op op = {.name = name, .row = out};
    int rc = store_pg_read_single(store_pg_of(st), get_in_tx, &op, err);
    if (rc == 0 && !op.found)
        return no_schedule(name, err);
    return rc;
}

static int list_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT " SCHEDULE_COLUMNS " FROM schedules ORDER BY name LIMIT $1";
    struct read_op *op = arg;
    struct pg_params p = {0};
    pg_p_int(&p, STORE_SCHEDULES_MAX);
    PGresult *r = pg_query(c, sql, &p, "listing schedules", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = read_list(r, op->list, err);
    PQclear(r);
    return rc;
}

int store_pg_schedule_list(store *st, struct schedule_list *out, errand_error *err)
{
    struct read_op op = {.list = out};
    memset(out, 0, sizeof *out);
    return store_pg_read_single(store_pg_of(st), list_in_tx, &op, err);
}

static int due_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT " SCHEDULE_COLUMNS " FROM schedules "
                              "WHERE NOT paused AND next_tick <= $1 ORDER BY next_tick LIMIT $2";
    struct read_op *op = arg;
    struct pg_params p = {0};
    pg_p_i64(&p, op->now_ms);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "reading the due schedules", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = read_list(r, op->list, err);
    PQclear(r);
    return rc;
}

int store_pg_schedule_due(store *st, int64_t now_ms, int limit, struct schedule_list *out,
                          errand_error *err)
{
    struct read_op op = {.now_ms = now_ms, .limit = limit, .list = out};
    memset(out, 0, sizeof *out);
    return store_pg_read_single(store_pg_of(st), due_in_tx, &op, err);
}

/* One statement naming one schedule; changed: whether it touched a row. */
struct change_op {
    const char *sql, *what;
    struct pg_params p;
    bool changed;
};

static int change_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct change_op *op = arg;
    int64_t n = 0;
    int rc = pg_command(c, op->sql, &op->p, op->what, &n, err);
    op->changed = rc == 0 && n > 0;
    return rc;
}

int store_pg_schedule_delete(store *st, const char *name, errand_error *err)
{
    static const char sql[] = "DELETE FROM schedules WHERE name = $1";
    struct change_op op = {sql, "deleting a schedule", {0}, false};
    pg_p_text(&op.p, name);
    int rc = store_pg_write(store_pg_of(st), change_in_tx, &op, err);
    return rc < 0 ? rc : op.changed ? 0 : no_schedule(name, err);
}

int store_pg_schedule_set_paused(store *st, const char *name, bool paused, int64_t next_tick,
                                 int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "UPDATE schedules SET paused = $2, next_tick = CASE WHEN $2 THEN next_tick ELSE $3 END, "
        "updated = $4 WHERE name = $1";
    struct change_op op = {sql, "pausing a schedule", {0}, false};
    pg_p_text(&op.p, name);
    pg_p_bool(&op.p, paused);
    pg_p_i64(&op.p, next_tick);
    pg_p_i64(&op.p, now_ms);
    int rc = store_pg_write(store_pg_of(st), change_in_tx, &op, err);
    return rc < 0 ? rc : op.changed ? 0 : no_schedule(name, err);
}

int store_pg_schedule_advance(store *st, const char *name, int64_t generation, int64_t from_tick,
                              int64_t to_tick, int64_t fired_tick, const char *run_id,
                              int64_t now_ms, bool *advanced, errand_error *err)
{
    static const char sql[] = "UPDATE schedules SET next_tick = $4, "
                              "last_tick = CASE WHEN $6::text IS NULL THEN last_tick ELSE $5 END, "
                              "last_run_id = coalesce($6, last_run_id), updated = $7 "
                              "WHERE name = $1 AND generation = $2 AND next_tick = $3";
    struct change_op op = {sql, "advancing a schedule", {0}, false};
    pg_p_text(&op.p, name);
    pg_p_i64(&op.p, generation);
    pg_p_i64(&op.p, from_tick);
    pg_p_i64(&op.p, to_tick);
    pg_p_i64(&op.p, fired_tick);
    pg_p_text(&op.p, run_id);
    pg_p_i64(&op.p, now_ms);
    int rc = store_pg_write(store_pg_of(st), change_in_tx, &op, err);
    *advanced = rc == 0 && op.changed;
    return rc;
}
