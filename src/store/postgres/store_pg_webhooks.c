/* SPDX-License-Identifier: MIT */
/*
 * store_pg_webhooks.c — webhooks in the PostgreSQL store (store.h, store/webhook_row.h):
 * tasks' webhooks, the deliveries the commit that ends a run writes, and the sender's ops.
 *
 * Writing deliveries: pg_transition_queue notes every run it moves into a final state (and
 * a submission notes a run born final) on the connection (c->webhooks, a column each);
 * store_pg_commit sends one statement for all of them in its pipeline, before COMMIT — no
 * round trip of its own, whatever ended the runs (a report, a cancel, an expired lease, an
 * upstream's failure). The statement reads each run's own URL in run_webhooks (kept until
 * the run is deleted: a run that ends again after a late report is called back again), falls
 * back on its task's webhook, and inserts a delivery due at once for those that have one.
 *
 * Several servers: a sender takes due deliveries with FOR UPDATE SKIP LOCKED and moves
 * their next_at to the end of its hold in the same statement, so no other sender takes them
 * while it calls; its retry repeats the attempt it took, so a sender whose hold ran out (and
 * whose delivery another took since) changes nothing.
 */
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

#define DELIVERY_COLUMNS "id, run_id, url, attempt, next_at, last_error, created"

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

/* --- deliveries written with the runs' ends -------------------------------------------- */

void pg_webhook_ended(struct pg_conn *c, const char *id, const char *task, const char *url,
                      int64_t at_ms)
{
    struct pg_array *col = c->webhooks;
    pg_array_text(&col[PG_WEBHOOK_RUN_ID], id);
    pg_array_text(&col[PG_WEBHOOK_TASK], task);
    pg_array_text(&col[PG_WEBHOOK_URL], url);
    pg_array_i64(&col[PG_WEBHOOK_AT], at_ms);
}

int pg_webhooks_send(struct pg_conn *c, errand_error *err)
{
    static const char sql[] =
        "WITH e AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
        "WITH ORDINALITY AS e(run_id, task, url, at, i)), "
        "own AS (SELECT w.run_id, w.url FROM run_webhooks AS w JOIN e USING (run_id)) "
        "INSERT INTO webhook_deliveries (run_id, url, next_at, created) "
        "SELECT e.run_id, coalesce(e.url, own.url, t.url), e.at, e.at FROM e "
        "LEFT JOIN own ON own.run_id = e.run_id LEFT JOIN task_webhooks AS t ON t.task = e.task "
        "WHERE coalesce(e.url, own.url, t.url) IS NOT NULL ORDER BY e.i";
    if (c->webhooks[PG_WEBHOOK_RUN_ID].n == 0)
        return 0;
    struct pg_params p = {0};
    for (int i = 0; i < PG_WEBHOOK_COLUMNS; i++) {
        int rc = pg_array_check(&c->webhooks[i], err);
        if (rc < 0)
            return rc;
        pg_p_array(&p, &c->webhooks[i]);
    }
    pg_pipeline_send(c, sql, &p, "writing webhook deliveries");
    return 0;
}

/* --- tasks' webhooks ------------------------------------------------------------------- */

struct set_op {
    const char *task, *url;
    int64_t now_ms;
    bool changed; /* a row was written (set) or deleted (removed) */
};

static int set_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql_delete[] = "DELETE FROM task_webhooks WHERE task = $1";
    /* Inserts only while fewer than $4 tasks have one, or when this one has one (updated). */
    static const char sql_upsert[] =
        "INSERT INTO task_webhooks (task, url, created, updated) SELECT $1::text, $2::text, "
        "$3::bigint, $3::bigint "
        "WHERE (SELECT count(*) FROM task_webhooks) < $4 "
        "OR EXISTS (SELECT 1 FROM task_webhooks WHERE task = $1) "
        "ON CONFLICT (task) DO UPDATE SET url = excluded.url, updated = excluded.updated";
    struct set_op *op = arg;
    struct pg_params p = {0};
    pg_p_text(&p, op->task);
    int64_t n = 0;
    int rc;
    if (!op->url) {
        rc = pg_command(c, sql_delete, &p, "removing a task's webhook", &n, err);
    } else {
        pg_p_text(&p, op->url);
        pg_p_i64(&p, op->now_ms);
        pg_p_int(&p, STORE_TASK_WEBHOOKS_MAX);
        rc = pg_command(c, sql_upsert, &p, "setting a task's webhook", &n, err);
    }
    op->changed = rc == 0 && n > 0;
    return rc;
}

int store_pg_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                         errand_error *err)
{
    struct set_op op = {task, url, now_ms, false};
    int rc = store_pg_write(store_pg_of(st), set_in_tx, &op, err);
    if (rc < 0 || op.changed)
        return rc;
    if (!url)
        return error_set(err, ERRAND_ENOTFOUND, "task", "the task '%s' has no webhook", task);
    return error_set(err, ERRAND_ECONFLICT, "task",
                     "%d tasks have a webhook, the most a store holds; remove one first",
                     STORE_TASK_WEBHOOKS_MAX);
}

static int list_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT task, url, created, updated FROM task_webhooks "
                              "ORDER BY task COLLATE \"C\" LIMIT $1";
    struct task_webhook_list *out = arg;
    task_webhook_list_clear(out); /* a re-run fills it again */
    struct pg_params p = {0};
    pg_p_int(&p, STORE_TASK_WEBHOOKS_MAX);
    PGresult *r = pg_query(c, sql, &p, "listing tasks' webhooks", err);
    if (!r)
        return ERRAND_ESTORE;
    int n = PQntuples(r), rc = 0;
    if (n > 0 && !(out->items = mem_calloc((size_t)n, sizeof *out->items)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct task_webhook *w = &out->items[out->n++];
        w->task = mem_strdup(pg_get_text(r, i, 0));
        w->url = mem_strdup(pg_get_text(r, i, 1));
        w->created = pg_get_i64(r, i, 2);
        w->updated = pg_get_i64(r, i, 3);
        if (!w->task || !w->url)
            rc = oom(err);
    }
    PQclear(r);
    if (rc < 0)
        task_webhook_list_clear(out);
    return rc;
}

