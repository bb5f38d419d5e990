/* SPDX-License-Identifier: MIT */
/*
 * store_pg_retention.c — deleting what expired in the PostgreSQL store (store_delete_expired,
 * store_delete_runs): final runs that finished long enough ago, or that were named, with
 * everything that hangs off them, and workers not seen for long. A port of
 * store_sqlite_retention.c, with the same semantics.
 *
 * One pass is one transaction of at most `limit` runs; the caller repeats passes. A run goes
 * with its state history, its logs and its tags (read from the run's own tag list, so each
 * tag row is one primary-key delete), and the counters are kept in step (delta rows, see
 * pg_schema.c). Each kind of row is deleted for all the runs of the pass in one statement
 * (an array parameter): one round trip per kind instead of one per run.
 *
 * Several servers may run retention on the same database at once:
 *  - a pass takes its runs with FOR UPDATE SKIP LOCKED: two passes never take the same run,
 *    so a deletion is counted (run_counts, task_counts, failure_groups) once, and a run that
 *    some other transaction holds (a state change, a cache hit reading it) is left for a
 *    later pass. store_delete_runs names its runs, so it waits for their locks instead (in id
 *    order) and re-reads them: a run deleted meanwhile is not counted again, one no longer
 *    final is left;
 *  - a result reference is handed back only when no run still points at it: a cached copy
 *    shares its source's reference. Two transactions deleting the last two holders of one
 *    reference would each still see the other's (uncommitted) holder and neither would free
 *    it, so the check for a reference runs under a transaction-scoped advisory lock on it,
 *    taken after the deletions: the second one to take it checks after the first committed,
 *    and sees its deletion. The locks are taken in one statement, in key order (no deadlock
 *    between passes).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

/* The class (first key) of the advisory locks on result references: "refs". */
#define REF_LOCK_CLASS "1919247987"

/* The columns a deletion needs, in the order read_deletable reads them. */
#define DELETABLE_COLUMNS "id, state_type, tags, result_ref, task, state_message"

struct expired_run {
    char id[UUID_STR_LEN];
    errand_state state;
    char *tags;       /* JSON array text; NULL when none */
    char *result_ref; /* NULL when none */
    char *task;
    char *message; /* FAILED or CRASHED runs: their state message, for their failure group */
};

struct retention_op {
    int64_t finished_before;
    int64_t workers_seen_before;
    int limit;
    struct expired_run *runs; /* room for cap */
    size_t cap;
    size_t n_runs;
    struct ref_list freed; /* built inside the op; room for cap */
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

/* --- finding the runs ----------------------------------------------------------------- */

/* Copies row `row` of r (DELETABLE_COLUMNS) into out. */
static int read_deletable(const PGresult *r, int row, struct expired_run *out, errand_error *err)
{
    memset(out, 0, sizeof *out);
    const char *id = pg_get_text(r, row, 0);
    snprintf(out->id, sizeof out->id, "%s", id ? id : "");
    out->state = (errand_state)pg_get_int(r, row, 1);
    const char *tags = pg_get_text(r, row, 2), *ref = pg_get_text(r, row, 3);
    const char *task = pg_get_text(r, row, 4), *message = pg_get_text(r, row, 5);
    bool has_tags = tags && strcmp(tags, "[]") != 0;
    out->tags = has_tags ? mem_strdup(tags) : NULL;
    out->result_ref = ref ? mem_strdup(ref) : NULL;
    out->task = mem_strdup(task ? task : "");
    bool failed = out->state == ERRAND_STATE_FAILED || out->state == ERRAND_STATE_CRASHED;
    out->message = failed ? mem_strdup(message ? message : "") : NULL;
    if ((has_tags && !out->tags) || (ref && !out->result_ref) || !out->task ||
        (failed && !out->message))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    return 0;
}

/* Adds the rows of r to op->runs (up to its room). */
static int read_all_deletable(const PGresult *r, struct retention_op *op, errand_error *err)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && op->n_runs < op->cap; i++)
        rc = read_deletable(r, i, &op->runs[op->n_runs++], err);
    return rc;
}

/* Takes the oldest expired runs no other transaction holds, locking them. */
static int find_expired(struct pg_conn *c, struct retention_op *op, errand_error *err)
{
    static const char sql[] = "SELECT " DELETABLE_COLUMNS " FROM task_runs "
                              "WHERE finished IS NOT NULL AND finished < $1 "
                              "ORDER BY finished LIMIT $2 FOR UPDATE SKIP LOCKED";
    struct pg_params p = {0};
    pg_p_i64(&p, op->finished_before);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "finding expired runs", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = read_all_deletable(r, op, err);
    PQclear(r);
    return rc;
}

/* --- deleting them -------------------------------------------------------------------- */

