/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite.c — the SQLite backend of store.h: opening and closing the store, and every
 * read but listings (store_sqlite_list.c). Writes live in store_sqlite_submit.c (client side) and
 * store_sqlite_worker.c (worker protocol); both go through the one writer thread (sqlite_writer.c).
 *
 * Shape of the backend, and why:
 *  - one writer connection, owned by the writer thread, committing writes in groups: SQLite
 *    has one writer at a time anyway, and grouping turns thousands of writes into one fsync;
 *  - SQLITE_POOL_READERS read-only connections for reads, so a GET or a long-poll check
 *    never waits behind a commit (WAL readers see the last committed state);
 *  - a checkpointer thread moves the WAL into the database file, off the writer's path;
 *  - a write call returns only after its transaction committed, so everything a caller has
 *    been told is on disk; nothing acknowledged lives only in memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/state.h"
#include "core/wire_limits.h"
#include "store/sqlite/sqlite_schema.h"
#include "store/sqlite/store_sqlite.h"
#include "store/sqlite/sqlite_limits.h"

#define SQLITE_URL_PREFIX "sqlite://"
#define DEFAULT_LEASE_SECONDS 30
#define DIR_MODE 0700 /* the store holds task parameters and results: owner only */

void store_sqlite_read_run(sqlite3_stmt *s, struct run_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite_col_text(s, RC_ID);
    r->task = sqlite_col_text(s, RC_TASK);
    r->parameters = sqlite_col_text(s, RC_PARAMETERS);
    r->state = (errand_state)sqlite3_column_int(s, RC_STATE_TYPE);
    r->state_name = sqlite_col_text(s, RC_STATE_NAME);
    r->state_timestamp = sqlite_col_ms(s, RC_STATE_TIMESTAMP);
    r->state_message = sqlite_col_text(s, RC_STATE_MESSAGE);
    r->attempt = sqlite3_column_int(s, RC_ATTEMPT);
    r->max_attempts = sqlite3_column_int(s, RC_MAX_ATTEMPTS);
    r->created = sqlite_col_ms(s, RC_CREATED);
    r->scheduled_at = sqlite_col_ms(s, RC_SCHEDULED_AT);
    r->started = sqlite_col_ms(s, RC_STARTED);
    r->finished = sqlite_col_ms(s, RC_FINISHED);
    r->worker = sqlite_col_text(s, RC_WORKER);
    r->priority = sqlite3_column_int(s, RC_PRIORITY);
    r->tags = sqlite_col_text(s, RC_TAGS);
    r->idempotency_key = sqlite_col_text(s, RC_IDEMPOTENCY_KEY);
    r->cache_key = sqlite_col_text(s, RC_CACHE_KEY);
    r->retries = sqlite3_column_int(s, RC_RETRIES);
    r->retry_delays = sqlite_col_text(s, RC_RETRY_DELAYS);
    r->retry_jitter_factor = sqlite3_column_double(s, RC_RETRY_JITTER);
    r->timeout_seconds = sqlite3_column_double(s, RC_TIMEOUT);
    r->persist_result = sqlite_col_opt_int(s, RC_PERSIST_RESULT);
    r->result = sqlite_col_text(s, RC_RESULT);
    r->result_ref = sqlite_col_text(s, RC_RESULT_REF);
    r->redeliveries = sqlite3_column_int(s, RC_REDELIVERIES);
    r->retry_of = sqlite_col_text(s, RC_RETRY_OF);
    r->lease_expires = sqlite_col_ms(s, RC_LEASE_EXPIRES);
    r->traceparent = sqlite_col_text(s, RC_TRACEPARENT);
    r->wait_for = sqlite_col_text(s, RC_WAIT_FOR);
    r->allow_upstream_failure = sqlite3_column_int(s, RC_ALLOW_UPSTREAM_FAILURE) != 0;
}

/* --- reads ------------------------------------------------------------------------- */

static int get_run(store *st, const char *id, struct run_row *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    memset(out, 0, sizeof *out);
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_RUN_GET, err);
    int rc = ERRAND_ESTORE;
    if (q) {
        sqlite_bind_text(q, 1, norm);
        int step = sqlite3_step(q);
        if (step == SQLITE_ROW) {
            store_sqlite_read_run(q, out);
            rc = run_row_own_strings(out, err);
        } else if (step == SQLITE_DONE) {
            rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
        } else {
            rc = sqlite_conn_fail(c, "SQL_RUN_GET", err);
        }
        sqlite3_reset(q);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* The state type of a run by id on connection c: 0, ERRAND_ENOTFOUND or a store error. */
static int read_state(struct sqlite_conn *c, const char *norm, const char *id, errand_state *out,
                      errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_RUN_GET_STATE, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, norm);
    int step = sqlite3_step(q);
    int rc = 0;
    if (step == SQLITE_ROW)
        *out = (errand_state)sqlite3_column_int(q, 0);
    else if (step == SQLITE_DONE)
        rc = error_set(err, ERRAND_ENOTFOUND, NULL, STORE_NO_RUN_FMT, id);
    else
        rc = sqlite_conn_fail(c, "SQL_RUN_GET_STATE", err);
    sqlite3_reset(q);
    return rc;
}

