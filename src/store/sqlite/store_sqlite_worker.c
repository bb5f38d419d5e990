/*
 * store_sqlite_worker.c — the worker protocol on the SQLite store: claim, heartbeat, report
 * and the lease sweep. Each call is one writer op (all or nothing in a group commit), so a
 * claim can never hand one run to two workers (the writer is the only writer), and a report
 * with its logs lands all together or not at all.
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
#include "store/sqlite/sqlite_transition.h"
#include "store/sqlite/store_sqlite.h"

#define LEASE_TOKEN_BYTES 16 /* 128 random bits, 32 hex characters */
#define SWEEP_BATCH 256      /* leases expired per transaction */
/* How long a report batch's id is remembered: far longer than a worker retries a batch. */
#define REPORT_BATCH_MEMORY_MS (60LL * 60 * 1000)
/* How long a claim's request id is remembered: a worker retries a claim within seconds, and
 * what the claim handed out is answered again only while still PENDING under its lease. */
#define CLAIM_REQUEST_MEMORY_MS (5LL * 60 * 1000)
/* Remembered ids forgotten per sweep transaction, of each kind. */
#define PRUNE_BATCH 2000
/* Delayed runs moved into the ready queue per claim or sweep transaction: bounds the work a
 * backlog of runs all due at once adds to one transaction (the next one moves more). */
#define PROMOTE_BATCH 1000
/* A heartbeat extends a lease only when less than this fraction of a full lease is left:
 * the lease index entry then moves every quarter lease, not at every (once a second)
 * heartbeat, and a healthy worker always holds at least three quarters of its lease. */
#define LEASE_KEEP_NUM 3
#define LEASE_KEEP_DEN 4
#define LEASE_EXPIRED_FMT "lease expired on worker %s"
#define HANDED_BACK_FMT "handed back by worker %s"
#define HANDED_BACK_RUNNING_FMT "handed back by worker %s before the task finished"
#define REDELIVERY_FMT "%s; redelivery %d of %d"
#define OUT_OF_REDELIVERIES_FMT "%s; redelivered %d time%s, the limit (ERRAND_MAX_REDELIVERIES)"
#define RESUMED_FMT "lease resumed by worker %s after it expired; the run was not claimed again"
/* ended_by of a run whose lease ran out: "<token>" EXPIRED_MARK. */
#define EXPIRED_MARK ":expired"
#define FAILED_MESSAGE "the task failed"
#define MESSAGE_MAX 512
/* A worker's last_seen is rewritten at most this often unless something else changes
 * (active means seen within three lease periods, so a second is plenty precise). */
#define WORKER_SEEN_GRANULARITY_MS 1000

/* The run's place in its two budgets (state.h). */
static struct attempt_budget budget_of(const struct run_current *cur, int max_redeliveries)
{
    struct attempt_budget b = {
        .attempt = cur->attempt,
        .max_attempts = cur->max_attempts,
        .redeliveries = cur->redeliveries,
        .max_redeliveries = max_redeliveries,
    };
    return b;
}

/* The state message of a redelivery decision: why, then which redelivery it was or that
 * the limit was reached; just why for any other decision. Written into buf. */
static const char *redelivery_message(const struct state_decision *d, const struct run_update *u,
                                      int max_redeliveries, const char *why, char *buf, size_t size)
{
    if (d->count_redelivery)
        snprintf(buf, size, REDELIVERY_FMT, why, u->redeliveries, max_redeliveries);
    else if (d->out_of_redeliveries)
        snprintf(buf, size, OUT_OF_REDELIVERIES_FMT, why, max_redeliveries,
                 max_redeliveries == 1 ? "" : "s");
    else
        snprintf(buf, size, "%s", why);
    return buf;
}

/* Whether cur waits in the queue because the lease `token` ran out, claimed by nobody
 * since (see the top of the file). */
static bool expired_lease_of(const struct run_current *cur, const char *token)
{
    size_t n = token ? strlen(token) : 0;
    return cur->state == ERRAND_STATE_SCHEDULED && n > 0 &&
           strlen(cur->ended_by) == n + sizeof EXPIRED_MARK - 1 &&
           token_equal_n(cur->ended_by, token, n) && strcmp(cur->ended_by + n, EXPIRED_MARK) == 0;
}

/* Undoes the expiry of cur's lease `token`: the run is held again under it until
 * lease_expires, with the attempt and the redelivery the expiry changed given back; cur is
 * updated to match. The caller checked expired_lease_of(). */
