/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_webhooks.c — webhooks in the SQLite store (store.h, store/webhook_row.h):
 * a run's end writes its delivery in the transaction that ends it (sqlite_webhook_run_ended,
 * called by sqlite_transition_write and by a submission born final); the tasks' webhooks
 * and the deliveries' outcomes are writes of the writer; the lists and the sender's look for
 * due deliveries are reads of the read pool, so an idle sender never takes the writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/sqlite_webhooks.h"
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

/* --- in the transaction that ends a run ------------------------------------------------ */

int sqlite_webhook_run_set(struct sqlite_conn *c, const char *run_id, const char *url,
                           errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WEBHOOK_RUN_SET, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    sqlite_bind_text(s, 2, url);
    return sqlite_conn_step_done(c, s, SQL_WEBHOOK_RUN_SET, err);
}

int sqlite_webhook_run_ended(struct sqlite_conn *c, const char *run_id, const char *task,
                             int64_t now_ms, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WEBHOOK_RUN_ENDED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    sqlite_bind_text(s, 2, task);
    sqlite3_bind_int64(s, 3, now_ms);
    return sqlite_conn_step_done(c, s, SQL_WEBHOOK_RUN_ENDED, err);
}

int sqlite_webhook_run_forget(struct sqlite_conn *c, const char *run_id, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WEBHOOK_RUN_FORGET, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    return sqlite_conn_step_done(c, s, SQL_WEBHOOK_RUN_FORGET, err);
}

/* --- the tasks' webhooks --------------------------------------------------------------- */

struct set_op {
    const char *task, *url;
    int64_t now_ms;
};

static int set_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct set_op *op = arg;
    if (!op->url) {
        sqlite3_stmt *d = sqlite_conn_stmt(c, SQL_WEBHOOK_REMOVE, err);
        if (!d)
            return ERRAND_ESTORE;
        sqlite_bind_text(d, 1, op->task);
        int rc = sqlite_conn_step_done(c, d, SQL_WEBHOOK_REMOVE, err);
        if (rc == 0 && sqlite3_changes(c->db) == 0)
            rc = error_set(err, ERRAND_ENOTFOUND, "task", "the task '%s' has no webhook", op->task);
        return rc;
    }
    sqlite3_stmt *g = sqlite_conn_stmt(c, SQL_WEBHOOK_GET, err);
    if (!g)
        return ERRAND_ESTORE;
    sqlite_bind_text(g, 1, op->task);
    int found = sqlite3_step(g);
    sqlite3_reset(g);
    if (found != SQLITE_ROW && found != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_WEBHOOK_GET", err);
    if (found == SQLITE_DONE) {
        int64_t count = 0;
        int rc = sqlite_conn_count(c, SQL_WEBHOOK_COUNT, &count, err);
        if (rc < 0)
            return rc;
        if (count >= STORE_TASK_WEBHOOKS_MAX)
            return error_set(err, ERRAND_ECONFLICT, "task",
                             "%d tasks have a webhook, the most a store holds; remove one first",
                             STORE_TASK_WEBHOOKS_MAX);
    }
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_WEBHOOK_SET, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, op->task);
    sqlite_bind_text(q, 2, op->url);
    sqlite3_bind_int64(q, 3, op->now_ms);
    return sqlite_conn_step_done(c, q, SQL_WEBHOOK_SET, err);
}

int store_sqlite_webhook_set(store *st, const char *task, const char *url, int64_t now_ms,
                             errand_error *err)
{
    struct set_op op = {task, url, now_ms};
    return sqlite_writer_run(store_sqlite_of(st)->writer, set_in_writer, &op, err);
}

int store_sqlite_webhook_list(store *st, struct task_webhook_list *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_WEBHOOK_LIST, err);
    int rc = q ? 0 : ERRAND_ESTORE, step = SQLITE_DONE;
    size_t cap = 0;
    if (q) {
        sqlite3_bind_int(q, 1, STORE_TASK_WEBHOOKS_MAX);
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            if (out->n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct task_webhook *items = mem_realloc(out->items, ncap * sizeof *items);
                if (!items) {
                    rc = oom(err);
                    break;
                }
                out->items = items, cap = ncap;
            }
            bool failed = false;
            struct task_webhook *w = &out->items[out->n++];
            w->task = dup_col(q, 0, &failed);
            w->url = dup_col(q, 1, &failed);
            w->created = sqlite3_column_int64(q, 2);
            w->updated = sqlite3_column_int64(q, 3);
            if (failed)
                rc = oom(err);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_WEBHOOK_LIST", err);
        sqlite3_reset(q);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        task_webhook_list_clear(out);
    return rc;
}

/* --- deliveries ------------------------------------------------------------------------- */

