/* SPDX-License-Identifier: MIT */
/*
 * store_pg_worker.c — the worker protocol on the PostgreSQL store: heartbeat and the lease
 * sweep (the claim is store_pg_claim.c, the report store_pg_report.c), with the semantics of
 * the SQLite store (store_sqlite_worker.c explains them: lease checks, resumed leases,
 * redeliveries, reports sent again). A heartbeat and a sweep each write their runs with one
 * statement (UPDATE ... FROM unnest(...)), not one per run. What differs from SQLite is how
 * several servers stay out of each other's way:
 *
 *  - a report, a hand-back or a resumed lease locks its run first (FOR UPDATE), and the
 *    transition's UPDATE repeats the lease token it was planned from (pg_transition.c);
 *  - a heartbeat extends its leases with `AND lease_token = u.token` in the UPDATE;
 *  - the sweep takes expired leases with FOR UPDATE SKIP LOCKED, so sweepers on every
 *    server share the work and never expire a lease twice (and writes them as one batch);
 *  - heartbeats that say a run waits for its subtasks lend its limit slots (pg_limits.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "store/postgres/pg_limits.h"
#include "store/postgres/store_pg.h"

#define SWEEP_BATCH 256 /* leases expired per transaction */
#define REPORT_BATCH_MEMORY_MS (60LL * 60 * 1000)
#define PRUNE_BATCH 2000
#define LEASE_KEEP_NUM 3
#define LEASE_KEEP_DEN 4
#define LEASE_EXPIRED_FMT "lease expired on worker %s"
#define RESUMED_FMT "lease resumed by worker %s after it expired; the run was not claimed again"
#define MESSAGE_MAX 512

/* --- leases resumed after they ran out -------------------------------------------------- */

int pg_lease_resume(struct pg_conn *c, struct pg_transitions *t, struct run_current *cur,
                    const char *token, const char *worker, int64_t now_ms, int64_t lease_expires,
                    struct run_count_delta *counts, errand_error *err)
{
    struct state_decision d = state_on_lease_resumed(cur->state, cur->started != 0);
    struct run_update u;
    run_transition_plan(cur, &d, now_ms, &u);
    u.attempt = cur->attempt + 1;
    u.redeliveries = cur->redeliveries > 0 ? cur->redeliveries - 1 : 0;
    u.lease_token = token;
    u.lease_expires = lease_expires;
    char message[MESSAGE_MAX];
    snprintf(message, sizeof message, RESUMED_FMT, worker && worker[0] ? worker : "?");
    u.message = message;
    int rc = t ? pg_transition_queue(c, t, cur, &u, now_ms, counts, err)
               : pg_transition_write(c, cur, &u, now_ms, counts, err);
    if (rc < 0)
        return rc;
    cur->state = d.next;
    cur->state_timestamp = now_ms;
    cur->n_states++;
    cur->attempt = u.attempt;
    cur->redeliveries = u.redeliveries;
    cur->lease_expires = lease_expires;
    snprintf(cur->lease_token, sizeof cur->lease_token, "%s", token);
    return 0;
}

/* Not an upsert: INSERT ... ON CONFLICT DO UPDATE locks the worker's row even when its
 * WHERE says there is nothing to update, so every report and heartbeat would wait for the
 * worker's other transactions (its claims) to commit. An UPDATE whose WHERE is false takes
 * no lock, nor does DO NOTHING on a committed row. */
int pg_worker_seen(struct pg_conn *c, const char *worker, int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "WITH seen AS (UPDATE workers SET last_seen = $2 "
        "WHERE name = $1 AND last_seen < $2::bigint - $3 RETURNING 1) "
        "INSERT INTO workers (name, tasks, last_seen, claimed) SELECT $1, '[]', $2, 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM workers WHERE name = $1) ON CONFLICT (name) DO NOTHING";
    if (!worker || !worker[0])
        return 0;
    struct pg_params p = {0};
    pg_p_text(&p, worker);
    pg_p_i64(&p, now_ms);
    pg_p_int(&p, STORE_PG_WORKER_SEEN_MS);
    return pg_defer(c, sql, &p, "recording a worker", err);
}

