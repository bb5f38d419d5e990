/* SPDX-License-Identifier: MIT */
/*
 * store_pg_stats.c — the dashboard's figures (store_read_stats), pausing tasks
 * (store_set_paused) and the failure groups (store_list_failures) in the PostgreSQL store; and
 * folding the counters (store_pg_fold_counts). A port of store_sqlite_stats.c.
 *
 * Everything is read from the counters the ops keep (pg_transition.c): task_counts,
 * run_minutes and tasks, bounded by the number of tasks and of minutes in the window (and of
 * the rows not folded yet); the duration sample reads the newest finished runs through
 * task_runs_finished, at most sample_limit rows. All of it in one read transaction
 * (store_pg_read: one snapshot), so the figures agree.
 *
 * The counters run_counts, task_counts and run_minutes are added to, not updated: each
 * commit inserts its changes as rows of their own (pg_schema.c), so a reader sums the rows of
 * a key; and the sweeper folds them back into one row per key now and then
 * (store_pg_fold_counts), so a read sums few rows. Names are ordered in C order
 * (COLLATE "C"), as SQLite's binary order does, so the tasks kept when there are more than
 * STORE_STATS_TASKS_MAX are the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "store/postgres/store_pg.h"

/* The number of state types (errand_state), as the counters index them. */
#define STATE_TYPES 8

/* A key of run_minutes whose rows sum to nothing is as good as absent (a fold drops it). */
#define SUMS_NONZERO "HAVING sum(completed) <> 0 OR sum(failed) <> 0 OR sum(cancelled) <> 0"

/* The key of the transaction-level advisory lock a fold takes, so that the sweepers of
 * several servers do not fold at once ("err-fold" in ASCII; any 64-bit value would do). */
#define FOLD_LOCK_KEY "6572722d666f6c64"

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

/* --- the dashboard's figures ------------------------------------------------------------- */

static int read_counts(struct pg_conn *c, struct store_stats *out, size_t *cap, errand_error *err)
{
    static const char sql[] =
        "SELECT task, state_type, sum(n)::bigint FROM task_counts GROUP BY task, state_type "
        "HAVING sum(n) <> 0 ORDER BY task COLLATE \"C\"";
    int rc = store_pg_read_counts(c, NULL, out->counts, err);
    if (rc < 0)
        return rc;
    PGresult *r = pg_query(c, sql, NULL, "reading the tasks' counts", err);
    if (!r)
        return ERRAND_ESTORE;
    bool no_memory = false;
    for (int i = 0, rows = PQntuples(r); rc == 0 && i < rows; i++) {
        const char *task = pg_get_text(r, i, 0);
        int t = pg_get_int(r, i, 1);
        struct task_stats *e = task ? task_entry(out, cap, task, &no_memory) : NULL;
        if (no_memory)
            rc = oom(err);
        else if (e && t >= 0 && t < STATE_TYPES)
            e->counts[t] = pg_get_i64(r, i, 2);
        else if (e && t == RUN_TALLY_DELAYED)
            e->delayed = pg_get_i64(r, i, 2);
    }
    PQclear(r);
    return rc;
}