int store_pg_webhook_list(store *st, struct task_webhook_list *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    return store_pg_read_single(store_pg_of(st), list_in_tx, out, err);
}

/* --- deliveries ------------------------------------------------------------------------ */

/* The rows of r (DELIVERY_COLUMNS) into *out (emptied first), owned. */
static int read_deliveries(const PGresult *r, struct webhook_delivery_list *out, errand_error *err)
{
    webhook_delivery_list_clear(out);
    int n = PQntuples(r), rc = 0;
    if (n > 0 && !(out->items = mem_calloc((size_t)n, sizeof *out->items)))
        return oom(err);
    for (int i = 0; rc == 0 && i < n; i++) {
        struct webhook_delivery *d = &out->items[out->n++];
        const char *error = pg_get_text(r, i, 5);
        d->id = pg_get_i64(r, i, 0);
        run_copy_fixed(d->run_id, sizeof d->run_id, pg_get_text(r, i, 1));
        d->url = mem_strdup(pg_get_text(r, i, 2));
        d->attempt = pg_get_int(r, i, 3);
        d->next_at = pg_get_i64(r, i, 4);
        d->last_error = error ? mem_strdup(error) : NULL;
        d->created = pg_get_i64(r, i, 6);
        if (!d->url || (error && !d->last_error))
            rc = oom(err);
    }
    if (rc < 0)
        webhook_delivery_list_clear(out);
    return rc;
}

struct deliveries_op {
    int64_t now_ms, hold_until_ms;
    int limit;
    struct webhook_delivery_list *out;
    int64_t total;
};

static int pending_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql_count[] = "SELECT count(*) FROM webhook_deliveries";
    static const char sql[] = "SELECT " DELIVERY_COLUMNS " FROM webhook_deliveries "
                              "ORDER BY next_at, id LIMIT $1";
    struct deliveries_op *op = arg;
    PGresult *r = pg_query(c, sql_count, NULL, "counting webhook deliveries", err);
    if (!r)
        return ERRAND_ESTORE;
    op->total = pg_get_i64(r, 0, 0);
    PQclear(r);
    struct pg_params p = {0};
    pg_p_int(&p, op->limit);
    if (!(r = pg_query(c, sql, &p, "listing webhook deliveries", err)))
        return ERRAND_ESTORE;
    int rc = read_deliveries(r, op->out, err);
    PQclear(r);
    return rc;
}

int store_pg_webhook_pending(store *st, int limit, struct webhook_delivery_list *out,
                             int64_t *total, errand_error *err)
{
    memset(out, 0, sizeof *out);
    *total = 0;
    struct deliveries_op op = {.limit = limit > 0 ? limit : 0, .out = out};
    int rc = store_pg_read(store_pg_of(st), pending_in_tx, &op, err);
    if (rc == 0)
        *total = op.total;
    return rc;
}

static int take_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] =
        "WITH due AS (SELECT id, next_at FROM webhook_deliveries WHERE next_at <= $1 "
        "ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), "
        "taken AS (UPDATE webhook_deliveries AS w SET attempt = w.attempt + 1, next_at = $2 "
        "FROM due WHERE w.id = due.id RETURNING w.id, w.run_id, w.url, w.attempt, w.next_at, "
        "w.last_error, w.created, due.next_at AS due_at) "
        "SELECT " DELIVERY_COLUMNS " FROM taken ORDER BY due_at, id";
    struct deliveries_op *op = arg;
    struct pg_params p = {0};
    pg_p_i64(&p, op->now_ms);
    pg_p_i64(&p, op->hold_until_ms);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "taking webhook deliveries", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = read_deliveries(r, op->out, err);
    PQclear(r);
    return rc;
}

int store_pg_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                          struct webhook_delivery_list *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    if (limit <= 0)
        return 0;
    struct deliveries_op op = {
        .now_ms = now_ms, .hold_until_ms = hold_until_ms, .limit = limit, .out = out};
    int rc = store_pg_write(store_pg_of(st), take_in_tx, &op, err);
    if (rc < 0)
        webhook_delivery_list_clear(out);
    return rc;
}

/* One statement naming one delivery. */
struct change_op {
    const char *sql, *what;
    struct pg_params p;
};

static int change_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct change_op *op = arg;
    return pg_command(c, op->sql, &op->p, op->what, NULL, err);
}

int store_pg_webhook_done(store *st, int64_t id, errand_error *err)
{
    static const char sql[] = "DELETE FROM webhook_deliveries WHERE id = $1";
    struct change_op op = {sql, "deleting a webhook delivery", {0}};
    pg_p_i64(&op.p, id);
    return store_pg_write(store_pg_of(st), change_in_tx, &op, err);
}

int store_pg_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at, const char *error,
                           errand_error *err)
{
    static const char sql[] = "UPDATE webhook_deliveries SET next_at = $3, last_error = $4 "
                              "WHERE id = $1 AND attempt = $2";
    struct change_op op = {sql, "rescheduling a webhook delivery", {0}};
    pg_p_i64(&op.p, id);
    pg_p_int(&op.p, attempt);
    pg_p_i64(&op.p, next_at);
    pg_p_text(&op.p, error);
    return store_pg_write(store_pg_of(st), change_in_tx, &op, err);
}
