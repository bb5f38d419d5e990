/* SPDX-License-Identifier: MIT */
/*
 * sqlite_transition.c — state changes of existing runs in the SQLite store (see
 * sqlite_transition.h). The rules decide (core/state.c); this file only turns a decision
 * into column values and writes them, with the history row, in the caller's transaction.
 */
#include "store/sqlite/sqlite_transition.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fingerprint.h"
#include "store/sqlite/sqlite_deps.h"
#include "store/sqlite/sqlite_limits.h"
#include "store/sqlite/sqlite_webhooks.h"

int sqlite_run_current_read(sqlite3_stmt *s, struct run_current *cur, bool with_delays,
                            errand_error *err)
{
    cur->rowid = sqlite3_column_int64(s, LC_ROWID);
    run_copy_fixed(cur->id, sizeof cur->id, sqlite_col_text(s, LC_ID));
    run_copy_fixed(cur->task, sizeof cur->task, sqlite_col_text(s, LC_TASK));
    cur->state = (errand_state)sqlite3_column_int(s, LC_STATE_TYPE);
    cur->state_timestamp = sqlite_col_ms(s, LC_STATE_TIMESTAMP);
    cur->attempt = sqlite3_column_int(s, LC_ATTEMPT);
    cur->max_attempts = sqlite3_column_int(s, LC_MAX_ATTEMPTS);
    cur->redeliveries = sqlite3_column_int(s, LC_REDELIVERIES);
    cur->n_states = sqlite3_column_int(s, LC_N_STATES);
    cur->started = sqlite_col_ms(s, LC_STARTED);
    cur->scheduled_at = sqlite_col_ms(s, LC_SCHEDULED_AT);
    cur->delayed = sqlite3_column_int(s, LC_DELAYED) != 0;
    cur->dependants = sqlite3_column_int(s, LC_DEPENDANTS);
    cur->holds_slots = sqlite3_column_int(s, LC_HOLDS_SLOTS) != 0;
    cur->lease_expires = sqlite_col_ms(s, LC_LEASE_EXPIRES);
    run_copy_fixed(cur->lease_token, sizeof cur->lease_token, sqlite_col_text(s, LC_LEASE_TOKEN));
    run_copy_fixed(cur->ended_by, sizeof cur->ended_by, sqlite_col_text(s, LC_ENDED_BY));
    const char *worker = sqlite_col_text(s, LC_WORKER);
    snprintf(cur->worker, sizeof cur->worker, "%s", worker ? worker : "");
    cur->has_cache_key = sqlite3_column_type(s, LC_CACHE_KEY) != SQLITE_NULL;
    cur->cache_expiration_seconds = sqlite3_column_double(s, LC_CACHE_EXPIRATION);
    cur->jitter = sqlite3_column_double(s, LC_RETRY_JITTER);
    cur->n_delays = 0;
    if (with_delays)
        return run_current_parse_delays(sqlite_col_text(s, LC_RETRY_DELAYS), cur, err);
    return 0;
}

int sqlite_run_current_get(struct sqlite_conn *c, const char *id, bool with_delays,
                           struct run_current *cur, errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_RUN_LEASE_INFO, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, id);
    int step = sqlite3_step(s);
    int rc;
    if (step == SQLITE_ROW)
        rc = sqlite_run_current_read(s, cur, with_delays, err);
    else if (step == SQLITE_DONE)
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    else
        rc = sqlite_conn_fail(c, "SQL_RUN_LEASE_INFO", err);
    sqlite3_reset(s);
    return rc;
}

int sqlite_state_append(struct sqlite_conn *c, const char *run_id, const char *task, int seq,
                        errand_state type, const char *name, int64_t at_ms, const char *message,
                        errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_STATE_INSERT, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    sqlite3_bind_int(s, 2, seq);
    sqlite3_bind_int(s, 3, (int)type);
    sqlite_bind_text(s, 4, name);
    sqlite3_bind_int64(s, 5, at_ms);
    sqlite_bind_text(s, 6, message ? message : "");
    int rc = sqlite_conn_step_done(c, s, SQL_STATE_INSERT, err);
    return rc < 0 ? rc : feed_page_add(&c->feed, run_id, task, type, name, at_ms, err);
}

