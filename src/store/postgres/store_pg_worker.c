/* SPDX-License-Identifier: MIT */
/*
 * store_pg_worker.c — the worker protocol on the PostgreSQL store: claim, heartbeat, report
 * and the lease sweep, with the semantics of the SQLite store (store_sqlite_claim.c and
 * store_sqlite_worker.c explain them: lease checks, resumed leases, redeliveries, repeated
 * claims and reports). What differs is how several servers stay out of each other's way:
 *
 *  - a claim takes its candidates with FOR UPDATE SKIP LOCKED: two claims at once, on any
 *    servers, never wait for each other and never take the same run; the update that
 *    claims a run says `AND state_type = 0` as well;
 *  - a report, a hand-back or a resumed lease locks its run first (FOR UPDATE), and the
 *    transition's UPDATE repeats the lease token it was planned from (pg_transition.c);
 *  - a heartbeat extends a lease with `AND lease_token = $n` in the UPDATE;
 *  - the sweep takes expired leases with FOR UPDATE SKIP LOCKED, so sweepers on every
 *    server share the work and never expire a lease twice;
 *  - promoting delayed runs takes them with SKIP LOCKED too.
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
#include "store/postgres/store_pg.h"

#define LEASE_TOKEN_BYTES 16 /* 128 random bits, 32 hex characters */
#define SWEEP_BATCH 256      /* leases expired per transaction */
#define REPORT_BATCH_MEMORY_MS (60LL * 60 * 1000)
#define PRUNE_BATCH 2000
#define LEASE_KEEP_NUM 3
#define LEASE_KEEP_DEN 4
#define LEASE_EXPIRED_FMT "lease expired on worker %s"
#define HANDED_BACK_FMT "handed back by worker %s"
#define HANDED_BACK_RUNNING_FMT "handed back by worker %s before the task finished"
#define RESUMED_FMT "lease resumed by worker %s after it expired; the run was not claimed again"
#define FAILED_MESSAGE "the task failed"
#define MESSAGE_MAX 512

/* The task (a parameter) is not paused. */
#define PG_NOT_PAUSED(task)                                                                        \
    "NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.task = " task " AND paused)"
/* The columns of a claimed run. */
#define CLAIM_COLUMNS                                                                              \
    "id, priority, scheduled_at, task, parameters, attempt, max_attempts, timeout_seconds, "       \
    "persist_result, cache_key, n_states"

/* --- claim ---------------------------------------------------------------------------- */

struct claim_candidate {
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
    struct claim_candidate *cand; /* room for limit * (n_tasks + 1) */
    size_t room;
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

static int read_candidate(const PGresult *r, int row, struct claim_candidate *cd, errand_error *err)
{
    memset(cd, 0, sizeof *cd);
    struct run_row *rr = &cd->row;
    rr->id = pg_get_text(r, row, 0);
    cd->priority = pg_get_int(r, row, 1);
    cd->scheduled_at = pg_get_i64(r, row, 2);
    rr->task = pg_get_text(r, row, 3);
    rr->parameters = pg_get_text(r, row, 4);
    rr->attempt = pg_get_int(r, row, 5);
    rr->max_attempts = pg_get_int(r, row, 6);
    rr->timeout_seconds = pg_get_double(r, row, 7);
    rr->persist_result = pg_get_opt_int(r, row, 8);
    rr->cache_key = pg_get_text(r, row, 9);
    cd->n_states = pg_get_int(r, row, 10);
    int rc = run_row_own_strings(rr, err);
    if (rc < 0)
        memset(rr, 0, sizeof *rr);
    return rc;
}

/* Adds the due runs of one task to the candidates, locked, skipping runs another claim has
 * locked. */
static int collect_candidates(struct pg_conn *c, struct claim_op *op, const char *task,
                              errand_error *err)
{
    static const char sql[] =
        "SELECT " CLAIM_COLUMNS " FROM task_runs "
        "WHERE state_type = 0 AND NOT delayed AND task = $1 AND scheduled_at <= $2 "
        "AND " PG_NOT_PAUSED("$1") " ORDER BY priority DESC, scheduled_at, id LIMIT $3 "
                                   "FOR UPDATE SKIP LOCKED";
    struct pg_params p = {0};
    pg_p_text(&p, task);
    pg_p_i64(&p, op->now_ms);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "finding runs to claim", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && op->n_cand < op->room; i++) {
        bool dup = false; /* a task named twice */
        for (size_t k = 0; k < op->n_cand && !dup; k++)
            dup = strcmp(op->cand[k].row.id, pg_get_text(r, i, 0)) == 0;
        if (!dup && (rc = read_candidate(r, i, &op->cand[op->n_cand], err)) == 0)
            op->n_cand++;
    }
    PQclear(r);
    return rc;
}

