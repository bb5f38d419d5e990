/* SPDX-License-Identifier: MIT */
/*
 * store_pg_report.c — a worker's report on the PostgreSQL store: the outcomes (or starts,
 * or hand-backs) of its runs and their log lines, with the semantics of the SQLite store
 * (store_sqlite_worker.c explains them: lease checks, resumed leases, reports sent again).
 *
 * Why it is written set-wise: a worker reports many runs at once, and a statement per run
 * made the report the slowest part of a run's life. So a report
 *  - reads and locks all its runs with one SELECT ... WHERE id = ANY(...) FOR UPDATE, in id
 *    order (two reports that share runs lock them in the same order: no deadlock);
 *  - decides each report in C, as the rules say (core/state.c), on what it read;
 *  - writes the transitions as one batch (pg_transitions: one UPDATE, fenced by lease token
 *    and state like a single one), the history rows at commit (pg_state_append), the log
 *    lines with one INSERT.
 * A run changed twice in one report (a resumed lease, then the outcome; or a run reported
 * twice) must not be in one UPDATE twice: the batch is written before its second change, and
 * a run an earlier report changed is read again before it is decided on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/uuid.h"
#include "store/postgres/store_pg.h"

#define HANDED_BACK_FMT "handed back by worker %s"
#define HANDED_BACK_RUNNING_FMT "handed back by worker %s before the task finished"
#define FAILED_MESSAGE "the task failed"
#define MESSAGE_MAX 512

/* A run of the report, as read (and locked) at its start. */
struct report_run {
    struct run_current cur;
    int row;      /* its row in report_op.read, for its retry delays */
    bool delays;  /* cur.delays parsed */
    bool queued;  /* in the batch not written yet */
    bool changed; /* changed by this op: read again before deciding on it */
};

struct report_op {
    const char *worker;
    const char *batch_id;
    bool fresh;
    const struct run_report *reports;
    size_t n;
    const struct log_entry *logs;
    size_t n_logs;
    int64_t now_ms;
    int64_t lease_ms;
    int max_redeliveries;
    char (*ids)[UUID_STR_LEN];
    struct lease_answer *out;
    struct run_count_delta counts;
    /* filled by the op: */
    PGresult *read;
    struct report_run *runs; /* in id order, as read */
    size_t n_runs;
    struct pg_transitions *batch; /* of this attempt of the op */
};

static void forget_runs(struct report_op *op)
{
    PQclear(op->read);
    op->read = NULL;
    op->n_runs = 0;
}

/* Reads and locks the reported runs, in id order (C collation: the order of strcmp). */
static int read_runs(struct pg_conn *c, struct report_op *op, errand_error *err)
{
    static const char sql[] = "SELECT " PG_LEASE_COLUMNS " FROM task_runs WHERE id = ANY($1) "
                              "ORDER BY id COLLATE \"C\" FOR UPDATE";
    struct pg_array ids = {0};
    for (size_t i = 0; i < op->n; i++)
        pg_array_text(&ids, op->ids[i]);
    int rc = pg_array_check(&ids, err);
    struct pg_params p = {0};
    pg_p_array(&p, &ids);
    if (rc == 0 && !(op->read = pg_query(c, sql, &p, "reading the reported runs", err)))
        rc = ERRAND_ESTORE;
    pg_array_free(&ids);
    int n = op->read ? PQntuples(op->read) : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        struct report_run *run = &op->runs[op->n_runs++];
        memset(run, 0, sizeof *run);
        run->row = i;
        rc = pg_run_current_read(op->read, i, &run->cur, false, err);
    }
    return rc;
}

static int run_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct report_run *)elem)->cur.id);
}

/* Writes the batch; the runs in it are then as read again would show them. */
static int flush(struct pg_conn *c, struct report_op *op, errand_error *err)
{
    for (size_t i = 0; i < op->n_runs; i++)
        op->runs[i].queued = false;
    return pg_transitions_flush(c, op->batch, err);
}

/* The run of report i, ready to decide on (with its retry delays when with_delays); NULL
 * when no such run. */
static int run_of(struct pg_conn *c, struct report_op *op, size_t i, bool with_delays,
                  struct report_run **out, errand_error *err)
{
    struct report_run *run = bsearch(op->ids[i], op->runs, op->n_runs, sizeof *op->runs, run_cmp);
    *out = run;
    int rc = 0;
    if (!run)
        return 0;
    if (run->changed) { /* as the earlier change left it */
        if ((rc = flush(c, op, err)) == 0 &&
            (rc = pg_run_current_get(c, op->ids[i], with_delays, true, &run->cur, err)) == 0)
            run->changed = false;
        run->delays = with_delays;
    } else if (with_delays && !run->delays) {
        rc = run_current_parse_delays(pg_get_text(op->read, run->row, 6), &run->cur, err);
        run->delays = true;
    }
    return rc;
}