static int resume_expired(struct sqlite_conn *c, struct run_current *cur, const char *token,
                          const char *worker, int64_t now_ms, int64_t lease_expires,
                          struct run_count_delta *counts, errand_error *err)
{
    struct state_decision d = state_on_lease_resumed(cur->state, cur->started != 0);
    struct run_update u;
    sqlite_transition_plan(cur, &d, now_ms, &u);
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

/* --- claim ------------------------------------------------------------------------- */

struct claim_candidate {
    sqlite3_int64 rowid;
    int priority;
    int64_t scheduled_at;
    int n_states;
    bool claimed;
    char token[2 * LEASE_TOKEN_BYTES + 1];
    struct run_row row; /* owned strings; the claim object once claimed */
};

struct claim_op {
    const struct claim_request *req;
    const char *tasks_json;
    char *tokens; /* limit tokens of 2 * LEASE_TOKEN_BYTES hex, back to back (owned) */
    int limit;
    int64_t now_ms;
    int64_t lease_expires;
    struct claim_candidate *cand; /* room for 2 * limit */
    size_t n_cand;
    size_t n_claimed;
};

static int candidate_cmp(const void *pa, const void *pb)
{
    const struct claim_candidate *a = pa, *b = pb;
    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->scheduled_at != b->scheduled_at)
        return a->scheduled_at < b->scheduled_at ? -1 : 1;
    return strcmp(a->row.id, b->row.id);
}

static void candidates_clear(struct claim_op *op)
{
    for (size_t i = 0; i < op->n_cand; i++)
        run_row_clear(&op->cand[i].row);
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
    return run_row_own_strings(r, err);
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
    sqlite3_bind_int(s, 3, op->limit);
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
        qsort(op->cand, op->n_cand, sizeof *op->cand, candidate_cmp);
        size_t kept = 0; /* drop duplicates (a task named twice) and the surplus */
        for (size_t i = 0; i < op->n_cand; i++) {
            bool dup = kept > 0 && op->cand[kept - 1].rowid == op->cand[i].rowid;
            if (dup || kept == (size_t)op->limit) {
                run_row_clear(&op->cand[i].row);
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
    cd->row.attempt++;
    cd->row.lease_token = cd->token;
    cd->row.lease_expires = op->lease_expires;
    cd->row.state = d->next;
    op->n_claimed++;
    run_count_move(counts, ERRAND_STATE_SCHEDULED, d->next);
    return sqlite_state_append(c, cd->row.id, seq, d->next, d->name, op->now_ms, "", err);
}

/* Moves up to PROMOTE_BATCH delayed runs that are due at now_ms into the ready queue;
 * *n_promoted (optional) counts them. */
static int promote_due(struct sqlite_conn *c, int64_t now_ms, int *n_promoted, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_PROMOTE_DUE, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int(s, 2, PROMOTE_BATCH);
    int rc = sqlite_conn_step_done(c, s, SQL_PROMOTE_DUE, err);
    if (rc == 0 && n_promoted)
        *n_promoted = sqlite3_changes(c->db);
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

static int claim_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct claim_op *op = arg;
    int rc;
    if (op->req->request_id) {
        bool seen = false;
        if ((rc = claim_repeat(c, op, &seen, err)) < 0 || seen)
            return rc;
    }
    if ((rc = promote_due(c, op->now_ms, NULL, err)) < 0)
        return rc;
    for (size_t t = 0; t < op->req->n_tasks; t++) {
        if ((rc = collect_candidates(c, op, op->req->tasks[t], err)) < 0)
            return rc;
    }
    struct state_decision d = state_on_claim(ERRAND_STATE_SCHEDULED);
    struct run_count_delta counts = {{0}};
    for (size_t i = 0; i < op->n_cand; i++) {
        if ((rc = claim_one(c, op, &op->cand[i], &d, &counts, err)) < 0)
            return rc;
    }
    if ((rc = sqlite_counts_apply(c, &counts, err)) < 0 ||
        (op->req->request_id && op->n_claimed > 0 && (rc = claim_remember(c, op, err)) < 0))
        return rc;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_WORKER_CLAIMED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, op->req->worker);
    sqlite_bind_text(s, 2, op->tasks_json);
    sqlite3_bind_int64(s, 3, op->now_ms);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)op->n_claimed);
    sqlite3_bind_int(s, 5, WORKER_SEEN_GRANULARITY_MS);
    return sqlite_conn_step_done(c, s, SQL_WORKER_CLAIMED, err);
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
            sqlite3_bind_int64(s, 3, op->now_ms - WORKER_SEEN_GRANULARITY_MS);
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

