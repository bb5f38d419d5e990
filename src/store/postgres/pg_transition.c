/* SPDX-License-Identifier: MIT */
/*
 * pg_transition.c — state changes of existing runs in the PostgreSQL store, and the
 * counters kept in step with them (see store_pg.h). The rules decide (core/state.c),
 * run_transition_plan (store/run_transition.h) turns a decision into column values; this
 * file writes them, with the history row and the feed event, in the caller's transaction.
 *
 * Fencing: the UPDATE of a transition repeats the lease token it was planned from
 * (`lease_token IS NOT DISTINCT FROM u.from_token`) and the state it was read in, so a change
 * planned from a stale read — another server moved the run since — changes nothing and is
 * refused, whatever locks the caller took.
 *
 * Batches: transitions are written set-wise, one UPDATE ... FROM unnest(...) for a batch
 * (pg_transitions), and their history rows go with the connection's (pg_state_append); a
 * single transition is a batch of one.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fingerprint.h"
#include "core/mem.h"
#include "core/state.h"
#include "store/postgres/pg_deps.h"
#include "store/postgres/pg_limits.h"
#include "store/postgres/store_pg.h"

/* delayed for a row written in state $2 with scheduled_at $8 at $4 (see pg_schema.c). */
#define PG_DELAYED_WHEN(state, at, now) "(" state " = 0 AND " at " > " now ")"

int pg_state_append(struct pg_conn *c, const char *run_id, const char *task, int seq,
                    errand_state type, const char *name, int64_t at_ms, const char *message,
                    errand_error *err)
{
    struct pg_array *col = c->states;
    pg_array_text(&col[PG_STATE_RUN_ID], run_id);
    pg_array_i64(&col[PG_STATE_SEQ], seq);
    pg_array_i64(&col[PG_STATE_TYPE], (int)type);
    pg_array_text(&col[PG_STATE_NAME], name);
    pg_array_i64(&col[PG_STATE_AT], at_ms);
    pg_array_text(&col[PG_STATE_MESSAGE], message ? message : "");
    return feed_page_add(&c->feed, run_id, task, type, name, at_ms, err);
}

int pg_states_send(struct pg_conn *c, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO task_run_states (run_id, seq, type, name, timestamp, message) "
        "SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[], $4::text[], "
        "$5::bigint[], $6::text[])";
    if (c->states[PG_STATE_RUN_ID].n == 0)
        return 0;
    struct pg_params p = {0};
    for (int i = 0; i < PG_STATE_COLUMNS; i++) {
        int rc = pg_array_check(&c->states[i], err);
        if (rc < 0)
            return rc;
        pg_p_array(&p, &c->states[i]);
    }
    pg_pipeline_send(c, sql, &p, "appending states");
    return 0;
}

int pg_count_move(struct pg_conn *c, struct run_count_delta *t, const char *task,
                  const char *run_id, int from, errand_state to, int64_t now_ms, errand_error *err)
{
    if (run_tally_move(t, task, run_id, from, to))
        return 0;
    int rc = pg_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_move(t, task, run_id, from, to) ? rc : ERRAND_ESTORE;
}

int pg_count_delayed(struct pg_conn *c, struct run_count_delta *t, const char *task, int64_t delta,
                     int64_t now_ms, errand_error *err)
{
    if (run_tally_delayed(t, task, delta))
        return 0;
    int rc = pg_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_delayed(t, task, delta) ? rc : ERRAND_ESTORE;
}

int pg_count_remove(struct pg_conn *c, struct run_count_delta *t, const char *task,
                    errand_state state, int64_t now_ms, errand_error *err)
{
    if (run_tally_remove(t, task, state))
        return 0;
    int rc = pg_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_remove(t, task, state) ? rc : ERRAND_ESTORE;
}

/* The tally as columns: run_counts (state, n), task_counts (task, state, n), run_minutes
 * (task, completed, failed, cancelled), tasks' last failures (task, run id). */
enum {
    CT_STATE,
    CT_N,
    CT_TASK,
    CT_TASK_STATE,
    CT_TASK_N,
    CT_MIN_TASK,
    CT_COMPLETED,
    CT_FAILED,
    CT_CANCELLED,
    CT_FAILURE_TASK,
    CT_FAILURE_ID,
    CT_COLUMNS
};

