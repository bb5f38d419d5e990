/* SPDX-License-Identifier: MIT */
/*
 * store_pg_claim.c — claims on the PostgreSQL store (store_claim), with the semantics of
 * the SQLite store (store_sqlite_claim.c explains them: the look before a write, ready and
 * delayed runs, claim order, repeated claims). What differs from SQLite is how several
 * servers stay out of each other's way:
 *
 *  - a claim takes its candidates with FOR UPDATE SKIP LOCKED: two claims at once, on any
 *    servers, never wait for each other and never take the same run; the update that
 *    claims a run says `AND state_type = 0` as well, and claims its runs with one statement
 *    (UPDATE ... FROM unnest(...)), not one per run;
 *  - promoting delayed runs takes them with SKIP LOCKED too;
 *  - a claim under concurrency or rate limits locks the limits' rows before counting their
 *    slots, so claims under one limit take turns (pg_limits.c).
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
#include "store/postgres/pg_limits.h"
#include "store/postgres/store_pg.h"

/* The task (a parameter) is not paused. */
#define PG_NOT_PAUSED(task)                                                                        \
    "NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.task = " task " AND paused)"
/* The columns of a claimed run. */
#define CLAIM_COLUMNS                                                                              \
    "id, priority, scheduled_at, task, parameters, attempt, max_attempts, timeout_seconds, "       \
    "persist_result, cache_key, n_states, traceparent, tags"

/* --- claim ---------------------------------------------------------------------------- */

struct claim_op {
    const struct claim_request *req;
    const char *tasks_json;
    char *tokens; /* limit tokens of 2 * LEASE_TOKEN_BYTES hex, back to back (owned) */
    int limit;
    int keep; /* candidates kept per task: limit, or more when a tag limit may hold some back */
    int64_t now_ms;
    int64_t lease_expires;
    struct claim_candidate *cand; /* room for keep * (n_tasks + 1) */
    size_t room;
    size_t n_cand;
    size_t n_claimed;
};