/* Runs q (bound; WEBHOOK_DELIVERY_COLUMNS) and reads up to max rows into *out. */
static int read_deliveries(struct sqlite_conn *c, sqlite3_stmt *q, const char *name, size_t max,
                           struct webhook_delivery_list *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    int rc = 0, step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->n >= max)
            continue; /* a RETURNING statement is stepped to its end all the same */
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct webhook_delivery *items = mem_realloc(out->items, ncap * sizeof *items);
            if (!items) {
                rc = oom(err);
                break;
            }
            out->items = items, cap = ncap;
        }
        struct webhook_delivery *d = &out->items[out->n++];
        memset(d, 0, sizeof *d);
        bool failed = false;
        d->id = sqlite3_column_int64(q, 0);
        const char *run = sqlite_col_text(q, 1);
        snprintf(d->run_id, sizeof d->run_id, "%s", run ? run : "");
        d->url = dup_col(q, 2, &failed);
        d->attempt = sqlite3_column_int(q, 3);
        d->next_at = sqlite3_column_int64(q, 4);
        d->last_error = dup_col(q, 5, &failed);
        d->created = sqlite3_column_int64(q, 6);
        if (failed) {
            rc = oom(err);
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, name, err);
    sqlite3_reset(q);
    if (rc < 0)
        webhook_delivery_list_clear(out);
    return rc;
}

int store_sqlite_webhook_pending(store *st, int limit, struct webhook_delivery_list *out,
                                 int64_t *total, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    memset(out, 0, sizeof *out);
    int rc = sqlite_conn_count(c, SQL_WEBHOOK_PENDING_COUNT, total, err);
    sqlite3_stmt *q = rc == 0 ? sqlite_conn_stmt(c, SQL_WEBHOOK_PENDING, err) : NULL;
    if (rc == 0 && !q)
        rc = ERRAND_ESTORE;
    if (q) {
        sqlite3_bind_int(q, 1, limit);
        rc = read_deliveries(c, q, "SQL_WEBHOOK_PENDING", (size_t)limit, out, err);
    }
    sqlite_pool_release(s->readers, c);
    return rc;
}

struct take_op {
    int64_t now_ms, hold_until_ms;
    int limit;
    struct webhook_delivery_list *out;
};

static int take_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct take_op *op = arg;
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_WEBHOOK_TAKE, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, op->now_ms);
    sqlite3_bind_int64(q, 2, op->hold_until_ms);
    sqlite3_bind_int(q, 3, op->limit);
    return read_deliveries(c, q, "SQL_WEBHOOK_TAKE", (size_t)op->limit, op->out, err);
}

static int by_id(const void *a, const void *b)
{
    int64_t x = ((const struct webhook_delivery *)a)->id;
    int64_t y = ((const struct webhook_delivery *)b)->id;
    return (x > y) - (x < y);
}

int store_sqlite_webhook_take(store *st, int64_t now_ms, int64_t hold_until_ms, int limit,
                              struct webhook_delivery_list *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    memset(out, 0, sizeof *out);
    /* The look on a reader first: a sender with nothing due costs no write. */
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_WEBHOOK_DUE, err);
    int step = SQLITE_ERROR;
    if (q) {
        sqlite3_bind_int64(q, 1, now_ms);
        step = sqlite3_step(q);
        sqlite3_reset(q);
    }
    int rc = !q ? ERRAND_ESTORE
             : step == SQLITE_ROW || step == SQLITE_DONE
                 ? 0
                 : sqlite_conn_fail(c, "SQL_WEBHOOK_DUE", err);
    sqlite_pool_release(s->readers, c);
    if (rc < 0 || step == SQLITE_DONE)
        return rc;
    struct take_op op = {now_ms, hold_until_ms, limit, out};
    rc = sqlite_writer_run(s->writer, take_in_writer, &op, err);
    if (rc < 0) {
        webhook_delivery_list_clear(out);
        return rc;
    }
    if (out->n > 1) /* RETURNING answers in no set order */
        qsort(out->items, out->n, sizeof *out->items, by_id);
    return 0;
}

struct outcome_op {
    enum sql_id id;
    int64_t delivery;
    int attempt;
    int64_t next_at;
    const char *error;
};

static int outcome_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct outcome_op *op = arg;
    sqlite3_stmt *q = sqlite_conn_stmt(c, op->id, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, op->delivery);
    if (op->id == SQL_WEBHOOK_RETRY) {
        sqlite3_bind_int(q, 2, op->attempt);
        sqlite3_bind_int64(q, 3, op->next_at);
        sqlite_bind_text(q, 4, op->error);
    }
    return sqlite_conn_step_done(c, q, op->id, err);
}

int store_sqlite_webhook_done(store *st, int64_t id, errand_error *err)
{
    struct outcome_op op = {.id = SQL_WEBHOOK_DONE, .delivery = id};
    return sqlite_writer_run(store_sqlite_of(st)->writer, outcome_in_writer, &op, err);
}

int store_sqlite_webhook_retry(store *st, int64_t id, int attempt, int64_t next_at,
                               const char *error, errand_error *err)
{
    struct outcome_op op = {.id = SQL_WEBHOOK_RETRY,
                            .delivery = id,
                            .attempt = attempt,
                            .next_at = next_at,
                            .error = error};
    return sqlite_writer_run(store_sqlite_of(st)->writer, outcome_in_writer, &op, err);
}