/* Queues a transition of run (the batch written first when it holds the run already). */
static int change(struct pg_conn *c, struct report_op *op, struct report_run *run,
                  const struct run_update *u, errand_error *err)
{
    int rc = run->queued ? flush(c, op, err) : 0;
    if (rc == 0)
        rc = pg_transition_queue(c, op->batch, &run->cur, u, op->now_ms, &op->counts, err);
    run->queued = run->changed = true;
    return rc;
}

/* The new values of a run the report changes: d's, with what the report carries. */
static void plan(const struct report_op *op, const struct run_report *rep,
                 const struct run_current *cur, const struct state_decision *d, const char *ended,
                 struct run_update *u, char *message, size_t size)
{
    run_transition_plan(cur, d, op->now_ms, u);
    if (!u->lease_token)
        u->ended_by = ended;
    bool ran = rep->state == ERRAND_STATE_COMPLETED || rep->state == ERRAND_STATE_FAILED;
    if (ran && u->started == 0 && cur->state == ERRAND_STATE_PENDING)
        u->started = cur->state_timestamp;
    char why[MESSAGE_MAX];
    switch (rep->state) {
    case ERRAND_STATE_COMPLETED:
        u->complete = true;
        u->result = rep->result;
        u->result_ref = rep->result_ref;
        u->cache_expires_at = run_cache_expiry(cur, op->now_ms);
        break;
    case ERRAND_STATE_FAILED:
    case ERRAND_STATE_CANCELLED:
        u->message = rep->message                        ? rep->message
                     : rep->state == ERRAND_STATE_FAILED ? FAILED_MESSAGE
                                                         : "";
        break;
    case ERRAND_STATE_SCHEDULED:
        snprintf(why, sizeof why,
                 cur->state == ERRAND_STATE_RUNNING ? HANDED_BACK_RUNNING_FMT : HANDED_BACK_FMT,
                 op->worker ? op->worker : "?");
        u->message = run_redelivery_message(d, u, op->max_redeliveries, why, message, size);
        break;
    default:
        break;
    }
}

/* Applies one report; a refusal is an outcome (404/409), not an error of the op. */
static int apply_report(struct pg_conn *c, struct report_op *op, size_t i, errand_error *err)
{
    const struct run_report *rep = &op->reports[i];
    struct lease_answer *o = &op->out[i];
    struct report_run *run;
    int rc = run_of(c, op, i, rep->state == ERRAND_STATE_FAILED, &run, err);
    if (rc < 0 && rc != ERRAND_ENOTFOUND)
        return rc;
    if (!run || rc == ERRAND_ENOTFOUND) {
        o->status = LEASE_UNKNOWN;
        return 0;
    }
    struct run_current *cur = &run->cur;
    o->state = cur->state;
    char ended[RUN_LEASE_TOKEN_MAX + 8];
    run_ended_mark(rep, ended, sizeof ended);
    if (!run_token_matches(cur, rep->lease_token) &&
        ((cur->ended_by[0] && token_equal(cur->ended_by, ended)) ||
         (!op->fresh && rep->state == ERRAND_STATE_RUNNING))) {
        o->status = LEASE_APPLIED; /* sent again: nothing changes */
        return 0;
    }
    bool outcome_or_start = rep->state == ERRAND_STATE_COMPLETED ||
                            rep->state == ERRAND_STATE_FAILED || rep->state == ERRAND_STATE_RUNNING;
    if (!run_token_matches(cur, rep->lease_token) && outcome_or_start &&
        run_expired_lease_of(cur, rep->lease_token)) {
        if ((rc = pg_lease_resume(c, op->batch, cur, rep->lease_token, op->worker, op->now_ms,
                                  op->now_ms + op->lease_ms, &op->counts, err)) < 0)
            return rc;
        run->queued = run->changed = true;
    }
    if (!run_token_matches(cur, rep->lease_token)) {
        o->status = LEASE_STALE;
        o->reason = "stale lease: the lease token is not the run's current one";
        return 0;
    }
    struct attempt_budget b = run_budget(cur, op->max_redeliveries);
    double rand01 = state_report_uses_rand(rep->state, cur->jitter) ? random_unit() : 0;
    struct state_decision d =
        state_on_report(cur->state, rep->state, &b, rep->retryable, cur->delays, cur->n_delays,
                        cur->jitter, rand01, op->now_ms);
    if (!d.allowed) {
        o->status = LEASE_STALE;
        o->reason = d.reason;
        return 0;
    }
    struct run_update u;
    char message[MESSAGE_MAX];
    plan(op, rep, cur, &d, ended, &u, message, sizeof message);
    if ((rc = change(c, op, run, &u, err)) < 0)
        return rc;
    o->status = LEASE_APPLIED;
    o->state = d.next;
    return 0;
}

