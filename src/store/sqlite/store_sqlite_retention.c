/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_retention.c — deleting what expired (store_delete_expired): final runs that
 * finished long enough ago, with everything that hangs off them, and workers not seen for
 * long.
 *
 * One pass is one writer op of at most `limit` runs, so it holds the writer for a bounded
 * time and other writes interleave with a long clean-up; the caller repeats passes. A run
 * goes with its state history, its logs and its tags (read from the run's own tag list, so
 * each tag row is one primary-key delete), and run_counts is kept in step. The result
 * reference of a deleted run is handed back only when no run still points at it: a cached
 * copy shares its source's reference, and the file must outlive the source while a copy
 * stands.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "store/sqlite/sqlite_transition.h"
#include "store/sqlite/sqlite_webhooks.h"
#include "store/sqlite/store_sqlite.h"

struct expired_run {
    sqlite3_int64 rowid;
    char id[UUID_STR_LEN];
    errand_state state;
    char *tags;       /* JSON array text */
    char *result_ref; /* NULL when none */
    char *task;
    char *message; /* FAILED or CRASHED runs: their state message, for their failure group */
};

struct retention_op {
    int64_t finished_before;
    int64_t workers_seen_before;
    int limit;
    struct expired_run *runs; /* room for limit */
    size_t n_runs;
    struct ref_list freed; /* built inside the op */
    int workers;
};

/* Empties what an earlier attempt of the op found, keeping the arrays. */
static void expired_clear(struct retention_op *op)
{
    for (size_t i = 0; i < op->n_runs; i++) {
        mem_free(op->runs[i].tags);
        mem_free(op->runs[i].result_ref);
        mem_free(op->runs[i].task);
        mem_free(op->runs[i].message);
    }
    op->n_runs = 0;
    for (size_t i = 0; i < op->freed.n; i++)
        mem_free(op->freed.refs[i]);
    op->freed.n = 0;
    op->workers = 0;
}

/* Copies the current row of s (SQL_EXPIRED_RUNS or SQL_RUN_DELETABLE columns) into r. */
static int read_deletable(sqlite3_stmt *s, struct expired_run *r, errand_error *err)
{
    memset(r, 0, sizeof *r);
    r->rowid = sqlite3_column_int64(s, 0);
    snprintf(r->id, sizeof r->id, "%s", sqlite_col_text(s, 1) ? sqlite_col_text(s, 1) : "");
    r->state = (errand_state)sqlite3_column_int(s, 2);
    const char *tags = sqlite_col_text(s, 3), *ref = sqlite_col_text(s, 4);
    r->tags = tags && strcmp(tags, "[]") != 0 ? mem_strdup(tags) : NULL;
    r->result_ref = ref ? mem_strdup(ref) : NULL;
    r->task = mem_strdup(sqlite_col_text(s, 5) ? sqlite_col_text(s, 5) : "");
    bool failed = r->state == ERRAND_STATE_FAILED || r->state == ERRAND_STATE_CRASHED;
    const char *message = sqlite_col_text(s, 6) ? sqlite_col_text(s, 6) : "";
    r->message = failed ? mem_strdup(message) : NULL;
    if ((tags && strcmp(tags, "[]") != 0 && !r->tags) || (ref && !r->result_ref) || !r->task ||
        (failed && !r->message))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

/* Reads the oldest expired runs (copying what the deletion needs). */
static int find_expired(struct sqlite_conn *c, struct retention_op *op, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_EXPIRED_RUNS, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, op->finished_before);
    sqlite3_bind_int(s, 2, op->limit);
    int step, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = read_deletable(s, &op->runs[op->n_runs++], err);
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, "SQL_EXPIRED_RUNS", err);
    sqlite3_reset(s);
    return rc;
}

static int delete_by_run(struct sqlite_conn *c, enum sql_id id, const char *run_id,
                         errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    return sqlite_conn_step_done(c, s, id, err);
}

