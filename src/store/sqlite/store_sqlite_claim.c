/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_claim.c — claims on the SQLite store (store_claim): one writer op each, so a
 * run can never be handed to two workers (the writer is the only writer).
 *
 * An empty claim does not write: it first looks, on a reader, whether it could change
 * anything (claim_may_write), and goes to the writer only then.
 *
 * Ready and delayed: a run that is not due yet waits in the delayed set (task_runs.delayed,
 * see sqlite_schema.c) and enters the ready queue once due, promoted by the first claim or
 * sweep that sees it due, a bounded batch per transaction. So a claim walks only ready runs,
 * and its cost does not grow with the number of runs waiting for their time.
 *
 * Claim order is priority DESC, scheduled_at, id across all the requested tasks. The claim
 * index is per task, so the op reads up to `limit` candidates per task from it (walking the
 * index in claim order, no sort) and merges them, rather than asking SQLite to sort every
 * due run of several tasks. Lease tokens are drawn on the caller's thread before the op:
 * the CSPRNG takes locks, and the writer thread is the store's one scarce resource.
 *
 * A claim with a request id remembers the leases it handed out (claim_requests), so the same
 * claim sent again gets them back (claim_repeat) instead of new runs.
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
#include "store/claim_candidate.h"
#include "store/sqlite/sqlite_limits.h"
#include "store/sqlite/sqlite_transition.h"
#include "store/sqlite/store_sqlite.h"

/* --- claim ------------------------------------------------------------------------- */

struct claim_op {
    const struct claim_request *req;
    const char *tasks_json;
    char *tokens; /* limit tokens of 2 * LEASE_TOKEN_BYTES hex, back to back (owned) */
    int limit;
    int keep; /* candidates kept per claim: limit, or more when a tag limit may hold some back */
    int64_t now_ms;
    int64_t lease_expires;
    struct claim_candidate *cand; /* room for 2 * keep */
    size_t n_cand;
    size_t n_claimed;
};

static void candidates_clear(struct claim_op *op)
{
    claim_candidates_clear(op->cand, op->n_cand);
    op->n_cand = 0;
    op->n_claimed = 0;
}

/* Reads one candidate row (copying its strings). */
static int read_candidate(sqlite3_stmt *s, struct claim_candidate *cd, errand_error *err)
{
    memset(cd, 0, sizeof *cd);
    cd->rowid = sqlite3_column_int64(s, CC_ROWID);
    cd->priority = sqlite3_column_int(s, CC_PRIORITY);
    cd->scheduled_at = sqlite3_column_int64(s, CC_SCHEDULED_AT);
    cd->n_states = sqlite3_column_int(s, CC_N_STATES);
    struct run_row *r = &cd->row;
    r->id = sqlite_col_text(s, CC_ID);
    r->task = sqlite_col_text(s, CC_TASK);
    r->parameters = sqlite_col_text(s, CC_PARAMETERS);
    r->attempt = sqlite3_column_int(s, CC_ATTEMPT);
    r->max_attempts = sqlite3_column_int(s, CC_MAX_ATTEMPTS);
    r->timeout_seconds = sqlite3_column_double(s, CC_TIMEOUT);
    r->persist_result = sqlite_col_opt_int(s, CC_PERSIST_RESULT);
    r->cache_key = sqlite_col_text(s, CC_CACHE_KEY);
    r->traceparent = sqlite_col_text(s, CC_TRACEPARENT);
    return claim_candidate_own(cd, sqlite_col_text(s, CC_TAGS), err);
}