static int read_window(struct pg_conn *c, int64_t since_minute, struct store_stats *out,
                       size_t *cap, errand_error *err)
{
    static const char per_task[] =
        "SELECT task, sum(completed)::bigint, sum(failed)::bigint, sum(cancelled)::bigint "
        "FROM run_minutes WHERE minute >= $1 GROUP BY task " SUMS_NONZERO
        " ORDER BY task COLLATE \"C\"";
    static const char per_minute[] =
        "SELECT minute, sum(completed)::bigint, sum(failed)::bigint, sum(cancelled)::bigint "
        "FROM run_minutes WHERE minute >= $1 GROUP BY minute " SUMS_NONZERO " ORDER BY minute";
    struct pg_params p = {0};
    pg_p_i64(&p, since_minute);
    PGresult *r = pg_query(c, per_task, &p, "reading the tasks' window", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    bool no_memory = false;
    for (int i = 0, rows = PQntuples(r); rc == 0 && i < rows; i++) {
        const char *task = pg_get_text(r, i, 0);
        struct task_stats *e = task ? task_entry(out, cap, task, &no_memory) : NULL;
        if (no_memory)
            rc = oom(err);
        else if (e) {
            e->completed = pg_get_i64(r, i, 1);
            e->failed = pg_get_i64(r, i, 2);
            e->cancelled = pg_get_i64(r, i, 3);
        }
    }
    PQclear(r);
    if (rc < 0)
        return rc;

    if (!(r = pg_query(c, per_minute, &p, "reading the minutes' figures", err)))
        return ERRAND_ESTORE;
    int rows = PQntuples(r);
    if (rows > 0 && !(out->minutes = mem_calloc((size_t)rows, sizeof *out->minutes)))
        rc = oom(err);
    for (int i = 0; rc == 0 && i < rows; i++) {
        struct minute_stats *m = &out->minutes[out->n_minutes++];
        m->minute_ms = pg_get_i64(r, i, 0) * MS_PER_MINUTE;
        m->completed = pg_get_i64(r, i, 1);
        m->failed = pg_get_i64(r, i, 2);
        m->cancelled = pg_get_i64(r, i, 3);
    }
    PQclear(r);
    return rc;
}

static int read_tasks(struct pg_conn *c, struct store_stats *out, size_t *cap, errand_error *err)
{
    static const char sql[] = "SELECT task, paused, last_failure_id, last_failure_at FROM tasks "
                              "ORDER BY task COLLATE \"C\"";
    PGresult *r = pg_query(c, sql, NULL, "reading the tasks", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    bool no_memory = false;
    for (int i = 0, rows = PQntuples(r); rc == 0 && i < rows; i++) {
        const char *task = pg_get_text(r, i, 0), *failure = pg_get_text(r, i, 2);
        bool paused = pg_get_bool(r, i, 1);
        /* a paused task is listed even with no run stored */
        struct task_stats *e = NULL;
        if (task && (paused || store_stats_find(out, task) != SIZE_MAX))
            e = task_entry(out, cap, task, &no_memory);
        if (no_memory) {
            rc = oom(err);
        } else if (e) {
            e->paused = paused;
            e->last_failure_at = pg_get_i64(r, i, 3);
            if (failure && !(e->last_failure_id = mem_strdup(failure)))
                rc = oom(err);
        }
    }
    PQclear(r);
    return rc;
}

static int read_sample(struct pg_conn *c, int64_t since_ms, int limit, struct store_stats *out,
                       errand_error *err)
{
    /* Ties in finished: the newer run first, as SQLite's rowid order. */
    static const char sql[] =
        "SELECT task, scheduled_at, started, finished FROM task_runs "
        "WHERE finished IS NOT NULL AND finished >= $1 ORDER BY finished DESC, id DESC LIMIT $2";
    if (limit == 0)
        return 0;
    if (!(out->samples = mem_calloc((size_t)limit, sizeof *out->samples)))
        return oom(err);
    struct pg_params p = {0};
    pg_p_i64(&p, since_ms);
    pg_p_int(&p, limit);
    PGresult *r = pg_query(c, sql, &p, "reading the latest finished runs", err);
    if (!r)
        return ERRAND_ESTORE;
    for (int i = 0, rows = PQntuples(r); i < rows && i < limit; i++) {
        struct finished_sample *f = &out->samples[out->n_samples++];
        const char *task = pg_get_text(r, i, 0);
        int64_t due = pg_get_i64(r, i, 1), started = pg_get_i64(r, i, 2),
                finished = pg_get_i64(r, i, 3);
        f->task = task ? store_stats_find(out, task) : SIZE_MAX;
        /* started is the first start; a retried run is due again later: no wait then */
        f->wait_ms = started && started >= due ? started - due : -1;
        f->run_ms = started && finished >= started ? finished - started : -1;
    }
    PQclear(r);
    return 0;
}

struct stats_op {
    int64_t since_ms;
    int sample_limit;
    struct store_stats *out;
};

static int stats_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    struct stats_op *op = arg;
    store_stats_clear(op->out); /* a run again: start over */
    size_t cap = 0;
    int64_t since_minute = op->since_ms / MS_PER_MINUTE;
    int rc;
    if ((rc = read_counts(c, op->out, &cap, err)) == 0 &&
        (rc = read_window(c, since_minute, op->out, &cap, err)) == 0 &&
        (rc = read_tasks(c, op->out, &cap, err)) == 0)
        rc = read_sample(c, op->since_ms, op->sample_limit, op->out, err);
    return rc;
}

int store_pg_read_stats(store *st, int64_t since_ms, int sample_limit, struct store_stats *out,
                        errand_error *err)
{
    memset(out, 0, sizeof *out);
    struct stats_op op = {since_ms, sample_limit, out};
    int rc = store_pg_read(store_pg_of(st), stats_in_tx, &op, err);
    if (rc < 0)
        store_stats_clear(out);
    return rc;
}

/* --- /metrics ------------------------------------------------------------------------------ */

void store_pg_observe(store *st, const struct store_observer *o)
{
    store_pg_of(st)->observer = *o; /* connections point at it when acquired */
}

struct oldest_op {
    const char *const *tasks;
    size_t n;
    int64_t *due;
};

/* The oldest ready run of each task: one seek into the ready queue (task_runs_claim) per
 * priority present, the highest first. */
static int oldest_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] =
        "SELECT priority, scheduled_at FROM task_runs WHERE state_type = 0 AND NOT delayed "
        "AND task = $1 AND priority < $2::bigint ORDER BY priority DESC, scheduled_at LIMIT 1";
    struct oldest_op *op = arg;
    for (size_t t = 0; t < op->n; t++) {
        op->due[t] = 0;
        int64_t below = INT64_MAX;
        for (int i = 0; i < STORE_READY_PRIORITIES_MAX; i++) {
            struct pg_params p = {0};
            pg_p_text(&p, op->tasks[t]);
            pg_p_i64(&p, below);
            PGresult *r = pg_query(c, sql, &p, "reading the oldest ready run", err);
            if (!r)
                return ERRAND_ESTORE;
            bool found = PQntuples(r) > 0;
            if (found) {
                below = pg_get_i64(r, 0, 0);
                int64_t at = pg_get_i64(r, 0, 1);
                if (op->due[t] == 0 || at < op->due[t])
                    op->due[t] = at;
            }
            PQclear(r);
            if (!found)
                break;
        }
    }
    return 0;
}