int run_count_move(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                   const char *run_id, int from, errand_state to, int64_t now_ms, errand_error *err)
{
    if (run_tally_move(t, task, run_id, from, to))
        return 0;
    int rc = sqlite_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_move(t, task, run_id, from, to) ? rc : ERRAND_ESTORE;
}

int run_count_delayed(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                      int64_t delta, int64_t now_ms, errand_error *err)
{
    if (run_tally_delayed(t, task, delta))
        return 0;
    int rc = sqlite_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_delayed(t, task, delta) ? rc : ERRAND_ESTORE;
}

int run_count_remove(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                     errand_state state, int64_t now_ms, errand_error *err)
{
    if (run_tally_remove(t, task, state))
        return 0;
    int rc = sqlite_counts_apply(c, t, now_ms, err);
    return rc < 0 || run_tally_remove(t, task, state) ? rc : ERRAND_ESTORE;
}

/* Adds n to the counter of statement id, bound as (?1 key, ?2 state type, ?3 n). */
static int count_add(struct sqlite_conn *c, enum sql_id id, const char *task, int state, int64_t n,
                     errand_error *err)
{
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    int col = 1;
    if (task)
        sqlite_bind_text(s, col++, task);
    sqlite3_bind_int(s, col++, state);
    sqlite3_bind_int64(s, col, n);
    return sqlite_conn_step_done(c, s, id, err);
}

static int task_apply(struct sqlite_conn *c, const struct run_tally_task *e, int64_t now_ms,
                      errand_error *err)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < (int)(sizeof e->d / sizeof e->d[0]); i++)
        if (e->d[i] != 0)
            rc = count_add(c, SQL_TASK_COUNT_ADD, e->task, i, e->d[i], err);
    if (rc == 0 && (e->completed || e->failed || e->cancelled)) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_MINUTE_ADD, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite3_bind_int64(s, 1, now_ms / MS_PER_MINUTE);
        sqlite_bind_text(s, 2, e->task);
        sqlite3_bind_int64(s, 3, e->completed);
        sqlite3_bind_int64(s, 4, e->failed);
        sqlite3_bind_int64(s, 5, e->cancelled);
        rc = sqlite_conn_step_done(c, s, SQL_MINUTE_ADD, err);
    }
    if (rc == 0 && e->last_failure[0]) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_TASK_FAILURE, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, e->task);
        sqlite_bind_text(s, 2, e->last_failure);
        sqlite3_bind_int64(s, 3, now_ms);
        rc = sqlite_conn_step_done(c, s, SQL_TASK_FAILURE, err);
    }
    return rc;
}

int sqlite_counts_apply(struct sqlite_conn *c, struct run_count_delta *t, int64_t now_ms,
                        errand_error *err)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < (int)(sizeof t->d / sizeof t->d[0]); i++)
        if (t->d[i] != 0)
            rc = count_add(c, SQL_COUNT_ADD, NULL, i, t->d[i], err);
    for (size_t i = 0; rc == 0 && i < t->n_tasks; i++)
        rc = task_apply(c, &t->tasks[i], now_ms, err);
    run_tally_reset(t);
    return rc;
}