/* Adds the due runs of one task to the candidates, keeping the best `limit` in order. */
static int collect_candidates(struct sqlite_conn *c, struct claim_op *op, const char *task,
                              errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_CANDIDATES, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, task);
    sqlite3_bind_int64(s, 2, op->now_ms);
    sqlite3_bind_int(s, 3, op->keep);
    int step, rc = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if ((rc = read_candidate(s, &op->cand[op->n_cand], err)) == 0)
            op->n_cand++;
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_CLAIM_CANDIDATES", err);
    if (op->req->n_tasks > 1 && op->n_cand > 1) {
        qsort(op->cand, op->n_cand, sizeof *op->cand, claim_candidate_cmp);
        size_t kept = 0; /* drop duplicates (a task named twice) and the surplus */
        for (size_t i = 0; i < op->n_cand; i++) {
            bool dup = kept > 0 && op->cand[kept - 1].rowid == op->cand[i].rowid;
            if (dup || kept == (size_t)op->keep) {
                run_row_clear(&op->cand[i].row);
                mem_free(op->cand[i].tags);
                continue;
            }
            if (kept != i)
                op->cand[kept] = op->cand[i];
            kept++;
        }
        op->n_cand = kept;
    }
    return 0;
}

/* Moves one SCHEDULED run to PENDING under a new lease and records the state. */
static int claim_one(struct sqlite_conn *c, struct claim_op *op, struct claim_candidate *cd,
                     const struct state_decision *d, struct run_count_delta *counts,
                     errand_error *err)
{
    /* Tokens come from the caller's thread: the CSPRNG takes locks, the writer need not. */
    memcpy(cd->token, op->tokens + op->n_claimed * 2 * LEASE_TOKEN_BYTES, 2 * LEASE_TOKEN_BYTES);
    cd->token[2 * LEASE_TOKEN_BYTES] = '\0';
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_UPDATE, err);
    if (!s)
        return ERRAND_ESTORE;
    int seq = cd->n_states + 1;
    sqlite3_bind_int64(s, 1, cd->rowid);
    sqlite3_bind_int(s, 2, (int)d->next);
    sqlite_bind_text(s, 3, d->name);
    sqlite3_bind_int64(s, 4, op->now_ms);
    sqlite_bind_text(s, 5, op->req->worker);
    sqlite_bind_text(s, 6, cd->token);
    sqlite3_bind_int64(s, 7, op->lease_expires);
    sqlite3_bind_int(s, 8, seq);
    sqlite3_bind_int(s, 9, cd->row.attempt + 1);
    int rc = sqlite_conn_step_done(c, s, SQL_CLAIM_UPDATE, err);
    if (rc < 0)
        return rc;
    if (sqlite3_changes(c->db) != 1)
        return 0; /* no longer SCHEDULED: nothing to claim */
    cd->claimed = true;
    cd->row.scheduled_at = cd->scheduled_at; /* when it became due: its queue wait ends now */
    cd->row.attempt++;
    cd->row.lease_token = cd->token;
    cd->row.lease_expires = op->lease_expires;
    cd->row.state = d->next;
    op->n_claimed++;
    if ((rc = run_count_move(c, counts, cd->row.task, cd->row.id, ERRAND_STATE_SCHEDULED, d->next,
                             op->now_ms, err)) < 0)
        return rc;
    return sqlite_state_append(c, cd->row.id, cd->row.task, seq, d->next, d->name, op->now_ms, "",
                               err);
}

/* Moves up to STORE_SQLITE_PROMOTE_BATCH delayed runs that are due at now_ms into the ready queue;
 * *n_promoted (optional) counts them. */
int store_sqlite_promote_due(struct sqlite_conn *c, int64_t now_ms, int *n_promoted,
                             errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_PROMOTE_DUE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int(s, 2, STORE_SQLITE_PROMOTE_BATCH);
    /* Each promoted run leaves its task's count of delayed runs (task_counts). */
    struct run_count_delta counts = {0};
    int rc = 0, step = SQLITE_DONE, n = 0;
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
        n++;
        rc = run_count_delayed(c, &counts, sqlite_col_text(s, 0), -1, now_ms, err);
    }
    sqlite3_reset(s);
    if (rc == 0 && step != SQLITE_DONE)
        rc = sqlite_conn_fail(c, "SQL_PROMOTE_DUE", err);
    if (rc == 0)
        rc = sqlite_counts_apply(c, &counts, now_ms, err);
    if (rc == 0 && n_promoted)
        *n_promoted = n;
    return rc;
}