/* Appends the (tag, run id) pairs of r's tags to tags and run_ids. */
static int add_tags(const struct expired_run *r, struct pg_array *tags, struct pg_array *run_ids,
                    errand_error *err)
{
    if (!r->tags)
        return 0;
    json_t *list = json_loads(r->tags, 0, NULL);
    if (!json_is_array(list)) { /* stored by us as an array of strings: damaged, or no memory */
        json_decref(list);
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the stored tags of run %s are not a "
                         "JSON array",
                         r->id);
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *tag = json_string_value(json_array_get(list, i));
        if (!tag)
            continue;
        pg_array_text(tags, tag);
        pg_array_text(run_ids, r->id);
    }
    json_decref(list);
    return 0;
}

/* Deletes the n runs of runs (locked by this transaction) with their history, logs and tags,
 * and takes them out of the counters and failure groups. */
static int delete_runs_rows(struct pg_conn *c, const struct expired_run *runs, size_t n,
                            int64_t now_ms, errand_error *err)
{
    static const char sql_states[] = "DELETE FROM task_run_states WHERE run_id = ANY($1::text[])";
    static const char sql_logs[] = "DELETE FROM task_run_logs WHERE run_id = ANY($1::text[])";
    static const char sql_tags[] =
        "DELETE FROM task_run_tags AS t USING unnest($1::text[], $2::text[]) AS d(tag, run_id) "
        "WHERE t.tag = d.tag AND t.run_id = d.run_id";
    /* with their own webhook URLs (kept until the run is deleted) */
    static const char sql_runs[] =
        "WITH w AS (DELETE FROM run_webhooks WHERE run_id = ANY($1::text[])) "
        "DELETE FROM task_runs WHERE id = ANY($1::text[])";
    if (n == 0)
        return 0;
    struct pg_array ids = {0}, tags = {0}, tag_runs = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pg_array_text(&ids, runs[i].id);
        rc = add_tags(&runs[i], &tags, &tag_runs, err);
    }
    if (rc == 0 && (rc = pg_array_check(&ids, err)) == 0 && (rc = pg_array_check(&tags, err)) == 0)
        rc = pg_array_check(&tag_runs, err);
    struct pg_params p = {0};
    pg_p_array(&p, &ids);
    if (rc == 0)
        rc = pg_command(c, sql_states, &p, "deleting run states", NULL, err);
    if (rc == 0)
        rc = pg_command(c, sql_logs, &p, "deleting run logs", NULL, err);
    if (rc == 0 && tags.n > 0) {
        struct pg_params q = {0};
        pg_p_array(&q, &tags);
        pg_p_array(&q, &tag_runs);
        rc = pg_command(c, sql_tags, &q, "deleting run tags", NULL, err);
    }
    if (rc == 0)
        rc = pg_command(c, sql_runs, &p, "deleting runs", NULL, err);
    pg_array_free(&ids);
    pg_array_free(&tags);
    pg_array_free(&tag_runs);
    struct run_count_delta counts = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (runs[i].message && (rc = pg_failure_remove(c, runs[i].task, runs[i].message, err)) < 0)
            break;
        rc = pg_count_remove(c, &counts, runs[i].task, runs[i].state, now_ms, err);
    }
    if (rc == 0)
        rc = pg_counts_apply(c, &counts, now_ms, err);
    return rc;
}

/* After the deletions: the references of deleted runs that no run holds any more, each once.
 * Each reference is checked under its advisory lock (see the top of the file). */
static int collect_freed(struct pg_conn *c, struct retention_op *op, errand_error *err)
{
    static const char sql_lock[] =
        "SELECT count(pg_advisory_xact_lock(" REF_LOCK_CLASS ", h)) FROM (SELECT DISTINCT "
        "hashtext(ref) AS h FROM unnest($1::text[]) AS u(ref) ORDER BY h) AS d";
    static const char sql_used[] =
        "SELECT u.ref FROM unnest($1::text[]) AS u(ref) CROSS JOIN LATERAL "
        "(SELECT 1 FROM task_runs WHERE result_ref = u.ref LIMIT 1) AS holder";
    /* the distinct references, into op->freed (then those still used are taken out) */
    for (size_t i = 0; i < op->n_runs; i++) {
        const char *ref = op->runs[i].result_ref;
        if (!ref)
            continue;
        bool seen = false;
        for (size_t j = 0; j < op->freed.n && !seen; j++)
            seen = strcmp(op->freed.refs[j], ref) == 0;
        if (seen)
            continue;
        if (!(op->freed.refs[op->freed.n] = mem_strdup(ref)))
            return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        op->freed.n++;
    }
    if (op->freed.n == 0)
        return 0;
    struct pg_array refs = {0};
    for (size_t i = 0; i < op->freed.n; i++)
        pg_array_text(&refs, op->freed.refs[i]);
    int rc = pg_array_check(&refs, err);
    struct pg_params p = {0};
    pg_p_array(&p, &refs);
    PGresult *r = NULL;
    /* two statements: the check must see what committed while this one waited for a lock */
    if (rc == 0)
        rc = pg_command(c, sql_lock, &p, "locking result references", NULL, err);
    if (rc == 0 && !(r = pg_query(c, sql_used, &p, "finding used result references", err)))
        rc = ERRAND_ESTORE;
    pg_array_free(&refs);
    if (rc < 0)
        return rc;
    size_t kept = 0;
    for (size_t i = 0; i < op->freed.n; i++) {
        bool used = false;
        for (int j = 0; j < PQntuples(r) && !used; j++) {
            const char *u = pg_get_text(r, j, 0);
            used = u && strcmp(u, op->freed.refs[i]) == 0;
        }
        if (used)
            mem_free(op->freed.refs[i]);
        else
            op->freed.refs[kept++] = op->freed.refs[i];
    }
    op->freed.n = kept;
    PQclear(r);
    return 0;
}