int store_pg_oldest_ready(store *st, const char *const *tasks, size_t n, int64_t *due_out,
                          errand_error *err)
{
    struct oldest_op op = {tasks, n, due_out};
    return store_pg_read(store_pg_of(st), oldest_in_tx, &op, err);
}

/* --- paused tasks ------------------------------------------------------------------------ */

struct pause_op {
    const char *task;
    bool paused;
};

static int pause_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    static const char sql[] = "INSERT INTO tasks (task, paused) VALUES ($1, $2) "
                              "ON CONFLICT (task) DO UPDATE SET paused = excluded.paused";
    struct pause_op *op = arg;
    struct pg_params p = {0};
    pg_p_text(&p, op->task);
    pg_p_bool(&p, op->paused);
    int rc = pg_command(c, sql, &p, "pausing a task", NULL, err);
    if (rc == 0 && !op->paused)
        pg_signal_due(c, op->task); /* its runs are claimable again, on every server */
    return rc;
}

int store_pg_set_paused(store *st, const char *task, bool paused, errand_error *err)
{
    struct pause_op op = {task, paused};
    return store_pg_write(store_pg_of(st), pause_in_tx, &op, err);
}

/* --- failure groups ---------------------------------------------------------------------- */

struct failures_op {
    const char *task;
    int limit;
    struct failure_group_list *out;
};

static int failures_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    /* The most recent first; ties as SQLite's index (last_at, then its key) has them. */
    static const char sql[] =
        "SELECT task, fingerprint, message, n, last_at, last_id FROM failure_groups "
        "WHERE ($1::text IS NULL OR task = $1) "
        "ORDER BY last_at DESC, task COLLATE \"C\" DESC, fingerprint COLLATE \"C\" DESC "
        "LIMIT $2";
    struct failures_op *op = arg;
    struct failure_group_list *out = op->out;
    failure_group_list_clear(out); /* a run again: start over */
    if (!(out->items = mem_calloc((size_t)op->limit, sizeof *out->items)))
        return oom(err);
    struct pg_params p = {0};
    pg_p_text(&p, op->task);
    pg_p_int(&p, op->limit);
    PGresult *r = pg_query(c, sql, &p, "listing failure groups", err);
    if (!r)
        return ERRAND_ESTORE;
    int rc = 0;
    for (int i = 0, rows = PQntuples(r); rc == 0 && i < rows && i < op->limit; i++) {
        struct failure_group *g = &out->items[out->n++];
        const char *t = pg_get_text(r, i, 0), *fp = pg_get_text(r, i, 1),
                   *msg = pg_get_text(r, i, 2), *id = pg_get_text(r, i, 5);
        g->task = mem_strdup(t ? t : "");
        g->fingerprint = mem_strdup(fp ? fp : "");
        g->message = mem_strdup(msg ? msg : "");
        g->count = pg_get_i64(r, i, 3);
        g->last_at = pg_get_i64(r, i, 4);
        snprintf(g->last_id, sizeof g->last_id, "%s", id ? id : "");
        if (!g->task || !g->fingerprint || !g->message)
            rc = oom(err);
    }
    PQclear(r);
    return rc;
}