/* One run a claim sent again handed out before, if it is still PENDING under that token:
 * answered again, its lease renewed. */
static int repeat_one(struct sqlite_conn *c, struct claim_op *op, const char *id, const char *token,
                      errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_REPEAT, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, id);
    sqlite_bind_text(s, 2, token);
    int step = sqlite3_step(s), rc = 0;
    struct claim_candidate *cd = &op->cand[op->n_cand];
    if (step == SQLITE_ROW && (rc = read_candidate(s, cd, err)) == 0) {
        op->n_cand++;
        snprintf(cd->token, sizeof cd->token, "%s", token);
        cd->claimed = true;
        cd->row.lease_token = cd->token;
        cd->row.lease_expires = op->lease_expires;
        cd->row.state = ERRAND_STATE_PENDING;
        op->n_claimed++;
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_CLAIM_REPEAT", err);
    if (step == SQLITE_DONE)
        return 0;
    if (!(s = sqlite_conn_stmt(c, SQL_LEASE_RENEW, err)))
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, cd->rowid);
    sqlite3_bind_int64(s, 2, op->lease_expires);
    return sqlite_conn_step_done(c, s, SQL_LEASE_RENEW, err);
}

/* A claim whose request id was seen before: answers what that claim handed out and nobody
 * changed since (see store.h). *seen: the id was known. */
static int claim_repeat(struct sqlite_conn *c, struct claim_op *op, bool *seen, errand_error *err)
{
    *seen = false;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_REQUEST_GET, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, op->req->request_id);
    int step = sqlite3_step(s);
    char *leases = step == SQLITE_ROW ? mem_strdup(sqlite_col_text(s, 0)) : NULL;
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_CLAIM_REQUEST_GET", err);
    if (step == SQLITE_DONE)
        return 0;
    if (!leases)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    *seen = true;
    int rc = 0;
    size_t room = 2 * (size_t)op->limit;
    char *save = NULL;
    for (char *pair = strtok_r(leases, ",", &save); rc == 0 && pair && op->n_cand < room;
         pair = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(pair, ':');
        if (colon) {
            *colon = '\0';
            rc = repeat_one(c, op, pair, colon + 1, err);
        }
    }
    mem_free(leases);
    return rc;
}

/* Remembers the leases a claim with a request id handed out ("<id>:<token>,..."). */
static int claim_remember(struct sqlite_conn *c, const struct claim_op *op, errand_error *err)
{
    size_t size = op->n_claimed * (UUID_STR_LEN + 2 * LEASE_TOKEN_BYTES + 2) + 1, len = 0;
    char *leases = mem_alloc(size);
    if (!leases)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    leases[0] = '\0';
    for (size_t i = 0; i < op->n_cand; i++) {
        const struct claim_candidate *cd = &op->cand[i];
        if (cd->claimed)
            len += (size_t)snprintf(leases + len, size - len, "%s%s:%s", len ? "," : "", cd->row.id,
                                    cd->token);
    }
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_REQUEST_NEW, err);
    int rc = ERRAND_ESTORE;
    if (s) {
        sqlite_bind_text(s, 1, op->req->request_id);
        sqlite3_bind_int64(s, 2, op->now_ms);
        sqlite_bind_text(s, 3, leases);
        rc = sqlite_conn_step_done(c, s, SQL_CLAIM_REQUEST_NEW, err);
    }
    mem_free(leases);
    return rc;
}

/* A tag limit may hold back some of the first runs of a queue: look further into it. */
static int widen(struct claim_op *op, errand_error *err)
{
    int keep = op->limit * SQLITE_LIMITS_LOOKAHEAD;
    void *p = mem_realloc(op->cand, 2 * (size_t)keep * sizeof *op->cand);
    if (!p)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    op->cand = p;
    memset(op->cand + 2 * op->keep, 0, 2 * (size_t)(keep - op->keep) * sizeof *op->cand);
    op->keep = keep;
    return 0;
}