/* The log lines of the report, of runs that exist, with one INSERT (in their order).
 *
 * A line's seq comes from a sequence when it is inserted, but a reader pages a run's logs by
 * seq (after=N) and sees a line when its transaction commits: two transactions adding lines
 * to one run could commit in the other order than they drew their numbers, and a reader that
 * saw the later number first would page past the earlier one for ever. So the runs' rows are
 * locked first (as a state change locks them; by id, so two batches take them in one order):
 * transactions adding lines to one run draw their numbers and commit one after the other. */
static int append_logs(struct pg_conn *c, const struct report_op *op, errand_error *err)
{
    static const char lock_sql[] =
        "SELECT id FROM task_runs WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE";
    static const char sql[] =
        "INSERT INTO task_run_logs (run_id, timestamp, level, message) "
        "SELECT u.id, u.at, u.level, u.message FROM unnest($1::text[], $2::bigint[], "
        "$3::integer[], $4::text[]) WITH ORDINALITY AS u(id, at, level, message, k) "
        "WHERE EXISTS (SELECT 1 FROM task_runs WHERE task_runs.id = u.id) ORDER BY u.k";
    if (op->n_logs == 0)
        return 0;
    struct pg_array col[4] = {0};
    for (size_t i = 0; i < op->n_logs; i++) {
        const struct log_entry *l = &op->logs[i];
        char id[UUID_STR_LEN];
        run_id_norm(l->id, id);
        pg_array_text(&col[0], id);
        pg_array_i64(&col[1], l->timestamp_ms ? l->timestamp_ms : op->now_ms);
        pg_array_i64(&col[2], l->level);
        pg_array_text(&col[3], l->message ? l->message : "");
    }
    struct pg_params p = {0};
    int rc = 0;
    for (int k = 0; k < 4; k++) {
        if (rc == 0)
            rc = pg_array_check(&col[k], err);
        pg_p_array(&p, &col[k]);
    }
    if (rc == 0) {
        struct pg_params lp = {0};
        pg_p_array(&lp, &col[0]);
        PGresult *r = pg_query(c, lock_sql, &lp, "locking the runs of log lines", err);
        if (!r)
            rc = ERRAND_ESTORE;
        PQclear(r);
    }
    if (rc == 0)
        rc = pg_command(c, sql, &p, "storing log lines", NULL, err);
    for (int k = 0; k < 4; k++)
        pg_array_free(&col[k]);
    return rc;
}

static int batch_is_new(struct pg_conn *c, const struct report_op *op, bool *fresh,
                        errand_error *err)
{
    static const char sql[] =
        "INSERT INTO report_batches (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
    *fresh = true;
    if (!op->batch_id)
        return 0;
    struct pg_params p = {0};
    pg_p_text(&p, op->batch_id);
    pg_p_i64(&p, op->now_ms);
    int64_t n = 0;
    int rc = pg_command(c, sql, &p, "recording a report batch", &n, err);
    if (rc == 0)
        *fresh = n == 1;
    return rc;
}

static int report_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct report_op *op = arg;
    run_tally_reset(&op->counts);
    for (size_t i = 0; i < op->n; i++)
        memset(&op->out[i], 0, sizeof op->out[i]);
    if (!(op->batch = pg_transitions_new()))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = batch_is_new(c, op, &op->fresh, err);
    if (rc == 0 && op->n > 0)
        rc = read_runs(c, op, err);
    for (size_t i = 0; rc == 0 && i < op->n; i++)
        rc = apply_report(c, op, i, err);
    if (rc == 0)
        rc = flush(c, op, err);
    forget_runs(op);
    pg_transitions_free(op->batch);
    op->batch = NULL;
    if (rc < 0 || (rc = pg_counts_defer(c, &op->counts, op->now_ms, err)) < 0 ||
        (op->fresh && (rc = append_logs(c, op, err)) < 0))
        return rc;
    return pg_worker_seen(c, op->worker, op->now_ms, err);
}

int store_pg_report(store *st, const char *worker, const char *batch_id,
                    const struct run_report *reports, size_t n, const struct log_entry *logs,
                    size_t n_logs, int64_t now_ms, struct lease_answer *answers, errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
    struct report_op op = {
        .worker = worker,
        .batch_id = batch_id,
        .reports = reports,
        .n = n,
        .logs = logs,
        .n_logs = n_logs,
        .now_ms = now_ms,
        .lease_ms = store_pg_lease_ms(s, 0),
        .max_redeliveries = s->max_redeliveries,
        .out = answers,
    };
    op.ids = mem_calloc(n ? n : 1, sizeof *op.ids);
    op.runs = mem_calloc(n ? n : 1, sizeof *op.runs);
    int rc = 0;
    if (!op.ids || !op.runs)
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        run_id_norm(reports[i].id, op.ids[i]);
    if (rc == 0)
        rc = store_reports_may_be_lost(reports, n, n_logs)
                 ? store_pg_write_lazy(s, report_in_tx, &op, err)
                 : store_pg_write(s, report_in_tx, &op, err);
    mem_free(op.runs);
    mem_free(op.ids);
    return rc;
}