static void candidates_clear(struct claim_op *op)
{
    claim_candidates_clear(op->cand, op->n_cand);
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
    rr->traceparent = pg_get_text(r, row, 11);
    return claim_candidate_own(cd, pg_get_text(r, row, 12), err);
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
    pg_p_int(&p, op->keep);
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

int store_pg_promote_due(struct pg_conn *c, int64_t now_ms, int *n_promoted, errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET delayed = false WHERE id IN (SELECT id FROM task_runs "
        "WHERE state_type = 0 AND delayed AND scheduled_at <= $1 ORDER BY scheduled_at "
        "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING task";
    struct pg_params p = {0};
    pg_p_i64(&p, now_ms);
    pg_p_int(&p, STORE_PG_PROMOTE_BATCH);
    PGresult *r = pg_query(c, sql, &p, "promoting due runs", err);
    if (!r)
        return ERRAND_ESTORE;
    /* Each promoted run leaves its task's count of delayed runs (task_counts). */
    struct run_count_delta counts = {0};
    int rc = 0;
    int64_t n = PQntuples(r);
    for (int i = 0; rc == 0 && i < (int)n; i++)
        rc = pg_count_delayed(c, &counts, pg_get_text(r, i, 0), -1, now_ms, err);
    PQclear(r);
    if (rc == 0)
        rc = pg_counts_apply(c, &counts, now_ms, err);
    if (rc == 0 && n_promoted)
        *n_promoted = (int)n;
    if (rc == 0 && n > 0)
        pg_signal_due(c, NULL);
    return rc;
}

/* Moves candidates [first, first + n) from SCHEDULED to PENDING under new leases with one
 * UPDATE, and records what it implies for those it moved (all, unless another server took
 * one meanwhile), in candidate order. */
static int claim_wave(struct pg_conn *c, struct claim_op *op, size_t first, size_t n,
                      const struct state_decision *d, struct run_count_delta *counts,
                      errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET state_type = $1, state_name = $2, state_timestamp = $3, "
        "state_message = '', n_states = u.seq, attempt = u.attempt, worker = $4, "
        "lease_token = u.token, lease_expires = $5 FROM unnest($6::text[], $7::text[], "
        "$8::integer[], $9::integer[], $10::integer[]) WITH ORDINALITY "
        "AS u(id, token, seq, attempt, from_state, k) "
        "WHERE task_runs.id = u.id AND task_runs.state_type = u.from_state RETURNING u.k";
    /* id, token, seq, attempt, and the state it is claimed from: compared as a join clause,
     * so that the planner cannot read the runs through the partial index of every SCHEDULED
     * run (task_runs_scheduled) when its statistics still think that few (after a burst of
     * submissions): the runs are found by id, however many are queued. */
    struct pg_array col[5] = {0};
    for (size_t w = 0; w < n; w++) {
        struct claim_candidate *cd = &op->cand[first + w];
        memcpy(cd->token, op->tokens + (op->n_claimed + w) * 2 * LEASE_TOKEN_BYTES,
               2 * LEASE_TOKEN_BYTES);
        cd->token[2 * LEASE_TOKEN_BYTES] = '\0';
        pg_array_text(&col[0], cd->row.id);
        pg_array_text(&col[1], cd->token);
        pg_array_i64(&col[2], cd->n_states + 1);
        pg_array_i64(&col[3], cd->row.attempt + 1);
        pg_array_i64(&col[4], ERRAND_STATE_SCHEDULED);
    }
    struct pg_params p = {0};
    pg_p_int(&p, (int)d->next);
    pg_p_text(&p, d->name);
    pg_p_i64(&p, op->now_ms);
    pg_p_text(&p, op->req->worker);
    pg_p_i64(&p, op->lease_expires);
    int rc = 0;
    for (int k = 0; k < 5; k++) {
        if (rc == 0)
            rc = pg_array_check(&col[k], err);
        pg_p_array(&p, &col[k]);
    }
    PGresult *r = rc == 0 ? pg_query(c, sql, &p, "claiming runs", err) : NULL;
    if (rc == 0 && !r)
        rc = ERRAND_ESTORE;
    for (int i = 0; r && i < PQntuples(r); i++) {
        int64_t k = pg_get_i64(r, i, 0);
        if (k >= 1 && (size_t)k <= n)
            op->cand[first + (size_t)k - 1].claimed = true;
    }
    PQclear(r);
    for (int k = 0; k < 5; k++)
        pg_array_free(&col[k]);
    for (size_t w = 0; rc == 0 && w < n; w++) {
        struct claim_candidate *cd = &op->cand[first + w];
        if (!cd->claimed)
            continue;
        cd->row.scheduled_at = cd->scheduled_at; /* when it became due: its queue wait ends now */
        cd->row.attempt++;
        cd->row.lease_token = cd->token;
        cd->row.lease_expires = op->lease_expires;
        cd->row.state = d->next;
        op->n_claimed++;
        if ((rc = pg_count_move(c, counts, cd->row.task, cd->row.id, ERRAND_STATE_SCHEDULED,
                                d->next, op->now_ms, err)) == 0)
            rc = pg_state_append(c, cd->row.id, cd->row.task, cd->n_states + 1, d->next, d->name,
                                 op->now_ms, "", err);
    }
    return rc;
}

/* Claims the first `upto` candidates in order until the limit: a wave of as many as are
 * missing, again while some were taken meanwhile and candidates remain. */
static int claim_candidates(struct pg_conn *c, struct claim_op *op, size_t upto,
                            struct run_count_delta *counts, errand_error *err)
{
    struct state_decision d = state_on_claim(ERRAND_STATE_SCHEDULED);
    size_t next = 0;
    int rc = 0;
    while (rc == 0 && op->n_claimed < (size_t)op->limit && next < upto) {
        size_t n = (size_t)op->limit - op->n_claimed;
        if (n > upto - next)
            n = upto - next;
        rc = claim_wave(c, op, next, n, &d, counts, err);
        next += n;
    }
    return rc;
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
    int rc = pg_defer(c, sql, &p, "remembering a claim request", err);
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
    return pg_defer(c, sql, &p, "recording a worker", err);
}

/* A tag limit may hold back some of the first runs of a queue: look further into it. */
static int widen(struct claim_op *op, errand_error *err)
{
    int keep = op->limit * PG_LIMITS_LOOKAHEAD;
    if (op->keep >= keep)
        return 0;
    size_t room = (size_t)keep * (op->req->n_tasks + 1);
    void *p = mem_realloc(op->cand, room * sizeof *op->cand);
    if (!p)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    op->cand = p;
    memset(op->cand + op->room, 0, (room - op->room) * sizeof *op->cand);
    op->room = room;
    op->keep = keep;
    return 0;
}

/* Puts the candidates the limits let go first, in order, up to the claim's limit (their
 * slots counted as taken), *admitted of them, once the tag limits they meet are locked. */
static int admit_candidates(struct pg_conn *c, struct claim_op *op, struct pg_claim_limits *l,
                            size_t *admitted, errand_error *err)
{
    *admitted = 0;
    for (size_t i = 0; i < op->n_cand; i++)
        pg_limits_meet_tags(l, op->cand[i].tags);
    int rc = pg_limits_lock_tags(c, l, err);
    for (size_t i = 0; rc == 0 && i < op->n_cand && *admitted < (size_t)op->limit; i++) {
        if (!pg_limits_admit(l, op->cand[i].row.task, op->cand[i].tags))
            continue;         /* a limit it falls under is full: it waits in the queue */
        if (i != *admitted) { /* the admitted keep their order; the others are not claimed */
            struct claim_candidate held_back = op->cand[*admitted];
            op->cand[*admitted] = op->cand[i];
            op->cand[i] = held_back;
        }
        (*admitted)++;
    }
    return rc;
}

/* The claim under limits (pg_limits.c): their rows locked, the full tasks skipped, the
 * candidates admitted in order, the slots of those claimed taken. */
static int claim_limited(struct pg_conn *c, struct claim_op *op, struct pg_claim_limits *l,
                         struct run_count_delta *counts, errand_error *err)
{
    int rc = l->tags_limited ? widen(op, err) : 0;
    for (size_t t = 0; rc == 0 && t < op->req->n_tasks; t++)
        if (!pg_limits_task_full(l, op->req->tasks[t]))
            rc = collect_candidates(c, op, op->req->tasks[t], err);
    if (rc < 0)
        return rc;
    if (op->req->n_tasks > 1 && op->n_cand > 1)
        qsort(op->cand, op->n_cand, sizeof *op->cand, claim_candidate_cmp);
    size_t admitted = 0;
    if ((rc = admit_candidates(c, op, l, &admitted, err)) < 0 ||
        (rc = claim_candidates(c, op, admitted, counts, err)) < 0)
        return rc;
    for (size_t i = 0; i < admitted; i++)
        if (op->cand[i].claimed)
            pg_limits_hold(l, op->cand[i].row.id, op->cand[i].row.task, op->cand[i].tags);
    if ((rc = pg_limits_write(c, l, err)) == 0 && l->held_until_ms && op->req->held_until_ms)
        *op->req->held_until_ms = l->held_until_ms;
    return rc;
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
    struct pg_claim_limits limits;
    struct run_count_delta counts = {0};
    rc = pg_limits_begin(c, &limits, op->req->tasks, op->req->n_tasks, op->now_ms, err);
    if (rc == 0 && pg_limits_any(&limits)) {
        rc = claim_limited(c, op, &limits, &counts, err);
    } else {
        for (size_t t = 0; rc == 0 && t < op->req->n_tasks; t++)
            rc = collect_candidates(c, op, op->req->tasks[t], err);
        if (rc == 0 && op->req->n_tasks > 1 && op->n_cand > 1)
            qsort(op->cand, op->n_cand, sizeof *op->cand, claim_candidate_cmp);
        if (rc == 0)
            rc = claim_candidates(c, op, op->n_cand, &counts, err);
    }
    pg_limits_end(&limits);
    if (rc < 0 || (rc = pg_counts_defer(c, &counts, op->now_ms, err)) < 0 ||
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

/* One statement (one snapshot, one round trip): a repeated request id, or a due run of one
 * of the tasks, or a delayed run to promote; or else whether the worker's row is fresh.
 * Each task's queue is looked at through the first entry of its ready queue in claim order
 * (a LATERAL subquery with LIMIT 1 is run once per task, never joined as a whole): a semi
 * join would let the planner hash every ready run of the tasks when its statistics think
 * they are few. */
static int may_write_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] =
        "SELECT EXISTS (SELECT 1 FROM claim_requests WHERE id = $1) "
        "OR EXISTS (SELECT 1 FROM unnest($2::text[]) AS t(task) CROSS JOIN LATERAL (SELECT 1 "
        "FROM task_runs WHERE state_type = 0 AND NOT delayed AND task = t.task "
        "AND scheduled_at <= $3 ORDER BY priority DESC, scheduled_at, id LIMIT 1) AS due "
        "WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.task = t.task AND paused)) "
        "OR EXISTS (SELECT 1 FROM task_runs WHERE state_type = 0 AND delayed "
        "AND scheduled_at <= $3), "
        "EXISTS (SELECT 1 FROM workers WHERE name = $4 AND tasks = $5 AND last_seen >= $6)";
    struct may_write_op *m = arg;
    const struct claim_op *op = m->claim;
    m->out = true;
    struct pg_array tasks = {0};
    for (size_t t = 0; t < op->req->n_tasks; t++)
        pg_array_text(&tasks, op->req->tasks[t]);
    int rc = pg_array_check(&tasks, err);
    struct pg_params p = {0};
    pg_p_text(&p, op->req->request_id);
    pg_p_array(&p, &tasks);
    pg_p_i64(&p, op->now_ms);
    pg_p_text(&p, op->req->worker);
    pg_p_text(&p, op->tasks_json);
    pg_p_i64(&p, op->now_ms - STORE_PG_WORKER_SEEN_MS);
    PGresult *r = rc == 0 ? pg_query(c, sql, &p, "looking for claimable runs", err) : NULL;
    if (rc == 0 && !r)
        rc = ERRAND_ESTORE;
    if (r && PQntuples(r) == 1)
        m->out = pg_get_bool(r, 0, 0) || !pg_get_bool(r, 0, 1);
    PQclear(r);
    pg_array_free(&tasks);
    return rc;
}

int store_pg_claim(store *st, const struct claim_request *req, int64_t now_ms, struct run_list *out,
                   errand_error *err)
{
    struct store_pg *s = store_pg_of(st);
    out->rows = NULL;
    out->n = 0;
    struct claim_op op = {
        .req = req,
        .limit = req->limit,
        .now_ms = now_ms,
        .lease_expires = now_ms + store_pg_lease_ms(s, req->lease_seconds),
    };
    int rc = 0;
    if (!(op.tasks_json = store_claim_tasks_json(req))) {
        rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        goto done;
    }
    struct may_write_op look = {.claim = &op};
    if ((rc = store_pg_read_single(s, may_write_in_tx, &look, err)) < 0 || !look.out)
        goto done;
    op.keep = op.limit;
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
    if ((rc = store_pg_write_lazy(s, claim_in_tx, &op, err)) < 0)
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