int store_pg_promote_due(struct pg_conn *c, int64_t now_ms, int *n_promoted, errand_error *err);

int store_pg_promote_due(struct pg_conn *c, int64_t now_ms, int *n_promoted, errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET delayed = false WHERE id IN (SELECT id FROM task_runs "
        "WHERE state_type = 0 AND delayed AND scheduled_at <= $1 ORDER BY scheduled_at "
        "LIMIT $2 FOR UPDATE SKIP LOCKED)";
    struct pg_params p = {0};
    pg_p_i64(&p, now_ms);
    pg_p_int(&p, STORE_PG_PROMOTE_BATCH);
    int64_t n = 0;
    int rc = pg_command(c, sql, &p, "promoting due runs", &n, err);
    if (rc == 0 && n_promoted)
        *n_promoted = (int)n;
    if (rc == 0 && n > 0)
        pg_signal_due(c, NULL);
    return rc;
}

/* Moves one SCHEDULED run to PENDING under a new lease and records the state. */
static int claim_one(struct pg_conn *c, struct claim_op *op, struct claim_candidate *cd,
                     const struct state_decision *d, struct run_count_delta *counts,
                     errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET state_type = $2, state_name = $3, state_timestamp = $4, "
        "state_message = '', n_states = $8, attempt = $9, worker = $5, lease_token = $6, "
        "lease_expires = $7 WHERE id = $1 AND state_type = 0";
    memcpy(cd->token, op->tokens + op->n_claimed * 2 * LEASE_TOKEN_BYTES, 2 * LEASE_TOKEN_BYTES);
    cd->token[2 * LEASE_TOKEN_BYTES] = '\0';
    int seq = cd->n_states + 1;
    struct pg_params p = {0};
    pg_p_text(&p, cd->row.id);
    pg_p_int(&p, (int)d->next);
    pg_p_text(&p, d->name);
    pg_p_i64(&p, op->now_ms);
    pg_p_text(&p, op->req->worker);
    pg_p_text(&p, cd->token);
    pg_p_i64(&p, op->lease_expires);
    pg_p_int(&p, seq);
    pg_p_int(&p, cd->row.attempt + 1);
    int64_t changed = 0;
    int rc = pg_command(c, sql, &p, "claiming a run", &changed, err);
    if (rc < 0 || changed != 1)
        return rc;
    cd->claimed = true;
    cd->row.attempt++;
    cd->row.lease_token = cd->token;
    cd->row.lease_expires = op->lease_expires;
    cd->row.state = d->next;
    op->n_claimed++;
    if ((rc = pg_count_move(c, counts, cd->row.task, cd->row.id, ERRAND_STATE_SCHEDULED, d->next,
                            op->now_ms, err)) < 0)
        return rc;
    return pg_state_append(c, cd->row.id, seq, d->next, d->name, op->now_ms, "", err);
}

/* One run a claim sent again handed out before, if it is still PENDING under that token:
 * answered again, its lease renewed. */
static int repeat_one(struct pg_conn *c, struct claim_op *op, const char *id, const char *token,
                      errand_error *err)
{
    static const char sql[] = "UPDATE task_runs SET lease_expires = $3 "
                              "WHERE id = $1 AND state_type = 1 AND lease_token = $2 "
                              "RETURNING " CLAIM_COLUMNS;
    struct pg_params p = {0};
    pg_p_text(&p, id);
    pg_p_text(&p, token);
    pg_p_i64(&p, op->lease_expires);
    PGresult *r = pg_query(c, sql, &p, "answering a claim again", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    struct claim_candidate *cd = &op->cand[op->n_cand];
    if (PQntuples(r) == 1 && (rc = read_candidate(r, 0, cd, err)) == 0) {
        op->n_cand++;
        snprintf(cd->token, sizeof cd->token, "%s", token);
        cd->claimed = true;
        cd->row.lease_token = cd->token;
        cd->row.lease_expires = op->lease_expires;
        cd->row.state = ERRAND_STATE_PENDING;
        op->n_claimed++;
    }
    PQclear(r);
    return rc;
}

/* A claim whose request id was seen before: answers what that claim handed out and nobody
 * changed since. *seen: the id was known. */
static int claim_repeat(struct pg_conn *c, struct claim_op *op, bool *seen, errand_error *err)
{
    static const char sql[] = "SELECT leases FROM claim_requests WHERE id = $1";
    *seen = false;
    struct pg_params p = {0};
    pg_p_text(&p, op->req->request_id);
    PGresult *r = pg_query(c, sql, &p, "reading a claim request", err);
    if (!r)
        return ERRAND_ESTORE;
    char *leases = PQntuples(r) == 1 ? mem_strdup(pg_get_text(r, 0, 0)) : NULL;
    bool known = PQntuples(r) == 1;
    PQclear(r);
    if (!known)
        return 0;
    if (!leases)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    *seen = true;
    int rc = 0;
    char *save = NULL;
    for (char *pair = strtok_r(leases, ",", &save); rc == 0 && pair && op->n_cand < op->room;
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
static int claim_remember(struct pg_conn *c, const struct claim_op *op, errand_error *err)
{
    static const char sql[] = "INSERT INTO claim_requests (id, at, leases) VALUES ($1, $2, $3) "
                              "ON CONFLICT (id) DO NOTHING";
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
    struct pg_params p = {0};
    pg_p_text(&p, op->req->request_id);
    pg_p_i64(&p, op->now_ms);
    pg_p_text(&p, leases);
    int rc = pg_command(c, sql, &p, "remembering a claim request", NULL, err);
    mem_free(leases);
    return rc;
}

static int worker_claimed(struct pg_conn *c, const struct claim_op *op, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO workers (name, tasks, last_seen, claimed) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (name) DO UPDATE SET tasks = excluded.tasks, "
        "last_seen = excluded.last_seen, claimed = workers.claimed + excluded.claimed "
        "WHERE excluded.claimed > 0 OR workers.tasks <> excluded.tasks "
        "OR workers.last_seen < excluded.last_seen - $5";
    struct pg_params p = {0};
    pg_p_text(&p, op->req->worker);
    pg_p_text(&p, op->tasks_json);
    pg_p_i64(&p, op->now_ms);
    pg_p_i64(&p, (int64_t)op->n_claimed);
    pg_p_int(&p, STORE_PG_WORKER_SEEN_MS);
    return pg_command(c, sql, &p, "recording a worker", NULL, err);
}

static int claim_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct claim_op *op = arg;
    candidates_clear(op);
    int rc;
    if (op->req->request_id) {
        bool seen = false;
        if ((rc = claim_repeat(c, op, &seen, err)) < 0 || seen)
            return rc;
    }
    if ((rc = store_pg_promote_due(c, op->now_ms, NULL, err)) < 0)
        return rc;
    for (size_t t = 0; t < op->req->n_tasks; t++)
        if ((rc = collect_candidates(c, op, op->req->tasks[t], err)) < 0)
            return rc;
    if (op->req->n_tasks > 1 && op->n_cand > 1)
        qsort(op->cand, op->n_cand, sizeof *op->cand, candidate_cmp);
    struct state_decision d = state_on_claim(ERRAND_STATE_SCHEDULED);
    struct run_count_delta counts = {0};
    for (size_t i = 0; i < op->n_cand && op->n_claimed < (size_t)op->limit; i++)
        if ((rc = claim_one(c, op, &op->cand[i], &d, &counts, err)) < 0)
            return rc;
    if ((rc = pg_counts_apply(c, &counts, op->now_ms, err)) < 0 ||
        (op->req->request_id && op->n_claimed > 0 && (rc = claim_remember(c, op, err)) < 0))
        return rc;
    return worker_claimed(c, op, err);
}

/* Whether the claim could change anything (see store_sqlite_claim.c): read first, so the
 * empty claims of idle workers do not write. */
struct may_write_op {
    const struct claim_op *claim;
    bool out;
};

static int exists(struct pg_conn *c, const char *sql, const struct pg_params *p, bool *found,
                  errand_error *err)
{
    PGresult *r = pg_query(c, sql, p, "looking for claimable runs", err);
    if (!r)
        return ERRAND_ESTORE;
    *found = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

static int may_write_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql_request[] = "SELECT 1 FROM claim_requests WHERE id = $1";
    static const char sql_ready[] =
        "SELECT 1 FROM task_runs WHERE state_type = 0 AND NOT delayed AND task = $1 "
        "AND scheduled_at <= $2 AND " PG_NOT_PAUSED("$1") " LIMIT 1";
    static const char sql_delayed[] =
        "SELECT 1 FROM task_runs WHERE state_type = 0 AND delayed AND scheduled_at <= $1 LIMIT 1";
    static const char sql_fresh[] =
        "SELECT 1 FROM workers WHERE name = $1 AND tasks = $2 AND last_seen >= $3";
    struct may_write_op *m = arg;
    const struct claim_op *op = m->claim;
    m->out = true;
    bool found = false;
    int rc = 0;
    if (op->req->request_id) {
        struct pg_params p = {0};
        pg_p_text(&p, op->req->request_id);
        rc = exists(c, sql_request, &p, &found, err);
    }
    for (size_t t = 0; rc == 0 && !found && t < op->req->n_tasks; t++) {
        struct pg_params p = {0};
        pg_p_text(&p, op->req->tasks[t]);
        pg_p_i64(&p, op->now_ms);
        rc = exists(c, sql_ready, &p, &found, err);
    }
    if (rc == 0 && !found) {
        struct pg_params p = {0};
        pg_p_i64(&p, op->now_ms);
        rc = exists(c, sql_delayed, &p, &found, err);
    }
    bool fresh = false;
    if (rc == 0 && !found) {
        struct pg_params p = {0};
        pg_p_text(&p, op->req->worker);
        pg_p_text(&p, op->tasks_json);
        pg_p_i64(&p, op->now_ms - STORE_PG_WORKER_SEEN_MS);
        rc = exists(c, sql_fresh, &p, &fresh, err);
    }
    if (rc == 0)
        m->out = found || !fresh;
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

int store_pg_claim(store *st, const struct claim_request *req, int64_t now_ms, struct run_list *out,
                   errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
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
        .lease_expires = now_ms + store_pg_lease_ms(s, req->lease_seconds),
    };
    int rc = 0;
    if (!(op.tasks_json = tasks_json_text(req))) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    struct may_write_op look = {.claim = &op};
    if ((rc = store_pg_read(s, may_write_in_tx, &look, err)) < 0 || !look.out)
        goto done;
    op.room = (size_t)op.limit * (req->n_tasks + 1);
    op.cand = mem_calloc(op.room, sizeof *op.cand);
    op.tokens = mem_alloc((size_t)op.limit * 2 * LEASE_TOKEN_BYTES + 1);
    if (!op.cand || !op.tokens) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    if (token_random_hex((size_t)op.limit * LEASE_TOKEN_BYTES, op.tokens) < 0) {
        rc = error_set(err, ERRAND_EIO, NULL, "cannot generate lease tokens");
        goto done;
    }
    if ((rc = store_pg_write(s, claim_in_tx, &op, err)) < 0)
        goto done;
    if (op.n_claimed > 0) {
        if (!(out->rows = mem_calloc(op.n_claimed, sizeof *out->rows))) {
            rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < op.n_cand; i++) {
            if (!op.cand[i].claimed)
                continue;
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

/* --- leases resumed after they ran out -------------------------------------------------- */

/* Undoes the expiry of cur's lease `token` (run_expired_lease_of checked). cur is updated. */
static int resume_expired(struct pg_conn *c, struct run_current *cur, const char *token,
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
    int rc = pg_transition_write(c, cur, &u, now_ms, counts, err);
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

static int worker_seen(struct pg_conn *c, const char *worker, int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO workers (name, tasks, last_seen, claimed) VALUES ($1, '[]', $2, 0) "
        "ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen "
        "WHERE workers.last_seen < excluded.last_seen - $3";
    if (!worker || !worker[0])
        return 0;
    struct pg_params p = {0};
    pg_p_text(&p, worker);
    pg_p_i64(&p, now_ms);
    pg_p_int(&p, STORE_PG_WORKER_SEEN_MS);
    return pg_command(c, sql, &p, "recording a worker", NULL, err);
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
    if ((rc = resume_expired(c, &cur, token, op->worker, op->now_ms, op->lease_expires, counts,
                             err)) < 0)
        return rc;
    op->out[i].status = LEASE_APPLIED;
    op->out[i].state = cur.state;
    return 0;
}

static int heartbeat_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql_check[] =
        "SELECT state_type, lease_token, ended_by FROM task_runs WHERE id = $1";
    static const char sql_extend[] = "UPDATE task_runs SET lease_expires = $2 "
                                     "WHERE id = $1 AND lease_token = $4 AND lease_expires < $3";
    struct heartbeat_op *op = arg;
    struct run_count_delta counts = {0};
    for (size_t i = 0; i < op->n; i++) {
        struct lease_answer *o = &op->out[i];
        memset(o, 0, sizeof *o);
        o->status = LEASE_UNKNOWN;
        const char *given = op->leases[i].lease_token;
        struct pg_params p = {0};
        pg_p_text(&p, op->ids[i]);
        PGresult *r = pg_query(c, sql_check, &p, "checking a lease", err);
        if (!r)
            return ERRAND_ESTORE;
        bool resume = false;
        if (PQntuples(r) == 1) {
            o->state = (errand_state)pg_get_int(r, 0, 0);
            const char *token = pg_get_text(r, 0, 1);
            bool match = state_is_leased(o->state) && token_equal(token, given);
            o->status = match ? LEASE_APPLIED : LEASE_STALE;
            o->cancel = match && o->state == ERRAND_STATE_CANCELLING;
            const char *ended = pg_get_text(r, 0, 2);
            resume = !match && o->state == ERRAND_STATE_SCHEDULED && ended && given &&
                     strlen(ended) > strlen(given);
        }
        PQclear(r);
        int rc = 0;
        if (resume)
            rc = heartbeat_resume(c, op, i, &counts, err);
        else if (o->status == LEASE_APPLIED) {
            struct pg_params q = {0};
            pg_p_text(&q, op->ids[i]);
            pg_p_i64(&q, op->lease_expires);
            pg_p_i64(&q, op->extend_below);
            pg_p_text(&q, given);
            rc = pg_command(c, sql_extend, &q, "extending a lease", NULL, err);
        }
        if (rc < 0)
            return rc;
    }
    int rc = pg_counts_apply(c, &counts, op->now_ms, err);
    return rc < 0 ? rc : worker_seen(c, op->worker, op->now_ms, err);
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
        store_pg_norm_id(leases[i].id, op.ids[i]);
    int rc = store_pg_write(s, heartbeat_in_tx, &op, err);
    mem_free(op.ids);
    return rc;
}

/* --- report --------------------------------------------------------------------------- */

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
};

/* Applies one report; a refusal is an outcome (404/409), not an error of the op. */
static int apply_report(struct pg_conn *c, struct report_op *op, size_t i, errand_error *err)
{
    const struct run_report *rep = &op->reports[i];
    struct lease_answer *o = &op->out[i];
    struct run_current cur;
    errand_error lookup;
    int rc =
        pg_run_current_get(c, op->ids[i], rep->state == ERRAND_STATE_FAILED, true, &cur, &lookup);
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
    char ended[RUN_LEASE_TOKEN_MAX + 8];
    run_ended_mark(rep, ended, sizeof ended);
    if (!run_token_matches(&cur, rep->lease_token) &&
        ((cur.ended_by[0] && token_equal(cur.ended_by, ended)) ||
         (!op->fresh && rep->state == ERRAND_STATE_RUNNING))) {
        o->status = LEASE_APPLIED; /* sent again: nothing changes */
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
    struct state_decision d = state_on_report(cur.state, rep->state, &b, rep->retryable, cur.delays,
                                              cur.n_delays, cur.jitter, random_unit(), op->now_ms);
    if (!d.allowed) {
        o->status = LEASE_STALE;
        o->reason = d.reason;
        return 0;
    }
    struct run_update u;
    run_transition_plan(&cur, &d, op->now_ms, &u);
    if (!u.lease_token)
        u.ended_by = ended;
    char why[MESSAGE_MAX], message[MESSAGE_MAX];
    bool ran = rep->state == ERRAND_STATE_COMPLETED || rep->state == ERRAND_STATE_FAILED;
    if (ran && u.started == 0 && cur.state == ERRAND_STATE_PENDING)
        u.started = cur.state_timestamp;
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
    if ((rc = pg_transition_write(c, &cur, &u, op->now_ms, &op->counts, err)) < 0)
        return rc;
    o->status = LEASE_APPLIED;
    o->state = d.next;
    return 0;
}

static int append_logs(struct pg_conn *c, const struct report_op *op, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO task_run_logs (run_id, timestamp, level, message) "
        "SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM task_runs WHERE id = $1)";
    for (size_t i = 0; i < op->n_logs; i++) {
        const struct log_entry *l = &op->logs[i];
        char id[UUID_STR_LEN];
        store_pg_norm_id(l->id, id);
        struct pg_params p = {0};
        pg_p_text(&p, id);
        pg_p_i64(&p, l->timestamp_ms ? l->timestamp_ms : op->now_ms);
        pg_p_int(&p, l->level);
        pg_p_text(&p, l->message ? l->message : "");
        int rc = pg_command(c, sql, &p, "storing a log line", NULL, err);
        if (rc < 0)
            return rc;
    }
    return 0;
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
    int rc = batch_is_new(c, op, &op->fresh, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < op->n; i++) {
        memset(&op->out[i], 0, sizeof op->out[i]);
        if ((rc = apply_report(c, op, i, err)) < 0)
            return rc;
    }
    if ((rc = pg_counts_apply(c, &op->counts, op->now_ms, err)) < 0 ||
        (op->fresh && (rc = append_logs(c, op, err)) < 0))
        return rc;
    return worker_seen(c, op->worker, op->now_ms, err);
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
    if (!(op.ids = mem_calloc(n ? n : 1, sizeof *op.ids)))
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        store_pg_norm_id(reports[i].id, op.ids[i]);
    int rc = store_pg_write(s, report_in_tx, &op, err);
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
    struct run_count_delta counts = {0};
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
        char ended[RUN_LEASE_TOKEN_MAX + sizeof RUN_EXPIRED_MARK];
        snprintf(ended, sizeof ended, "%s" RUN_EXPIRED_MARK, cur->lease_token);
        if (cur->lease_token[0])
            u.ended_by = ended;
        if ((rc = pg_transition_write(c, cur, &u, op->now_ms, &counts, err)) < 0)
            return rc;
        op->n_expired++;
    }
    return pg_counts_apply(c, &counts, op->now_ms, err);
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
