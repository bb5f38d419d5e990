/*
 * sqlite_transition.c — state changes of existing runs in the SQLite store (see
 * sqlite_transition.h). The rules decide (core/state.c); this file only turns a decision
 * into column values and writes them, with the history row, in the caller's transaction.
 */
#include "store/sqlite/sqlite_transition.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

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
    if (rc < 0 || !(s = sqlite_conn_stmt(c, SQL_EVENT_INSERT, err)))
        return rc < 0 ? rc : ERRAND_ESTORE;
    sqlite_bind_text(s, 1, run_id);
    sqlite3_bind_int(s, 2, (int)type);
    sqlite_bind_text(s, 3, name);
    sqlite3_bind_int64(s, 4, at_ms);
    if ((rc = sqlite_conn_step_done(c, s, SQL_EVENT_INSERT, err)) == 0)
        c->events_written++;
    return rc;
}

int sqlite_counts_apply(struct sqlite_conn *c, const struct run_count_delta *t, errand_error *err)
{
    for (int i = 0; i < (int)(sizeof t->d / sizeof t->d[0]); i++) {
        if (t->d[i] == 0)
            continue;
        sqlite3_stmt *s = sqlite_conn_stmt(c, SQL_COUNT_ADD, err);
        if (!s)
            return ERRAND_ESTORE;
        sqlite3_bind_int(s, 1, i);
        sqlite3_bind_int64(s, 2, t->d[i]);
        int rc = sqlite_conn_step_done(c, s, SQL_COUNT_ADD, err);
        if (rc < 0)
            return rc;
    }
    return 0;
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
    run_count_move(counts, (int)cur->state, u->next);
    return sqlite_state_append(c, cur->id, seq, u->next, u->name, now_ms, message, err);
}