static char *tasks_json_text(const struct claim_request *req)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < req->n_tasks; i++) {
        if (json_array_append_new(arr, json_string(req->tasks[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    char *text = arr ? json_compact(arr) : NULL;
    json_decref(arr);
    return text;
}

static int64_t lease_ms(const struct store_sqlite *s, int lease_seconds)
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
    if (!req->worker || !req->worker[0])
        return error_set(err, ERRAND_EINVAL, "worker", "field 'worker' must be a non-empty string");
    if (req->n_tasks == 0)
        return error_set(err, ERRAND_EINVAL, "tasks", "field 'tasks' must name at least one task");
    if (req->limit < 1 || req->limit > WIRE_CLAIM_LIMIT_MAX)
        return error_set(err, ERRAND_EINVAL, "limit",
                         "field 'limit' must be between 1 and %d, got %d", WIRE_CLAIM_LIMIT_MAX,
                         req->limit);
    struct claim_op op = {
        .req = req,
        .limit = req->limit,
        .now_ms = now_ms,
        .lease_expires = now_ms + lease_ms(s, req->lease_seconds),
    };
    int rc = 0;
    op.tasks_json = tasks_json_text(req);
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
    /* Claimed runs whose answer cannot be built are not lost: their lease runs out and the
     * sweeper hands them out again. */
    if (op.n_claimed > 0) {
        if (!(out->rows = mem_calloc(op.n_claimed, sizeof *out->rows))) {
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < op.n_cand; i++) {
            if (!op.cand[i].claimed)
                continue;
            /* The row's lease token points into the candidate: own it with the rest. */
            struct run_row *r = &out->rows[out->n];
            *r = op.cand[i].row;
            memset(&op.cand[i].row, 0, sizeof op.cand[i].row);
            if ((rc = run_row_own_strings(r, err)) < 0) {
                run_row_clear(r);
                goto done;
            }
            out->n++;
        }
    }
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
    sqlite3_bind_int(s, 3, WORKER_SEEN_GRANULARITY_MS);
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
    if (!expired_lease_of(&cur, token))
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
        }
        sqlite3_reset(s);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return sqlite_conn_fail(c, "SQL_LEASE_CHECK", err);
        if (resume) {
            int rc = heartbeat_resume(c, op, i, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (o->status != LEASE_APPLIED)
            continue;
        if (!(s = sqlite_conn_stmt(c, SQL_LEASE_EXTEND, err)))
            return ERRAND_ESTORE;
        sqlite3_bind_int64(s, 1, rowid);
        sqlite3_bind_int64(s, 2, op->lease_expires);
        sqlite3_bind_int64(s, 3, op->extend_below);
        int rc = sqlite_conn_step_done(c, s, SQL_LEASE_EXTEND, err);
        if (rc < 0)
            return rc;
    }
    int rc = sqlite_counts_apply(c, &op->counts, err);
    return rc < 0 ? rc : worker_seen(c, op->worker, op->now_ms, err);
}

int store_sqlite_heartbeat(store *st, const char *worker, const struct lease_ref *leases, size_t n,
                           int lease_seconds, int64_t now_ms, struct lease_answer *answers,
                           errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    int64_t lease = lease_ms(s, lease_seconds);
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
        store_sqlite_norm_id(leases[i].id, op.ids[i]);
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

static bool token_matches(const struct run_current *cur, const char *token)
{
    return state_is_leased(cur->state) && cur->lease_token[0] &&
           token_equal(cur->lease_token, token);
}

static int64_t cache_expiry(const struct run_current *cur, int64_t now_ms)
{
    if (!cur->has_cache_key || !(cur->cache_expiration_seconds > 0))
        return 0; /* never expires */
    return now_ms + (int64_t)(cur->cache_expiration_seconds * MS_PER_S + 0.5);
}

/* What identifies a report that ended a lease: its token and the state it reported
 * ("<token>:<state>"), so that only the same report sent again is recognised. */
static void ended_mark(const struct run_report *rep, char *out, size_t size)
{
    snprintf(out, size, "%s:%d", rep->lease_token ? rep->lease_token : "", (int)rep->state);
}

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
    ended_mark(rep, ended, sizeof ended);
    if (!token_matches(&cur, rep->lease_token) &&
        ((cur.ended_by[0] && token_equal(cur.ended_by, ended)) ||
         (!op->fresh && rep->state == ERRAND_STATE_RUNNING))) {
        /* Sent again (its answer was lost): the report that ended this lease, or a RUNNING
         * report of a batch already applied. Applied, and nothing changes. */
        o->status = LEASE_APPLIED;
        return 0;
    }
    bool outcome_or_start = rep->state == ERRAND_STATE_COMPLETED ||
                            rep->state == ERRAND_STATE_FAILED || rep->state == ERRAND_STATE_RUNNING;
    if (!token_matches(&cur, rep->lease_token) && outcome_or_start &&
        expired_lease_of(&cur, rep->lease_token) &&
        (rc = resume_expired(c, &cur, rep->lease_token, op->worker, op->now_ms,
                             op->now_ms + op->lease_ms, &op->counts, err)) < 0)
        return rc;
    if (!token_matches(&cur, rep->lease_token)) {
        o->status = LEASE_STALE;
        o->reason = "stale lease: the lease token is not the run's current one";
        return 0;
    }
    struct attempt_budget b = budget_of(&cur, op->max_redeliveries);
    struct state_decision d = state_on_report(cur.state, rep->state, &b, rep->retryable, cur.delays,
                                              cur.n_delays, cur.jitter, random_unit(), op->now_ms);
    if (!d.allowed) {
        o->status = LEASE_STALE;
        o->reason = d.reason;
        return 0;
    }
    struct run_update u;
    sqlite_transition_plan(&cur, &d, op->now_ms, &u);
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
        u.cache_expires_at = cache_expiry(&cur, op->now_ms);
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
        u.message = redelivery_message(&d, &u, op->max_redeliveries, why, message, sizeof message);
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
        store_sqlite_norm_id(l->id, id);
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
    if ((rc = sqlite_counts_apply(c, &op->counts, err)) < 0 ||
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
        .lease_ms = lease_ms(s, 0),
        .max_redeliveries = s->max_redeliveries,
        .out = answers,
    };
    op.ids = mem_calloc(n ? n : 1, sizeof *op.ids);
    if (!op.ids)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        store_sqlite_norm_id(reports[i].id, op.ids[i]);
    int rc = sqlite_writer_run(s->writer, report_in_writer, &op, err);
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
    return rc < 0
               ? rc
               : prune_before(c, SQL_CLAIM_REQUESTS_PRUNE, now_ms - CLAIM_REQUEST_MEMORY_MS, err);
}

static int sweep_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct sweep_op *op = arg;
    op->n_found = 0;
    op->n_expired = 0;
    op->n_promoted = 0;
    /* Runs of tasks nobody claims now are promoted too, so the delayed set holds only runs
       that are not due, and the first claim after a quiet spell finds the ready queue full. */
    int prc = promote_due(c, op->now_ms, &op->n_promoted, err);
    if (prc < 0 || (prc = prune_request_ids(c, op->now_ms, err)) < 0)
        return prc;
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_LEASE_EXPIRED, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(s, 1, op->now_ms);
    sqlite3_bind_int(s, 2, SWEEP_BATCH);
    int step, rc = 0;
    struct run_count_delta counts = {{0}};
    while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = sqlite_run_current_read(s, &op->rows[op->n_found++], false, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    if (step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_LEASE_EXPIRED", err);
    for (size_t i = 0; i < op->n_found; i++) {
        const struct run_current *cur = &op->rows[i];
        struct attempt_budget b = budget_of(cur, op->max_redeliveries);
        struct state_decision d = state_on_lease_expired(cur->state, &b, op->now_ms);
        if (!d.allowed)
            continue;
        struct run_update u;
        sqlite_transition_plan(cur, &d, op->now_ms, &u);
        char why[MESSAGE_MAX], message[MESSAGE_MAX];
        snprintf(why, sizeof why, LEASE_EXPIRED_FMT, cur->worker[0] ? cur->worker : "?");
        u.message = redelivery_message(&d, &u, op->max_redeliveries, why, message, sizeof message);
        char ended[SQLITE_LEASE_TOKEN_MAX + sizeof EXPIRED_MARK];
        snprintf(ended, sizeof ended, "%s" EXPIRED_MARK, cur->lease_token);
        if (cur->lease_token[0]) /* a later report under it can still be recognised */
            u.ended_by = ended;
        if ((rc = sqlite_transition_write(c, cur, &u, op->now_ms, &counts, err)) < 0)
            return rc;
        op->n_expired++;
    }
    return sqlite_counts_apply(c, &counts, err);
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
        more = (op.n_found == SWEEP_BATCH && op.n_expired > 0) || op.n_promoted == PROMOTE_BATCH;
    } while (rc == 0 && more);
    if (counts)
        *counts = total;
    mem_free(op.rows);
    return rc;
}