/* Deletes up to limit workers not seen since workers_seen_before (skipping those another
 * transaction is updating: they are being seen). */
static int prune_workers(struct pg_conn *c, struct retention_op *op, errand_error *err)
{
    static const char sql[] =
        "DELETE FROM workers WHERE name IN (SELECT name FROM workers WHERE last_seen < $1 "
        "ORDER BY last_seen LIMIT $2 FOR UPDATE SKIP LOCKED)";
    struct pg_params p = {0};
    pg_p_i64(&p, op->workers_seen_before);
    pg_p_int(&p, op->limit);
    int64_t n = 0;
    int rc = pg_command(c, sql, &p, "pruning workers", &n, err);
    if (rc == 0)
        op->workers = (int)n;
    return rc;
}

static int retention_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct retention_op *op = arg;
    expired_clear(op);
    int64_t now_ms = clock_now_ms(); /* minutes are only counted for runs that finish */
    int rc = 0;
    if (op->finished_before > 0 && (rc = find_expired(c, op, err)) < 0)
        return rc;
    if ((rc = delete_runs_rows(c, op->runs, op->n_runs, now_ms, err)) < 0 ||
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
static int delete_ids_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    /* Waits for the runs' locks, in id order, and reads them again once it has them: a run
       deleted meanwhile is not there, one no longer final is not taken. An id given twice is
       one row: deleted (and counted) once. */
    static const char sql[] = "SELECT " DELETABLE_COLUMNS " FROM task_runs "
                              "WHERE id = ANY($1::text[]) AND state_type IN (3, 4, 5, 7) "
                              "ORDER BY id FOR UPDATE";
    struct delete_ids_op *op = arg;
    expired_clear(&op->base);
    op->deleted = 0;
    int64_t now_ms = clock_now_ms();
    struct pg_array ids = {0};
    for (size_t i = 0; i < op->n; i++) {
        char norm[UUID_STR_LEN];
        run_id_norm(op->ids[i], norm);
        pg_array_text(&ids, norm);
    }
    int rc = pg_array_check(&ids, err);
    PGresult *r = NULL;
    if (rc == 0) {
        struct pg_params p = {0};
        pg_p_array(&p, &ids);
        if (!(r = pg_query(c, sql, &p, "finding runs to delete", err)))
            rc = ERRAND_ESTORE;
    }
    pg_array_free(&ids);
    if (rc == 0)
        rc = read_all_deletable(r, &op->base, err);
    PQclear(r);
    if (rc == 0 && (rc = delete_runs_rows(c, op->base.runs, op->base.n_runs, now_ms, err)) == 0)
        op->deleted = (int)op->base.n_runs;
    if (rc == 0)
        rc = collect_freed(c, &op->base, err);
    return rc;
}

int store_pg_delete_runs(store *st, const char *const *ids, size_t n, int *deleted,
                         struct ref_list *freed, errand_error *err)
{
    struct delete_ids_op op = {.ids = ids, .n = n};
    *deleted = 0;
    freed->refs = NULL;
    freed->n = 0;
    op.base.cap = n;
    op.base.runs = mem_calloc(n ? n : 1, sizeof *op.base.runs);
    op.base.freed.refs = mem_calloc(n ? n : 1, sizeof *op.base.freed.refs);
    if (!op.base.runs || !op.base.freed.refs) {
        mem_free(op.base.runs);
        mem_free(op.base.freed.refs);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int rc = n ? store_pg_write(store_pg_of(st), delete_ids_in_tx, &op, err) : 0;
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

int store_pg_delete_expired(store *st, int64_t finished_before_ms, int64_t workers_seen_before_ms,
                            int limit, struct retention_counts *counts, struct ref_list *freed,
                            errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
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
        .cap = (size_t)limit,
    };
    op.runs = mem_calloc((size_t)limit, sizeof *op.runs);
    op.freed.refs = mem_calloc((size_t)limit, sizeof *op.freed.refs);
    if (!op.runs || !op.freed.refs) {
        mem_free(op.runs);
        mem_free(op.freed.refs);
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    }
    int rc = store_pg_write(s, retention_in_tx, &op, err);
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
