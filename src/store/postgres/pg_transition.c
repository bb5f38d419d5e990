/* SPDX-License-Identifier: MIT */
/*
 * pg_transition.c — state changes of existing runs in the PostgreSQL store, and the
 * counters kept in step with them (see store_pg.h). The rules decide (core/state.c),
 * run_transition_plan (store/run_transition.h) turns a decision into column values; this
 * file writes them, with the history row and the feed event, in the caller's transaction.
 *
 * Fencing: the UPDATE of a transition repeats the lease token it was planned from
 * (`lease_token IS NOT DISTINCT FROM $n`) and the state it was read in, so a change planned
 * from a stale read — another server moved the run since — changes nothing and is refused,
 * whatever locks the caller took.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fingerprint.h"
#include "store/postgres/store_pg.h"

/* delayed for a row written in state $2 with scheduled_at $8 at $4 (see pg_schema.c). */
#define PG_DELAYED_WHEN(state, at, now) "(" state " = 0 AND " at " > " now ")"

int pg_state_append(struct pg_conn *c, const char *run_id, int seq, errand_state type,
                    const char *name, int64_t at_ms, const char *message, errand_error *err)
{
    static const char sql[] =
        "INSERT INTO task_run_states (run_id, seq, type, name, timestamp, message) "
        "VALUES ($1, $2, $3, $4, $5, $6)";
    struct pg_params p = {0};
    pg_p_text(&p, run_id);
    pg_p_int(&p, seq);
    pg_p_int(&p, (int)type);
    pg_p_text(&p, name);
    pg_p_i64(&p, at_ms);
    pg_p_text(&p, message ? message : "");
    int rc = pg_command(c, sql, &p, "appending a state", NULL, err);
    return rc < 0 ? rc : feed_page_add(&c->feed, run_id, type, name, at_ms, err);
}

int pg_count_move(struct pg_conn *c, struct run_count_delta *t, const char *task,
                  const char *run_id, int from, errand_state to, int64_t now_ms, errand_error *err)
{
    if (run_tally_move(t, task, run_id, from, to))
        return 0;
    int rc = pg_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_move(t, task, run_id, from, to) ? rc : ERRAND_ESTORE;
}

int pg_count_remove(struct pg_conn *c, struct run_count_delta *t, const char *task,
                    errand_state state, int64_t now_ms, errand_error *err)
{
    if (run_tally_remove(t, task, state))
        return 0;
    int rc = pg_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_remove(t, task, state) ? rc : ERRAND_ESTORE;
}

static int task_apply(struct pg_conn *c, const struct run_tally_task *e, int64_t now_ms,
                      errand_error *err)
{
    static const char sql_count[] =
        "INSERT INTO task_counts (task, state_type, n) VALUES ($1, $2, $3)";
    static const char sql_minute[] =
        "INSERT INTO run_minutes (minute, task, completed, failed, cancelled) "
        "VALUES ($1, $2, $3, $4, $5)";
    static const char sql_failure[] =
        "INSERT INTO tasks (task, last_failure_id, last_failure_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (task) DO UPDATE SET last_failure_id = excluded.last_failure_id, "
        "last_failure_at = excluded.last_failure_at";
    int rc = 0;
    for (int i = 0; rc == 0 && i < (int)(sizeof e->d / sizeof e->d[0]); i++) {
        if (e->d[i] == 0)
            continue;
        struct pg_params p = {0};
        pg_p_text(&p, e->task);
        pg_p_int(&p, i);
        pg_p_i64(&p, e->d[i]);
        rc = pg_command(c, sql_count, &p, "counting runs per task", NULL, err);
    }
    if (rc == 0 && (e->completed || e->failed || e->cancelled)) {
        struct pg_params p = {0};
        pg_p_i64(&p, now_ms / MS_PER_MINUTE);
        pg_p_text(&p, e->task);
        pg_p_i64(&p, e->completed);
        pg_p_i64(&p, e->failed);
        pg_p_i64(&p, e->cancelled);
        rc = pg_command(c, sql_minute, &p, "counting runs per minute", NULL, err);
    }
    if (rc == 0 && e->last_failure[0]) {
        struct pg_params p = {0};
        pg_p_text(&p, e->task);
        pg_p_text(&p, e->last_failure);
        pg_p_i64(&p, now_ms);
        rc = pg_command(c, sql_failure, &p, "a task's last failure", NULL, err);
    }
    return rc;
}