/* --- heartbeat ------------------------------------------------------------------------ */

struct heartbeat_op {
    const char *worker;
    const struct lease_ref *leases;
    size_t n;
    int64_t now_ms;
    int64_t lease_expires;
    int64_t extend_below;
    char (*ids)[UUID_STR_LEN];
    struct lease_answer *out;
};

static int heartbeat_resume(struct pg_conn *c, struct heartbeat_op *op, size_t i,
                            struct run_count_delta *counts, errand_error *err)
{
    struct run_current cur;
    int rc = pg_run_current_get(c, op->ids[i], false, true, &cur, err);
    if (rc < 0)
        return rc == ERRAND_ENOTFOUND ? 0 : rc;
    const char *token = op->leases[i].lease_token;
    if (!run_expired_lease_of(&cur, token))
        return 0; /* stale after all */
    if ((rc = pg_lease_resume(c, NULL, &cur, token, op->worker, op->now_ms, op->lease_expires,
                              counts, err)) < 0)
        return rc;
    op->out[i].status = LEASE_APPLIED;
    op->out[i].state = cur.state;
    return 0;
}

/* The state, lease token and ended_by of the runs ids[0..n), in id order (C collation). */
static int read_leases(struct pg_conn *c, const char (*ids)[UUID_STR_LEN], size_t n, PGresult **out,
                       errand_error *err)
{
    static const char sql[] = "SELECT id, state_type, lease_token, ended_by FROM task_runs "
                              "WHERE id = ANY($1) ORDER BY id COLLATE \"C\"";
    struct pg_array arr = {0};
    for (size_t i = 0; i < n; i++)
        pg_array_text(&arr, ids[i]);
    int rc = pg_array_check(&arr, err);
    struct pg_params p = {0};
    pg_p_array(&p, &arr);
    if (rc == 0 && !(*out = pg_query(c, sql, &p, "checking leases", err)))
        rc = ERRAND_ESTORE;
    pg_array_free(&arr);
    return rc;
}

