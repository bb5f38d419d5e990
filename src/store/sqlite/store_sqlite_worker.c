/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_worker.c — the worker protocol on the SQLite store after the claim
 * (store_sqlite_claim.c): heartbeat, report and the lease sweep. Each call is one writer op
 * (all or nothing in a group commit), so a report with its logs lands all together or not at
 * all.
 *
 * Heartbeats extend a lease only once less than three quarters of it is left (see
 * LEASE_KEEP_NUM), so the lease index is not rewritten every second for every run held.
 *
 * Lease checks: a heartbeat or report must present the run's current lease token; a run no
 * longer leased, or leased under another token (a newer attempt), answers 409 so a slow or
 * partitioned worker never overwrites a newer attempt; an unknown id answers 404. One
 * exception: a lease that ran out while the run still waits in the queue, claimed by nobody
 * since (ended_by is "<token>:expired"), resumes when its worker shows up with it, so a slow
 * server or network does not turn one execution into two (resume_expired).
 *
 * Redeliveries (state.h): an expired lease, or a running run handed back, sends the run back
 * to the queue without charging an attempt, up to max_redeliveries, then CRASHED; the state
 * message says which redelivery it was.
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
#include "store/sqlite/sqlite_limits.h"
#include "store/sqlite/sqlite_transition.h"
#include "store/sqlite/store_sqlite.h"

#define SWEEP_BATCH 256 /* leases expired per transaction */
/* How long a report batch's id is remembered: far longer than a worker retries a batch. */
#define REPORT_BATCH_MEMORY_MS (60LL * 60 * 1000)
/* Remembered ids forgotten per sweep transaction, of each kind. */
#define PRUNE_BATCH 2000
/* A heartbeat extends a lease only when less than this fraction of a full lease is left:
 * the lease index entry then moves every quarter lease, not at every (once a second)
 * heartbeat, and a healthy worker always holds at least three quarters of its lease. */
#define LEASE_KEEP_NUM 3
#define LEASE_KEEP_DEN 4
#define LEASE_EXPIRED_FMT "lease expired on worker %s"
#define HANDED_BACK_FMT "handed back by worker %s"
#define HANDED_BACK_RUNNING_FMT "handed back by worker %s before the task finished"
#define RESUMED_FMT "lease resumed by worker %s after it expired; the run was not claimed again"
#define FAILED_MESSAGE "the task failed"
#define MESSAGE_MAX 512

/* Undoes the expiry of cur's lease `token`: the run is held again under it until
 * lease_expires, with the attempt and the redelivery the expiry changed given back; cur is
 * updated to match. The caller checked run_expired_lease_of(). */
static int resume_expired(struct sqlite_conn *c, struct run_current *cur, const char *token,
                          const char *worker, int64_t now_ms, int64_t lease_expires,
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
    int rc = sqlite_transition_write(c, cur, &u, now_ms, counts, err);
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

/* --- heartbeat ----------------------------------------------------------------------- */

struct heartbeat_op {
    const char *worker;
    const struct lease_ref *leases;
    size_t n;
    int64_t now_ms;
    int64_t lease_expires;
    int64_t extend_below;      /* a lease ending before this is extended (LEASE_KEEP_NUM/DEN) */
    char (*ids)[UUID_STR_LEN]; /* the leases' ids, normalised */
    struct lease_answer *out;
    struct run_count_delta counts; /* of leases resumed */
};

static int worker_seen(struct sqlite_conn *c, const char *worker, int64_t now_ms, errand_error *err)
{
    if (!worker || !worker[0])
        return 0;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WORKER_SEEN, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, worker);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int(s, 3, STORE_SQLITE_WORKER_SEEN_MS);
    return sqlite_conn_step_done(c, s, SQL_WORKER_SEEN, err);
}

/* Heartbeat i presents a lease that may have run out with the run still in the queue:
 * resumes it if so (resume_expired). */