static void tally_columns(const struct run_count_delta *t, struct pg_array *col)
{
    for (int i = 0; i < (int)(sizeof t->d / sizeof t->d[0]); i++)
        if (t->d[i] != 0) {
            pg_array_i64(&col[CT_STATE], i);
            pg_array_i64(&col[CT_N], t->d[i]);
        }
    for (size_t k = 0; k < t->n_tasks; k++) {
        const struct run_tally_task *e = &t->tasks[k];
        for (int i = 0; i < (int)(sizeof e->d / sizeof e->d[0]); i++)
            if (e->d[i] != 0) {
                pg_array_text(&col[CT_TASK], e->task);
                pg_array_i64(&col[CT_TASK_STATE], i);
                pg_array_i64(&col[CT_TASK_N], e->d[i]);
            }
        if (e->completed || e->failed || e->cancelled) {
            pg_array_text(&col[CT_MIN_TASK], e->task);
            pg_array_i64(&col[CT_COMPLETED], e->completed);
            pg_array_i64(&col[CT_FAILED], e->failed);
            pg_array_i64(&col[CT_CANCELLED], e->cancelled);
        }
        if (e->last_failure[0]) {
            pg_array_text(&col[CT_FAILURE_TASK], e->task);
            pg_array_text(&col[CT_FAILURE_ID], e->last_failure);
        }
    }
}

static int counts_write(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms, bool defer,
                        errand_error *err)
{
    static const char sql[] =
        "WITH totals AS (INSERT INTO run_counts (state_type, n) "
        "SELECT * FROM unnest($1::integer[], $2::bigint[])), "
        "per_task AS (INSERT INTO task_counts (task, state_type, n) "
        "SELECT * FROM unnest($3::text[], $4::integer[], $5::bigint[])), "
        "minutes AS (INSERT INTO run_minutes (minute, task, completed, failed, cancelled) "
        "SELECT $12::bigint, * FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::bigint[])) "
        "INSERT INTO tasks (task, last_failure_id, last_failure_at) "
        "SELECT task, id, $13::bigint FROM unnest($10::text[], $11::text[]) AS f(task, id) "
        "ON CONFLICT (task) DO UPDATE SET last_failure_id = excluded.last_failure_id, "
        "last_failure_at = excluded.last_failure_at";
    struct pg_array col[CT_COLUMNS] = {0};
    tally_columns(t, col);
    struct pg_params p = {0};
    int rc = 0;
    bool any = false;
    for (int i = 0; i < CT_COLUMNS; i++) {
        if (rc == 0)
            rc = pg_array_check(&col[i], err);
        any = any || col[i].n > 0;
        pg_p_array(&p, &col[i]);
    }
    pg_p_i64(&p, now_ms / MS_PER_MINUTE);
    pg_p_i64(&p, now_ms);
    if (rc == 0 && any)
        rc = defer ? pg_defer(c, sql, &p, "counting runs", err)
                   : pg_command(c, sql, &p, "counting runs", NULL, err);
    for (int i = 0; i < CT_COLUMNS; i++)
        pg_array_free(&col[i]);
    run_tally_reset(t);
    return rc;
}

int pg_counts_apply(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms, errand_error *err)
{
    return counts_write(c, t, now_ms, false, err);
}

int pg_counts_defer(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms, errand_error *err)
{
    return counts_write(c, t, now_ms, true, err);
}

int pg_failure_add(struct pg_conn *c, const char *task, const char *run_id, const char *message,
                   int64_t now_ms, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO failure_groups (task, fingerprint, message, n, last_at, last_id) "
        "VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (task, fingerprint) DO UPDATE SET "
        "n = failure_groups.n + 1, message = excluded.message, last_at = excluded.last_at, "
        "last_id = excluded.last_id";
    char fp[FINGERPRINT_MAX];
    failure_fingerprint(message, fp);
    struct pg_params p = {0};
    pg_p_text(&p, task);
    pg_p_text(&p, fp);
    pg_p_text(&p, message ? message : "");
    pg_p_i64(&p, now_ms);
    pg_p_text(&p, run_id);
    return pg_command(c, sql, &p, "grouping a failure", NULL, err);
}

int pg_failure_remove(struct pg_conn *c, const char *task, const char *message, errand_error *err)
{
    static const char sql_remove[] =
        "UPDATE failure_groups SET n = n - 1 WHERE task = $1 AND fingerprint = $2";
    static const char sql_drop[] =
        "DELETE FROM failure_groups WHERE task = $1 AND fingerprint = $2 AND n <= 0";
    char fp[FINGERPRINT_MAX];
    failure_fingerprint(message, fp);
    struct pg_params p = {0};
    pg_p_text(&p, task);
    pg_p_text(&p, fp);
    int rc = pg_command(c, sql_remove, &p, "ungrouping a failure", NULL, err);
    return rc < 0 ? rc : pg_command(c, sql_drop, &p, "ungrouping a failure", NULL, err);
}