static int get_state(store *st, const char *id, errand_state *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = read_state(c, norm, id, out, err);
    sqlite_pool_release(s->readers, c);
    return rc;
}

/* Copies a column's text (NULL stays NULL); false when out of memory. */
static bool copy_text(sqlite3_stmt *q, int col, char **out)
{
    const char *text = sqlite_col_text(q, col);
    *out = text ? mem_strdup(text) : NULL;
    return !text || *out;
}

/* Makes room for one more item in a growing array of items of size `size`. */
static bool grow(void **items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    size_t want = *cap ? 2 * *cap : 16;
    void *more = mem_realloc(*items, want * size);
    if (!more)
        return false;
    *items = more;
    *cap = want;
    return true;
}

static int get_states(store *st, const char *id, struct state_history *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    out->items = NULL;
    out->n = 0;
    size_t cap = 0;
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_STATES_GET, err);
    int rc = q ? 0 : ERRAND_ESTORE, step = SQLITE_DONE;
    if (q) {
        sqlite_bind_text(q, 1, norm);
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            if (!grow((void **)&out->items, out->n, &cap, sizeof *out->items)) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            struct state_record *r = &out->items[out->n++];
            memset(r, 0, sizeof *r);
            r->type = (errand_state)sqlite3_column_int(q, 0);
            r->timestamp = sqlite_col_ms(q, 2);
            if (!copy_text(q, 1, &r->name) || !copy_text(q, 3, &r->message))
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_STATES_GET", err);
        sqlite3_reset(q);
    }
    errand_state ignored;
    if (rc == 0 && out->n == 0) /* every run has a state: no rows = no run */
        rc = read_state(c, norm, id, &ignored, err);
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        state_history_clear(out);
    return rc;
}

static int get_logs(store *st, const char *id, int64_t after_seq, int limit, struct log_page *out,
                    errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    out->items = NULL;
    out->n = 0;
    out->next_after = after_seq;
    size_t cap = 0;
    if (limit <= 0 || limit > WIRE_LOGS_LIMIT_MAX)
        limit = WIRE_LOGS_LIMIT_MAX;
    char norm[UUID_STR_LEN];
    run_id_norm(id, norm);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    errand_state ignored;
    int rc = read_state(c, norm, id, &ignored, err);
    sqlite3_stmt *q = rc == 0 ? sqlite_conn_stmt(c, SQL_LOGS_GET, err) : NULL;
    if (rc == 0 && !q)
        rc = ERRAND_ESTORE;
    if (q) {
        sqlite_bind_text(q, 1, norm);
        sqlite3_bind_int64(q, 2, after_seq);
        sqlite3_bind_int(q, 3, limit);
        int step = SQLITE_DONE;
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            if (!grow((void **)&out->items, out->n, &cap, sizeof *out->items)) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            struct log_record *r = &out->items[out->n++];
            r->seq = sqlite3_column_int64(q, 0);
            r->timestamp = sqlite_col_ms(q, 1);
            r->level = (errand_log_level)sqlite3_column_int(q, 2);
            const char *msg = sqlite_col_text(q, 3);
            if (!(r->message = mem_strdup(msg ? msg : "")))
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
            out->next_after = r->seq;
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_LOGS_GET", err);
        sqlite3_reset(q);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0) {
        log_page_clear(out);
        out->next_after = after_seq;
    }
    return rc;
}

