/* SPDX-License-Identifier: MIT */
/*
 * store_sqlite_stats.c — the dashboard's figures (store_read_stats) and pausing tasks
 * (store_set_paused) in the SQLite store.
 *
 * Everything is read from the counters the ops keep (sqlite_transition.h): task_counts,
 * run_minutes and tasks, bounded by the number of tasks and of minutes in the window; the
 * duration sample reads the newest finished runs through task_runs_finished, at most
 * sample_limit rows. All of it in one read transaction, so the figures agree.
 *
 * And for /metrics: the oldest ready run of a task, found by seeking into the ready queue
 * (task_runs_claim) once per priority present, and the observer the writer reports commits
 * and outcomes to.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "store/run_transition.h"
#include "store/sqlite/store_sqlite.h"

/* The task's entry in out (kept sorted by name), added when new; NULL when out is full (then
 * tasks_truncated is set) or out of memory (*oom). */
static struct task_stats *task_entry(struct store_stats *out, size_t *cap, const char *task,
                                     bool *oom)
{
    size_t lo = 0, hi = out->n_tasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(out->tasks[mid].task, task);
        if (cmp == 0)
            return &out->tasks[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (out->n_tasks == STORE_STATS_TASKS_MAX) {
        out->tasks_truncated = true;
        return NULL;
    }
    if (out->n_tasks == *cap) {
        size_t want = *cap ? 2 * *cap : 16;
        struct task_stats *more = mem_realloc(out->tasks, want * sizeof *more);
        if (!more) {
            *oom = true;
            return NULL;
        }
        out->tasks = more;
        *cap = want;
    }
    char *name = mem_strdup(task);
    if (!name) {
        *oom = true;
        return NULL;
    }
    memmove(&out->tasks[lo + 1], &out->tasks[lo], (out->n_tasks - lo) * sizeof *out->tasks);
    memset(&out->tasks[lo], 0, sizeof out->tasks[lo]);
    out->tasks[lo].task = name;
    out->n_tasks++;
    return &out->tasks[lo];
}

static int oom(errand_error *err)
{
    return error_set(err, ERRAND_ENOMEM, NULL, "out of memory");
}

static int read_counts(struct sqlite_conn *c, struct store_stats *out, size_t *cap,
                       errand_error *err)
{
    int step = SQLITE_DONE, rc = store_sqlite_read_counts(c, SQL_COUNTS, NULL, out->counts, err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q;
    if (!(q = sqlite_conn_stmt(c, SQL_STATS_TASK_COUNTS, err)))
        return ERRAND_ESTORE;
    bool no_memory = false;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *task = sqlite_col_text(q, 0);
        int t = sqlite3_column_int(q, 1);
        struct task_stats *e = task ? task_entry(out, cap, task, &no_memory) : NULL;
        if (no_memory)
            rc = oom(err);
        else if (e && t >= 0 && t < 8)
            e->counts[t] = sqlite3_column_int64(q, 2);
        else if (e && t == RUN_TALLY_DELAYED)
            e->delayed = sqlite3_column_int64(q, 2);
    }
    sqlite3_reset(q);
    return rc < 0                ? rc
           : step == SQLITE_DONE ? 0
                                 : sqlite_conn_fail(c, "SQL_STATS_TASK_COUNTS", err);
}

static int read_window(struct sqlite_conn *c, int64_t since_minute, struct store_stats *out,
                       size_t *cap, errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_STATS_TASK_WINDOW, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, since_minute);
    int step, rc = 0;
    bool no_memory = false;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *task = sqlite_col_text(q, 0);
        struct task_stats *e = task ? task_entry(out, cap, task, &no_memory) : NULL;
        if (no_memory)
            rc = oom(err);
        else if (e) {
            e->completed = sqlite3_column_int64(q, 1);
            e->failed = sqlite3_column_int64(q, 2);
            e->cancelled = sqlite3_column_int64(q, 3);
        }
    }
    sqlite3_reset(q);
    if (rc < 0)
        return rc;
    if (step != SQLITE_DONE)
        return sqlite_conn_fail(c, "SQL_STATS_TASK_WINDOW", err);

    if (!(q = sqlite_conn_stmt(c, SQL_STATS_MINUTES, err)))
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, since_minute);
    size_t mcap = 0;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->n_minutes == mcap) {
            size_t want = mcap ? 2 * mcap : 64;
            struct minute_stats *more = mem_realloc(out->minutes, want * sizeof *more);
            if (!more) {
                rc = oom(err);
                break;
            }
            out->minutes = more;
            mcap = want;
        }
        struct minute_stats *m = &out->minutes[out->n_minutes++];
        m->minute_ms = sqlite3_column_int64(q, 0) * MS_PER_MINUTE;
        m->completed = sqlite3_column_int64(q, 1);
        m->failed = sqlite3_column_int64(q, 2);
        m->cancelled = sqlite3_column_int64(q, 3);
    }
    sqlite3_reset(q);
    return rc < 0 ? rc : step == SQLITE_DONE ? 0 : sqlite_conn_fail(c, "SQL_STATS_MINUTES", err);
}