static int claim_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct claim_op *op = arg;
    int rc;
    if (op->req->request_id) {
        bool seen = false;
        if ((rc = claim_repeat(c, op, &seen, err)) < 0 || seen)
            return rc;
    }
    if ((rc = store_sqlite_promote_due(c, op->now_ms, NULL, err)) < 0)
        return rc;
    struct claim_limits limits;
    if ((rc = sqlite_limits_begin(c, &limits, op->now_ms, err)) < 0)
        return rc;
    if (limits.tags_limited && (rc = widen(op, err)) < 0)
        goto done;
    for (size_t t = 0; t < op->req->n_tasks; t++) {
        bool full = false;
        if ((rc = sqlite_limits_task_full(c, &limits, op->req->tasks[t], &full, err)) < 0 ||
            (!full && (rc = collect_candidates(c, op, op->req->tasks[t], err)) < 0))
            goto done;
    }
    struct state_decision d = state_on_claim(ERRAND_STATE_SCHEDULED);
    struct run_count_delta counts = {0};
    for (size_t i = 0; i < op->n_cand && op->n_claimed < (size_t)op->limit; i++) {
        struct claim_candidate *cd = &op->cand[i];
        bool ok = true, limited = false;
        if ((limits.tasks_limited || limits.tags_limited || limits.rates) &&
            (rc = sqlite_limits_admit(c, &limits, cd->row.task, cd->tags, &ok, &limited, err)) < 0)
            goto done;
        if (!ok)
            continue; /* a limit it falls under is full: it waits in the queue */
        if ((rc = claim_one(c, op, cd, &d, &counts, err)) < 0)
            goto done;
        if (limited && cd->claimed &&
            (rc = sqlite_limits_hold(c, &limits, cd->rowid, cd->row.id, cd->row.task, cd->tags,
                                     op->now_ms, err)) < 0)
            goto done;
    }
    if (limits.held_until_ms && op->req->held_until_ms)
        *op->req->held_until_ms = limits.held_until_ms;
    sqlite_limits_end(&limits);
    if ((rc = sqlite_counts_apply(c, &counts, op->now_ms, err)) < 0 ||
        (op->req->request_id && op->n_claimed > 0 && (rc = claim_remember(c, op, err)) < 0))
        return rc;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WORKER_CLAIMED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, op->req->worker);
    sqlite_bind_text(s, 2, op->tasks_json);
    sqlite3_bind_int64(s, 3, op->now_ms);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)op->n_claimed);
    sqlite3_bind_int(s, 5, STORE_SQLITE_WORKER_SEEN_MS);
    return sqlite_conn_step_done(c, s, SQL_WORKER_CLAIMED, err);
done:
    sqlite_limits_end(&limits);
    return rc;
}

/* Steps statement s (bound, on connection c) once: *found = it returned a row. */
static int exists(struct sqlite_conn *c, sqlite3_stmt *s, enum sql_id id, bool *found,
                  errand_error *err)
{
    int step = sqlite3_step(s);
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sqlite_conn_fail(c, sqlite_sql_name(id), err);
    *found = step == SQLITE_ROW;
    return 0;
}

/* Whether the claim op could change anything: a ready run of one of its tasks, a delayed run
 * that is due (the op would promote it), or the worker's row due for a refresh (the op's
 * SQL_WORKER_CLAIMED would write). Read on a reader connection, so the empty claims of idle
 * workers, and the long-poll rechecks that every submission wakes, never queue on the
 * writer. A run committed after this look signals NOTIFY_RUNS_DUE after its commit, and
 * the long-poll listened before calling: it claims again at once. */