static int delete_tags(struct sqlite_conn *c, const struct expired_run *r, errand_error *err)
{
    if (!r->tags)
        return 0;
    json_t *tags = json_loads(r->tags, 0, NULL);
    if (!json_is_array(tags)) { /* stored by us as an array of strings: damaged, or no memory */
        json_decref(tags);
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the stored tags of run %s are not a "
                         "JSON array",
                         r->id);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(tags); i++) {
        const char *tag = json_string_value(json_array_get(tags, i));
        sqlite3_stmt *s = tag ? sqlite_conn_stmt(c, SQL_TAG_DELETE, err) : NULL;
        if (!tag)
            continue;
        if (!s) {
            rc = ERRAND_ESTORE;
            break;
        }
        sqlite_bind_text(s, 1, tag);
        sqlite_bind_text(s, 2, r->id);
        rc = sqlite_conn_step_done(c, s, SQL_TAG_DELETE, err);
    }
    json_decref(tags);
    return rc;
}

static int delete_run(struct sqlite_conn *c, const struct expired_run *r, int64_t now_ms,
                      struct run_count_delta *counts, errand_error *err)
{
    int rc;
    if ((rc = delete_by_run(c, SQL_STATES_DELETE, r->id, err)) < 0 ||
        (rc = delete_by_run(c, SQL_LOGS_DELETE, r->id, err)) < 0 ||
        (rc = delete_tags(c, r, err)) < 0)
        return rc;
    if ((rc = sqlite_webhook_run_forget(c, r->id, err)) < 0) /* its own webhook URL */
        return rc;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_DELETE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, r->rowid);
    if ((rc = sqlite_conn_step_done(c, s, SQL_RUN_DELETE, err)) < 0)
        return rc;
    if (r->message && (rc = sqlite_failure_remove(c, r->task, r->message, err)) < 0)
        return rc;
    return run_count_remove(c, counts, r->task, r->state, now_ms, err);
}

static int ref_used(struct sqlite_conn *c, const char *ref, bool *used, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RESULT_REF_USED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, ref);
    int step = sqlite3_step(s);
    *used = step == SQLITE_ROW;
    sqlite3_reset(s);
    return step == SQLITE_ROW || step == SQLITE_DONE
               ? 0
               : sqlite_conn_fail(c, "SQL_RESULT_REF_USED", err);
}

/* After the deletions: the references of deleted runs that no run holds any more, each once. */
static int collect_freed(struct sqlite_conn *c, struct retention_op *op, errand_error *err)
{
    for (size_t i = 0; i < op->n_runs; i++) {
        const char *ref = op->runs[i].result_ref;
        if (!ref)
            continue;
        bool seen = false;
        for (size_t j = 0; j < op->freed.n && !seen; j++)
            seen = strcmp(op->freed.refs[j], ref) == 0;
        bool used = false;
        int rc = seen ? 0 : ref_used(c, ref, &used, err);
        if (rc < 0)
            return rc;
        if (seen || used)
            continue;
        if (!(op->freed.refs[op->freed.n] = mem_strdup(ref)))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        op->freed.n++;
    }
    return 0;
}

static int prune_workers(struct sqlite_conn *c, struct retention_op *op, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WORKERS_PRUNE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, op->workers_seen_before);
    sqlite3_bind_int(s, 2, op->limit);
    int rc = sqlite_conn_step_done(c, s, SQL_WORKERS_PRUNE, err);
    if (rc == 0)
        op->workers = sqlite3_changes(c->db);
    return rc;
}

static int retention_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct retention_op *op = arg;
    expired_clear(op);
    struct run_count_delta counts = {0};
    int64_t now_ms = clock_now_ms(); /* minutes are only counted for runs that finish */
    int rc = 0;
    if (op->finished_before > 0 && (rc = find_expired(c, op, err)) < 0)
        return rc;
    for (size_t i = 0; i < op->n_runs; i++)
        if ((rc = delete_run(c, &op->runs[i], now_ms, &counts, err)) < 0)
            return rc;
    if ((rc = sqlite_counts_apply(c, &counts, now_ms, err)) < 0 ||
        (rc = collect_freed(c, op, err)) < 0)
        return rc;
    if (op->workers_seen_before > 0 && (rc = prune_workers(c, op, err)) < 0)
        return rc;
    return 0;
}