static int read_tasks(struct sqlite_conn *c, struct store_stats *out, size_t *cap,
                      errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_STATS_TASKS, err);
    if (!q)
        return ERRAND_ESTORE;
    int step, rc = 0;
    bool no_memory = false;
    while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *task = sqlite_col_text(q, 0), *failure = sqlite_col_text(q, 2);
        bool paused = sqlite3_column_int(q, 1) != 0;
        /* a paused task is listed even with no run stored */
        struct task_stats *e = NULL;
        if (task && (paused || store_stats_find(out, task) != SIZE_MAX))
            e = task_entry(out, cap, task, &no_memory);
        if (no_memory) {
            rc = oom(err);
        } else if (e) {
            e->paused = paused;
            e->last_failure_at = sqlite_col_ms(q, 3);
            if (failure && !(e->last_failure_id = mem_strdup(failure)))
                rc = oom(err);
        }
    }
    sqlite3_reset(q);
    return rc < 0 ? rc : step == SQLITE_DONE ? 0 : sqlite_conn_fail(c, "SQL_STATS_TASKS", err);
}

static int read_sample(struct sqlite_conn *c, int64_t since_ms, int limit, struct store_stats *out,
                       errand_error *err)
{
    if (limit == 0)
        return 0;
    if (!(out->samples = mem_calloc((size_t)limit, sizeof *out->samples)))
        return oom(err);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_STATS_SAMPLE, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite3_bind_int64(q, 1, since_ms);
    sqlite3_bind_int(q, 2, limit);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        struct finished_sample *f = &out->samples[out->n_samples++];
        const char *task = sqlite_col_text(q, 0);
        int64_t due = sqlite_col_ms(q, 1), started = sqlite_col_ms(q, 2),
                finished = sqlite_col_ms(q, 3);
        f->task = task ? store_stats_find(out, task) : SIZE_MAX;
        /* started is the first start; a retried run is due again later: no wait then */
        f->wait_ms = started && started >= due ? started - due : -1;
        f->run_ms = started && finished >= started ? finished - started : -1;
    }
    sqlite3_reset(q);
    return step == SQLITE_DONE ? 0 : sqlite_conn_fail(c, "SQL_STATS_SAMPLE", err);
}

int store_sqlite_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                            errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    size_t cap = 0;
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err); /* one snapshot for every figure */
    if (rc == 0) {
        int64_t since_minute = since_ms / MS_PER_MINUTE;
        if ((rc = read_counts(c, out, &cap, err)) == 0 &&
            (rc = read_window(c, since_minute, out, &cap, err)) == 0 &&
            (rc = read_tasks(c, out, &cap, err)) == 0)
            rc = read_sample(c, since_ms, sample_limit, out, err);
        errand_error ignored;
        sqlite_conn_run(c, SQL_COMMIT, &ignored);
    }
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        store_stats_clear(out);
    return rc;
}