static int heartbeat_resume(struct sqlite_conn *c, struct heartbeat_op *op, size_t i,
                            errand_error *err)
{
    struct run_current cur;
    int rc = sqlite_run_current_get(c, op->ids[i], false, &cur, err);
    if (rc < 0)
        return rc;
    const char *token = op->leases[i].lease_token;
    if (!run_expired_lease_of(&cur, token))
        return 0; /* stale after all */
    if ((rc = resume_expired(c, &cur, token, op->worker, op->now_ms, op->lease_expires, &op->counts,
                             err)) < 0)
        return rc;
    op->out[i].status = LEASE_APPLIED;
    op->out[i].state = cur.state;
    return 0;
}

static int heartbeat_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct heartbeat_op *op = arg;
    for (size_t i = 0; i < op->n; i++) {
        struct lease_answer *o = &op->out[i];
        memset(o, 0, sizeof *o);
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LEASE_CHECK, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, op->ids[i]);
        int step = sqlite3_step(s);
        sqlite3_int64 rowid = 0;
        bool resume = false; /* maybe a lease that ran out while the run waits in the queue */
        int holds = 0;       /* its holds_slots */
        char *task = NULL, *tags = NULL; /* read when it says whether it waits */
        o->status = LEASE_UNKNOWN;
        if (step == SQLITE_ROW) {
            rowid = sqlite3_column_int64(s, 0);
            o->state = (errand_state)sqlite3_column_int(s, 1);
            const char *token = sqlite_col_text(s, 2);
            const char *given = op->leases[i].lease_token;
            bool match = state_is_leased(o->state) && token_equal(token, given);
            o->status = match ? LEASE_APPLIED : LEASE_STALE;
            o->cancel = match && o->state == ERRAND_STATE_CANCELLING;
            const char *ended = sqlite_col_text(s, 3);
            resume = !match && o->state == ERRAND_STATE_SCHEDULED && ended && given &&
                     strlen(ended) > strlen(given); /* resume_expired checks the rest */
            holds = sqlite3_column_int(s, 4);
            if (match && holds > 0 && op->leases[i].waiting >= 0) {
                const char *t = sqlite_col_text(s, 5), *g = sqlite_col_text(s, 6);
                task = mem_strdup(t ? t : "");
                tags = g ? mem_strdup(g) : NULL;
                if (!task || (g && !tags)) {
                    sqlite3_reset(s);
                    mem_free(task);
                    mem_free(tags);
                    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                }
            }
        }
        sqlite3_reset(s);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return sqlite_conn_fail(c, "SQL_LEASE_CHECK", err);
        if (resume) {
            mem_free(task);
            mem_free(tags);
            int rc = heartbeat_resume(c, op, i, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (o->status != LEASE_APPLIED)
            continue;
        int rc;
        if (op->leases[i].waiting >= 0 && holds > 0 &&
            (rc = sqlite_limits_waiting(c, rowid, op->ids[i], task, tags, holds,
                                        op->leases[i].waiting == 1, op->now_ms, err)) < 0) {
            mem_free(task);
            mem_free(tags);
            return rc;
        }
        mem_free(task);
        mem_free(tags);
        if (!(s = sqlite_conn_stmt(c, SQL_LEASE_EXTEND, err)))
            return ERRAND_ESTORE;
        sqlite3_bind_int64(s, 1, rowid);
        sqlite3_bind_int64(s, 2, op->lease_expires);
        sqlite3_bind_int64(s, 3, op->extend_below);
        rc = sqlite_conn_step_done(c, s, SQL_LEASE_EXTEND, err);
        if (rc < 0)
            return rc;
    }
    int rc = sqlite_counts_apply(c, &op->counts, op->now_ms, err);
    return rc < 0 ? rc : worker_seen(c, op->worker, op->now_ms, err);
}

