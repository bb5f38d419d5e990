/* SPDX-License-Identifier: MIT */
/*
 * sqlite_transition.h — applying a state decision (core/state.h) to a run row of the SQLite
 * store: the run's state columns change and one row is appended to its state history, in
 * the caller's transaction. Cancel, report and the lease sweep all go through here (a claim
 * has its own one-statement path in store_sqlite_worker.c), so "every state change is
 * recorded" holds by construction.
 *
 * Runs on the writer thread only.
 */
#ifndef ERRAND_STORE_SQLITE_SQLITE_TRANSITION_H
#define ERRAND_STORE_SQLITE_SQLITE_TRANSITION_H

#include <stdbool.h>
#include <stdint.h>

#include "core/state.h"
#include "core/uuid.h"
#include "core/wire_limits.h"
#include "store/run_spec.h"
#include "store/sqlite/sqlite_conn.h"
#include "store/store.h"

#define SQLITE_LEASE_TOKEN_MAX 72  /* room for any token we issue (32 hex) and then some */
#define SQLITE_WORKER_NAME_MAX 256 /* the worker name as quoted in messages */

/* The counters kept in step with the runs, adjusted once per op from a tally of the state
 * changes it made (not per row, and not with triggers: see sqlite_schema.c):
 *   run_counts   runs per state type (the overview's totals, /metrics);
 *   task_counts  runs per task and state type (the per-task table);
 *   run_minutes  runs finished per minute and task: completed, failed (FAILED or CRASHED),
 *                cancelled (the overview's charts);
 *   tasks        each task's last failure. */
#define RUN_TALLY_TASKS 8
#define RUN_TALLY_TASK_MAX (WIRE_TASK_NAME_MAX * 4 + 1) /* UTF-8 */

struct run_tally_task {
    char task[RUN_TALLY_TASK_MAX];
    int64_t d[8];
    int64_t completed, failed, cancelled; /* runs of the task that finished so in the op */
    char last_failure[UUID_STR_LEN];      /* the run that failed last in the op, or "" */
};

struct run_count_delta {
    int64_t d[8];
    struct run_tally_task tasks[RUN_TALLY_TASKS];
    size_t n_tasks;
};

/* Run run_id of task moves from `from` to `to` (from < 0: a new run) at now_ms. When the
 * tally already holds RUN_TALLY_TASKS other tasks it is applied first (so c is needed). */
int run_count_move(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                   const char *run_id, int from, errand_state to, int64_t now_ms,
                   errand_error *err);

/* One run of task in state `state` is deleted. */
int run_count_remove(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                     errand_state state, int64_t now_ms, errand_error *err);

/* Writes the tally to the counters (one statement per counter that changed; finished runs
 * to the minute of now_ms) and empties it. */
int sqlite_counts_apply(struct sqlite_conn *c, struct run_count_delta *t, int64_t now_ms,
                        errand_error *err);

/* What the rules need to know about a run (SQL_RUN_LEASE_INFO / SQL_LEASE_EXPIRED). */
struct run_current {
    sqlite3_int64 rowid;
    char id[UUID_STR_LEN];
    errand_state state;
    int64_t state_timestamp;
    int attempt;
    int max_attempts;
    int redeliveries;
    int n_states;
    int64_t started;
    int64_t scheduled_at;
    int64_t lease_expires;
    char lease_token[SQLITE_LEASE_TOKEN_MAX]; /* "" when none (or unusably long) */
    char ended_by[SQLITE_LEASE_TOKEN_MAX];    /* "<token>:<state>" of the report that ended the
                                                  last lease, "" when none */
    char worker[SQLITE_WORKER_NAME_MAX];      /* "" when none; cut to fit */
    char task[RUN_TALLY_TASK_MAX];
    bool has_cache_key;
    double cache_expiration_seconds; /* 0 = never expires */
    double jitter;
    double delays[RUN_SPEC_DELAYS_MAX]; /* filled only when asked for */
    size_t n_delays;
};

/* Reads the current row of s (LEASE_COLUMNS order). with_delays parses retry_delays. */
int sqlite_run_current_read(sqlite3_stmt *s, struct run_current *cur, bool with_delays,
                            errand_error *err);

/* Looks the run up by id: 0, ERRAND_ENOTFOUND (err says which id) or a store error. */
int sqlite_run_current_get(struct sqlite_conn *c, const char *id, bool with_delays,
                           struct run_current *cur, errand_error *err);

/* The new column values of a transition. */
struct run_update {
    errand_state next;
    const char *name;
    const char *message; /* "" when NULL */
    int attempt;
    int redeliveries;
    int64_t scheduled_at;
    int64_t started;
    int64_t finished;
    const char *lease_token; /* NULL clears the lease */
    const char *ended_by;    /* "<token>:<state>" of a report that ends the lease; or NULL */
    int64_t lease_expires;
    bool complete; /* also write result, result_ref, cache_expires_at */
    const char *result;
    const char *result_ref;
    int64_t cache_expires_at; /* 0 = never (or no cache key) */
};

/* The update decision d implies for cur at now: next state and name, attempt given back on
 * hand-back, scheduled_at when SCHEDULED, finished when final, the lease kept only while
 * the next state is leased. Callers then adjust message, started and the result. */
void sqlite_transition_plan(const struct run_current *cur, const struct state_decision *d,
                            int64_t now_ms, struct run_update *u);

/* Writes u to the run, appends the state to its history and tallies the move. */
int sqlite_transition_write(struct sqlite_conn *c, const struct run_current *cur,
                            const struct run_update *u, int64_t now_ms,
                            struct run_count_delta *counts, errand_error *err);

/* failure_groups: a run of task failed with message (added to its group, now its latest),
 * or a failed run of task is deleted (its group loses it, and goes when empty). */
int sqlite_failure_add(struct sqlite_conn *c, const char *task, const char *run_id,
                       const char *message, int64_t now_ms, errand_error *err);
int sqlite_failure_remove(struct sqlite_conn *c, const char *task, const char *message,
                          errand_error *err);

/* Appends one history row (used by submission too) and its change-feed event, which the
 * writer stores with the transaction (sqlite_feed.h). */
int sqlite_state_append(struct sqlite_conn *c, const char *run_id, int seq, errand_state type,
                        const char *name, int64_t at_ms, const char *message, errand_error *err);

#endif
