/* SPDX-License-Identifier: MIT */
/*
 * sqlite_transition.c — state changes of existing runs in the SQLite store (see
 * sqlite_transition.h). The rules decide (core/state.c); this file only turns a decision
 * into column values and writes them, with the history row, in the caller's transaction.
 */
#include "store/sqlite/sqlite_transition.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fingerprint.h"

/* Copies text into a fixed buffer; false when it does not fit (the buffer is then ""). */
static bool copy_fixed(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= size) {
        dst[0] = '\0';
        return false;
    }
    memcpy(dst, src ? src : "", len + 1);
    return true;
}

static int parse_delays(const char *text, struct run_current *cur, errand_error *err)
{
    cur->n_delays = 0;
    if (!text || strcmp(text, "[]") == 0)
        return 0;
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return error_set(err, ERRAND_ESTORE, NULL,
                         "store: the stored retry delays of run %s are not a JSON array", cur->id);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i >= RUN_SPEC_DELAYS_MAX)
            break;
        cur->delays[cur->n_delays++] = json_number_value(v);
    }
    json_decref(arr);
    return 0;
}

int sqlite_run_current_read(sqlite3_stmt *s, struct run_current *cur, bool with_delays,
                            errand_error *err)
{
    cur->rowid = sqlite3_column_int64(s, LC_ROWID);
    copy_fixed(cur->id, sizeof cur->id, sqlite_col_text(s, LC_ID));
    copy_fixed(cur->task, sizeof cur->task, sqlite_col_text(s, LC_TASK));
    cur->state = (errand_state)sqlite3_column_int(s, LC_STATE_TYPE);
    cur->state_timestamp = sqlite_col_ms(s, LC_STATE_TIMESTAMP);
    cur->attempt = sqlite3_column_int(s, LC_ATTEMPT);
    cur->max_attempts = sqlite3_column_int(s, LC_MAX_ATTEMPTS);
    cur->redeliveries = sqlite3_column_int(s, LC_REDELIVERIES);
    cur->n_states = sqlite3_column_int(s, LC_N_STATES);
    cur->started = sqlite_col_ms(s, LC_STARTED);
    cur->scheduled_at = sqlite_col_ms(s, LC_SCHEDULED_AT);
    cur->lease_expires = sqlite_col_ms(s, LC_LEASE_EXPIRES);
    copy_fixed(cur->lease_token, sizeof cur->lease_token, sqlite_col_text(s, LC_LEASE_TOKEN));
    copy_fixed(cur->ended_by, sizeof cur->ended_by, sqlite_col_text(s, LC_ENDED_BY));
    const char *worker = sqlite_col_text(s, LC_WORKER);
    snprintf(cur->worker, sizeof cur->worker, "%s", worker ? worker : "");
    cur->has_cache_key = sqlite3_column_type(s, LC_CACHE_KEY) != SQLITE_NULL;
    cur->cache_expiration_seconds = sqlite3_column_double(s, LC_CACHE_EXPIRATION);
    cur->jitter = sqlite3_column_double(s, LC_RETRY_JITTER);
    cur->n_delays = 0;
    if (with_delays)
        return parse_delays(sqlite_col_text(s, LC_RETRY_DELAYS), cur, err);
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

void sqlite_transition_plan(const struct run_current *cur, const struct state_decision *d,
                            int64_t now_ms, struct run_update *u)
{
    memset(u, 0, sizeof *u);
    u->next = d->next;
    u->name = d->name;
    u->message = "";
    u->attempt = cur->attempt;
    if (d->uncount_attempt && u->attempt > 0)
        u->attempt--;
    u->redeliveries = cur->redeliveries + (d->count_redelivery ? 1 : 0);
    u->scheduled_at = d->next == ERRAND_STATE_SCHEDULED ? d->scheduled_at_ms : cur->scheduled_at;
    u->started = cur->started;
    if (d->next == ERRAND_STATE_RUNNING && u->started == 0)
        u->started = now_ms;
    u->finished = state_is_final(d->next) ? now_ms : 0;
    if (state_is_leased(d->next) && cur->lease_token[0]) {
        u->lease_token = cur->lease_token;
        u->lease_expires = cur->lease_expires;
    }
}

int sqlite_state_append(struct sqlite_conn *c, const char *run_id, int seq, errand_state type,
                        const char *name, int64_t at_ms, const char *message, errand_error *err)
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
    return rc < 0 ? rc : sqlite_feed_add(&c->feed, run_id, type, name, at_ms, err);
}

/* The tally's entry for task, added when new; NULL when the tally is full. */
static struct run_tally_task *tally_task(struct run_count_delta *t, const char *task)
{
    for (size_t i = 0; i < t->n_tasks; i++)
        if (strcmp(t->tasks[i].task, task) == 0)
            return &t->tasks[i];
    if (t->n_tasks == RUN_TALLY_TASKS)
        return NULL;
    struct run_tally_task *e = &t->tasks[t->n_tasks++];
    memset(e, 0, sizeof *e);
    copy_fixed(e->task, sizeof e->task, task);
    return e;
}

/* The entry for task, applying the tally first when it is full. */
static int tally_entry(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                       int64_t now_ms, struct run_tally_task **out, errand_error *err)
{
    *out = tally_task(t, task ? task : "");
    if (*out)
        return 0;
    int rc = sqlite_counts_apply(c, t, now_ms, err);
    *out = rc == 0 ? tally_task(t, task ? task : "") : NULL;
    return rc;
}

int run_count_move(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                   const char *run_id, int from, errand_state to, int64_t now_ms, errand_error *err)
{
    if (from == (int)to)
        return 0;
    struct run_tally_task *e;
    int rc = tally_entry(c, t, task, now_ms, &e, err);
    if (rc < 0)
        return rc;
    if (from >= 0) {
        t->d[from]--;
        e->d[from]--;
    }
    t->d[to]++;
    e->d[to]++;
    if (to == ERRAND_STATE_COMPLETED && from >= 0) /* a cache hit is created COMPLETED: not run */
        e->completed++;
    else if (to == ERRAND_STATE_FAILED || to == ERRAND_STATE_CRASHED) {
        e->failed++;
        copy_fixed(e->last_failure, sizeof e->last_failure, run_id);
    } else if (to == ERRAND_STATE_CANCELLED)
        e->cancelled++;
    return 0;
}

int run_count_remove(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                     errand_state state, int64_t now_ms, errand_error *err)
{
    struct run_tally_task *e;
    int rc = tally_entry(c, t, task, now_ms, &e, err);
    if (rc == 0) {
        t->d[state]--;
        e->d[state]--;
    }
    return rc;
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
    memset(t->d, 0, sizeof t->d);
    t->n_tasks = 0;
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
    bool failed = u->next == ERRAND_STATE_FAILED || u->next == ERRAND_STATE_CRASHED;
    bool was_failed = cur->state == ERRAND_STATE_FAILED || cur->state == ERRAND_STATE_CRASHED;
    if (failed && !was_failed &&
        (rc = sqlite_failure_add(c, cur->task, cur->id, message, now_ms, err)) < 0)
        return rc;
    return sqlite_state_append(c, cur->id, seq, u->next, u->name, now_ms, message, err);
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