int store_pg_list_failures(store *st, const char *task, int limit, struct failure_group_list *out,
                           errand_error *err)
{
    out->items = NULL;
    out->n = 0;
    struct failures_op op = {task, limit, out};
    int rc = store_pg_read(store_pg_of(st), failures_in_tx, &op, err);
    if (rc < 0)
        failure_group_list_clear(out);
    return rc;
}

/* --- folding the counters ---------------------------------------------------------------- */

/* Each statement takes the rows of the keys that have more than one (or a single one that
 * sums to nothing) and puts back one row per key, dropping the keys that sum to nothing. Rows
 * a concurrent commit adds meanwhile are not in the statement's snapshot: neither taken nor
 * summed, they stay as they are, so the sums readers see never change. */
static const char FOLD_RUN_COUNTS[] =
    "WITH gone AS (DELETE FROM run_counts WHERE state_type IN (SELECT state_type FROM "
    "run_counts GROUP BY state_type HAVING count(*) > 1 OR sum(n) = 0) "
    "RETURNING state_type, n) "
    "INSERT INTO run_counts (state_type, n) SELECT state_type, sum(n)::bigint FROM gone "
    "GROUP BY state_type HAVING sum(n) <> 0";
static const char FOLD_TASK_COUNTS[] =
    "WITH gone AS (DELETE FROM task_counts WHERE (task, state_type) IN (SELECT task, "
    "state_type FROM task_counts GROUP BY task, state_type HAVING count(*) > 1 OR sum(n) = 0) "
    "RETURNING task, state_type, n) "
    "INSERT INTO task_counts (task, state_type, n) SELECT task, state_type, sum(n)::bigint "
    "FROM gone GROUP BY task, state_type HAVING sum(n) <> 0";
static const char FOLD_RUN_MINUTES[] =
    "WITH gone AS (DELETE FROM run_minutes WHERE (minute, task) IN (SELECT minute, task FROM "
    "run_minutes GROUP BY minute, task HAVING count(*) > 1 OR (sum(completed) = 0 AND "
    "sum(failed) = 0 AND sum(cancelled) = 0)) "
    "RETURNING minute, task, completed, failed, cancelled) "
    "INSERT INTO run_minutes (minute, task, completed, failed, cancelled) "
    "SELECT minute, task, sum(completed)::bigint, sum(failed)::bigint, sum(cancelled)::bigint "
    "FROM gone GROUP BY minute, task " SUMS_NONZERO;

static int fold_in_tx(struct pg_conn *c, void *arg, errand_error *err)
{
    (void)arg;
    /* One fold at a time across the servers: another one running now does this one's work. */
    static const char lock[] = "SELECT pg_try_advisory_xact_lock(x'" FOLD_LOCK_KEY "'::bigint)";
    PGresult *r = pg_query(c, lock, NULL, "locking the counters' fold", err);
    if (!r)
        return ERRAND_ESTORE;
    bool locked = PQntuples(r) > 0 && pg_get_bool(r, 0, 0);
    PQclear(r);
    if (!locked)
        return 0;
    int rc;
    if ((rc = pg_command(c, FOLD_RUN_COUNTS, NULL, "folding run_counts", NULL, err)) == 0 &&
        (rc = pg_command(c, FOLD_TASK_COUNTS, NULL, "folding task_counts", NULL, err)) == 0)
        rc = pg_command(c, FOLD_RUN_MINUTES, NULL, "folding run_minutes", NULL, err);
    return rc;
}

int store_pg_fold_counts(struct store_pg *s, errand_error *err)
{
    return store_pg_write(s, fold_in_tx, NULL, err);
}