static int claim_may_write(struct store_sqlite *st, const struct claim_op *op, bool *out,
                           errand_error *err)
{
    *out = true;
    struct sqlite_conn *c = sqlite_pool_acquire(st->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err);
    bool found = false;
    if (rc == 0 && op->req->request_id) { /* sent again: the writer answers it */
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_REQUEST_GET, err);
        if (!s)
            rc = ERRAND_ESTORE;
        else {
            sqlite_bind_text(s, 1, op->req->request_id);
            rc = exists(c, s, SQL_CLAIM_REQUEST_GET, &found, err);
        }
    }
    for (size_t t = 0; rc == 0 && !found && t < op->req->n_tasks; t++) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_CLAIM_READY_EXISTS, err);
        if (!s) {
            rc = ERRAND_ESTORE;
            break;
        }
        sqlite_bind_text(s, 1, op->req->tasks[t]);
        sqlite3_bind_int64(s, 2, op->now_ms);
        rc = exists(c, s, SQL_CLAIM_READY_EXISTS, &found, err);
    }
    if (rc == 0 && !found) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_DELAYED_DUE_EXISTS, err);
        if (!s)
            rc = ERRAND_ESTORE;
        else {
            sqlite3_bind_int64(s, 1, op->now_ms);
            rc = exists(c, s, SQL_DELAYED_DUE_EXISTS, &found, err);
        }
    }
    bool fresh = false;
    if (rc == 0 && !found) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WORKER_FRESH, err);
        if (!s)
            rc = ERRAND_ESTORE;
        else {
            sqlite_bind_text(s, 1, op->req->worker);
            sqlite_bind_text(s, 2, op->tasks_json);
            sqlite3_bind_int64(s, 3, op->now_ms - STORE_SQLITE_WORKER_SEEN_MS);
            rc = exists(c, s, SQL_WORKER_FRESH, &fresh, err);
        }
    }
    errand_error ignored;
    sqlite_conn_run(c, SQL_COMMIT, &ignored);
    sqlite_pool_release(st->readers, c);
    if (rc == 0)
        *out = found || !fresh;
    return rc;
}

int64_t store_sqlite_lease_ms(const struct store_sqlite *s, int lease_seconds)
{
    int secs = lease_seconds > 0 ? lease_seconds : s->default_lease_seconds;
    return (int64_t)secs * MS_PER_S;
}

/* Draws the lease tokens (on the caller's thread: the CSPRNG takes locks, the writer need
 * not) and runs the claim op on the writer. */
static int claim_write(struct store_sqlite *s, struct claim_op *op, errand_error *err)
{
    size_t limit = (size_t)op->limit;
    op->cand = mem_calloc(2 * limit, sizeof *op->cand);
    op->tokens = mem_alloc(limit * 2 * LEASE_TOKEN_BYTES + 1);
    if (!op->cand || !op->tokens)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    if (token_random_hex(limit * LEASE_TOKEN_BYTES, op->tokens) < 0)
        return error_set(err, ERRAND_EIO, NULL, "cannot generate lease tokens");
    return sqlite_writer_run_relaxed(s->writer, claim_in_writer, op, err);
}

int store_sqlite_claim(store *st, const struct claim_request *req, int64_t now_ms,
                       struct run_list *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    out->rows = NULL;
    out->n = 0;
    struct claim_op op = {
        .req = req,
        .limit = req->limit,
        .keep = req->limit,
        .now_ms = now_ms,
        .lease_expires = now_ms + store_sqlite_lease_ms(s, req->lease_seconds),
    };
    int rc = 0;
    op.tasks_json = store_claim_tasks_json(req);
    if (!op.tasks_json) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    /* The look comes first: an empty claim (the idle case) then costs no candidate buffer
       and no lease tokens from the CSPRNG. */
    bool may_write = true;
    if ((rc = claim_may_write(s, &op, &may_write, err)) < 0 ||
        (may_write && (rc = claim_write(s, &op, err)) < 0))
        goto done;
    rc = claim_candidates_hand_out(op.cand, op.n_cand, op.n_claimed, out, err);
done:
    if (rc < 0)
        run_list_clear(out);
    if (op.cand)
        candidates_clear(&op);
    mem_free(op.cand);
    mem_free(op.tokens);
    mem_free((char *)op.tasks_json);
    return rc;
}
