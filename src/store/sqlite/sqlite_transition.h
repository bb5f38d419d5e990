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
#include "store/run_transition.h"
#include "store/sqlite/sqlite_conn.h"
#include "store/store.h"

#define SQLITE_LEASE_TOKEN_MAX RUN_LEASE_TOKEN_MAX
#define SQLITE_WORKER_NAME_MAX RUN_WORKER_NAME_MAX

/* The counters (store/run_transition.h) are kept in the tables run_counts, task_counts,
 * run_minutes and tasks, adjusted once per op from the op's tally, not per row and not with
 * triggers (see sqlite_schema.c). */

/* Run run_id of task moves from `from` to `to` (from < 0: a new run) at now_ms. When the
 * tally already holds RUN_TALLY_TASKS other tasks it is applied first (so c is needed). */
int run_count_move(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                   const char *run_id, int from, errand_state to, int64_t now_ms,
                   errand_error *err);

/* delta more (or fewer) runs of task wait in the delayed set. */
int run_count_delayed(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                      int64_t delta, int64_t now_ms, errand_error *err);

/* One run of task in state `state` is deleted. */
int run_count_remove(struct sqlite_conn *c, struct run_count_delta *t, const char *task,
                     errand_state state, int64_t now_ms, errand_error *err);

/* Writes the tally to the counters (one statement per counter that changed; finished runs
 * to the minute of now_ms) and empties it. */
int sqlite_counts_apply(struct sqlite_conn *c, struct run_count_delta *t, int64_t now_ms,
                        errand_error *err);

/* Reads the current row of s (LEASE_COLUMNS order). with_delays parses retry_delays. */
int sqlite_run_current_read(sqlite3_stmt *s, struct run_current *cur, bool with_delays,
                            errand_error *err);

/* Looks the run up by id: 0, ERRAND_ENOTFOUND (err says which id) or a store error. */
int sqlite_run_current_get(struct sqlite_conn *c, const char *id, bool with_delays,
                           struct run_current *cur, errand_error *err);

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
int sqlite_state_append(struct sqlite_conn *c, const char *run_id, const char *task, int seq,
                        errand_state type, const char *name, int64_t at_ms, const char *message,
                        errand_error *err);

#endif
