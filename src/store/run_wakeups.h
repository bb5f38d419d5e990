/* SPDX-License-Identifier: MIT */
/*
 * run_wakeups.h — the long-polls a transaction's own side effects concern, told to the
 * store's signal callback (store_on_signal) after the commit: runs a dependency released
 * into the ready queue (claims of their task) and runs it ended (waits on them). The server
 * sees a report or a cancel, not what it set off downstream (store/run_deps.h), so the store
 * says it.
 *
 * Hints, as store_on_signal says: a spurious one costs a re-check, so a rolled-back
 * transaction's are not taken back, and past a few keys one signal for all takes over.
 * Owned by one connection, used by the thread that holds it.
 */
#ifndef ERRAND_STORE_RUN_WAKEUPS_H
#define ERRAND_STORE_RUN_WAKEUPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "store/run_transition.h"
#include "store/store.h"

#define RUN_WAKEUPS_TASKS 8
#define RUN_WAKEUPS_RUNS 32

struct run_wakeups {
    void (*fn)(void *arg, enum store_signal sig, const char *key); /* NULL: nothing kept */
    void *arg;
    char tasks[RUN_WAKEUPS_TASKS][RUN_TALLY_TASK_MAX];
    size_t n_tasks;
    bool all_tasks;
    char runs[RUN_WAKEUPS_RUNS][UUID_STR_LEN];
    size_t n_runs;
    bool all_runs;
};

/* Runs of task entered the ready queue. */
void run_wakeups_task(struct run_wakeups *w, const char *task);
/* Runs of any task may have become claimable. */
void run_wakeups_any_task(struct run_wakeups *w);
/* Run id reached a final state. */
void run_wakeups_run(struct run_wakeups *w, const char *id);
/* After the commit: one call of fn per key (or one with NULL for all), then empty. */
void run_wakeups_flush(struct run_wakeups *w);

#endif