int sqlite_transition_write(struct sqlite_conn *c, const struct run_current *cur,
                            const struct run_update *u, int64_t now_ms,
                            struct run_count_delta *counts, errand_error *err)
{
    enum sql_id id = u->complete ? SQL_RUN_COMPLETE : SQL_RUN_TRANSITION;
    sqlite3_stmt *s = sqlite_conn_stmt(c, id, err);
    if (!s)
        return ERRAND_ESTORE;
    int seq = cur->n_states + 1;
    const char *message = u->message ? u->message : "";
    sqlite3_bind_int64(s, 1, cur->rowid);
    sqlite3_bind_int(s, 2, (int)u->next);
    sqlite_bind_text(s, 3, u->name);
    sqlite3_bind_int64(s, 4, now_ms);
    sqlite_bind_text(s, 5, message);
    sqlite3_bind_int(s, 6, seq);
    sqlite3_bind_int(s, 7, u->attempt);
    sqlite3_bind_int64(s, 8, u->scheduled_at);
    sqlite_bind_ms(s, 9, u->started);
    sqlite_bind_ms(s, 10, u->finished);
    sqlite_bind_text(s, 11, u->lease_token);
    sqlite_bind_ms(s, 12, u->lease_token ? u->lease_expires : 0);
    sqlite_bind_text(s, 16, u->ended_by);
    sqlite3_bind_int(s, 17, u->redeliveries);
    if (u->complete) {
        sqlite_bind_text(s, 13, u->result);
        sqlite_bind_text(s, 14, u->result_ref);
        sqlite_bind_ms(s, 15, u->cache_expires_at);
    }
    int rc = sqlite_conn_step_done(c, s, id, err);
    if (rc < 0)
        return rc;
    if ((rc = run_count_move(c, counts, cur->task, cur->id, (int)cur->state, u->next, now_ms,
                             err)) < 0)
        return rc;
    run_finals_transition(&c->finals, cur->task, cur->state, cur->state_timestamp, u->next, now_ms);
    int delayed = run_is_delayed(u->next, u->scheduled_at, now_ms) ? 1 : 0;
    if (delayed != (cur->delayed ? 1 : 0) &&
        (rc = run_count_delayed(c, counts, cur->task, delayed - (cur->delayed ? 1 : 0), now_ms,
                                err)) < 0)
        return rc;
    bool failed = u->next == ERRAND_STATE_FAILED || u->next == ERRAND_STATE_CRASHED;
    bool was_failed = cur->state == ERRAND_STATE_FAILED || cur->state == ERRAND_STATE_CRASHED;
    if (failed && !was_failed &&
        (rc = sqlite_failure_add(c, cur->task, cur->id, message, now_ms, err)) < 0)
        return rc;
    if ((rc = sqlite_state_append(c, cur->id, cur->task, seq, u->next, u->name, now_ms, message,
                                  err)) < 0)
        return rc;
    if (cur->holds_slots && !state_is_leased(u->next) &&
        (rc = sqlite_limits_release(c, cur, err)) < 0)
        return rc;
    if (state_is_final(u->next) && !state_is_final(cur->state)) {
        if ((rc = sqlite_webhook_run_ended(c, cur->id, cur->task, now_ms, err)) < 0)
            return rc;
        if (cur->dependants > 0)
            rc = sqlite_deps_run_ended(c, cur->id, counts, now_ms, err);
    }
    return rc;
}

int sqlite_failure_add(struct sqlite_conn *c, const char *task, const char *run_id,
                       const char *message, int64_t now_ms, errand_error *err)
{
    char fp[FINGERPRINT_MAX];
    failure_fingerprint(message, fp);
    sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_FAILURE_ADD, err);
    if (!s)
        return ERRAND_ESTORE;
    sqlite_bind_text(s, 1, task);
    sqlite_bind_text(s, 2, fp);
    sqlite_bind_text(s, 3, message ? message : "");
    sqlite3_bind_int64(s, 4, now_ms);
    sqlite_bind_text(s, 5, run_id);
    return sqlite_conn_step_done(c, s, SQL_FAILURE_ADD, err);
}

int sqlite_failure_remove(struct sqlite_conn *c, const char *task, const char *message,
                          errand_error *err)
{
    char fp[FINGERPRINT_MAX];
    failure_fingerprint(message, fp);
    static const enum sql_id steps[] = {SQL_FAILURE_REMOVE, SQL_FAILURE_DROP_EMPTY};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *s = sqlite_conn_stmt(c, steps[i], err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite_bind_text(s, 1, task);
        sqlite_bind_text(s, 2, fp);
        int rc = sqlite_conn_step_done(c, s, steps[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