/* The row of run id in r (read_leases), -1 when none. */
static int lease_row(const PGresult *r, const char *id)
{
    int lo = 0, hi = PQntuples(r) - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int cmp = strcmp(id, PQgetvalue(r, mid, 0));
        if (cmp == 0)
            return mid;
        if (cmp < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* Answers lease i from its run's row (-1: no such run); whether the lease is to be resumed. */
static bool check_lease(struct heartbeat_op *op, size_t i, const PGresult *r, int row)
{
    struct lease_answer *o = &op->out[i];
    memset(o, 0, sizeof *o);
    o->status = LEASE_UNKNOWN;
    if (row < 0)
        return false;
    const char *given = op->leases[i].lease_token;
    o->state = (errand_state)pg_get_int(r, row, 1);
    bool match = state_is_leased(o->state) && token_equal(pg_get_text(r, row, 2), given);
    o->status = match ? LEASE_APPLIED : LEASE_STALE;
    o->cancel = match && o->state == ERRAND_STATE_CANCELLING;
    const char *ended = pg_get_text(r, row, 3);
    return !match && o->state == ERRAND_STATE_SCHEDULED && ended && given &&
           strlen(ended) > strlen(given);
}

/* Whether a lease before i resumed the run of lease i (which then must be read again). */
static bool resumed_before(const struct heartbeat_op *op, const bool *resumed, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (resumed[k] && strcmp(op->ids[k], op->ids[i]) == 0)
            return true;
    return false;
}

/* Answers lease i, resuming it when it ran out; an applied lease to extend goes to ext. */
static int heartbeat_one(struct pg_conn *c, struct heartbeat_op *op, size_t i, const PGresult *all,
                         bool *resumed, struct pg_array ext[2], struct run_count_delta *counts,
                         errand_error *err)
{
    PGresult *again = NULL;
    const PGresult *r = all;
    int rc = 0;
    if (resumed_before(op, resumed, i)) {
        if ((rc = read_leases(c, &op->ids[i], 1, &again, err)) < 0)
            return rc;
        r = again;
    }
    bool resume = check_lease(op, i, r, lease_row(r, op->ids[i]));
    PQclear(again);
    if (resume) {
        rc = heartbeat_resume(c, op, i, counts, err);
        resumed[i] = rc == 0 && op->out[i].status == LEASE_APPLIED;
    } else if (op->out[i].status == LEASE_APPLIED) {
        pg_array_text(&ext[0], op->ids[i]);
        pg_array_text(&ext[1], op->leases[i].lease_token);
    }
    return rc;
}

/* Extends the leases in ext (ids, tokens) that are due for it, with one UPDATE. */
static int extend_leases(struct pg_conn *c, const struct heartbeat_op *op, struct pg_array ext[2],
                         errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET lease_expires = $1 FROM unnest($3::text[], $4::text[]) AS "
        "u(id, token) WHERE task_runs.id = u.id AND task_runs.lease_token = u.token "
        "AND task_runs.lease_expires < $2";
    if (ext[0].n == 0)
        return 0;
    int rc = pg_array_check(&ext[0], err);
    if (rc == 0)
        rc = pg_array_check(&ext[1], err);
    if (rc < 0)
        return rc;
    struct pg_params p = {0};
    pg_p_i64(&p, op->lease_expires);
    pg_p_i64(&p, op->extend_below);
    pg_p_array(&p, &ext[0]);
    pg_p_array(&p, &ext[1]);
    return pg_command(c, sql, &p, "extending leases", NULL, err);
}

/* Reads all the leases' runs at once, answers each in order, then extends the applied ones
 * with one UPDATE. Extending changes nothing the checks read; a resume does, so a run
 * resumed by an earlier lease is read again. */
static int heartbeat_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct heartbeat_op *op = arg;
    struct run_count_delta counts = {0};
    struct pg_array ext[2] = {{0}};
    PGresult *all = NULL;
    bool *resumed = mem_calloc(op->n ? op->n : 1, sizeof *resumed);
    int rc = resumed ? 0 : error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (rc == 0 && op->n > 0)
        rc = read_leases(c, op->ids, op->n, &all, err);
    for (size_t i = 0; rc == 0 && i < op->n; i++)
        rc = heartbeat_one(c, op, i, all, resumed, ext, &counts, err);
    if (rc == 0)
        rc = extend_leases(c, op, ext, err);
    if (rc == 0) /* runs waiting for subtasks lend their limits' slots (pg_limits.c) */
        rc = pg_limits_heartbeat(c, op->leases, op->ids, op->out, op->n, op->now_ms, err);
    PQclear(all);
    pg_array_free(&ext[0]);
    pg_array_free(&ext[1]);
    mem_free(resumed);
    if (rc == 0)
        rc = pg_counts_defer(c, &counts, op->now_ms, err);
    return rc < 0 ? rc : pg_worker_seen(c, op->worker, op->now_ms, err);
}

int store_pg_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                       int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                       errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
    int64_t lease = store_pg_lease_ms(s, lease_seconds);
    struct heartbeat_op op = {
        .worker = worker,
        .leases = leases,
        .n = n,
        .now_ms = now_ms,
        .lease_expires = now_ms + lease,
        .extend_below = now_ms + lease * LEASE_KEEP_NUM / LEASE_KEEP_DEN,
        .out = answers,
    };
    if (!(op.ids = mem_calloc(n ? n : 1, sizeof *op.ids)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        run_id_norm(leases[i].id, op.ids[i]);
    int rc = store_pg_write_lazy(s, heartbeat_in_tx, &op, err);
    mem_free(op.ids);
    return rc;
}

/* --- lease sweep ---------------------------------------------------------------------- */

struct sweep_op {
    int64_t now_ms;
    int max_redeliveries;
    struct run_current *rows; /* SWEEP_BATCH */
    size_t n_found;
    int n_expired;
    int n_promoted;
};

static int prune_before(struct pg_conn *c, const char *sql, int64_t before, errand_error *err)
{
    struct pg_params p = {0};
    pg_p_i64(&p, before);
    pg_p_int(&p, PRUNE_BATCH);
    return pg_command(c, sql, &p, "forgetting old request ids", NULL, err);
}

static int prune_request_ids(struct pg_conn *c, int64_t now_ms, errand_error *err)
{
    static const char sql_reports[] =
        "DELETE FROM report_batches WHERE id IN (SELECT id FROM report_batches "
        "WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)";
    static const char sql_claims[] =
        "DELETE FROM claim_requests WHERE id IN (SELECT id FROM claim_requests "
        "WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)";
    int rc = prune_before(c, sql_reports, now_ms - REPORT_BATCH_MEMORY_MS, err);
    return rc < 0 ? rc
                  : prune_before(c, sql_claims, now_ms - STORE_PG_CLAIM_REQUEST_MEMORY_MS, err);
}

static int sweep_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "SELECT " PG_LEASE_COLUMNS " FROM task_runs WHERE lease_expires < $1 "
                              "ORDER BY lease_expires LIMIT $2 FOR UPDATE SKIP LOCKED";
    struct sweep_op *op = arg;
    op->n_found = 0;
    op->n_expired = 0;
    op->n_promoted = 0;
    int rc = store_pg_promote_due(c, op->now_ms, &op->n_promoted, err);
    if (rc < 0 || (rc = prune_request_ids(c, op->now_ms, err)) < 0)
        return rc;
    struct pg_params p = {0};
    pg_p_i64(&p, op->now_ms);
    pg_p_int(&p, SWEEP_BATCH);
    PGresult *r = pg_query(c, sql, &p, "finding expired leases", err);
    if (!r)
        return ERRAND_ESTORE;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = pg_run_current_read(r, i, &op->rows[op->n_found++], false, err);
    PQclear(r);
    if (rc < 0)
        return rc;
    struct pg_transitions *batch = pg_transitions_new(); /* the runs are distinct */
    if (!batch)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    struct run_count_delta counts = {0};
    for (size_t i = 0; rc == 0 && i < op->n_found; i++) {
        const struct run_current *cur = &op->rows[i];
        struct attempt_budget b = run_budget(cur, op->max_redeliveries);
        struct state_decision d = state_on_lease_expired(cur->state, &b, op->now_ms);
        if (!d.allowed)
            continue;
        struct run_update u;
        run_transition_plan(cur, &d, op->now_ms, &u);
        char why[MESSAGE_MAX], message[MESSAGE_MAX];
        snprintf(why, sizeof why, LEASE_EXPIRED_FMT, cur->worker[0] ? cur->worker : "?");
        u.message =
            run_redelivery_message(&d, &u, op->max_redeliveries, why, message, sizeof message);
        char ended[RUN_LEASE_TOKEN_MAX + sizeof RUN_EXPIRED_MARK];
        snprintf(ended, sizeof ended, "%s" RUN_EXPIRED_MARK, cur->lease_token);
        if (cur->lease_token[0])
            u.ended_by = ended;
        if ((rc = pg_transition_queue(c, batch, cur, &u, op->now_ms, &counts, err)) == 0)
            op->n_expired++;
    }
    if (rc == 0)
        rc = pg_transitions_flush(c, batch, err);
    pg_transitions_free(batch);
    return rc < 0 ? rc : pg_counts_apply(c, &counts, op->now_ms, err);
}

int store_pg_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
    struct sweep_counts total = {0};
    struct sweep_op op = {.now_ms = now_ms, .max_redeliveries = s->max_redeliveries};
    if (!(op.rows = mem_calloc(SWEEP_BATCH, sizeof *op.rows)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc;
    bool more;
    do {
        rc = store_pg_write(s, sweep_in_tx, &op, err);
        if (rc == 0) {
            total.expired += op.n_expired;
            total.promoted += op.n_promoted;
        }
        more = (op.n_found == SWEEP_BATCH && op.n_expired > 0) ||
               op.n_promoted == STORE_PG_PROMOTE_BATCH;
    } while (rc == 0 && more);
    if (rc == 0)
        rc = store_pg_fold_counts(s, err);
    if (counts)
        *counts = total;
    mem_free(op.rows);
    return rc;
}