/* The columns of a batch of transitions, in the order of sql_update's unnest. */
enum {
    TR_ID,
    TR_AT,
    TR_STATE,
    TR_NAME,
    TR_MESSAGE,
    TR_SEQ,
    TR_ATTEMPT,
    TR_SCHEDULED_AT,
    TR_STARTED,
    TR_FINISHED,
    TR_TOKEN,
    TR_LEASE_EXPIRES,
    TR_COMPLETE,
    TR_RESULT,
    TR_RESULT_REF,
    TR_CACHE_EXPIRES_AT,
    TR_ENDED_BY,
    TR_REDELIVERIES,
    TR_FROM_STATE,
    TR_FROM_TOKEN,
    TR_COLUMNS
};

struct pg_transitions {
    struct pg_array col[TR_COLUMNS];
    struct pg_array released;    /* runs whose leases end with slots held (pg_limits.h) */
    char first_id[UUID_STR_LEN]; /* to name the run when a batch of one is refused */
};

struct pg_transitions *pg_transitions_new(void)
{
    return mem_calloc(1, sizeof(struct pg_transitions));
}

void pg_transitions_free(struct pg_transitions *t)
{
    if (!t)
        return;
    for (int i = 0; i < TR_COLUMNS; i++)
        pg_array_free(&t->col[i]);
    pg_array_free(&t->released);
    mem_free(t);
}

static void transitions_reset(struct pg_transitions *t)
{
    for (int i = 0; i < TR_COLUMNS; i++)
        pg_array_reset(&t->col[i]);
    pg_array_reset(&t->released);
}

int pg_transitions_flush(struct pg_conn *c, struct pg_transitions *t, errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET state_type = u.state, state_name = u.name, state_timestamp = u.at, "
        "state_message = u.message, n_states = u.seq, attempt = u.attempt, "
        "scheduled_at = u.scheduled_at, started = u.started, finished = u.finished, "
        "lease_token = u.token, lease_expires = u.lease_expires, "
        "result = CASE WHEN u.complete THEN u.result ELSE task_runs.result END, "
        "result_ref = CASE WHEN u.complete THEN u.result_ref ELSE task_runs.result_ref END, "
        "cache_expires_at = CASE WHEN u.complete THEN u.cache_expires_at "
        "ELSE task_runs.cache_expires_at END, "
        "ended_by = coalesce(u.ended_by, task_runs.ended_by), redeliveries = u.redeliveries, "
        "delayed = " PG_DELAYED_WHEN(
            "u.state", "u.scheduled_at",
            "u.at") " "
                    "FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::text[], $5::text[], "
                    "$6::integer[], $7::integer[], $8::bigint[], $9::bigint[], $10::bigint[], "
                    "$11::text[], "
                    "$12::bigint[], $13::boolean[], $14::text[], $15::text[], $16::bigint[], "
                    "$17::text[], "
                    "$18::integer[], $19::integer[], $20::text[]) AS u(id, at, state, name, "
                    "message, seq, "
                    "attempt, scheduled_at, started, finished, token, lease_expires, complete, "
                    "result, "
                    "result_ref, cache_expires_at, ended_by, redeliveries, from_state, from_token) "
                    "WHERE task_runs.id = u.id AND task_runs.state_type = u.from_state "
                    "AND task_runs.lease_token IS NOT DISTINCT FROM u.from_token";
    size_t n = t->col[TR_ID].n;
    if (n == 0)
        return 0;
    struct pg_params p = {0};
    int rc = 0;
    for (int i = 0; i < TR_COLUMNS; i++) {
        if (rc == 0)
            rc = pg_array_check(&t->col[i], err);
        pg_p_array(&p, &t->col[i]);
    }
    int64_t changed = 0;
    if (rc == 0)
        rc = pg_command(c, sql, &p, "changing runs' states", &changed, err);
    if (rc == 0 && (size_t)changed != n)
        rc = n == 1 ? error_set(err, ERRAND_ECONFLICT, NULL,
                                "task run %s changed on another server meanwhile", t->first_id)
                    : error_set(err, ERRAND_ECONFLICT, NULL,
                                "%zu of %zu task runs changed on another server meanwhile",
                                n - (size_t)changed, n);
    if (rc == 0)
        rc = pg_limits_release(c, &t->released, err);
    transitions_reset(t);
    return rc;
}