int store_sqlite_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                           int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                           errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    int64_t lease = store_sqlite_lease_ms(s, lease_seconds);
    struct heartbeat_op op = {
        .worker = worker,
        .leases = leases,
        .n = n,
        .now_ms = now_ms,
        .lease_expires = now_ms + lease,
        .extend_below = now_ms + lease * LEASE_KEEP_NUM / LEASE_KEEP_DEN,
        .out = answers,
    };
    op.ids = mem_calloc(n ? n : 1, sizeof *op.ids);
    if (!op.ids)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        run_id_norm(leases[i].id, op.ids[i]);
    int rc = sqlite_writer_run_relaxed(s->writer, heartbeat_in_writer, &op, err);
    mem_free(op.ids);
    return rc;
}

/* --- report -------------------------------------------------------------------------- */

struct report_op {
    const char *worker;
    const char *batch_id; /* NULL when the worker sent none */
    bool fresh;           /* the batch id was not seen before (or there is none) */
    const struct run_report *reports;
    size_t n;
    const struct log_entry *logs;
    size_t n_logs;
    int64_t now_ms;
    int64_t lease_ms; /* of a lease resumed by a late report */
    int max_redeliveries;
    char (*ids)[UUID_STR_LEN]; /* the reports' ids, normalised */
    struct lease_answer *out;
    struct run_count_delta counts;
};

/* Applies one report; a refusal is an outcome (404/409), not an error of the op. */
static int apply_report(struct sqlite_conn *c, struct report_op *op, size_t i, errand_error *err)
{
    const struct run_report *rep = &op->reports[i];
    struct lease_answer *o = &op->out[i];
    struct run_current cur;
    errand_error lookup;
    int rc =
        sqlite_run_current_get(c, op->ids[i], rep->state == ERRAND_STATE_FAILED, &cur, &lookup);
    if (rc == ERRAND_ENOTFOUND) {
        o->status = LEASE_UNKNOWN;
        return 0;
    }
    if (rc < 0) {
        if (err)
            *err = lookup;
        return rc;
    }
    o->state = cur.state;
    char ended[SQLITE_LEASE_TOKEN_MAX + 8];
    run_ended_mark(rep, ended, sizeof ended);
    if (!run_token_matches(&cur, rep->lease_token) &&
        ((cur.ended_by[0] && token_equal(cur.ended_by, ended)) ||
         (!op->fresh && rep->state == ERRAND_STATE_RUNNING))) {
        /* Sent again (its answer was lost): the report that ended this lease, or a RUNNING
         * report of a batch already applied. Applied, and nothing changes. */
        o->status = LEASE_APPLIED;
        return 0;
    }
    bool outcome_or_start = rep->state == ERRAND_STATE_COMPLETED ||
                            rep->state == ERRAND_STATE_FAILED || rep->state == ERRAND_STATE_RUNNING;
    if (!run_token_matches(&cur, rep->lease_token) && outcome_or_start &&
        run_expired_lease_of(&cur, rep->lease_token) &&
        (rc = resume_expired(c, &cur, rep->lease_token, op->worker, op->now_ms,
                             op->now_ms + op->lease_ms, &op->counts, err)) < 0)
        return rc;
    if (!run_token_matches(&cur, rep->lease_token)) {
        o->status = LEASE_STALE;
        o->reason = "stale lease: the lease token is not the run's current one";
        return 0;
    }
    struct attempt_budget b = run_budget(&cur, op->max_redeliveries);
    double rand01 = state_report_uses_rand(rep->state, cur.jitter) ? random_unit() : 0;
    struct state_decision d = state_on_report(cur.state, rep->state, &b, rep->retryable, cur.delays,
                                              cur.n_delays, cur.jitter, rand01, op->now_ms);
    if (!d.allowed) {
        o->status = LEASE_STALE;
        o->reason = d.reason;
        return 0;
    }
    struct run_update u;
    run_transition_plan(&cur, &d, op->now_ms, &u);
    if (!u.lease_token) /* this report ends the lease: remember it */
        u.ended_by = ended;
    char why[MESSAGE_MAX], message[MESSAGE_MAX];
    bool ran = rep->state == ERRAND_STATE_COMPLETED || rep->state == ERRAND_STATE_FAILED;
    if (ran && u.started == 0 && cur.state == ERRAND_STATE_PENDING)
        u.started = cur.state_timestamp; /* RUNNING was skipped: it started when claimed */
    switch (rep->state) {
    case ERRAND_STATE_COMPLETED:
        u.complete = true;
        u.result = rep->result;
        u.result_ref = rep->result_ref;
        u.cache_expires_at = run_cache_expiry(&cur, op->now_ms);
        break;
    case ERRAND_STATE_FAILED:
    case ERRAND_STATE_CANCELLED:
        u.message = rep->message                        ? rep->message
                    : rep->state == ERRAND_STATE_FAILED ? FAILED_MESSAGE
                                                        : "";
        break;
    case ERRAND_STATE_SCHEDULED:
        snprintf(why, sizeof why,
                 cur.state == ERRAND_STATE_RUNNING ? HANDED_BACK_RUNNING_FMT : HANDED_BACK_FMT,
                 op->worker ? op->worker : "?");
        u.message =
            run_redelivery_message(&d, &u, op->max_redeliveries, why, message, sizeof message);
        break;
    default:
        break;
    }
    if ((rc = sqlite_transition_write(c, &cur, &u, op->now_ms, &op->counts, err)) < 0)
        return rc;
    o->status = LEASE_APPLIED;
    o->state = d.next;
    return 0;
}