static int list_workers(store *st, const struct worker_cursor *cursor, int limit,
                        struct worker_list *out, bool *more, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    out->items = NULL;
    out->n = 0;
    *more = false;
    size_t cap = 0;
    if (limit < 1 || limit > WIRE_LIST_LIMIT_MAX)
        return error_set(err, ERR_INVALID_PARAMETER, "limit",
                         "parameter 'limit' must be between 1 and %d, got %d", WIRE_LIST_LIMIT_MAX,
                         limit);
    bool from_start = !cursor || !cursor->name;
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_WORKERS_LIST, err);
    int rc = q ? 0 : ERRAND_ESTORE, step = SQLITE_DONE;
    if (q) {
        sqlite3_bind_int64(q, 1, from_start ? INT64_MAX : cursor->last_seen);
        sqlite_bind_text(q, 2, from_start ? "" : cursor->name);
        sqlite3_bind_int(q, 3, limit + 1); /* one more tells whether a next page exists */
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            if (out->n == (size_t)limit) {
                *more = true;
                break;
            }
            if (!grow((void **)&out->items, out->n, &cap, sizeof *out->items)) {
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
                break;
            }
            struct worker_record *w = &out->items[out->n++];
            memset(w, 0, sizeof *w);
            w->last_seen = sqlite_col_ms(q, 2);
            w->claimed = sqlite3_column_int64(q, 3);
            if (!copy_text(q, 0, &w->name) || !copy_text(q, 1, &w->tasks))
                rc = error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
        }
        if (rc == 0 && !*more && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_WORKERS_LIST", err);
        sqlite3_reset(q);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        worker_list_clear(out);
    return rc;
}

int store_sqlite_read_counts(struct sqlite_conn *c, enum sql_id id, const char *task,
                             int64_t counts[STORE_SQLITE_STATE_TYPES], errand_error *err)
{
    for (int i = 0; i < STORE_SQLITE_STATE_TYPES; i++)
        counts[i] = 0;
    sqlite3_stmt *q = sqlite_conn_stmt(c, id, err);
    if (!q)
        return ERRAND_ESTORE;
    if (task)
        sqlite_bind_text(q, 1, task);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        int t = sqlite3_column_int(q, 0);
        if (t >= 0 && t < STORE_SQLITE_STATE_TYPES)
            counts[t] = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    return step == SQLITE_DONE ? 0 : sqlite_conn_fail(c, sqlite_sql_name(id), err);
}

static int count_by_state(store *st, int64_t counts[8], errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = store_sqlite_read_counts(c, SQL_COUNTS, NULL, counts, err);
    sqlite_pool_release(s->readers, c);
    return rc;
}

/* Readiness: a durable commit that writes (the schema version, rewritten as it is, which
 * dirties the database header), so a store whose disk is full says so before a submission
 * finds out. */
static int ready_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    (void)arg;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", sqlite_schema_version());
    return sqlite_conn_exec(c, sql, err);
}

static int ready(store *st, errand_error *err)
{
    return sqlite_writer_run(store_sqlite_of(st)->writer, ready_in_writer, NULL, err);
}

static int release_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    sqlite3_db_release_memory(c->db);
    return 0;
}

/* The page caches refill from the OS's file cache as they are needed. */
static void release_memory(store *st)
{
    struct store_sqlite *s = store_sqlite_of(st);
    errand_error ignored;
    sqlite_writer_run_relaxed(s->writer, release_in_writer, NULL, &ignored);
    sqlite_pool_release_memory(s->readers);
}

/* --- open / close ------------------------------------------------------------------ */

/* Creates the directories above path, like mkdir -p (the default database lives under
 * ERRAND_HOME, which may not exist yet on a first start). */
static int make_parent_dirs(const char *path, errand_error *err)
{
    char *dir = mem_strndup(path, strcspn(path, "?")); /* a path may carry ?options */
    if (!dir)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; rc == 0; p++) {
            if (*p != '/' && *p != '\0')
                continue;
            char saved = *p;
            *p = '\0';
            if (mkdir(dir, DIR_MODE) != 0 && errno != EEXIST)
                rc = error_set(err, ERRAND_EIO, "database_url",
                               "cannot create directory %s for the database: %s", dir,
                               strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    mem_free(dir);
    return rc;
}

/* sqlite:///abs/path.db -> /abs/path.db ; sqlite://rel.db -> rel.db */
static int url_path(const char *url, const char **path, errand_error *err)
{
    size_t plen = strlen(SQLITE_URL_PREFIX);
    if (strncmp(url, SQLITE_URL_PREFIX, plen) != 0)
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "ERRAND_DATABASE_URL '%s' is not a sqlite:// URL", url);
    *path = url + plen;
    if (!**path)
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "ERRAND_DATABASE_URL '%s' names no file; use sqlite:///path/errand.db",
                         url);
    if (strcmp(*path, ":memory:") == 0 || strncmp(*path, "file:", strlen("file:")) == 0)
        return error_set(err, ERRAND_EINVAL, "database_url",
                         "ERRAND_DATABASE_URL '%s': the store needs a database file (WAL mode "
                         "and several connections); use sqlite:///path/errand.db",
                         url);
    return 0;
}