/* Adds the new column values of cur to the batch. */
static void add_update(struct pg_transitions *t, const struct run_current *cur,
                       const struct run_update *u, int64_t now_ms, const char *message)
{
    struct pg_array *col = t->col;
    if (col[TR_ID].n == 0)
        snprintf(t->first_id, sizeof t->first_id, "%s", cur->id);
    pg_array_text(&col[TR_ID], cur->id);
    pg_array_i64(&col[TR_AT], now_ms);
    pg_array_i64(&col[TR_STATE], (int)u->next);
    pg_array_text(&col[TR_NAME], u->name);
    pg_array_text(&col[TR_MESSAGE], message);
    pg_array_i64(&col[TR_SEQ], cur->n_states + 1);
    pg_array_i64(&col[TR_ATTEMPT], u->attempt);
    pg_array_i64(&col[TR_SCHEDULED_AT], u->scheduled_at);
    pg_array_ms(&col[TR_STARTED], u->started);
    pg_array_ms(&col[TR_FINISHED], u->finished);
    pg_array_text(&col[TR_TOKEN], u->lease_token);
    pg_array_ms(&col[TR_LEASE_EXPIRES], u->lease_token ? u->lease_expires : 0);
    pg_array_bool(&col[TR_COMPLETE], u->complete);
    pg_array_text(&col[TR_RESULT], u->complete ? u->result : NULL);
    pg_array_text(&col[TR_RESULT_REF], u->complete ? u->result_ref : NULL);
    pg_array_ms(&col[TR_CACHE_EXPIRES_AT], u->complete ? u->cache_expires_at : 0);
    pg_array_text(&col[TR_ENDED_BY], u->ended_by);
    pg_array_i64(&col[TR_REDELIVERIES], u->redeliveries);
    pg_array_i64(&col[TR_FROM_STATE], (int)cur->state);
    pg_array_text(&col[TR_FROM_TOKEN], cur->lease_token[0] ? cur->lease_token : NULL);
}

int pg_transition_queue(struct pg_conn *c, struct pg_transitions *t, const struct run_current *cur,
                        const struct run_update *u, int64_t now_ms, struct run_count_delta *counts,
                        errand_error *err)
{
    const char *message = u->message ? u->message : "";
    add_update(t, cur, u, now_ms, message);
    if (cur->holds_slots && !state_is_leased(u->next))
        pg_array_text(&t->released, cur->id);
    int rc = pg_count_move(c, counts, cur->task, cur->id, (int)cur->state, u->next, now_ms, err);
    if (rc < 0)
        return rc;
    run_finals_transition(&c->finals, cur->task, cur->state, cur->state_timestamp, u->next, now_ms);
    int delayed = run_is_delayed(u->next, u->scheduled_at, now_ms) ? 1 : 0;
    if (delayed != (cur->delayed ? 1 : 0) &&
        (rc = pg_count_delayed(c, counts, cur->task, delayed - (cur->delayed ? 1 : 0), now_ms,
                               err)) < 0)
        return rc;
    bool failed = u->next == ERRAND_STATE_FAILED || u->next == ERRAND_STATE_CRASHED;
    bool was_failed = cur->state == ERRAND_STATE_FAILED || cur->state == ERRAND_STATE_CRASHED;
    if (failed && !was_failed &&
        (rc = pg_failure_add(c, cur->task, cur->id, message, now_ms, err)) < 0)
        return rc;
    if (cur->dependants > 0 && state_is_final(u->next) && !state_is_final(cur->state) &&
        (rc = pg_deps_ended(c, cur->id, now_ms, err)) < 0)
        return rc;
    if (state_is_final(u->next) && !state_is_final(cur->state))
        pg_webhook_ended(c, cur->id, cur->task, NULL, now_ms); /* written at the commit */
    if (state_is_final(u->next))
        pg_signal_final(c, cur->id);
    else if (u->next == ERRAND_STATE_SCHEDULED)
        pg_signal_due(c, cur->task);
    return pg_state_append(c, cur->id, cur->task, cur->n_states + 1, u->next, u->name, now_ms,
                           message, err);
}

int pg_transition_write(struct pg_conn *c, const struct run_current *cur,
                        const struct run_update *u, int64_t now_ms, struct run_count_delta *counts,
                        errand_error *err)
{
    struct pg_transitions *t = pg_transitions_new();
    if (!t)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    int rc = pg_transition_queue(c, t, cur, u, now_ms, counts, err);
    if (rc == 0)
        rc = pg_transitions_flush(c, t, err);
    pg_transitions_free(t);
    return rc;
}