static int append_logs(struct sqlite_conn *c, const struct report_op *op, errand_error *err)
{
    for (size_t i = 0; i < op->n_logs; i++) {
        const struct log_entry *l = &op->logs[i];
        char id[UUID_STR_LEN];
        run_id_norm(l->id, id);
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LOG_INSERT, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, id);
        sqlite3_bind_int64(s, 2, l->timestamp_ms ? l->timestamp_ms : op->now_ms);
        sqlite3_bind_int(s, 3, l->level);
        sqlite_bind_text(s, 4, l->message ? l->message : "");
        int rc = sqlite_conn_step_done(c, s, SQL_LOG_INSERT, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Whether the batch id (if any) is seen for the first time; records it. A resent batch's
 * reports are idempotent by their lease tokens, its logs by this. */
static int batch_is_new(struct sqlite_conn *c, const struct report_op *op, bool *fresh,
                        errand_error *err)
{
    *fresh = true;
    if (!op->batch_id)
        return 0;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_REPORT_BATCH_NEW, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, op->batch_id);
    sqlite3_bind_int64(s, 2, op->now_ms);
    int rc = sqlite_conn_step_done(c, s, SQL_REPORT_BATCH_NEW, err);
    if (rc == 0)
        *fresh = sqlite3_changes(c->db) == 1;
    return rc;
}

static int report_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct report_op *op = arg;
    int rc = batch_is_new(c, op, &op->fresh, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < op->n; i++) {
        memset(&op->out[i], 0, sizeof op->out[i]);
        if ((rc = apply_report(c, op, i, err)) < 0)
            return rc;
    }
    if ((rc = sqlite_counts_apply(c, &op->counts, op->now_ms, err)) < 0 ||
        (op->fresh && (rc = append_logs(c, op, err)) < 0))
        return rc;
    return worker_seen(c, op->worker, op->now_ms, err);
}

int store_sqlite_report(store *st, const char *worker, const char *batch_id,
                        const struct run_report *reports, size_t n, const struct log_entry *logs,
                        size_t n_logs, int64_t now_ms, struct lease_answer *answers,
                        errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct report_op op = {
        .worker = worker,
        .batch_id = batch_id,
        .reports = reports,
        .n = n,
        .logs = logs,
        .n_logs = n_logs,
        .now_ms = now_ms,
        .lease_ms = store_sqlite_lease_ms(s, 0),
        .max_redeliveries = s->max_redeliveries,
        .out = answers,
    };
    op.ids = mem_calloc(n ? n : 1, sizeof *op.ids);
    if (!op.ids)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        run_id_norm(reports[i].id, op.ids[i]);
    int rc = store_reports_may_be_lost(reports, n, n_logs)
                 ? sqlite_writer_run_relaxed(s->writer, report_in_writer, &op, err)
                 : sqlite_writer_run(s->writer, report_in_writer, &op, err);
    mem_free(op.ids);
    return rc;
}