static void sqlite_close(store *st)
{
    struct store_sqlite *s = store_sqlite_of(st);
    if (!s)
        return;
    /* The checkpointer last: the last connection to close checkpoints the WAL into the
     * database and removes it; and the writer's WAL hook points at the checkpointer. */
    struct sqlite_writer_stats ws = {0};
    if (s->writer)
        sqlite_writer_get_stats(s->writer, &ws);
    sqlite_pool_close(s->readers);
    sqlite_writer_stop(s->writer);
    sqlite_checkpointer_stop(s->checkpointer);
    log_info("store closed",
             "store=sqlite ops=%llu commits=%llu max_group=%llu writer_busy_ms=%llu "
             "writer_cpu_ms=%llu",
             ws.ops, ws.commits, ws.max_batch, ws.busy_us / 1000, ws.cpu_us / 1000);
    mem_free(s);
}

static int sqlite_open(const char *url, const struct store_options *opt, store **out,
                       errand_error *err)
{
    *out = NULL;
    const char *path = NULL;
    int rc = url_path(url, &path, err);
    if (rc < 0)
        return rc;
    if ((rc = make_parent_dirs(path, err)) < 0)
        return rc;
    struct store_sqlite *s = mem_calloc(1, sizeof *s);
    if (!s)
        return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
    s->base.backend = &store_sqlite_backend;
    s->default_lease_seconds =
        opt && opt->default_lease_seconds > 0 ? opt->default_lease_seconds : DEFAULT_LEASE_SECONDS;
    s->max_redeliveries = opt && opt->max_redeliveries > 0 ? opt->max_redeliveries : 0;

    struct sqlite_conn *wconn = NULL;
    if ((rc = sqlite_conn_open(path, SQLITE_CONN_WRITER, opt ? opt->sync : NULL, &wconn, err)) < 0)
        goto fail;
    if ((rc = sqlite_schema_migrate(wconn, clock_now_ms(), err)) < 0)
        goto fail;
    if ((rc = sqlite_pool_open(path, SQLITE_POOL_READERS, &s->readers, err)) < 0)
        goto fail;
    if ((rc = sqlite_checkpointer_start(path, opt ? opt->sync : NULL, wconn, &s->checkpointer,
                                        err)) < 0)
        goto fail;
    if ((rc = sqlite_writer_start(wconn, &s->writer, err)) < 0)
        goto fail;
    s->writer_conn = wconn;
    log_info("store opened", "store=sqlite path=\"%s\" schema=%d sync=%s", path,
             sqlite_schema_version(), opt && opt->sync ? opt->sync : "full");
    *out = &s->base;
    return 0;
fail:
    sqlite_pool_close(s->readers);
    sqlite_conn_close(wconn);
    sqlite_checkpointer_stop(s->checkpointer);
    mem_free(s);
    return rc;
}

const struct store_backend store_sqlite_backend = {
    .kind = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .submit_begin = store_sqlite_submit_begin,
    .submit_end = store_sqlite_submit_end,
    .get_run = get_run,
    .get_state = get_state,
    .list_runs = store_sqlite_list_runs,
    .get_states = get_states,
    .get_logs = get_logs,
    .cancel = store_sqlite_cancel,
    .claim = store_sqlite_claim,
    .heartbeat = store_sqlite_heartbeat,
    .report = store_sqlite_report,
    .sweep = store_sqlite_sweep,
    .delete_expired = store_sqlite_delete_expired,
    .list_workers = list_workers,
    .count_by_state = count_by_state,
    .read_events = store_sqlite_read_events,
    .event_bounds = store_sqlite_event_bounds,
    .prune_events = store_sqlite_prune_events,
    .on_events = store_sqlite_on_events,
    .on_signal = store_sqlite_on_signal,
    .set_limit = store_sqlite_set_limit,
    .set_rate = store_sqlite_set_rate,
    .list_limits = store_sqlite_list_limits,
    .read_stats = store_sqlite_read_stats,
    .set_paused = store_sqlite_set_paused,
    .list_failures = store_sqlite_list_failures,
    .delete_runs = store_sqlite_delete_runs,
    .release_memory = release_memory,
    .ready = ready,
    .observe = store_sqlite_observe,
    .oldest_ready = store_sqlite_oldest_ready,
    .schedule_put = store_sqlite_schedule_put,
    .schedule_get = store_sqlite_schedule_get,
    .schedule_list = store_sqlite_schedule_list,
    .schedule_delete = store_sqlite_schedule_delete,
    .schedule_set_paused = store_sqlite_schedule_set_paused,
    .schedule_due = store_sqlite_schedule_due,
    .schedule_advance = store_sqlite_schedule_advance,
    .webhook_set = store_sqlite_webhook_set,
    .webhook_list = store_sqlite_webhook_list,
    .webhook_pending = store_sqlite_webhook_pending,
    .webhook_take = store_sqlite_webhook_take,
    .webhook_done = store_sqlite_webhook_done,
    .webhook_retry = store_sqlite_webhook_retry,
};