int pg_counts_apply(struct pg_conn *c, struct run_count_delta *t, int64_t now_ms, errand_error *err)
{
    static const char sql[] = "INSERT INTO run_counts (state_type, n) VALUES ($1, $2)";
    int rc = 0;
    for (int i = 0; rc == 0 && i < (int)(sizeof t->d / sizeof t->d[0]); i++) {
        if (t->d[i] == 0)
            continue;
        struct pg_params p = {0};
        pg_p_int(&p, i);
        pg_p_i64(&p, t->d[i]);
        rc = pg_command(c, sql, &p, "counting runs", NULL, err);
    }
    for (size_t i = 0; rc == 0 && i < t->n_tasks; i++)
        rc = task_apply(c, &t->tasks[i], now_ms, err);
    run_tally_reset(t);
    return rc;
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

int pg_transition_write(struct pg_conn *c, const struct run_current *cur,
                        const struct run_update *u, int64_t now_ms, struct run_count_delta *counts,
                        errand_error *err)
{
    static const char sql[] =
        "UPDATE task_runs SET state_type = $2, state_name = $3, state_timestamp = $4, "
        "state_message = $5, n_states = $6, attempt = $7, scheduled_at = $8, started = $9, "
        "finished = $10, lease_token = $11, lease_expires = $12, "
        "result = CASE WHEN $13::boolean THEN $14 ELSE result END, "
        "result_ref = CASE WHEN $13::boolean THEN $15 ELSE result_ref END, "
        "cache_expires_at = CASE WHEN $13::boolean THEN $16 ELSE cache_expires_at END, "
        "ended_by = coalesce($17, ended_by), redeliveries = $18, "
        "delayed = " PG_DELAYED_WHEN("$2::integer", "$8::bigint",
                                     "$4::bigint") " "
                                                   "WHERE id = $1 AND state_type = $19 AND "
                                                   "lease_token IS NOT DISTINCT FROM $20";
    int seq = cur->n_states + 1;
    const char *message = u->message ? u->message : "";
    struct pg_params p = {0};
    pg_p_text(&p, cur->id);
    pg_p_int(&p, (int)u->next);
    pg_p_text(&p, u->name);
    pg_p_i64(&p, now_ms);
    pg_p_text(&p, message);
    pg_p_int(&p, seq);
    pg_p_int(&p, u->attempt);
    pg_p_i64(&p, u->scheduled_at);
    pg_p_ms(&p, u->started);
    pg_p_ms(&p, u->finished);
    pg_p_text(&p, u->lease_token);
    pg_p_ms(&p, u->lease_token ? u->lease_expires : 0);
    pg_p_bool(&p, u->complete);
    pg_p_text(&p, u->complete ? u->result : NULL);
    pg_p_text(&p, u->complete ? u->result_ref : NULL);
    pg_p_ms(&p, u->complete ? u->cache_expires_at : 0);
    pg_p_text(&p, u->ended_by);
    pg_p_int(&p, u->redeliveries);
    pg_p_int(&p, (int)cur->state);
    pg_p_text(&p, cur->lease_token[0] ? cur->lease_token : NULL);
    int64_t changed = 0;
    int rc = pg_command(c, sql, &p, "changing a run's state", &changed, err);
    if (rc < 0)
        return rc;
    if (changed != 1)
        return error_set(err, ERRAND_ECONFLICT, NULL,
                         "task run %s changed on another server meanwhile", cur->id);
    if ((rc = pg_count_move(c, counts, cur->task, cur->id, (int)cur->state, u->next, now_ms, err)) <
        0)
        return rc;
    bool failed = u->next == ERRAND_STATE_FAILED || u->next == ERRAND_STATE_CRASHED;
    bool was_failed = cur->state == ERRAND_STATE_FAILED || cur->state == ERRAND_STATE_CRASHED;
    if (failed && !was_failed &&
        (rc = pg_failure_add(c, cur->task, cur->id, message, now_ms, err)) < 0)
        return rc;
    if (state_is_final(u->next))
        pg_signal_final(c, cur->id);
    else if (u->next == ERRAND_STATE_SCHEDULED)
        pg_signal_due(c, cur->task);
    return pg_state_append(c, cur->id, seq, u->next, u->name, now_ms, message, err);
}