/* --- lease sweep --------------------------------------------------------------------- */

struct sweep_op {
    int64_t now_ms;
    int max_redeliveries;
    struct run_current *rows; /* SWEEP_BATCH */
    size_t n_found;
    int n_expired;
    int n_promoted;
};

/* Forgets what statement id remembers from before `before`, PRUNE_BATCH rows at most. */
static int prune_before(struct sqlite_conn *c, enum sql_id id, int64_t before, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, PRUNE_BATCH);
    return sqlite_conn_step_done(c, s, id, err);
}

/* Forgets report batch ids and claim request ids past their memory. */
static int prune_request_ids(struct sqlite_conn *c, int64_t now_ms, errand_error *err)
{
    int rc = prune_before(c, SQL_REPORT_BATCHES_PRUNE, now_ms - REPORT_BATCH_MEMORY_MS, err);
    return rc < 0 ? rc
                  : prune_before(c, SQL_CLAIM_REQUESTS_PRUNE,
                                 now_ms - STORE_SQLITE_CLAIM_REQUEST_MEMORY_MS, err);
}

static int sweep_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct sweep_op *op = arg;
    op->n_found = 0;
    op->n_expired = 0;
    op->n_promoted = 0;
    /* Runs of tasks nobody claims now are promoted too, so the delayed set holds only runs
       that are not due, and the first claim after a quiet spell finds the ready queue full. */
    int prc = store_sqlite_promote_due(c, op->now_ms, &op->n_promoted, err);
    if (prc < 0 || (prc = prune_request_ids(c, op->now_ms, err)) < 0)
        return prc;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LEASE_EXPIRED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, op->now_ms);
    sqlite3_bind_int(s, 2, SWEEP_BATCH);
    int step, rc = 0;
    struct run_count_delta counts = {0};
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = sqlite_run_current_read(s, &op->rows[op->n_found++], false, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_LEASE_EXPIRED", err);
    for (size_t i = 0; i < op->n_found; i++) {
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
        char ended[SQLITE_LEASE_TOKEN_MAX + sizeof RUN_EXPIRED_MARK];
        snprintf(ended, sizeof ended, "%s" RUN_EXPIRED_MARK, cur->lease_token);
        if (cur->lease_token[0]) /* a later report under it can still be recognised */
            u.ended_by = ended;
        if ((rc = sqlite_transition_write(c, cur, &u, op->now_ms, &counts, err)) < 0)
            return rc;
        op->n_expired++;
    }
    return sqlite_counts_apply(c, &counts, op->now_ms, err);
}

int store_sqlite_sweep(store *st, int64_t now_ms, struct sweep_counts *counts, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sweep_counts total = {0};
    struct sweep_op op = {.now_ms = now_ms, .max_redeliveries = s->max_redeliveries};
    op.rows = mem_calloc(SWEEP_BATCH, sizeof *op.rows);
    if (!op.rows)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc;
    bool more;
    do {
        rc = sqlite_writer_run(s->writer, sweep_in_writer, &op, err);
        if (rc == 0) {
            total.expired += op.n_expired;
            total.promoted += op.n_promoted;
        }
        /* A full batch means more may wait; stop if nothing moved (a row the rules refuse). */
        more = (op.n_found == SWEEP_BATCH && op.n_expired > 0) ||
               op.n_promoted == STORE_SQLITE_PROMOTE_BATCH;
    } while (rc == 0 && more);
    if (counts)
        *counts = total;
    mem_free(op.rows);
    return rc;
}