struct delete_ids_op {
    const char *const *ids;
    size_t n;
    struct retention_op base; /* runs (room for n), freed: as retention fills them */
    int deleted;
};

/* Deletes the runs of op->ids that are final (the others are left as they are). */
static int delete_ids_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct delete_ids_op *op = arg;
    expired_clear(&op->base);
    op->deleted = 0;
    struct run_count_delta counts = {0};
    int64_t now_ms = clock_now_ms();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < op->n; i++) {
        char norm[UUID_STR_LEN];
        run_id_norm(op->ids[i], norm);
        bool seen = false; /* an id given twice is deleted (and counted) once */
        for (size_t j = 0; j < op->base.n_runs && !seen; j++)
            seen = strcmp(op->base.runs[j].id, norm) == 0;
        if (seen)
            continue;
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_DELETABLE, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, norm);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW)
            rc = read_deletable(s, &op->base.runs[op->base.n_runs++], err);
        else if (step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_RUN_DELETABLE", err);
        sqlite3_reset(s);
    }
    for (size_t i = 0; rc == 0 && i < op->base.n_runs; i++)
        if ((rc = delete_run(c, &op->base.runs[i], now_ms, &counts, err)) == 0)
            op->deleted++;
    if (rc == 0 && (rc = sqlite_counts_apply(c, &counts, now_ms, err)) == 0)
        rc = collect_freed(c, &op->base, err);
    return rc;
}

int store_sqlite_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                             struct ref_list *freed, errand_error *err)
{
    struct delete_ids_op op = {.ids = ids, .n = n};
    *deleted = 0;
    freed->refs = NULL;
    freed->n = 0;
    op.base.runs = mem_calloc(n ? n : 1, sizeof *op.base.runs);
    op.base.freed.refs = mem_calloc(n ? n : 1, sizeof *op.base.freed.refs);
    if (!op.base.runs || !op.base.freed.refs) {
        mem_free(op.base.runs);
        mem_free(op.base.freed.refs);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int rc = sqlite_writer_run(store_sqlite_of(st)->writer, delete_ids_in_writer, &op, err);
    if (rc == 0) {
        *deleted = op.deleted;
        *freed = op.base.freed;
        op.base.freed = (struct ref_list){0};
    }
    expired_clear(&op.base);
    mem_free(op.base.freed.refs);
    mem_free(op.base.runs);
    return rc;
}

int store_sqlite_delete_expired(store *st, int64_t finished_before_ms,
                                int64_t workers_seen_before_ms, int limit,
                                struct retention_counts *counts, struct ref_list *freed,
                                errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    if (counts)
        *counts = (struct retention_counts){0, 0};
    freed->refs = NULL;
    freed->n = 0;
    if (limit < 1)
        return error_set(err, ERRAND_EINVAL, "limit", "a retention pass needs a limit >= 1");
    if (finished_before_ms <= 0 && workers_seen_before_ms <= 0)
        return 0;
    struct retention_op op = {
        .finished_before = finished_before_ms,
        .workers_seen_before = workers_seen_before_ms,
        .limit = limit,
    };
    op.runs = mem_calloc((size_t)limit, sizeof *op.runs);
    op.freed.refs = mem_calloc((size_t)limit, sizeof *op.freed.refs);
    if (!op.runs || !op.freed.refs) {
        mem_free(op.runs);
        mem_free(op.freed.refs);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int rc = sqlite_writer_run(s->writer, retention_in_writer, &op, err);
    if (rc == 0) {
        if (counts)
            *counts = (struct retention_counts){(int)op.n_runs, op.workers};
        *freed = op.freed;
        op.freed = (struct ref_list){0};
    }
    expired_clear(&op);
    mem_free(op.freed.refs);
    mem_free(op.runs);
    return rc;
}