struct pause_op {
    const char *task;
    bool paused;
};

static int pause_in_writer(struct sqlite_conn *c, void *arg, errand_error *err)
{
    struct pause_op *op = arg;
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_TASK_PAUSE, err);
    if (!q)
        return ERRAND_ESTORE;
    sqlite_bind_text(q, 1, op->task);
    sqlite3_bind_int(q, 2, op->paused ? 1 : 0);
    return sqlite_conn_step_done(c, q, SQL_TASK_PAUSE, err);
}

int store_sqlite_set_paused(store *st, const char *task, bool paused, errand_error *err)
{
    struct pause_op op = {task, paused};
    return sqlite_writer_run(store_sqlite_of(st)->writer, pause_in_writer, &op, err);
}

int store_sqlite_list_failures(store *st, const char *task, int limit,
                               struct failure_group_list *out, errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_FAILURE_GROUPS, err);
    int rc = q ? 0 : ERRAND_ESTORE, step = SQLITE_DONE;
    if (q && !(out->items = mem_calloc((size_t)limit, sizeof *out->items)))
        rc = oom(err);
    if (rc == 0) {
        sqlite_bind_text(q, 1, task);
        sqlite3_bind_int(q, 2, limit);
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            struct failure_group *g = &out->items[out->n++];
            const char *t = sqlite_col_text(q, 0), *fp = sqlite_col_text(q, 1),
                       *msg = sqlite_col_text(q, 2), *id = sqlite_col_text(q, 5);
            g->task = mem_strdup(t ? t : "");
            g->fingerprint = mem_strdup(fp ? fp : "");
            g->message = mem_strdup(msg ? msg : "");
            g->count = sqlite3_column_int64(q, 3);
            g->last_at = sqlite_col_ms(q, 4);
            snprintf(g->last_id, sizeof g->last_id, "%s", id ? id : "");
            if (!g->task || !g->fingerprint || !g->message)
                rc = oom(err);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = sqlite_conn_fail(c, "SQL_FAILURE_GROUPS", err);
    }
    if (q)
        sqlite3_reset(q);
    sqlite_pool_release(s->readers, c);
    if (rc < 0)
        failure_group_list_clear(out);
    return rc;
}

void store_sqlite_observe(store *st, const struct store_observer *o)
{
    struct store_sqlite *s = store_sqlite_of(st);
    s->observer = *o;
    s->writer_conn->finals.observer = &s->observer;
}

/* The oldest due of task's ready runs into *due (0 when none): one seek per priority. */
static int oldest_ready_of(struct sqlite_conn *c, const char *task, int64_t *due, errand_error *err)
{
    sqlite3_stmt *q = sqlite_conn_stmt(c, SQL_READY_OLDEST, err);
    if (!q)
        return ERRAND_ESTORE;
    int64_t below = INT64_MAX;
    for (int i = 0; i < STORE_READY_PRIORITIES_MAX; i++) {
        sqlite_bind_text(q, 1, task);
        sqlite3_bind_int64(q, 2, below);
        int step = sqlite3_step(q);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            sqlite3_reset(q);
            return sqlite_conn_fail(c, "SQL_READY_OLDEST", err);
        }
        below = sqlite3_column_int64(q, 0);
        int64_t at = sqlite3_column_int64(q, 1);
        if (*due == 0 || at < *due)
            *due = at;
        sqlite3_reset(q);
    }
    sqlite3_reset(q);
    return 0;
}

int store_sqlite_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                              errand_error *err)
{
    struct store_sqlite *s = store_sqlite_of(st);
    struct sqlite_conn *c = sqlite_pool_acquire(s->readers);
    int rc = sqlite_conn_run(c, SQL_BEGIN_READ, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = oldest_ready_of(c, tasks[i], &due_out[i], err);
    errand_error ignored;
    sqlite_conn_run(c, SQL_COMMIT, &ignored);
    sqlite_pool_release(s->readers, c);
    return rc;
}
